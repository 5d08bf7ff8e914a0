//! The audit trail: configuration changes, sign-ins and refusals, token issue and revoke.
//!
//! Anyone can make the agent refuse something (any web page can post garbage to the ACS), so
//! refusals are **coalesced**: a refusal identical to one recorded within the last hour (same
//! account, actor, action and reason) adds to that row's `count` and moves its `last_at`; and
//! anonymous refusals (no account) beyond [`ANONYMOUS_DISTINCT_PER_HOUR`] distinct reasons an
//! hour fold into one row whose reason is dropped. The trail keeps events for the account's
//! retention ([`DEFAULT_RETENTION_DAYS`] unless an admin sets another) and at most
//! [`MAX_ROWS`] rows in all; [`prune`] applies both.

use rusqlite::{Connection, OptionalExtension, params};

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

/// Refusals identical to one within this many seconds are counted on its row.
pub const COALESCE_SECS: i64 = 3600;
/// Distinct anonymous refusal reasons kept per hour; past it they share one row.
pub const ANONYMOUS_DISTINCT_PER_HOUR: i64 = 20;
/// How long events are kept unless an admin sets another retention.
pub const DEFAULT_RETENTION_DAYS: i64 = 180;
/// Most rows the trail holds; past it the oldest go.
pub const MAX_ROWS: i64 = 1_000_000;
/// The reason anonymous refusals share once too many distinct ones came within an hour.
pub const FOLDED_REASON: &str =
    "further anonymous refusals within the hour (reasons dropped: too many distinct ones)";

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Row id (increasing).
    pub id: i64,
    /// When (the first time, for a coalesced refusal).
    pub at: i64,
    /// How many times (coalesced refusals; 1 otherwise).
    pub count: i64,
    /// The last time, for a coalesced refusal.
    pub last_at: Option<i64>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// `ok` or `refused`.
    pub outcome: String,
    /// Details.
    pub detail: String,
}

/// Appends an event (a refusal may be coalesced, see the module documentation).
pub fn record(conn: &Connection, e: &NewEvent, now: i64) -> Result<()> {
    if e.outcome == Outcome::Ok {
        return insert(conn, e, &e.detail, now);
    }
    if coalesce(conn, e, &e.detail, now)? {
        return Ok(());
    }
    // A new anonymous reason: past the hourly cap, it joins the folded row.
    if e.account_id.is_none() {
        let distinct: i64 = conn.query_row(
            "SELECT COUNT(*) FROM audit_events \
             WHERE account_id IS NULL AND outcome = 'refused' AND at > ?1",
            [now - COALESCE_SECS],
            |r| r.get(0),
        )?;
        if distinct >= ANONYMOUS_DISTINCT_PER_HOUR {
            if coalesce(conn, e, FOLDED_REASON, now)? {
                return Ok(());
            }
            return insert(conn, e, FOLDED_REASON, now);
        }
    }
    insert(conn, e, &e.detail, now)
}

/// Adds a refusal to an identical one of the last hour; false when there is none.
fn coalesce(conn: &Connection, e: &NewEvent, detail: &str, now: i64) -> Result<bool> {
    let mut find = conn.prepare_cached(
        "SELECT id FROM audit_events WHERE outcome = 'refused' AND action = ?1 AND actor = ?2 \
         AND detail = ?3 AND account_id IS ?4 AND COALESCE(last_at, at) > ?5 \
         ORDER BY id DESC LIMIT 1",
    )?;
    let id: Option<i64> = find
        .query_row(
            params![e.action, e.actor, detail, e.account_id, now - COALESCE_SECS],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(false) };
    conn.prepare_cached("UPDATE audit_events SET count = count + 1, last_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(true)
}

fn insert(conn: &Connection, e: &NewEvent, detail: &str, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_events (account_id, at, actor, action, outcome, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            e.account_id,
            now,
            e.actor,
            e.action,
            e.outcome.as_str(),
            detail
        ],
    )?;
    Ok(())
}

/// Applies the retention (each account's, [`DEFAULT_RETENTION_DAYS`] for events of no account)
/// and the size bound; returns how many rows went.
pub fn prune(conn: &Connection, now: i64) -> Result<usize> {
    let day = 86_400;
    let mut gone = conn.execute(
        "DELETE FROM audit_events WHERE COALESCE(last_at, at) < ?1 - ?2 * COALESCE(\
           (SELECT audit_retention_days FROM accounts a WHERE a.id = audit_events.account_id), \
           ?3)",
        params![now, day, DEFAULT_RETENTION_DAYS],
    )?;
    gone += conn.execute(
        "DELETE FROM audit_events WHERE id <= \
           (SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        [MAX_ROWS],
    )?;
    Ok(gone)
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
        "SELECT id, at, actor, action, outcome, detail, count, last_at FROM audit_events \
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
            count: r.get(6)?,
            last_at: r.get(7)?,
        })
    })?;
    Ok((rows.collect::<rusqlite::Result<_>>()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, accounts};

    fn rows(tx: &Connection) -> Result<i64> {
        Ok(tx.query_row("SELECT COUNT(*) FROM audit_events", [], |r| r.get(0))?)
    }

    #[test]
    fn identical_refusals_share_a_row_with_their_count() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let refused = NewEvent::refused(Some(aid), "ann@acme.test", "signin", "wrong code");
            for t in 0..50 {
                record(tx, &refused, 1_000 + t)?;
            }
            // A success is never folded.
            record(
                tx,
                &NewEvent::ok(Some(aid), "ann@acme.test", "signin", "ok"),
                1_100,
            )?;
            record(
                tx,
                &NewEvent::ok(Some(aid), "ann@acme.test", "signin", "ok"),
                1_101,
            )?;
            let (events, total) = page(tx, aid, 1, 10)?;
            assert_eq!(total, 3);
            let r = events.iter().find(|e| e.outcome == "refused").unwrap();
            assert_eq!((r.count, r.at, r.last_at), (50, 1_000, Some(1_049)));
            // An hour after the last one, a new row starts.
            record(tx, &refused, 1_049 + COALESCE_SECS + 1)?;
            assert_eq!(rows(tx)?, 4);
            Ok(())
        })
    }

    #[test]
    fn a_flood_of_anonymous_refusals_adds_a_handful_of_rows() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            for i in 0..10_000 {
                let detail = format!("the ACS takes an HTML form post, not 'x-{i}'");
                record(
                    tx,
                    &NewEvent::refused(None, "anonymous", "signin", detail),
                    5_000,
                )?;
            }
            let n = rows(tx)?;
            assert!(n <= ANONYMOUS_DISTINCT_PER_HOUR + 1, "{n} rows");
            let folded: i64 = tx.query_row(
                "SELECT count FROM audit_events WHERE detail = ?1",
                [FOLDED_REASON],
                |r| r.get(0),
            )?;
            assert_eq!(folded + ANONYMOUS_DISTINCT_PER_HOUR, 10_000);
            Ok(())
        })
    }

    #[test]
    fn prune_applies_each_accounts_retention() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let a = accounts::insert(tx, "a", "A", 0)?;
            let b = accounts::insert(tx, "b", "B", 0)?;
            accounts::set_audit_retention(tx, b, Some(1))?;
            let day = 86_400;
            let now = 400 * day;
            for (aid, age) in [(a, 10), (a, 200), (b, 0), (b, 2)] {
                record(tx, &NewEvent::ok(Some(aid), "x", "y", "z"), now - age * day)?;
            }
            assert_eq!(prune(tx, now)?, 2);
            assert_eq!(page(tx, a, 1, 10)?.1, 1);
            assert_eq!(page(tx, b, 1, 10)?.1, 1);
            Ok(())
        })
    }
}
