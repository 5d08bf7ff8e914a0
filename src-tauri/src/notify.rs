//! Desktop notifications (`tauri-plugin-notification`, `org.freedesktop.Notifications` on
//! Linux): signed in, sign-in refused, the session ends in 10 minutes (with a *Sign in again…*
//! action), a certificate expires soon (admins), the agent could not start. Each says what
//! happened in plain words and, where there is one, what to do.

use tauri::{AppHandle, Runtime};
use tauri_plugin_notification::{Action, ActionType, NotificationExt};

use crate::state::Session;
use crate::windows::{self, View};

/// The action of the "session ends soon" notification.
const SIGN_IN_AGAIN: &str = "sign-in-again";
/// Its action type.
const ENDING: &str = "session-ending";

/// Registers the *Sign in again…* action: it (or a click on the notification that carries it)
/// opens the sign-in window.
pub fn setup(app: &AppHandle) {
    let n = app.notification();
    let ending = ActionType::builder(ENDING)
        .actions(vec![
            Action::builder(SIGN_IN_AGAIN, "Sign in again…").build(),
        ])
        .build();
    if let Err(e) = n.register_action_types(vec![ending]) {
        tracing::warn!(error = %e, "cannot register the notification actions");
    }
    let handle = app.clone();
    let registered = n.on_action(move |performed| {
        let ours = performed
            .notification()
            .and_then(|n| n.action_type_id())
            .is_some_and(|t| t == ENDING);
        tracing::debug!(action = performed.action_id(), ours, "notification action");
        if performed.action_id() == SIGN_IN_AGAIN || ours {
            tracing::info!("notification action: sign in again");
            windows::open(&handle, View::SignIn);
        }
    });
    if let Err(e) = registered {
        tracing::warn!(error = %e, "cannot follow the notification actions");
    }
}

fn show<R: Runtime>(app: &AppHandle<R>, title: &str, body: &str, action_type: Option<&str>) {
    let mut b = app.notification().builder().title(title).body(body);
    if let Some(t) = action_type {
        b = b.action_type_id(t);
    }
    match b.show() {
        Ok(()) => tracing::info!("notification: {title}"),
        Err(e) => tracing::warn!(error = %e, "cannot show the notification {title:?}"),
    }
}

/// Signed in; `autostart_on` says that Start at login was just turned on by this sign-in.
pub fn signed_in(app: &AppHandle, s: &Session, autostart_on: bool) {
    let mut body = format!(
        "Signed in as {} — {}, until {}.",
        s.display_name,
        s.account,
        s.until()
    );
    if autostart_on {
        body.push_str(
            " Amove now starts when you log in; turn it off with Start at login in the tray menu.",
        );
    }
    show(app, "Signed in to Amove", &body, None);
}

/// The sign-in did not succeed; `reason` is the agent's message in plain words.
pub fn refused(app: &AppHandle, reason: &str) {
    show(app, "Sign-in refused", reason, None);
}

/// The session ends at `s.expires_at`, `secs_left` from now (10 minutes, or less for a shorter
/// session).
pub fn ending_soon(app: &AppHandle, s: &Session, secs_left: i64) {
    let minutes = (secs_left + 59).div_euclid(60).max(1);
    let title = if minutes == 1 {
        "Amove: your session ends in a minute".to_string()
    } else {
        format!("Amove: your session ends in {minutes} minutes")
    };
    let body = format!(
        "Signed in as {} until {}. Choose Sign in again… to stay signed in.",
        s.display_name,
        s.until()
    );
    show(app, &title, &body, Some(ENDING));
}

/// Certificates of the admin's account that expire within 30 days (one line each).
pub fn certificates_expiring(app: &AppHandle, lines: &[String]) {
    let body = format!(
        "{} Replace it before then, or sign-ins through it stop working.",
        lines.join(" ")
    );
    let title = if lines.len() == 1 {
        "Amove: a certificate expires soon"
    } else {
        "Amove: certificates expire soon"
    };
    show(app, title, &body, None);
}

/// The agent's server could not start (the port is taken…).
pub fn agent_failed(app: &AppHandle, message: &str) {
    show(app, "Amove could not start", message, None);
}
