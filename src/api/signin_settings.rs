//! The account's sign-in settings — who may get in and for how long (`GET`/`PUT
//! /sso/signin_settings`, admin): `AutoProvision`, `AutoProvisionDomains`, `AdminGroups`,
//! `SessionLifetimeDays`. What they may be is [`crate::admin::signin`]; what a sign-in does
//! with them, [`crate::login::access`].

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::admin::signin::{self, SIGNIN_AUDIT, signin_summary};
use crate::api::extract::{Admin, Fields};
use crate::api::routing::Routes;
use crate::error::Result;
use crate::login::access;
use crate::policy::{ManagedKey, PolicyState};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::signin_settings::{self, SigninSettings};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/signin_settings", get_signin_settings)
        .put("/sso/signin_settings", put_signin_settings)
}

/// The four keys, each managed by the policy file on its own.
const KEYS: [ManagedKey; 4] = [
    ManagedKey::AutoProvision,
    ManagedKey::AutoProvisionDomains,
    ManagedKey::AdminGroups,
    ManagedKey::SessionLifetime,
];

/// The account's sign-in settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SigninSettingsView {
    /// An unknown identity whose verified email is in one of `AutoProvisionDomains` becomes a
    /// standard user at its first sign-in (default false).
    pub auto_provision: bool,
    /// Domains (lower-case ASCII; internationalised names in their `xn--` form) whose users
    /// AutoProvision creates; exact, never their subdomains.
    pub auto_provision_domains: Vec<String>,
    /// IdP groups whose members are admins (Okta group names; Entra ID group object ids; SAML
    /// group attribute values), matched ignoring case at each sign-in.
    pub admin_groups: Vec<String>,
    /// How many days a signed-in session may be renewed after its sign-in (1 to 365, default 30).
    pub session_lifetime_days: i64,
    /// True when the policy file manages any of these keys (those in `ManagedKeys`).
    pub managed: bool,
    /// The policy file, when it manages any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// The keys the policy file manages: a change of one of them is refused with `ACCESS`.
    pub managed_keys: Vec<&'static str>,
}

/// The body of `PUT /sso/signin_settings`: the keys to change (a key left out, or `null`,
/// keeps its value). A key the policy file manages may only be sent with the value in force.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)] // describes the body; the handler reads it with `Fields`
pub struct SigninSettingsUpdate {
    /// See [`SigninSettingsView`].
    pub auto_provision: Option<bool>,
    /// At most 100 domain names, no two the same.
    pub auto_provision_domains: Option<Vec<String>>,
    /// At most 100 group names or ids (each at most 1024 characters), no two the same.
    pub admin_groups: Option<Vec<String>>,
    /// 1 to 365.
    #[schema(minimum = 1, maximum = 365)]
    pub session_lifetime_days: Option<i64>,
}

fn view(policy: &PolicyState, account_id: i64, s: SigninSettings) -> SigninSettingsView {
    let managed: Vec<(ManagedKey, std::path::PathBuf)> = KEYS
        .iter()
        .filter_map(|k| policy.managed_by(account_id, *k).map(|p| (*k, p)))
        .collect();
    SigninSettingsView {
        auto_provision: s.auto_provision,
        auto_provision_domains: s.auto_provision_domains,
        admin_groups: s.admin_groups,
        session_lifetime_days: s.session_lifetime_days,
        managed: !managed.is_empty(),
        managed_by: managed.first().map(|(_, p)| p.display().to_string()),
        managed_keys: managed.iter().map(|(k, _)| k.label()).collect(),
    }
}

#[utoipa::path(get, path = "/sso/signin_settings", tag = "admin", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The account's sign-in settings: AutoProvision, AdminGroups, the session lifetime.", body = SigninSettingsView)))]
async fn get_signin_settings(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> Result<Json<SigninSettingsView>> {
    let aid = p.account_id();
    let s = state.db.read(move |c| signin_settings::get(c, aid)).await?;
    Ok(Json(view(&state.policy, aid, s)))
}

/// Refuses a change of a key the policy file manages (`ACCESS`, naming the file).
fn refuse_managed(
    policy: &PolicyState,
    account_id: i64,
    current: &SigninSettings,
    wanted: &SigninSettings,
) -> Result<()> {
    let changed = [
        current.auto_provision != wanted.auto_provision,
        current.auto_provision_domains != wanted.auto_provision_domains,
        current.admin_groups != wanted.admin_groups,
        current.session_lifetime_days != wanted.session_lifetime_days,
    ];
    for (key, changed) in KEYS.iter().zip(changed) {
        if changed {
            policy.refuse_if_managed(account_id, *key)?;
        }
    }
    Ok(())
}

#[utoipa::path(put, path = "/sso/signin_settings", tag = "admin", security(("token" = []), ("bearer" = [])), request_body = SigninSettingsUpdate,
    responses((status = 200, description = "The sign-in settings as saved.", body = SigninSettingsView)))]
async fn put_signin_settings(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<SigninSettingsView>> {
    let change = signin::change(&f)?;
    let (aid, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
    let policy = state.policy.clone();
    let saved = state
        .db
        .write(move |tx| {
            let current = signin_settings::get(tx, aid)?;
            let wanted = change.applied_to(&current);
            // Inside the transaction: a policy applied since the request began wins.
            refuse_managed(&policy, aid, &current, &wanted)?;
            if wanted != current {
                signin_settings::save(tx, aid, &wanted, now)?;
                audit::record(
                    tx,
                    &NewEvent::ok(Some(aid), &actor, SIGNIN_AUDIT, signin_summary(&wanted)),
                    now,
                )?;
            }
            if wanted.admin_groups != current.admin_groups {
                access::recheck_rule_admins(tx, aid, &wanted, &actor, now)?;
            }
            Ok(wanted)
        })
        .await?;
    Ok(Json(view(&state.policy, aid, saved)))
}
