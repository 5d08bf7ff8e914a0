//! `GET /health`: 200 when the agent is ready (no auth).

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(get_health))
}

/// `GET /health`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// Always `ok` (the agent answers only once it is ready).
    pub status: &'static str,
    /// The agent's version.
    pub version: &'static str,
}

async fn get_health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}
