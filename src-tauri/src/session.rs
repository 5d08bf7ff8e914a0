//! Signing in and out from the tray: start the core's desktop login, open the system browser,
//! wait for the agent to complete it (loopback callback or deep link), then record the session
//! and tell the sign-in window. The tray and the windows follow the state change
//! ([`Shell::subscribe`]); nothing polls.

use serde::Serialize;
use serde_json::Value;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_opener::OpenerExt;

use crate::keep::Keep;
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
/// `force_authn`: *Sign in as someone else…* (the IdP asks for credentials again).
pub async fn start(app: &AppHandle, username: &str, force_authn: bool) -> Result<(), String> {
    let shell = app.state::<Shell>();
    let state = shell.agent()?.clone();
    let username = username.trim();
    if username.is_empty() {
        return Err("Type your work email address.".into());
    }
    let pending = signin::start(&state, username, force_authn)
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
    let claims = shell
        .agent()?
        .auth
        .verify_session(ds.token.expose())
        .map_err(|e| e.user_text())?;
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
        expires_at: claims.exp,
        issued_at: claims.iat,
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
    if let Some(keep) = Keep::of(&shell) {
        keep.save(&s);
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

/// Signs the tray's session out: revokes it at the agent and, when the IdP supports it, opens
/// its logout page (`LogoutUrl`) in the browser so the IdP's session ends too. The tray follows.
pub async fn sign_out(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let Some(s) = shell.session() else {
        return;
    };
    if let Some(keep) = Keep::of(&shell) {
        keep.clear();
    }
    if let Ok(base) = shell.base_url() {
        let r = shell
            .http
            .post(format!("{base}/sso/logout"))
            .bearer_auth(s.token.expose())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                tracing::info!("signed out {}", s.username);
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                if let Some(url) = answer.get("LogoutUrl").and_then(Value::as_str) {
                    tracing::info!("opening the identity provider's sign-out page");
                    if let Err(e) = app.opener().open_url(url, None::<&str>) {
                        tracing::warn!(error = %e, "cannot open the IdP's sign-out page");
                    }
                }
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "sign-out: the agent refused to revoke the session")
            }
            Err(e) => tracing::warn!(error = %e, "sign-out: cannot reach the agent"),
        }
    }
    shell.set_session(None);
}

/// How a renewal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// A new session replaced the old one.
    Renewed,
    /// The agent will not renew it (401 `TOKEN`: no refresh token, refused by the IdP, the user
    /// deactivated…): sign in again. The old session may still be valid until it expires.
    Refused,
    /// The session is dead already (revoked elsewhere): the tray was signed out.
    Revoked,
    /// Could not be tried now (the IdP unreachable…): worth another try.
    Failed,
}

/// Renews `s` silently through the IdP's refresh token (`/sso/refresh`'s service).
pub async fn renew(app: &AppHandle, s: &Session) -> Renewal {
    let shell = app.state::<Shell>();
    let Ok(agent) = shell.agent().cloned() else {
        return Renewal::Failed;
    };
    match signin::refresh(&agent, &s.token).await {
        Ok(token) => {
            let Ok(claims) = agent.auth.verify_session(token.expose()) else {
                return Renewal::Failed;
            };
            let renewed = Session {
                token,
                expires_at: claims.exp,
                issued_at: claims.iat,
                ..s.clone()
            };
            tracing::info!(
                "session renewed for {} until {}",
                s.username,
                renewed.until()
            );
            if let Some(keep) = Keep::of(&shell) {
                keep.save(&renewed);
            }
            shell.sign_in(renewed);
            Renewal::Renewed
        }
        Err(amove_agent::Error::Token(m)) => {
            tracing::info!("the session cannot be renewed: {m}");
            if let Some(keep) = Keep::of(&shell) {
                keep.clear();
            }
            if check_alive(app, s).await {
                Renewal::Refused
            } else {
                Renewal::Revoked
            }
        }
        Err(e) => {
            tracing::warn!("the session could not be renewed now: {}", e.user_text());
            Renewal::Failed
        }
    }
}

/// Whether `s` still grants access (not revoked, the user active); a dead session signs the
/// tray out at once.
pub async fn check_alive(app: &AppHandle, s: &Session) -> bool {
    let shell = app.state::<Shell>();
    let Ok(agent) = shell.agent().cloned() else {
        return true;
    };
    if agent.auth.authenticate(s.token.expose()).await.is_ok() {
        return true;
    }
    tracing::info!("the session of {} was ended elsewhere", s.username);
    if let Some(keep) = Keep::of(&shell) {
        keep.clear();
    }
    if shell
        .session()
        .is_some_and(|c| c.token.expose() == s.token.expose())
    {
        shell.set_session(None);
    }
    false
}

/// After a start: the session kept by the last run, if any. A valid one is back in the tray at
/// once; an expired one is renewed first (the refresh token outlives the JWT); a revoked or
/// unrenewable one is forgotten.
pub async fn restore(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let (Some(keep), Ok(agent)) = (Keep::of(&shell), shell.agent().cloned()) else {
        return;
    };
    let Some(s) = keep.load() else {
        return;
    };
    if agent.now() < s.expires_at {
        if agent.auth.authenticate(s.token.expose()).await.is_err() {
            tracing::info!("the kept session was ended elsewhere; forgotten");
            keep.clear();
            return;
        }
        tracing::info!("restored the session of {}", s.username);
        shell.sign_in(s);
        return;
    }
    match renew(app, &s).await {
        Renewal::Renewed => tracing::info!("restored the session of {} (renewed)", s.username),
        _ => {
            tracing::info!("the kept session has expired and cannot be renewed; forgotten");
            keep.clear();
        }
    }
}
