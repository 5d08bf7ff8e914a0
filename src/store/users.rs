//! Users of an account: email as username, role, status, optional local password.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};
use crate::store::is_unique_violation;

/// What a user may do in its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created the account; an admin.
    Owner,
    /// Configures the account.
    Admin,
    /// Signs in; configures nothing.
    User,
}

impl Role {
    /// Stored and JWT form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
    /// Owners and admins configure the account.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// May sign in.
    Active,
    /// Refused everywhere.
    Inactive,
}

impl Status {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
        }
    }
}

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Owning account.
    pub account_id: i64,
    /// Username (an email, lower-cased).
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Role.
    pub role: Role,
    /// Status.
    pub status: Status,
    /// argon2id PHC string; `None` for SSO-only users.
    pub password_hash: Option<String>,
}

impl User {
    /// "First Last", or the email when no name is known.
    pub fn display_name(&self) -> String {
        let n = format!("{} {}", self.first_name, self.last_name);
        let n = n.trim();
        if n.is_empty() {
            self.email.clone()
        } else {
            n.to_string()
        }
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Owning account.
    pub account_id: i64,
    /// Email, already validated and lower-cased.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string, if the user has a local password.
    pub password_hash: Option<String>,
}

const COLUMNS: &str = "id, account_id, email, first_name, last_name, role, status, password_hash";

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(5)?;
    let status: String = r.get(6)?;
    Ok(User {
        id: r.get(0)?,
        account_id: r.get(1)?,
        email: r.get(2)?,
        first_name: r.get(3)?,
        last_name: r.get(4)?,
        // The CHECK constraints guarantee one of the known values.
        role: Role::parse(&role).unwrap_or(Role::User),
        status: if status == "active" {
            Status::Active
        } else {
            Status::Inactive
        },
        password_hash: r.get(7)?,
    })
}

/// Creates a user; `DUPLICATE` when the email is taken (emails are unique across accounts,
/// so a username always resolves to one account).
pub fn insert(conn: &Connection, u: &NewUser, now: i64) -> Result<i64> {
    match conn.execute(
        "INSERT INTO users (account_id, email, first_name, last_name, role, status, password_hash, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?7)",
        params![
            u.account_id,
            u.email,
            u.first_name,
            u.last_name,
            u.role.as_str(),
            u.password_hash,
            now
        ],
    ) {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(e) if is_unique_violation(&e) => Err(Error::Duplicate(format!(
            "a user with email '{}' already exists",
            u.email
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The user with this id.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// The user with this id and its account's identifier, in one query.
pub fn with_account(conn: &Connection, id: i64) -> Result<Option<(User, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.account_id, u.email, u.first_name, u.last_name, u.role, u.status, \
         u.password_hash, a.identifier FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = ?1",
    )?;
    Ok(stmt
        .query_row([id], |r| Ok((from_row(r)?, r.get(8)?)))
        .optional()?)
}

/// The user with this email, in any account (case-insensitive).
pub fn by_email(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE email = ?1"),
            [email],
            from_row,
        )
        .optional()?)
}

/// Users of an account whose email's local part is `local` (for `userid@account` names).
pub fn by_local_part(conn: &Connection, account_id: i64, local: &str) -> Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE account_id = ?1 \
         AND substr(email, 1, instr(email, '@') - 1) = ?2 COLLATE NOCASE"
    ))?;
    let rows = stmt.query_map(params![account_id, local], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every user of an account, by email.
pub fn list(conn: &Connection, account_id: i64) -> Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE account_id = ?1 ORDER BY email"
    ))?;
    let rows = stmt.query_map([account_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sets a user's status.
pub fn set_status(conn: &Connection, id: i64, status: Status, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE users SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, status.as_str(), now],
    )? == 1)
}

/// Sets a user's role; `by_rule` records that the AdminGroups rule set it (only such roles
/// does the rule take back).
pub fn set_role(conn: &Connection, id: i64, role: Role, by_rule: bool, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE users SET role = ?2, role_source = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, role.as_str(), by_rule.then_some("admin_groups"), now],
    )? == 1)
}

/// Whether the AdminGroups rule made the user's role what it is.
pub fn role_by_rule(conn: &Connection, id: i64) -> Result<bool> {
    let source: Option<Option<String>> = conn
        .query_row("SELECT role_source FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(source.flatten().as_deref() == Some("admin_groups"))
}
