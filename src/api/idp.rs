//! The twelve identity provider configuration endpoints (admin): Okta, Entra ID, SAML.
//!
//! `setup_*` creates, `get_*` reads (or `null`), `update_*` replaces (the body carries the
//! `Id`), `delete_*` removes. The client secret is write-only: reads show a fixed mask, and an
//! update that sends the mask or omits the secret keeps the stored one. It is optional: an
//! OIDC configuration without one (omitted on setup, `""` on update) is a public client.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::State;

use crate::admin::idp::{SecretChange, validate};
use crate::api::extract::{Admin, Fields, SamlFields};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::login::idp_config::secret_context;
use crate::login::idp_metadata;
use crate::policy::ManagedKey;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::idp::{self, IdpConfig, Kind};

pub use crate::admin::idp::SECRET_MASK;
use crate::api::idp_view::{
    EntraSetup, EntraView, OktaSetup, OktaView, SamlSetup, SamlView, Update,
};
pub use crate::api::idp_view::{IdpView, view};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/sso/setup_okta", setup_okta)
        .get("/sso/get_okta", get_okta)
        .put("/sso/update_okta", update_okta)
        .delete("/sso/delete_okta", delete_okta)
        .post("/sso/setup_entraId", setup_entra_id)
        .get("/sso/get_entraId", get_entra_id)
        .put("/sso/update_entraId", update_entra_id)
        .delete("/sso/delete_entraId", delete_entra_id)
        .post("/sso/setup_saml", setup_saml)
        .get("/sso/get_saml", get_saml)
        .put("/sso/update_saml", update_saml)
        .delete("/sso/delete_saml", delete_saml)
}

#[utoipa::path(post, path = "/sso/setup_okta", tag = "okta", security(("token" = []), ("bearer" = [])), request_body = OktaSetup,
    responses((status = 200, description = "The saved configuration (the secret masked).", body = OktaView)))]
async fn setup_okta(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    setup(s, p, Kind::Okta, f).await
}
#[utoipa::path(get, path = "/sso/get_okta", tag = "okta", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The configuration, or null when there is none.", body = Option<OktaView>)))]
async fn get_okta(State(s): State<AppState>, Admin(p): Admin) -> Result<Json<Option<IdpView>>> {
    read(s, p, Kind::Okta).await
}
#[utoipa::path(put, path = "/sso/update_okta", tag = "okta", security(("token" = []), ("bearer" = [])), request_body = Update<OktaSetup>,
    responses((status = 200, description = "The updated configuration (the secret masked).", body = OktaView)))]
async fn update_okta(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    update(s, p, Kind::Okta, f).await
}
#[utoipa::path(delete, path = "/sso/delete_okta", tag = "okta", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "Deleted; no body.")))]
async fn delete_okta(State(s): State<AppState>, Admin(p): Admin) -> Result<()> {
    remove(s, p, Kind::Okta).await
}
#[utoipa::path(post, path = "/sso/setup_entraId", tag = "entraId", security(("token" = []), ("bearer" = [])), request_body = EntraSetup,
    responses((status = 200, description = "The saved configuration (the secret masked).", body = EntraView)))]
async fn setup_entra_id(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    setup(s, p, Kind::Entra, f).await
}
#[utoipa::path(get, path = "/sso/get_entraId", tag = "entraId", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The configuration, or null when there is none.", body = Option<EntraView>)))]
async fn get_entra_id(State(s): State<AppState>, Admin(p): Admin) -> Result<Json<Option<IdpView>>> {
    read(s, p, Kind::Entra).await
}
#[utoipa::path(put, path = "/sso/update_entraId", tag = "entraId", security(("token" = []), ("bearer" = [])), request_body = Update<EntraSetup>,
    responses((status = 200, description = "The updated configuration (the secret masked).", body = EntraView)))]
async fn update_entra_id(
    State(s): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<IdpView>> {
    update(s, p, Kind::Entra, f).await
}
#[utoipa::path(delete, path = "/sso/delete_entraId", tag = "entraId", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "Deleted; no body.")))]
async fn delete_entra_id(State(s): State<AppState>, Admin(p): Admin) -> Result<()> {
    remove(s, p, Kind::Entra).await
}
#[utoipa::path(post, path = "/sso/setup_saml", tag = "saml", security(("token" = []), ("bearer" = [])), request_body = SamlSetup,
    responses((status = 200, description = "The saved configuration (the secret masked).", body = SamlView)))]
async fn setup_saml(
    State(s): State<AppState>,
    Admin(p): Admin,
    SamlFields(mut f): SamlFields,
) -> Result<Json<IdpView>> {
    idp_metadata::fill(&s, &mut f).await?;
    setup(s, p, Kind::Saml, f).await
}
#[utoipa::path(get, path = "/sso/get_saml", tag = "saml", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The configuration, or null when there is none.", body = Option<SamlView>)))]
async fn get_saml(State(s): State<AppState>, Admin(p): Admin) -> Result<Json<Option<IdpView>>> {
    read(s, p, Kind::Saml).await
}
#[utoipa::path(put, path = "/sso/update_saml", tag = "saml", security(("token" = []), ("bearer" = [])), request_body = Update<SamlSetup>,
    responses((status = 200, description = "The updated configuration (the secret masked).", body = SamlView)))]
async fn update_saml(
    State(s): State<AppState>,
    Admin(p): Admin,
    SamlFields(mut f): SamlFields,
) -> Result<Json<IdpView>> {
    idp_metadata::fill(&s, &mut f).await?;
    update(s, p, Kind::Saml, f).await
}
#[utoipa::path(delete, path = "/sso/delete_saml", tag = "saml", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "Deleted; no body.")))]
async fn delete_saml(State(s): State<AppState>, Admin(p): Admin) -> Result<()> {
    remove(s, p, Kind::Saml).await
}

fn action(kind: Kind, verb: &str) -> String {
    format!("idp.{}.{verb}", kind.as_str())
}

async fn setup(state: AppState, p: Principal, kind: Kind, f: Fields) -> Result<Json<IdpView>> {
    let now = state.now();
    let account_id = p.account_id();
    state
        .policy
        .refuse_if_managed(account_id, ManagedKey::Idp(kind))?;
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
    let policy = state.policy.clone();
    let saved = state
        .db
        .write(move |tx| {
            // Again inside the transaction: a policy applied since the check above wins.
            policy.refuse_if_managed(account_id, ManagedKey::Idp(kind))?;
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
    state
        .policy
        .refuse_if_managed(account_id, ManagedKey::Idp(kind))?;
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
            Some(Some(
                state
                    .sealer
                    .seal_secret(s, &secret_context(account_id, kind))?,
            )),
            format!("{}, ClientSecret changed", v.summary),
        ),
        SecretChange::Remove => (
            Some(None),
            format!("{}, ClientSecret removed (public client)", v.summary),
        ),
        SecretChange::Keep => (None, v.summary),
    };
    let actor = p.user.email.clone();
    let policy = state.policy.clone();
    let saved = state
        .db
        .write(move |tx| {
            // Again inside the transaction: a policy applied since the check above wins.
            policy.refuse_if_managed(account_id, ManagedKey::Idp(kind))?;
            let existing = idp::get(tx, account_id, kind)?
                .filter(|e| e.id == id)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "no {} configuration with Id {id} in this account",
                        kind.label()
                    ))
                })?;
            let moved = kind.is_oidc() && moves_the_secret(&existing, &config);
            // Only a kept secret can go somewhere new: a new one or none is the admin's word.
            if moved && new_secret.is_none() && existing.client_secret_enc.is_some() {
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
            config.client_secret_enc = new_secret.unwrap_or(existing.client_secret_enc);
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
    state
        .policy
        .refuse_if_managed(account_id, ManagedKey::Idp(kind))?;
    let actor = p.user.email.clone();
    let policy = state.policy.clone();
    state
        .db
        .write(move |tx| {
            // Again inside the transaction: a policy applied since the check above wins.
            policy.refuse_if_managed(account_id, ManagedKey::Idp(kind))?;
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
