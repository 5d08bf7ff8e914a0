//! The account's allow-list of extra https callback URLs (`callback_urls`).

use rusqlite::{Connection, params};

use crate::error::Result;

/// The account's allowed URLs, sorted.
pub fn list(conn: &Connection, account_id: i64) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT url FROM callback_urls WHERE account_id = ?1 ORDER BY url")?;
    let rows = stmt.query_map([account_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// True when `url` (already normalised) is on the account's list.
pub fn contains(conn: &Connection, account_id: i64, url: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM callback_urls WHERE account_id = ?1 AND url = ?2",
        params![account_id, url],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Replaces the account's list with `urls` (validated and normalised by the caller).
pub fn replace(conn: &Connection, account_id: i64, urls: &[String]) -> Result<()> {
    conn.execute(
        "DELETE FROM callback_urls WHERE account_id = ?1",
        [account_id],
    )?;
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO callback_urls (account_id, url) VALUES (?1, ?2)")?;
    for u in urls {
        stmt.execute(params![account_id, u])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, accounts};

    #[test]
    fn replaces_the_whole_list() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            replace(
                tx,
                aid,
                &["https://b.test/cb".into(), "https://a.test/cb".into()],
            )?;
            assert_eq!(
                list(tx, aid)?,
                vec!["https://a.test/cb", "https://b.test/cb"]
            );
            replace(tx, aid, &["https://c.test/cb".into()])?;
            assert!(contains(tx, aid, "https://c.test/cb")?);
            assert!(!contains(tx, aid, "https://a.test/cb")?);
            Ok(())
        })
    }
}
