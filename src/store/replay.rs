//! The SAML replay cache: assertion IDs already consumed, kept until they would expire, in
//! SQLite so a replay is refused even after a restart.

use rusqlite::{Connection, params};

use crate::error::{Error, Result};
use crate::store::is_unique_violation;

/// Records that `assertion_id` of `issuer` was used; `SECURITY` if it was used before.
/// Entries past their expiry are forgotten first (an expired assertion fails validation
/// anyway).
pub fn remember(
    conn: &Connection,
    issuer: &str,
    assertion_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<()> {
    conn.prepare_cached("DELETE FROM saml_replay_cache WHERE expires_at <= ?1")?
        .execute([now])?;
    match conn
        .prepare_cached(
            "INSERT INTO saml_replay_cache (assertion_id, issuer, expires_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![assertion_id, issuer, expires_at])
    {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::Security(
            "this SAML assertion was already used (replay refused); sign in again".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    #[test]
    fn refuses_a_second_use_until_expiry() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| remember(tx, "idp", "_a1", 100, 10))?;
        assert!(matches!(
            db.write_blocking(|tx| remember(tx, "idp", "_a1", 100, 20)),
            Err(Error::Security(_))
        ));
        // Another IdP's assertion with the same ID is another assertion.
        db.write_blocking(|tx| remember(tx, "other", "_a1", 100, 20))?;
        // After expiry the entry is gone (and the assertion itself would be refused as expired).
        db.write_blocking(|tx| remember(tx, "idp", "_a1", 300, 101))?;
        Ok(())
    }

    #[test]
    fn forgetting_expired_assertions_reads_the_expiry_index_not_the_whole_cache() -> Result<()> {
        let db = Db::open_in_memory()?;
        let plan: Vec<String> = db.read_blocking(|c| {
            let mut st = c.prepare(
                "EXPLAIN QUERY PLAN DELETE FROM saml_replay_cache WHERE expires_at <= ?1",
            )?;
            let rows = st.query_map([0], |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })?;
        assert!(
            plan.iter()
                .any(|p| p.contains("INDEX saml_replay_cache_expiry")),
            "{plan:?}"
        );
        Ok(())
    }
}
