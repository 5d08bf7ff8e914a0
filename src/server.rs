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
    /// The other loopback address `localhost` names is taken on the port.
    #[error(
        "cannot listen on {addr}: another program is listening there. `localhost` names both \
         127.0.0.1 and [::1], and the agent advertises http://localhost:PORT for sign-in \
         callbacks and the SAML ACS, so it must own both on its port (else that program could \
         receive codes and SAML responses meant for the agent). Stop it, or start the agent \
         with --addr 127.0.0.1:PORT on another port"
    )]
    LocalhostTaken {
        /// The address taken.
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
    /// The network settings of IdP requests are not usable (a CA file that cannot be read).
    #[error("cannot use the network settings: {0}")]
    Network(String),
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
            .map_err(|e| StartError::Network(e.to_string()))?;
    let policy = crate::policy::PolicyState::new(settings.policy_path.clone());
    let state = AppState::new(Inner {
        policy,
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
        refresh_locks: Default::default(),
    });
    crate::login::network::apply_stored(&state);
    Ok(state)
}

/// A bound, not yet serving agent.
pub struct Agent {
    listeners: Vec<TcpListener>,
    state: AppState,
    /// The policy file as read at start, for the watcher to compare with.
    policy_seen: Option<crate::policy::file::Fingerprint>,
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
    /// The addresses it listens on (both loopback addresses for a loopback `--addr`).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        // Poll `shutdown` once before anything is served, so that a signal handler it installs
        // is in place before the first request is answered (a SIGTERM right after that must
        // stop the agent gracefully, not kill it).
        let mut shutdown = std::pin::pin!(shutdown);
        let early = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready())
        })
        .await;
        if early {
            return Ok(());
        }
        let upkeep = tokio::spawn(maintenance(self.state.clone()));
        let policy = tokio::spawn(crate::policy::watch::watch(
            self.state.clone(),
            self.policy_seen,
        ));
        let app = api::router(self.state);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut servers = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let mut stopped = stopped.clone();
            let service = app
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>();
            servers.spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            });
        }
        shutdown.await;
        upkeep.abort();
        policy.abort();
        let _ = stop.send(true);
        let mut result = Ok(());
        while let Some(r) = servers.join_next().await {
            match r {
                Ok(Err(e)) => result = Err(StartError::Serve(e)),
                Err(e) => result = Err(StartError::Serve(std::io::Error::other(e))),
                Ok(Ok(())) => {}
            }
        }
        result
    }
}

/// How often [`maintenance`] runs.
pub const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The agent's upkeep while it runs, at start and then hourly: the audit trail's retention and
/// size bound, expired session revocations (database and memory) and expired login
/// transactions — so none of them grows with uptime.
async fn maintenance(state: AppState) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = upkeep(&state).await {
            tracing::warn!(error = %e, "maintenance failed; retrying in an hour");
        }
    }
}

/// One [`maintenance`] pass.
pub async fn upkeep(state: &AppState) -> crate::Result<()> {
    let now = state.now();
    let revoked = state.auth.prune_revoked(now).await?;
    let (audit, logins) = state
        .db
        .write(move |tx| {
            crate::store::sp_keys::purge_retired(tx, now)?;
            Ok((
                crate::store::audit::prune(tx, now)?,
                crate::store::transactions::purge_expired(tx, now)?,
            ))
        })
        .await?;
    tracing::debug!(revoked, audit, logins, "maintenance: expired rows removed");
    crate::login::idp_metadata::refresh_due(state).await?;
    Ok(())
}

/// Binds the agent's listeners. For a loopback address it binds *both* loopback addresses
/// (127.0.0.1 and [::1]) on the port: the agent advertises `http://localhost:PORT`, and
/// `localhost` names both, so a program holding the other one would receive the browser's
/// sign-in redirects and SAML posts. If the other one is taken, the start fails
/// ([`StartError::LocalhostTaken`]); with port 0 another free port is tried. A machine without
/// IPv6 loopback has no [::1] for anyone to take, and the agent binds 127.0.0.1 alone.
async fn bind_all(addr: SocketAddr) -> Result<Vec<TcpListener>, StartError> {
    let bind_err = |addr: SocketAddr| {
        move |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::AddrInUse => StartError::AddrInUse { addr },
            _ => StartError::Bind { addr, source },
        }
    };
    let primary_ip = addr.ip();
    let twin = match primary_ip {
        std::net::IpAddr::V4(ip) if ip == std::net::Ipv4Addr::LOCALHOST => {
            Some(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
        }
        std::net::IpAddr::V6(ip) if ip == std::net::Ipv6Addr::LOCALHOST => {
            Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        }
        _ => None,
    };
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    for _ in 0..attempts {
        let primary = TcpListener::bind(addr).await.map_err(bind_err(addr))?;
        let Some(twin) = twin else {
            return Ok(vec![primary]);
        };
        let port = primary
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?
            .port();
        let other = SocketAddr::new(twin, port);
        match bind_exact(other).await {
            Ok(l) => return Ok(vec![primary, l]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if addr.port() != 0 {
                    return Err(StartError::LocalhostTaken { addr: other });
                }
                // Port 0: that free port is taken on the other address; try another.
            }
            Err(e) if twin.is_ipv6() => {
                tracing::warn!(error = %e, "no IPv6 loopback here; listening on 127.0.0.1 only");
                return Ok(vec![primary]);
            }
            Err(source) => {
                return Err(StartError::Bind {
                    addr: other,
                    source,
                });
            }
        }
    }
    Err(StartError::Bind {
        addr,
        source: std::io::Error::other("no port free on both 127.0.0.1 and [::1]"),
    })
}

/// Binds exactly `addr` (an IPv6 socket only for IPv6, never dual-stack).
async fn bind_exact(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        let s = tokio::net::TcpSocket::new_v6()?;
        s.set_reuseaddr(true)?;
        s
    } else {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.set_reuseaddr(true)?;
        s
    };
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds the listener and prepares the state. Once this returns, connections are accepted
/// (queued by the kernel until [`Agent::serve`] runs), so the caller may announce the address.
pub async fn start(settings: Settings) -> Result<Agent, StartError> {
    let addr = settings.addr;
    let listeners = bind_all(addr).await?;
    let local_addr = listeners
        .first()
        .ok_or_else(|| StartError::Bind {
            addr,
            source: std::io::Error::other("no listener"),
        })?
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
    // The policy applies before the first request is served.
    let policy_seen = crate::policy::watch::load_at_start(&state).await;
    Ok(Agent {
        listeners,
        state,
        policy_seen,
    })
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
