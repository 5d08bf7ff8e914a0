//! The caller's own session: who am I, renew it, and sign out (here and at the IdP: the
//! signed-out page the IdP sends the browser back to).

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::instrument;

use crate::api::extract::{Auth, BearerToken, QueryParams};
use crate::api::pages::{PageError, signed_out_page};
use crate::auth::Credential;
use crate::error::{Problem, Result};
use crate::login::session;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::{groups, tokens};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/whoami", get_whoami)
        .post("/sso/refresh", post_refresh)
        .post("/sso/logout", post_logout)
        .get(session::SIGNED_OUT_PATH, get_signed_out)
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

/// Renews the caller's session (docs/sessions.md): the IdP's refresh token is redeemed, the
/// user and their link checked again, the old session JWT revoked and a new one returned.
#[instrument(skip_all)]
#[utoipa::path(post, path = "/sso/refresh", tag = "session", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The new session JWT, as a JSON string (the one sent is revoked).", body = String, content_type = "application/json"),
        (status = 401, description = "No renewal possible (`TOKEN`): a SAML or password session, no refresh token, the IdP refused, the user is inactive or unlinked, the absolute session lifetime is reached, or the session was revoked; sign in again.", body = Problem, headers(("error-code" = String, description = "`TOKEN`"))),
        (status = 499, description = "The identity provider could not be reached (`SSO`); the session can be renewed once it answers.", body = Problem, headers(("error-code" = String, description = "`SSO`")))))]
async fn post_refresh(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<Json<String>> {
    let renewed = session::refresh(&state, &token).await?;
    Ok(Json(renewed.expose().to_string()))
}

/// What sign-out answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LogoutAnswer {
    /// Where to send the browser so the identity provider ends its session too (OIDC
    /// RP-initiated logout, SAML single logout); it comes back to the agent's signed-out
    /// page. `null` when the session has no IdP sign-in or the IdP offers no logout endpoint.
    #[schema(example = "https://idp.example.com/logout?id_token_hint=…&state=…")]
    pub logout_url: Option<String>,
}

/// Revokes the credential the request came with (session JWT or access token); for a
/// session from an IdP sign-in, answers where the IdP's session ends too.
#[utoipa::path(post, path = "/sso/logout", tag = "session", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The credential used is revoked. `LogoutUrl`: open it in the browser to sign out at the identity provider too.", body = LogoutAnswer)))]
async fn post_logout(State(state): State<AppState>, Auth(p): Auth) -> Result<Json<LogoutAnswer>> {
    let logout_url = match &p.credential {
        Credential::Session { jti, .. } => session::end(&state, jti).await?,
        Credential::AccessToken { .. } => None,
    };
    revoke(&state, &p).await?;
    Ok(Json(LogoutAnswer {
        logout_url: logout_url.map(String::from),
    }))
}

async fn revoke(state: &AppState, p: &crate::auth::Principal) -> Result<()> {
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
        Credential::AccessToken { id } => crate::api::tokens::revoke_token(state, p, *id).await,
    }
}

/// The query of `GET /sso/signed_out` (OpenAPI parameters).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedOutQuery {
    /// The `state` of the sign-out the agent sent to the IdP.
    pub state: Option<String>,
}

/// The agent's signed-out page: the IdP sends the browser here (`post_logout_redirect_uri`)
/// once it ended its session; the `state` must be the one of a sign-out the agent started.
#[utoipa::path(get, path = "/sso/signed_out", tag = "session", params(SignedOutQuery),
    responses(
        (status = 200, description = "A page: signed out here and at the identity provider.", body = String, content_type = "text/html"),
        (status = 400, description = "A page: the state is missing, unknown, used or expired.", body = String, content_type = "text/html"),
        (status = 500, description = "A page saying something went wrong (details in the log).", body = String, content_type = "text/html")
    ))]
async fn get_signed_out(State(state): State<AppState>, q: QueryParams) -> Response {
    match session::signed_out(&state, q.get("state")).await {
        Ok(_) => signed_out_page(),
        Err(e) => PageError::sign_out(&e).into_response(),
    }
}
