//! Proxies and the trust store: the real OpenID Provider served over TLS with a certificate
//! of a test CA, at a name (`idp.corp.test`) that only a CONNECT proxy started here resolves.
//! A sign-in that succeeds was carried by the proxy (the agent cannot resolve the name), and
//! the proxy's log shows it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amove_agent::sso::net::{NetSettings, ProxySource, ProxyUrl};
use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{self, Agent, Answer};
use crate::fake_oidc::{Browser, FakeIdp, RealOp, TestAgent, op_client, param};

const IDP_HOST: &str = "idp.corp.test";
const CA_NAME: &str = "Amove Test Inspection CA";
const CLIENT_ID: &str = "amove-native";
const ALICE: &str = "alice@acme.test";
const ALICE_PASSWORD: &str = "alice-password";
/// A loopback callback nobody serves: the browser stops at it.
const CB: &str = "http://127.0.0.1:53682/cb";
const PROXY_USER: &str = "corp";
const PROXY_PASSWORD: &str = "s3cret-proxy-pw";

/// A CA like a TLS-inspecting proxy's, and the IdP's certificate it issued.
struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn test_ca() -> TestCa {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec![IDP_HOST.to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, IDP_HOST);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    TestCa {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The real OP as `https://idp.corp.test:PORT` (listening on 127.0.0.1) with a public client
/// and Alice; returns it and its port.
async fn tls_op(ca: &TestCa) -> (RealOp, u16) {
    tls_op_with(ca, json!({})).await
}

/// [`tls_op`] with more top-level config (`extra`, an object: users, a directory).
async fn tls_op_with(ca: &TestCa, extra: Value) -> (RealOp, u16) {
    let mut config = json!({
        "tls": {"cert": ca.cert_pem, "key": ca.key_pem},
        "host": IDP_HOST,
        "clients": [op_client(CLIENT_ID, "", "none", &[CB])],
        "users": [{
            "accountId": "alice",
            "email": ALICE,
            "email_verified": true,
            "password": ALICE_PASSWORD,
            "groups": ["engineering"],
        }],
    });
    if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    let op = RealOp::start(&config).await;
    let port = op
        .origin
        .strip_prefix(&format!("https://{IDP_HOST}:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("OP origin {}", op.origin));
    (op, port)
}

/// A browser that reaches the OP directly (it resolves `idp.corp.test` and trusts the CA).
fn browser(ca: &TestCa, port: u16) -> Browser {
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .resolve(IDP_HOST, SocketAddr::from(([127, 0, 0, 1], port)))
            .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap(),
    }
}

/// A CONNECT proxy on loopback. It resolves `idp.corp.test` to the OP on 127.0.0.1 (and
/// nothing else), answers 407 when `credentials` are set and not sent, and logs each request:
/// `CONNECT host:port` when it opened the tunnel, `407 host:port` or `502 host:port` when not,
/// `405 REQUEST-LINE` for anything but CONNECT (a plain http request sent to a proxy).
struct ConnectProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    async fn start(idp_port: u16, credentials: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let want = credentials.map(|(u, p)| {
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
            .to_lowercase()
        });
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let (log, want) = (log.clone(), want.clone());
                    tokio::spawn(async move {
                        let _ = serve_connect(conn, idp_port, want.as_deref(), &log).await;
                    });
                }
            }
        });
        Self { addr, log, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connect(
    mut conn: TcpStream,
    idp_port: u16,
    want_auth: Option<&str>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let target = match request.split(' ').collect::<Vec<_>>()[..] {
        ["CONNECT", target, _] => target.to_string(),
        _ => {
            log.lock().unwrap().push(format!("405 {request}"));
            conn.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_lowercase());
    let note = |what: &str| log.lock().unwrap().push(format!("{what} {target}"));
    if want_auth.is_some() && auth.as_deref() != want_auth {
        note("407");
        conn.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
              proxy-authenticate: Basic realm=\"corp\"\r\ncontent-length: 0\r\n\r\n",
        )
        .await?;
        return Ok(());
    }
    if target != format!("{IDP_HOST}:{idp_port}") {
        note("502");
        conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", idp_port)).await?;
    note("CONNECT");
    conn.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}

/// The OIDC configuration's body for the OP at `port`: a public client.
fn okta_config(port: u16) -> Value {
    json!({
        "ClientId": CLIENT_ID,
        "OpenIdURL": format!("https://{IDP_HOST}:{port}"),
        "Active": true,
    })
}

/// The body of Alice's `sso_url`.
fn alice_login() -> Value {
    json!({"Username": ALICE, "CallbackUrl": CB})
}

/// sso_url → the OP's login (the browser goes directly) → authenticate; the answer of
/// authenticate.
async fn sign_in(post: impl AsyncFn(&str, Value) -> Answer, browser: &Browser) -> Answer {
    let a = post(
        "/sso/sso_url",
        json!({"Username": ALICE, "CallbackUrl": CB}),
    )
    .await;
    assert_eq!(a.status, 200, "sso_url: {}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let back = browser.login(&url, ALICE, ALICE_PASSWORD, CB).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    post(
        "/sso/authenticate",
        json!({"Identifier": identifier, "AuthorizationCode": code, "CallbackUrl": CB}),
    )
    .await
}

/// An agent in-process whose IdP requests go through `proxy` (as if set by `source`) and
/// trust the test CA (its file in the returned directory), with an active Okta configuration
/// for the OP at `port` as a public client; and the admin's token.
async fn agent_via(
    ca: &TestCa,
    proxy: &ConnectProxy,
    source: ProxySource,
    port: u16,
) -> (TestAgent, String, tempfile::TempDir) {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let via = ProxyUrl::parse(&proxy.url()).unwrap();
    let agent = TestAgent::start(|s| {
        s.net = NetSettings {
            proxy: Some((via, source)),
            no_proxy: None,
            extra_ca_file: Some(ca_file),
            proxy_managed_by: None,
        }
    })
    .await;
    let t = agent.admin_token();
    let r = agent
        .post_json("/sso/setup_okta", Some(&t), &okta_config(port))
        .await;
    assert_eq!(r.json()["ClientAuth"], "none", "{}", r.text);
    (agent, t, ca_dir)
}

/// The environment of a spawned agent: the proxy, nothing from the test's own environment.
fn env<'a>(proxy: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("HTTPS_PROXY", proxy),
        ("https_proxy", ""),
        ("ALL_PROXY", ""),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
        ("AMOVE_AGENT_CA_FILE", ""),
    ];
    for (k, v) in extra {
        env.retain(|(n, _)| n != k);
        env.push((k, v));
    }
    env
}

#[tokio::test]
async fn behind_tls_inspection_sign_in_needs_the_ca_file_and_goes_through_the_proxy() {
    let ca = test_ca();
    let (_op, port) = tls_op(&ca).await;
    let proxy = ConnectProxy::start(port, None).await;
    let proxy_url = proxy.url();
    let data = tempfile::tempdir().unwrap();
    common::init_account(data.path(), "acme", "admin@acme.test");
    common::add_user(data.path(), "acme", ALICE, false, false);
    let ca_file = data.path().join("corp-inspection-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let ca_path = ca_file.display().to_string();
    let target = format!("{IDP_HOST}:{port}");

    // Without the CA: the OS trust store does not know the inspection CA.
    let mut agent = Agent::start_in(data.path(), &env(&proxy_url, &[])).await;
    let t = agent.admin_token().await;
    let r = agent
        .post_json("/sso/setup_okta", Some(&t), &okta_config(port))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let untrusted = format!(
        "the IdP's certificate is not trusted (issuer: CN={CA_NAME}); if your company inspects \
         TLS, install its CA or set AMOVE_AGENT_CA_FILE"
    );
    let test = agent
        .post_json("/sso/test_connection?provider=okta", Some(&t), &json!({}))
        .await;
    assert_eq!(test.json()["Ok"], false, "{}", test.text);
    assert!(test.text.contains(&untrusted), "{}", test.text);
    agent
        .post_json("/sso/sso_url", None, &alice_login())
        .await
        .assert_problem(499, "SSO", &untrusted);
    let seen = proxy.log();
    assert!(!seen.is_empty(), "the proxy saw nothing");
    assert!(
        seen.iter().all(|l| l == &format!("CONNECT {target}")),
        "{seen:?}"
    );

    // With the CA file: trusted, and the whole sign-in goes through the proxy (named with
    // credentials this time, which this proxy does not ask for; they must not be logged).
    agent.kill();
    let with_credentials = proxy_url.replace("http://", "http://corp:env-proxy-pw-42@");
    let mut agent = Agent::start_in(
        data.path(),
        &env(&with_credentials, &[("AMOVE_AGENT_CA_FILE", &ca_path)]),
    )
    .await;
    let t = agent.admin_token().await;
    let before = proxy.log().len();
    let post = async |path: &str, body: Value| agent.post_json(path, None, &body).await;
    let jwt = sign_in(post, &browser(&ca, port)).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    assert_eq!(jwt.json().as_str().map(|j| j.split('.').count()), Some(3));
    // (Discovery, JWKS and token requests share the tunnels the client keeps open.)
    let seen = proxy.log();
    assert!(seen.len() > before, "{seen:?}");
    assert!(
        seen.iter().all(|l| l == &format!("CONNECT {target}")),
        "{seen:?}"
    );
    let test = agent
        .post_json("/sso/test_connection?provider=okta", Some(&t), &json!({}))
        .await;
    assert_eq!(test.json()["Ok"], true, "{}", test.text);
    let network = agent.get("/sso/network", Some(&t)).await;
    let n = network.json();
    assert_eq!(n["Effective"]["ProxySource"], "HTTPS_PROXY", "{n}");
    assert_eq!(n["Effective"]["CaFile"], ca_path.as_str());
    assert_eq!(n["ProxyURL"], Value::Null);
    assert!(
        !network.text.contains("env-proxy-pw-42"),
        "{}",
        network.text
    );
    let hits = common::files_containing(data.path(), "env-proxy-pw-42");
    assert!(hits.is_empty(), "the proxy password in {hits:?}");
    let log = std::fs::read_to_string(data.path().join("agent.log")).unwrap();
    assert!(
        log.contains(&format!("proxy http://corp:********@{}", proxy.addr)),
        "{log}"
    );

    // NO_PROXY naming the IdP: the agent connects directly, cannot resolve the name, and
    // the proxy sees nothing more.
    agent.kill();
    let agent = Agent::start_in(
        data.path(),
        &env(
            &proxy_url,
            &[("AMOVE_AGENT_CA_FILE", &ca_path), ("NO_PROXY", "corp.test")],
        ),
    )
    .await;
    let seen = proxy.log().len();
    agent
        .post_json("/sso/sso_url", None, &alice_login())
        .await
        .assert_problem(
            499,
            "SSO",
            "could not connect to the IdP's discovery document",
        );
    assert_eq!(proxy.log().len(), seen, "{:?}", proxy.log());
}

#[tokio::test]
async fn a_proxy_asking_for_credentials_gets_them_from_the_sealed_setting() {
    let ca = test_ca();
    let (_op, port) = tls_op(&ca).await;
    let proxy = ConnectProxy::start(port, Some((PROXY_USER, PROXY_PASSWORD))).await;
    let (agent, t, _ca_dir) = agent_via(&ca, &proxy, ProxySource::Env("HTTPS_PROXY"), port).await;
    agent.add_user(ALICE, "Alice Example");

    // The environment's proxy URL has no credentials: 407, named as such.
    agent.sso_url(ALICE, CB).await.assert_problem(
        499,
        "SSO",
        "the proxy refused the connection (407)",
    );
    assert_eq!(
        proxy.log(),
        [format!("407 {IDP_HOST}:{port}")],
        "{:?}",
        proxy.log()
    );

    // The agent's setting: a proxy URL with credentials, shown masked, sealed at rest.
    let with_credentials = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@{}", proxy.addr);
    let masked = format!("http://{PROXY_USER}:********@{}/", proxy.addr);
    let put = agent
        .put_json(
            "/sso/network",
            Some(&t),
            &json!({"ProxyURL": with_credentials, "NoProxy": "intranet.corp.test"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["ProxyURL"], masked.as_str(), "{}", put.text);
    assert_eq!(put.json()["Effective"]["ProxySource"], "setting");
    let got = agent.get("/sso/network", Some(&t)).await;
    assert_eq!(got.json()["ProxyURL"], masked.as_str(), "{}", got.text);
    assert_eq!(got.json()["Effective"]["Proxy"], masked.as_str());
    assert_eq!(got.json()["NoProxy"], "intranet.corp.test");

    let post = async |path: &str, body: Value| agent.post_json(path, None, &body).await;
    let jwt = sign_in(post, &browser(&ca, port)).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let seen = proxy.log();
    assert!(
        seen[1..]
            .iter()
            .all(|l| l == &format!("CONNECT {IDP_HOST}:{port}")),
        "{seen:?}"
    );

    // Sent back as read, the mask keeps the stored password.
    let put = agent
        .put_json("/sso/network", Some(&t), &json!({"ProxyURL": masked}))
        .await;
    assert_eq!(put.json()["ProxyURL"], masked.as_str(), "{}", put.text);
    let test = agent
        .post_json("/sso/test_connection?provider=okta", Some(&t), &json!({}))
        .await;
    assert_eq!(test.json()["Ok"], true, "{}", test.text);
    // A mask anywhere else is not a password.
    agent
        .put_json(
            "/sso/network",
            Some(&t),
            &json!({"ProxyURL": format!("http://{PROXY_USER}:********@other.corp.test:3128")}),
        )
        .await
        .assert_problem(499, "DEFAULT", "ProxyURL: send the proxy's real password");

    // The password is in no answer, no log line, no file in clear.
    let audit = agent.get("/sso/audit", Some(&t)).await.text;
    assert!(audit.contains("network.update"), "{audit}");
    for text in [&audit, &got.text, &put.text] {
        assert!(!text.contains(PROXY_PASSWORD), "{text}");
    }
    let hits = common::files_containing(agent.dir.path(), PROXY_PASSWORD);
    assert!(hits.is_empty(), "the proxy password in clear in {hits:?}");

    // Removed: the environment's proxy applies again.
    let put = agent
        .put_json("/sso/network", Some(&t), &json!({"ProxyURL": null}))
        .await;
    assert_eq!(put.json()["ProxyURL"], Value::Null, "{}", put.text);
    assert_eq!(put.json()["Effective"]["ProxySource"], "HTTPS_PROXY");
}

#[tokio::test]
async fn an_import_reads_the_directory_through_the_proxy_as_a_public_client() {
    // The admin's import sign-in (a public client) and the Okta Users/Groups API calls that
    // follow all go to idp.corp.test, so all go through the proxy.
    let ca = test_ca();
    let admin = "admin@acme.test";
    let (_op, port) = tls_op_with(
        &ca,
        json!({
            "users": [
                {"accountId": "00uada", "email": admin, "email_verified": true,
                 "password": "ada-at-the-idp", "groups": ["amove-admins"]},
                {"accountId": "00ualice", "email": ALICE, "email_verified": true,
                 "password": ALICE_PASSWORD, "groups": ["engineering"]},
            ],
            "directory": {},
        }),
    )
    .await;
    let proxy = ConnectProxy::start(port, None).await;
    let (agent, t, _ca_dir) = agent_via(&ca, &proxy, ProxySource::Setting, port).await;
    let r = agent
        .post_json(
            "/sso/sso_url_import_user",
            Some(&t),
            &json!({"CallbackUrl": CB, "Username": ""}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let url = r.json()["Url"].as_str().unwrap().to_string();
    let back = browser(&ca, port)
        .login(&url, admin, "ada-at-the-idp", CB)
        .await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let read = agent
        .send(
            agent
                .http
                .get(format!("{}/sso/get_user_usergroups", agent.base))
                .query(&[
                    ("token", t.as_str()),
                    ("authorizationCode", &code),
                    ("callbackUrl", CB),
                ]),
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    let alice = read
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["User"]["Email"] == ALICE)
        .cloned()
        .unwrap_or_else(|| panic!("no Alice in {}", read.text));
    assert_eq!(alice["UserGroups"][0]["Name"], "engineering", "{alice}");
    let seen = proxy.log();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|l| l == &format!("CONNECT {IDP_HOST}:{port}")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_loopback_idp_is_reached_directly_whatever_the_proxy() {
    let idp = FakeIdp::start("", None).await;
    let proxy = ConnectProxy::start(1, None).await;
    let via = ProxyUrl::parse(&proxy.url()).unwrap();
    let agent = TestAgent::start(|s| {
        s.net.proxy = Some((via, ProxySource::Setting));
    })
    .await;
    agent
        .setup_oidc("okta", CLIENT_ID, "", &idp.openid_url())
        .await;
    let test = agent
        .post_json(
            "/sso/test_connection?provider=okta",
            Some(&agent.admin_token()),
            &json!({}),
        )
        .await;
    assert_eq!(test.json()["Ok"], true, "{}", test.text);
    assert!(proxy.log().is_empty(), "{:?}", proxy.log());
}

#[tokio::test]
async fn a_proxy_a_policy_manages_is_shown_and_not_changed_through_the_api() {
    let policy = "/etc/amove/policy.json";
    let managed = ProxyUrl::parse("http://proxy.corp.example:3128").unwrap();
    let agent = TestAgent::start(|s| {
        s.net.proxy = Some((managed, ProxySource::Policy(policy.into())));
    })
    .await;
    let t = agent.admin_token();
    let got = agent.get("/sso/network", Some(&t)).await.json();
    assert_eq!(got["Effective"]["ProxySource"], "policy", "{got}");
    assert_eq!(got["Effective"]["Managed"], true);
    assert_eq!(got["Effective"]["Proxy"], "http://proxy.corp.example:3128/");
    agent
        .put_json(
            "/sso/network",
            Some(&t),
            &json!({"ProxyURL": "http://other:1"}),
        )
        .await
        .assert_problem(
            499,
            "ACCESS",
            "the proxy is managed by the policy file /etc/amove/policy.json",
        );
    // A policy change applies at once (the coordinator's policy watcher calls this).
    amove_agent::login::network::set_base(&agent.state, NetSettings::default())
        .await
        .unwrap();
    let got = agent.get("/sso/network", Some(&t)).await.json();
    assert_eq!(got["Effective"]["Managed"], false, "{got}");
    let put = agent
        .put_json(
            "/sso/network",
            Some(&t),
            &json!({"ProxyURL": "http://other:1"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
}

#[tokio::test]
async fn the_stored_proxy_applies_again_after_a_restart_and_stays_sealed() {
    let mut agent = Agent::with_account().await;
    let t = agent.admin_token().await;
    let r = agent
        .put_json(
            "/sso/network",
            Some(&t),
            &json!({"ProxyURL": "http://corp:restart-pw-77@proxy.corp.example:3128"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    agent.restart().await;
    let got = agent.get("/sso/network", Some(&t)).await;
    let masked = "http://corp:********@proxy.corp.example:3128/";
    assert_eq!(got.json()["ProxyURL"], masked, "{}", got.text);
    assert_eq!(got.json()["Effective"]["ProxySource"], "setting");
    let log = std::fs::read_to_string(agent.data_dir.join("agent.log")).unwrap();
    assert!(
        log.contains(&format!("proxy {masked} (agent setting)")),
        "{log}"
    );
    let hits = common::files_containing(&agent.data_dir, "restart-pw-77");
    assert!(hits.is_empty(), "the proxy password in clear in {hits:?}");
}

#[test]
fn an_unreadable_ca_file_stops_the_agent_at_start_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("no-such-ca.pem");
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("AMOVE_AGENT_CA_FILE", &missing)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("AMOVE_AGENT_CA_FILE {}", missing.display())),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

#[tokio::test]
async fn bad_network_settings_are_refused_with_the_field_named() {
    let agent = TestAgent::start(|_| {}).await;
    let t = agent.admin_token();
    for (body, needle) in [
        (
            json!({"ProxyURL": "socks5://p:1080"}),
            "ProxyURL must be http://[USER:PASSWORD@]HOST[:PORT]",
        ),
        (
            json!({"ProxyURL": "http://p:3128/path"}),
            "without a path or query",
        ),
        (json!({"ProxyURL": 3128}), "ProxyURL must be a string"),
        (
            json!({"NoProxy": "a\u{7}b"}),
            "NoProxy must not contain control",
        ),
    ] {
        agent
            .put_json("/sso/network", Some(&t), &body)
            .await
            .assert_problem(499, "DEFAULT", needle);
    }
    // A standard user may not change it.
    agent.add_user(ALICE, "Alice Example");
    let u = agent
        .state
        .db
        .read_blocking(|c| amove_agent::store::users::by_email(c, ALICE))
        .unwrap()
        .unwrap();
    let user_token = agent.state.auth.mint_session(&u, "acme", "okta").unwrap().0;
    agent
        .put_json(
            "/sso/network",
            Some(&user_token),
            &json!({"ProxyURL": null}),
        )
        .await
        .assert_problem(499, "ACCESS", "");
}

/// Writes a policy file as an MDM would: aside, mode 0644, renamed into place.
fn write_policy(path: &std::path::Path, policy: &Value) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, policy.to_string()).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `GET /sso/network` until `done` holds of it (the agent polls its policy file).
async fn network_when(agent: &Agent, t: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let n = agent.get("/sso/network", Some(t)).await.json();
        if done(&n) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_policy_files_network_carries_the_sign_in_until_it_is_released() {
    let ca = test_ca();
    let (_op, port) = tls_op(&ca).await;
    // The policy's proxy asks for credentials; the environment's proxy must see nothing
    // while the policy names another one.
    let managed_proxy = ConnectProxy::start(port, Some((PROXY_USER, PROXY_PASSWORD))).await;
    let env_proxy = ConnectProxy::start(port, None).await;
    let data = tempfile::tempdir().unwrap();
    common::init_account(data.path(), "acme", "admin@acme.test");
    common::add_user(data.path(), "acme", ALICE, false, false);
    let etc = tempfile::tempdir().unwrap();
    let ca_file = etc.path().join("corp-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let ca_path = ca_file.display().to_string();
    let policy = etc.path().join("policy.json");
    let policy_path = policy.display().to_string();
    let with_credentials = format!(
        "http://{PROXY_USER}:{PROXY_PASSWORD}@{}",
        managed_proxy.addr
    );
    write_policy(
        &policy,
        &json!({"Network": {"ProxyURL": with_credentials, "CaFile": ca_path}}),
    );
    let env_url = env_proxy.url();
    let agent = Agent::start_in(
        data.path(),
        &env(
            &env_url,
            &[
                ("AMOVE_AGENT_POLICY", &policy_path),
                ("AMOVE_AGENT_POLICY_POLL_MS", "100"),
            ],
        ),
    )
    .await;
    let t = agent.admin_token().await;
    let r = agent
        .post_json("/sso/setup_okta", Some(&t), &okta_config(port))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Trusted through the policy's CA file only (the environment names none), carried by the
    // policy's proxy with the policy's credentials.
    let post = async |path: &str, body: Value| agent.post_json(path, None, &body).await;
    let jwt = sign_in(post, &browser(&ca, port)).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let seen = managed_proxy.log();
    assert!(!seen.is_empty(), "the policy's proxy saw nothing");
    assert!(
        seen.iter()
            .all(|l| l == &format!("CONNECT {IDP_HOST}:{port}")),
        "{seen:?}"
    );
    assert!(env_proxy.log().is_empty(), "{:?}", env_proxy.log());

    let network = agent.get("/sso/network", Some(&t)).await;
    let n = network.json();
    let masked = format!("http://{PROXY_USER}:********@{}/", managed_proxy.addr);
    assert_eq!(n["Effective"]["Proxy"], masked.as_str(), "{n}");
    assert_eq!(n["Effective"]["ProxySource"], "policy");
    assert_eq!(n["Effective"]["Managed"], true);
    assert_eq!(n["Effective"]["ManagedBy"], policy_path.as_str());
    assert_eq!(n["Effective"]["CaFile"], ca_path.as_str());
    let other = json!({"ProxyURL": "http://other.corp.test:1"});
    let refused = agent.put_json("/sso/network", Some(&t), &other).await;
    let why = format!("Network.ProxyURL is managed by the policy file {policy_path}");
    refused.assert_problem(499, "ACCESS", &why);
    // The password the policy gave is in no answer and no file of the agent in clear (what
    // the agent remembers of the policy is sealed), nor in its log.
    assert!(!network.text.contains(PROXY_PASSWORD), "{}", network.text);
    let hits = common::files_containing(data.path(), PROXY_PASSWORD);
    assert!(hits.is_empty(), "the proxy password in clear in {hits:?}");

    // A CA file that holds no certificate: the whole file is refused, the last good network
    // settings stay.
    let junk = etc.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    write_policy(
        &policy,
        &json!({"Network": {"ProxyURL": null, "CaFile": junk.display().to_string()}}),
    );
    let mut error = Value::Null;
    for _ in 0..100 {
        error = agent.get("/sso/policy", Some(&t)).await.json()["Error"].clone();
        if !error.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = error.as_str().unwrap_or_default();
    assert!(
        error.contains("Network.CaFile") && error.contains("holds no PEM certificate"),
        "{error}"
    );
    let n = agent.get("/sso/network", Some(&t)).await.json();
    assert_eq!(n["Effective"]["Proxy"], masked.as_str(), "{n}");
    assert_eq!(n["Effective"]["CaFile"], ca_path.as_str());

    // "ProxyURL": null — managed, and no proxy: the agent connects directly (and cannot
    // resolve the IdP's name); the environment's proxy still does not apply.
    write_policy(
        &policy,
        &json!({"Network": {"ProxyURL": null, "CaFile": ca_path}}),
    );
    let n = network_when(&agent, &t, "no proxy", |n| {
        n["Effective"]["Proxy"].is_null()
    })
    .await;
    assert_eq!(n["Effective"]["Managed"], true, "{n}");
    assert_eq!(n["Effective"]["ProxySource"], "none");
    agent
        .put_json("/sso/network", Some(&t), &json!({"ProxyURL": env_url}))
        .await
        .assert_problem(499, "ACCESS", &policy_path);
    let before = managed_proxy.log().len();
    // (test_connection fetches afresh; sign-ins would use the cached discovery document.)
    let test = agent
        .post_json("/sso/test_connection?provider=okta", Some(&t), &json!({}))
        .await;
    assert_eq!(test.json()["Ok"], false, "{}", test.text);
    assert!(
        test.text
            .contains("could not connect to the IdP's discovery document"),
        "{}",
        test.text
    );
    assert_eq!(managed_proxy.log().len(), before);
    assert!(env_proxy.log().is_empty(), "{:?}", env_proxy.log());

    // ProxyURL left out: the environment's proxy again, the admins' to replace.
    write_policy(&policy, &json!({"Network": {"CaFile": ca_path}}));
    let n = network_when(&agent, &t, "the proxy released", |n| {
        n["Effective"]["Managed"] == false
    })
    .await;
    assert_eq!(n["Effective"]["ProxySource"], "HTTPS_PROXY", "{n}");
    assert_eq!(n["Effective"]["CaFile"], ca_path.as_str());
    let test = agent
        .post_json("/sso/test_connection?provider=okta", Some(&t), &json!({}))
        .await;
    assert_eq!(test.json()["Ok"], true, "{}", test.text);
    assert!(
        !env_proxy.log().is_empty(),
        "the environment's proxy carries it now"
    );

    // The file removed: the environment's settings, which trust no test CA.
    std::fs::remove_file(&policy).unwrap();
    network_when(&agent, &t, "the CA file released", |n| {
        n["Effective"]["CaFile"].is_null()
    })
    .await;
    let test = agent
        .post_json("/sso/test_connection?provider=okta", Some(&t), &json!({}))
        .await;
    assert_eq!(test.json()["Ok"], false, "{}", test.text);
    assert!(
        test.text.contains("the IdP's certificate is not trusted"),
        "{}",
        test.text
    );
    let put = agent
        .put_json("/sso/network", Some(&t), &json!({"ProxyURL": env_url}))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
}
