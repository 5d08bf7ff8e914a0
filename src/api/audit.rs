//! `GET /sso/audit`: the account's audit trail, newest first, paged (admin), and
//! `GET`/`PUT /sso/audit/policy`: how long it is kept.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::api::extract::{Admin, Fields, QueryParams};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::accounts;
use crate::store::audit::{self, DEFAULT_RETENTION_DAYS, NewEvent};

/// Default and largest page sizes.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sso/audit", get_audit)
        .get("/sso/audit/policy", get_audit_policy)
        .put("/sso/audit/policy", put_audit_policy)
}

fn number(q: &QueryParams, name: &str, default: u32, max: u32) -> Result<u32> {
    match q.get(name) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Error::invalid(format!(
                "{name} must be a whole number from 1 to {max}"
            ))),
        },
    }
}

#[utoipa::path(get, path = "/sso/audit", tag = "admin", security(("token" = []), ("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "One page of the account's audit trail, newest first.", body = AuditPage)))]
async fn get_audit(
    State(state): State<AppState>,
    Admin(p): Admin,
    q: QueryParams,
) -> Result<Json<AuditPage>> {
    let page = number(&q, "page", 1, u32::MAX)?;
    let page_size = number(&q, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let account_id = p.account_id();
    let (events, total) = state
        .db
        .read(move |c| audit::page(c, account_id, page, page_size))
        .await?;
    let items = events
        .into_iter()
        .map(|e| AuditItem {
            id: e.id,
            at: rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            outcome: e.outcome,
            detail: e.detail,
            count: e.count,
            last_at: e.last_at.map(rfc3339),
        })
        .collect();
    Ok(Json(AuditPage {
        items,
        page,
        page_size,
        total,
    }))
}

/// One page of the audit trail, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuditPage {
    /// The events of this page.
    pub items: Vec<AuditItem>,
    /// The page number (from 1).
    pub page: u32,
    /// Events per page.
    pub page_size: u32,
    /// Events in the whole trail.
    pub total: i64,
}

/// One audit event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuditItem {
    /// Its id.
    pub id: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who (an email, or `anonymous`).
    pub actor: String,
    /// What (`signin`, `idp.okta.update`, …).
    pub action: String,
    /// `ok` or `refused`.
    pub outcome: String,
    /// Details (never secrets).
    pub detail: String,
    /// How many times it happened (identical refusals within an hour share a row).
    pub count: i64,
    /// The last time, when it happened more than once.
    pub last_at: Option<String>,
}

/// How long the audit trail keeps the account's events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuditPolicy {
    /// Days events are kept (`null` in a request: the default).
    pub retention_days: i64,
}

/// Longest retention an admin may set (ten years).
const MAX_RETENTION_DAYS: i64 = 3660;

#[utoipa::path(get, path = "/sso/audit/policy", tag = "admin", security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "How long events are kept.", body = AuditPolicy)))]
async fn get_audit_policy(
    State(state): State<AppState>,
    Admin(p): Admin,
) -> Result<Json<AuditPolicy>> {
    let aid = p.account_id();
    let days = state
        .db
        .read(move |c| Ok(accounts::by_id(c, aid)?.and_then(|a| a.audit_retention_days)))
        .await?;
    Ok(Json(AuditPolicy {
        retention_days: days.unwrap_or(DEFAULT_RETENTION_DAYS),
    }))
}

#[utoipa::path(put, path = "/sso/audit/policy", tag = "admin", security(("token" = []), ("bearer" = [])), request_body = AuditPolicyRequest,
    responses((status = 200, description = "The policy as saved.", body = AuditPolicy)))]
async fn put_audit_policy(
    State(state): State<AppState>,
    Admin(p): Admin,
    f: Fields,
) -> Result<Json<AuditPolicy>> {
    if !f.has("RetentionDays") {
        return Err(Error::invalid(
            "RetentionDays is required (days, or null for the default of 180)",
        ));
    }
    let days = f.opt_i64("RetentionDays")?;
    if let Some(d) = days
        && !(1..=MAX_RETENTION_DAYS).contains(&d)
    {
        return Err(Error::invalid(format!(
            "RetentionDays must be from 1 to {MAX_RETENTION_DAYS}, or null for the default"
        )));
    }
    let (aid, actor, now) = (p.account_id(), p.user.email.clone(), state.now());
    state
        .db
        .write(move |tx| {
            accounts::set_audit_retention(tx, aid, days)?;
            let detail = format!(
                "the audit trail now keeps events for {} days",
                days.unwrap_or(DEFAULT_RETENTION_DAYS)
            );
            audit::record(
                tx,
                &NewEvent::ok(Some(aid), &actor, "audit.policy", detail),
                now,
            )?;
            audit::prune(tx, now)
        })
        .await?;
    Ok(Json(AuditPolicy {
        retention_days: days.unwrap_or(DEFAULT_RETENTION_DAYS),
    }))
}

/// The query of `GET /sso/audit` (OpenAPI parameters).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The page, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Events per page, from 1 to 500 (default 50).
    #[serde(rename = "pageSize")]
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
}

/// The body of `PUT /sso/audit/policy` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuditPolicyRequest {
    /// Days to keep events, from 1 to 3660; `null`: the default (180). Required.
    #[schema(minimum = 1, maximum = 3660)]
    pub retention_days: Option<i64>,
}
