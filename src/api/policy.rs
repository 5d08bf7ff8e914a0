//! The managed configuration as admins see it: `GET /sso/policy` (which file, what it
//! manages, why it is not applied), and the `Managed`/`ManagedBy` keys every view of a setting
//! carries.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::api::extract::Admin;
use crate::api::routing::Routes;
use crate::clock::rfc3339;
use crate::error::Result;
use crate::policy::ManagedKey;
use crate::state::AppState;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new().get("/sso/policy", get_policy)
}

/// Whether a setting is managed by the policy file, flattened into its view.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ManagedView {
    /// True when the policy file manages it: updates and deletes are refused with `ACCESS`.
    #[serde(rename = "Managed")]
    pub managed: bool,
    /// The policy file, when managed.
    #[serde(rename = "ManagedBy", skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

impl ManagedView {
    /// Whether `key` of `account_id` is managed.
    pub fn of(state: &AppState, account_id: i64, key: ManagedKey) -> Self {
        let by = state.policy.managed_by(account_id, key);
        Self {
            managed: by.is_some(),
            managed_by: by.map(|p| p.display().to_string()),
        }
    }
}

/// The policy's state for the caller's account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyView {
    /// The file the agent follows (`null`: policies are off).
    pub path: Option<String>,
    /// Whether a policy is in force.
    pub applied: bool,
    /// The settings of this account it manages (the file's keys).
    pub managed: Vec<&'static str>,
    /// Why the file as it is now is not applied (the last good policy stays in force).
    pub error: Option<String>,
    /// When the policy in force was applied (RFC 3339).
    pub applied_at: Option<String>,
}

#[utoipa::path(get, path = "/sso/policy", tag = "admin", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The policy file the agent follows, what it manages for the caller's account and why it is not applied.", body = PolicyView)))]
async fn get_policy(State(state): State<AppState>, Admin(p): Admin) -> Result<Json<PolicyView>> {
    let s = state.policy.status();
    let aid = p.account_id();
    let managed = s
        .managed
        .as_ref()
        .map(|m| {
            m.keys
                .iter()
                .filter(|k| m.manages(aid, **k))
                .map(|k| k.label())
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(PolicyView {
        path: s.path.map(|p| p.display().to_string()),
        applied: s.managed.is_some(),
        managed,
        error: s.error,
        applied_at: s.applied_at.map(rfc3339),
    }))
}
