//! The session's clock in the tray: one timer, armed for the next moment that matters, and
//! re-armed on every change of the shell's state. Nothing polls: between those moments the task
//! sleeps in `tokio::time::sleep_until`.
//!
//! - Some minutes before the end (a fifth of the session's lifetime, at most 15 minutes) the
//!   session is **renewed** silently through the IdP's refresh token (`/sso/refresh`); a renewed
//!   session re-arms the timer for its own end.
//! - Only when renewal is refused (SAML and password sessions, no refresh token, the IdP or an
//!   admin said no): 10 minutes before the end the *session ends soon* notification (at once for a
//!   shorter rest), and at the end the tray goes back to *Not signed in*.
//! - A session revoked elsewhere is noticed at the renewal: the tray is signed out then.

use std::time::Duration;

use tauri::{AppHandle, Manager};
use tokio::time::Instant;

use crate::keep::Keep;
use crate::notify;
use crate::session::{self, Renewal};
use crate::state::{Session, Shell};

/// How long before the end the user is warned (when the session cannot be renewed).
pub const WARN_BEFORE_SECS: i64 = 600;
/// At most this long before the end a renewal is tried.
pub const RENEW_BEFORE_SECS: i64 = 900;
/// A renewal that could not be tried (the IdP unreachable) is tried again this much later.
const RETRY_SECS: i64 = 30;

/// What the timer does next, and when (Unix time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Renew the session.
    Renew(i64),
    /// Warn that the session ends soon.
    Warn(i64),
    /// End the session.
    End(i64),
}

/// What the timer has learnt about the current session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// The session (by its expiry) whose renewal was refused.
    refused: Option<i64>,
    /// The session last warned about.
    warned: Option<i64>,
    /// Try the renewal again no earlier than this.
    retry_at: Option<i64>,
}

/// When a session of `iat`..`exp` is renewed.
fn renew_at(iat: i64, exp: i64) -> i64 {
    exp - ((exp - iat) / 5).clamp(0, RENEW_BEFORE_SECS)
}

/// The next step for a session issued at `iat` that expires at `exp`, at `now`.
fn next_step(iat: i64, exp: i64, now: i64, seen: Seen) -> Step {
    if seen.refused != Some(exp) {
        let at = renew_at(iat, exp).max(seen.retry_at.unwrap_or(0));
        return Step::Renew(at.max(now));
    }
    if now >= exp || seen.warned == Some(exp) {
        Step::End(exp)
    } else {
        Step::Warn((exp - WARN_BEFORE_SECS).max(now))
    }
}

/// Starts the timer task (for as long as the app runs).
pub fn follow(app: &AppHandle) {
    let app = app.clone();
    let mut changed = app.state::<Shell>().subscribe();
    tauri::async_runtime::spawn(async move {
        let mut seen = Seen::default();
        loop {
            let shell = app.state::<Shell>();
            let plan = match (shell.session(), shell.agent()) {
                (Some(s), Ok(agent)) => {
                    let now = agent.now();
                    let step = next_step(s.issued_at, s.expires_at, now, seen);
                    let at = match step {
                        Step::Renew(t) | Step::Warn(t) | Step::End(t) => t,
                    };
                    let wait = Duration::from_secs(u64::try_from(at - now).unwrap_or(0));
                    Some((s, step, Instant::now() + wait))
                }
                _ => None,
            };
            let Some((s, step, deadline)) = plan else {
                // Nothing to time: wait for a sign-in.
                if changed.changed().await.is_err() {
                    return;
                }
                continue;
            };
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(deadline) => act(&app, &s, step, &mut seen).await,
            }
        }
    });
}

async fn act(app: &AppHandle, s: &Session, step: Step, seen: &mut Seen) {
    let shell = app.state::<Shell>();
    let now = || shell.agent().map_or(0, |a| a.now());
    match step {
        Step::Renew(_) => match session::renew(app, s).await {
            Renewal::Renewed | Renewal::Revoked => {}
            Renewal::Refused => seen.refused = Some(s.expires_at),
            Renewal::Failed => {
                let again = now() + RETRY_SECS;
                if again < s.expires_at {
                    seen.retry_at = Some(again);
                } else {
                    seen.refused = Some(s.expires_at);
                }
            }
        },
        Step::Warn(_) => {
            seen.warned = Some(s.expires_at);
            tracing::info!("the session ends at {}: warning", s.until());
            notify::ending_soon(app, s, s.expires_at - now());
        }
        Step::End(_) => {
            if shell.expire_session(s.expires_at) {
                tracing::info!("the session of {} expired", s.username);
                if let Some(keep) = Keep::of(&shell) {
                    keep.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IAT: i64 = 10_000;
    const EXP: i64 = IAT + 8 * 3600;

    #[test]
    fn a_session_is_renewed_before_its_end_a_fifth_of_its_life_at_most_fifteen_minutes() {
        assert_eq!(
            next_step(IAT, EXP, IAT + 5, Seen::default()),
            Step::Renew(EXP - 900)
        );
        // A 50 s session: 10 s before its end.
        assert_eq!(next_step(0, 50, 5, Seen::default()), Step::Renew(40));
        // Late (after a restart, or a sleeping machine): at once, even past the end.
        assert_eq!(
            next_step(IAT, EXP, EXP + 60, Seen::default()),
            Step::Renew(EXP + 60)
        );
        // Could not be tried: again no earlier than the retry.
        let seen = Seen {
            retry_at: Some(EXP - 100),
            ..Seen::default()
        };
        assert_eq!(next_step(IAT, EXP, EXP - 130, seen), Step::Renew(EXP - 100));
    }

    #[test]
    fn a_refused_renewal_warns_ten_minutes_before_then_ends_at_the_expiry() {
        let refused = Seen {
            refused: Some(EXP),
            ..Seen::default()
        };
        assert_eq!(next_step(IAT, EXP, IAT, refused), Step::Warn(EXP - 600));
        let warned = Seen {
            warned: Some(EXP),
            ..refused
        };
        assert_eq!(next_step(IAT, EXP, IAT, warned), Step::End(EXP));
        // Refused for an earlier session: a new one is renewed as usual.
        let old = Seen {
            refused: Some(EXP - 1),
            ..Seen::default()
        };
        assert_eq!(next_step(IAT, EXP, IAT, old), Step::Renew(EXP - 900));
    }

    #[test]
    fn a_short_or_late_refused_session_is_warned_at_once_and_an_expired_one_ends_now() {
        let refused = Seen {
            refused: Some(EXP),
            ..Seen::default()
        };
        assert_eq!(next_step(IAT, EXP, EXP - 60, refused), Step::Warn(EXP - 60));
        assert_eq!(next_step(IAT, EXP, EXP, refused), Step::End(EXP));
        assert_eq!(next_step(IAT, EXP, EXP + 5, refused), Step::End(EXP));
    }
}
