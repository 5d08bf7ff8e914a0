//! `GET /health`: 200 when the agent is ready (no auth).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::AppState;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(get_health))
}

async fn get_health() -> Json<Value> {
    Json(json!({ "Status": "ok", "Version": env!("CARGO_PKG_VERSION") }))
}
