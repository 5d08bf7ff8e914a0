//! SAML 2.0 endpoints: the Assertion Consumer Service the IdP's page posts to, and the SP
//! metadata admins register. Both translate only: the ACS's work is
//! [`crate::login::acs`].
//!
//! The ACS answers browsers, so its failures are readable HTML pages, never a code.

use crate::api::routing::Routes;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::instrument;

use crate::api::extract::{QueryParams, read_body, truncate};
use crate::api::pages::PageError;
use crate::error::{Error, Result};
use crate::login::acs::{self, AcsPost};
use crate::login::audit_refusal;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/sso/saml/acs", post_acs)
        .get("/sso/saml/metadata", get_metadata)
}

#[instrument(skip_all)]
#[utoipa::path(post, path = "/sso/saml/acs", tag = "saml",
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Valid: to the sign-in's CallbackUrl with `code` and `state`.", headers(("location" = String, description = "The CallbackUrl with `code` and `state`."))),
        (status = 400, description = "A page: the form or the response is malformed.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: a policy refused the response (signature, audience, replay…).", body = String, content_type = "text/html"),
        (status = 502, description = "A page: the identity provider answered an error.", body = String, content_type = "text/html"),
        (status = 500, description = "A page saying something went wrong (details in the log).", body = String, content_type = "text/html")
    ))]
async fn post_acs(State(state): State<AppState>, req: Request) -> Response {
    let post = match read_form(&state, req).await {
        Ok(post) => post,
        Err(e) => {
            audit_refusal(&state, None, "anonymous", &e).await;
            return PageError::acs(&e).into_response();
        }
    };
    match acs::receive(&state, post).await {
        Ok(location) => match HeaderValue::from_str(location.as_str()) {
            Ok(v) => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut().insert(LOCATION, v);
                r.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(_) => PageError::acs(&Error::internal(
                "the sign-in's callback URL cannot be used",
            ))
            .into_response(),
        },
        Err(e) => PageError::acs(&e).into_response(),
    }
}

/// The ACS form: an HTML form post (`application/x-www-form-urlencoded`) within the size
/// limit, each of `SAMLResponse` and `RelayState` at most once.
async fn read_form(state: &AppState, req: Request) -> Result<AcsPost> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(Error::invalid(format!(
            "the ACS takes an HTML form post (application/x-www-form-urlencoded), not '{}'",
            truncate(ct, 60)
        )));
    }
    let body = read_body(req, state.settings.acs_body_limit).await?;
    let mut post = AcsPost::default();
    for (k, v) in form_urlencoded::parse(&body) {
        let slot = match k.as_ref() {
            "SAMLResponse" => &mut post.saml_response,
            "RelayState" => &mut post.relay_state,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::invalid(format!("{k} is given more than once")));
        }
        *slot = Some(v.into_owned());
    }
    Ok(post)
}

/// `GET /sso/saml/metadata?account=IDENT`: the SP metadata of the account's SAML
/// configuration (no auth: it is public by nature, and IdPs fetch it).
#[utoipa::path(get, path = "/sso/saml/metadata", tag = "saml", params(("account" = String, Query, description = "The account identifier.")),
    responses((status = 200, description = "The SP metadata XML to register at the IdP.", body = String, content_type = "application/samlmetadata+xml")))]
async fn get_metadata(State(state): State<AppState>, q: QueryParams) -> Result<Response> {
    let ident = q
        .get("account")
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| Error::invalid("account is required (the account identifier)"))?;
    let xml = acs::sp_metadata(&state, ident).await?;
    let mut r = xml.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    Ok(r)
}

/// The ACS form (OpenAPI schema), as the IdP's page posts it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct AcsForm {
    /// The base64 SAML Response.
    #[serde(rename = "SAMLResponse")]
    pub saml_response: String,
    /// The RelayState of the AuthnRequest.
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
}
