//! The directory clients of an import against a double of Okta's Users/Groups API and of
//! Microsoft Graph (cloud APIs that cannot run here). The double follows their documented wire
//! formats: Okta `Link: <…>; rel="next"` paging, `429` with `X-Rate-Limit-*` headers and
//! `{errorCode, errorSummary}` bodies; Graph `@odata.nextLink` paging, `429` with
//! `Retry-After` and `{error: {code, message}}` bodies; both check the bearer token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use amove_agent::clock::{Clock, SystemClock};
use amove_agent::secret::Secret;
use amove_agent::sso::directory;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

const TOKEN: &str = "directory-access-token";
/// Small pages, so a handful of users spans several.
const PAGE: usize = 2;

#[derive(Default)]
pub(crate) struct Dir {
    /// The bearer token the double accepts (default [`TOKEN`]).
    pub(crate) token: String,
    origin: Mutex<String>,
    users: Vec<(String, String, String, String)>, // id, email, first, last
    groups: Vec<(String, String)>,                // id, name
    members: HashMap<String, Vec<String>>,        // group id → user ids
    /// Answer 429 to the request with this number (1-based), once.
    throttle_at: Option<usize>,
    /// The user id `me/...` requests are about (the token's user).
    pub(crate) me: String,
    pub(crate) requests: AtomicUsize,
    pages_served: AtomicUsize,
}

pub(crate) type S = Arc<Dir>;

pub(crate) fn directory_of(
    n_users: usize,
    groups: &[(&str, &[usize])],
    throttle_at: Option<usize>,
) -> Dir {
    let users = (0..n_users)
        .map(|i| {
            (
                format!("00u{i}"),
                format!("user{i}@corp.test"),
                format!("First{i}"),
                format!("Last{i}"),
            )
        })
        .collect();
    let members = groups
        .iter()
        .map(|(g, us)| {
            (
                format!("00g-{g}"),
                us.iter().map(|i| format!("00u{i}")).collect(),
            )
        })
        .collect();
    Dir {
        users,
        groups: groups
            .iter()
            .map(|(g, _)| (format!("00g-{g}"), g.to_string()))
            .collect(),
        members,
        throttle_at,
        ..Dir::default()
    }
}

/// Counts the request; `Some(response)` when it must be refused (bad token, throttled).
fn gate(d: &Dir, h: &HeaderMap, okta: bool) -> Option<Response> {
    let n = d.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let token = if d.token.is_empty() {
        TOKEN
    } else {
        d.token.as_str()
    };
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {token}")) {
        let body = if okta {
            json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided", "errorLink": "E0000011", "errorId": "x", "errorCauses": []})
        } else {
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}})
        };
        return Some((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    if d.throttle_at == Some(n) {
        let mut r = if okta {
            // The fake IdP's own wall clock.
            #[allow(clippy::disallowed_methods)]
            let reset = time::OffsetDateTime::now_utc().unix_timestamp() + 1;
            let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests."}))).into_response();
            r.headers_mut()
                .insert("x-rate-limit-limit", "600".parse().unwrap());
            r.headers_mut()
                .insert("x-rate-limit-remaining", "0".parse().unwrap());
            r.headers_mut()
                .insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
            r
        } else {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}})),
            )
                .into_response();
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        };
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return Some(r);
    }
    d.pages_served.fetch_add(1, Ordering::SeqCst);
    None
}

fn page<T: Clone>(items: &[T], from: usize) -> (Vec<T>, Option<usize>) {
    let end = (from + PAGE).min(items.len());
    let next = (end < items.len()).then_some(end);
    (
        items.get(from..end).map(<[T]>::to_vec).unwrap_or_default(),
        next,
    )
}

fn okta_page(d: &Dir, path: &str, items: Vec<Value>, q: &HashMap<String, String>) -> Response {
    let from = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let (items, next) = page(&items, from);
    let origin = d.origin.lock().unwrap().clone();
    let mut r = Json(Value::Array(items)).into_response();
    r.headers_mut().append(
        "link",
        format!("<{origin}{path}?limit=200>; rel=\"self\"")
            .parse()
            .unwrap(),
    );
    if let Some(n) = next {
        r.headers_mut().append(
            "link",
            format!("<{origin}{path}?after={n}&limit=200>; rel=\"next\"")
                .parse()
                .unwrap(),
        );
    }
    r
}

fn graph_page(d: &Dir, path: &str, items: Vec<Value>, q: &HashMap<String, String>) -> Response {
    let from = q
        .get("$skiptoken")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let (items, next) = page(&items, from);
    let origin = d.origin.lock().unwrap().clone();
    let mut body = json!({"@odata.context": format!("{origin}/v1.0/$metadata"), "value": items});
    if let Some(n) = next {
        body["@odata.nextLink"] = json!(format!("{origin}{path}?$top=999&$skiptoken={n}"));
    }
    Json(body).into_response()
}

fn okta_user(u: &(String, String, String, String)) -> Value {
    json!({"id": u.0, "status": "ACTIVE", "profile": {"login": u.1, "email": u.1, "firstName": u.2, "lastName": u.3}})
}

pub(crate) async fn serve(d: Dir) -> (S, url::Url) {
    let d = Arc::new(d);
    let app = Router::new()
        .route("/api/v1/users", get(|State(d): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, true) { return r; }
            okta_page(&d, "/api/v1/users", d.users.iter().map(okta_user).collect(), &q)
        }))
        .route("/api/v1/groups", get(|State(d): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, true) { return r; }
            let gs = d.groups.iter().map(|(id, n)| json!({"id": id, "type": "OKTA_GROUP", "profile": {"name": n, "description": format!("{n} team")}})).collect();
            okta_page(&d, "/api/v1/groups", gs, &q)
        }))
        .route("/api/v1/groups/{id}/users", get(|State(d): State<S>, h: HeaderMap, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, true) { return r; }
            let ms: Vec<Value> = d.members.get(&id).into_iter().flatten()
                .filter_map(|uid| d.users.iter().find(|u| &u.0 == uid)).map(okta_user).collect();
            okta_page(&d, &format!("/api/v1/groups/{id}/users"), ms, &q)
        }))
        .route("/v1.0/users", get(|State(d): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, false) { return r; }
            let us = d.users.iter().map(|u| json!({"id": u.0, "userPrincipalName": u.1, "mail": format!("alias.{}", u.1), "givenName": u.2, "surname": u.3})).collect();
            graph_page(&d, "/v1.0/users", us, &q)
        }))
        .route("/v1.0/groups", get(|State(d): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, false) { return r; }
            let gs = d.groups.iter().map(|(id, n)| json!({"id": id, "displayName": n, "description": format!("{n} team")})).collect();
            graph_page(&d, "/v1.0/groups", gs, &q)
        }))
        .route("/v1.0/groups/{id}/transitiveMembers", get(|State(d): State<S>, h: HeaderMap, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, false) { return r; }
            let ms = d.members.get(&id).into_iter().flatten().map(|uid| json!({"@odata.type": "#microsoft.graph.user", "id": uid})).collect();
            graph_page(&d, &format!("/v1.0/groups/{id}/transitiveMembers"), ms, &q)
        }))
        .route("/v1.0/me/transitiveMemberOf/microsoft.graph.group", get(|State(d): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
            if let Some(r) = gate(&d, &h, false) { return r; }
            let gs = d.groups.iter()
                .filter(|(id, _)| d.members.get(id).is_some_and(|m| m.contains(&d.me)))
                .map(|(id, n)| json!({"@odata.type": "#microsoft.graph.group", "id": id, "displayName": n, "description": format!("{n} team")}))
                .collect();
            graph_page(&d, "/v1.0/me/transitiveMemberOf/microsoft.graph.group", gs, &q)
        }))
        .with_state(d.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    *d.origin.lock().unwrap() = origin.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (d, url::Url::parse(&origin).unwrap())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn groups_of(rel: &[directory::Relation], email: &str) -> Vec<String> {
    rel.iter()
        .find(|r| r.user.email == email)
        .map(|r| r.groups.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn okta_reads_every_page_of_users_and_memberships() {
    // 5 users = 3 pages; user0 in no group, user1 in three, user4 in one; a group of 3 = 2 pages.
    let (d, origin) = serve(directory_of(
        5,
        &[("eng", &[1, 2, 4]), ("ops", &[1]), ("sales", &[1])],
        None,
    ))
    .await;
    let rel = directory::okta(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
        .await
        .unwrap();
    assert_eq!(rel.len(), 5);
    assert_eq!(rel[4].user.email, "user4@corp.test");
    assert_eq!(rel[4].user.firstname, "First4");
    assert_eq!(groups_of(&rel, "user0@corp.test"), Vec::<String>::new());
    assert_eq!(groups_of(&rel, "user1@corp.test"), ["eng", "ops", "sales"]);
    assert_eq!(groups_of(&rel, "user4@corp.test"), ["eng"]);
    // users 3 pages + groups 2 pages + eng 2 pages + ops 1 + sales 1
    assert_eq!(d.pages_served.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn graph_reads_every_page_and_resolves_group_names() {
    let (d, origin) = serve(directory_of(
        5,
        &[("eng", &[0, 3]), ("all", &[0, 1, 2, 3, 4])],
        None,
    ))
    .await;
    let rel = directory::graph(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
        .await
        .unwrap();
    assert_eq!(rel.len(), 5);
    assert_eq!(groups_of(&rel, "user3@corp.test"), ["all", "eng"]);
    assert_eq!(rel[3].user.username, "user3@corp.test");
    assert_eq!(rel[3].groups[1].description, "eng team");
    assert_eq!(d.pages_served.load(Ordering::SeqCst), 3 + 1 + 1 + 3);
}

#[tokio::test]
async fn okta_429_midway_is_waited_out_and_no_page_is_skipped() {
    let (d, origin) = serve(directory_of(5, &[("eng", &[0])], Some(2))).await;
    let started = std::time::Instant::now();
    let rel = directory::okta(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
        .await
        .unwrap();
    assert_eq!(rel.len(), 5, "a page was skipped");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "did not wait for X-Rate-Limit-Reset"
    );
    assert_eq!(
        d.requests.load(Ordering::SeqCst),
        d.pages_served.load(Ordering::SeqCst) + 1
    );
}

#[tokio::test]
async fn graph_429_with_retry_after_is_honoured() {
    let (_, origin) = serve(directory_of(3, &[], Some(1))).await;
    let started = std::time::Instant::now();
    let rel = directory::graph(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
        .await
        .unwrap();
    assert_eq!(rel.len(), 3);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn an_invalid_or_expired_token_is_reported_in_the_apis_words() {
    let (_, origin) = serve(directory_of(2, &[], None)).await;
    let stale = "stale-token-that-must-not-leak";
    let e = directory::okta(&http(), &origin, &Secret::new(stale), SystemClock.now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("401") && e.contains("Invalid token provided"),
        "{e}"
    );
    assert!(!e.contains(stale), "{e}");
    let e = directory::graph(&http(), &origin, &Secret::new(stale), SystemClock.now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Access token has expired") && !e.contains(stale),
        "{e}"
    );
}

#[tokio::test]
async fn an_endless_page_is_cut_off_at_its_size_limit() {
    // A directory answering a body that never ends (~256 MB/s): the import stops reading at
    // its page limit instead of for as long as the request's timeout allows.
    let streamed = Arc::new(AtomicUsize::new(0));
    let count = streamed.clone();
    let app = Router::new().route(
        "/api/v1/users",
        get(move || {
            let count = count.clone();
            async move {
                crate::fake_oidc::endless_json(256 * 1024, move |n| {
                    count.fetch_add(n, Ordering::SeqCst);
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .unwrap();
    let e = directory::okta(&http, &origin, &Secret::new(TOKEN), SystemClock.now())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sent a page larger than 16 MiB"), "{e}");
    let sent = streamed.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "the import read {sent} bytes");
}

#[tokio::test]
async fn an_empty_directory_is_an_empty_list() {
    let (_, origin) = serve(directory_of(0, &[], None)).await;
    assert!(
        directory::okta(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        directory::graph(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn relations_serialize_in_the_click_api_style() {
    let (_, origin) = serve(directory_of(1, &[("eng", &[0])], None)).await;
    let rel = directory::okta(&http(), &origin, &Secret::new(TOKEN), SystemClock.now())
        .await
        .unwrap();
    let v = serde_json::to_value(&rel).unwrap();
    assert_eq!(v[0]["User"]["Username"], "user0@corp.test");
    assert_eq!(v[0]["User"]["ExternalId"], "00u0");
    assert_eq!(v[0]["User"]["Lastname"], "Last0");
    assert_eq!(v[0]["UserGroups"][0]["Name"], "eng");
    assert_eq!(v[0]["UserGroups"][0]["ExternalId"], "00g-eng");
}
