//! The agent's network setting for IdP requests (`GET`/`PUT /sso/network`, admin): a proxy
//! URL (write-only password: reads show it masked) and a `NO_PROXY` list, plus what requests
//! actually use (with the environment's proxy and the extra CA file). The service is
//! [`crate::login::network`].

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::api::extract::{Admin, Fields, check_text};
use crate::api::routing::Routes;
use crate::error::{Error, Result};
use crate::login::network::{self, MAX_NO_PROXY, NetworkSetting};
use crate::sso::net::ProxyUrl;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/network", get_network)
        .put("/sso/network", put_network)
}

/// The setting and its effect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    /// The stored proxy URL, its password masked; `null`: none set here.
    #[serde(rename = "ProxyURL")]
    pub proxy_url: Option<String>,
    /// The stored `NO_PROXY` list.
    pub no_proxy: Option<String>,
    /// What IdP requests use.
    pub effective: Effective,
}

/// What IdP requests use (read-only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Effective {
    /// The proxy, its password masked; `null`: none (or the system's, on Windows/macOS).
    pub proxy: Option<String>,
    /// `policy`, `setting`, the environment variable it came from, `system` or `none`.
    pub proxy_source: &'static str,
    /// The hosts reached directly (loopback always is).
    pub no_proxy: Option<String>,
    /// The extra CA bundle trusted besides the OS trust store (`AMOVE_AGENT_CA_FILE`, or the
    /// policy's `Network.CaFile`).
    pub ca_file: Option<String>,
    /// Whether a policy file manages the proxy (then `PUT` is refused with `ACCESS`).
    pub managed: bool,
    /// The policy file, when managed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

fn view(state: &AppState, stored: &NetworkSetting) -> Network {
    let net = network::effective(state, stored);
    Network {
        proxy_url: stored.proxy.as_ref().map(ProxyUrl::masked),
        no_proxy: stored.no_proxy.clone(),
        effective: Effective {
            proxy: net.proxy.as_ref().map(|(p, _)| p.masked()),
            proxy_source: network::source_name(&net),
            no_proxy: net.no_proxy.clone(),
            ca_file: net.extra_ca_file.as_ref().map(|f| f.display().to_string()),
            managed: net.managed_by().is_some(),
            managed_by: net.managed_by().map(str::to_string),
        },
    }
}

#[utoipa::path(get, path = "/sso/network", tag = "admin", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The stored network setting for IdP requests (the proxy password masked) and what requests use.", body = Network)))]
async fn get_network(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<Network>> {
    let stored = network::load(&state).await?;
    Ok(Json(view(&state, &stored)))
}

/// The whole setting: `ProxyURL` null, omitted or `""` removes the proxy set here (the
/// environment's or the system's applies again); sent back as read (password masked) it
/// keeps the stored one.
#[utoipa::path(put, path = "/sso/network", tag = "admin", security(("token" = []), ("bearer" = [])), request_body = NetworkRequest,
    responses((status = 200, description = "The setting as saved and its effect.", body = Network)))]
async fn put_network(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<Network>> {
    let stored = network::load(&state).await?;
    let proxy = match f.opt_str("ProxyURL")? {
        None => None,
        Some(s) if s.trim().is_empty() => None,
        Some(s)
            if stored
                .proxy
                .as_ref()
                .is_some_and(|p| p.masked() == s.trim()) =>
        {
            stored.proxy.clone()
        }
        Some(s) => {
            check_text("ProxyURL", &s, 2048)?;
            if s.contains("********") {
                return Err(Error::invalid(
                    "ProxyURL: send the proxy's real password (the mask keeps the stored one \
                     only for the same URL)",
                ));
            }
            Some(ProxyUrl::parse(&s).map_err(|e| Error::invalid(format!("ProxyURL {e}")))?)
        }
    };
    let no_proxy = match f.opt_str("NoProxy")? {
        Some(s) if !s.trim().is_empty() => {
            check_text("NoProxy", &s, MAX_NO_PROXY)?;
            Some(s.trim().to_string())
        }
        _ => None,
    };
    let saved = network::save(
        &state,
        p.account_id(),
        &p.user.email,
        NetworkSetting { proxy, no_proxy },
    )
    .await?;
    Ok(Json(view(&state, &saved)))
}

/// The body of `PUT /sso/network` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct NetworkRequest {
    /// The proxy for IdP requests: `http://` or `https://` with an optional `user:password@`;
    /// `null`, omitted or `""` removes it; sent back as read (password masked) keeps it.
    #[serde(rename = "ProxyURL")]
    #[schema(max_length = 2048, example = "http://proxy.corp.example:3128")]
    pub proxy_url: Option<String>,
    /// Hosts reached directly, comma-separated (as `NO_PROXY`).
    #[serde(rename = "NoProxy")]
    pub no_proxy: Option<String>,
}
