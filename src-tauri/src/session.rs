//! Signing in and out from the tray: start the core's desktop login, open the system browser,
//! wait for the agent to complete it (loopback callback or deep link), then record the session
//! and tell the sign-in window. The tray and the windows follow the state change
//! ([`Shell::subscribe`]); nothing polls.

use serde::Serialize;
use serde_json::Value;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_opener::OpenerExt;

use crate::prefs::Prefs;
use crate::signin::{self, DesktopSession};
use crate::state::{Session, Shell};
use crate::{autostart, certs, notify, windows};

/// Event sent to the sign-in window when its login finished.
pub const FINISHED_EVENT: &str = "signin-finished";

/// What the sign-in window learns when its login finished.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    ok: bool,
    message: String,
}

/// Starts a sign-in for `username` and opens the browser; the rest happens in the
/// background. Errors (unknown user, no provider…) come back in plain words.
pub async fn start(app: &AppHandle, username: &str) -> Result<(), String> {
    let shell = app.state::<Shell>();
    let state = shell.agent()?.clone();
    let username = username.trim();
    if username.is_empty() {
        return Err("Type your work email address.".into());
    }
    let pending = signin::start(&state, username)
        .await
        .map_err(|e| e.user_text())?;
    tracing::info!(callback = ?signin::callback(), "sign-in started; opening the browser");
    if let Err(e) = app.opener().open_url(pending.url.as_str(), None::<&str>) {
        tracing::warn!(error = %e, "cannot open the browser");
        return Err(format!(
            "The browser could not be opened ({e}). Open this address yourself: {}",
            pending.url
        ));
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let outcome = match pending.wait().await {
            Ok(ds) => signed_in(&app, ds).await,
            Err(e) => Err(e.user_text()),
        };
        if let Err(m) = &outcome {
            notify::refused(&app, m);
        }
        finished(&app, outcome);
    });
    Ok(())
}

/// A completed login (from the waiter or a deep link): remember it (the tray follows), say so,
/// turn Start at login on the first time, and check an admin's certificates.
/// The second value says that Start at login was turned on by this sign-in.
pub async fn signed_in(app: &AppHandle, ds: DesktopSession) -> Result<(Session, bool), String> {
    let shell = app.state::<Shell>();
    // The agent's own token, just minted: its expiry arms the tray's timer.
    let expires_at = shell
        .agent()?
        .auth
        .verify_session(ds.token.expose())
        .map_err(|e| e.user_text())?
        .exp;
    let is_admin = whoami(&shell, &ds)
        .await
        .and_then(|v| v.get("IsAdmin").and_then(Value::as_bool))
        .unwrap_or(false);
    let s = Session {
        token: ds.token,
        username: ds.username,
        display_name: ds.display_name,
        account: ds.account,
        is_admin,
        expires_at,
    };
    tracing::info!(
        admin = is_admin,
        "signed in as {} ({})",
        s.username,
        s.account
    );
    if !shell.sign_in(s.clone()) {
        return Ok((s, false));
    }
    app.state::<Prefs>()
        .update(|v| v.last_username = Some(s.username.clone()));
    let autostart_on = autostart::on_first_sign_in(app);
    notify::signed_in(app, &s, autostart_on);
    if is_admin {
        certs::check_soon(app);
    }
    Ok((s, autostart_on))
}

async fn whoami(shell: &Shell, ds: &DesktopSession) -> Option<Value> {
    let base = shell.base_url().ok()?;
    let r = shell
        .http
        .get(format!("{base}/sso/whoami"))
        .bearer_auth(ds.token.expose())
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// Tells the sign-in window how its login ended; on success it closes shortly after.
fn finished(app: &AppHandle, outcome: Result<(Session, bool), String>) {
    let payload = match &outcome {
        Ok((s, autostart_on)) => Finished {
            ok: true,
            message: format!(
                "Signed in as {} — {}, until {}.{}",
                s.display_name,
                s.account,
                s.until(),
                if *autostart_on {
                    " Amove now starts when you log in (Start at login in the tray menu)."
                } else {
                    ""
                }
            ),
        },
        Err(m) => {
            tracing::warn!("sign-in failed: {m}");
            Finished {
                ok: false,
                message: m.clone(),
            }
        }
    };
    let _ = app.emit_to(windows::View::SignIn.label(), FINISHED_EVENT, payload);
    if outcome.is_ok() {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            // Long enough to read "Signed in"; then the WebKit processes go away.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            windows::close(&app, windows::View::SignIn);
        });
    }
}

/// Signs the tray's session out (revoking it at the agent); the tray follows.
pub async fn sign_out(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let Some(s) = shell.session() else {
        return;
    };
    if let Ok(base) = shell.base_url() {
        let r = shell
            .http
            .post(format!("{base}/sso/logout"))
            .bearer_auth(s.token.expose())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => tracing::info!("signed out {}", s.username),
            Ok(r) => {
                tracing::warn!(status = %r.status(), "sign-out: the agent refused to revoke the session")
            }
            Err(e) => tracing::warn!(error = %e, "sign-out: cannot reach the agent"),
        }
    }
    shell.set_session(None);
}
