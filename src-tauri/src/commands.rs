//! IPC commands of the app's windows. The pages call the agent's HTTP API through
//! [`api`] (the same requests the browser UI sends; no CORS needed) and use the rest for
//! what only the shell can do: start a desktop sign-in, create the first account.

use std::collections::HashMap;

use amove_agent::bootstrap;
use amove_agent::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tauri::{AppHandle, State, WebviewWindow};
use tauri_plugin_opener::OpenerExt;

use crate::prefs::Prefs;
use crate::session;
use crate::state::Shell;

/// What a window needs to draw itself.
#[tauri::command]
pub async fn app_state(
    window: WebviewWindow,
    shell: State<'_, Shell>,
    prefs: State<'_, Prefs>,
) -> Result<Value, String> {
    let label = window.label().to_string();
    if let Some(ms) = shell.take_opened(&label) {
        // The page has loaded and asks what to show: the window is visible.
        tracing::info!("window {label} ready in {ms} ms");
    }
    let session = shell.session().map(|s| {
        json!({ "username": s.username, "name": s.display_name, "account": s.account,
                "isAdmin": s.is_admin, "until": s.until() })
    });
    Ok(json!({
        "view": label,
        "error": shell.start_error(),
        "needsSetup": shell.needs_setup(),
        "session": session,
        "agentUrl": shell.agent().ok().map(|s| s.base_url()),
        "lastUsername": prefs.get().last_username,
        "expired": shell.session_expired(),
        "forceAuthn": label == "signin" && shell.force_authn(),
    }))
}

/// A request of a page to the agent's API.
#[derive(Debug, Deserialize)]
pub struct ApiRequest {
    method: String,
    path: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    body: Option<String>,
}

/// The agent's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResponse {
    status: u16,
    error_code: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// Whether a page may send `path` to the agent: `/health` or under `/sso/`, with a path of
/// plain segments only — no `.` or `..` segment, no empty one, no percent-encoding or
/// backslash (so no encoded form of either), no fragment — and any query. API paths never need
/// more, and nothing else can be normalised by someone along the way into another path.
fn is_api_path(path: &str) -> bool {
    let (p, _query) = path.split_once('?').unwrap_or((path, ""));
    if path.contains('#') {
        return false;
    }
    let plain = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'));
    let segments_ok = p.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
    });
    plain && segments_ok && (p == "/health" || p.starts_with("/sso/"))
}

/// Forwards a page's request to the agent's API. Without an `Authorization` header the
/// tray's session is used, so a signed-in admin needs no second sign-in.
#[tauri::command]
pub async fn api(
    app: AppHandle,
    shell: State<'_, Shell>,
    request: ApiRequest,
) -> Result<ApiResponse, String> {
    let base = shell.base_url()?;
    if !is_api_path(&request.path) {
        return Err(format!("not an API path: {}", request.path));
    }
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("not an HTTP method: {}", request.method))?;
    let mut req = shell
        .http
        .request(method, format!("{base}{}", request.path));
    let mut has_auth = false;
    for (k, v) in &request.headers {
        if k.eq_ignore_ascii_case("authorization") {
            has_auth = true;
            req = req.header(reqwest::header::AUTHORIZATION, v);
        } else if k.eq_ignore_ascii_case("content-type") {
            req = req.header(reqwest::header::CONTENT_TYPE, v);
        }
    }
    let tray_session = if has_auth { None } else { shell.session() };
    if let Some(s) = &tray_session {
        req = req.bearer_auth(s.token.expose());
    }
    if let Some(body) = request.body {
        req = req.body(body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the agent: {e}"))?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (error_code, content_type) = (header("error-code"), header("content-type"));
    let status = resp.status().as_u16();
    if status == 401
        && let Some(s) = tray_session
    {
        // The tray's session was refused: revoked elsewhere or the user deactivated? Then the
        // tray must not go on saying "Signed in".
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            session::check_alive(&app, &s).await;
        });
    }
    let body = resp
        .text()
        .await
        .map_err(|e| format!("cannot read the agent's answer: {e}"))?;
    Ok(ApiResponse {
        status,
        error_code,
        content_type,
        body,
    })
}

/// Starts a sign-in: the browser opens; the sign-in window hears `signin-finished`.
/// `force_authn`: the window was opened by *Sign in as someone else…*.
#[tauri::command]
pub async fn start_sign_in(
    app: AppHandle,
    username: String,
    force_authn: Option<bool>,
) -> Result<(), String> {
    session::start(&app, &username, force_authn.unwrap_or(false)).await
}

/// Signs the tray's session out.
#[tauri::command]
pub async fn sign_out(app: AppHandle) -> Result<(), String> {
    session::sign_out(&app).await;
    Ok(())
}

/// The first-run screen: creates the account and its owner admin (the core's
/// `bootstrap::init_account`, as `amove-agent init`). Refused once any account exists, so
/// this is never a way around the admin checks.
#[tauri::command]
pub async fn first_run_setup(
    shell: State<'_, Shell>,
    account: String,
    account_name: Option<String>,
    email: String,
    name: Option<String>,
    password: String,
) -> Result<(), String> {
    let state = shell.agent()?.clone();
    let db = state.db.clone();
    let now = state.now();
    let pw = Secret::new(password);
    // Argon2 hashing and the write transaction block: off the async workers.
    let created = tauri::async_runtime::spawn_blocking(move || {
        if !bootstrap::needs_setup(&db)? {
            return Err(amove_agent::Error::Duplicate(
                "this agent is set up already; sign in as its admin".into(),
            ));
        }
        bootstrap::init_account(
            &db,
            &account,
            account_name.as_deref(),
            &email,
            name.as_deref(),
            &pw,
            now,
        )
    })
    .await
    .map_err(|e| e.to_string())?;
    match created {
        Ok((_, user)) => {
            tracing::info!("first run: created the account with owner {}", user.email);
            shell.set_needs_setup(false);
            Ok(())
        }
        Err(e) => Err(e.user_text()),
    }
}

/// The admin window's Import tab. An import signs in at the IdP and must come back to a page
/// the browser shows (`tauri://localhost` cannot be redirected to and back), so the tab opens
/// the agent's own web UI at its Import tab in the system browser. The page names no URL:
/// only this one can be opened.
#[tauri::command]
pub async fn open_import_in_browser(app: AppHandle, shell: State<'_, Shell>) -> Result<(), String> {
    let url = format!("{}/ui/#import", shell.agent()?.base_url());
    tracing::info!("opening the import in the browser");
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(|e| e.to_string())
}

/// Closes the calling window (its Close button).
#[tauri::command]
pub fn close_window(window: WebviewWindow) {
    let _ = window.destroy();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_plain_and_under_sso() {
        for ok in [
            "/health",
            "/sso/whoami",
            "/sso/ttapi/tokens/12",
            "/sso/audit?page=2&x=../y",
        ] {
            assert!(is_api_path(ok), "{ok}");
        }
        for bad in [
            "/sso/../ui/",
            "/sso/./whoami",
            "/sso//whoami",
            "/sso/%2e%2e/x",
            "/sso/..%2fui",
            "/sso\\..\\x",
            "/ui/",
            "http://evil/sso/x",
            "/sso/x#frag",
            "sso/x",
            "/sso/",
            "/healthz",
        ] {
            assert!(!is_api_path(bad), "{bad}");
        }
    }
}
