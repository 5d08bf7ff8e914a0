//! The account's allow-list of extra https callback URLs (`GET`/`PUT /sso/callback_urls`,
//! admin). The policy itself is [`crate::login::callback_url`].

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::api::extract::{Admin, Fields};
use crate::api::policy::ManagedView;
use crate::error::{Error, Result};
use crate::policy::ManagedKey;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::callback_urls;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/callback_urls", get_callback_urls)
        .put("/sso/callback_urls", put_callback_urls)
}

/// The account's allow-list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackUrls {
    /// Extra https callback URLs, sorted.
    pub callback_urls: Vec<String>,
    /// Whether the policy file manages the list.
    #[serde(flatten)]
    pub managed: ManagedView,
}

#[utoipa::path(get, path = "/sso/callback_urls", tag = "admin", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The account's allow-list of extra https callback URLs.", body = CallbackUrls)))]
async fn get_callback_urls(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> Result<Json<CallbackUrls>> {
    let aid = p.account_id();
    let callback_urls = state.db.read(move |c| callback_urls::list(c, aid)).await?;
    Ok(Json(CallbackUrls {
        callback_urls,
        managed: ManagedView::of(&state, aid, ManagedKey::CallbackUrls),
    }))
}

#[utoipa::path(put, path = "/sso/callback_urls", tag = "admin", security(("token" = []), ("bearer" = [])), request_body = CallbackUrls,
    responses((status = 200, description = "The allow-list as saved.", body = CallbackUrls)))]
async fn put_callback_urls(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<CallbackUrls>> {
    state
        .policy
        .refuse_if_managed(p.account_id(), ManagedKey::CallbackUrls)?;
    let raw = f
        .opt_str_list("CallbackUrls")?
        .ok_or_else(|| Error::invalid("CallbackUrls is required (a list of https URLs)"))?;
    let urls = crate::admin::callback_urls(&raw)?;
    let (aid, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
    let policy = state.policy.clone();
    let saved = state
        .db
        .write(move |tx| {
            // Again inside the transaction: a policy applied since the check above wins.
            policy.refuse_if_managed(aid, ManagedKey::CallbackUrls)?;
            callback_urls::replace(tx, aid, &urls)?;
            audit::record(
                tx,
                &NewEvent::ok(
                    Some(aid),
                    &actor,
                    "callback_urls.update",
                    format!("{} URL(s): {}", urls.len(), urls.join(" ")),
                ),
                now,
            )?;
            callback_urls::list(tx, aid)
        })
        .await?;
    Ok(Json(CallbackUrls {
        callback_urls: saved,
        managed: ManagedView::of(&state, aid, ManagedKey::CallbackUrls),
    }))
}
