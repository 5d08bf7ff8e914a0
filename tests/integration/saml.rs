//! SAML 2.0 sign-in through the real agent: against a real SimpleSAMLphp IdP, and with
//! responses the tests build and sign with their own key (fail-closed ACS).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use amove_agent::sso::saml::testing::{ResponseSpec, TestIdp, encode, status_xml, strip_xml_decl};
use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Agent, add_user};

pub(crate) const SP: &str = "https://amove.test/sp";
pub(crate) const ISSUER: &str = "https://idp.corp.test/metadata";
pub(crate) const CALLBACK: &str = "http://127.0.0.1:9/cb";

// The test IdP's own wall clock (the agent under test reads its own).
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An agent with account `acme`, an active SAML configuration trusting `idp`, and the SSO
/// user alice@corp.test.
pub(crate) async fn agent_with_saml(idp: &TestIdp) -> (Agent, String) {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let r = a
        .post_json(
            "/sso/setup_saml",
            Some(&t),
            &json!({"Certificate": idp.cert_pem(), "SPEntityId": SP, "IdPSSOURL": "https://idp.corp.test/sso",
                    "IdPEntityId": ISSUER, "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    (a, t)
}

/// Starts a SAML sign-in; returns (Identifier, AuthnRequest ID, RelayState).
pub(crate) async fn start(a: &Agent, username: &str) -> (String, String, String) {
    let r = a
        .post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": username, "CallbackUrl": CALLBACK}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let url = url::Url::parse(r.json()["Url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&q["SAMLRequest"])
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    let id = xml
        .split("ID=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    (
        r.json()["Identifier"].as_str().unwrap().to_string(),
        id,
        q["RelayState"].clone(),
    )
}

pub(crate) fn acs(a: &Agent) -> String {
    format!("http://localhost:{}/sso/saml/acs", a.port)
}

pub(crate) async fn post_acs(
    a: &Agent,
    saml_response: &str,
    relay: Option<&str>,
) -> crate::common::Answer {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("SAMLResponse", saml_response);
    if let Some(r) = relay {
        form.append_pair("RelayState", r);
    }
    a.send(
        a.http
            .post(a.url("/sso/saml/acs"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", "https://idp.corp.test")
            .body(form.finish()),
    )
    .await
}

/// The code and state of a 303 from the ACS.
pub(crate) fn redirect_code(r: &crate::common::Answer) -> (String, String) {
    assert_eq!(r.status, 303, "{}", r.text);
    let loc = url::Url::parse(r.headers["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(CALLBACK), "{loc}");
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    (q["code"].clone(), q["state"].clone())
}

#[track_caller]
pub(crate) fn refused_page(r: &crate::common::Answer, needle: &str) {
    assert_ne!(
        r.status,
        303,
        "a refused response yielded a redirect: {:?}",
        r.headers.get("location")
    );
    assert!(r.headers.get("location").is_none());
    assert!(!r.text.contains("code="), "{}", r.text);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text.contains(needle), "{needle:?} not in {}", r.text);
}

pub(crate) async fn authenticate(a: &Agent, identifier: &str, code: &str) -> crate::common::Answer {
    a.post_json(
        "/sso/authenticate",
        None,
        &json!({"Identifier": identifier, "AuthorizationCode": code, "CallbackUrl": CALLBACK}),
    )
    .await
}

#[tokio::test]
async fn crafted_signed_response_signs_in_through_acs_and_authenticate() {
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let xml = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now())
        .build(&idp)
        .unwrap();
    let (code, state) = redirect_code(&post_acs(&a, &encode(&xml), Some(&relay)).await);
    assert_eq!(state, relay);
    // A wrong code does not redeem (and burns the single-use Identifier).
    let jwt = authenticate(&a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let token = jwt.json().as_str().unwrap().to_string();
    let me = a.get("/sso/whoami", Some(&token)).await.json();
    assert_eq!(me["Username"], "alice@corp.test");
    // The code and the Identifier work once.
    authenticate(&a, &identifier, &code)
        .await
        .assert_problem(499, "SECURITY", "already used");
    // Linked to the NameID of that issuer, and audited.
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("via SAML; first sign-in: linked to subject alice@corp.test"),
        "{audit}"
    );
}

#[tokio::test]
async fn the_idps_session_not_on_or_after_caps_the_session() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let s = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now());
    let until = now() + 600;
    let stamp = chrono::DateTime::from_timestamp(until, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let assertion = s.assertion_xml().replace(
        "<saml:AuthnStatement ",
        &format!(r#"<saml:AuthnStatement SessionNotOnOrAfter="{stamp}" "#),
    );
    let signed = strip_xml_decl(&idp.sign(&assertion).unwrap());
    let xml = s.build_with(&idp, None, &[signed]).unwrap();
    let (code, _) = redirect_code(&post_acs(&a, &encode(&xml), Some(&relay)).await);
    let jwt = authenticate(&a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let token = jwt.json().as_str().unwrap().to_string();
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let exp = serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["exp"]
        .as_i64()
        .unwrap();
    // The agent's own lifetime is 8 hours; the IdP said 10 minutes.
    assert!(exp <= until && exp >= until - 5, "exp {exp}, cap {until}");
}

#[tokio::test]
async fn a_wrong_code_is_refused() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let xml = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now())
        .build(&idp)
        .unwrap();
    redirect_code(&post_acs(&a, &encode(&xml), Some(&relay)).await);
    authenticate(&a, &identifier, "not-the-code")
        .await
        .assert_problem(499, "SECURITY", "not the one issued");
}

#[tokio::test]
async fn authenticate_before_the_idp_answered_is_refused() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    let (identifier, _, _) = start(&a, "alice@corp.test").await;
    authenticate(&a, &identifier, "anything")
        .await
        .assert_problem(499, "SECURITY", "no SAML response reached the agent");
}

#[tokio::test]
async fn the_asserted_identity_signs_in_not_the_typed_username() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    add_user(&a.data_dir, "acme", "bob@corp.test", false, false);
    let (identifier, request_id, relay) = start(&a, "bob@corp.test").await;
    let xml = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now())
        .build(&idp)
        .unwrap();
    let (code, _) = redirect_code(&post_acs(&a, &encode(&xml), Some(&relay)).await);
    let token = authenticate(&a, &identifier, &code)
        .await
        .json()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.get("/sso/whoami", Some(&token)).await.json()["Username"],
        "alice@corp.test"
    );
}

#[tokio::test]
async fn an_unknown_asserted_user_is_told_to_ask_an_admin() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let xml = ResponseSpec::valid(
        &request_id,
        &acs(&a),
        SP,
        ISSUER,
        "mallory@corp.test",
        now(),
    )
    .build(&idp)
    .unwrap();
    let (code, _) = redirect_code(&post_acs(&a, &encode(&xml), Some(&relay)).await);
    authenticate(&a, &identifier, &code)
        .await
        .assert_problem(401, "AUTH", "ask an admin");
}

#[tokio::test]
async fn a_nameid_that_only_looks_like_an_email_matches_nobody() {
    // A persistent (or unspecified) NameID is an opaque id: `alice@corp.test` there is not
    // Alice's email, and without an email attribute no unlinked user can be matched.
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    for format in [
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ] {
        let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
        let mut s =
            ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now());
        s.name_id_format = format.into();
        let xml = s.build(&idp).unwrap();
        let (code, _) = redirect_code(&post_acs(&a, &encode(&xml), Some(&relay)).await);
        authenticate(&a, &identifier, &code)
            .await
            .assert_problem(401, "AUTH", "verified email");
    }
    // With an email attribute, the persistent NameID links as the subject.
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let mut s = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "id-4711", now());
    s.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into();
    s.attributes = vec![("email".into(), vec!["alice@corp.test".into()])];
    let (code, _) =
        redirect_code(&post_acs(&a, &encode(&s.build(&idp).unwrap()), Some(&relay)).await);
    let r = authenticate(&a, &identifier, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Every hostile response the ACS must refuse: no redirect, no code, a readable page, and
/// an audit event with the reason.
#[tokio::test]
async fn hostile_responses_are_refused_at_the_acs() {
    let idp = TestIdp::new().unwrap();
    let other = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let acs_url = acs(&a);
    type Mutate = Box<dyn Fn(&mut ResponseSpec)>;
    let cases: Vec<(&str, Mutate, bool, &str)> = vec![
        (
            "unsigned",
            Box::new(|s| s.sign_assertion = false),
            false,
            "signature",
        ),
        ("signed by another key", Box::new(|_| {}), true, "signature"),
        (
            "wrong Audience",
            Box::new(|s| s.audience = "https://other-sp.test".into()),
            false,
            "Audience",
        ),
        (
            "wrong Recipient",
            Box::new(|s| s.destination = "http://localhost:1/sso/saml/acs".into()),
            false,
            "ACS URL",
        ),
        (
            "expired",
            Box::new(|s| {
                s.issue_instant = now() - 3600;
                s.not_before = now() - 3600;
                s.not_on_or_after = now() - 600;
            }),
            false,
            "refused",
        ),
        (
            "not yet valid",
            Box::new(|s| s.not_before = now() + 900),
            false,
            "not yet valid",
        ),
        (
            "InResponseTo mismatch",
            Box::new(|s| s.in_response_to = Some("_other".into())),
            false,
            "InResponseTo",
        ),
        (
            "unsolicited",
            Box::new(|s| s.in_response_to = None),
            false,
            "InResponseTo",
        ),
        (
            "non-Success status",
            Box::new(|s| {
                s.sign_response = true;
                s.status = "urn:oasis:names:tc:SAML:2.0:status:Requester".into();
            }),
            false,
            "status",
        ),
        (
            "wrong Issuer",
            Box::new(|s| s.issuer = "https://evil-idp.test".into()),
            false,
            "Issuer",
        ),
    ];
    for (name, mutate, by_other, needle) in cases {
        let (_, request_id, relay) = start(&a, "alice@corp.test").await;
        let mut s =
            ResponseSpec::valid(&request_id, &acs_url, SP, ISSUER, "alice@corp.test", now());
        mutate(&mut s);
        let xml = s.build(if by_other { &other } else { &idp }).unwrap();
        let r = post_acs(&a, &encode(&xml), Some(&relay)).await;
        assert_ne!(r.status, 303, "{name} was accepted");
        refused_page(&r, needle);
    }
    // Content changed after signing; a DOCTYPE with entities; garbage; no RelayState.
    let (_, request_id, relay) = start(&a, "alice@corp.test").await;
    let good = ResponseSpec::valid(&request_id, &acs_url, SP, ISSUER, "alice@corp.test", now())
        .build(&idp)
        .unwrap();
    refused_page(
        &post_acs(
            &a,
            &encode(&good.replace("alice@corp.test", "admin@corp.test")),
            Some(&relay),
        )
        .await,
        "signature",
    );
    let xxe = format!("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{good}");
    refused_page(&post_acs(&a, &encode(&xxe), Some(&relay)).await, "DTD");
    refused_page(
        &post_acs(&a, "%%% not base64", Some(&relay)).await,
        "base64",
    );
    refused_page(&post_acs(&a, &encode(&good), None).await, "unsolicited");
    refused_page(
        &post_acs(&a, &encode(&good), Some("unknown-relay-state")).await,
        "unsolicited",
    );
    // An XML signature wrapping attempt: an evil unsigned assertion before the signed one.
    let signed = strip_xml_decl(
        &idp.sign(
            &ResponseSpec::valid(&request_id, &acs_url, SP, ISSUER, "alice@corp.test", now())
                .assertion_xml(),
        )
        .unwrap(),
    );
    let mut evil = ResponseSpec::valid(&request_id, &acs_url, SP, ISSUER, "admin@corp.test", now());
    evil.sign_assertion = false;
    let wrapped = evil.response_xml(&format!("{}{signed}", evil.assertion_xml()));
    refused_page(
        &post_acs(&a, &encode(&wrapped), Some(&relay)).await,
        "refused",
    );
    // Each refusal is in the audit trail with its reason (identical ones share a row and
    // are counted on it).
    let audit = a.get("/sso/audit?pageSize=200", Some(&admin)).await.json();
    let refusals: i64 = audit["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Outcome"] == "refused")
        .map(|e| e["Count"].as_i64().unwrap_or(0))
        .sum();
    assert!(refusals >= 14, "only {refusals} refusals audited");
}

#[tokio::test]
async fn a_failed_status_around_a_validly_signed_assertion_never_signs_in() {
    // A hostile or confused IdP: the envelope says Responder/AuthnFailed, the (validly
    // signed) assertion inside says Alice. Only the assertion is signed, so only the agent's
    // own envelope check stands between this response and a session.
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let s = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now());
    let status = status_xml(
        "urn:oasis:names:tc:SAML:2.0:status:Responder",
        Some("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"),
        Some("Account locked"),
    );
    let xml = s
        .build_with(&idp, Some(&status), &[s.signed_assertion(&idp).unwrap()])
        .unwrap();
    let r = post_acs(&a, &encode(&xml), Some(&relay)).await;
    refused_page(&r, "status Responder, sub-status AuthnFailed, message");
    assert!(r.text.contains("Account locked"), "{}", r.text);
    // No code was issued, so nothing can be redeemed.
    authenticate(&a, &identifier, "any-code")
        .await
        .assert_problem(499, "SECURITY", "no SAML response reached the agent");
    let audit = a.get("/sso/audit?pageSize=50", Some(&admin)).await.text;
    assert!(
        audit.contains("status Responder, sub-status AuthnFailed, message \\\"Account locked\\\""),
        "{audit}"
    );
}

#[tokio::test]
async fn comment_injected_name_id_never_becomes_the_shorter_user() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    add_user(&a.data_dir, "acme", "admin@corp.test", true, false);
    let (identifier, request_id, relay) = start(&a, "alice@corp.test").await;
    let mut s = ResponseSpec::valid(
        &request_id,
        &acs(&a),
        SP,
        ISSUER,
        "admin@corp.test.evil.test",
        now(),
    );
    s.name_id_xml = "admin@corp.test.evil.test".into();
    let xml = s.build(&idp).unwrap().replace(
        "admin@corp.test.evil.test",
        "admin@corp.test<!---->.evil.test",
    );
    let r = post_acs(&a, &encode(&xml), Some(&relay)).await;
    if r.status == 303 {
        let (code, _) = redirect_code(&r);
        let jwt = authenticate(&a, &identifier, &code).await;
        assert_ne!(jwt.status, 200, "signed in as {}", jwt.text);
        jwt.assert_problem(401, "AUTH", "admin@corp.test.evil.test");
    }
}

#[tokio::test]
async fn oversized_acs_bodies_are_refused() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = agent_with_saml(&idp).await;
    let (_, _, relay) = start(&a, "alice@corp.test").await;
    let huge = "A".repeat(2 * 1024 * 1024);
    let r = post_acs(&a, &huge, Some(&relay)).await;
    refused_page(&r, "limit");
}

#[tokio::test]
async fn replay_is_refused_even_after_a_restart() {
    let idp = TestIdp::new().unwrap();
    let (mut a, _) = agent_with_saml(&idp).await;
    let (_, request_id, relay) = start(&a, "alice@corp.test").await;
    let mut spec = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now());
    redirect_code(&post_acs(&a, &encode(&spec.build(&idp).unwrap()), Some(&relay)).await);
    a.restart().await;
    // Make the transaction answerable again, as if restored from a backup: only the replay
    // cache, persisted in SQLite, now stands between the same assertion and a second code.
    let conn = rusqlite::Connection::open(a.data_dir.join("agent.db")).unwrap();
    conn.execute(
        "UPDATE login_transactions SET code_hash = NULL, code_expires_at = NULL, result_enc = NULL",
        [],
    )
    .unwrap();
    let cached: i64 = conn
        .query_row("SELECT COUNT(*) FROM saml_replay_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cached, 1);
    drop(conn);
    // The restarted agent listens on a new port, so its ACS URL changed: re-sign the same
    // assertion (same ID) for it.
    spec.destination = acs(&a);
    refused_page(
        &post_acs(&a, &encode(&spec.build(&idp).unwrap()), Some(&relay)).await,
        "replay refused",
    );
}

#[tokio::test]
async fn metadata_and_test_connection() {
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let m = a.get("/sso/saml/metadata?account=acme", None).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.headers["content-type"], "application/samlmetadata+xml");
    assert!(
        m.text.contains(&format!("entityID=\"{SP}\"")) && m.text.contains(&acs(&a)),
        "{}",
        m.text
    );
    a.get("/sso/saml/metadata?account=nope", None)
        .await
        .assert_problem(499, "NOT_FOUND", "no SAML configuration");
    a.get("/sso/saml/metadata", None)
        .await
        .assert_problem(499, "DEFAULT", "account is required");
    let t = test_saml_connection(&a, &admin).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let checks: Value = t.json();
    let cert = checks["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == "Certificate")
        .unwrap()
        .clone();
    assert_eq!(cert["Ok"], true);
    assert!(
        cert["Detail"].as_str().unwrap().contains("days left"),
        "{cert}"
    );
}

// ---------------------------------------------------------------------------------------
// Against the real IdP: SimpleSAMLphp from Debian's packages.

pub(crate) struct SimpleSaml {
    child: Child,
    pub(crate) sso_url: String,
    pub(crate) entity_id: String,
    pub(crate) cert: String,
    _dir: tempfile::TempDir,
}

impl SimpleSaml {
    /// The IdP's work dir (its config, keys and `idp-overrides.json`).
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
    /// Its metadata URL.
    pub(crate) fn metadata_url(&self) -> String {
        self.entity_id.clone()
    }
}

impl Drop for SimpleSaml {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_simplesaml(acs_url: &str) -> SimpleSaml {
    start_simplesaml_with(acs_url, tempfile::tempdir().unwrap(), &[])
}

/// SimpleSAMLphp with more `start.sh` options, its work dir `dir`.
pub(crate) fn start_simplesaml_with(
    acs_url: &str,
    dir: tempfile::TempDir,
    extra: &[&str],
) -> SimpleSaml {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idp/saml/start.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .args([
            "--workdir",
            dir.path().to_str().unwrap(),
            "--port",
            "0",
            "--sp-entity-id",
            SP,
            "--acs-url",
            acs_url,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start SimpleSAMLphp (scripts/setup-debian.sh --test installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("listening on "),
        "SimpleSAMLphp did not start: {line:?}"
    );
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("idp.json")).unwrap())
            .unwrap();
    SimpleSaml {
        child,
        sso_url: info["sso_url"].as_str().unwrap().to_string(),
        entity_id: info["entity_id"].as_str().unwrap().to_string(),
        cert: std::fs::read_to_string(dir.path().join("idp.crt")).unwrap(),
        _dir: dir,
    }
}

/// The `sso_url` of alice: (Identifier, the IdP URL).
pub(crate) async fn alice_sso_url(a: &Agent) -> (String, String) {
    let r = a
        .post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": "alice@corp.test", "CallbackUrl": CALLBACK}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j: Value = r.json();
    (
        j["Identifier"].as_str().unwrap().to_string(),
        j["Url"].as_str().unwrap().to_string(),
    )
}

/// `setup_saml` with only the SP entity and `idp`'s metadata URL (the rest from the metadata).
pub(crate) async fn setup_from_metadata(
    a: &Agent,
    admin: &str,
    idp: &SimpleSaml,
) -> crate::common::Answer {
    a.post_json(
        "/sso/setup_saml",
        Some(admin),
        &json!({"SPEntityId": SP, "IdPMetadataURL": idp.metadata_url(), "Active": true}),
    )
    .await
}

/// `POST /sso/test_connection?provider=saml` as `admin`.
pub(crate) async fn test_saml_connection(a: &Agent, admin: &str) -> crate::common::Answer {
    a.send(
        a.http
            .post(a.url("/sso/test_connection?provider=saml"))
            .query(&[("token", admin)]),
    )
    .await
}

/// Through SimpleSAMLphp's pages as alice, from the AuthnRequest URL `url`: the
/// `SAMLResponse` and `RelayState` its page would post to `acs`, or the page it showed
/// instead (an error).
pub(crate) async fn idp_login(url: &str, acs: &str) -> Result<(String, String), String> {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    idp_login_with(&browser, url, acs).await
}

/// [`idp_login`] in `browser`, which keeps the IdP's session cookies (single logout needs
/// them).
pub(crate) async fn idp_login_with(
    browser: &reqwest::Client,
    url: &str,
    acs: &str,
) -> Result<(String, String), String> {
    // The IdP redirects to its login form (reqwest follows redirects within the IdP).
    let login = browser.get(url).send().await.unwrap();
    let login_url = login.url().clone();
    let page = login.text().await.unwrap();
    let Some(auth_state) = input(&page, "AuthState") else {
        return Err(page);
    };
    let posted = browser
        .post(login_url)
        .form(&[
            ("username", "alice@corp.test"),
            ("password", "alice-pw"),
            ("AuthState", auth_state.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The auto-submitting form that a browser would post to the ACS.
    assert_eq!(form_action(&posted).as_deref(), Some(acs), "{posted}");
    Ok((
        input(&posted, "SAMLResponse").unwrap(),
        input(&posted, "RelayState").unwrap(),
    ))
}

/// The value of the form input `name` in `html`.
pub(crate) fn input(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..at + html[at..].find('>')?];
    let v = tag.split("value=\"").nth(1)?.split('"').next()?;
    Some(html_escape::decode_html_entities(v).into_owned())
}

fn form_action(html: &str) -> Option<String> {
    let v = html.split("action=\"").nth(1)?.split('"').next()?;
    Some(html_escape::decode_html_entities(v).into_owned())
}

/// An agent whose account has the real SimpleSAMLphp IdP active; its admin's token and the IdP.
async fn agent_with_simplesaml() -> (Agent, String, SimpleSaml) {
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let idp = start_simplesaml(&acs(&a));
    let r = a
        .post_json(
            "/sso/setup_saml",
            Some(&admin),
            &json!({"Certificate": idp.cert, "SPEntityId": SP, "IdPSSOURL": idp.sso_url, "IdPEntityId": idp.entity_id, "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (a, admin, idp)
}

/// Alice signs in through SimpleSAMLphp: her session JWT, and the SAMLResponse and RelayState
/// the IdP's page posted.
async fn alice_signs_in_at_simplesaml(a: &Agent) -> (String, String, String) {
    let (identifier, url) = alice_sso_url(a).await;
    let (saml_response, relay) = idp_login(&url, &acs(a))
        .await
        .unwrap_or_else(|page| panic!("no login at the IdP: {page}"));
    let (code, _) = redirect_code(&post_acs(a, &saml_response, Some(&relay)).await);
    let jwt = authenticate(a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let token = jwt.json().as_str().unwrap().to_string();
    (token, saml_response, relay)
}

#[tokio::test]
async fn signs_in_through_a_real_simplesamlphp_idp() {
    let (a, _admin, _idp) = agent_with_simplesaml().await;
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    let (token, saml_response, relay) = alice_signs_in_at_simplesaml(&a).await;
    let me = a.get("/sso/whoami", Some(&token)).await.json();
    assert_eq!(me["Username"], "alice@corp.test");
    // Its `groups` attribute (one of the default names) became memberships.
    assert_eq!(me["Groups"], json!(["admins", "engineering"]));
    // The same SAMLResponse posted again is refused.
    refused_page(
        &post_acs(&a, &saml_response, Some(&relay)).await,
        "already answered",
    );
}

/// SimpleSAMLphp set to sign with RSA-SHA1 (`signature.algorithm`), as Entra ID and ADFS still
/// allow: refused, the page naming the algorithm and what to set at the IdP; back on SHA-256 the
/// same IdP signs in.
#[tokio::test]
async fn a_real_idp_signing_with_sha1_is_told_to_use_sha256() {
    let (a, _admin, idp) = agent_with_simplesaml().await;
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    let overrides = idp.dir().join("idp-overrides.json");
    std::fs::write(
        &overrides,
        json!({"signature.algorithm": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}).to_string(),
    )
    .unwrap();
    let (_, url) = alice_sso_url(&a).await;
    let (response, relay) = idp_login(&url, &acs(&a)).await.unwrap();
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&response)
            .unwrap(),
    )
    .unwrap();
    assert!(xml.contains("xmldsig#rsa-sha1"), "{xml}");
    refused_page(
        &post_acs(&a, &response, Some(&relay)).await,
        "xmldsig#rsa-sha1, which the agent refuses",
    );
    std::fs::remove_file(&overrides).unwrap();
    alice_signs_in_at_simplesaml(&a).await;
}

/// The SAML shape of who may get in: SimpleSAMLphp asserts alice, whom the agent does not know;
/// AutoProvision for her domain creates her, and her `groups` attribute value `admins`, listed in
/// AdminGroups, makes her an admin.
#[tokio::test]
async fn a_real_simplesamlphp_user_is_auto_provisioned_and_made_admin_by_her_groups() {
    let (a, admin, _idp) = agent_with_simplesaml().await;
    let r = a
        .put_json(
            "/sso/signin_settings",
            Some(&admin),
            &json!({"AutoProvision": true, "AutoProvisionDomains": ["corp.test"],
                    "AdminGroups": ["Admins"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (token, _, _) = alice_signs_in_at_simplesaml(&a).await;
    let me = a.get("/sso/whoami", Some(&token)).await.json();
    assert_eq!(
        (me["Username"].as_str(), me["Role"].as_str()),
        (Some("alice@corp.test"), Some("admin"))
    );
    let r = a.get("/sso/signin_settings", Some(&token)).await;
    assert_eq!(r.status, 200, "alice is an admin: {}", r.text);
    let audit = a.get("/sso/audit", Some(&admin)).await.json();
    let actions: Vec<&str> = audit["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["Action"].as_str())
        .collect();
    assert!(
        actions.contains(&"user.autoprovision") && actions.contains(&"user.role"),
        "{actions:?}"
    );
}

/// Signs alice in with a crafted response carrying `attributes`; returns the session JWT.
async fn sign_in_with_attributes(
    a: &Agent,
    idp: &TestIdp,
    attributes: Vec<(String, Vec<String>)>,
) -> String {
    let (identifier, request_id, relay) = start(a, "alice@corp.test").await;
    let mut spec = ResponseSpec::valid(&request_id, &acs(a), SP, ISSUER, "alice@corp.test", now());
    spec.attributes = attributes;
    let xml = spec.build(idp).unwrap();
    let (code, _) = redirect_code(&post_acs(a, &encode(&xml), Some(&relay)).await);
    let jwt = authenticate(a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    jwt.json().as_str().unwrap().to_string()
}

fn attr(name: &str, values: &[&str]) -> (String, Vec<String>) {
    (
        name.to_string(),
        values.iter().map(|v| v.to_string()).collect(),
    )
}

#[tokio::test]
async fn group_attribute_is_configurable_and_memberships_follow_each_sign_in() {
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let groups = |jwt: String| {
        let a = &a;
        async move { a.get("/sso/whoami", Some(&jwt)).await.json()["Groups"].clone() }
    };
    // Default names: the Microsoft groups claim URI is one of them.
    let ms = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
    let jwt = sign_in_with_attributes(&a, &idp, vec![attr(ms, &["0b1c-finance"])]).await;
    assert_eq!(groups(jwt).await, json!(["0b1c-finance"]));
    // The admin names the attribute their IdP uses; others are then ignored.
    let cfg = a.get("/sso/get_saml", Some(&admin)).await.json();
    let mut update = cfg.clone();
    update["GroupsAttribute"] = json!("Department Groups");
    let r = a.put_json("/sso/update_saml", Some(&admin), &update).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        a.get("/sso/get_saml", Some(&admin)).await.json()["GroupsAttribute"],
        "Department Groups"
    );
    let jwt = sign_in_with_attributes(
        &a,
        &idp,
        vec![
            attr("department groups", &["eng", "ops"]),
            attr("groups", &["ignored"]),
        ],
    )
    .await;
    assert_eq!(groups(jwt).await, json!(["eng", "ops"]));
    // Removed from ops at the IdP.
    let jwt = sign_in_with_attributes(&a, &idp, vec![attr("Department Groups", &["eng"])]).await;
    assert_eq!(groups(jwt).await, json!(["eng"]));
    // No such attribute in the assertion: memberships stay as they are.
    let jwt = sign_in_with_attributes(&a, &idp, vec![attr("groups", &["other"])]).await;
    assert_eq!(groups(jwt).await, json!(["eng"]));
    // An oversized name is refused; a blank one goes back to the defaults.
    update["GroupsAttribute"] = json!("x".repeat(300));
    a.put_json("/sso/update_saml", Some(&admin), &update)
        .await
        .assert_problem(
            499,
            "DEFAULT",
            "GroupsAttribute must be at most 256 characters",
        );
    update["GroupsAttribute"] = json!("  ");
    let r = a.put_json("/sso/update_saml", Some(&admin), &update).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(a.get("/sso/get_saml", Some(&admin)).await.json()["GroupsAttribute"].is_null());
    let jwt = sign_in_with_attributes(&a, &idp, vec![attr("memberOf", &["ops"])]).await;
    assert_eq!(groups(jwt).await, json!(["ops"]));
}

/// The ACS reads the account's configuration through the sign-in cache (as `sso_url` does):
/// a configuration changed or switched off after the sign-in started still refuses the
/// answer, even right after a sign-in filled the cache.
#[tokio::test]
async fn an_answer_for_a_configuration_changed_since_the_sign_in_started_is_refused() {
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    sign_in_with_attributes(&a, &idp, vec![]).await;
    let answer = |request_id: &str| {
        ResponseSpec::valid(request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now())
            .build(&idp)
            .unwrap()
    };
    let mut update = a.get("/sso/get_saml", Some(&admin)).await.json();
    let (_, request_id, relay) = start(&a, "alice@corp.test").await;
    update["GroupsAttribute"] = json!("department");
    let r = a.put_json("/sso/update_saml", Some(&admin), &update).await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused_page(
        &post_acs(&a, &encode(&answer(&request_id)), Some(&relay)).await,
        "changed since this sign-in started",
    );
    sign_in_with_attributes(&a, &idp, vec![]).await;
    let (_, request_id, relay) = start(&a, "alice@corp.test").await;
    update["Active"] = json!(false);
    let r = a.put_json("/sso/update_saml", Some(&admin), &update).await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused_page(
        &post_acs(&a, &encode(&answer(&request_id)), Some(&relay)).await,
        "changed since this sign-in started",
    );
}

#[tokio::test]
async fn a_flood_of_garbage_acs_posts_adds_a_handful_of_audit_rows() {
    // The ACS is exempt from the Origin check (the IdP's page posts to it), so any web page
    // can make the agent refuse; each refusal must not cost a row.
    let a = Agent::with_account().await;
    let bodies = [
        "SAMLResponse=%%%",
        "SAMLResponse=PGZvbz4=&RelayState=x",
        "RelayState=y",
    ];
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, url) = (a.http.clone(), a.url("/sso/saml/acs"));
        set.spawn(async move {
            for i in 0..1_250 {
                let body = format!("{}&n={worker}-{i}", bodies[i % bodies.len()]);
                let r = http
                    .post(&url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header("Origin", "https://evil.example")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert_ne!(r.status(), 303);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("worker");
    }
    let db = rusqlite::Connection::open(a.data_dir.join("agent.db")).unwrap();
    let (rows, total): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM audit_events WHERE outcome = 'refused'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(rows <= 5, "{rows} rows for 10,000 refusals");
    assert_eq!(total, 10_000);
}

#[tokio::test]
async fn weak_certificates_are_refused_and_expired_ones_stop_verifying() {
    let a = crate::fake_oidc::TestAgent::start(|_| {}).await;
    let admin = a.admin_token();
    let weak = include_str!("../fixtures/rsa1024-idp-cert.pem");
    let body = |cert: &str, allow_expired: bool| {
        json!({"Certificate": cert, "SPEntityId": SP, "IdPSSOURL": "https://idp.corp.test/sso",
               "IdPEntityId": ISSUER, "Active": true, "AllowExpiredCertificate": allow_expired})
    };
    a.post_json("/sso/setup_saml", Some(&admin), &body(weak, false))
        .await
        .assert_problem(499, "DEFAULT", "Certificate has an RSA key of 1024 bits");
    // A good certificate (valid for a year) is saved; then the year passes.
    let idp = TestIdp::new().unwrap();
    let saved = a
        .post_json(
            "/sso/setup_saml",
            Some(&admin),
            &body(&idp.cert_pem(), false),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(a.sso_url("admin@acme.test", CALLBACK).await.status, 200);
    a.clock.advance(400 * 86_400);
    let admin = a.admin_token();
    a.sso_url("admin@acme.test", CALLBACK).await.assert_problem(
        499,
        "SECURITY",
        "Certificate expired on",
    );
    // An admin may allow it explicitly, for an IdP that never rotates.
    let mut allow = saved.json();
    allow["AllowExpiredCertificate"] = json!(true);
    let r = a.put_json("/sso/update_saml", Some(&admin), &allow).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["AllowExpiredCertificate"], true);
    assert_eq!(a.sso_url("admin@acme.test", CALLBACK).await.status, 200);
}
