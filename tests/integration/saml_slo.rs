//! SAML single logout (issue 18 item 3): the agent's LogoutRequest at sign-out and its SLO
//! endpoint, against the real SimpleSAMLphp (SP-initiated round trip, IdP-initiated logout) and
//! with messages the test signs itself (each check of the endpoint refusing what it must).

use amove_agent::sso::saml::logout::{self, LogoutSubject};
use amove_agent::sso::saml::testing::{ResponseSpec, TestIdp, encode, strip_xml_decl};
use openssl::pkey::PKey;
use serde_json::{Value, json};

use crate::common::{Agent, add_user};
use crate::fake_oidc::param;
use crate::saml::{
    CALLBACK, ISSUER, SP, acs, alice_sso_url, authenticate, idp_login_with, now, post_acs,
    redirect_code, start, start_simplesaml_with,
};

const IDP_SLO: &str = "https://idp.corp.test/slo";

fn slo(a: &Agent) -> String {
    format!("http://localhost:{}/sso/saml/slo", a.port)
}

async fn logout(a: &Agent, jwt: &str) -> Value {
    let r = a
        .send(a.http.post(a.url("/sso/logout")).bearer_auth(jwt))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// An agent trusting `idp` (with an SLO URL), and alice signed in through it: (agent, JWT).
async fn signed_in_with(idp: &TestIdp) -> (Agent, String) {
    signed_in_with_index(idp, None).await
}

/// Alice signed in again at `a` through `idp`, her AuthnStatement naming `session_index`.
async fn sign_in_again(a: &Agent, idp: &TestIdp, session_index: Option<&str>) -> String {
    let (identifier, request_id, relay) = start(a, "alice@corp.test").await;
    let spec = ResponseSpec::valid(&request_id, &acs(a), SP, ISSUER, "alice@corp.test", now());
    let mut assertion = spec.assertion_xml();
    if let Some(index) = session_index {
        assertion = assertion.replace(
            "<saml:AuthnStatement ",
            &format!(r#"<saml:AuthnStatement SessionIndex="{index}" "#),
        );
    }
    let signed = strip_xml_decl(&idp.sign(&assertion).unwrap());
    let xml = spec.build_with(idp, None, &[signed]).unwrap();
    let (code, _) = redirect_code(&post_acs(a, &encode(&xml), Some(&relay)).await);
    let jwt = authenticate(a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    jwt.json().as_str().unwrap().to_string()
}

async fn signed_in_with_index(idp: &TestIdp, session_index: Option<&str>) -> (Agent, String) {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let r = a
        .post_json(
            "/sso/setup_saml",
            Some(&t),
            &json!({"Certificate": idp.cert_pem(), "SPEntityId": SP,
                    "IdPSSOURL": "https://idp.corp.test/sso", "IdPSLOURL": IDP_SLO,
                    "IdPEntityId": ISSUER, "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["IdPSLOURL"], IDP_SLO);
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    let jwt = sign_in_again(&a, idp, session_index).await;
    (a, jwt)
}

async fn get_slo(a: &Agent, url: &str) -> crate::common::Answer {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    a.send(a.http.get(format!("{}?{query}", a.url("/sso/saml/slo"))))
        .await
}

fn key(idp: &TestIdp) -> PKey<openssl::pkey::Private> {
    PKey::private_key_from_der(idp.key_der()).unwrap()
}

fn refused(r: &crate::common::Answer, needle: &str) {
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains(needle), "no {needle:?} in {}", r.text);
}

/// The decoded XML of a redirect URL's SAMLRequest or SAMLResponse.
fn inflated(url: &str, param_name: &str) -> String {
    use base64::Engine;
    use std::io::Read;
    let b64 = param(url, param_name).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

fn attr(xml: &str, name: &str) -> String {
    xml.split(&format!(" {name}=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_slo_endpoint_accepts_only_the_signed_answer_to_its_own_logout_request() {
    let idp = TestIdp::new().unwrap();
    let (a, jwt) = signed_in_with(&idp).await;
    // A SAML session cannot be renewed (SAML has no refresh token), and is not ended by trying.
    a.send(a.http.post(a.url("/sso/refresh")).bearer_auth(&jwt))
        .await
        .assert_problem(401, "TOKEN", "SAML session cannot be renewed");
    assert_eq!(a.get("/sso/whoami", Some(&jwt)).await.status, 200);
    let answer = logout(&a, &jwt).await;
    let url = answer["LogoutUrl"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{IDP_SLO}?SAMLRequest=")), "{url}");
    let xml = inflated(&url, "SAMLRequest");
    assert!(xml.contains("alice@corp.test</saml:NameID>"), "{xml}");
    assert!(
        xml.contains(&format!("<saml:Issuer>{SP}</saml:Issuer>")),
        "{xml}"
    );
    let request_id = attr(&xml, "ID");
    let relay = param(&url, "RelayState").unwrap();
    a.get("/sso/whoami", Some(&jwt))
        .await
        .assert_problem(401, "TOKEN", "revoked");

    let k = key(&idp);
    let answer = |issuer: &str, irt: &str, relay: &str, key: Option<&PKey<_>>| {
        logout::logout_response(issuer, &slo(&a), irt, relay, now(), key)
            .unwrap()
            .url
    };
    // Each check: another request's ID, another signer, no signature, a foreign Issuer, another
    // RelayState, another Destination.
    refused(
        &get_slo(&a, &answer(ISSUER, "_other", &relay, Some(&k))).await,
        "answers no sign-out",
    );
    let attacker = TestIdp::new().unwrap();
    refused(
        &get_slo(
            &a,
            &answer(ISSUER, &request_id, &relay, Some(&key(&attacker))),
        )
        .await,
        "does not verify",
    );
    refused(
        &get_slo(&a, &answer(ISSUER, &request_id, &relay, None)).await,
        "not signed",
    );
    refused(
        &get_slo(
            &a,
            &answer("https://evil.test/idp", &request_id, &relay, Some(&k)),
        )
        .await,
        "Issuer",
    );
    refused(
        &get_slo(&a, &answer(ISSUER, &request_id, "other", Some(&k))).await,
        "RelayState",
    );
    let elsewhere = logout::logout_response(
        ISSUER,
        "https://evil.test/slo",
        &request_id,
        &relay,
        now(),
        Some(&k),
    )
    .unwrap()
    .url;
    refused(&get_slo(&a, &elsewhere).await, "Destination");
    // The real answer: the signed-out page, once.
    let good = answer(ISSUER, &request_id, &relay, Some(&k));
    let r = get_slo(&a, &good).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("You are signed out"));
    refused(&get_slo(&a, &good).await, "answers no sign-out");
    // Garbage never panics: each is a page saying why.
    for q in [
        "",
        "SAMLResponse=%%%",
        "SAMLRequest=AAAA",
        "SAMLResponse=x&SAMLResponse=y",
    ] {
        let r = a
            .send(a.http.get(format!("{}?{q}", a.url("/sso/saml/slo"))))
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
}

#[tokio::test]
async fn a_signed_idp_logout_request_ends_the_session_and_is_answered() {
    let idp = TestIdp::new().unwrap();
    let (a, jwt) = signed_in_with(&idp).await;
    let who = LogoutSubject {
        name_id: "alice@corp.test".into(),
        format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into()),
        name_qualifier: None,
        sp_name_qualifier: None,
        session_index: None,
    };
    let request = |key: Option<&PKey<_>>, issued: i64| {
        logout::logout_request(ISSUER, &slo(&a), &who, "idp-relay", issued, key).unwrap()
    };
    // Unsigned, signed by another key, or stale: refused, and the session lives on.
    refused(&get_slo(&a, &request(None, now()).url).await, "not signed");
    let attacker = TestIdp::new().unwrap();
    refused(
        &get_slo(&a, &request(Some(&key(&attacker)), now()).url).await,
        "does not verify",
    );
    refused(
        &get_slo(&a, &request(Some(&key(&idp)), now() - 3600).url).await,
        "too long ago",
    );
    assert_eq!(a.get("/sso/whoami", Some(&jwt)).await.status, 200);

    let m = request(Some(&key(&idp)), now());
    let r = get_slo(&a, &m.url).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let back = r.headers["location"].to_str().unwrap().to_string();
    assert!(
        back.starts_with(&format!("{IDP_SLO}?SAMLResponse=")),
        "{back}"
    );
    assert_eq!(param(&back, "RelayState").as_deref(), Some("idp-relay"));
    let xml = inflated(&back, "SAMLResponse");
    assert_eq!(attr(&xml, "InResponseTo"), m.id);
    assert!(xml.contains("status:Success"), "{xml}");
    a.get("/sso/whoami", Some(&jwt))
        .await
        .assert_problem(401, "TOKEN", "revoked");
    // The same request again ends nothing twice.
    refused(&get_slo(&a, &m.url).await, "replay");
    let admin = a.admin_token().await;
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("the IdP ended 1 session(s) of alice@corp.test"),
        "{audit}"
    );
}

async fn simplesaml_sign_in(a: &Agent, browser: &reqwest::Client) -> String {
    let (identifier, url) = alice_sso_url(a).await;
    let (response, relay) = idp_login_with(browser, &url, &acs(a))
        .await
        .unwrap_or_else(|page| panic!("the IdP refused the request: {page}"));
    let (code, _) = redirect_code(&post_acs(a, &response, Some(&relay)).await);
    let jwt = authenticate(a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    jwt.json().as_str().unwrap().to_string()
}

/// SimpleSAMLphp's IdP-initiated logout (`initSLO.php`) followed to its end, and where it
/// should end: SimpleSAMLphp redirects only to its trusted URLs, its own metadata here.
async fn init_slo(browser: &reqwest::Client, base: &str) -> (reqwest::Response, String) {
    let done = format!("{base}/saml2/idp/metadata.php");
    let end = browser
        .get(format!("{base}/saml2/idp/initSLO.php"))
        .query(&[("RelayState", done.as_str())])
        .send()
        .await
        .unwrap();
    (end, done)
}

#[tokio::test]
async fn single_logout_with_simplesamlphp_both_ways() {
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let idp = start_simplesaml_with(&acs(&a), dir, &["--slo-url", &slo(&a)]);
    // The IdP's SingleLogoutService comes from its metadata; the agent's is in the SP metadata.
    let r = crate::saml::setup_from_metadata(&a, &admin, &idp).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let idp_slo = r.json()["IdPSLOURL"].as_str().unwrap().to_string();
    assert!(
        idp_slo.ends_with("/saml2/idp/SingleLogoutService.php"),
        "{idp_slo}"
    );
    assert_eq!(r.json()["SLOURL"], slo(&a));
    let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
    assert!(m.contains(&format!("Location=\"{}\"", slo(&a))), "{m}");
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();

    // SP-initiated: the LogoutRequest goes to the IdP, which ends its session and comes back
    // with a signed LogoutResponse to the signed-out page.
    let jwt = simplesaml_sign_in(&a, &browser).await;
    let url = logout(&a, &jwt).await["LogoutUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with(&format!("{idp_slo}?SAMLRequest=")), "{url}");
    // SimpleSAMLphp qualifies its NameIDs with the SP's entity id: repeated as it gave it.
    let xml = inflated(&url, "SAMLRequest");
    assert!(xml.contains(&format!(r#"SPNameQualifier="{SP}""#)), "{xml}");
    let page = browser.get(&url).send().await.unwrap();
    assert_eq!(page.url().path(), "/sso/saml/slo");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("You are signed out"));
    a.get("/sso/whoami", Some(&jwt))
        .await
        .assert_problem(401, "TOKEN", "revoked");

    // IdP-initiated: the IdP's LogoutRequest ends the agent's session, the agent answers, and
    // the IdP finishes at its RelayState.
    let jwt = simplesaml_sign_in(&a, &browser).await;
    assert_eq!(a.get("/sso/whoami", Some(&jwt)).await.status, 200);
    let base = idp_slo.split("/saml2/").next().unwrap();
    let (end, done) = init_slo(&browser, base).await;
    let ended_at = end.url().to_string();
    let text = end.text().await.unwrap_or_default();
    assert_eq!(ended_at, done, "{text}");
    a.get("/sso/whoami", Some(&jwt))
        .await
        .assert_problem(401, "TOKEN", "revoked");
}

#[tokio::test]
async fn force_authn_is_in_the_authn_request() {
    let idp = TestIdp::new().unwrap();
    let (a, _) = signed_in_with(&idp).await;
    let r = a
        .post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": "alice@corp.test", "CallbackUrl": CALLBACK, "ForceAuthn": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let xml = inflated(r.json()["Url"].as_str().unwrap(), "SAMLRequest");
    assert!(xml.contains(r#"ForceAuthn="true""#), "{xml}");
    let r = a
        .post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": "alice@corp.test", "CallbackUrl": CALLBACK}),
        )
        .await;
    let xml = inflated(r.json()["Url"].as_str().unwrap(), "SAMLRequest");
    assert!(!xml.contains("ForceAuthn"), "{xml}");
}

/// Shibboleth encrypts the NameIDs of its logout requests by default; SimpleSAMLphp does with
/// `nameid.encryption`, in the assertion and in its LogoutRequest: both decrypted with the
/// agent's SP encryption key, the session ended. Encrypted to a stale key: refused with the
/// reason, and the session lives on.
#[tokio::test]
async fn an_idp_logout_request_with_an_encrypted_name_id_ends_the_session() {
    use std::sync::{Arc, Mutex};
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("sp-encryption.crt");
    let args = [
        "--slo-url",
        &slo(&a),
        "--sp-encryption-cert-file",
        cert_file.to_str().unwrap(),
        "--encrypt-nameid",
    ];
    let idp = start_simplesaml_with(&acs(&a), dir, &args);
    let r = crate::saml::setup_from_metadata(&a, &admin, &idp).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let idp_slo = r.json()["IdPSLOURL"].as_str().unwrap().to_string();
    let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
    let ours = crate::saml_enterprise::published(&m, "encryption").remove(0);
    std::fs::write(&cert_file, &ours).unwrap();
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    // A browser that keeps the URLs it was redirected to.
    let visited = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = visited.clone();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(move |at| {
            seen.lock().unwrap().push(at.url().to_string());
            if at.previous().len() > 10 {
                at.error("too many redirects")
            } else {
                at.follow()
            }
        }))
        .build()
        .unwrap();
    let base = idp_slo.split("/saml2/").next().unwrap().to_string();
    // The IdP-initiated logout; returns where it ended and the LogoutRequest the agent got.
    let idp_logout = || async {
        visited.lock().unwrap().clear();
        let (end, _) = init_slo(&browser, &base).await;
        let request = visited
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.starts_with(&slo(&a)))
            .map(|u| inflated(u, "SAMLRequest"))
            .expect("the IdP sent the agent a LogoutRequest");
        (
            end.url().to_string(),
            end.text().await.unwrap_or_default(),
            request,
        )
    };
    let done = format!("{base}/saml2/idp/metadata.php");

    // The IdP holds a stale certificate at logout: it encrypts to a key the agent lacks.
    let first = simplesaml_sign_in(&a, &browser).await;
    let stale = amove_agent::sso::saml::sp_keys::generate("stale", 1_800_000_000).unwrap();
    std::fs::write(&cert_file, &stale.certificate_pem).unwrap();
    let (_, page, request) = idp_logout().await;
    assert!(
        request.contains("EncryptedID") && !request.contains("<saml:NameID"),
        "{request}"
    );
    assert!(page.contains("cannot be decrypted"), "{page}");
    assert_eq!(a.get("/sso/whoami", Some(&first)).await.status, 200);

    // With the agent's certificate: decrypted, that session (its SessionIndex) ended, the
    // IdP answered and done.
    std::fs::write(&cert_file, &ours).unwrap();
    let second = simplesaml_sign_in(&a, &browser).await;
    let (ended_at, page, request) = idp_logout().await;
    assert!(
        request.contains("EncryptedID") && !request.contains("<saml:NameID"),
        "{request}"
    );
    assert_eq!(ended_at, done, "{page}");
    a.get("/sso/whoami", Some(&second))
        .await
        .assert_problem(401, "TOKEN", "revoked");
    assert_eq!(a.get("/sso/whoami", Some(&first)).await.status, 200);
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(audit.contains("cannot be decrypted"), "{audit}");
    assert!(
        audit.contains("the IdP ended 1 session(s) of alice@corp.test"),
        "{audit}"
    );
}

/// A LogoutRequest may name several SessionIndexes (SAML core §3.7.1): the sessions of each end,
/// the principal's others go on.
#[tokio::test]
async fn an_idp_logout_request_ends_the_sessions_of_each_session_index_it_names() {
    use base64::Engine;
    use std::io::Write;
    let idp = TestIdp::new().unwrap();
    let (a, one) = signed_in_with_index(&idp, Some("_s1")).await;
    let two = sign_in_again(&a, &idp, Some("_s2")).await;
    let three = sign_in_again(&a, &idp, Some("_s3")).await;
    let request = |indexes: &[&str]| {
        let sessions: String = indexes
            .iter()
            .map(|i| format!("<samlp:SessionIndex>{i}</samlp:SessionIndex>"))
            .collect();
        let issued = chrono::DateTime::from_timestamp(now(), 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let xml = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_lr{}\" Version=\"2.0\" \
             IssueInstant=\"{issued}\" Destination=\"{}\"><saml:Issuer>{ISSUER}</saml:Issuer>\
             <saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">\
             alice@corp.test</saml:NameID>{sessions}</samlp:LogoutRequest>",
            indexes.len(),
            slo(&a)
        );
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflated.write_all(xml.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(deflated.finish().unwrap());
        let query = amove_agent::sso::saml::sp_keys::signed_query_named(
            "SAMLRequest",
            &b64,
            "",
            &key(&idp),
        )
        .unwrap();
        format!("{}?{query}", slo(&a))
    };
    // Over the cap: refused, nothing ends.
    let many: Vec<String> = (0..33).map(|i| format!("_x{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    refused(
        &get_slo(&a, &request(&many)).await,
        "more than 32 SessionIndex",
    );
    let r = get_slo(&a, &request(&["_s1", "_s3"])).await;
    assert_eq!(r.status, 303, "{}", r.text);
    for ended in [&one, &three] {
        a.get("/sso/whoami", Some(ended))
            .await
            .assert_problem(401, "TOKEN", "revoked");
    }
    assert_eq!(a.get("/sso/whoami", Some(&two)).await.status, 200);
    let admin = a.admin_token().await;
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("the IdP ended 2 session(s) of alice@corp.test"),
        "{audit}"
    );
}
