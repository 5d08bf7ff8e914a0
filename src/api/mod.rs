//! The HTTP API: one module per resource, each with its own `routes()`, merged here.

pub mod audit;
pub mod callback_urls;
pub mod extract;
pub mod guard;
pub mod health;
pub mod idp;
pub mod idp_view;
pub mod import;
pub mod links;
pub mod login;
pub mod network;
pub mod openapi;
pub mod pages;
pub mod policy;
pub mod routing;
pub mod saml;
pub mod session;
pub mod signin_settings;
pub mod tokens;
pub mod ttapi;
pub mod ui;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};

use crate::api::routing::Routes;
use crate::error::{Error, problem};
pub use crate::state::{AppState, Inner};

/// The agent's whole API.
///
/// Middleware order, outermost first (a request meets them top to bottom):
/// 1. panic catcher: a bug answers 500 without a body instead of dropping the connection;
/// 2. [`guard::front`], one middleware doing, in this order: the access log (method, path,
///    status, time; query values redacted), the request timeout, and the host/origin guard
///    (DNS-rebinding and cross-site requests are refused before any handler, or body
///    parsing, runs).
pub fn router(state: AppState) -> Router {
    routes()
        .into_router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard::front))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }))
        .with_state(state)
}

/// Every route of the API, with the table of what it serves (the OpenAPI drift test reads it).
pub fn routes() -> Routes {
    Routes::new()
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(ui::routes())
        .merge(idp::routes())
        .merge(ttapi::routes())
        .merge(tokens::routes())
        .merge(session::routes())
        .merge(audit::routes())
        .merge(login::routes())
        .merge(callback_urls::routes())
        .merge(signin_settings::routes())
        .merge(network::routes())
        .merge(saml::routes())
        .merge(import::routes())
        .merge(links::routes())
        .merge(policy::routes())
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let msg = format!("no endpoint {method} {}", uri.path());
    problem(StatusCode::NOT_FOUND, "NOT_FOUND", &[&msg])
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    Error::invalid(format!("{} does not accept {method}", uri.path()))
        .into_response_with(StatusCode::METHOD_NOT_ALLOWED)
}
