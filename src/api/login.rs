//! Sign-in endpoints: `POST /sso/sso_url`, `POST /sso/authenticate`, `GET /sso/callback` and
//! `POST /sso/test_connection`. Each handler parses the request, calls the sign-in service
//! ([`crate::login`]) and maps its result; the flow itself is described there.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::instrument;

use crate::api::extract::{Admin, Fields, QueryParams, check_text};
use crate::api::pages::{PageError, callback_page};
use crate::error::{Error, Problem, Result};
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
pub fn routes() -> Routes {
    Routes::new()
        .post("/sso/sso_url", post_sso_url)
        .post("/sso/authenticate", post_authenticate)
        .get("/sso/callback", get_callback)
        .post("/sso/test_connection", post_test_connection)
}

/// What `sso_url` (and `sso_url_import_user`) answer: the seed's keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[utoipa::path(post, path = "/sso/sso_url", tag = "login", request_body = SsoUrlRequest,
    responses((status = 200, description = "The login transaction's handle and where to send the browser.", body = SsoUrlAnswer)))]
async fn post_sso_url(State(state): State<AppState>, f: Fields) -> Result<Response> {
    let username = f.req_str("Username", MAX_USERNAME)?;
    let callback = f.req_str("CallbackUrl", MAX_URL)?;
    let force_authn = f.opt_bool("ForceAuthn")?.unwrap_or(false);
    let started = login::start_login(
        &state,
        StartRequest {
            username: &username,
            callback_url: &callback,
            purpose: Purpose::Login,
            client: Client::Api,
            started_by_user_id: None,
            scopes: oidc::LOGIN_SCOPES,
            force_authn,
        },
    )
    .await?;
    Ok(Json(SsoUrlAnswer::from(&started)).into_response())
}

#[instrument(skip_all)]
#[utoipa::path(post, path = "/sso/authenticate", tag = "login", request_body = AuthenticateRequest,
    responses((status = 200, description = "The session JWT, as a JSON string.", body = String, content_type = "application/json"),
        (status = 401, description = "Failed authentication (`AUTH`): the IdP identity matches no active user of the account.", body = Problem, headers(("error-code" = String, description = "`AUTH`")))))]
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
#[utoipa::path(get, path = "/sso/callback", tag = "login", params(CallbackQuery),
    responses(
        (status = 200, description = "A page: the desktop sign-in completed, or the code for an API client to copy.", body = String, content_type = "text/html"),
        (status = 400, description = "A page saying why the sign-in failed.", body = String, content_type = "text/html"),
        (status = 500, description = "A page saying something went wrong (details in the log).", body = String, content_type = "text/html")
    ))]
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
#[utoipa::path(post, path = "/sso/test_connection", tag = "admin", security(("token" = []), ("bearer" = [])), params(TestConnectionQuery),
    responses((status = 200, description = "Each check of the stored configuration; nothing is changed.", body = ConnectionTest)))]
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

/// The body of `POST /sso/sso_url` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SsoUrlRequest {
    /// The user's username (email): only a hint of which account and IdP to use.
    #[schema(min_length = 1, max_length = 320, example = "user@example.com")]
    pub username: String,
    /// Where the IdP sends the browser back: a loopback http URL, `amove://…`, or an https
    /// URL the account's admin allowed.
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "http://localhost:29123/sso/callback"
    )]
    pub callback_url: String,
    /// Make the IdP ask for credentials again even when it has a session ("Sign in as
    /// someone else…"): OIDC `prompt=login`, SAML `ForceAuthn="true"`. Default false.
    #[serde(default)]
    pub force_authn: Option<bool>,
}

/// The body of `POST /sso/authenticate` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuthenticateRequest {
    /// The `Identifier` `sso_url` answered.
    pub identifier: String,
    /// The code the IdP redirected the browser with.
    pub authorization_code: String,
    /// The same `CallbackUrl` as given to `sso_url`.
    #[schema(max_length = 2048)]
    pub callback_url: String,
}

/// The query of `GET /sso/callback`: what the IdP redirects with (OpenAPI parameters).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The login transaction's state.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The IdP's error code, when it refused.
    pub error: Option<String>,
    /// The IdP's description of the error.
    pub error_description: Option<String>,
}

/// The query of `POST /sso/test_connection` (OpenAPI parameters).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestConnectionQuery {
    /// `okta`, `entraId` or `saml`.
    #[param(pattern = "^(okta|entraId|saml)$")]
    pub provider: String,
}
