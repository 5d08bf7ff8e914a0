//! The account's IdP links (admin): `GET /sso/links` lists which IdP identity each user is
//! linked to; `DELETE /sso/links/{Id}` removes one (audited), so the user's next sign-in links
//! afresh — for a user whose identity moved to another tenant or IdP, or a link made in error.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::api::extract::Admin;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::links;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/links", get_links)
        .delete("/sso/links/{id}", delete_link)
}

/// A link between a local user and an IdP identity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LinkView {
    /// The link's id (to remove it).
    pub id: i64,
    /// The user's id.
    pub user_id: i64,
    /// The user's username (email).
    pub username: String,
    /// `okta`, `entra` or `saml`.
    pub provider: &'static str,
    /// The IdP's issuer (Entra: the tenant's).
    pub issuer: String,
    /// The immutable subject (Okta `sub`, Entra `tid/oid`, SAML NameID).
    pub subject: String,
    /// When it was made (RFC 3339).
    pub linked_at: String,
}

#[utoipa::path(get, path = "/sso/links", tag = "admin", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The account's IdP links.", body = Vec<LinkView>)))]
async fn get_links(State(state): State<AppState>, Admin(p): Admin) -> Result<Json<Vec<LinkView>>> {
    let aid = p.account_id();
    let list = state
        .db
        .read(move |c| links::list_for_account(c, aid))
        .await?;
    Ok(Json(
        list.into_iter()
            .map(|l| LinkView {
                id: l.id,
                user_id: l.link.user_id,
                username: l.email,
                provider: l.link.provider.as_str(),
                issuer: l.link.issuer,
                subject: l.link.subject,
                linked_at: rfc3339(l.link.linked_at),
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/sso/links/{id}", tag = "admin", security(("token" = []), ("bearer" = [])), params(("id" = i64, Path, description = "The link's `Id`.")),
    responses((status = 200, description = "Removed (audited); no body.")))]
async fn delete_link(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> Result<()> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::invalid("Id must be an integer"))?;
    let (aid, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
    state
        .db
        .write(move |tx| {
            let gone = links::delete(tx, aid, id)?
                .ok_or_else(|| Error::NotFound(format!("no IdP link with Id {id}")))?;
            let detail = format!(
                "removed the {} link of {} (subject {} of {})",
                gone.link.provider.label(),
                gone.email,
                gone.link.subject,
                gone.link.issuer
            );
            audit::record(
                tx,
                &NewEvent::ok(Some(aid), &actor, "link.delete", detail),
                now,
            )
        })
        .await
}
