//! The token exchange API (seed 003): grants, cookie, errors, throttling, listing, revoking.

use serde_json::json;

use crate::common::{
    ADMIN_PASSWORD, Agent, USER_PASSWORD, add_user, files_containing, user_cli, user_token,
};

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[tokio::test]
async fn password_grant_with_the_seeds_form_body_labelled_json() {
    let a = Agent::with_account().await;
    // Exactly as the seed sends it: a form body under a JSON content type, plus a stale bearer.
    let body = format!(
        "grant_type=password&scope=SAML&username=admin@acme&password={}",
        ADMIN_PASSWORD.replace(' ', "%20")
    );
    let r = a
        .send(
            a.http
                .post(a.url("/sso/ttapi/2.0/authz/0/authn"))
                .header("Content-Type", "application/json; charset=UTF-8")
                .header(
                    "Authorization",
                    "Bearer nN42C7bQnqzeTZi11fhPWd6cUwOwA17uq+ol5OyIT2o7888xiIMi3udG61j",
                )
                .body(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(token.len() >= 43, "a 256-bit token: {token}");
    let cookie = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.starts_with(&format!("SSOCTT={token};")), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    // The token works on a protected endpoint.
    assert_eq!(
        a.get("/sso/whoami", Some(&token)).await.json()["Username"],
        "admin@acme.test"
    );
}

#[tokio::test]
async fn password_grant_accepts_json_and_the_full_email() {
    let a = Agent::with_account().await;
    let r = a
        .post_json(
            "/sso/ttapi/2.0/authz/0/authn",
            None,
            &json!({"grant_type": "password", "username": "admin@acme.test", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["access_token"].is_string());
}

#[tokio::test]
async fn session_token_grant_refuses_what_is_not_a_session_token() {
    let a = Agent::with_account().await;
    let access = a.admin_token().await;
    for (pw, needle) in [
        (
            "AQIC5wM2LY4Sfcy3ifL8vGYbzixe7rETt20fYIq3ZD3Or0s.*AAJTSQACMDIAAlNLABM4NTU1.*",
            "invalid_grant",
        ),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "invalid_grant"),
        (access.as_str(), "not an access token"),
    ] {
        let r = a
            .authn_form(&form(&[
                ("grant_type", "urn:ssocircle:api:sessiontoken"),
                ("password", pw),
            ]))
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        let body = r.json();
        assert_eq!(body["error"], "invalid_grant", "{}", r.text);
        assert!(r.text.contains(needle), "{}", r.text);
        assert!(body.get("access_token").is_none());
    }
}

#[tokio::test]
async fn oauth_errors_name_the_problem() {
    let a = Agent::with_account().await;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            form(&[("username", "admin@acme"), ("password", "x")]),
            "invalid_request",
            "grant_type is required",
        ),
        (
            form(&[("grant_type", "client_credentials")]),
            "unsupported_grant_type",
            "not supported",
        ),
        (
            form(&[("grant_type", "password"), ("password", "x")]),
            "invalid_request",
            "username is required",
        ),
        (
            form(&[("grant_type", "password"), ("username", "admin@acme")]),
            "invalid_request",
            "password is required",
        ),
        (
            form(&[("grant_type", "urn:ssocircle:api:sessiontoken")]),
            "invalid_request",
            "session token) is required",
        ),
        (
            "grant_type=password&grant_type=password".into(),
            "invalid_request",
            "more than once",
        ),
        (
            form(&[
                ("grant_type", "password"),
                ("username", "admin@acme"),
                ("password", "x"),
                ("scope", "a\"b"),
            ]),
            "invalid_request",
            "scope",
        ),
        (
            "{\"grant_type\": 1}".into(),
            "invalid_request",
            "must be a string",
        ),
        (
            "{not json".into(),
            "invalid_request",
            "not a valid JSON object",
        ),
        (
            form(&[
                ("grant_type", "password"),
                ("username", "admin@acme"),
                ("password", "wrong password!"),
            ]),
            "invalid_grant",
            "invalid username or password",
        ),
        (
            form(&[
                ("grant_type", "password"),
                ("username", "nobody@acme.test"),
                ("password", "whatever pw"),
            ]),
            "invalid_grant",
            "invalid username or password",
        ),
        (
            form(&[
                ("grant_type", "password"),
                ("username", "admin@unknownacct"),
                ("password", "whatever pw"),
            ]),
            "invalid_grant",
            "invalid username or password",
        ),
    ];
    for (body, error, needle) in cases {
        let r = a.authn_form(&body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.json()["error"], error, "{body}: {}", r.text);
        assert!(
            r.json()["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(needle)),
            "{body}: {}",
            r.text
        );
        assert!(r.headers.get("set-cookie").is_none());
    }
    let big = "x".repeat(20 * 1024);
    let r = a.authn_form(&big).await;
    assert_eq!(r.json()["error"], "invalid_request");
}

#[tokio::test]
async fn users_without_password_and_inactive_users_get_no_token() {
    let a = Agent::with_account().await;
    add_user(&a.data_dir, "acme", "sso-only@acme.test", false, false);
    let r = a
        .authn_form(&form(&[
            ("grant_type", "password"),
            ("username", "sso-only@acme.test"),
            ("password", "anything at all"),
        ]))
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    let token = user_token(&a, "ivy@acme.test").await;
    user_cli(&a.data_dir, "disable", "ivy@acme.test");
    let r = a
        .authn_form(&form(&[
            ("grant_type", "password"),
            ("username", "ivy@acme.test"),
            ("password", USER_PASSWORD),
        ]))
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    // The right password of a disabled user is answered exactly like a wrong one: the grant
    // tells nobody whether they guessed it.
    let wrong = a
        .authn_form(&form(&[
            ("grant_type", "password"),
            ("username", "ivy@acme.test"),
            ("password", "not the password"),
        ]))
        .await;
    assert_eq!(r.json(), wrong.json());
    assert!(!r.text.contains("inactive"), "{}", r.text);
    // The token issued before is refused too.
    a.get("/sso/whoami", Some(&token))
        .await
        .assert_problem(401, "AUTH", "inactive");
}

#[tokio::test]
async fn repeated_failures_for_a_username_are_slowed_down() {
    let a = Agent::with_account().await;
    let wrong = form(&[
        ("grant_type", "password"),
        ("username", "admin@acme.test"),
        ("password", "not the password"),
    ]);
    for _ in 0..5 {
        assert_eq!(a.authn_form(&wrong).await.json()["error"], "invalid_grant");
    }
    // Even the right password is refused while the username is locked.
    let right = form(&[
        ("grant_type", "password"),
        ("username", "admin@acme.test"),
        ("password", ADMIN_PASSWORD),
    ]);
    let r = a.authn_form(&right).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains("too many failed sign-in attempts"),
        "{}",
        r.text
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    // Another user is not affected.
    add_user(&a.data_dir, "acme", "other@acme.test", false, true);
    a.password_token("other@acme.test", USER_PASSWORD).await;
}

#[tokio::test]
async fn the_failure_budget_is_the_users_however_the_name_is_spelled() {
    let a = Agent::with_account().await;
    let attempt = |username: &'static str, password: &'static str| {
        form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
    };
    // userid@account and the full email are one user: five failures between them lock it.
    for name in [
        "admin@acme",
        "ADMIN@acme.test",
        "admin@acme",
        "admin@acme.test",
        "Admin@Acme",
    ] {
        let r = a.authn_form(&attempt(name, "wrong")).await;
        assert_eq!(r.json()["error"], "invalid_grant", "{}", r.text);
    }
    for name in ["admin@acme", "admin@acme.test"] {
        let r = a.authn_form(&attempt(name, ADMIN_PASSWORD)).await;
        assert!(
            r.text.contains("too many failed sign-in attempts"),
            "{name}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn failures_of_other_names_and_clients_never_lock_a_user_out() {
    // Every local process is 127.0.0.1: failures for names that are nobody, from the same
    // address (more than a per-address limit of 50 would allow), spend nobody's budget.
    let a = Agent::with_account().await;
    for i in 0..60 {
        let name = format!("nobody-{i}@acme.test");
        let r = a
            .authn_form(&form(&[
                ("grant_type", "password"),
                ("username", &name),
                ("password", "wrong"),
            ]))
            .await;
        assert_eq!(r.json()["error"], "invalid_grant");
    }
    a.password_token("admin@acme.test", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn tokens_are_listed_without_values_and_revocable() {
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let user = user_token(&a, "uma@acme.test").await;
    let list = a.get("/sso/ttapi/tokens", Some(&admin)).await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(&admin) && !list.text.contains(&user));
    let items = list.json().as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2);
    let user_item = items
        .iter()
        .find(|t| t["Username"] == "uma@acme.test")
        .cloned()
        .unwrap_or_default();
    assert_eq!(user_item["Status"], "active");
    assert_eq!(user_item["GrantType"], "password");
    // A standard user sees only their own.
    let own = a.get("/sso/ttapi/tokens", Some(&user)).await.json();
    assert_eq!(own.as_array().map(Vec::len), Some(1));
    // The user cannot revoke the admin's token.
    let admin_id = items
        .iter()
        .find(|t| t["Username"] == "admin@acme.test")
        .map(|t| t["Id"].clone())
        .unwrap_or_default();
    a.delete(&format!("/sso/ttapi/tokens/{admin_id}"), Some(&user))
        .await
        .assert_problem(499, "NOT_FOUND", "no access token");
    // The admin revokes the user's token; it stops working at once.
    let id = &user_item["Id"];
    assert_eq!(
        a.delete(&format!("/sso/ttapi/tokens/{id}"), Some(&admin))
            .await
            .status,
        200
    );
    a.get("/sso/whoami", Some(&user))
        .await
        .assert_problem(401, "TOKEN", "revoked");
    let after = a.get("/sso/ttapi/tokens", Some(&admin)).await.json();
    assert!(
        after
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["Id"] == *id && t["Status"] == "revoked")
    );
    a.delete("/sso/ttapi/tokens/999999", Some(&admin))
        .await
        .assert_problem(499, "NOT_FOUND", "no access token with Id 999999");
    a.delete("/sso/ttapi/tokens/abc", Some(&admin))
        .await
        .assert_problem(499, "DEFAULT", "Id must be an integer");
    // Issue and revoke are audited.
    let audit = a.get("/sso/audit", Some(&admin)).await.text;
    assert!(audit.contains("token.revoke") && audit.contains("token.issue"));
}

#[tokio::test]
async fn tokens_of_another_account_are_invisible() {
    let a = Agent::with_account().await;
    crate::common::init_account(&a.data_dir, "globex", "boss@globex.test");
    let acme = a.admin_token().await;
    let globex = a.password_token("boss@globex", ADMIN_PASSWORD).await;
    let globex_list = a.get("/sso/ttapi/tokens", Some(&globex)).await.json();
    let id = globex_list[0]["Id"].clone();
    a.delete(&format!("/sso/ttapi/tokens/{id}"), Some(&acme))
        .await
        .assert_problem(499, "NOT_FOUND", "no access token");
    assert_eq!(a.get("/sso/whoami", Some(&globex)).await.status, 200);
}

#[tokio::test]
async fn admin_set_lifetime_expires_tokens() {
    let a = Agent::with_account().await;
    let admin = a.admin_token().await;
    let r = a
        .put_json(
            "/sso/ttapi/policy",
            Some(&admin),
            &json!({"AccessTokenLifetimeSeconds": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let short = a.admin_token().await;
    assert_eq!(a.get("/sso/whoami", Some(&short)).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    a.get("/sso/whoami", Some(&short))
        .await
        .assert_problem(401, "TOKEN", "expired");
    // The earlier token, issued under "until revoked", still works.
    assert_eq!(a.get("/sso/whoami", Some(&admin)).await.status, 200);
    a.put_json(
        "/sso/ttapi/policy",
        Some(&admin),
        &json!({"AccessTokenLifetimeSeconds": 0}),
    )
    .await
    .assert_problem(499, "DEFAULT", "AccessTokenLifetimeSeconds must be from 1");
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    assert!(files_containing(&a.data_dir, &t).is_empty());
    let hash = amove_agent::crypto::sha256_hex(&t);
    let conn = rusqlite::Connection::open(a.data_dir.join("agent.db")).expect("db");
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM access_tokens WHERE token_hash = ?1",
            [&hash],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn logout_revokes_the_access_token_used() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let r = a
        .send(a.http.post(a.url("/sso/logout")).query(&[("token", &t)]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    a.get("/sso/whoami", Some(&t))
        .await
        .assert_problem(401, "TOKEN", "revoked");
}

#[tokio::test]
async fn tokens_minted_from_a_session_live_and_end_with_it() {
    // A session must not become a permanent credential: a token minted from it expires with
    // it (no admin policy), and signing out of the session revokes it.
    let agent = crate::fake_oidc::TestAgent::start(|s| {
        s.session_ttl = std::time::Duration::from_secs(600);
    })
    .await;
    let session = agent.admin_token();
    let mint = |session: String| {
        let form = form(&[
            ("grant_type", "urn:ssocircle:api:sessiontoken"),
            ("password", &session),
        ]);
        agent.send(
            agent
                .http
                .post(format!("{}/sso/ttapi/2.0/authz/0/authn", agent.base))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form),
        )
    };
    let r = mint(session.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json()["access_token"].as_str().unwrap().to_string();
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_string();
    let max_age: i64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Max-Age in {cookie}"));
    assert!((590..=600).contains(&max_age), "{cookie}");
    let listed = agent.get("/sso/ttapi/tokens", Some(&session)).await.json();
    let expires = listed[0]["ExpiresAt"].as_str().map(str::to_string);
    assert!(expires.is_some(), "{listed}");
    assert_eq!(agent.get("/sso/whoami", Some(&access)).await.status, 200);

    // Sign out of the session: the token minted from it is revoked too, and audited.
    let out = agent
        .post_json("/sso/logout", Some(&session), &json!({}))
        .await;
    assert_eq!(out.status, 200, "{}", out.text);
    let me = agent.get("/sso/whoami", Some(&access)).await;
    assert_eq!(me.status, 401, "{}", me.text);
    let audit = agent
        .get("/sso/audit", Some(&agent.admin_token()))
        .await
        .text;
    assert!(
        audit.contains("and the access tokens minted from it"),
        "{audit}"
    );
}

#[tokio::test]
async fn password_tokens_keep_the_account_policy() {
    // Without a policy a password token lasts until revoked (the seed's long-lived token),
    // and its cookie is a session cookie.
    let a = Agent::with_account().await;
    let r = a
        .authn_form(&form(&[
            ("grant_type", "password"),
            ("username", "admin@acme.test"),
            ("password", ADMIN_PASSWORD),
        ]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Max-Age"), "{cookie}");
}

#[tokio::test]
async fn the_web_ui_signs_in_with_a_session_not_a_permanent_token() {
    let a = Agent::with_account().await;
    let jwt = a.session_jwt("admin@acme.test", ADMIN_PASSWORD).await;
    assert_eq!(jwt.split('.').count(), 3, "not a session JWT: {jwt}");
    let me = a.get("/sso/whoami", Some(&jwt)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    // No access token was minted for it.
    let tokens = a.get("/sso/ttapi/tokens", Some(&jwt)).await.json();
    assert_eq!(tokens, json!([]));
    // Signing out ends it.
    assert_eq!(
        a.post_json("/sso/logout", Some(&jwt), &json!({}))
            .await
            .status,
        200
    );
    assert_eq!(a.get("/sso/whoami", Some(&jwt)).await.status, 401);
    // A wrong password is a 401 naming nothing more than the grant does.
    a.post_json(
        "/sso/session",
        None,
        &json!({"Username": "admin@acme.test", "Password": "wrong"}),
    )
    .await
    .assert_problem(401, "AUTH", "invalid username or password");
}
