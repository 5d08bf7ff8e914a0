//! `GET /health`: 200 when the agent is ready (no auth).

use crate::api::routing::Routes;
use axum::Json;
use serde::Serialize;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new().get("/health", get_health)
}

/// `GET /health`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// Always `ok` (the agent answers only once it is ready).
    pub status: &'static str,
    /// The agent's version.
    pub version: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "agent", responses((status = 200, description = "The agent is ready.", body = Health)))]
async fn get_health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}
