//! The audit trail: configuration changes, sign-ins and refusals, token issue and revoke.

use rusqlite::{Connection, params};

use crate::error::Result;

/// Whether the audited action happened or was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It was refused (the detail says why).
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
        }
    }
}

/// An event to record. Details never carry secrets.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The account concerned, when known.
    pub account_id: Option<i64>,
    /// Who acted: a user's email, or `system`.
    pub actor: String,
    /// What was done, e.g. `idp.okta.create`, `token.issue`, `signin`.
    pub action: String,
    /// Whether it happened.
    pub outcome: Outcome,
    /// Anything else worth knowing (the reason of a refusal).
    pub detail: String,
}

impl NewEvent {
    /// A successful action.
    pub fn ok(
        account_id: Option<i64>,
        actor: &str,
        action: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            account_id,
            actor: actor.to_string(),
            action: action.to_string(),
            outcome: Outcome::Ok,
            detail: detail.into(),
        }
    }
    /// A refused action.
    pub fn refused(
        account_id: Option<i64>,
        actor: &str,
        action: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            outcome: Outcome::Refused,
            ..Self::ok(account_id, actor, action, detail)
        }
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Row id (increasing).
    pub id: i64,
    /// When.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// `ok` or `refused`.
    pub outcome: String,
    /// Details.
    pub detail: String,
}

/// Appends an event.
pub fn record(conn: &Connection, e: &NewEvent, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_events (account_id, at, actor, action, outcome, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            e.account_id,
            now,
            e.actor,
            e.action,
            e.outcome.as_str(),
            e.detail
        ],
    )?;
    Ok(())
}

/// One page of an account's events, newest first, and the total count.
pub fn page(
    conn: &Connection,
    account_id: i64,
    page: u32,
    page_size: u32,
) -> Result<(Vec<Event>, i64)> {
    let total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM audit_events WHERE account_id = ?1",
        [account_id],
        |r| r.get(0),
    )?;
    let offset = i64::from(page.saturating_sub(1)) * i64::from(page_size);
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, outcome, detail FROM audit_events \
         WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![account_id, page_size, offset], |r| {
        Ok(Event {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            outcome: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok((rows.collect::<rusqlite::Result<_>>()?, total))
}
