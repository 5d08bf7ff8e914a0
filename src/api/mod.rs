//! The HTTP API: one module per resource, each with its own `routes()`, merged here.

pub mod audit;
pub mod callback_urls;
pub mod extract;
pub mod guard;
pub mod health;
pub mod idp;
pub mod import;
pub mod login;
pub mod saml;
pub mod session;
pub mod signin_groups;
pub mod ttapi;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthService;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::seal::Sealer;
use crate::error::{Error, problem};
use crate::store::Db;

/// Everything a request handler may need; cheap to clone.
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
    pub desktop_logins: login::DesktopLogins,
    /// IdP configurations by account and kind, exact for the database generation.
    pub idp_cache: crate::store::cache::GenCache<
        (i64, crate::store::idp::Kind),
        Option<crate::store::idp::IdpConfig>,
    >,
    /// What every `sso_url` reads, exact for [`Db::epoch`](crate::store::Db::epoch).
    pub login_cache: login::LoginCache,
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

/// The agent's whole API.
///
/// Middleware order, outermost first (a request meets them top to bottom):
/// 1. panic catcher: a bug answers 500 without a body instead of dropping the connection;
/// 2. [`guard::front`], one middleware doing, in this order: the access log (method, path,
///    status, time; query values redacted), the request timeout, and the host/origin guard
///    (DNS-rebinding and cross-site requests are refused before any handler, or body
///    parsing, runs).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(ui::routes())
        .merge(idp::routes())
        .merge(ttapi::routes())
        .merge(session::routes())
        .merge(audit::routes())
        .merge(login::routes())
        .merge(callback_urls::routes())
        .merge(saml::routes())
        .merge(import::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard::front))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let msg = format!("no endpoint {method} {}", uri.path());
    problem(StatusCode::NOT_FOUND, "NOT_FOUND", &[&msg])
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    Error::invalid(format!("{} does not accept {method}", uri.path()))
        .into_response_with(StatusCode::METHOD_NOT_ALLOWED)
}
