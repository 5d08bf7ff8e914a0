//! Embedded, numbered schema migrations, applied in order at start.
//!
//! `PRAGMA user_version` holds the number of the last applied migration. A database from a
//! newer agent (higher version than this build knows) is refused rather than touched.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The migrations, in order; the version of each is its position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_login_transactions_client.sql"),
    include_str!("../../migrations/0003_directory_reads.sql"),
    include_str!("../../migrations/0004_groups_attribute.sql"),
    include_str!("../../migrations/0005_login_transactions_keys.sql"),
    include_str!("../../migrations/0006_tenants_and_one_link_per_kind.sql"),
    include_str!("../../migrations/0007_access_tokens_from_sessions.sql"),
    include_str!("../../migrations/0008_audit_coalescing_and_retention.sql"),
    include_str!("../../migrations/0009_links_per_account.sql"),
    include_str!("../../migrations/0010_allow_expired_certificate.sql"),
    include_str!("../../migrations/0011_config_versions.sql"),
    include_str!("../../migrations/0012_public_clients.sql"),
    include_str!("../../migrations/0013_agent_settings.sql"),
    include_str!("../../migrations/0014_saml_sp_keys.sql"),
    include_str!("../../migrations/0015_saml_replay_expiry.sql"),
    include_str!("../../migrations/0016_session_grants.sql"),
];

/// Applies every migration the database has not seen, each in its own transaction.
pub fn apply(conn: &mut Connection) -> Result<()> {
    apply_up_to(conn, MIGRATIONS.len())
}

/// Applies the migrations the database has not seen, up to number `last`.
fn apply_up_to(conn: &mut Connection, last: usize) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(Error::internal(format!(
            "database schema version {current} is newer than this agent understands ({known}); \
             upgrade the agent"
        )));
    }
    for (i, sql) in MIGRATIONS[..last.min(MIGRATIONS.len())]
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_all_migrations_once() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        apply(&mut conn)?;
        apply(&mut conn)?;
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(v, MIGRATIONS.len() as i64);
        Ok(())
    }

    #[test]
    fn migration_6_keeps_each_users_first_link_of_a_kind() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        apply_up_to(&mut conn, 5)?;
        conn.execute_batch(
            "INSERT INTO accounts (id, identifier, name, created_at) VALUES (1, 'acme', 'Acme', 0);
             INSERT INTO users (id, account_id, email, first_name, last_name, role, status,
                                created_at, updated_at)
                 VALUES (1, 1, 'ann@acme.test', '', '', 'user', 'active', 0, 0);
             INSERT INTO user_idp_links (user_id, provider, issuer, subject, linked_at) VALUES
                 (1, 'entra', 'https://login/t-evil/v2.0', 't-evil/o9', 20),
                 (1, 'entra', 'https://login/t-corp/v2.0', 't-corp/o1', 10),
                 (1, 'saml', 'https://idp', 'ann', 30);",
        )?;
        apply(&mut conn)?;
        let mut stmt = conn.prepare("SELECT subject FROM user_idp_links ORDER BY linked_at")?;
        let left: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(left, ["t-corp/o1", "ann"]);
        // And no second link of a kind can be made any more.
        assert!(
            conn.execute(
                "INSERT INTO user_idp_links (user_id, provider, issuer, subject, linked_at) \
                 VALUES (1, 'entra', 'https://login/t-2/v2.0', 't-2/o1', 40)",
                [],
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn migration_12_keeps_configurations_and_allows_public_clients() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        apply_up_to(&mut conn, 11)?;
        let public = "INSERT INTO idp_configs (account_id, kind, active, client_id, openid_url, \
                      created_at, updated_at) VALUES (1, 'entra', 0, 'c2', 'https://e', 0, 0)";
        conn.execute_batch(
            "INSERT INTO accounts (id, identifier, name, created_at) VALUES (1, 'acme', 'Acme', 0);
             INSERT INTO idp_configs (id, account_id, kind, active, client_id, client_secret_enc,
                                      openid_url, allowed_tenants, version, created_at, updated_at)
                 VALUES (7, 1, 'okta', 1, 'c1', 'sealed', 'https://o', '[\"t\"]', 3, 1, 2);",
        )?;
        // Before: a secret was required.
        assert!(conn.execute(public, []).is_err());
        apply(&mut conn)?;
        let row: (i64, String, String, i64) = conn.query_row(
            "SELECT id, client_secret_enc, allowed_tenants, version FROM idp_configs \
             WHERE kind = 'okta'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        assert_eq!(row, (7, "sealed".into(), "[\"t\"]".into(), 3));
        conn.execute(public, [])?;
        // A second active configuration is still refused, and SAML still needs its fields.
        assert!(
            conn.execute("UPDATE idp_configs SET active = 1 WHERE kind = 'entra'", [])
                .is_err()
        );
        assert!(
            conn.execute(
                "INSERT INTO idp_configs (account_id, kind, active, created_at, updated_at) \
                 VALUES (1, 'saml', 0, 0, 0)",
                [],
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn refuses_a_newer_schema() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "user_version", 999)?;
        assert!(apply(&mut conn).is_err());
        Ok(())
    }
}
