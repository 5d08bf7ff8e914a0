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
];

/// Applies every migration the database has not seen, each in its own transaction.
pub fn apply(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(Error::internal(format!(
            "database schema version {current} is newer than this agent understands ({known}); \
             upgrade the agent"
        )));
    }
    for (i, sql) in MIGRATIONS
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
    fn refuses_a_newer_schema() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "user_version", 999)?;
        assert!(apply(&mut conn).is_err());
        Ok(())
    }
}
