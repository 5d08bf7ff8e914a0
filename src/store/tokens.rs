//! Long-lived access tokens from the token exchange API, stored as SHA-256 hashes.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Result;

/// An access token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Row id (the API's `Id`).
    pub id: i64,
    /// Owning account.
    pub account_id: i64,
    /// The user it acts as.
    pub user_id: i64,
    /// That user's email.
    pub user_email: String,
    /// `password` or `urn:ssocircle:api:sessiontoken`.
    pub grant_type: String,
    /// The scope asked for (e.g. `SAML`), possibly empty.
    pub scope: String,
    /// Issued at.
    pub created_at: i64,
    /// Expiry, if the account sets one.
    pub expires_at: Option<i64>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<i64>,
    /// When revoked.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "t.id, t.account_id, t.user_id, u.email, t.grant_type, t.scope, \
     t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AccessToken> {
    Ok(AccessToken {
        id: r.get(0)?,
        account_id: r.get(1)?,
        user_id: r.get(2)?,
        user_email: r.get(3)?,
        grant_type: r.get(4)?,
        scope: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        last_used_at: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewAccessToken<'a> {
    /// Owning account.
    pub account_id: i64,
    /// The user it acts as.
    pub user_id: i64,
    /// SHA-256 of the token, hex.
    pub token_hash: &'a str,
    /// The grant that produced it.
    pub grant_type: &'a str,
    /// The scope asked for.
    pub scope: &'a str,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// The session it was minted from (session-token grant), revoked with it.
    pub session_jti: Option<&'a str>,
}

/// Stores a token and returns its id.
pub fn insert(conn: &Connection, t: &NewAccessToken<'_>, now: i64) -> Result<i64> {
    conn.execute(
        "INSERT INTO access_tokens (account_id, user_id, token_hash, grant_type, scope, \
         created_at, expires_at, session_jti) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            t.account_id,
            t.user_id,
            t.token_hash,
            t.grant_type,
            t.scope,
            now,
            t.expires_at,
            t.session_jti
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The token with this hash.
pub fn by_hash(conn: &Connection, token_hash: &str) -> Result<Option<AccessToken>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM access_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ?1"
    ))?;
    Ok(stmt.query_row([token_hash], from_row).optional()?)
}

/// The account's tokens (only `user_id`'s when given), newest first.
pub fn list(conn: &Connection, account_id: i64, user_id: Option<i64>) -> Result<Vec<AccessToken>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM access_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.account_id = ?1 AND (?2 IS NULL OR t.user_id = ?2) ORDER BY t.id DESC"
    ))?;
    let rows = stmt.query_map(params![account_id, user_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The account's token with this id.
pub fn get(conn: &Connection, account_id: i64, id: i64) -> Result<Option<AccessToken>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM access_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.account_id = ?1 AND t.id = ?2"
    ))?;
    Ok(stmt
        .query_row(params![account_id, id], from_row)
        .optional()?)
}

/// Marks the token revoked (keeps the first revocation time).
pub fn revoke(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Revokes every unrevoked access token minted from session `jti`; returns their ids.
pub fn revoke_minted_by(conn: &Connection, jti: &str, now: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE access_tokens SET revoked_at = ?2 \
         WHERE session_jti = ?1 AND revoked_at IS NULL RETURNING id",
    )?;
    let ids = stmt.query_map(params![jti, now], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

/// The access tokens minted from session `old_jti` now belong to its renewal `new_jti`
/// (signing out of the renewed session revokes them).
pub fn move_minted(conn: &Connection, old_jti: &str, new_jti: &str) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE access_tokens SET session_jti = ?2 WHERE session_jti = ?1",
        params![old_jti, new_jti],
    )?)
}

/// Records a use of the token.
pub fn touch(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE access_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}
