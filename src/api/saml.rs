//! SAML 2.0 endpoints: the Assertion Consumer Service the IdP's page posts to, the SP
//! metadata admins register, and the agent's SP key pairs (list, rotate). All translate
//! only: the work is [`crate::login::acs`] and [`crate::login::sp_keys`].
//!
//! The ACS answers browsers, so its failures are readable HTML pages, never a code.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::instrument;

use crate::api::extract::{Admin, Fields, QueryParams, read_body, truncate};
use crate::api::pages::PageError;
use crate::api::routing::Routes;
use crate::error::{Error, Result};
use crate::login::acs::{self, AcsPost};
use crate::login::audit_refusal;
use crate::login::sp_keys;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/sso/saml/acs", post_acs)
        .get("/sso/saml/metadata", get_metadata)
        .get(crate::login::slo::SLO_PATH, get_slo)
        .post("/sso/saml/refresh_metadata", refresh_metadata)
        .get("/sso/saml/sp_keys", get_sp_keys)
        .post("/sso/saml/sp_keys/rotate", rotate_sp_keys)
        .post("/sso/saml/sp_keys/finish_rotation", finish_sp_key_rotation)
}

/// What `POST /sso/saml/refresh_metadata` changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MetadataRefresh {
    /// One line per change (also in the audit trail); empty when nothing changed.
    pub changes: Vec<String>,
}

/// `POST /sso/saml/refresh_metadata`: reads the IdP's metadata now and applies a certificate
/// rollover or a moved SSO URL (what the agent also does every 12 hours).
#[utoipa::path(post, path = "/sso/saml/refresh_metadata", tag = "saml", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "What changed (each change also audited); `SSO` when the metadata cannot be read.", body = MetadataRefresh)))]
async fn refresh_metadata(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> Result<Json<MetadataRefresh>> {
    let changes =
        crate::login::idp_metadata::refresh(&state, p.account_id(), &p.user.email).await?;
    Ok(Json(MetadataRefresh { changes }))
}

/// The account's SP key pairs (`GET /sso/saml/sp_keys`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SpKeysView {
    /// Signing keys first, then encryption keys; the active one of each first.
    pub keys: Vec<SpKeyView>,
}

/// One SP key pair as an admin sees it: the certificate, never the private key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SpKeyView {
    /// Id.
    pub id: i64,
    /// `signing` or `encryption`.
    #[serde(rename = "Use")]
    pub use_: &'static str,
    /// `active`, or `retiring` during a rotation.
    pub status: &'static str,
    /// For a signing key: whether it signs AuthnRequests now.
    pub signs: bool,
    /// The certificate (PEM) to give the IdP.
    pub certificate: String,
    /// Its subject.
    pub subject: String,
    /// End of the certificate's validity (RFC 3339).
    pub not_after: String,
    /// Whole days until then.
    pub days_left: i64,
    /// When a retiring key stops working (RFC 3339).
    pub retire_at: Option<String>,
}

async fn sp_keys_view(state: &AppState, account_id: i64) -> Result<Json<SpKeysView>> {
    let now = state.now();
    let keys = sp_keys::list(state, account_id).await?;
    Ok(Json(SpKeysView {
        keys: keys
            .into_iter()
            .map(|k| SpKeyView {
                id: k.id,
                use_: k.key_use.as_str(),
                status: if k.retire_at.is_some() {
                    "retiring"
                } else {
                    "active"
                },
                signs: k.signs,
                subject: crate::sso::cert::parse("certificate", &k.certificate_pem)
                    .map(|c| c.subject)
                    .unwrap_or_default(),
                certificate: k.certificate_pem,
                not_after: crate::clock::rfc3339(k.not_after),
                days_left: (k.not_after - now).div_euclid(86_400),
                retire_at: k.retire_at.map(crate::clock::rfc3339),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/sso/saml/sp_keys", tag = "saml", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The account's SP signing and encryption key pairs (certificates, never private keys).", body = SpKeysView)))]
async fn get_sp_keys(State(state): State<AppState>, Admin(p): Admin) -> Result<Json<SpKeysView>> {
    sp_keys_view(&state, p.account_id()).await
}

/// `POST /sso/saml/sp_keys/rotate` `{"GraceDays": 30}`: new key pairs, published beside the
/// old ones until the grace period ends (or the rotation is finished).
#[utoipa::path(post, path = "/sso/saml/sp_keys/rotate", tag = "saml", security(("token" = []), ("bearer" = [])), request_body = RotateRequest,
    responses((status = 200, description = "The key pairs after the rotation: the new ones active, the old ones retiring.", body = SpKeysView)))]
async fn rotate_sp_keys(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<SpKeysView>> {
    let grace = f
        .opt_i64("GraceDays")?
        .unwrap_or(sp_keys::DEFAULT_GRACE_DAYS);
    sp_keys::rotate(&state, p.account_id(), &p.user.email, grace).await?;
    sp_keys_view(&state, p.account_id()).await
}

/// `POST /sso/saml/sp_keys/finish_rotation`: the previous key pairs retire now.
#[utoipa::path(post, path = "/sso/saml/sp_keys/finish_rotation", tag = "saml", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The key pairs left: the retiring ones are gone.", body = SpKeysView)))]
async fn finish_sp_key_rotation(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> Result<Json<SpKeysView>> {
    sp_keys::finish_rotation(&state, p.account_id(), &p.user.email).await?;
    sp_keys_view(&state, p.account_id()).await
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
        Ok(location) => see_other(&location).unwrap_or_else(|| {
            PageError::acs(&Error::internal(
                "the sign-in's callback URL cannot be used",
            ))
            .into_response()
        }),
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

/// A 303 to `location`, not cached; `None` when it cannot be a header.
fn see_other(location: &url::Url) -> Option<Response> {
    let v = HeaderValue::from_str(location.as_str()).ok()?;
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(LOCATION, v);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(r)
}

/// The query of `GET /sso/saml/slo` (OpenAPI parameters): the HTTP-Redirect binding.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SloQuery {
    /// A LogoutResponse (the answer to the agent's sign-out), deflated and base64.
    #[serde(rename = "SAMLResponse")]
    pub saml_response: Option<String>,
    /// A LogoutRequest from the IdP, deflated and base64.
    #[serde(rename = "SAMLRequest")]
    pub saml_request: Option<String>,
    /// The RelayState.
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
    /// The signature algorithm (RSA-SHA256/384/512).
    #[serde(rename = "SigAlg")]
    pub sig_alg: Option<String>,
    /// The query signature (required).
    #[serde(rename = "Signature")]
    pub signature: Option<String>,
}

/// `GET /sso/saml/slo`: SAML single logout (HTTP-Redirect). A signed LogoutResponse to the
/// agent's sign-out shows the signed-out page; a signed LogoutRequest from the IdP ends the
/// sessions it names and is answered with a LogoutResponse (303 to the IdP).
#[instrument(skip_all)]
#[utoipa::path(get, path = "/sso/saml/slo", tag = "saml", params(SloQuery),
    responses(
        (status = 200, description = "A page: signed out here and at the identity provider.", body = String, content_type = "text/html"),
        (status = 303, description = "The IdP's LogoutRequest was handled: back to the IdP with the LogoutResponse."),
        (status = 400, description = "A page saying why the logout message was refused.", body = String, content_type = "text/html"),
        (status = 500, description = "A page saying something went wrong (details in the log).", body = String, content_type = "text/html")
    ))]
async fn get_slo(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    match crate::login::slo::handle(&state, query.as_deref()).await {
        Ok(crate::login::slo::SloOutcome::SignedOut) => crate::api::pages::signed_out_page(),
        Ok(crate::login::slo::SloOutcome::Answer(url)) => see_other(&url).unwrap_or_else(|| {
            PageError::sign_out(&Error::internal("the LogoutResponse URL")).into_response()
        }),
        Err(e) => PageError::sign_out(&e).into_response(),
    }
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

/// The body of `POST /sso/saml/sp_keys/rotate` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct RotateRequest {
    /// Days the old key pairs keep working beside the new ones, 1 to 365 (default 30).
    #[serde(rename = "GraceDays")]
    #[schema(minimum = 1, maximum = 365)]
    pub grace_days: Option<i64>,
}
