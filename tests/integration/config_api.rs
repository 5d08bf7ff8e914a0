//! The twelve IdP configuration endpoints: shapes, validation, rules, secrets.

use amove_agent::sso::urls::LOOPBACK_GRAPH_ENV;
use serde_json::{Value, json};

use crate::common::{Agent, certificate, files_containing, user_token};

fn okta() -> Value {
    json!({
        "ClientId": "0oa1okta",
        "ClientSecret": "okta-secret-value-123",
        "OpenIdURL": "https://acme.okta.com/.well-known/openid-configuration",
        "Active": true
    })
}

fn entra() -> Value {
    json!({
        "ClientId": "11111111-2222-3333-4444-555555555555",
        "ClientSecret": "entra-secret-value-456",
        "OpenIdURL": "https://login.microsoftonline.com/tid/v2.0/.well-known/openid-configuration",
        "Active": false
    })
}

fn saml() -> Value {
    json!({
        "Certificate": certificate(-1, 365),
        "SPEntityId": "https://amove.test/sp",
        "IdPSSOURL": "https://idp.acme.test/sso",
        "Active": false
    })
}

/// The client secret as stored, decrypted with the agent's own data key.
fn stored_secret(agent: &Agent, kind: &str) -> String {
    let (sealer, _) =
        amove_agent::crypto::seal::Sealer::load_or_create(&agent.data_dir).expect("key");
    let conn = rusqlite::Connection::open(agent.data_dir.join("agent.db")).expect("db");
    let (account_id, sealed): (i64, String) = conn
        .query_row(
            "SELECT account_id, client_secret_enc FROM idp_configs WHERE kind = ?1",
            [kind],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    let ctx = format!("idp_configs:{account_id}:{kind}:client_secret");
    sealer
        .open_secret(&sealed, &ctx)
        .expect("open")
        .expose()
        .to_string()
}

#[tokio::test]
async fn okta_setup_get_update_delete_roundtrip() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    assert_eq!(a.get("/sso/get_okta", Some(&t)).await.json(), Value::Null);

    let saved = a.post_json("/sso/setup_okta", Some(&t), &okta()).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let saved = saved.json();
    assert!(saved["Id"].as_i64().is_some());
    assert_eq!(saved["ClientId"], "0oa1okta");
    assert_eq!(saved["ClientSecret"], "********");
    assert_eq!(saved["ClientAuth"], "client_secret_basic");
    assert_eq!(
        saved["OpenIdURL"],
        "https://acme.okta.com/.well-known/openid-configuration"
    );
    assert_eq!(saved["Active"], true);

    let got = a.get("/sso/get_okta", Some(&t)).await.json();
    assert_eq!(got, saved);

    let mut changed = got.clone();
    changed["ClientId"] = json!("0oa2okta");
    // Another client: its secret is sent again (the mask would keep the old client's).
    changed["ClientSecret"] = json!("okta-secret-of-0oa2");
    changed["Active"] = json!(false);
    let upd = a.put_json("/sso/update_okta", Some(&t), &changed).await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    assert_eq!(upd.json()["ClientId"], "0oa2okta");
    assert_eq!(
        a.get("/sso/get_okta", Some(&t)).await.json()["Active"],
        false
    );

    let del = a.delete("/sso/delete_okta", Some(&t)).await;
    assert_eq!(del.status, 200);
    assert_eq!(a.get("/sso/get_okta", Some(&t)).await.json(), Value::Null);
}

#[tokio::test]
async fn graph_url_names_only_microsoft_graph() {
    // Every Entra sign-in with the groups overage sends the user's Graph token to GraphURL,
    // and every import the admin's User.Read.All token.
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    for bad in [
        "https://evil.example",
        "https://graph.microsoft.com.evil.example",
        "http://127.0.0.1:9999/graph",
    ] {
        let mut body = entra();
        body["GraphURL"] = json!(bad);
        a.post_json("/sso/setup_entraId", Some(&t), &body)
            .await
            .assert_problem(
                499,
                "DEFAULT",
                "GraphURL must be Microsoft Graph's root URL",
            );
    }
    let mut body = entra();
    body["GraphURL"] = json!("https://graph.microsoft.us");
    let saved = a.post_json("/sso/setup_entraId", Some(&t), &body).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json()["GraphURL"], "https://graph.microsoft.us/");
    // An update cannot point it elsewhere either.
    let mut body = saved.json();
    body["GraphURL"] = json!("https://evil.example/");
    a.put_json("/sso/update_entraId", Some(&t), &body)
        .await
        .assert_problem(499, "DEFAULT", "GraphURL");
}

#[tokio::test]
async fn entra_id_roundtrip_with_default_and_custom_graph_url() {
    // A loopback Graph (a test double) only under the test setting, and audited.
    let a = Agent::with_account_env(&[(LOOPBACK_GRAPH_ENV, "1")]).await;
    let t = a.admin_token().await;
    let saved = a.post_json("/sso/setup_entraId", Some(&t), &entra()).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json()["GraphURL"], "https://graph.microsoft.com");
    let mut body = saved.json();
    body["GraphURL"] = json!("http://127.0.0.1:9999/graph");
    let upd = a.put_json("/sso/update_entraId", Some(&t), &body).await;
    assert_eq!(upd.json()["GraphURL"], "http://127.0.0.1:9999/graph");
    let audit = a.get("/sso/audit", Some(&t)).await.text;
    assert!(
        audit.contains("(loopback: test setting AMOVE_TEST_ALLOW_LOOPBACK_GRAPH is on)"),
        "{audit}"
    );
    assert_eq!(a.get("/sso/get_entraId", Some(&t)).await.json(), upd.json());
    assert_eq!(a.delete("/sso/delete_entraId", Some(&t)).await.status, 200);
    assert_eq!(
        a.get("/sso/get_entraId", Some(&t)).await.json(),
        Value::Null
    );
}

#[tokio::test]
async fn saml_roundtrip_accepts_pem_and_bare_base64_der() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let pem = certificate(-1, 365);
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut body = saml();
    body["Certificate"] = json!(bare);
    body["IdPEntityId"] = json!("https://idp.acme.test/metadata");
    body["NextCertificate"] = json!(certificate(10, 400));
    let saved = a.post_json("/sso/setup_saml", Some(&t), &body).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let saved = saved.json();
    assert_eq!(
        saved["Certificate"].as_str().map(str::trim),
        Some(pem.trim())
    );
    assert_eq!(saved["SPEntityId"], "https://amove.test/sp");
    assert_eq!(saved["IdPSSOURL"], "https://idp.acme.test/sso");
    assert_eq!(saved["IdPEntityId"], "https://idp.acme.test/metadata");
    assert!(
        saved["NextCertificate"]
            .as_str()
            .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
    );
    assert_eq!(
        saved["AcsURL"],
        format!("http://localhost:{}/sso/saml/acs", a.port)
    );

    // A full update without NextCertificate clears it (the body is the whole object).
    let mut upd = saved.clone();
    upd.as_object_mut().map(|o| o.remove("NextCertificate"));
    upd["Active"] = json!(true);
    let r = a.put_json("/sso/update_saml", Some(&t), &upd).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["NextCertificate"], Value::Null);
    assert_eq!(
        a.get("/sso/get_saml", Some(&t)).await.json()["Active"],
        true
    );
    assert_eq!(a.delete("/sso/delete_saml", Some(&t)).await.status, 200);
}

#[tokio::test]
async fn request_keys_are_case_insensitive() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let body = json!({
        "clientid": "cid", "CLIENTSECRET": "s-e-c-r-e-t", "openIdUrl": "https://a.okta.com", "active": true
    });
    let r = a.post_json("/sso/setup_okta", Some(&t), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ClientId"], "cid");
}

#[tokio::test]
async fn each_validation_failure_names_its_field() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/sso/setup_okta",
            json!({"ClientSecret": "x", "OpenIdURL": "https://a.test", "Active": true}),
            "ClientId is required",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "  ", "ClientSecret": "x", "OpenIdURL": "https://a.test"}),
            "ClientId must not be blank",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": 42, "ClientSecret": "x", "OpenIdURL": "https://a.test"}),
            "ClientId must be a string, not a number",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c", "ClientSecret": "  ", "OpenIdURL": "https://a.test"}),
            "ClientSecret must not be blank (send \"\" for a public client without a secret)",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c", "ClientSecret": "s"}),
            "OpenIdURL is required",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c", "ClientSecret": "s", "OpenIdURL": "http://acme.okta.com/"}),
            "OpenIdURL must be an absolute https URL (http is allowed only for loopback hosts)",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c", "ClientSecret": "s", "OpenIdURL": "/relative"}),
            "OpenIdURL must be an absolute https URL",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c", "ClientSecret": "s", "OpenIdURL": "https://u:p@a.test"}),
            "OpenIdURL must not contain a user name or password",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c", "ClientSecret": "s", "OpenIdURL": "https://a.test", "Active": "yes"}),
            "Active must be true or false",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c\u{0007}", "ClientSecret": "s", "OpenIdURL": "https://a.test"}),
            "ClientId must not contain control characters",
        ),
        (
            "/sso/setup_okta",
            json!({"ClientId": "c".repeat(300), "ClientSecret": "s", "OpenIdURL": "https://a.test"}),
            "ClientId must be at most 256 characters",
        ),
        (
            "/sso/setup_entraId",
            json!({"ClientId": "c", "ClientSecret": "s", "OpenIdURL": "https://a.test", "GraphURL": "ftp://graph"}),
            "GraphURL must be Microsoft Graph's root URL",
        ),
        (
            "/sso/setup_saml",
            json!({"SPEntityId": "sp", "IdPSSOURL": "https://idp.test/sso"}),
            "Certificate is required",
        ),
        (
            "/sso/setup_saml",
            json!({"Certificate": "not a certificate", "SPEntityId": "sp", "IdPSSOURL": "https://idp.test/sso"}),
            "Certificate must be an X.509 certificate",
        ),
        (
            "/sso/setup_saml",
            json!({"Certificate": certificate(-30, -1), "SPEntityId": "sp", "IdPSSOURL": "https://idp.test/sso"}),
            "Certificate expired on",
        ),
        (
            "/sso/setup_saml",
            json!({"Certificate": certificate(-1, 30), "NextCertificate": "garbage", "SPEntityId": "sp", "IdPSSOURL": "https://idp.test/sso"}),
            "NextCertificate must be an X.509 certificate",
        ),
        (
            "/sso/setup_saml",
            json!({"Certificate": certificate(-1, 30), "IdPSSOURL": "https://idp.test/sso"}),
            "SPEntityId is required",
        ),
        (
            "/sso/setup_saml",
            json!({"Certificate": certificate(-1, 30), "SPEntityId": "sp", "IdPSSOURL": "http://idp.test/sso"}),
            "IdPSSOURL must be an absolute https URL",
        ),
    ];
    for (path, body, needle) in cases {
        let r = a.post_json(path, Some(&t), &body).await;
        r.assert_problem(499, "DEFAULT", needle);
    }
    // Nothing of it was stored.
    for path in ["/sso/get_okta", "/sso/get_entraId", "/sso/get_saml"] {
        assert_eq!(a.get(path, Some(&t)).await.json(), Value::Null, "{path}");
    }
}

#[tokio::test]
async fn several_invalid_fields_are_reported_together() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let r = a
        .post_json(
            "/sso/setup_okta",
            Some(&t),
            &json!({"OpenIdURL": "nope", "ClientSecret": 7}),
        )
        .await;
    r.assert_problem(499, "DEFAULT", "ClientId is required");
    r.assert_problem(499, "DEFAULT", "ClientSecret must be a string");
    r.assert_problem(499, "DEFAULT", "OpenIdURL must be an absolute https URL");
}

#[tokio::test]
async fn only_one_configuration_may_be_active() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    assert_eq!(
        a.post_json("/sso/setup_okta", Some(&t), &okta())
            .await
            .status,
        200
    );
    let mut e = entra();
    e["Active"] = json!(true);
    a.post_json("/sso/setup_entraId", Some(&t), &e)
        .await
        .assert_problem(499, "DEFAULT", "the Okta configuration is already active");
    // Inactive is fine; activating it by update is refused the same way.
    let saved = a
        .post_json("/sso/setup_entraId", Some(&t), &entra())
        .await
        .json();
    let mut upd = saved.clone();
    upd["Active"] = json!(true);
    a.put_json("/sso/update_entraId", Some(&t), &upd)
        .await
        .assert_problem(499, "DEFAULT", "Okta configuration is already active");
    // After deactivating Okta, Entra ID may be activated.
    let mut o = a.get("/sso/get_okta", Some(&t)).await.json();
    o["Active"] = json!(false);
    assert_eq!(
        a.put_json("/sso/update_okta", Some(&t), &o).await.status,
        200
    );
    assert_eq!(
        a.put_json("/sso/update_entraId", Some(&t), &upd)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn duplicate_setup_and_missing_update_or_delete() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    a.put_json(
        "/sso/update_okta",
        Some(&t),
        &json!({"Id": 1, "ClientId": "c", "OpenIdURL": "https://a.test"}),
    )
    .await
    .assert_problem(499, "NOT_FOUND", "no Okta configuration with Id 1");
    a.delete("/sso/delete_saml", Some(&t)).await.assert_problem(
        499,
        "NOT_FOUND",
        "no SAML configuration",
    );
    let saved = a
        .post_json("/sso/setup_okta", Some(&t), &okta())
        .await
        .json();
    a.post_json("/sso/setup_okta", Some(&t), &okta())
        .await
        .assert_problem(499, "DUPLICATE", "Okta configuration already exists");
    let mut wrong = saved.clone();
    wrong["Id"] = json!(saved["Id"].as_i64().unwrap_or(0) + 100);
    a.put_json("/sso/update_okta", Some(&t), &wrong)
        .await
        .assert_problem(499, "NOT_FOUND", "no Okta configuration with Id");
    let mut no_id = saved.clone();
    no_id.as_object_mut().map(|o| o.remove("Id"));
    a.put_json("/sso/update_okta", Some(&t), &no_id)
        .await
        .assert_problem(499, "DEFAULT", "Id is required");
}

/// An agent with an Okta configuration: the agent, an admin token, the saved configuration.
async fn with_okta() -> (Agent, String, Value) {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let saved = a
        .post_json("/sso/setup_okta", Some(&t), &okta())
        .await
        .json();
    assert_eq!(stored_secret(&a, "okta"), "okta-secret-value-123");
    (a, t, saved)
}

#[tokio::test]
async fn masked_or_omitted_secret_on_update_keeps_stored_one() {
    let (a, t, saved) = with_okta().await;
    // Sent back as read (with the mask).
    assert_eq!(
        a.put_json("/sso/update_okta", Some(&t), &saved)
            .await
            .status,
        200
    );
    assert_eq!(stored_secret(&a, "okta"), "okta-secret-value-123");
    // Omitted.
    let mut omitted = saved.clone();
    omitted.as_object_mut().map(|o| o.remove("ClientSecret"));
    assert_eq!(
        a.put_json("/sso/update_okta", Some(&t), &omitted)
            .await
            .status,
        200
    );
    assert_eq!(stored_secret(&a, "okta"), "okta-secret-value-123");
    // Replaced.
    let mut replaced = saved.clone();
    replaced["ClientSecret"] = json!("rotated-secret-789");
    let r = a.put_json("/sso/update_okta", Some(&t), &replaced).await;
    assert_eq!(r.json()["ClientSecret"], "********");
    assert_eq!(stored_secret(&a, "okta"), "rotated-secret-789");
    // The mask is never accepted as a new secret on setup.
    a.delete("/sso/delete_okta", Some(&t)).await;
    let mut masked = okta();
    masked["ClientSecret"] = json!("********");
    a.post_json("/sso/setup_okta", Some(&t), &masked)
        .await
        .assert_problem(499, "DEFAULT", "ClientSecret must be the real secret");
}

#[tokio::test]
async fn the_stored_secret_never_follows_a_new_idp_or_client() {
    // The mask keeps the stored secret; were it kept across a change of OpenIdURL's host, the
    // next code exchange would send it by HTTP Basic to that host.
    let (a, t, saved) = with_okta().await;
    for (field, value) in [
        (
            "OpenIdURL",
            "https://attacker.example/.well-known/openid-configuration",
        ),
        (
            "OpenIdURL",
            "https://acme.okta.com:8443/.well-known/openid-configuration",
        ),
        ("ClientId", "0oa-another-client"),
    ] {
        let mut moved = saved.clone();
        moved[field] = json!(value);
        a.put_json("/sso/update_okta", Some(&t), &moved)
            .await
            .assert_problem(499, "DEFAULT", "ClientSecret: changing OpenIdURL's host");
        let mut omitted = moved.clone();
        omitted.as_object_mut().map(|o| o.remove("ClientSecret"));
        a.put_json("/sso/update_okta", Some(&t), &omitted)
            .await
            .assert_problem(499, "DEFAULT", "ClientSecret");
        assert_eq!(stored_secret(&a, "okta"), "okta-secret-value-123");
    }
    // Another path at the same IdP keeps it.
    let mut same_host = saved.clone();
    same_host["OpenIdURL"] =
        json!("https://acme.okta.com/oauth2/default/.well-known/openid-configuration");
    assert_eq!(
        a.put_json("/sso/update_okta", Some(&t), &same_host)
            .await
            .status,
        200
    );
    assert_eq!(stored_secret(&a, "okta"), "okta-secret-value-123");
    // With the secret sent again, the move is made and audited.
    let mut moved = saved.clone();
    moved["OpenIdURL"] = json!("https://other.okta.com/.well-known/openid-configuration");
    moved["ClientSecret"] = json!("secret-of-the-other-org");
    assert_eq!(
        a.put_json("/sso/update_okta", Some(&t), &moved)
            .await
            .status,
        200
    );
    assert_eq!(stored_secret(&a, "okta"), "secret-of-the-other-org");
    let audit = a.get("/sso/audit", Some(&t)).await.text;
    assert!(
        audit.contains(
            "moved from ClientId=0oa1okta, OpenIdURL=https://acme.okta.com/oauth2/default/"
        ),
        "{audit}"
    );
}

/// Whether a client secret is stored for `kind` (the API's name: `okta`, `entraId`).
fn has_stored_secret(agent: &Agent, kind: &str) -> bool {
    let kind = kind.trim_end_matches("Id");
    let conn = rusqlite::Connection::open(agent.data_dir.join("agent.db")).expect("db");
    conn.query_row(
        "SELECT client_secret_enc IS NOT NULL FROM idp_configs WHERE kind = ?1",
        [kind],
        |r| r.get(0),
    )
    .expect("row")
}

#[tokio::test]
async fn a_configuration_without_a_secret_is_a_public_client() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    for (kind, mut body) in [("okta", okta()), ("entraId", entra())] {
        body.as_object_mut().map(|o| o.remove("ClientSecret"));
        let saved = a
            .post_json(&format!("/sso/setup_{kind}"), Some(&t), &body)
            .await;
        assert_eq!(saved.status, 200, "{}", saved.text);
        let saved = saved.json();
        assert_eq!(saved["ClientSecret"], Value::Null, "{saved}");
        assert_eq!(saved["ClientAuth"], "none");
        assert_eq!(
            a.get(&format!("/sso/get_{kind}"), Some(&t)).await.json(),
            saved
        );
        assert!(!has_stored_secret(&a, kind));
        // Sent back as read, or with the mask: still none (the mask never invents one).
        let mut masked = saved.clone();
        masked["ClientSecret"] = json!("********");
        for body in [&saved, &masked] {
            let r = a
                .put_json(&format!("/sso/update_{kind}"), Some(&t), body)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json()["ClientAuth"], "none");
        }
        assert!(!has_stored_secret(&a, kind));
    }
    // "" on setup says the same as omitting it.
    a.delete("/sso/delete_okta", Some(&t)).await;
    let mut empty = okta();
    empty["ClientSecret"] = json!("");
    let r = a.post_json("/sso/setup_okta", Some(&t), &empty).await;
    assert_eq!(r.json()["ClientAuth"], "none", "{}", r.text);
    assert!(!has_stored_secret(&a, "okta"));
}

#[tokio::test]
async fn an_empty_secret_on_update_removes_the_stored_one_and_it_is_audited() {
    let (a, t, saved) = with_okta().await;
    assert_eq!(saved["ClientAuth"], "client_secret_basic");
    let mut public = saved.clone();
    public["ClientSecret"] = json!("");
    let r = a.put_json("/sso/update_okta", Some(&t), &public).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ClientSecret"], Value::Null);
    assert_eq!(r.json()["ClientAuth"], "none");
    assert!(!has_stored_secret(&a, "okta"));
    let audit = a.get("/sso/audit", Some(&t)).await.text;
    assert!(
        audit.contains("ClientSecret removed (public client)"),
        "{audit}"
    );
    // A secret set again makes it confidential again.
    let mut confidential = r.json();
    confidential["ClientSecret"] = json!("new-secret-0042");
    let r = a
        .put_json("/sso/update_okta", Some(&t), &confidential)
        .await;
    assert_eq!(r.json()["ClientSecret"], "********");
    assert_eq!(r.json()["ClientAuth"], "client_secret_basic");
    assert_eq!(stored_secret(&a, "okta"), "new-secret-0042");
}

#[tokio::test]
async fn a_public_client_may_move_to_another_idp_and_a_removed_secret_goes_nowhere() {
    let (a, t, saved) = with_okta().await;
    // Moving while removing the secret: nothing is left to follow the move.
    let mut moved = saved.clone();
    moved["OpenIdURL"] = json!("https://other.okta.com/.well-known/openid-configuration");
    moved["ClientSecret"] = json!("");
    let r = a.put_json("/sso/update_okta", Some(&t), &moved).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!has_stored_secret(&a, "okta"));
    // A public client moves again with the mask or without the field.
    let mut again = r.json();
    again["OpenIdURL"] = json!("https://third.okta.com/.well-known/openid-configuration");
    again["ClientId"] = json!("0oa-native");
    let r = a.put_json("/sso/update_okta", Some(&t), &again).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ClientAuth"], "none");
}

#[tokio::test]
async fn secrets_never_leave_in_responses_or_in_clear_on_disk() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let mut bodies = Vec::new();
    bodies.push(a.post_json("/sso/setup_okta", Some(&t), &okta()).await.text);
    bodies.push(
        a.post_json("/sso/setup_entraId", Some(&t), &entra())
            .await
            .text,
    );
    bodies.push(a.get("/sso/get_okta", Some(&t)).await.text);
    bodies.push(a.get("/sso/get_entraId", Some(&t)).await.text);
    bodies.push(a.get("/sso/audit", Some(&t)).await.text);
    bodies.push(a.get("/sso/ttapi/tokens", Some(&t)).await.text);
    for b in &bodies {
        assert!(
            !b.contains("okta-secret-value-123") && !b.contains("entra-secret-value-456"),
            "{b}"
        );
        assert!(!b.contains(&t), "the access token appears in {b}");
    }
    for needle in [
        "okta-secret-value-123",
        "entra-secret-value-456",
        &t,
        crate::common::ADMIN_PASSWORD,
    ] {
        let hits = files_containing(&a.data_dir, needle);
        assert!(hits.is_empty(), "{needle:?} in clear in {hits:?}");
    }
}

#[tokio::test]
async fn standard_users_and_missing_tokens_are_refused() {
    let a = Agent::with_account().await;
    let user = user_token(&a, "sam@acme.test").await;
    for (method, path) in [
        ("POST", "/sso/setup_okta"),
        ("GET", "/sso/get_okta"),
        ("PUT", "/sso/update_entraId"),
        ("DELETE", "/sso/delete_saml"),
        ("GET", "/sso/audit"),
    ] {
        let req = |tok: Option<&str>| {
            let mut r = a
                .http
                .request(method.parse().expect("method"), a.url(path))
                .json(&okta());
            if let Some(t) = tok {
                r = r.query(&[("token", t)]);
            }
            r
        };
        a.send(req(Some(&user)))
            .await
            .assert_problem(499, "ACCESS", "requires an admin");
        a.send(req(None))
            .await
            .assert_problem(401, "TOKEN", "a token is required");
        a.send(req(Some("garbage")))
            .await
            .assert_problem(401, "TOKEN", "malformed");
        a.send(req(Some("amv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")))
            .await
            .assert_problem(401, "TOKEN", "invalid");
    }
}

#[tokio::test]
async fn bearer_header_works_like_the_token_parameter() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let r = a
        .send(a.http.get(a.url("/sso/get_okta")).bearer_auth(&t))
        .await;
    assert_eq!(r.status, 200);
    let r = a
        .send(
            a.http
                .get(a.url("/sso/get_okta"))
                .header("Authorization", "Basic abc"),
        )
        .await;
    r.assert_problem(401, "TOKEN", "Bearer");
    let r = a
        .send(
            a.http
                .get(a.url("/sso/get_okta"))
                .query(&[("token", "amv_other")])
                .bearer_auth(&t),
        )
        .await;
    r.assert_problem(401, "TOKEN", "disagree");
}

#[tokio::test]
async fn configuration_changes_are_audited_newest_first_and_paged() {
    let (a, t, saved) = with_okta().await;
    a.put_json("/sso/update_okta", Some(&t), &saved).await;
    a.delete("/sso/delete_okta", Some(&t)).await;
    let page = a.get("/sso/audit?pageSize=2", Some(&t)).await.json();
    let actions: Vec<&str> = page["Items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["Action"].as_str())
        .collect();
    assert_eq!(actions, ["idp.okta.delete", "idp.okta.update"]);
    assert_eq!(page["Items"][0]["Actor"], "admin@acme.test");
    assert!(page["Total"].as_i64().unwrap_or(0) >= 5);
    let p2 = a.get("/sso/audit?pageSize=2&page=2", Some(&t)).await.json();
    assert_eq!(p2["Items"][0]["Action"], "idp.okta.create");
    a.get("/sso/audit?pageSize=0", Some(&t))
        .await
        .assert_problem(499, "DEFAULT", "pageSize must be a whole number");
}
