//! The core's API server inside the app: the same settings, data directory and
//! `listening on` line as `amove-agent serve`, run as a background tokio task until Quit.

use std::io::Write;
use std::path::PathBuf;

use amove_agent::config::{self, Settings};
use amove_agent::{bootstrap, server};
use tauri::{AppHandle, Manager};

use crate::state::Shell;
use crate::windows::{self, View};
use crate::{deep_link, notify, session};

/// Settings from the same environment as `amove-agent serve`: `AMOVE_AGENT_ADDR`,
/// `AMOVE_AGENT_DATA_DIR`, `AMOVE_SESSION_TTL_SECS`, `AMOVE_AGENT_POLICY`, and the network
/// settings (`AMOVE_AGENT_CA_FILE`, `HTTPS_PROXY`, `NO_PROXY` …).
pub fn settings_from_env() -> Result<Settings, String> {
    let addr = match std::env::var("AMOVE_AGENT_ADDR") {
        Ok(s) if !s.trim().is_empty() => config::parse_addr(&s)?,
        _ => config::parse_addr(config::DEFAULT_ADDR)?,
    };
    let data_dir = std::env::var_os("AMOVE_AGENT_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(config::default_data_dir);
    let mut settings = Settings::new(addr, data_dir);
    if let Some(p) = std::env::var_os("AMOVE_AGENT_POLICY").filter(|p| !p.is_empty()) {
        settings.policy_path = Some(PathBuf::from(p));
    }
    settings.net = amove_agent::sso::net::NetSettings::from_env()?;
    if let Ok(ttl) = std::env::var("AMOVE_SESSION_TTL_SECS") {
        let secs: u64 = ttl.trim().parse().map_err(|_| {
            format!("AMOVE_SESSION_TTL_SECS must be a number of seconds, not '{ttl}'")
        })?;
        settings.session_ttl = std::time::Duration::from_secs(secs.max(1));
    }
    Ok(settings)
}

/// Starts the server in a background task. If it cannot start (the port is taken…), the
/// user is told in a window, the tray and the log, and the app keeps running so they see it.
pub fn spawn(app: AppHandle, settings: Settings) {
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        let agent = match server::start(settings).await {
            Ok(agent) => agent,
            Err(e) => {
                let msg = e.to_string();
                tracing::error!("{msg}");
                eprintln!("amove-desktop: {msg}");
                notify::agent_failed(&app, &msg);
                let waiting = shell.set_start_error(msg);
                windows::open(&app, View::Error);
                run_deferred(&app, waiting);
                return;
            }
        };
        println!("listening on http://{}", agent.local_addr());
        let _ = std::io::stdout().flush();
        let state = agent.state().clone();
        let db = state.db.clone();
        let needs = tauri::async_runtime::spawn_blocking(move || bootstrap::needs_setup(&db))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match needs {
            Ok(v) => shell.set_needs_setup(v),
            Err(e) => tracing::warn!(error = %e, "cannot tell whether an account exists"),
        }
        let waiting = shell.set_started(state);
        // The session the last run kept comes back before anything else signs in.
        session::restore(&app).await;
        run_deferred(&app, waiting);
        // `serve` needs a 'static shutdown future: Quit or SIGINT/SIGTERM, bridged by a channel.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = app.clone();
        tauri::async_runtime::spawn(async move {
            let shell = watcher.state::<Shell>();
            tokio::select! {
                () = shell.stop_requested() => {},
                () = server::shutdown_signal() => {},
            }
            let _ = tx.send(());
        });
        let result = agent
            .serve(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the agent's server stopped");
        }
        tracing::info!("stopped");
        shell.set_stopped();
        app.exit(0);
    });
}

/// Launch arguments and deep links that arrived before the server was up.
fn run_deferred(app: &AppHandle, waiting: Vec<Vec<String>>) {
    for args in waiting {
        deep_link::handle_args(app, args);
    }
}

/// Quit from the tray: stop the server, then the app.
pub fn quit(app: &AppHandle) {
    let shell = app.state::<Shell>();
    if !shell.is_running() {
        app.exit(0);
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        let stopped = shell.stopped();
        tokio::pin!(stopped);
        // Registered before asking, so the server's notification cannot be missed.
        stopped.as_mut().enable();
        shell.stop();
        // In-flight requests get a moment; a hung one does not keep the app alive.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), stopped).await;
        app.exit(0);
    });
}
