//! SAML 2.0 endpoints: the Assertion Consumer Service the IdP's page posts to, the SP
//! metadata admins register, and the SAML connection test.
//!
//! The ACS answers browsers, so its failures are readable HTML pages, never a code.

use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tracing::instrument;
use url::Url;

use crate::api::AppState;
use crate::api::extract::{QueryParams, read_body, truncate};
use crate::api::login::{audit_refusal, error_page, seal_context};
use crate::auth::Principal;
use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::oidc::Check;
use crate::sso::{cert, saml};
use crate::store::idp::{self, IdpConfig, Kind};
use crate::store::{accounts, replay, transactions};

/// How long the one-time code the ACS issues can be redeemed.
pub const CODE_TTL_SECS: i64 = 120;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/saml/acs", post(post_acs))
        .route("/sso/saml/metadata", get(get_metadata))
}

/// The agent's ACS URL, following the address it is bound to.
pub fn acs_url(state: &AppState) -> String {
    format!("{}/sso/saml/acs", state.base_url())
}

/// The SP side of a stored SAML configuration.
pub fn sp_config(state: &AppState, config: &IdpConfig) -> Result<saml::SpConfig> {
    let mut certificates = Vec::new();
    for pem in [
        config.certificate.as_deref(),
        config.next_certificate.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        certificates.push(
            saml::pem_to_der(pem)
                .ok_or_else(|| Error::internal("stored certificate is not PEM"))?,
        );
    }
    let missing = |f: &str| Error::internal(format!("SAML configuration without {f}"));
    Ok(saml::SpConfig {
        sp_entity_id: config
            .sp_entity_id
            .clone()
            .ok_or_else(|| missing("SPEntityId"))?,
        acs_url: acs_url(state),
        idp_sso_url: config
            .idp_sso_url
            .clone()
            .ok_or_else(|| missing("IdPSSOURL"))?,
        idp_entity_id: config.idp_entity_id.clone(),
        certificates,
    })
}

#[instrument(skip_all)]
async fn post_acs(State(state): State<AppState>, req: Request) -> Response {
    match acs(&state, req).await {
        Ok(location) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            match HeaderValue::from_str(location.as_str()) {
                Ok(v) => {
                    r.headers_mut().insert(LOCATION, v);
                    r.headers_mut()
                        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    r
                }
                Err(_) => error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The sign-in's callback URL cannot be used.",
                ),
            }
        }
        Err((account, actor, e)) => {
            audit_refusal(&state, account, &actor, &e).await;
            let status = match &e {
                Error::Invalid(_) | Error::Fields(_) => StatusCode::BAD_REQUEST,
                Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                Error::Sso(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::FORBIDDEN,
            };
            let message = e
                .public_messages()
                .map(|m| m.join("; "))
                .unwrap_or_else(|| "Something went wrong in the agent; see its log.".into());
            error_page(
                status,
                &format!("The SAML response was refused: {message}."),
            )
        }
    }
}

type AcsFailure = (Option<i64>, String, Error);

/// Validates the posted response; on success returns where to send the browser: the
/// transaction's callback URL with a one-time `code` and the `state`.
async fn acs(state: &AppState, req: Request) -> std::result::Result<Url, AcsFailure> {
    let anon = |e: Error| (None, "anonymous".to_string(), e);
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
        return Err(anon(Error::invalid(format!(
            "the ACS takes an HTML form post (application/x-www-form-urlencoded), not '{}'",
            truncate(ct, 60)
        ))));
    }
    let body = read_body(req, state.settings.acs_body_limit)
        .await
        .map_err(anon)?;
    let (mut response, mut relay) = (None, None);
    for (k, v) in form_urlencoded::parse(&body) {
        let slot = match k.as_ref() {
            "SAMLResponse" => &mut response,
            "RelayState" => &mut relay,
            _ => continue,
        };
        if slot.is_some() {
            return Err(anon(Error::invalid(format!("{k} is given more than once"))));
        }
        *slot = Some(v.into_owned());
    }
    let response = response
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anon(Error::invalid("SAMLResponse is missing")))?;
    let relay = relay.filter(|r| !r.is_empty() && r.len() <= 256).ok_or_else(|| {
        anon(Error::Security(
            "it carries no RelayState of a sign-in started by this agent (unsolicited responses are refused)".into(),
        ))
    })?;
    let now = state.now();
    let r = relay.clone();
    let t = state
        .db
        .read(move |c| transactions::by_state(c, &r))
        .await
        .map_err(anon)?
        .filter(|t| t.provider == Kind::Saml)
        .ok_or_else(|| {
            anon(Error::Security(
                "it does not answer a sign-in started by this agent (unknown RelayState; unsolicited responses are refused)".into(),
            ))
        })?;
    let fail = |e: Error| (Some(t.account_id), t.login_hint.clone(), e);
    if t.consumed_at.is_some() || t.code_hash.is_some() {
        return Err(fail(Error::Security(
            "this sign-in was already answered; start again".into(),
        )));
    }
    if t.is_expired(now) {
        return Err(fail(Error::Security(
            "this sign-in has expired (10 minutes); start again".into(),
        )));
    }
    let (aid, config_id) = (t.account_id, t.idp_config_id);
    let config = state
        .db
        .read(move |c| idp::get(c, aid, Kind::Saml))
        .await
        .map_err(fail)?
        .filter(|c| c.id == config_id)
        .ok_or_else(|| {
            fail(Error::Sso(
                "the SAML configuration changed since this sign-in started; start again".into(),
            ))
        })?;
    let sp = sp_config(state, &config).map_err(fail)?;
    let request_id = t.saml_request_id.clone().unwrap_or_default();
    // Signature verification and parsing are CPU work in libxmlsec: off the async workers.
    let identity = tokio::task::spawn_blocking(move || {
        saml::validate_response(&sp, &response, &request_id, now)
    })
    .await
    .map_err(|e| fail(Error::internal(format!("SAML validation task: {e}"))))?
    .map_err(|msg| fail(Error::Security(msg)))?;

    let code = random_token().map_err(fail)?;
    let code_hash = sha256_hex(&code);
    let result = serde_json::to_string(&identity).map_err(|e| fail(Error::internal(e)))?;
    let sealed = state
        .sealer
        .seal_secret(
            &Secret::new(result),
            &seal_context(&t.handle_hash, "saml_result"),
        )
        .map_err(fail)?;
    let (key, issuer, assertion_id, until) = (
        t.key(),
        identity.issuer.clone(),
        identity.assertion_id.clone(),
        identity.replayable_until,
    );
    state
        .db
        .write(move |tx| {
            replay::remember(tx, &issuer, &assertion_id, until, now)?;
            transactions::set_code(tx, &key, &code_hash, now + CODE_TTL_SECS, Some(&sealed))
        })
        .await
        .map_err(fail)?;
    let mut url =
        Url::parse(&t.callback_url).map_err(|_| fail(Error::internal("stored callback URL")))?;
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &t.state);
    Ok(url)
}

/// `GET /sso/saml/metadata?account=IDENT`: the SP metadata of the account's SAML
/// configuration (no auth: it is public by nature, and IdPs fetch it).
async fn get_metadata(State(state): State<AppState>, q: QueryParams) -> Result<Response> {
    let ident = q
        .get("account")
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| Error::invalid("account is required (the account identifier)"))?
        .trim()
        .to_lowercase();
    let i = ident.clone();
    let config = state
        .db
        .read(move |c| {
            let Some(a) = accounts::by_identifier(c, &i)? else { return Ok(None) };
            idp::get(c, a.id, Kind::Saml)
        })
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "account '{}' has no SAML configuration; an admin sets SPEntityId with /sso/setup_saml first",
                truncate(&ident, 64)
            ))
        })?;
    let entity = config.sp_entity_id.unwrap_or_default();
    let xml = saml::sp_metadata(&entity, &acs_url(&state));
    let mut r = xml.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    Ok(r)
}

/// `POST /sso/test_connection?provider=saml`: the stored certificates (subject, validity, days
/// to expiry) and URLs. Changes nothing.
pub async fn test_connection(state: &AppState, p: &Principal) -> Result<Json<Value>> {
    let aid = p.account_id();
    let config = state
        .db
        .read(move |c| idp::get(c, aid, Kind::Saml))
        .await?
        .ok_or_else(|| {
            Error::NotFound("there is no SAML configuration to test; set one up first".into())
        })?;
    let now = state.now();
    let mut checks = vec![Check::pass(
        "Configuration",
        format!(
            "SPEntityId {}, {}",
            config.sp_entity_id.as_deref().unwrap_or(""),
            if config.active {
                "active"
            } else {
                "not active"
            }
        ),
    )];
    for (name, pem) in [
        ("Certificate", config.certificate.as_deref()),
        ("Next certificate", config.next_certificate.as_deref()),
    ] {
        let Some(pem) = pem else { continue };
        checks.push(match cert::parse(name, pem) {
            Ok(c) if c.is_expired(now) => {
                Check::fail(name, format!("expired: {}", c.describe(now)))
            }
            Ok(c) if c.not_before > now => Check::pass(
                name,
                format!("not yet valid (rollover): {}", c.describe(now)),
            ),
            Ok(c) if c.days_to_expiry(now) < 30 => Check::fail(
                name,
                format!(
                    "expires in under 30 days, plan the rollover: {}",
                    c.describe(now)
                ),
            ),
            Ok(c) => Check::pass(name, c.describe(now)),
            Err(e) => Check::fail(name, e),
        });
    }
    checks.push(Check::pass(
        "IdP SSO URL",
        config.idp_sso_url.clone().unwrap_or_default(),
    ));
    checks.push(Check::pass(
        "Service provider",
        format!(
            "ACS URL {} (HTTP-POST); metadata at {}/sso/saml/metadata?account={}",
            acs_url(state),
            state.base_url(),
            p.account_identifier
        ),
    ));
    let ok = checks.iter().all(|c| c.ok);
    Ok(Json(json!({ "Ok": ok, "Checks": checks })))
}
