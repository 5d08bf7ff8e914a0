//! Session JWTs revoked before their expiry (sign-out).

use rusqlite::{Connection, params};

use crate::error::Result;

/// Records a revoked session id until `expires_at`.
pub fn revoke(conn: &Connection, jti: &str, expires_at: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO revoked_sessions (jti, expires_at) VALUES (?1, ?2)",
        params![jti, expires_at],
    )?;
    Ok(())
}

/// Session ids revoked and not yet expired at `now`, with their expiry.
pub fn live(conn: &Connection, now: i64) -> Result<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare("SELECT jti, expires_at FROM revoked_sessions WHERE expires_at > ?1")?;
    let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forgets revocations of sessions that have expired anyway.
pub fn purge(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?1", [now])?)
}
