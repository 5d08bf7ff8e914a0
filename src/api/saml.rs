//! SAML 2.0 endpoints: the Assertion Consumer Service the IdP's page posts to, and the SP
//! metadata admins register. Both translate only: the ACS's work is
//! [`crate::login::acs`].
//!
//! The ACS answers browsers, so its failures are readable HTML pages, never a code.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::instrument;

use crate::api::extract::{QueryParams, read_body, truncate};
use crate::api::pages::PageError;
use crate::error::{Error, Result};
use crate::login::acs::{self, AcsPost};
use crate::login::audit_refusal;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/saml/acs", post(post_acs))
        .route("/sso/saml/metadata", get(get_metadata))
}

#[instrument(skip_all)]
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
