//! The account's sign-in settings (`signin_settings`, `auto_provision_domains`,
//! `admin_groups`): who may get in and how long a signed-in session may be renewed.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// The absolute session lifetime of an account that set none: 30 days.
pub const DEFAULT_SESSION_LIFETIME_DAYS: i64 = 30;

/// An account's sign-in settings (validated by `admin::signin` before they get here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninSettings {
    /// Unknown identities with a verified email in one of `auto_provision_domains` become
    /// standard users at their first sign-in.
    pub auto_provision: bool,
    /// Lower-case ASCII domain names, sorted.
    pub auto_provision_domains: Vec<String>,
    /// IdP group names or ids whose members are admins, sorted.
    pub admin_groups: Vec<String>,
    /// How long a signed-in session may be renewed, from its sign-in.
    pub session_lifetime_days: i64,
}

impl Default for SigninSettings {
    fn default() -> Self {
        Self {
            auto_provision: false,
            auto_provision_domains: Vec::new(),
            admin_groups: Vec::new(),
            session_lifetime_days: DEFAULT_SESSION_LIFETIME_DAYS,
        }
    }
}

fn strings(conn: &Connection, sql: &str, account_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([account_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The account's settings (the defaults when it never set any).
pub fn get(conn: &Connection, account_id: i64) -> Result<SigninSettings> {
    let row: Option<(bool, i64)> = conn
        .prepare_cached(
            "SELECT auto_provision, session_lifetime_days FROM signin_settings WHERE account_id = ?1",
        )?
        .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (auto_provision, session_lifetime_days) =
        row.unwrap_or((false, DEFAULT_SESSION_LIFETIME_DAYS));
    Ok(SigninSettings {
        auto_provision,
        auto_provision_domains: strings(
            conn,
            "SELECT domain FROM auto_provision_domains WHERE account_id = ?1 ORDER BY domain",
            account_id,
        )?,
        admin_groups: strings(
            conn,
            "SELECT name FROM admin_groups WHERE account_id = ?1 ORDER BY name",
            account_id,
        )?,
        session_lifetime_days,
    })
}

/// Replaces the account's settings with `s`.
pub fn save(conn: &Connection, account_id: i64, s: &SigninSettings, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO signin_settings (account_id, auto_provision, session_lifetime_days, updated_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id) DO UPDATE SET \
         auto_provision = excluded.auto_provision, \
         session_lifetime_days = excluded.session_lifetime_days, updated_at = excluded.updated_at",
        params![account_id, s.auto_provision, s.session_lifetime_days, now],
    )?;
    conn.execute(
        "DELETE FROM auto_provision_domains WHERE account_id = ?1",
        [account_id],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO auto_provision_domains (account_id, domain) VALUES (?1, ?2)",
    )?;
    for d in &s.auto_provision_domains {
        stmt.execute(params![account_id, d])?;
    }
    conn.execute(
        "DELETE FROM admin_groups WHERE account_id = ?1",
        [account_id],
    )?;
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO admin_groups (account_id, name) VALUES (?1, ?2)")?;
    for g in &s.admin_groups {
        stmt.execute(params![account_id, g])?;
    }
    Ok(())
}

/// The one account that auto-provisions users of `domain` (lower-case ASCII), if exactly one
/// does: a username no user has is routed there. Two accounts listing the same domain route
/// neither (the agent cannot tell which one the user belongs to).
pub fn account_auto_provisioning(conn: &Connection, domain: &str) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.account_id FROM auto_provision_domains d \
         JOIN signin_settings s ON s.account_id = d.account_id \
         WHERE d.domain = ?1 AND s.auto_provision = 1 LIMIT 2",
    )?;
    let ids: Vec<i64> = stmt
        .query_map([domain], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match ids.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

/// The absolute lifetime of the account's signed-in sessions, in seconds: renewals of a
/// session end this long after its sign-in.
pub fn session_lifetime_secs(conn: &Connection, account_id: i64) -> Result<i64> {
    let days: Option<i64> = conn
        .prepare_cached("SELECT session_lifetime_days FROM signin_settings WHERE account_id = ?1")?
        .query_row([account_id], |r| r.get(0))
        .optional()?;
    Ok(days.unwrap_or(DEFAULT_SESSION_LIFETIME_DAYS) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, accounts};

    #[test]
    fn defaults_until_saved_then_replaced_whole() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            assert_eq!(get(tx, aid)?, SigninSettings::default());
            assert_eq!(session_lifetime_secs(tx, aid)?, 30 * 86_400);
            let s = SigninSettings {
                auto_provision: true,
                auto_provision_domains: vec!["acme.test".into(), "xn--acm-bla.test".into()],
                admin_groups: vec!["Amove Admins".into()],
                session_lifetime_days: 7,
            };
            save(tx, aid, &s, 1)?;
            assert_eq!(get(tx, aid)?, s);
            assert_eq!(session_lifetime_secs(tx, aid)?, 7 * 86_400);
            save(tx, aid, &SigninSettings::default(), 2)?;
            assert_eq!(get(tx, aid)?, SigninSettings::default());
            Ok(())
        })
    }

    #[test]
    fn routes_a_domain_to_the_one_account_auto_provisioning_it() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let a = accounts::insert(tx, "acme", "Acme", 0)?;
            let b = accounts::insert(tx, "beta", "Beta", 0)?;
            let mut s = SigninSettings {
                auto_provision: false,
                auto_provision_domains: vec!["acme.test".into()],
                ..SigninSettings::default()
            };
            save(tx, a, &s, 1)?;
            assert_eq!(account_auto_provisioning(tx, "acme.test")?, None, "off");
            s.auto_provision = true;
            save(tx, a, &s, 1)?;
            assert_eq!(account_auto_provisioning(tx, "acme.test")?, Some(a));
            assert_eq!(account_auto_provisioning(tx, "other.test")?, None);
            save(tx, b, &s, 1)?;
            assert_eq!(account_auto_provisioning(tx, "acme.test")?, None, "two");
            Ok(())
        })
    }
}
