//! `GET /sso/audit`: the account's audit trail, newest first, paged (admin).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Admin, QueryParams};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
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
) -> Result<Json<Value>> {
    let page = number(&q, "page", 1, u32::MAX)?;
    let page_size = number(&q, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let account_id = p.account_id();
    let (events, total) = state
        .db
        .read(move |c| audit::page(c, account_id, page, page_size))
        .await?;
    let items: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "Id": e.id,
                "At": rfc3339(e.at),
                "Actor": e.actor,
                "Action": e.action,
                "Outcome": e.outcome,
                "Detail": e.detail,
            })
        })
        .collect();
    Ok(Json(
        json!({ "Items": items, "Page": page, "PageSize": page_size, "Total": total }),
    ))
}
