//! The caller's own session: who am I, and sign out.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::api::extract::Auth;
use crate::auth::Credential;
use crate::error::Result;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::{groups, tokens};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/whoami", get_whoami)
        .post("/sso/logout", post_logout)
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WhoAmI {
    /// The user's id.
    pub user_id: i64,
    /// The username (email).
    pub username: String,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// "First Last", or the email.
    pub display_name: String,
    /// `owner`, `admin` or `user`.
    pub role: &'static str,
    /// Whether the user administers the account.
    pub is_admin: bool,
    /// The account identifier.
    pub account: String,
    /// The names of the user's groups.
    pub groups: Vec<String>,
}

/// The signed-in user, for the tray's status line and the UI.
#[utoipa::path(get, path = "/sso/whoami", tag = "session", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller.", body = WhoAmI)))]
async fn get_whoami(State(state): State<AppState>, Auth(p): Auth) -> Result<Json<WhoAmI>> {
    let uid = p.user.id;
    let groups = state.db.read(move |c| groups::names_of(c, uid)).await?;
    Ok(Json(WhoAmI {
        user_id: p.user.id,
        display_name: p.user.display_name(),
        role: p.user.role.as_str(),
        is_admin: p.role().is_admin(),
        username: p.user.email,
        firstname: p.user.first_name,
        lastname: p.user.last_name,
        account: p.account_identifier,
        groups,
    }))
}

/// Revokes the credential the request came with (session JWT or access token).
#[utoipa::path(post, path = "/sso/logout", tag = "session", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The credential used is revoked; no body.")))]
async fn post_logout(State(state): State<AppState>, Auth(p): Auth) -> Result<()> {
    match &p.credential {
        Credential::Session { jti, exp } => {
            state.auth.revoke_session(jti, *exp).await?;
            let (aid, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
            let jti = jti.clone();
            state
                .db
                .write(move |tx| {
                    // The access tokens minted from this session go with it.
                    let minted = tokens::revoke_minted_by(tx, &jti, now)?;
                    let detail = match minted.as_slice() {
                        [] => "session revoked".to_string(),
                        ids => format!(
                            "session revoked, and the access tokens minted from it: {}",
                            ids.iter()
                                .map(i64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    let ev = NewEvent::ok(Some(aid), &actor, "signout", detail);
                    audit::record(tx, &ev, now)
                })
                .await
        }
        Credential::AccessToken { id } => crate::api::tokens::revoke_token(&state, &p, *id).await,
    }
}
