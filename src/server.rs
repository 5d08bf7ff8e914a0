//! Starting the agent: data directory, database, keys, the listener, graceful shutdown.
//! The headless binary and the desktop shell both call [`start`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, AppState, Inner};
use crate::auth::AuthService;
use crate::auth::session::SessionKeys;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::crypto::{ensure_private_dir, seal::Sealer};
use crate::store::Db;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "agent.db";

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port is taken (another agent is probably running).
    #[error(
        "cannot listen on {addr}: the address is already in use. Is another Amove agent running? \
         Stop it, or start this one with --addr 127.0.0.1:PORT"
    )]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory, database or keys could not be opened.
    #[error("cannot open the data directory {dir}: {source}")]
    Data {
        /// The data directory.
        dir: String,
        /// What failed.
        source: crate::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Opens the database of a data directory (creating both if needed).
pub fn open_db(settings: &Settings) -> Result<Db, StartError> {
    let data = |source| StartError::Data {
        dir: settings.data_dir.display().to_string(),
        source,
    };
    ensure_private_dir(&settings.data_dir).map_err(data)?;
    Db::open(&settings.data_dir.join(DB_FILE)).map_err(data)
}

/// Builds the application state for `settings` with the agent bound to `local_addr`.
pub fn build_state(
    settings: Settings,
    local_addr: SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartError> {
    let dir = settings.data_dir.display().to_string();
    let data = |source| StartError::Data {
        dir: dir.clone(),
        source,
    };
    let db = open_db(&settings)?;
    let last_login_id = db
        .read_blocking(crate::store::transactions::max_id)
        .map_err(data)?;
    let login_cache = crate::login::LoginCache::starting_after(last_login_id);
    let keys = SessionKeys::load_or_create(&settings.data_dir).map_err(data)?;
    let (sealer, key_location) = Sealer::load_or_create(&settings.data_dir).map_err(data)?;
    tracing::debug!(?key_location, "data key loaded");
    let ttl = i64::try_from(settings.session_ttl.as_secs()).unwrap_or(i64::MAX);
    let auth = AuthService::new(db.clone(), keys, clock.clone(), ttl).map_err(data)?;
    let oidc =
        crate::sso::oidc::Oidc::new(crate::sso::oidc::OidcSettings::from_settings(&settings))
            .map_err(data)?;
    Ok(AppState::new(Inner {
        db,
        auth,
        sealer,
        clock,
        settings,
        local_addr,
        oidc,
        desktop_logins: crate::login::DesktopLogins::default(),
        idp_cache: Default::default(),
        login_cache,
    }))
}

/// A bound, not yet serving agent.
pub struct Agent {
    listener: TcpListener,
    state: AppState,
}

impl Agent {
    /// The address clients reach it at.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }
    /// Its state (the desktop shell reads the database through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }
    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let app = api::router(self.state);
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(StartError::Serve)
    }
}

/// Binds the listener and prepares the state. Once this returns, connections are accepted
/// (queued by the kernel until [`Agent::serve`] runs), so the caller may announce the address.
pub async fn start(settings: Settings) -> Result<Agent, StartError> {
    let addr = settings.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => StartError::AddrInUse { addr },
            _ => StartError::Bind { addr, source },
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    if settings.loopback_graph {
        tracing::warn!(
            "TEST SETTING {} is on: GraphURL may name a loopback URL; never use this in \
             production",
            crate::sso::urls::LOOPBACK_GRAPH_ENV
        );
    }
    let state = build_state(settings, local_addr, Arc::new(SystemClock))?;
    Ok(Agent { listener, state })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
