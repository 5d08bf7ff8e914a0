//! Sign-in endpoints: `POST /sso/sso_url`, `POST /sso/authenticate`, `GET /sso/callback` and
//! `POST /sso/test_connection`. Each handler parses the request, calls the sign-in service
//! ([`crate::login`]) and maps its result; the flow itself is described there.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tracing::instrument;

use crate::api::extract::{Admin, Fields, QueryParams, check_text};
use crate::api::pages::{PageError, callback_page};
use crate::error::{Error, Result};
use crate::login::callback::{MAX_CODE, Redirect, agent_callback};
use crate::login::check::{ConnectionTest, test_connection};
use crate::login::{self, StartRequest};
use crate::secret::Secret;
use crate::sso::oidc;
use crate::state::AppState;
use crate::store::idp::Kind;
use crate::store::transactions::{Client, Purpose};

const MAX_USERNAME: usize = 320;
const MAX_URL: usize = 2048;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/sso_url", post(post_sso_url))
        .route("/sso/authenticate", post(post_authenticate))
        .route("/sso/callback", get(get_callback))
        .route("/sso/test_connection", post(post_test_connection))
}

/// What `sso_url` (and `sso_url_import_user`) answer: the seed's keys.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SsoUrlAnswer<'a> {
    /// The login transaction's handle.
    pub identifier: &'a str,
    /// Where to send the browser.
    pub url: &'a str,
}

impl<'a> From<&'a login::Started> for SsoUrlAnswer<'a> {
    fn from(s: &'a login::Started) -> Self {
        Self {
            identifier: &s.identifier,
            url: s.url.as_str(),
        }
    }
}

#[instrument(skip_all)]
async fn post_sso_url(State(state): State<AppState>, f: Fields) -> Result<Response> {
    let username = f.req_str("Username", MAX_USERNAME)?;
    let callback = f.req_str("CallbackUrl", MAX_URL)?;
    let started = login::start_login(
        &state,
        StartRequest {
            username: &username,
            callback_url: &callback,
            purpose: Purpose::Login,
            client: Client::Api,
            started_by_user_id: None,
            scopes: oidc::LOGIN_SCOPES,
        },
    )
    .await?;
    Ok(Json(SsoUrlAnswer::from(&started)).into_response())
}

#[instrument(skip_all)]
async fn post_authenticate(State(state): State<AppState>, f: Fields) -> Result<Json<String>> {
    let identifier = f.req_str("Identifier", 256)?;
    let code = f
        .opt_str("AuthorizationCode")?
        .ok_or_else(|| Error::invalid("AuthorizationCode is required"))?;
    check_text("AuthorizationCode", &code, MAX_CODE)?;
    let callback = f.req_str("CallbackUrl", MAX_URL)?;
    let signed_in =
        login::authenticate(&state, &identifier, &Secret::new(code.trim()), &callback).await?;
    Ok(Json(signed_in.token.expose().to_string()))
}

#[instrument(skip_all)]
async fn get_callback(State(state): State<AppState>, q: QueryParams) -> Response {
    let redirect = Redirect {
        state: q.get("state"),
        code: q.get("code"),
        error: q.get("error"),
        error_description: q.get("error_description"),
    };
    match agent_callback(&state, redirect).await {
        Ok(outcome) => callback_page(&outcome),
        Err(e) => PageError::callback(&e).into_response(),
    }
}

/// `POST /sso/test_connection?provider=okta|entraId|saml`.
async fn post_test_connection(
    State(state): State<AppState>,
    Admin(p): Admin,
    q: QueryParams,
) -> Result<Json<ConnectionTest>> {
    let provider = q.get("provider").unwrap_or("");
    let kind = match provider.to_ascii_lowercase().as_str() {
        "okta" => Kind::Okta,
        "entraid" | "entra" => Kind::Entra,
        "saml" => Kind::Saml,
        _ => {
            return Err(Error::invalid(
                "provider must be okta, entraId or saml (query parameter)",
            ));
        }
    };
    let report = test_connection(&state, p.account_id(), &p.account_identifier, kind).await?;
    Ok(Json(report))
}
