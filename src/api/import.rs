//! Import endpoints (admin): `POST /sso/sso_url_import_user`, `GET /sso/get_user_usergroups`
//! and `POST /usergroup/import_users`. They translate only: the import itself is
//! [`crate::login::import`].

use std::collections::HashSet;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tracing::instrument;

use crate::api::extract::{Admin, Fields, QueryParams};
use crate::api::login::SsoUrlAnswer;
use crate::error::{Error, Result};
use crate::login::import;
use crate::secret::Secret;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/sso_url_import_user", post(post_sso_url_import_user))
        .route("/sso/get_user_usergroups", get(get_user_usergroups))
        .route("/usergroup/import_users", post(post_import_users))
}

#[instrument(skip_all)]
async fn post_sso_url_import_user(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Response> {
    let callback = f.req_str("CallbackUrl", 2048)?;
    let username = f.opt_str("Username")?;
    let started = import::start_import(&state, &p, &callback, username).await?;
    Ok(Json(SsoUrlAnswer::from(&started)).into_response())
}

#[instrument(skip_all)]
async fn get_user_usergroups(
    State(state): State<AppState>,
    Admin(p): Admin,
    q: QueryParams,
) -> Result<Response> {
    let code = q
        .get("authorizationCode")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::invalid("authorizationCode is required"))?;
    if code.len() > 4096 {
        return Err(Error::invalid("authorizationCode is too long"));
    }
    let code = Secret::new(code.trim());
    let callback = q
        .get("callbackUrl")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::invalid("callbackUrl is required"))?
        .trim()
        .to_string();
    let read = import::read_directory(&state, &p, &code, callback, q.get("identifier")).await?;
    let mut resp = Json(&read.relations).into_response();
    if let Ok(v) = HeaderValue::from_str(&read.import_id.to_string()) {
        resp.headers_mut().insert("import-id", v);
    }
    Ok(resp)
}

/// What an import persisted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImportAnswer {
    created: Vec<String>,
    updated: Vec<String>,
    skipped: Vec<Skipped>,
    groups: usize,
    #[serde(rename = "RemovedAtIdP")]
    removed_at_idp: Vec<String>,
}

/// A user an import left out, and why.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Skipped {
    user: String,
    reason: String,
}

/// `POST /usergroup/import_users`: `{ImportId, ExternalIds?}` — persists the users of a
/// directory read (all, or those named) with their groups, in one transaction.
#[instrument(skip_all)]
async fn post_import_users(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<ImportAnswer>> {
    let import_id = f.opt_i64("ImportId")?.ok_or_else(|| {
        Error::invalid("ImportId is required (the Import-Id header of /sso/get_user_usergroups)")
    })?;
    let selected = f
        .opt_str_list("ExternalIds")?
        .map(|v| v.into_iter().collect::<HashSet<_>>());
    let out = import::persist(&state, &p, import_id, selected).await?;
    Ok(Json(ImportAnswer {
        created: out.created,
        updated: out.updated,
        skipped: out
            .skipped
            .into_iter()
            .map(|(user, reason)| Skipped { user, reason })
            .collect(),
        groups: out.groups,
        removed_at_idp: out.removed_at_idp,
    }))
}
