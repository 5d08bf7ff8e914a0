//! SAML as enterprise IdPs use it, against the real SimpleSAMLphp: AuthnRequests signed
//! with the agent's own key (HTTP-Redirect binding), the SP metadata that publishes it.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Agent, add_user};
use crate::saml::{
    SP, SimpleSaml, acs, alice_sso_url as sso_url, authenticate, idp_login, post_acs,
    redirect_code, start_simplesaml_with,
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
fn published(metadata: &str, key_use: &str) -> Vec<String> {
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
