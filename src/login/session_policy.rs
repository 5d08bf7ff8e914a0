//! The session rules an account is under: how long after its sign-in a session may be
//! renewed (the absolute session lifetime). Read through this one function.

use crate::error::Result;
use crate::login::access;
use crate::state::AppState;

/// The absolute session lifetime of `account_id`'s sessions, in seconds: the account's
/// `SessionLifetimeDays` (admin- or policy-set, 30 days by default), capped by the agent-wide
/// ceiling `AMOVE_AGENT_SESSION_MAX_DAYS` (default 365, the largest an account may set), with
/// which a machine's operator can shorten every account's sessions.
pub async fn absolute_lifetime_secs(state: &AppState, account_id: i64) -> Result<i64> {
    let ceiling = i64::try_from(state.settings.session_max_age.as_secs()).unwrap_or(i64::MAX);
    Ok(access::session_lifetime_secs(state, account_id)
        .await?
        .min(ceiling))
}
