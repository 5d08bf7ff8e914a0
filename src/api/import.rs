//! Import endpoints (admin): `POST /sso/sso_url_import_user`, `GET /sso/get_user_usergroups`
//! and `POST /usergroup/import_users`. They translate only: the import itself is
//! [`crate::login::import`].

use crate::api::routing::Routes;
use crate::sso::directory::Relation;
use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::instrument;

use crate::api::extract::{Admin, Fields, QueryParams};
use crate::api::login::SsoUrlAnswer;
use crate::error::{Error, Result};
use crate::login::import;
use crate::secret::Secret;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/sso/sso_url_import_user", post_sso_url_import_user)
        .get("/sso/get_user_usergroups", get_user_usergroups)
        .post("/usergroup/import_users", post_import_users)
}

#[instrument(skip_all)]
#[utoipa::path(post, path = "/sso/sso_url_import_user", tag = "import", security(("token" = []), ("bearer" = [])), request_body = ImportSignInRequest,
    responses((status = 200, description = "A sign-in asking the IdP for directory read scopes.", body = SsoUrlAnswer)))]
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
#[utoipa::path(get, path = "/sso/get_user_usergroups", tag = "import", security(("token" = []), ("bearer" = [])), params(UserGroupsQuery),
    responses((status = 200, description = "The IdP's users with their groups (every page read).", body = Vec<Relation>,
        headers(("import-id" = i64, description = "The import to pass as `ImportId` to `/usergroup/import_users`.")))))]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct Skipped {
    user: String,
    reason: String,
}

/// `POST /usergroup/import_users`: `{ImportId, ExternalIds?}` — persists the users of a
/// directory read (all, or those named) with their groups, in one transaction.
#[instrument(skip_all)]
#[utoipa::path(post, path = "/usergroup/import_users", tag = "import", security(("token" = []), ("bearer" = [])), request_body = ImportRequest,
    responses((status = 200, description = "What the import created and updated.", body = ImportAnswer)))]
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

/// The body of `POST /sso/sso_url_import_user` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ImportSignInRequest {
    /// Where the IdP sends the browser back.
    #[schema(max_length = 2048)]
    pub callback_url: String,
    /// The admin's username at the IdP (a login hint).
    pub username: Option<String>,
}

/// The query of `GET /sso/get_user_usergroups` (OpenAPI parameters).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserGroupsQuery {
    /// The code the IdP redirected the browser with.
    #[serde(rename = "authorizationCode")]
    #[param(max_length = 4096)]
    pub authorization_code: String,
    /// The callback URL of the import sign-in.
    #[serde(rename = "callbackUrl")]
    pub callback_url: String,
    /// The import sign-in's `Identifier` (default: the caller's latest with that callback).
    pub identifier: Option<String>,
}

/// The body of `POST /usergroup/import_users` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ImportRequest {
    /// The `Import-Id` header of `/sso/get_user_usergroups`.
    pub import_id: i64,
    /// The IdP ids of the users to import (default: all of that read).
    pub external_ids: Option<Vec<String>>,
}
