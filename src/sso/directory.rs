//! Reading an identity provider's directory for an import: Okta's Users and Groups API and
//! Microsoft Graph. Every page is read (Okta `Link: rel="next"`, Graph `@odata.nextLink`),
//! rate limits are honoured (Okta 429 + `X-Rate-Limit-Reset`, Graph 429/503 + `Retry-After`),
//! and the result is each user with the groups it belongs to. No HTTP server types here.
//! Each read takes `now` from the agent's clock: Okta's `X-Rate-Limit-Reset` is a wall-clock
//! time, and the wait until it is counted from `now`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use serde_json::Value;
use url::Url;

use crate::secret::Secret;
use crate::sso::http::{BodyError, read_body};

/// Items asked for per page (the APIs' documented maxima are 200 and 999).
const OKTA_PAGE: u32 = 200;
const GRAPH_PAGE: u32 = 999;
/// Pages read at most (a bound against a directory that pages forever).
const MAX_PAGES: usize = 10_000;
/// Largest page read (999 Graph users with every field asked for are about 1 MiB).
const MAX_PAGE_BYTES: usize = 16 << 20;
/// Largest directory read in all (every page of every list): a directory that is huge or
/// hostile throughout cannot fill the agent's memory page by page.
const MAX_READ_BYTES: usize = 512 << 20;
/// Rate-limit waits at most, each and in all.
const MAX_WAIT: Duration = Duration::from_secs(60);
const MAX_RETRIES: usize = 5;
/// Rate-limit waits at most during a sign-in.
const SIGN_IN_MAX_WAIT: Duration = Duration::from_secs(10);

/// A directory user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DirUser {
    /// The IdP's immutable id (Okta user id; Entra object id).
    pub external_id: String,
    /// Sign-in name (Okta `login`, Entra `userPrincipalName`).
    pub username: String,
    /// Email address.
    pub email: String,
    /// Given name.
    pub firstname: String,
    /// Family name.
    pub lastname: String,
}

/// A directory group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DirGroup {
    /// The IdP's group id.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// A user and the groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Relation {
    /// The user.
    #[serde(rename = "User")]
    pub user: DirUser,
    /// Its groups.
    #[serde(rename = "UserGroups")]
    pub groups: Vec<DirGroup>,
}

/// Why the directory could not be read; the message names the API and its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DirError(pub String);

struct Api<'a> {
    http: &'a reqwest::Client,
    token: &'a Secret,
    name: &'static str,
    /// Rate-limit waits at most, in all.
    max_wait: Duration,
    /// The agent's clock when the read began, and the monotonic instant it was read at:
    /// `X-Rate-Limit-Reset` is a wall-clock time.
    started: (i64, Instant),
    /// Bytes this read may still receive (of [`MAX_READ_BYTES`]).
    budget: std::sync::atomic::AtomicUsize,
}

impl Api<'_> {
    /// Now, by the agent's clock: the time the read began plus the time it has taken.
    fn now(&self) -> i64 {
        let (at, since) = self.started;
        at.saturating_add(i64::try_from(since.elapsed().as_secs()).unwrap_or(i64::MAX))
    }

    /// GETs `url`, waiting out rate limits; returns the JSON body and the headers.
    async fn get(&self, url: &Url) -> Result<(Value, HeaderMap), DirError> {
        let mut waited = Duration::ZERO;
        for _ in 0..=MAX_RETRIES {
            let resp = self
                .http
                .get(url.clone())
                .bearer_auth(self.token.expose())
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| {
                    DirError(format!(
                        "{} could not be reached: {}",
                        self.name,
                        without_url(&e)
                    ))
                })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                let wait = retry_wait(&headers, self.now()).min(self.max_wait);
                waited += wait;
                if waited > self.max_wait {
                    break;
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let limit = MAX_PAGE_BYTES.min(self.budget.load(Ordering::Relaxed));
            let body = read_body(resp, limit).await.map_err(|e| match e {
                BodyError::TooLarge(_) if limit < MAX_PAGE_BYTES => DirError(format!(
                    "{} sent more than {} MiB in all; the directory read is stopped",
                    self.name,
                    MAX_READ_BYTES >> 20
                )),
                BodyError::TooLarge(_) => DirError(format!(
                    "{} sent a page larger than {} MiB",
                    self.name,
                    MAX_PAGE_BYTES >> 20
                )),
                BodyError::Http(e) => DirError(format!(
                    "{} sent an unreadable answer: {}",
                    self.name,
                    without_url(&e)
                )),
            })?;
            let left = self
                .budget
                .load(Ordering::Relaxed)
                .saturating_sub(body.len());
            self.budget.store(left, Ordering::Relaxed);
            if !status.is_success() {
                return Err(DirError(format!(
                    "{} answered {status}: {}",
                    self.name,
                    error_text(&body)
                )));
            }
            let json = serde_json::from_slice(&body).map_err(|_| {
                DirError(format!("{} answered something that is not JSON", self.name))
            })?;
            return Ok((json, headers));
        }
        Err(DirError(format!(
            "{} kept answering 429 (rate limited); try the import again later",
            self.name
        )))
    }
}

fn without_url(e: &reqwest::Error) -> String {
    if let Some(cause) = crate::sso::net::describe(e) {
        cause
    } else if e.is_timeout() {
        "it did not answer in time".into()
    } else {
        "the connection failed".into()
    }
}

/// How long a 429/503 asks to wait: `Retry-After` seconds (Graph), or until
/// `X-Rate-Limit-Reset` (Okta, Unix seconds) from `now`; one second when neither says.
fn retry_wait(h: &HeaderMap, now: i64) -> Duration {
    let num = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = h
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Duration::from_secs(s);
    }
    if let Some(reset) = num("x-rate-limit-reset") {
        let now = u64::try_from(now).unwrap_or(0);
        return Duration::from_secs(reset.saturating_sub(now).max(1));
    }
    Duration::from_secs(1)
}

/// The error text of an API answer (Okta `errorSummary`, Graph `error.message`), cleaned.
fn error_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = v["errorSummary"]
        .as_str()
        .or_else(|| v["error"]["message"].as_str())
        .or_else(|| v["error_description"].as_str())
        .unwrap_or("no error description");
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// The `rel="next"` target of an Okta `Link` header, if any.
pub(crate) fn next_link(h: &HeaderMap) -> Option<Url> {
    h.get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
                .then(|| {
                    Url::parse(target.trim().trim_start_matches('<').trim_end_matches('>')).ok()
                })
                .flatten()
        })
}

/// The items of one page and the next page's URL: Okta answers a list and a `Link` header,
/// Graph an object with `value` and `@odata.nextLink`.
pub fn page<'v>(
    api: &str,
    body: &'v Value,
    headers: &HeaderMap,
    okta: bool,
) -> Result<(&'v [Value], Option<Url>), DirError> {
    if okta {
        let items = body
            .as_array()
            .ok_or_else(|| DirError(format!("{api} answered a page that is not a list")))?;
        Ok((items, next_link(headers)))
    } else {
        let items = body["value"]
            .as_array()
            .ok_or_else(|| DirError(format!("{api} answered a page without 'value'")))?;
        let next = body["@odata.nextLink"]
            .as_str()
            .and_then(|u| Url::parse(u).ok());
        Ok((items, next))
    }
}

/// Every item of a paged collection.
async fn all_pages(api: &Api<'_>, first: Url, okta: bool) -> Result<Vec<Value>, DirError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(DirError(format!(
                "{} returned more than {MAX_PAGES} pages",
                api.name
            )));
        }
        let (body, headers) = api.get(&url).await?;
        let (page, link) = page(api.name, &body, &headers, okta)?;
        items.extend(page.iter().cloned());
        next = link;
        // A next link to another host would carry our token elsewhere.
        if let Some(n) = &next
            && n.origin() != url.origin()
        {
            return Err(DirError(format!(
                "{} sent a next-page link to another host",
                api.name
            )));
        }
    }
    Ok(items)
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

fn join(
    users: Vec<DirUser>,
    groups: &[DirGroup],
    members: &HashMap<String, Vec<String>>,
) -> Vec<Relation> {
    let by_id: HashMap<&str, &DirGroup> =
        groups.iter().map(|g| (g.external_id.as_str(), g)).collect();
    users
        .into_iter()
        .map(|u| {
            let mut gs: Vec<DirGroup> = members
                .get(&u.external_id)
                .into_iter()
                .flatten()
                .filter_map(|gid| by_id.get(gid.as_str()).map(|g| (*g).clone()))
                .collect();
            gs.sort_by(|a, b| a.name.cmp(&b.name));
            Relation {
                user: u,
                groups: gs,
            }
        })
        .collect()
}

/// Okta: `{origin}/api/v1/users`, `/api/v1/groups` and each group's members.
pub async fn okta(
    http: &reqwest::Client,
    origin: &Url,
    token: &Secret,
    now: i64,
) -> Result<Vec<Relation>, DirError> {
    let api = Api {
        http,
        token,
        name: "Okta's API",
        max_wait: MAX_WAIT,
        started: (now, Instant::now()),
        budget: std::sync::atomic::AtomicUsize::new(MAX_READ_BYTES),
    };
    let url = |path: &str| {
        origin
            .join(path)
            .map_err(|_| DirError("the Okta URL is not usable".into()))
    };
    let users: Vec<DirUser> = all_pages(
        &api,
        url(&format!("/api/v1/users?limit={OKTA_PAGE}"))?,
        true,
    )
    .await?
    .iter()
    .map(|u| DirUser {
        external_id: text(u, "id"),
        username: text(&u["profile"], "login"),
        email: text(&u["profile"], "email"),
        firstname: text(&u["profile"], "firstName"),
        lastname: text(&u["profile"], "lastName"),
    })
    .collect();
    let groups: Vec<DirGroup> = all_pages(
        &api,
        url(&format!("/api/v1/groups?limit={OKTA_PAGE}"))?,
        true,
    )
    .await?
    .iter()
    .map(|g| DirGroup {
        external_id: text(g, "id"),
        name: text(&g["profile"], "name"),
        description: text(&g["profile"], "description"),
    })
    .collect();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for g in &groups {
        let path = format!(
            "/api/v1/groups/{}/users?limit={OKTA_PAGE}",
            urlencode(&g.external_id)
        );
        for m in all_pages(&api, url(&path)?, true).await? {
            members
                .entry(text(&m, "id"))
                .or_default()
                .push(g.external_id.clone());
        }
    }
    Ok(join(users, &groups, &members))
}

/// Microsoft Graph: `{graph}/v1.0/users`, `/v1.0/groups` and each group's transitive members.
pub async fn graph(
    http: &reqwest::Client,
    graph: &Url,
    token: &Secret,
    now: i64,
) -> Result<Vec<Relation>, DirError> {
    let api = Api {
        http,
        token,
        name: "Microsoft Graph",
        max_wait: MAX_WAIT,
        started: (now, Instant::now()),
        budget: std::sync::atomic::AtomicUsize::new(MAX_READ_BYTES),
    };
    let base = graph.as_str().trim_end_matches('/').to_string();
    let url = |path: &str| {
        Url::parse(&format!("{base}{path}"))
            .map_err(|_| DirError("the GraphURL is not usable".into()))
    };
    let users: Vec<DirUser> = all_pages(
        &api,
        url(&format!(
            "/v1.0/users?$select=id,userPrincipalName,mail,givenName,surname&$top={GRAPH_PAGE}"
        ))?,
        false,
    )
    .await?
    .iter()
    .map(|u| {
        // The email an import matches and creates users by is the UPN, as at sign-in
        // (`preferred_username`): `mail` is an attribute any tenant admin writes, unverified.
        let upn = text(u, "userPrincipalName");
        DirUser {
            external_id: text(u, "id"),
            email: upn.clone(),
            username: upn,
            firstname: text(u, "givenName"),
            lastname: text(u, "surname"),
        }
    })
    .collect();
    let groups: Vec<DirGroup> = all_pages(
        &api,
        url(&format!(
            "/v1.0/groups?$select=id,displayName,description&$top={GRAPH_PAGE}"
        ))?,
        false,
    )
    .await?
    .iter()
    .map(|g| DirGroup {
        external_id: text(g, "id"),
        name: text(g, "displayName"),
        description: text(g, "description"),
    })
    .collect();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for g in &groups {
        let path = format!(
            "/v1.0/groups/{}/transitiveMembers?$select=id&$top={GRAPH_PAGE}",
            urlencode(&g.external_id)
        );
        for m in all_pages(&api, url(&path)?, false).await? {
            members
                .entry(text(&m, "id"))
                .or_default()
                .push(g.external_id.clone());
        }
    }
    Ok(join(users, &groups, &members))
}

/// Microsoft Graph: the groups the token's user belongs to, directly or through nested
/// groups (`{graph}/v1.0/me/transitiveMemberOf/microsoft.graph.group`, every page). A
/// sign-in reads this when Entra ID's token carries the groups overage marker, or group
/// ids the agent has no name for. Rate limits are waited out for 10 s at most: a person is
/// waiting.
pub async fn graph_my_groups(
    http: &reqwest::Client,
    graph: &Url,
    token: &Secret,
    now: i64,
) -> Result<Vec<DirGroup>, DirError> {
    let api = Api {
        http,
        token,
        name: "Microsoft Graph",
        max_wait: SIGN_IN_MAX_WAIT,
        started: (now, Instant::now()),
        budget: std::sync::atomic::AtomicUsize::new(MAX_READ_BYTES),
    };
    let url = format!(
        "{}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName,description&$top={GRAPH_PAGE}",
        graph.as_str().trim_end_matches('/')
    );
    let first = Url::parse(&url).map_err(|_| DirError("the GraphURL is not usable".into()))?;
    Ok(all_pages(&api, first, false)
        .await?
        .iter()
        .filter(|g| {
            // The cast segment asks for groups only; a server ignoring it may list roles.
            g["@odata.type"]
                .as_str()
                .is_none_or(|t| t == "#microsoft.graph.group")
        })
        .map(|g| DirGroup {
            external_id: text(g, "id"),
            name: text(g, "displayName"),
            description: text(g, "description"),
        })
        .filter(|g| !g.external_id.is_empty())
        .collect())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[tokio::test]
    async fn a_read_stops_at_its_total_size_bound() {
        // Pages well under the page limit, each linking to the next, forever.
        let page = format!(r#"{{"value":[{{"id":"{}"}}]}}"#, "x".repeat(256 << 10));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        let next = base.clone();
        let app = axum::Router::new().route(
            "/v1.0/users",
            axum::routing::get(move || {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let body = page.replacen(
                    "{\"value\"",
                    &format!("{{\"@odata.nextLink\":\"{next}/v1.0/users?p={n}\",\"value\""),
                    1,
                );
                async move { body }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let token = Secret::new("t");
        let api = Api {
            http: &http,
            token: &token,
            name: "Microsoft Graph",
            max_wait: MAX_WAIT,
            started: (0, Instant::now()),
            budget: std::sync::atomic::AtomicUsize::new(1 << 20),
        };
        let first = Url::parse(&format!("{base}/v1.0/users")).unwrap();
        let e = all_pages(&api, first, false).await.unwrap_err().to_string();
        assert!(e.contains("in all; the directory read is stopped"), "{e}");
        // 1 MiB of budget: four 256 KiB pages and the start of a fifth, never thousands.
        assert!(served.load(Ordering::SeqCst) <= 6, "{served:?}");
    }

    #[test]
    fn finds_the_next_link_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static("<https://a.okta.com/api/v1/users?limit=2>; rel=\"self\""),
        );
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://a.okta.com/api/v1/users?after=00u2&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).map(|u| u.to_string()).as_deref(),
            Some("https://a.okta.com/api/v1/users?after=00u2&limit=2")
        );
        let mut one = HeaderMap::new();
        one.insert(
            LINK,
            HeaderValue::from_static("<https://a/x>; rel=\"self\", <https://a/y>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&one).map(|u| u.to_string()).as_deref(),
            Some("https://a/y")
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_wins_and_defaults_to_a_second() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_wait(&h, 1_000), Duration::from_secs(3));
        assert_eq!(retry_wait(&HeaderMap::new(), 1_000), Duration::from_secs(1));
    }

    #[test]
    fn rate_limit_reset_is_counted_from_the_agents_now() {
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-reset", HeaderValue::from_static("1005"));
        assert_eq!(retry_wait(&h, 1_000), Duration::from_secs(5));
        // A reset already past still waits a second.
        assert_eq!(retry_wait(&h, 2_000), Duration::from_secs(1));
    }

    #[test]
    fn error_text_reads_okta_and_graph_bodies() {
        assert_eq!(
            error_text(br#"{"errorCode":"E0000011","errorSummary":"Invalid token provided"}"#),
            "Invalid token provided"
        );
        assert_eq!(error_text(br#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired."}}"#), "Access token has expired.");
    }
}
