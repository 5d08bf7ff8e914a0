//! The account's access tokens (the token exchange issues them, `api::ttapi`):
//! `GET /sso/ttapi/tokens` lists them (never their values), `DELETE /sso/ttapi/tokens/{Id}`
//! revokes one, `GET`/`PUT /sso/ttapi/policy` sets the lifetime of new ones.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::api::extract::{Admin, Auth, Fields};
use crate::api::policy::ManagedView;
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::policy::ManagedKey;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::{accounts, tokens};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/ttapi/tokens", get_tokens)
        .delete("/sso/ttapi/tokens/{id}", delete_token)
        .get("/sso/ttapi/policy", get_policy)
        .put("/sso/ttapi/policy", put_policy)
}

/// An access token as listed (never its value).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TokenView {
    /// Its id (for `DELETE /sso/ttapi/tokens/{Id}`).
    pub id: i64,
    /// Its user's id.
    pub user_id: i64,
    /// Its user's username.
    pub username: String,
    /// The grant it was issued by.
    pub grant_type: String,
    /// The scope asked for.
    pub scope: String,
    /// When it was issued (RFC 3339).
    pub created_at: String,
    /// When it expires, if ever.
    pub expires_at: Option<String>,
    /// When it was last used.
    pub last_used_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

/// The account's access token policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TokenPolicy {
    /// Lifetime of new tokens in seconds; `null`: valid until revoked.
    pub access_token_lifetime_seconds: Option<i64>,
    /// Whether the policy file manages it.
    #[serde(flatten)]
    pub managed: ManagedView,
}

fn token_view(t: &tokens::AccessToken, now: i64) -> TokenView {
    let status = if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    TokenView {
        id: t.id,
        user_id: t.user_id,
        username: t.user_email.clone(),
        grant_type: t.grant_type.clone(),
        scope: t.scope.clone(),
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
        status,
    }
}

/// Admins see every token of their account; other users their own.
#[utoipa::path(get, path = "/sso/ttapi/tokens", tag = "tokens", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The access tokens the caller may see (an admin: the account's), never their values.", body = Vec<TokenView>)))]
async fn get_tokens(State(state): State<AppState>, Auth(p): Auth) -> Result<Json<Vec<TokenView>>> {
    let now = state.now();
    let account_id = p.account_id();
    let only = (!p.role().is_admin()).then_some(p.user.id);
    let list = state
        .db
        .read(move |c| tokens::list(c, account_id, only))
        .await?;
    Ok(Json(list.iter().map(|t| token_view(t, now)).collect()))
}

#[utoipa::path(delete, path = "/sso/ttapi/tokens/{id}", tag = "tokens", security(("token" = []), ("bearer" = [])), params(("id" = i64, Path, description = "The token's `Id`.")),
    responses((status = 200, description = "Revoked; no body.")))]
async fn delete_token(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<()> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::invalid("Id must be an integer"))?;
    revoke_token(&state, &p, id).await
}

/// Revokes the access token `id` of the caller's account (admins: any; users: their own).
pub async fn revoke_token(state: &AppState, p: &Principal, id: i64) -> Result<()> {
    let now = state.now();
    let account_id = p.account_id();
    let (caller_id, is_admin, actor) = (p.user.id, p.role().is_admin(), p.user.email.clone());
    state
        .db
        .write(move |tx| {
            let t = tokens::get(tx, account_id, id)?
                .filter(|t| is_admin || t.user_id == caller_id)
                .ok_or_else(|| Error::NotFound(format!("no access token with Id {id}")))?;
            if t.revoked_at.is_none() {
                tokens::revoke(tx, id, now)?;
                let detail = format!("access token {id} of {} revoked", t.user_email);
                audit::record(
                    tx,
                    &NewEvent::ok(Some(account_id), &actor, "token.revoke", detail),
                    now,
                )?;
            }
            Ok(())
        })
        .await
}

/// The account's access token policy: `{"AccessTokenLifetimeSeconds": N | null}` (null: until
/// revoked). Applies to tokens issued from then on.
#[utoipa::path(get, path = "/sso/ttapi/policy", tag = "tokens", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The account's access token policy.", body = TokenPolicy)))]
async fn get_policy(State(state): State<AppState>, Admin(p): Admin) -> Result<Json<TokenPolicy>> {
    let account_id = p.account_id();
    let ttl = state
        .db
        .read(move |c| Ok(accounts::by_id(c, account_id)?.and_then(|a| a.access_token_ttl_secs)))
        .await?;
    Ok(Json(TokenPolicy {
        access_token_lifetime_seconds: ttl,
        managed: ManagedView::of(&state, account_id, ManagedKey::AccessTokenLifetime),
    }))
}

#[utoipa::path(put, path = "/sso/ttapi/policy", tag = "tokens", security(("token" = []), ("bearer" = [])), request_body = TokenPolicy,
    responses((status = 200, description = "The policy as saved.", body = TokenPolicy)))]
async fn put_policy(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<TokenPolicy>> {
    state
        .policy
        .refuse_if_managed(p.account_id(), ManagedKey::AccessTokenLifetime)?;
    let ttl = crate::admin::access_token_lifetime(f.opt_i64("AccessTokenLifetimeSeconds")?)?;
    let (account_id, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
    let policy = state.policy.clone();
    state
        .db
        .write(move |tx| {
            // Again inside the transaction: a policy applied since the check above wins.
            policy.refuse_if_managed(account_id, ManagedKey::AccessTokenLifetime)?;
            accounts::set_access_token_ttl(tx, account_id, ttl)?;
            let detail = match ttl {
                Some(t) => format!("access tokens now expire after {t} s"),
                None => "access tokens now last until revoked".to_string(),
            };
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &actor, "token.policy", detail),
                now,
            )
        })
        .await?;
    Ok(Json(TokenPolicy {
        access_token_lifetime_seconds: ttl,
        managed: ManagedView::of(&state, account_id, ManagedKey::AccessTokenLifetime),
    }))
}
