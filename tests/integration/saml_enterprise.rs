//! SAML as enterprise IdPs use it, against the real SimpleSAMLphp: AuthnRequests signed
//! with the agent's own key (HTTP-Redirect binding), the SP metadata that publishes it.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Agent, add_user};
use crate::fake_oidc::TestAgent;
use amove_agent::sso::saml::testing::{Encryption, ResponseSpec, TestIdp, encode, encrypt_element};

use crate::saml::{
    ISSUER, SP, SimpleSaml, acs, agent_with_saml, alice_sso_url as sso_url, authenticate,
    idp_login, now, post_acs, redirect_code, start, start_simplesaml_with,
};

/// Configures `idp` for account acme with `SignAuthnRequests = sign`.
async fn configure(a: &Agent, admin: &str, idp: &SimpleSaml, sign: bool, update: bool) {
    configure_with(a, admin, idp, json!({"SignAuthnRequests": sign}), update).await;
}

/// Configures `idp` for account acme, with the fields of `extra`.
async fn configure_with(a: &Agent, admin: &str, idp: &SimpleSaml, extra: Value, update: bool) {
    let mut body = json!({"Certificate": idp.cert, "SPEntityId": SP, "IdPSSOURL": idp.sso_url,
                      "IdPEntityId": idp.entity_id, "Active": true});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = if update {
        body["Id"] = a.get("/sso/get_saml", Some(admin)).await.json()["Id"].clone();
        a.send(
            a.http
                .put(a.url("/sso/update_saml"))
                .query(&[("token", admin)])
                .json(&body),
        )
        .await
    } else {
        a.post_json("/sso/setup_saml", Some(admin), &body).await
    };
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The certificates of the SP metadata's `KeyDescriptor`s of `key_use`, as PEM.
pub(crate) fn published(metadata: &str, key_use: &str) -> Vec<String> {
    metadata
        .split(&format!("<md:KeyDescriptor use=\"{key_use}\">"))
        .skip(1)
        .map(|d| {
            let b64 = d
                .split("<ds:X509Certificate>")
                .nth(1)
                .unwrap()
                .split("</ds:X509Certificate>")
                .next()
                .unwrap();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<_> = body
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect()
}

#[tokio::test]
async fn signed_authn_requests_sign_in_where_the_idp_requires_them_and_unsigned_ones_are_refused() {
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("sp-signing.crt");
    let idp = start_simplesaml_with(
        &acs(&a),
        dir,
        &["--sp-signing-cert-file", cert_file.to_str().unwrap()],
    );
    a.post_json(
        "/sso/setup_saml",
        Some(&admin),
        &json!({"Certificate": idp.cert, "SPEntityId": SP, "IdPSSOURL": idp.sso_url,
                "SignAuthnRequests": "yes"}),
    )
    .await
    .assert_problem(499, "DEFAULT", "SignAuthnRequests must be true or false");
    configure(&a, &admin, &idp, true, false).await;
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    let get = a.get("/sso/get_saml", Some(&admin)).await.json();
    assert_eq!(get["SignAuthnRequests"], true, "{get}");

    // The admin gives the IdP the agent's signing certificate from the SP metadata.
    let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
    assert!(m.contains(r#"AuthnRequestsSigned="true""#), "{m}");
    let certs = published(&m, "signing");
    assert_eq!(certs.len(), 1, "{m}");
    std::fs::write(&cert_file, &certs[0]).unwrap();
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("SP signing key generated (RSA 2048"),
        "{audit}"
    );
    // Nothing of the private key is shown anywhere.
    assert!(!audit.contains("PRIVATE") && !m.contains("PRIVATE"));

    let (identifier, url) = sso_url(&a).await;
    let q: std::collections::HashMap<_, _> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        q["SigAlg"],
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    let (response, relay) = idp_login(&url, &acs(&a))
        .await
        .unwrap_or_else(|page| panic!("the IdP refused the signed request: {page}"));
    let (code, _) = redirect_code(&post_acs(&a, &response, Some(&relay)).await);
    let jwt = authenticate(&a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    // The same key signs every request (it is kept, not made anew).
    let again = a.get("/sso/saml/metadata?account=acme", None).await.text;
    assert_eq!(published(&again, "signing"), certs);

    // The IdP checks the signature: one by another key is refused...
    let other = amove_agent::sso::saml::sp_keys::generate("other", 1_800_000_000).unwrap();
    std::fs::write(&cert_file, &other.certificate_pem).unwrap();
    let (_, url) = sso_url(&a).await;
    let page = idp_login(&url, &acs(&a))
        .await
        .expect_err("a request signed by another key");
    assert!(
        page.contains("Unable to validate signature on query string"),
        "{page}"
    );
    std::fs::write(&cert_file, &certs[0]).unwrap();

    // ...and so is an unsigned one, once the admin turns signing off.
    configure(&a, &admin, &idp, false, true).await;
    let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
    assert!(m.contains(r#"AuthnRequestsSigned="false""#), "{m}");
    let (_, url) = sso_url(&a).await;
    assert!(!url.contains("Signature="), "{url}");
    let page = idp_login(&url, &acs(&a))
        .await
        .expect_err("an unsigned request");
    assert!(page.contains("no signature found on message"), "{page}");
}

/// Signs alice in end to end through `idp`; returns the SAMLResponse the IdP posted.
async fn sign_in(a: &Agent) -> String {
    let (identifier, url) = sso_url(a).await;
    let (response, relay) = idp_login(&url, &acs(a))
        .await
        .unwrap_or_else(|page| panic!("the IdP refused the request: {page}"));
    let (code, _) = redirect_code(&post_acs(a, &response, Some(&relay)).await);
    let jwt = authenticate(a, &identifier, &code).await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let me = a
        .get("/sso/whoami", Some(jwt.json().as_str().unwrap()))
        .await
        .json();
    assert_eq!(me["Username"], "alice@corp.test");
    response
}

#[tokio::test]
async fn encrypted_assertions_from_simplesamlphp_sign_in_with_either_signature() {
    for unsigned_response in [false, true] {
        let a = Agent::with_account().await;
        let admin = a.admin_token().await;
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("sp-encryption.crt");
        let mut args = vec!["--sp-encryption-cert-file", cert_file.to_str().unwrap()];
        if unsigned_response {
            args.push("--unsigned-response");
        }
        let idp = start_simplesaml_with(&acs(&a), dir, &args);
        configure_with(
            &a,
            &admin,
            &idp,
            json!({"RequireEncryptedAssertions": true}),
            false,
        )
        .await;
        add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
        assert_eq!(
            a.get("/sso/get_saml", Some(&admin)).await.json()["RequireEncryptedAssertions"],
            true
        );
        // The admin gives the IdP the encryption certificate from the SP metadata.
        let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
        let certs = published(&m, "encryption");
        assert_eq!(certs.len(), 1, "{m}");
        assert!(
            m.contains("xmlenc11#aes256-gcm") && m.contains("xmlenc#rsa-oaep-mgf1p"),
            "{m}"
        );
        assert!(!m.contains("rsa-1_5"), "{m}");
        std::fs::write(&cert_file, &certs[0]).unwrap();

        let response = sign_in(&a).await;
        let xml = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&response)
                .unwrap(),
        )
        .unwrap();
        assert!(
            xml.contains("EncryptedAssertion") && !xml.contains("<saml:Assertion"),
            "{xml}"
        );
        assert_eq!(xml.contains("<ds:Signature"), !unsigned_response, "{xml}");

        // Encrypted to another key (the IdP holds a stale certificate): a clear error.
        let other = amove_agent::sso::saml::sp_keys::generate("other", 1_800_000_000).unwrap();
        std::fs::write(&cert_file, &other.certificate_pem).unwrap();
        let (_, url) = sso_url(&a).await;
        let (response, relay) = idp_login(&url, &acs(&a)).await.unwrap();
        crate::saml::refused_page(
            &post_acs(&a, &response, Some(&relay)).await,
            "cannot be decrypted with this agent",
        );
    }
}

/// The account's SP keys as the admin API lists them.
async fn sp_keys(a: &Agent, admin: &str) -> Vec<Value> {
    let r = a.get("/sso/saml/sp_keys", Some(admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["Keys"].as_array().unwrap().clone()
}

fn cert_of<'a>(keys: &'a [Value], key_use: &str, status: &str) -> &'a str {
    keys.iter()
        .find(|k| k["Use"] == key_use && k["Status"] == status)
        .unwrap_or_else(|| panic!("no {status} {key_use} key in {keys:?}"))["Certificate"]
        .as_str()
        .unwrap()
}

/// A crafted sign-in of alice whose signed assertion is encrypted to `cert`: the ACS answer.
async fn encrypted_sign_in(a: &Agent, idp: &TestIdp, cert: &str) -> crate::common::Answer {
    let (identifier, request_id, relay) = start(a, "alice@corp.test").await;
    let spec = ResponseSpec::valid(&request_id, &acs(a), SP, ISSUER, "alice@corp.test", now());
    let enc = encrypt_element(
        &spec.signed_assertion(idp).unwrap(),
        cert,
        "EncryptedAssertion",
        &Encryption::gcm(),
    )
    .unwrap();
    let xml = spec.build_with(idp, None, &[enc]).unwrap();
    let answer = post_acs(a, &encode(&xml), Some(&relay)).await;
    if answer.status == 303 {
        let (code, _) = redirect_code(&answer);
        assert_eq!(authenticate(a, &identifier, &code).await.status, 200);
    }
    answer
}

#[tokio::test]
async fn sp_key_rotation_publishes_both_decrypts_with_both_then_retires_the_old() {
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let before = sp_keys(&a, &admin).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(
        before
            .iter()
            .all(|k| k["Status"] == "active" && k["DaysLeft"].as_i64().unwrap() > 1800)
    );
    assert!(!serde_json::to_string(&before).unwrap().contains("PRIVATE"));
    let old_enc = cert_of(&before, "encryption", "active").to_string();
    let old_sign = cert_of(&before, "signing", "active").to_string();

    a.post_json(
        "/sso/saml/sp_keys/rotate",
        Some(&admin),
        &json!({"GraceDays": 0}),
    )
    .await
    .assert_problem(499, "DEFAULT", "GraceDays must be between 1 and 365");
    a.post_json(
        "/sso/saml/sp_keys/finish_rotation",
        Some(&admin),
        &json!({}),
    )
    .await
    .assert_problem(499, "DEFAULT", "no rotation is under way");
    let r = a
        .post_json(
            "/sso/saml/sp_keys/rotate",
            Some(&admin),
            &json!({"GraceDays": 10}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let during = sp_keys(&a, &admin).await;
    assert_eq!(during.len(), 4, "{during:?}");
    assert_eq!(cert_of(&during, "encryption", "retiring"), old_enc);
    assert_eq!(cert_of(&during, "signing", "retiring"), old_sign);
    let new_enc = cert_of(&during, "encryption", "active").to_string();
    // The IdP knows the old signing certificate: it keeps signing until the rotation ends.
    let signer = during.iter().find(|k| k["Signs"] == true).unwrap();
    assert_eq!(signer["Certificate"], old_sign.as_str());
    // Both encryption certificates are published, the new one first.
    let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
    assert_eq!(
        published(&m, "encryption"),
        [new_enc.clone(), old_enc.clone()]
    );
    a.post_json("/sso/saml/sp_keys/rotate", Some(&admin), &json!({}))
        .await
        .assert_problem(499, "DEFAULT", "a rotation is under way");

    // During the grace period both decrypt.
    for cert in [&old_enc, &new_enc] {
        let r = encrypted_sign_in(&a, &idp, cert).await;
        assert_eq!(r.status, 303, "{}", r.text);
    }
    let r = a
        .post_json(
            "/sso/saml/sp_keys/finish_rotation",
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = sp_keys(&a, &admin).await;
    assert_eq!(after.len(), 2);
    assert_eq!(cert_of(&after, "encryption", "active"), new_enc);
    let m = a.get("/sso/saml/metadata?account=acme", None).await.text;
    assert_eq!(published(&m, "encryption"), std::slice::from_ref(&new_enc));
    crate::saml::refused_page(
        &encrypted_sign_in(&a, &idp, &old_enc).await,
        "cannot be decrypted with this agent",
    );
    assert_eq!(encrypted_sign_in(&a, &idp, &new_enc).await.status, 303);
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("saml.sp_keys.rotate") && audit.contains("saml.sp_keys.finish_rotation"),
        "{audit}"
    );
    // Only admins see or rotate keys.
    assert_ne!(a.get("/sso/saml/sp_keys", None).await.status, 200);
}

/// Whether the signed `sso_url` `url` carries a redirect-binding signature by `cert_pem`.
fn signed_by(url: &str, cert_pem: &str) -> bool {
    let query = url.split_once('?').unwrap().1;
    let (signed, signature) = query.split_once("&Signature=").unwrap();
    let signature: String = form_urlencoded::parse(format!("s={signature}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .unwrap();
    let key = openssl::x509::X509::from_pem(cert_pem.as_bytes())
        .unwrap()
        .public_key()
        .unwrap();
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    v.update(signed.as_bytes()).unwrap();
    v.verify(&signature).unwrap()
}

async fn test_agent_keys(a: &TestAgent, admin: &str) -> Vec<Value> {
    let r = a.get("/sso/saml/sp_keys", Some(admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["Keys"].as_array().unwrap().clone()
}

async fn test_agent_url(a: &TestAgent) -> String {
    let r = a.sso_url("alice@acme.test", "http://127.0.0.1:9/cb").await;
    r.json()["Url"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn at_the_end_of_the_grace_period_the_new_signing_key_signs_and_the_old_is_gone() {
    let agent = TestAgent::start(|_| {}).await;
    let admin = agent.admin_token();
    agent.add_user("alice@acme.test", "Alice");
    let idp = TestIdp::new().unwrap();
    let r = agent
        .post_json(
            "/sso/setup_saml",
            Some(&admin),
            &json!({"Certificate": idp.cert_pem(), "SPEntityId": SP,
                    "IdPSSOURL": "https://idp.corp.test/sso", "SignAuthnRequests": true, "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let old = cert_of(&test_agent_keys(&agent, &admin).await, "signing", "active").to_string();
    let r = agent
        .post_json(
            "/sso/saml/sp_keys/rotate",
            Some(&admin),
            &json!({"GraceDays": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = cert_of(&test_agent_keys(&agent, &admin).await, "signing", "active").to_string();
    let during = test_agent_url(&agent).await;
    assert!(signed_by(&during, &old) && !signed_by(&during, &new));
    let m = agent
        .get("/sso/saml/metadata?account=acme", None)
        .await
        .text;
    assert_eq!(published(&m, "signing"), [new.clone(), old.clone()]);

    agent.clock.advance(86_400 + 1);
    let admin = agent.admin_token();
    let after = test_agent_url(&agent).await;
    assert!(signed_by(&after, &new) && !signed_by(&after, &old));
    let m = agent
        .get("/sso/saml/metadata?account=acme", None)
        .await
        .text;
    assert_eq!(published(&m, "signing"), std::slice::from_ref(&new));
    assert_eq!(test_agent_keys(&agent, &admin).await.len(), 2);
    // The hourly upkeep deletes what retired.
    amove_agent::server::upkeep(&agent.state).await.unwrap();
    let left: Vec<i64> = agent.select("SELECT id FROM sp_keys", |r| r.get(0));
    assert_eq!(left.len(), 2);
}

/// A fresh RSA-2048 key and self-signed certificate in `dir` as `name.key`/`name.crt`;
/// returns the certificate (PEM).
fn new_idp_key(dir: &std::path::Path, name: &str) -> String {
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", "3650",
        ])
        .args(["-subj", &format!("/CN=SimpleSAMLphp {name}")])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap()
}

fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test]
async fn configured_from_simplesamlphps_metadata_url_and_rolled_over_without_a_failed_sign_in() {
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let idp = start_simplesaml_with(&acs(&a), tempfile::tempdir().unwrap(), &[]);
    add_user(&a.data_dir, "acme", "alice@corp.test", false, false);
    // Both sources at once, or metadata without what the agent needs: refused by name.
    a.post_json(
        "/sso/setup_saml",
        Some(&admin),
        &json!({"SPEntityId": SP, "IdPMetadataURL": idp.metadata_url(), "IdPMetadataXML": "<x/>"}),
    )
    .await
    .assert_problem(499, "DEFAULT", "not both");
    let xml = std::fs::read_to_string(idp.dir().join("idp-metadata.xml")).unwrap();
    let no_redirect = xml.replace("bindings:HTTP-Redirect", "bindings:HTTP-Artifact");
    a.post_json(
        "/sso/setup_saml",
        Some(&admin),
        &json!({"SPEntityId": SP, "IdPMetadataXML": no_redirect}),
    )
    .await
    .assert_problem(
        499,
        "DEFAULT",
        "the metadata has no HTTP-Redirect SingleSignOnService",
    );
    // Past its validUntil the metadata is no longer the IdP's word.
    let expired = xml.replacen(
        " entityID=",
        r#" validUntil="2020-01-01T00:00:00Z" entityID="#,
        1,
    );
    a.post_json(
        "/sso/setup_saml",
        Some(&admin),
        &json!({"SPEntityId": SP, "IdPMetadataXML": expired}),
    )
    .await
    .assert_problem(
        499,
        "DEFAULT",
        "the metadata expired at 2020-01-01T00:00:00Z (its validUntil)",
    );

    // Only the SP entity and the IdP's metadata URL: the rest comes from the metadata.
    let r = crate::saml::setup_from_metadata(&a, &admin, &idp).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = a.get("/sso/get_saml", Some(&admin)).await.json();
    assert_eq!(got["IdPSSOURL"], idp.sso_url.as_str());
    assert_eq!(got["IdPEntityId"], idp.entity_id.as_str());
    assert_eq!(got["IdPMetadataURL"], idp.metadata_url().as_str());
    assert_eq!(
        pem_body(got["Certificate"].as_str().unwrap()),
        pem_body(&idp.cert)
    );
    assert!(got["NextCertificate"].is_null());
    sign_in(&a).await;

    // The IdP publishes its next key: a refresh takes it as NextCertificate...
    let next = new_idp_key(idp.dir(), "next");
    let overrides = idp.dir().join("idp-overrides.json");
    std::fs::write(
        &overrides,
        json!({"new_certificate": "next.crt"}).to_string(),
    )
    .unwrap();
    let r = a
        .post_json("/sso/saml/refresh_metadata", Some(&admin), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let changes = r.json()["Changes"].clone();
    assert!(
        changes.to_string().contains("now NextCertificate"),
        "{changes}"
    );
    let got = a.get("/sso/get_saml", Some(&admin)).await.json();
    assert_eq!(
        pem_body(got["NextCertificate"].as_str().unwrap()),
        pem_body(&next)
    );
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("idp.saml.metadata") && audit.contains("SimpleSAMLphp next"),
        "{audit}"
    );
    // ...nothing changes on a second refresh...
    let r = a
        .post_json("/sso/saml/refresh_metadata", Some(&admin), &json!({}))
        .await;
    assert_eq!(r.json()["Changes"], json!([]));
    // ...and when the IdP switches keys, sign-in goes on without a failure.
    std::fs::write(
        &overrides,
        json!({"certificate": "next.crt", "privatekey": "next.key"}).to_string(),
    )
    .unwrap();
    sign_in(&a).await;

    // A switch to a key the agent never saw: the first sign-in fails on the signature, and
    // makes the agent read the metadata again, so the next one works.
    let third = new_idp_key(idp.dir(), "third");
    std::fs::write(
        &overrides,
        json!({"certificate": "third.crt", "privatekey": "third.key"}).to_string(),
    )
    .unwrap();
    let (_, url) = sso_url(&a).await;
    let (response, relay) = idp_login(&url, &acs(&a)).await.unwrap();
    crate::saml::refused_page(&post_acs(&a, &response, Some(&relay)).await, "signature");
    let mut picked_up = false;
    for _ in 0..50 {
        let got = a.get("/sso/get_saml", Some(&admin)).await.json();
        if got["NextCertificate"]
            .as_str()
            .is_some_and(|c| pem_body(c) == pem_body(&third))
        {
            picked_up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        picked_up,
        "the metadata was not read again after the signature failure"
    );
    sign_in(&a).await;
    // The IdP moves its single logout service: a refresh takes the new URL too.
    let got = a.get("/sso/get_saml", Some(&admin)).await.json();
    let slo = got["IdPSLOURL"].as_str().unwrap().to_string();
    assert!(slo.ends_with("/saml2/idp/SingleLogoutService.php"), "{slo}");
    let moved = format!("{slo}?moved=1");
    std::fs::write(
        &overrides,
        json!({"certificate": "third.crt", "privatekey": "third.key",
               "SingleLogoutService": moved})
        .to_string(),
    )
    .unwrap();
    let r = a
        .post_json("/sso/saml/refresh_metadata", Some(&admin), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let changes = r.json()["Changes"].to_string();
    assert!(
        changes.contains(&format!("IdPSLOURL changed from {slo} to {moved}")),
        "{changes}"
    );
    let got = a.get("/sso/get_saml", Some(&admin)).await.json();
    assert_eq!(got["IdPSLOURL"], moved.as_str());
    sign_in(&a).await;
    // test_connection reads the metadata too.
    let t = crate::saml::test_saml_connection(&a, &admin).await;
    assert!(
        t.text.contains("IdP metadata") && t.text.contains("up to date"),
        "{}",
        t.text
    );
}

/// A crafted response for a fresh sign-in of alice, its assertion (signed per `sign`)
/// encrypted by `how` to `cert`, posted to the ACS.
async fn post_encrypted(
    a: &Agent,
    idp: &TestIdp,
    cert: &str,
    how: &Encryption,
    sign: bool,
) -> crate::common::Answer {
    let (_, request_id, relay) = start(a, "alice@corp.test").await;
    let mut spec = ResponseSpec::valid(&request_id, &acs(a), SP, ISSUER, "alice@corp.test", now());
    spec.sign_assertion = sign;
    let enc = encrypt_element(
        &spec.signed_assertion(idp).unwrap(),
        cert,
        "EncryptedAssertion",
        how,
    )
    .unwrap();
    post_acs(
        a,
        &encode(&spec.build_with(idp, None, &[enc]).unwrap()),
        Some(&relay),
    )
    .await
}

#[tokio::test]
async fn hostile_encrypted_responses_are_refused_at_the_acs_with_their_reason() {
    let idp = TestIdp::new().unwrap();
    let (a, admin) = agent_with_saml(&idp).await;
    let keys = sp_keys(&a, &admin).await;
    let cert = cert_of(&keys, "encryption", "active").to_string();
    let rsa15 = Encryption {
        key: "http://www.w3.org/2001/04/xmlenc#rsa-1_5".into(),
        ..Encryption::gcm()
    };
    let refused = crate::saml::refused_page;
    refused(
        &post_encrypted(&a, &idp, &cert, &rsa15, true).await,
        "rsa-1_5",
    );
    refused(
        &post_encrypted(&a, &idp, &cert, &Encryption::gcm(), false).await,
        "signature is missing",
    );
    let other = amove_agent::sso::saml::sp_keys::generate("other", now()).unwrap();
    refused(
        &post_encrypted(&a, &idp, &other.certificate_pem, &Encryption::gcm(), true).await,
        "cannot be decrypted with this agent",
    );
    // RequireEncryptedAssertions: a plain (validly signed) assertion no longer signs in.
    let mut cfg = a.get("/sso/get_saml", Some(&admin)).await.json();
    cfg["RequireEncryptedAssertions"] = json!(true);
    cfg.as_object_mut().unwrap().remove("IdPCertificates");
    let r = a
        .send(
            a.http
                .put(a.url("/sso/update_saml"))
                .query(&[("token", &admin)])
                .json(&cfg),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, request_id, relay) = start(&a, "alice@corp.test").await;
    let plain = ResponseSpec::valid(&request_id, &acs(&a), SP, ISSUER, "alice@corp.test", now())
        .build(&idp)
        .unwrap();
    refused(
        &post_acs(&a, &encode(&plain), Some(&relay)).await,
        "requires encrypted assertions",
    );
    assert_eq!(
        post_encrypted(&a, &idp, &cert, &Encryption::gcm(), true)
            .await
            .status,
        303
    );
    // Each refusal is in the audit trail with its reason.
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(
        audit.contains("rsa-1_5") && audit.contains("requires encrypted assertions"),
        "{audit}"
    );
}
