//! `amove://` deep links and second launches: the single-instance plugin forwards a second
//! launch's arguments here; `amove://sso/callback?…` completes the pending desktop login;
//! `--open signin|admin` opens a window and `--sign-in EMAIL` starts a sign-in.

use tauri::{AppHandle, Manager};
use tauri_plugin_deep_link::DeepLinkExt;

use crate::state::Shell;
use crate::windows::{self, View};
use crate::{notify, session, signin};

/// Registers the scheme with the desktop (Linux, Windows: at run time) and listens for links.
pub fn setup(app: &AppHandle) {
    if std::env::var_os("AMOVE_DESKTOP_NO_REGISTER").is_none()
        && let Err(e) = app.deep_link().register_all()
    {
        // Without xdg-utils (Linux) the scheme is not registered; loopback sign-in still works.
        tracing::warn!(error = %e, "cannot register the amove:// scheme");
    }
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        let links: Vec<String> = event.urls().iter().map(|u| u.to_string()).collect();
        handle_args(&handle, links);
    });
    // Started by the desktop for a link (the app was not running), or with arguments.
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(Some(urls)) = app.deep_link().get_current() {
        args.extend(urls.iter().map(|u| u.to_string()));
    }
    if !args.is_empty() {
        handle_args(app, args);
    }
}

/// A second launch: its arguments (`argv[0]` is the program).
pub fn on_second_instance(app: &AppHandle, argv: Vec<String>) {
    tracing::info!(
        args = argv.len().saturating_sub(1),
        "second launch forwarded"
    );
    let args: Vec<String> = argv.into_iter().skip(1).collect();
    if args.is_empty() {
        // Launching the app again means "show me something": the sign-in or admin window.
        let shell = app.state::<Shell>();
        let view = match shell.session() {
            Some(s) if s.is_admin => View::Admin,
            _ if shell.needs_setup() => View::Admin,
            _ => View::SignIn,
        };
        windows::open(app, view);
        return;
    }
    handle_args(app, args);
}

/// Acts on launch arguments and links (deferred until the server is up).
pub fn handle_args(app: &AppHandle, args: Vec<String>) {
    let shell = app.state::<Shell>();
    let mut it = args.into_iter();
    let mut deferred = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--open" => {
                if let Some(view) = it.next().as_deref().and_then(View::parse) {
                    windows::open(app, view);
                }
            }
            "--sign-in" => {
                if let Some(user) = it.next() {
                    deferred.push("--sign-in".to_string());
                    deferred.push(user);
                }
            }
            link if link.starts_with("amove:") => deferred.push(arg),
            _ => tracing::debug!("ignored a launch argument"),
        }
    }
    if deferred.is_empty() || shell.defer(deferred.clone()) {
        return;
    }
    let mut it = deferred.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--sign-in" {
            let Some(user) = it.next() else { break };
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(m) = session::start(&app, &user, false).await {
                    tracing::warn!("sign-in from the command line failed: {m}");
                }
            });
        } else if shell.first_sight(&arg) {
            complete(app, arg);
        }
    }
}

/// Completes the pending login an `amove://sso/callback?…` link belongs to.
fn complete(app: &AppHandle, link: String) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        let Ok(state) = shell.agent().cloned() else {
            tracing::warn!("deep link ignored: the agent is not running");
            return;
        };
        tracing::info!("completing a sign-in from a deep link");
        match signin::complete(&state, &link).await {
            // The waiting sign-in task updates the tray; after a restart there is none.
            Ok(ds) => {
                if shell.session().is_none_or(|s| s.username != ds.username)
                    && let Err(m) = session::signed_in(&app, ds).await
                {
                    tracing::warn!("deep link sign-in failed: {m}");
                    notify::refused(&app, &m);
                }
            }
            Err(e) => {
                let m = e.user_text();
                tracing::warn!("deep link sign-in failed: {m}");
                notify::refused(&app, &m);
            }
        }
    });
}
