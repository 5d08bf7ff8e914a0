//! The core's API server inside the app: the same settings, data directory and
//! `listening on` line as `amove-agent serve`, run as a background tokio task, and the
//! shell's state around it (who is signed in, which windows were asked for when).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use amove_agent::api::AppState;
use amove_agent::config::{self, Settings};
use amove_agent::secret::Secret;
use amove_agent::{bootstrap, server};
use tauri::{AppHandle, Manager};
use tokio::sync::Notify;

use crate::{deep_link, session, tray, windows};

/// Who is signed in through the tray.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session JWT.
    pub token: Secret,
    /// The username (email).
    pub username: String,
    /// "First Last" or the email.
    pub display_name: String,
    /// The account identifier.
    pub account: String,
    /// An admin of the account.
    pub is_admin: bool,
}

/// The shell's state, managed by Tauri.
pub struct Shell {
    agent: OnceLock<AppState>,
    start_error: OnceLock<String>,
    session: Mutex<Option<Session>>,
    needs_setup: AtomicBool,
    stop: Notify,
    stopped: Notify,
    /// When each window was asked for (the sign-in window's time to visible).
    opened: Mutex<HashMap<String, Instant>>,
    /// Deep links and launch arguments that arrived before the server was up.
    pending: Mutex<Vec<Vec<String>>>,
    /// Recently handled deep links: one link can arrive twice (argv and the plugin).
    handled_links: Mutex<VecDeque<String>>,
    /// Logs folder.
    pub logs_dir: PathBuf,
    /// Client for calls to the agent's own API (sign out, whoami, the windows' proxy).
    pub http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shell {
    /// A shell whose server has not started yet.
    pub fn new(logs_dir: PathBuf) -> Self {
        Self {
            agent: OnceLock::new(),
            start_error: OnceLock::new(),
            session: Mutex::new(None),
            needs_setup: AtomicBool::new(false),
            stop: Notify::new(),
            stopped: Notify::new(),
            opened: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            handled_links: Mutex::new(VecDeque::new()),
            logs_dir,
            // No redirects and no proxy: this client only ever talks to the agent itself.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap_or_default(),
        }
    }
    /// The running server's state, or why there is none.
    pub fn agent(&self) -> Result<&AppState, String> {
        self.agent
            .get()
            .ok_or_else(|| match self.start_error.get() {
                Some(e) => format!("The agent is not running: {e}"),
                None => "The agent is still starting; try again in a moment.".to_string(),
            })
    }
    /// Why the server could not start, if it could not.
    pub fn start_error(&self) -> Option<&str> {
        self.start_error.get().map(String::as_str)
    }
    /// The agent's base URL for the shell's own requests.
    pub fn base_url(&self) -> Result<String, String> {
        self.agent()
            .map(|s| format!("http://127.0.0.1:{}", s.local_addr.port()))
    }
    /// The signed-in session.
    pub fn session(&self) -> Option<Session> {
        lock(&self.session).clone()
    }
    /// Replaces the signed-in session.
    pub fn set_session(&self, s: Option<Session>) {
        *lock(&self.session) = s;
    }
    /// True while no account exists (the first-run screen).
    pub fn needs_setup(&self) -> bool {
        self.needs_setup.load(Ordering::Acquire)
    }
    /// Records whether an account exists.
    pub fn set_needs_setup(&self, v: bool) {
        self.needs_setup.store(v, Ordering::Release);
    }
    /// Stops the server (graceful: in-flight requests finish).
    pub fn stop(&self) {
        self.stop.notify_one();
    }
    /// Notes that window `label` was asked for now.
    pub fn mark_opened(&self, label: &str) {
        lock(&self.opened).insert(label.to_string(), Instant::now());
    }
    /// Milliseconds since window `label` was asked for (once).
    pub fn take_opened(&self, label: &str) -> Option<u128> {
        lock(&self.opened)
            .remove(label)
            .map(|t| t.elapsed().as_millis())
    }
    /// Queues launch arguments until the server is up; false when it is up already.
    pub fn defer(&self, args: Vec<String>) -> bool {
        if self.agent.get().is_some() || self.start_error.get().is_some() {
            return false;
        }
        lock(&self.pending).push(args);
        true
    }
    /// True the first time `link` is seen (of the last few).
    pub fn first_sight(&self, link: &str) -> bool {
        let mut seen = lock(&self.handled_links);
        if seen.iter().any(|l| l == link) {
            return false;
        }
        seen.push_back(link.to_string());
        if seen.len() > 16 {
            seen.pop_front();
        }
        true
    }
}

/// Settings from the same environment as `amove-agent serve`: `AMOVE_AGENT_ADDR`,
/// `AMOVE_AGENT_DATA_DIR`, `AMOVE_SESSION_TTL_SECS`.
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
                let _ = shell.start_error.set(msg);
                tray::refresh(&app);
                windows::open(&app, windows::View::Error);
                run_deferred(&app);
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
        let _ = shell.agent.set(state);
        tray::refresh(&app);
        run_deferred(&app);
        // `serve` needs a 'static shutdown future: Quit or SIGINT/SIGTERM, bridged by a channel.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = app.clone();
        tauri::async_runtime::spawn(async move {
            let shell = watcher.state::<Shell>();
            tokio::select! {
                () = shell.stop.notified() => {},
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
        shell.stopped.notify_waiters();
        app.exit(0);
    });
}

/// Launch arguments and deep links that arrived before the server was up.
fn run_deferred(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let pending = std::mem::take(&mut *lock(&shell.pending));
    for args in pending {
        deep_link::handle_args(app, args);
    }
}

/// Quit from the tray: stop the server, then the app.
pub fn quit(app: &AppHandle) {
    let shell = app.state::<Shell>();
    if shell.agent.get().is_none() {
        app.exit(0);
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        let stopped = shell.stopped.notified();
        tokio::pin!(stopped);
        // Registered before asking, so the server's notification cannot be missed.
        stopped.as_mut().enable();
        shell.stop();
        // In-flight requests get a moment; a hung one does not keep the app alive.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), stopped).await;
        app.exit(0);
    });
}

/// Signs the tray's session out (revoking it at the agent) and updates the tray.
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
    session::changed(app);
}
