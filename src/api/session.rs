//! The caller's own session: who am I, and sign out.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::Auth;
use crate::auth::Credential;
use crate::error::Result;
use crate::store::audit::{self, NewEvent};
use crate::store::groups;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/whoami", get(get_whoami))
        .route("/sso/logout", post(post_logout))
}

/// The signed-in user, for the tray's status line and the UI.
async fn get_whoami(State(state): State<AppState>, Auth(p): Auth) -> Result<Json<Value>> {
    let uid = p.user.id;
    let groups = state.db.read(move |c| groups::names_of(c, uid)).await?;
    Ok(Json(json!({
        "UserId": p.user.id,
        "Username": p.user.email,
        "Firstname": p.user.first_name,
        "Lastname": p.user.last_name,
        "DisplayName": p.user.display_name(),
        "Role": p.user.role.as_str(),
        "IsAdmin": p.role().is_admin(),
        "Account": p.account_identifier,
        "Groups": groups,
    })))
}

/// Revokes the credential the request came with (session JWT or access token).
async fn post_logout(State(state): State<AppState>, Auth(p): Auth) -> Result<()> {
    match &p.credential {
        Credential::Session { jti, exp } => {
            state.auth.revoke_session(jti, *exp).await?;
            let (aid, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
            let ev = NewEvent::ok(Some(aid), &actor, "signout", "session revoked");
            state.db.write(move |tx| audit::record(tx, &ev, now)).await
        }
        Credential::AccessToken { id } => crate::api::ttapi::revoke_token(&state, &p, *id).await,
    }
}
