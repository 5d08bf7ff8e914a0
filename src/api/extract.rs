//! Extractors: JSON bodies with case-insensitive keys, query parameters, and the
//! authenticated caller. Each rejects with our own error format, naming the problem.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::state::AppState;

/// Bodies up to this size are read in full even when over the limit, so the client sees our
/// error instead of a connection reset while it is still sending.
const DRAIN_MAX: usize = 1024 * 1024;

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |n: u64| {
        Error::invalid(format!(
            "request body is {n} bytes; the limit is {limit} bytes"
        ))
    };
    if let Some(n) = declared
        && n > DRAIN_MAX as u64
    {
        return Err(too_large(n));
    }
    let bytes = axum::body::to_bytes(req.into_body(), DRAIN_MAX.max(limit))
        .await
        .map_err(|_| {
            Error::invalid(format!(
                "request body could not be read or is larger than {limit} bytes"
            ))
        })?;
    if bytes.len() > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Checks that the request says its body is JSON (a cross-site HTML form cannot).
pub fn require_json_content_type(parts_headers: &axum::http::HeaderMap) -> Result<()> {
    let ct = parts_headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut pieces = ct.split(';').map(str::trim);
    let essence = pieces.next().unwrap_or("");
    if !essence.eq_ignore_ascii_case("application/json") {
        let got = if ct.is_empty() {
            "none".to_string()
        } else {
            format!("'{}'", truncate(ct, 80))
        };
        return Err(Error::invalid(format!(
            "Content-Type must be application/json (got {got})"
        )));
    }
    for p in pieces {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(Error::invalid("Content-Type charset must be utf-8"));
        }
    }
    Ok(())
}

pub use crate::fields::{Fields, check_text};
pub use crate::text::truncate;

impl<S: Send + Sync> FromRequest<S> for Fields
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let state = <AppState as axum::extract::FromRef<S>>::from_ref(state);
        json_fields(req, state.settings.body_limit).await
    }
}

/// A JSON object body of at most `limit` bytes.
async fn json_fields(req: Request, limit: usize) -> Result<Fields> {
    require_json_content_type(req.headers())?;
    let bytes = read_body(req, limit).await?;
    Fields::parse(&bytes)
}

/// [`Fields`] of a SAML configuration body, which may carry the IdP's whole metadata
/// (`IdPMetadataXML`): read up to the metadata's size limit plus the usual body limit.
pub struct SamlFields(pub Fields);

impl<S: Send + Sync> FromRequest<S> for SamlFields
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let state = <AppState as axum::extract::FromRef<S>>::from_ref(state);
        let limit =
            state.settings.body_limit + crate::sso::saml::idp_metadata::MAX_METADATA_BYTES * 2;
        json_fields(req, limit).await.map(SamlFields)
    }
}

pub use crate::query::QueryParams;

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        Ok(Self::parse(parts.uri.query()))
    }
}

/// The bearer token of a request, not yet checked (the handler decides how: a renewal
/// accepts an expired session).
pub struct BearerToken(pub crate::secret::Secret);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        bearer_token(parts).map(|t| Self(crate::secret::Secret::new(t)))
    }
}

/// The bearer token of a request: `?token=` (as the seed) or `Authorization: Bearer`.
pub fn bearer_token(parts: &Parts) -> Result<String> {
    let query = QueryParams::parse(parts.uri.query())
        .get("token")
        .map(str::to_string);
    let header = match parts.headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| Error::Token("the Authorization header is malformed".into()))?;
            let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
                return Err(Error::Token(
                    "the Authorization header must be 'Bearer TOKEN'".into(),
                ));
            }
            Some(rest.trim().to_string())
        }
    };
    match (query, header) {
        (Some(q), Some(h)) if q != h => Err(Error::Token(
            "the token query parameter and the Authorization header disagree".into(),
        )),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(Error::Token(
            "a token is required: pass ?token=TOKEN or an Authorization: Bearer header".into(),
        )),
    }
}

/// Any authenticated caller (active user, valid token).
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let state = <AppState as axum::extract::FromRef<S>>::from_ref(state);
        let token = bearer_token(parts)?;
        Ok(Auth(state.auth.authenticate(&token).await?))
    }
}

/// An active owner or admin of their account.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Auth(p) = Auth::from_request_parts(parts, state).await?;
        if !p.role().is_admin() {
            return Err(Error::Access(format!(
                "this requires an admin of account '{}'; {} is a standard user",
                p.account_identifier, p.user.email
            )));
        }
        Ok(Admin(p))
    }
}
