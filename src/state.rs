//! The agent's shared state: the composition root that holds its services (database,
//! credentials, sealer, clock, settings, the OIDC client, the sign-in caches). Every layer
//! takes it by reference; it knows no HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::AuthService;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::seal::Sealer;
use crate::store::Db;

/// The agent's services, shared by the HTTP handlers, the sign-in service and the desktop
/// shell; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// The database.
    pub db: Db,
    /// Credentials.
    pub auth: AuthService,
    /// Secrets at rest.
    pub sealer: Sealer,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: Settings,
    /// The address actually bound (differs from `settings.addr` when its port was 0).
    pub local_addr: SocketAddr,
    /// OpenID Connect: HTTP client to identity providers, discovery and JWKS caches.
    pub oidc: crate::sso::oidc::Oidc,
    /// Logins the desktop shell started and awaits.
    pub desktop_logins: crate::login::DesktopLogins,
    /// IdP configurations by account and kind, exact for the database generation.
    pub idp_cache: crate::store::cache::GenCache<
        (i64, crate::store::idp::Kind),
        Option<crate::store::idp::IdpConfig>,
    >,
    /// What every `sso_url` reads, exact for [`Db::epoch`](crate::store::Db::epoch).
    pub login_cache: crate::login::LoginCache,
    /// The managed configuration: what the policy file manages, and why it is not applied.
    pub policy: crate::policy::PolicyState,
    /// One lock per session grant, so concurrent renewals of a session redeem it once.
    pub refresh_locks: crate::login::session::RefreshLocks,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
    /// Now, by the agent's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
    /// The agent's own base URL (`http://localhost:PORT`), as browsers and IdPs reach it.
    pub fn base_url(&self) -> String {
        let ip = self.local_addr.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            format!("http://localhost:{}", self.local_addr.port())
        } else {
            format!("http://{}", self.local_addr)
        }
    }
}
