//! The agent's SAML key pairs (`sp_keys`): per account and use, the active one and those
//! retiring after a rotation. Private keys are sealed by the caller.

use rusqlite::{Connection, Row, params};

use crate::error::Result;

/// A stored key pair.
#[derive(Debug, Clone)]
pub struct SpKeyRow {
    /// Row id (never reused).
    pub id: i64,
    /// `signing` or `encryption`.
    pub key_use: String,
    /// The PKCS#8 private key, sealed.
    pub private_key_enc: String,
    /// The self-signed certificate (PEM).
    pub certificate: String,
    /// End of the certificate's validity.
    pub not_after: i64,
    /// When it was generated.
    pub created_at: i64,
    /// `None` while active; after a rotation, when it stops being published and used.
    pub retire_at: Option<i64>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<SpKeyRow> {
    Ok(SpKeyRow {
        id: r.get(0)?,
        key_use: r.get(1)?,
        private_key_enc: r.get(2)?,
        certificate: r.get(3)?,
        not_after: r.get(4)?,
        created_at: r.get(5)?,
        retire_at: r.get(6)?,
    })
}

/// The account's keys of `key_use` still in force at `now`: the active one first, then the
/// retiring ones, newest first.
pub fn in_force(
    conn: &Connection,
    account_id: i64,
    key_use: &str,
    now: i64,
) -> Result<Vec<SpKeyRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, use, private_key_enc, certificate, not_after, created_at, retire_at \
         FROM sp_keys WHERE account_id = ?1 AND use = ?2 AND (retire_at IS NULL OR retire_at > ?3) \
         ORDER BY retire_at IS NOT NULL, id DESC",
    )?;
    let rows = stmt.query_map(params![account_id, key_use, now], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores a new active key unless the account already has one of this use (a concurrent
/// first use); true when this one was stored.
pub fn insert_active(
    conn: &Connection,
    account_id: i64,
    key_use: &str,
    private_key_enc: &str,
    certificate: &str,
    not_after: i64,
    now: i64,
) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO sp_keys (account_id, use, private_key_enc, certificate, \
         not_after, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            account_id,
            key_use,
            private_key_enc,
            certificate,
            not_after,
            now
        ],
    )?;
    Ok(n == 1)
}

/// Starts a rotation: the account's active keys retire at `retire_at` (they stay in force
/// until then); returns how many.
pub fn start_retiring(conn: &Connection, account_id: i64, retire_at: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE sp_keys SET retire_at = ?2 WHERE account_id = ?1 AND retire_at IS NULL",
        params![account_id, retire_at],
    )?)
}

/// Ends a rotation now: the account's retiring keys are deleted; returns how many.
pub fn delete_retiring(conn: &Connection, account_id: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sp_keys WHERE account_id = ?1 AND retire_at IS NOT NULL",
        [account_id],
    )?)
}

/// Deletes the keys whose retirement date has passed (maintenance); returns how many.
pub fn purge_retired(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sp_keys WHERE retire_at IS NOT NULL AND retire_at <= ?1",
        [now],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, accounts};

    #[test]
    fn one_active_key_per_account_and_use() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let a = accounts::insert(tx, "acme", "Acme", 0)?;
            let b = accounts::insert(tx, "beta", "Beta", 0)?;
            assert!(insert_active(tx, a, "signing", "k1", "c1", 100, 0)?);
            assert!(!insert_active(tx, a, "signing", "k2", "c2", 100, 0)?);
            assert!(insert_active(tx, a, "encryption", "k3", "c3", 100, 0)?);
            assert!(insert_active(tx, b, "signing", "k4", "c4", 100, 0)?);
            let keys = in_force(tx, a, "signing", 10)?;
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].private_key_enc, "k1");
            // A rotation: the old keys retire at 50, new ones become active.
            assert_eq!(start_retiring(tx, a, 50)?, 2);
            assert!(insert_active(tx, a, "signing", "k5", "c5", 100, 20)?);
            let keys = in_force(tx, a, "signing", 30)?;
            let order: Vec<_> = keys.iter().map(|k| k.private_key_enc.as_str()).collect();
            assert_eq!(order, ["k5", "k1"]);
            assert_eq!(in_force(tx, a, "signing", 50)?.len(), 1);
            assert_eq!(purge_retired(tx, 50)?, 2);
            assert_eq!(in_force(tx, b, "signing", 50)?.len(), 1);
            Ok(())
        })
    }
}
