//! The session rules an account is under: how long after its sign-in a session may be
//! renewed (the absolute session lifetime). Read through this one function, so a per-account
//! setting can take over from the agent-wide default in one place.

use crate::error::Result;
use crate::state::AppState;

/// The absolute session lifetime of `account_id`'s sessions, in seconds: the agent-wide
/// `AMOVE_AGENT_SESSION_MAX_DAYS` (default 30 days).
pub async fn absolute_lifetime_secs(state: &AppState, _account_id: i64) -> Result<i64> {
    Ok(i64::try_from(state.settings.session_max_age.as_secs()).unwrap_or(i64::MAX))
}
