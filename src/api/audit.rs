//! `GET /sso/audit`: the account's audit trail, newest first, paged (admin).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::api::extract::{Admin, QueryParams};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::audit;

/// Default and largest page sizes.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/sso/audit", get(get_audit))
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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
}
