//! Accounts: the tenant an admin configures, identified by a short unique identifier.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};
use crate::store::is_unique_violation;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Row id.
    pub id: i64,
    /// The short unique identifier (`mycompany`).
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Lifetime of new access tokens from the token exchange; `None` = until revoked.
    pub access_token_ttl_secs: Option<i64>,
    /// How many days the audit trail keeps events (`None`: the default).
    pub audit_retention_days: Option<i64>,
}

const COLUMNS: &str = "id, identifier, name, access_token_ttl_secs, audit_retention_days";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        identifier: r.get(1)?,
        name: r.get(2)?,
        access_token_ttl_secs: r.get(3)?,
        audit_retention_days: r.get(4)?,
    })
}

/// Creates an account; `DUPLICATE` when the identifier is taken.
pub fn insert(conn: &Connection, identifier: &str, name: &str, now: i64) -> Result<i64> {
    match conn.execute(
        "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, ?2, ?3)",
        params![identifier, name, now],
    ) {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(e) if is_unique_violation(&e) => Err(Error::Duplicate(format!(
            "an account with identifier '{identifier}' already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The account with this identifier (case-insensitive).
pub fn by_identifier(conn: &Connection, identifier: &str) -> Result<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM accounts WHERE identifier = ?1"),
            [identifier],
            from_row,
        )
        .optional()?)
}

/// The account with this id.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// Number of accounts (zero means the agent has not been set up yet).
pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?)
}

/// Sets how many days the audit trail keeps the account's events (`None`: the default).
pub fn set_audit_retention(conn: &Connection, id: i64, days: Option<i64>) -> Result<()> {
    conn.execute(
        "UPDATE accounts SET audit_retention_days = ?2 WHERE id = ?1",
        params![id, days],
    )?;
    Ok(())
}

/// Sets the account's display name.
pub fn set_name(conn: &Connection, id: i64, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE accounts SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    Ok(())
}

/// Sets the lifetime of access tokens issued from now on (`None`: until revoked).
pub fn set_access_token_ttl(conn: &Connection, id: i64, ttl: Option<i64>) -> Result<()> {
    conn.execute(
        "UPDATE accounts SET access_token_ttl_secs = ?2 WHERE id = ?1",
        params![id, ttl],
    )?;
    Ok(())
}
