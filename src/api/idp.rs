//! The twelve identity provider configuration endpoints (admin): Okta, Entra ID, SAML.
//!
//! `setup_*` creates, `get_*` reads (or `null`), `update_*` replaces (the body carries the
//! `Id`), `delete_*` removes. The client secret is write-only: reads show a fixed mask, and an
//! update that sends the mask or omits the secret keeps the stored one.

use axum::extract::State;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};

use crate::api::extract::{Admin, Fields, check_text};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::login::idp_config::{DEFAULT_GRAPH_URL, secret_context};
use crate::secret::Secret;
use crate::sso::{cert, oidc, urls};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::idp::{self, IdpConfig, Kind};

pub use crate::api::idp_view::{IdpView, view};

/// What a read shows in place of the client secret.
pub const SECRET_MASK: &str = "********";

const MAX_ID: usize = 256;
const MAX_SECRET: usize = 2048;
const MAX_ENTITY_ID: usize = 1024;
const MAX_ATTRIBUTE_NAME: usize = 256;
const MAX_TENANTS: usize = 100;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/setup_okta", post(setup_okta))
        .route("/sso/get_okta", get(get_okta))
        .route("/sso/update_okta", put(update_okta))
        .route("/sso/delete_okta", delete(delete_okta))
        .route("/sso/setup_entraId", post(setup_entra_id))
        .route("/sso/get_entraId", get(get_entra_id))
        .route("/sso/update_entraId", put(update_entra_id))
        .route("/sso/delete_entraId", delete(delete_entra_id))
        .route("/sso/setup_saml", post(setup_saml))
        .route("/sso/get_saml", get(get_saml))
        .route("/sso/update_saml", put(update_saml))
        .route("/sso/delete_saml", delete(delete_saml))
}

async fn setup_okta(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    setup(s, p, Kind::Okta, f).await
}
async fn get_okta(State(s): State<AppState>, Admin(p): Admin) -> Result<Json<Option<IdpView>>> {
    read(s, p, Kind::Okta).await
}
async fn update_okta(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    update(s, p, Kind::Okta, f).await
}
async fn delete_okta(State(s): State<AppState>, Admin(p): Admin) -> Result<()> {
    remove(s, p, Kind::Okta).await
}
async fn setup_entra_id(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    setup(s, p, Kind::Entra, f).await
}
async fn get_entra_id(State(s): State<AppState>, Admin(p): Admin) -> Result<Json<Option<IdpView>>> {
    read(s, p, Kind::Entra).await
}
async fn update_entra_id(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    update(s, p, Kind::Entra, f).await
}
async fn delete_entra_id(State(s): State<AppState>, Admin(p): Admin) -> Result<()> {
    remove(s, p, Kind::Entra).await
}
async fn setup_saml(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    setup(s, p, Kind::Saml, f).await
}
async fn get_saml(State(s): State<AppState>, Admin(p): Admin) -> Result<Json<Option<IdpView>>> {
    read(s, p, Kind::Saml).await
}
async fn update_saml(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    update(s, p, Kind::Saml, f).await
}
async fn delete_saml(State(s): State<AppState>, Admin(p): Admin) -> Result<()> {
    remove(s, p, Kind::Saml).await
}

/// What the client secret of a request asks for.
enum SecretChange {
    /// Keep the stored secret (omitted, or the mask sent back).
    Keep,
    /// Store this one.
    Set(Secret),
}

/// A validated configuration from a request body.
struct Validated {
    config: IdpConfig,
    secret: SecretChange,
    /// Human summary for the audit trail (never secrets).
    summary: String,
}

/// Validates a request body into a configuration; every invalid field is reported at once.
fn validate(
    kind: Kind,
    f: &Fields,
    account_id: i64,
    now: i64,
    is_update: bool,
    loopback_graph: bool,
) -> Result<Validated> {
    let mut errors = Vec::new();
    let mut take = |r: Result<Option<String>>| match r {
        Ok(v) => v,
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    let active = match f.opt_bool("Active") {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            take(Err(e));
            false
        }
    };
    let mut config = IdpConfig {
        id: 0,
        account_id,
        kind,
        active,
        client_id: None,
        client_secret_enc: None,
        openid_url: None,
        graph_url: None,
        certificate: None,
        next_certificate: None,
        sp_entity_id: None,
        idp_sso_url: None,
        idp_entity_id: None,
        groups_attribute: None,
        allowed_tenants: Vec::new(),
        allow_expired_certificate: false,
        sign_authn_requests: false,
        require_encrypted_assertions: false,
        version: 1,
        updated_at: now,
    };
    let mut secret = SecretChange::Keep;
    let mut summary;
    if kind.is_oidc() {
        config.client_id = take(f.req_str("ClientId", MAX_ID).map(Some));
        match f.opt_str("ClientSecret") {
            Ok(None) if !is_update => {
                take(Err(Error::invalid("ClientSecret is required"))).map_or((), |_| ())
            }
            Ok(None) => {}
            Ok(Some(s)) if is_update && s == SECRET_MASK => {}
            Ok(Some(s)) => match check_text("ClientSecret", &s, MAX_SECRET) {
                Ok(()) if s == SECRET_MASK => {
                    take(Err(Error::invalid(
                        "ClientSecret must be the real secret, not the mask",
                    )));
                }
                Ok(()) => secret = SecretChange::Set(Secret::new(s)),
                Err(e) => {
                    take(Err(e));
                }
            },
            Err(e) => {
                take(Err(e));
            }
        }
        config.openid_url = take(url_field(f, "OpenIdURL", true));
        if kind == Kind::Entra {
            config.graph_url = take(graph_url_field(f, loopback_graph))
                .or_else(|| Some(DEFAULT_GRAPH_URL.to_string()));
            match tenants_field(f, config.openid_url.as_deref()) {
                Ok(t) => config.allowed_tenants = t,
                Err(e) => {
                    take(Err(e));
                }
            }
        }
        summary = format!(
            "ClientId={}, OpenIdURL={}, Active={active}",
            config.client_id.as_deref().unwrap_or(""),
            config.openid_url.as_deref().unwrap_or("")
        );
        if let Some(g) = &config.graph_url
            && g != DEFAULT_GRAPH_URL
        {
            summary.push_str(&format!(", GraphURL={g}"));
            if urls::parse_graph_url(g, false).is_err() {
                summary.push_str(&format!(
                    " (loopback: test setting {} is on)",
                    urls::LOOPBACK_GRAPH_ENV
                ));
            }
        }
        if !config.allowed_tenants.is_empty() {
            summary.push_str(&format!(
                ", AllowedTenants={}",
                config.allowed_tenants.join(" ")
            ));
        }
    } else {
        // An optional boolean, false when omitted (`take` collects its error).
        let flag = |name| {
            f.opt_bool(name)
                .map(|v| v.filter(|b| *b).map(|_| String::new()))
        };
        config.allow_expired_certificate = take(flag("AllowExpiredCertificate")).is_some();
        config.sign_authn_requests = take(flag("SignAuthnRequests")).is_some();
        config.require_encrypted_assertions = take(flag("RequireEncryptedAssertions")).is_some();
        let expired_ok = config.allow_expired_certificate;
        config.certificate = take(cert_field(f, "Certificate", true, now, expired_ok));
        config.next_certificate = take(cert_field(f, "NextCertificate", false, now, expired_ok));
        config.sp_entity_id = take(f.req_str("SPEntityId", MAX_ENTITY_ID).map(Some));
        config.idp_sso_url = take(url_field(f, "IdPSSOURL", true));
        config.idp_entity_id = take(match f.opt_str("IdPEntityId") {
            Ok(Some(s)) if s.trim().is_empty() => Ok(None),
            Ok(Some(s)) => {
                check_text("IdPEntityId", &s, MAX_ENTITY_ID).map(|()| Some(s.trim().to_string()))
            }
            other => other,
        });
        config.groups_attribute = take(match f.opt_str("GroupsAttribute") {
            Ok(Some(s)) if s.trim().is_empty() => Ok(None),
            Ok(Some(s)) => check_text("GroupsAttribute", &s, MAX_ATTRIBUTE_NAME)
                .map(|()| Some(s.trim().to_string())),
            other => other,
        });
        summary = format!(
            "SPEntityId={}, IdPSSOURL={}, SignAuthnRequests={}, RequireEncryptedAssertions={}, \
             Active={active}",
            config.sp_entity_id.as_deref().unwrap_or(""),
            config.idp_sso_url.as_deref().unwrap_or(""),
            config.sign_authn_requests,
            config.require_encrypted_assertions
        );
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            Error::Invalid(errors.remove(0))
        } else {
            Error::Fields(errors)
        });
    }
    Ok(Validated {
        config,
        secret,
        summary,
    })
}

fn url_field(f: &Fields, name: &str, required: bool) -> Result<Option<String>> {
    let raw = match f.opt_str(name)? {
        Some(s) if !s.trim().is_empty() => s,
        Some(_) if required => return Err(Error::invalid(format!("{name} must not be blank"))),
        None if required => return Err(Error::invalid(format!("{name} is required"))),
        _ => return Ok(None),
    };
    if raw.len() > 2048 {
        return Err(Error::invalid(format!(
            "{name} must be at most 2048 characters"
        )));
    }
    urls::parse_idp_url(name, &raw)
        .map(|u| Some(u.to_string()))
        .map_err(Error::Invalid)
}

/// `GraphURL`: Microsoft Graph's root in one of its clouds (loopback only under the test
/// setting), stored without its trailing slash as before.
fn graph_url_field(f: &Fields, loopback_graph: bool) -> Result<Option<String>> {
    match f.opt_str("GraphURL")? {
        Some(s) if !s.trim().is_empty() => {
            let url = urls::parse_graph_url(&s, loopback_graph).map_err(Error::Invalid)?;
            Ok(Some(url.to_string()))
        }
        _ => Ok(None),
    }
}

/// `AllowedTenants` of an Entra ID configuration: tenant ids, required (non-empty) when
/// `OpenIdURL` is one of Microsoft's multi-tenant endpoints.
fn tenants_field(f: &Fields, openid_url: Option<&str>) -> Result<Vec<String>> {
    let raw = f.opt_str_list("AllowedTenants")?.unwrap_or_default();
    if raw.len() > MAX_TENANTS {
        return Err(Error::invalid(format!(
            "AllowedTenants lists at most {MAX_TENANTS} tenants"
        )));
    }
    let mut tenants = Vec::with_capacity(raw.len());
    for t in &raw {
        let t = oidc::tenant::parse_tenant_id(t)
            .map_err(|e| Error::invalid(format!("AllowedTenants: {e}")))?;
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    }
    let multi = openid_url
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| oidc::tenant::is_multi_tenant_url(&u));
    if multi && tenants.is_empty() {
        return Err(Error::invalid(
            "AllowedTenants is required for a multi-tenant Entra ID configuration (OpenIdURL \
             names common, organizations or consumers): list the tenant ids (GUIDs) whose users \
             may sign in",
        ));
    }
    Ok(tenants)
}

fn cert_field(
    f: &Fields,
    name: &str,
    required: bool,
    now: i64,
    expired_ok: bool,
) -> Result<Option<String>> {
    let raw = match f.opt_str(name)? {
        Some(s) if !s.trim().is_empty() => s,
        Some(_) if required => return Err(Error::invalid(format!("{name} must not be blank"))),
        None if required => return Err(Error::invalid(format!("{name} is required"))),
        _ => return Ok(None),
    };
    let c = cert::parse(name, &raw).map_err(Error::Invalid)?;
    c.check_key(name).map_err(Error::Invalid)?;
    if c.is_expired(now) && !expired_ok {
        return Err(Error::invalid(format!(
            "{name} expired on {}; upload the IdP's current certificate (or set \
             AllowExpiredCertificate for an IdP that never rotates)",
            crate::clock::rfc3339(c.not_after)
        )));
    }
    Ok(Some(c.pem))
}

fn action(kind: Kind, verb: &str) -> String {
    format!("idp.{}.{verb}", kind.as_str())
}

async fn setup(state: AppState, p: Principal, kind: Kind, f: Fields) -> Result<Json<IdpView>> {
    let now = state.now();
    let account_id = p.account_id();
    let v = validate(
        kind,
        &f,
        account_id,
        now,
        false,
        state.settings.loopback_graph,
    )?;
    let mut config = v.config;
    if let SecretChange::Set(s) = &v.secret {
        config.client_secret_enc = Some(
            state
                .sealer
                .seal_secret(s, &secret_context(account_id, kind))?,
        );
    }
    let actor = p.user.email.clone();
    let saved = state
        .db
        .write(move |tx| {
            if idp::get(tx, account_id, kind)?.is_some() {
                return Err(Error::Duplicate(format!(
                    "a {} configuration already exists for this account; update or delete it",
                    kind.label()
                )));
            }
            config.id = idp::insert(tx, &config, now)?;
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &actor, &action(kind, "create"), v.summary),
                now,
            )?;
            Ok(config)
        })
        .await?;
    Ok(Json(view(&state, &saved)))
}

async fn read(state: AppState, p: Principal, kind: Kind) -> Result<Json<Option<IdpView>>> {
    let account_id = p.account_id();
    let c = idp::get_cached(&state.db, &state.idp_cache, account_id, kind, p.generation).await?;
    Ok(Json(c.map(|c| view(&state, &c))))
}

async fn update(state: AppState, p: Principal, kind: Kind, f: Fields) -> Result<Json<IdpView>> {
    let now = state.now();
    let account_id = p.account_id();
    let id = f
        .opt_i64("Id")?
        .ok_or_else(|| Error::invalid("Id is required"))?;
    let v = validate(
        kind,
        &f,
        account_id,
        now,
        true,
        state.settings.loopback_graph,
    )?;
    let mut config = v.config;
    config.id = id;
    let (new_secret, summary) = match &v.secret {
        SecretChange::Set(s) => (
            Some(
                state
                    .sealer
                    .seal_secret(s, &secret_context(account_id, kind))?,
            ),
            format!("{}, ClientSecret changed", v.summary),
        ),
        SecretChange::Keep => (None, v.summary),
    };
    let actor = p.user.email.clone();
    let saved = state
        .db
        .write(move |tx| {
            let existing = idp::get(tx, account_id, kind)?
                .filter(|e| e.id == id)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "no {} configuration with Id {id} in this account",
                        kind.label()
                    ))
                })?;
            let moved = kind.is_oidc() && moves_the_secret(&existing, &config);
            if moved && new_secret.is_none() {
                return Err(Error::invalid(
                    "ClientSecret: changing OpenIdURL's host or the ClientId requires sending \
                     the client secret again (the stored one is never sent to another \
                     identity provider or client)",
                ));
            }
            let mut summary = summary;
            if moved {
                summary.push_str(&format!(
                    "; moved from ClientId={}, OpenIdURL={}",
                    existing.client_id.as_deref().unwrap_or(""),
                    existing.openid_url.as_deref().unwrap_or("")
                ));
            }
            config.client_secret_enc = new_secret.or(existing.client_secret_enc);
            idp::update(tx, &config, now)?;
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &actor, &action(kind, "update"), summary),
                now,
            )?;
            Ok(config)
        })
        .await?;
    Ok(Json(view(&state, &saved)))
}

/// Whether an update points the stored client secret somewhere new: another origin of
/// `OpenIdURL` (the token endpoint the secret goes to is that IdP's) or another `ClientId`.
/// Either way the admin must send the secret again, or the mask would hand the stored secret
/// (and sign-in as anyone) to whoever runs the new endpoint.
fn moves_the_secret(existing: &IdpConfig, new: &IdpConfig) -> bool {
    let origin = |u: &Option<String>| {
        u.as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
    };
    origin(&existing.openid_url) != origin(&new.openid_url) || existing.client_id != new.client_id
}

async fn remove(state: AppState, p: Principal, kind: Kind) -> Result<()> {
    let now = state.now();
    let account_id = p.account_id();
    let actor = p.user.email.clone();
    state
        .db
        .write(move |tx| {
            let gone = idp::delete(tx, account_id, kind)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "there is no {} configuration to delete",
                    kind.label()
                ))
            })?;
            audit::record(
                tx,
                &NewEvent::ok(
                    Some(account_id),
                    &actor,
                    &action(kind, "delete"),
                    format!("Id={}", gone.id),
                ),
                now,
            )?;
            Ok(())
        })
        .await
}
