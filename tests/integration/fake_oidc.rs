//! Helpers of the OIDC tests: the agent started in-process (settings and clock under the
//! test's control), a fake OpenID Provider that hands out ID tokens the test crafts with its
//! own keys, the real OpenID Provider of `tests/idp/oidc`, and a browser that logs in.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amove_agent::api::{self, AppState};
use amove_agent::clock::{Clock, ManualClock, SystemClock};
use amove_agent::config::Settings;
use amove_agent::secret::Secret;
use amove_agent::store::users::User;
use amove_agent::{bootstrap, server};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::net::TcpListener;
use url::Url;

use crate::common::{ADMIN_PASSWORD, Answer};

// ------------------------------------------------------------------------------------------
// The agent, in-process

/// An agent serving on 127.0.0.1:PORT inside the test, with a manual clock.
pub struct TestAgent {
    pub state: AppState,
    pub base: String,
    pub port: u16,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestAgent {
    /// Account `acme` owned by `admin@acme.test`; `tweak` adjusts the settings.
    pub async fn start(tweak: impl FnOnce(&mut Settings)) -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::new(addr, dir.path().to_path_buf());
        tweak(&mut settings);
        let clock = ManualClock::new(SystemClock.now());
        let state = server::build_state(settings, addr, Arc::new(clock.clone())).unwrap();
        bootstrap::init_account(
            &state.db,
            "acme",
            None,
            "admin@acme.test",
            Some("Ada Admin"),
            &Secret::new(ADMIN_PASSWORD),
            clock.now(),
        )
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = api::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        });
        TestAgent {
            state,
            base: format!("http://127.0.0.1:{}", addr.port()),
            port: addr.port(),
            clock,
            http: crate::common::client(),
            dir,
            shutdown: Some(tx),
        }
    }

    /// `http://localhost:PORT/sso/callback`: the agent's own callback.
    pub fn own_callback(&self) -> String {
        format!("http://localhost:{}/sso/callback", self.port)
    }

    pub fn add_user(&self, email: &str, name: &str) -> User {
        bootstrap::add_user(
            &self.state.db,
            "acme",
            email,
            false,
            Some(name),
            None,
            self.clock.now(),
        )
        .unwrap()
    }

    /// A session JWT of the owner, minted directly.
    pub fn admin_token(&self) -> String {
        let u = self
            .state
            .db
            .read_blocking(|c| amove_agent::store::users::by_email(c, "admin@acme.test"))
            .unwrap()
            .unwrap();
        self.state
            .auth
            .mint_session(&u, "acme", "password")
            .unwrap()
            .0
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            text,
        }
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut req = self.http.put(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    /// Stores and activates an OIDC configuration (`okta` or `entraId`).
    pub async fn setup_oidc(&self, kind: &str, client_id: &str, secret: &str, openid_url: &str) {
        self.setup_oidc_with(kind, client_id, secret, openid_url, json!({}))
            .await;
    }

    /// [`setup_oidc`](Self::setup_oidc) with more fields (`extra`, an object) in the body.
    pub async fn setup_oidc_with(
        &self,
        kind: &str,
        client_id: &str,
        secret: &str,
        openid_url: &str,
        extra: Value,
    ) {
        let mut body = json!({
            "ClientId": client_id,
            "ClientSecret": secret,
            "OpenIdURL": openid_url,
            "Active": true,
        });
        if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
            b.extend(extra);
        }
        let a = self
            .post_json(
                &format!("/sso/setup_{kind}"),
                Some(&self.admin_token()),
                &body,
            )
            .await;
        assert_eq!(a.status, 200, "setup_{kind}: {}", a.text);
    }

    /// `POST /sso/sso_url`.
    pub async fn sso_url(&self, username: &str, callback: &str) -> Answer {
        self.post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": username, "CallbackUrl": callback}),
        )
        .await
    }

    /// `POST /sso/authenticate`.
    pub async fn authenticate(&self, identifier: &str, code: &str, callback: &str) -> Answer {
        self.post_json(
            "/sso/authenticate",
            None,
            &json!({"Identifier": identifier, "AuthorizationCode": code, "CallbackUrl": callback}),
        )
        .await
    }

    /// The account's audit trail, newest first, as (action, outcome, detail).
    pub fn audit(&self) -> Vec<(String, String, String)> {
        self.select(
            "SELECT action, outcome, detail FROM audit_events ORDER BY id DESC",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every row `sql` selects from the agent's database, as `row` makes them.
    pub fn select<T: Send + 'static>(
        &self,
        sql: &'static str,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        self.state
            .db
            .read_blocking(move |c| {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt.query_map([], row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

// ------------------------------------------------------------------------------------------
// Keys and tokens crafted by the test

/// A signing key of the fake provider.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub pem: &'static str,
}

impl TestKey {
    pub fn a() -> Self {
        Self {
            kid: "key-a".into(),
            pem: KEY_A,
        }
    }
    pub fn b() -> Self {
        Self {
            kid: "key-b".into(),
            pem: KEY_B,
        }
    }
    /// A key the provider never publishes.
    pub fn attacker() -> Self {
        Self {
            kid: "key-a".into(),
            pem: KEY_C,
        }
    }
    pub fn encoding(&self) -> EncodingKey {
        EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap()
    }
    /// The public JWK, as a JWKS lists it.
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), Algorithm::RS256).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        serde_json::to_value(jwk).unwrap()
    }
    /// An RS256 token over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.encoding()).unwrap()
    }
}

/// `header.payload.` with any header (for `alg: none` and friends).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `at_hash` of an access token for RS256.
pub fn at_hash(access_token: &str) -> String {
    let d = sha2::Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

/// PKCE S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

// ------------------------------------------------------------------------------------------
// A fake OpenID Provider

/// What the fake token endpoint answers next.
#[derive(Clone)]
pub enum TokenReply {
    /// 200 with this id_token (and access token "fake-access-token").
    IdToken(String),
    /// This status and body.
    Raw(u16, String),
    /// Never answers.
    Hang,
    /// 200 with a body that never ends (see [`endless`]).
    Endless,
}

/// Which of the provider's documents never ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Endless {
    Discovery,
    Jwks,
}

pub const FAKE_ACCESS_TOKEN: &str = "fake-access-token";

/// The form fields and the Authorization header of a token request.
pub type TokenRequest = (HashMap<String, String>, Option<String>);

struct FakeInner {
    issuer: Mutex<String>,
    jwks: Mutex<Vec<TestKey>>,
    reply: Mutex<TokenReply>,
    auth_methods: Mutex<Vec<String>>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    token_requests: Mutex<Vec<TokenRequest>>,
    endless: Mutex<Option<Endless>>,
    streamed: AtomicUsize,
    origin: String,
    prefix: String,
}

/// A fake provider at `http://127.0.0.1:PORT{prefix}`.
#[derive(Clone)]
pub struct FakeIdp(Arc<FakeInner>);

impl FakeIdp {
    /// Serves discovery at `{prefix}/.well-known/openid-configuration` naming `issuer`
    /// (`None`: the URL's own prefix), JWKS with key A, and a token endpoint.
    pub async fn start(prefix: &str, issuer: Option<&str>) -> FakeIdp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let issuer = issuer
            .map(|i| i.replace("{origin}", &origin))
            .unwrap_or_else(|| format!("{origin}{prefix}"));
        let fake = FakeIdp(Arc::new(FakeInner {
            issuer: Mutex::new(issuer),
            jwks: Mutex::new(vec![TestKey::a()]),
            reply: Mutex::new(TokenReply::Raw(500, "{}".into())),
            auth_methods: Mutex::new(vec![
                "client_secret_basic".into(),
                "client_secret_post".into(),
            ]),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            token_requests: Mutex::new(Vec::new()),
            endless: Mutex::new(None),
            streamed: AtomicUsize::new(0),
            origin,
            prefix: prefix.to_string(),
        }));
        let app = Router::new()
            .route(
                &format!("{prefix}/.well-known/openid-configuration"),
                get(fake_discovery),
            )
            .route("/jwks", get(fake_jwks))
            .route("/token", post(fake_token))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }
    pub fn origin(&self) -> &str {
        &self.0.origin
    }
    /// The OpenIdURL to configure.
    pub fn openid_url(&self) -> String {
        format!(
            "{}{}/.well-known/openid-configuration",
            self.0.origin, self.0.prefix
        )
    }
    /// The issuer the discovery document names.
    pub fn issuer(&self) -> String {
        self.0.issuer.lock().unwrap().clone()
    }
    pub fn set_jwks(&self, keys: Vec<TestKey>) {
        *self.0.jwks.lock().unwrap() = keys;
    }
    pub fn set_auth_methods(&self, m: &[&str]) {
        *self.0.auth_methods.lock().unwrap() = m.iter().map(|s| s.to_string()).collect();
    }
    pub fn reply(&self, r: TokenReply) {
        *self.0.reply.lock().unwrap() = r;
    }
    /// Makes `which` document a body that never ends (`None`: both as usual).
    pub fn set_endless(&self, which: Option<Endless>) {
        *self.0.endless.lock().unwrap() = which;
    }
    /// Bytes sent so far in bodies that never end.
    pub fn streamed(&self) -> usize {
        self.0.streamed.load(Ordering::SeqCst)
    }
    pub fn jwks_fetches(&self) -> usize {
        self.0.jwks_fetches.load(Ordering::SeqCst)
    }
    pub fn discovery_fetches(&self) -> usize {
        self.0.discovery_fetches.load(Ordering::SeqCst)
    }
    /// The form fields and Authorization header of the last token request.
    pub fn last_token_request(&self) -> Option<TokenRequest> {
        self.0.token_requests.lock().unwrap().last().cloned()
    }
}

/// A 200 JSON answer that never ends: `{"pad": "` and then `chunk` bytes a millisecond,
/// for as long as the client reads, each passed to `count` as it is sent. A client reading it
/// to its end shows in the count long before it runs out of memory.
pub fn endless_json(
    chunk: usize,
    count: impl Fn(usize) + Clone + Send + Sync + 'static,
) -> Response {
    let head = axum::body::Bytes::from_static(b"{\"pad\": \"");
    let pad = axum::body::Bytes::from(vec![b'x'; chunk]);
    let chunks = futures_util::stream::unfold(Some(head), move |first| {
        let (count, pad) = (count.clone(), pad.clone());
        async move {
            let chunk = match first {
                Some(head) => head,
                None => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    pad
                }
            };
            count(chunk.len());
            Some((Ok::<_, std::convert::Infallible>(chunk), None))
        }
    });
    (
        [("content-type", "application/json")],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// The provider's endless answer (~64 MB/s), counted in [`FakeIdp::streamed`].
fn endless(f: &FakeIdp) -> Response {
    let f = f.clone();
    endless_json(64 * 1024, move |n| {
        f.0.streamed.fetch_add(n, Ordering::SeqCst);
    })
}

async fn fake_discovery(State(f): State<FakeIdp>) -> Response {
    f.0.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if *f.0.endless.lock().unwrap() == Some(Endless::Discovery) {
        return endless(&f);
    }
    let o = &f.0.origin;
    Json(json!({
        "issuer": f.issuer(),
        "authorization_endpoint": format!("{o}/authorize"),
        "token_endpoint": format!("{o}/token"),
        "jwks_uri": format!("{o}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": *f.0.auth_methods.lock().unwrap(),
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

async fn fake_jwks(State(f): State<FakeIdp>) -> Response {
    f.0.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if *f.0.endless.lock().unwrap() == Some(Endless::Jwks) {
        return endless(&f);
    }
    let keys: Vec<Value> = f.0.jwks.lock().unwrap().iter().map(TestKey::jwk).collect();
    Json(json!({ "keys": keys })).into_response()
}

async fn fake_token(State(f): State<FakeIdp>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    f.0.token_requests.lock().unwrap().push((form, auth));
    let reply = f.0.reply.lock().unwrap().clone();
    match reply {
        TokenReply::IdToken(t) => Json(json!({
            "access_token": FAKE_ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": t,
        }))
        .into_response(),
        TokenReply::Raw(status, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        TokenReply::Endless => endless(&f),
        TokenReply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

// ------------------------------------------------------------------------------------------
// The real OpenID Provider (tests/idp/oidc)

/// `tests/idp/oidc`.
pub fn op_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp/oidc")
}

static NPM: Mutex<()> = Mutex::new(());

/// Installs the provider's one dependency once (`npm ci`), if it is missing.
fn ensure_node_modules() {
    let _guard = NPM.lock().unwrap_or_else(|p| p.into_inner());
    if op_dir().join("node_modules/oidc-provider").exists() {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--prefix"])
        .arg(op_dir())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "npm ci --prefix tests/idp/oidc failed");
}

/// A running `server.mjs`; killed (stdin closed) on drop.
pub struct RealOp {
    child: Child,
    pub origin: String,
    _config: tempfile::NamedTempFile,
}

impl RealOp {
    pub async fn start(config: &Value) -> RealOp {
        ensure_node_modules();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, config.to_string().as_bytes()).unwrap();
        let mut child = Command::new("node")
            .arg(op_dir().join("server.mjs"))
            .args(["--port", "0", "--exit-with-stdin", "--config"])
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node (tests/idp/oidc needs Node.js 18+)");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .unwrap()
        .unwrap();
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut err, &mut std::io::sink());
            });
        }
        let origin = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("OP did not start: {line:?}"))
            .to_string();
        RealOp {
            child,
            origin,
            _config: file,
        }
    }
}

impl Drop for RealOp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the OP whose redirect URIs are `redirect_uris`; a public one (no secret)
/// when `auth` is `none`.
pub fn op_client(client_id: &str, secret: &str, auth: &str, redirect_uris: &[&str]) -> Value {
    if auth == "none" {
        let mut c = op_client(client_id, secret, "client_secret_basic", redirect_uris);
        c["token_endpoint_auth_method"] = json!("none");
        c.as_object_mut().map(|o| o.remove("client_secret"));
        return c;
    }
    json!({
        "client_id": client_id,
        "client_secret": secret,
        "application_type": "native",
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": auth,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "id_token_signed_response_alg": "RS256",
    })
}

/// A browser: keeps cookies, follows redirects by hand, fills in the OP's login form, and
/// stops at the first redirect to `stop_at` (the callback), whose URL it returns.
pub struct Browser {
    pub http: reqwest::Client,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub async fn login(&self, start: &str, login: &str, password: &str, stop_at: &str) -> String {
        self.walk(start, stop_at, |url, html| {
            assert!(
                !html.contains("id=\"error\""),
                "login failed at {url}: {html}"
            );
            vec![
                ("login", login.to_string()),
                ("password", password.to_string()),
            ]
        })
        .await
    }

    /// Follows redirects from `start`; on each page posts its form with the fields `fill`
    /// makes of it, until the first redirect to `stop_at`, whose URL it returns.
    pub async fn walk(
        &self,
        start: &str,
        stop_at: &str,
        fill: impl Fn(&Url, &str) -> Vec<(&'static str, String)>,
    ) -> String {
        let mut url = Url::parse(start).unwrap();
        let mut resp = self.http.get(url.clone()).send().await.unwrap();
        for _ in 0..12 {
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp.headers()["location"].to_str().unwrap().to_string();
                let next = url.join(&loc).unwrap();
                if next.as_str().starts_with(stop_at) {
                    return next.to_string();
                }
                url = next;
                resp = self.http.get(url.clone()).send().await.unwrap();
                continue;
            }
            let html = resp.text().await.unwrap();
            assert_eq!(status, 200, "unexpected page at {url}: {html}");
            let fields = fill(&url, &html);
            let action = html
                .split("action=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("no form at {url}: {html}"))
                .replace("&amp;", "&");
            url = url.join(&action).unwrap();
            resp = self
                .http
                .post(url.clone())
                .form(&fields)
                .send()
                .await
                .unwrap();
        }
        panic!("too many hops, last at {url}");
    }
}

// ------------------------------------------------------------------------------------------
// Test keys (generated for these tests only; never used anywhere else)

pub const KEY_A: &str = r#"-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCj0EwtK2QGKNkg
5bYEaTtKiSalwmf/34BGsd6H3CHK0rQ+yNiLn/9XchvvC7mWas85fYNqnL29SSm0
9kWDQ11SXsRUfnZtDdWCRwe5Cs8DPHS/a+anc6RRIStm3peuzCs3O+ZiokuZRAgP
LyVX6yYEsU8em3vQhWlsP+P7I2IxmCx/YBSKSO4DoWbe1k7XthSZK8+aDPBzjLGo
YPqPR8/eZD5e1lbeIKmq9P04D6KiG/GcAqa1ZnJhbPgfqPBDhhvw2U5ad2nOAzD/
st4fTVjzfSpEzR+23H/k3eex/cSOKa+c3Ksa/7mNPk26H09IzptUtiZf3KflDz/G
PYxiJ8JPAgMBAAECggEAE9GqtbhPNLOSeXlxSR1WMBFh3KIlpP5sbaEtdDB84iYV
6pawJExqPzEuEgDQJlOr2J/H24k1J4aHhj5ZcKUg0Eto43QdbdpDn6xqUcft/c09
rr8mO9Iw6iPiNWLu5RYMkHUtzXcnQFbLxtKEaRupEN5G3UQgebz6YT9lnMfOJIO7
523y2a/gcOJKVbaMYNUQqcf05l79yxy4ZR2bfP9rBLGpkWiqkmEfrsPFxNZRGOnL
hh3GVko2SazAOwGviSSez/SIF1opTxga1FJcAKdKKS2DA+ItGKrt/9e8CdeLudLV
Q9Iau4svpdu61pU5qzo9VxE/7L4BvpfiPnchZ6mhUQKBgQDitPShYo+NRL8rwXba
Pz8i0GpgNsBJjEjCyOdBblidHP0WxCZ7n7U4LUwQjLIR8aX4cJ8G1+77GaYmQZ0D
SWVsfaGzeb0XgrU6hWx79yyaUsVykjmESEn8XA8y0C+WBcInWnM5b042dxn0V8tU
8tzmWxFOaqzOdpSl5pYdQjokhwKBgQC4+vN/DGLgzUKI3FG7EJaqiGN1k4n9t/Lx
K6vxB4cjYir/FRPheUFvwECW5YsG2cJAlxZhY3hqd12iH5dKCEvi3SuoUBNxeYaI
AvhWHQtP93tur1d9geD7GUxeoEbyiFJhuHCHebdqEB/fAgwqGu1k/dJ2+CCP5U4u
FwNsMX2t+QKBgQDWa3IopdDCO3BYkS25dDJh2h+SipZJuc4jtOLMxvI2/3D8tF71
c/Nxg5461OejAxwII3S1g0w74GF+M3au4h90gkqLNqw67Vw9Um5tvTVJbNnk6BpQ
XBLmBag2ViN70Ex27hynCPg/mVxJ9zOQT/fQQ/fVZB23VP54/uOiHr5hRwKBgQCs
BOsFXe5hoV/bSA9VR4LlCTp8r3xmjnaE4hjeZyK7u+HCHsbDKfC5TG6EJOhZsY1c
ZWRxon/reh9/0aLuPLLdQNIFjpnWL630s9Zetlm7vqhxcOuKkoo21/rWEHSJvE3o
BA3ZXk47es04pH3NdgcHoKbk7a/SQOqoH8yWA5wdeQKBgQDR/9IKr/qypepuS68p
nZIcX59Bj2cXZl0Y9m/I92tjLd5xkfVzUO8ViRsuLl8k4GzuX49gKtbdYp2RrrGA
139aM+nytyjEyET/16ee7YEaEfIb0z7bcnKPW2e67+GqHYyyznV9QZsyFwhxtJg6
V5+ojuawJMRNGpDtSOr1rqiYug==
-----END PRIVATE KEY-----
"#;
pub const KEY_B: &str = r#"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDleOJ8sQWhbuLx
3Sw6O7G/nQ06fQb+SQJVg5VhXtPcfd3iraBK0LfZ8Pa0W6zds985jQzfbgYsjNtw
05T06843ktYj8VgwQdtgl6RVXgDz+xCzSiIaoUTi2z/F3UUNkWhTpPYuegqzrJlC
6t0QgwYiCD0ZjCVRZWWdzkEHGEkKg+w+mcwI29TtlOOZ10m0LVQb0+FQqvqL0ivE
wNMx4T3VhyZfkTH29QTEH1eIM7Uf34ijoIsD6LM1mCxCYRXw9edEgzlAKQOuVQmx
fXKbgw5qdsNYtzf2Zn/AYDax7ao3l7hNqIIGXRkDV0rcg6Z1rYuJPlD3GAJoc09o
ropl6oW3AgMBAAECggEAaUNVqdtOeOoz4r0RX7koZXx2qADYZ2c4Ud/lc2AbkYaP
dT8uS4OJAsmdccin+J9dY7oHUKrY3DDVLOFx8BQHacjKwHwidyiOqLWHJb3UdBcU
Zxo3oL2fquzmSS6iUYIFOHFwmItVQ2yGdYLlW4CvHIdo98IpEDiSL5yAie+i+dYB
8ZG+iffAauzYrAD5qDhz2EYmArSsHQ+iUKQp61U4XeoXHtxkbyPGSpAXJsEmS8M6
yIEeQkTCTGpCJ9Xo/BLPFK30TN3kuV/GgJxX1B4JNsSk/4b0H10v6ZAQ6+cdRgZF
e+m6RvTYYSuM6sQUE17MBcRLcTMhxsMY1C4Lzfxt+QKBgQD2LS+IHxdnHE+4e7Ji
5z4nRx/sb60/wtsPgyKCKQbuPA/kkZdf54h3R56u3UbiWSbFUTa+hvMmbiJgdBha
XPMHiwciVh4m1EXuzaDZCqbtJ1HKavoAa/vybk6JHyn0/m9mRW99AhD8n2yStvZY
VPz2wat1oVVUe30CkqoVfRYzVQKBgQDuoQ5vCbByzT+nYo9uyDc9prYIKuhvHEhY
NhWc/Pj4F/NRf71ztom5EvV1jyuxRvftCphFBWKTsTRbyMP6dwSTYR6dlm11RH91
fb7pSJlSyjExrJZ7r+g4gBQGL3LPQyiUgI2CHrYQ190lG5JoRCy7rGGRTCZwJ8vj
Xqp5WrIs2wKBgQC2JYrU0gRz44vM+aFs8qKXV1X0kFEFK30AhkvDOO4K2d/8hAkY
Ce18LD7qLYmkMsiwGL5DzQAeAEFpUp0uRzX+78xwiH24xzmTTwxjazFFqeEnv22J
YFzD7QApDyjxQE1Ww6uRODUvZhpkmAHAK+ob/gKKf7vuTYyamcBFNA94HQKBgQC1
uqX5XhGofDL70I2XOpcHNozuj27QH2Pg+d9f3S/mEKdW68dl9h/QeGXCj7QgoAFz
3lu0RLOb8poDRFQrzLQJYS8lqEfXxMCkw4y+sHFDoYPxZpR7wa1CShf11fDDc0vW
PEiITcct8JcUCXloOnMuwcrUEoA7bbNShueg37dNfQKBgFF+eRAHrxLsIiRjhP6r
3JpSsKJ16arQcORastr8np7KAT1roHf4Vq8mk0QjhJVQDRyNU+28LVer19ncWsHl
lDRMMG0WBfYR9Eu5pBVtpB8SZMQUY4KfHVfQokDNQ2JlRy7mOTXrUXyrWppg7UM+
AjeWVlBp2gVp7PxivRJ2e9gO
-----END PRIVATE KEY-----
"#;
/// Never published: what an attacker signs with.
pub const KEY_C: &str = r#"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC+Nt8EJQHZzO2l
/q9PyHlrUD094ol9i+wwbV/0kn1D3X99OlUd9v11e2X/lTeXp/nksXb4TYK+gNMJ
RoAvuTjdUswVY2guA40GM28Z9EG2zdSoQC7ZPd4FqVajj+yjfYyF5WgN0pyUwFMc
B+g5MqFB8Snl0tudZjAiaqzGnrwXOFXGbBfAUP0qVJia0Ozfw33Ppf3aM6EYTyIX
m44LXz0yFQTTjR/1DFHXPk5t9qQP1h9HuOVjod2Zwrtzpc2jQya3km/2Ggeqw9Jk
TzltpwRRKPMZA85Q7QDZ8eowZqgukMLS022cme3glZ0zpFJTVyQjIIZstpwHwiT4
uHx4cK+JAgMBAAECggEACP6ZPx3s33q0RiQr8A7fxvZNXw7GR5yFN6kEX5FJwRrJ
O4e1nKwgQhzqrtJEhbRYubq2kHlB1HZNBGREDX2ptbWDlwNTWtGqKn/mIgkNznIf
OzGFxZoKVKQ0R5m3q+d07KPzbqvl4ZbSl0G8dm/xdifMPmThI6lAX3BB6UZ6SHK5
jfL8WxD9y6Gt7SQyNLKhfg2RsPA89v11GIF6xWv3VIv77gmU9hNdVnnav1rfSiql
CUQW/Sch85avziCPIqBhFvJC4jOXC/ip63reqGRX0fg6aqFCHR4YOtzADMQ/4tjQ
6VHU2KrTPUIWO5hLwWBL2rr4s6NvKW+91mwdTEYHbQKBgQDyJlAwTiasAx7DBRRB
F6G4H3ChRmbyDUvPWJQDwXO1XOfAc1aT4Wv3uMBLD3klTtyPF1hgGZPKPZvIXvnm
9UfO4LNjr3ZxfeAaXy1Jii3A7vz9AJPb1hgzQehsErOJqR9yiTlhgAzXQiilK1+P
nDdXWvn6u7Jo0uTDuVOsrn/jAwKBgQDJGBe/n/vSDTt89kt4aKbBFqLrh1TpQyas
DDhBb/DrqZ3ncNuDmK4H2vx3akB6SjDktCAQ4CR0HbsdTvZO/063owwqY616nulY
WVOnwDNG/gw1TUAOXrpB6JSxdH7GXw4KJIhF5Ts7dG8oobWSv2F0JFrM5p4IA3k8
uL90ecjXgwKBgQDL8tULOmd77UzVeMusX1kIGQLl8sP2DpjRVIul9iOcl1liUEKV
XwFurZ7YGXoxoBBIPKNknWZKqkUxKD1W9zO53Kt6xGgAAsLjs1ITZFxQ6XkPJpNi
Txom4dX+YGnzAgzIjSdVJWKrUr+lDbj43dwGqUtukPQdMbMX3lnJUVfJPQKBgFVK
Fqh7nj6UxipV++Rx3mf+xdLHb0gP5xMJi8KVS8VoB0TmJPRHiWhjhLjRI8+6L8qQ
axk9N7jX80iW+PjAaA6S5NIFvMpJJAcIu+ZmKllt3pes0AJIQw85KfepxSs1narH
m9SpSNoKpCrDi1NWQGsWEDzfgx86+ey7Htiz3m8pAoGBAN4nXWHEu1x6pr8ehsYv
G8jr/RmLM74M/pgMFn9SXYGl1mK+x3LxRMV9r2Cp9EXer8oYewWE0u0zts98re1+
0dpE9LCwmx1Z/SH7Pm1aFdQC9mtIgZJOqOcA9LTzm7+p/iLuckgrkBd21MShxTGX
ieiktYHApWxWwruqEBLtp4J0
-----END PRIVATE KEY-----
"#;
/// The public half of key A, as PEM (the HMAC-with-public-key attack uses it as a secret).
pub const PUB_A: &str = r#"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAo9BMLStkBijZIOW2BGk7
SokmpcJn/9+ARrHeh9whytK0PsjYi5//V3Ib7wu5lmrPOX2Dapy9vUkptPZFg0Nd
Ul7EVH52bQ3VgkcHuQrPAzx0v2vmp3OkUSErZt6XrswrNzvmYqJLmUQIDy8lV+sm
BLFPHpt70IVpbD/j+yNiMZgsf2AUikjuA6Fm3tZO17YUmSvPmgzwc4yxqGD6j0fP
3mQ+XtZW3iCpqvT9OA+iohvxnAKmtWZyYWz4H6jwQ4Yb8NlOWndpzgMw/7LeH01Y
830qRM0fttx/5N3nsf3EjimvnNyrGv+5jT5Nuh9PSM6bVLYmX9yn5Q8/xj2MYifC
TwIDAQAB
-----END PUBLIC KEY-----
"#;
