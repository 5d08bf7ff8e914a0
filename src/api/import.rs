//! Importing users and groups from the identity provider (admin):
//! `POST /sso/sso_url_import_user` starts a sign-in asking for directory scopes, and
//! `GET /sso/get_user_usergroups` redeems its code and reads the directory (Okta Users and
//! Groups API, Microsoft Graph) or, for SAML, the asserted user and its groups attribute.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tracing::instrument;
use url::Url;

use crate::api::AppState;
use crate::api::extract::{Admin, Fields, QueryParams};
use crate::api::login::{self, StartRequest};
use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::directory::{self, DirGroup, DirUser, Relation};
use crate::sso::saml::SamlIdentity;
use crate::store::audit::{self, NewEvent};
use crate::store::idp::{self, Kind};
use crate::store::transactions::{self, Client, Purpose};
use crate::store::users;

/// Scopes an Okta import asks for besides the sign-in's.
pub const OKTA_SCOPES: &[&str] = &["email", "profile", "okta.users.read", "okta.groups.read"];
/// Scopes an Entra ID import asks for besides the sign-in's.
pub const ENTRA_SCOPES: &[&str] = &[
    "email",
    "profile",
    "https://graph.microsoft.com/User.Read.All",
    "https://graph.microsoft.com/GroupMember.Read.All",
];
/// SAML attributes that carry group names, in order of preference.
pub const SAML_GROUP_ATTRIBUTES: &[&str] = &[
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
];

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/sso_url_import_user", post(post_sso_url_import_user))
        .route("/sso/get_user_usergroups", get(get_user_usergroups))
}

#[instrument(skip_all)]
async fn post_sso_url_import_user(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<Value>> {
    let callback = f.req_str("CallbackUrl", 2048)?;
    let username = match f.opt_str("Username")? {
        Some(u) if !u.trim().is_empty() => u.trim().to_lowercase(),
        _ => p.user.email.clone(),
    };
    let (aid, u) = (p.account_id(), username.clone());
    let (user, active) = state
        .db
        .read(move |c| Ok((users::by_email(c, &u)?, idp::active(c, aid)?)))
        .await?;
    if user.is_none_or(|u| u.account_id != aid) {
        return Err(Error::Access(format!(
            "Username must be a user of your own account '{}'",
            p.account_identifier
        )));
    }
    let kind = active
        .ok_or_else(|| {
            Error::NotFound("this account has no active identity provider to import from".into())
        })?
        .kind;
    let scopes: &[&str] = match kind {
        Kind::Okta => OKTA_SCOPES,
        Kind::Entra => ENTRA_SCOPES,
        Kind::Saml => &[],
    };
    let started = login::start_login(
        &state,
        StartRequest {
            username: &username,
            callback_url: &callback,
            purpose: Purpose::Import,
            client: Client::Api,
            started_by_user_id: Some(p.user.id),
            scopes,
        },
    )
    .await?;
    Ok(Json(json!({
        "Identifier": started.identifier,
        "Url": started.url.as_str(),
    })))
}

#[instrument(skip_all)]
async fn get_user_usergroups(
    State(state): State<AppState>,
    Admin(p): Admin,
    q: QueryParams,
) -> Result<Json<Value>> {
    let code = q
        .get("authorizationCode")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::invalid("authorizationCode is required"))?;
    if code.len() > 4096 {
        return Err(Error::invalid("authorizationCode is too long"));
    }
    let code = Secret::new(code.trim());
    let callback = q
        .get("callbackUrl")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::invalid("callbackUrl is required"))?
        .trim()
        .to_string();
    let now = state.now();
    let (admin_id, aid) = (p.user.id, p.account_id());
    let handle_hash = match q.get("identifier").filter(|i| !i.trim().is_empty()) {
        Some(i) => sha256_hex(i.trim()),
        None => {
            let cb = callback.clone();
            state
                .db
                .read(move |c| transactions::latest_pending_import(c, admin_id, &cb, now))
                .await?
                .map(|t| t.handle_hash)
                .ok_or_else(|| {
                    Error::NotFound(
                        "you have no pending import with this callbackUrl; start one with \
                         /sso/sso_url_import_user"
                            .into(),
                    )
                })?
        }
    };
    // Consumed before anything else: a code works once, even if this call fails later.
    let t = state
        .db
        .write(move |tx| transactions::consume(tx, &handle_hash, now))
        .await?
        .ok_or_else(|| {
            Error::Security("this import was already completed or is unknown; start again".into())
        })?;
    if t.purpose != Purpose::Import || t.account_id != aid || t.started_by_user_id != Some(admin_id)
    {
        return Err(Error::Security(
            "this Identifier does not name an import you started".into(),
        ));
    }
    if t.is_expired(now) {
        return Err(Error::Security(
            "this import has expired; start again".into(),
        ));
    }
    if t.callback_url != callback {
        return Err(Error::Security(
            "callbackUrl is not the one this import was started with".into(),
        ));
    }
    let (kind, config_id) = (t.provider, t.idp_config_id);
    let config = state
        .db
        .read(move |c| idp::get(c, aid, kind))
        .await?
        .filter(|c| c.id == config_id)
        .ok_or_else(|| {
            Error::Sso(
                "the identity provider configuration changed since the import started".into(),
            )
        })?;
    let relations = match kind {
        Kind::Saml => vec![saml_relation(login::saml_result(&state, &t, &code, now)?)],
        Kind::Okta | Kind::Entra => {
            let signed_in = login::oidc_exchange(&state, &t, &config, &code, now).await?;
            let http = state.oidc.http();
            let fetched = if kind == Kind::Okta {
                // Okta's management API lives on the org's origin, whatever the issuer path.
                let openid = config.openid_url.as_deref().unwrap_or_default();
                let origin = Url::parse(openid)
                    .ok()
                    .and_then(|u| Url::parse(&u.origin().ascii_serialization()).ok())
                    .ok_or_else(|| Error::internal("OpenIdURL is not a URL"))?;
                directory::okta(http, &origin, &signed_in.access_token).await
            } else {
                let graph = config
                    .graph_url
                    .as_deref()
                    .unwrap_or(crate::api::idp::DEFAULT_GRAPH_URL);
                let graph =
                    Url::parse(graph).map_err(|_| Error::internal("GraphURL is not a URL"))?;
                directory::graph(http, &graph, &signed_in.access_token).await
            };
            fetched.map_err(|e| Error::Sso(format!("reading the directory failed: {e}")))?
        }
    };
    let (actor, n) = (p.user.email.clone(), relations.len());
    let ev = NewEvent::ok(
        Some(aid),
        &actor,
        "import.read",
        format!("{n} users read from {}", kind.label()),
    );
    state
        .db
        .write(move |tx| audit::record(tx, &ev, now))
        .await?;
    serde_json::to_value(&relations)
        .map(Json)
        .map_err(|e| Error::internal(format!("serialising the directory: {e}")))
}

/// The one user a SAML assertion speaks of, with the groups of its group attribute.
fn saml_relation(id: SamlIdentity) -> Relation {
    let attr = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .find_map(|n| {
                id.attributes
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default()
    };
    let first = |names: &[&str]| attr(names).into_iter().next().unwrap_or_default();
    let email = id.email.clone().unwrap_or_else(|| id.name_id.clone());
    let groups = attr(SAML_GROUP_ATTRIBUTES)
        .into_iter()
        .filter(|g| !g.trim().is_empty())
        .map(|g| DirGroup {
            external_id: g.clone(),
            name: g,
            description: String::new(),
        })
        .collect();
    Relation {
        user: DirUser {
            external_id: id.name_id.clone(),
            username: email.clone(),
            email,
            firstname: first(&[
                "givenName",
                "firstName",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
            ]),
            lastname: first(&[
                "sn",
                "surname",
                "lastName",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
            ]),
        },
        groups,
    }
}
