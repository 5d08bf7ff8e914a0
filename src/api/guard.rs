//! Local-API hardening: Host and Origin checks, request timeout, redacted access log.
//!
//! Any web page the user opens can send requests to loopback, and DNS rebinding can make a
//! hostile name resolve to 127.0.0.1. So a request must name the agent itself in `Host`,
//! and a browser request must come from the agent's own UI origin — except the SAML ACS,
//! which the identity provider's page posts to.

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::extract::truncate;
use crate::error::Error;
use crate::state::AppState;

/// Paths that browsers reach from other origins by design (the IdP's auto-posting form).
const CROSS_ORIGIN_PATHS: &[&str] = &["/sso/saml/acs"];

/// Origins of the desktop app's own windows (Tauri) besides the agent's `http://` origins.
const APP_ORIGINS: &[&str] = &[
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
];

/// True when `authority` (`host:port`) names this agent: a loopback name (or the bound IP
/// when bound to a non-loopback address) with the bound port. Runs on every request, so it
/// compares without allocating.
fn is_own_authority(state: &AppState, authority: &str) -> bool {
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    if port.parse::<u16>().ok() != Some(state.local_addr.port()) {
        return false;
    }
    let ip = state.local_addr.ip();
    host.eq_ignore_ascii_case("localhost")
        || host == "127.0.0.1"
        || host == "[::1]"
        || (!ip.is_loopback()
            && !ip.is_unspecified()
            && host.trim_matches(['[', ']']).parse() == Ok(ip))
}

/// True when `origin` is one of the agent's own UI origins.
pub fn is_own_origin(state: &AppState, origin: &str) -> bool {
    APP_ORIGINS.iter().any(|o| o.eq_ignore_ascii_case(origin))
        || origin
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
            && is_own_authority(state, &origin[7..])
}

/// The front door of every request, as one middleware (one service clone and one boxed
/// future per request instead of one per step): the access log around the request timeout
/// around the Host/Origin guard, then the route.
pub async fn front(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Nothing to copy or redact when the access log is filtered out (AMOVE_LOG=warn).
    if !tracing::enabled!(target: "amove_agent::access", tracing::Level::INFO) {
        return timeout(&state, req, next).await;
    }
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(redact_query).unwrap_or_default();
    let resp = timeout(&state, req, next).await;
    tracing::info!(
        target: "amove_agent::access",
        %method,
        path = %truncate(&path, 200),
        query = %query,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

/// The Host/Origin guard, then the route, cut off after the configured request timeout.
async fn timeout(state: &AppState, req: Request, next: Next) -> Response {
    let limit = state.settings.request_timeout;
    let guarded = async {
        match host_and_origin(state, &req) {
            Ok(()) => next.run(req).await,
            Err(refused) => refused.into_response(),
        }
    };
    match tokio::time::timeout(limit, guarded).await {
        Ok(resp) => resp,
        Err(_) => Error::invalid(format!(
            "the request took longer than {} s and was cancelled",
            limit.as_secs()
        ))
        .into_response_with(axum::http::StatusCode::REQUEST_TIMEOUT),
    }
}

/// Refuses requests with a foreign `Host` (DNS rebinding) or a foreign `Origin`, before any
/// handler (or body parsing) runs.
fn host_and_origin(state: &AppState, req: &Request) -> Result<(), Error> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if host.is_empty() {
        return Err(Error::Security("the Host header is required".into()));
    }
    if !is_own_authority(state, host) {
        return Err(Error::Security(format!(
            "Host '{}' is not this agent; use http://localhost:{}",
            truncate(host, 100),
            state.local_addr.port()
        )));
    }
    if let Some(origin) = req.headers().get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !CROSS_ORIGIN_PATHS.contains(&req.uri().path()) && !is_own_origin(state, origin) {
            return Err(Error::Security(format!(
                "requests from origin '{}' are not allowed",
                truncate(origin, 100)
            )));
        }
    }
    Ok(())
}

/// Query parameters whose values are safe to log; every other value is redacted.
const LOGGABLE_PARAMS: &[&str] = &["provider", "account", "page", "pagesize"];

/// The query string with every value redacted except [`LOGGABLE_PARAMS`].
pub fn redact_query(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            if LOGGABLE_PARAMS.contains(&k.to_lowercase().as_str()) {
                format!("{k}={}", truncate(&v, 64))
            } else {
                format!("{k}=[redacted]")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens_codes_and_unknown_params() {
        let q = redact_query("token=abc.def&authorizationCode=xyz&provider=okta&Token=2");
        assert_eq!(
            q,
            "token=[redacted]&authorizationCode=[redacted]&provider=okta&Token=[redacted]"
        );
        assert!(!q.contains("abc") && !q.contains("xyz"));
    }
}
