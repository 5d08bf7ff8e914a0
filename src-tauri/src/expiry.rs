//! The session's clock in the tray: one timer, armed for the next moment that matters — 10
//! minutes before the session ends (the notification with *Sign in again…*) and the end itself
//! (back to *Not signed in*) — and re-armed on every change of the shell's state. Nothing polls:
//! between those moments the task sleeps in `tokio::time::sleep_until`.

use std::time::Duration;

use tauri::{AppHandle, Manager};
use tokio::time::Instant;

use crate::notify;
use crate::state::Shell;

/// How long before the end the user is warned.
pub const WARN_BEFORE_SECS: i64 = 600;

/// What the timer does next, and when (Unix time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Warn that the session ends soon.
    Warn(i64),
    /// End the session.
    End(i64),
}

/// The next step for a session that expires at `exp`, `now`, given the expiry of the session
/// last warned about (each session is warned once; one that is shorter than the warning time
/// is warned at once).
fn next_step(exp: i64, now: i64, warned: Option<i64>) -> Step {
    if now >= exp || warned == Some(exp) {
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
        let mut warned: Option<i64> = None;
        loop {
            let shell = app.state::<Shell>();
            let plan = match (shell.session(), shell.agent()) {
                (Some(s), Ok(agent)) => {
                    let now = agent.now();
                    let step = next_step(s.expires_at, now, warned);
                    let at = match step {
                        Step::Warn(t) | Step::End(t) => t,
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
                () = tokio::time::sleep_until(deadline) => match step {
                    Step::Warn(_) => {
                        warned = Some(s.expires_at);
                        tracing::info!("the session ends at {}: warning", s.until());
                        let left = shell.agent().map_or(0, |a| s.expires_at - a.now());
                        notify::ending_soon(&app, &s, left);
                    }
                    Step::End(_) => {
                        if shell.expire_session(s.expires_at) {
                            tracing::info!("the session of {} expired", s.username);
                        }
                    }
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_ten_minutes_before_then_ends_at_the_expiry() {
        let exp = 10_000;
        assert_eq!(next_step(exp, 1_000, None), Step::Warn(exp - 600));
        assert_eq!(next_step(exp, 1_000, Some(exp)), Step::End(exp));
        // A session warned about before does not make a new one skip its warning.
        assert_eq!(next_step(exp, 1_000, Some(5_000)), Step::Warn(exp - 600));
    }

    #[test]
    fn a_short_or_late_session_is_warned_at_once_and_an_expired_one_ends_now() {
        let exp = 10_000;
        assert_eq!(next_step(exp, exp - 60, None), Step::Warn(exp - 60));
        assert_eq!(next_step(exp, exp, None), Step::End(exp));
        assert_eq!(next_step(exp, exp + 5, None), Step::End(exp));
    }
}
