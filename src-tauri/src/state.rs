//! The shell's state, managed by Tauri: the running server, who is signed in, which windows were
//! asked for when, and the launch arguments waiting for the server. It imports nothing else of
//! the shell; every change that a view draws is announced on a watch channel, which the tray
//! and the windows follow ([`Shell::on_change`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use amove_agent::secret::Secret;
use amove_agent::state::AppState;
use tokio::sync::{Notify, watch};

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
    /// When the session JWT expires (Unix time).
    pub expires_at: i64,
    /// When it was issued (Unix time): renewals are timed from its lifetime.
    pub issued_at: i64,
}

impl Session {
    /// When the session ends, as the user's clock shows it: `18:42`.
    pub fn until(&self) -> String {
        local_hhmm(self.expires_at)
    }
}

/// `unix` as local hours and minutes (`18:42`).
pub fn local_hhmm(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_default()
}

/// The shell's state, managed by Tauri.
pub struct Shell {
    agent: OnceLock<AppState>,
    start_error: OnceLock<String>,
    session: Mutex<Option<Session>>,
    /// The last session ended by its expiry (the tray offers *Sign in again…*).
    expired: AtomicBool,
    /// The sign-in window was opened by *Sign in as someone else…*: the IdP must ask again.
    force_authn: AtomicBool,
    needs_setup: AtomicBool,
    /// Bumped on every change above: the tray and the windows redraw from the state.
    changed: watch::Sender<()>,
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
            expired: AtomicBool::new(false),
            force_authn: AtomicBool::new(false),
            needs_setup: AtomicBool::new(false),
            changed: watch::Sender::new(()),
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
    /// Calls `f` after each change of the state from now on (the server started or failed,
    /// sign-in, sign-out, set-up), for as long as the app runs. Changes that come close together
    /// may be told once: `f` reads the state, it is not handed a change.
    pub fn on_change(&self, f: impl Fn() + Send + 'static) {
        let mut changed = self.subscribe();
        tauri::async_runtime::spawn(async move {
            while changed.changed().await.is_ok() {
                f();
            }
        });
    }
    /// A receiver that sees every change from now on (the expiry timer waits on it).
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
    fn notify(&self) {
        self.changed.send_replace(());
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
    /// True once the server is up (and until the app exits).
    pub fn is_running(&self) -> bool {
        self.agent.get().is_some()
    }
    /// Records the started server; returns the launch arguments that waited for it.
    pub fn set_started(&self, agent: AppState) -> Vec<Vec<String>> {
        self.settle(|| {
            let _ = self.agent.set(agent);
        })
    }
    /// Records why the server could not start; returns the launch arguments that waited for it.
    pub fn set_start_error(&self, msg: String) -> Vec<Vec<String>> {
        self.settle(|| {
            let _ = self.start_error.set(msg);
        })
    }
    /// Records how the start ended and empties the queue of [`Shell::defer`] under its lock,
    /// so that no argument is queued after the queue was handed over.
    fn settle(&self, record: impl FnOnce()) -> Vec<Vec<String>> {
        let waiting = {
            let mut pending = lock(&self.pending);
            record();
            std::mem::take(&mut *pending)
        };
        self.notify();
        waiting
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
        self.expired.store(false, Ordering::Release);
        self.notify();
    }
    /// Records a new sign-in; false when this very session is recorded already (a deep link and
    /// the waiting sign-in can both report one login: only the first is told).
    pub fn sign_in(&self, s: Session) -> bool {
        {
            let mut cur = lock(&self.session);
            if cur
                .as_ref()
                .is_some_and(|c| c.token.expose() == s.token.expose())
            {
                return false;
            }
            *cur = Some(s);
        }
        self.expired.store(false, Ordering::Release);
        self.notify();
        true
    }
    /// Ends the session that expires at `expires_at` because it expired; a session that replaced
    /// it in the meantime stays. True when it ended one.
    pub fn expire_session(&self, expires_at: i64) -> bool {
        let mut s = lock(&self.session);
        if s.as_ref().is_none_or(|s| s.expires_at != expires_at) {
            return false;
        }
        *s = None;
        self.expired.store(true, Ordering::Release);
        drop(s);
        self.notify();
        true
    }
    /// Sets whether the next sign-in window is *Sign in as someone else…*.
    pub fn set_force_authn(&self, v: bool) {
        self.force_authn.store(v, Ordering::Release);
    }
    /// Whether the sign-in window is *Sign in as someone else…*.
    pub fn force_authn(&self) -> bool {
        self.force_authn.load(Ordering::Acquire)
    }
    /// True when the last session ended by expiring (until the next sign-in or sign-out).
    pub fn session_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }
    /// True while no account exists (the first-run screen).
    pub fn needs_setup(&self) -> bool {
        self.needs_setup.load(Ordering::Acquire)
    }
    /// Records whether an account exists.
    pub fn set_needs_setup(&self, v: bool) {
        if self.needs_setup.swap(v, Ordering::AcqRel) != v {
            self.notify();
        }
    }
    /// Asks the server to stop (graceful: in-flight requests finish).
    pub fn stop(&self) {
        self.stop.notify_one();
    }
    /// Resolves when [`Shell::stop`] was called.
    pub async fn stop_requested(&self) {
        self.stop.notified().await;
    }
    /// Tells [`Shell::stopped`] waiters that the server has stopped.
    pub fn set_stopped(&self) {
        self.stopped.notify_waiters();
    }
    /// Resolves once the server has stopped; `enable` it before asking for the stop.
    pub fn stopped(&self) -> tokio::sync::futures::Notified<'_> {
        self.stopped.notified()
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
    /// Queues launch arguments until the server is up; false when it is up (or failed) already.
    pub fn defer(&self, args: Vec<String>) -> bool {
        let mut pending = lock(&self.pending);
        if self.agent.get().is_some() || self.start_error.get().is_some() {
            return false;
        }
        pending.push(args);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        Shell::new(PathBuf::from("/nonexistent/logs"))
    }

    fn session(username: &str) -> Session {
        Session {
            token: Secret::new("jwt".to_string()),
            username: username.into(),
            display_name: "Alice Example".into(),
            account: "acme".into(),
            is_admin: false,
            expires_at: 2_000_000_000,
            issued_at: 1_999_990_000,
        }
    }

    #[test]
    fn arguments_wait_for_the_server_and_are_handed_over_once() {
        let shell = shell();
        assert!(shell.defer(vec!["--sign-in".into(), "a@acme.test".into()]));
        assert!(shell.defer(vec!["amove://sso/callback?state=s".into()]));
        let waiting = shell.set_start_error("address already in use".into());
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting[0], ["--sign-in", "a@acme.test"]);
        // Once the start is decided nothing queues any more: the caller acts at once.
        assert!(!shell.defer(vec!["--sign-in".into(), "b@acme.test".into()]));
        assert!(shell.set_start_error("again".into()).is_empty());
        assert_eq!(shell.start_error(), Some("address already in use"));
    }

    #[test]
    fn agent_says_why_it_is_not_running() {
        let shell = shell();
        assert!(
            shell
                .agent()
                .err()
                .unwrap_or_default()
                .contains("still starting")
        );
        assert!(!shell.is_running());
        shell.set_start_error("port 29123 is already in use".into());
        assert_eq!(
            shell.agent().err().as_deref(),
            Some("The agent is not running: port 29123 is already in use")
        );
        assert!(shell.base_url().is_err());
    }

    #[test]
    fn the_same_link_is_handled_once_of_the_last_sixteen() {
        let shell = shell();
        assert!(shell.first_sight("amove://sso/callback?state=1"));
        assert!(!shell.first_sight("amove://sso/callback?state=1"));
        for i in 2..=17 {
            assert!(shell.first_sight(&format!("amove://sso/callback?state={i}")));
        }
        // The first has fallen out of the window of sixteen.
        assert!(shell.first_sight("amove://sso/callback?state=1"));
    }

    #[test]
    fn changes_are_announced_and_unchanged_setup_is_not() {
        let shell = shell();
        let mut rx = shell.subscribe();
        assert!(!rx.has_changed().unwrap());
        shell.set_needs_setup(false);
        assert!(!rx.has_changed().unwrap(), "needs_setup did not change");
        shell.set_needs_setup(true);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        shell.set_session(Some(session("alice@acme.test")));
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            shell.session().map(|s| s.username).as_deref(),
            Some("alice@acme.test")
        );
        rx.mark_unchanged();
        shell.set_start_error("no".into());
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn only_the_session_that_expired_ends_and_the_shell_remembers_why() {
        let shell = shell();
        shell.set_session(Some(session("alice@acme.test")));
        let rx = shell.subscribe();
        // A timer armed for an earlier session must not end the one signed in since.
        assert!(!shell.expire_session(1_999_999_000));
        assert!(shell.session().is_some());
        assert!(!rx.has_changed().unwrap());
        assert!(shell.expire_session(2_000_000_000));
        assert!(shell.session().is_none());
        assert!(shell.session_expired());
        assert!(rx.has_changed().unwrap());
        // Signing in (or out) again forgets that it expired.
        shell.set_session(None);
        assert!(!shell.session_expired());
    }

    #[test]
    fn one_login_reported_twice_is_recorded_once() {
        let shell = shell();
        assert!(shell.sign_in(session("alice@acme.test")));
        assert!(!shell.sign_in(session("alice@acme.test")), "same token");
        let mut other = session("alice@acme.test");
        other.token = Secret::new("jwt-2".to_string());
        assert!(shell.sign_in(other));
    }

    #[test]
    fn a_window_time_is_taken_once() {
        let shell = shell();
        assert_eq!(shell.take_opened("signin"), None);
        shell.mark_opened("signin");
        assert!(shell.take_opened("signin").is_some());
        assert_eq!(shell.take_opened("signin"), None);
    }
}
