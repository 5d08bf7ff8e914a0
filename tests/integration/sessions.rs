//! Sessions after sign-in (issue 18): renewal through `/sso/refresh` against the real OpenID
//! Provider (refresh tokens on, rotation on), the absolute lifetime with a moved clock, and
//! sign-out at the IdP (RP-initiated logout to the agent's signed-out page); forced
//! re-authentication.

use amove_agent::clock::Clock;
use amove_agent::store::users::{self, Status};
use serde_json::{Value, json};

use crate::common::Answer;
use crate::fake_oidc::{Browser, RealOp, TestAgent, op_client, param};
use crate::oidc::{ALICE, ALICE_PASSWORD, op_users};

const CLIENT_ID: &str = "amove-sessions-client";
const CLIENT_SECRET: &str = "sessions-client-secret-value-7";

/// The real OP with a client that may refresh (rotation on) and whose sign-out may come back
/// to the agent's signed-out page; an agent whose account has Alice and an active Okta
/// configuration for it.
async fn setup(tweak: impl FnOnce(&mut amove_agent::config::Settings)) -> (TestAgent, RealOp) {
    let agent = TestAgent::start(tweak).await;
    let cb = agent.own_callback();
    let mut client = op_client(
        CLIENT_ID,
        CLIENT_SECRET,
        "client_secret_basic",
        &[&cb, "amove://sso/callback"],
    );
    client["grant_types"] = json!(["authorization_code", "refresh_token"]);
    client["post_logout_redirect_uris"] =
        json!([format!("http://localhost:{}/sso/signed_out", agent.port)]);
    let op = RealOp::start(&json!({
        "clients": [client],
        "users": op_users(),
        "pkceRequired": true,
    }))
    .await;
    agent.add_user(ALICE, "Alice Example");
    agent
        .setup_oidc(
            "okta",
            CLIENT_ID,
            CLIENT_SECRET,
            &format!("{}/.well-known/openid-configuration", op.origin),
        )
        .await;
    (agent, op)
}

/// sso_url (with `extra` fields) → the provider's login → authenticate; the session JWT and
/// the authorization URL.
async fn sign_in(agent: &TestAgent, browser: &Browser, extra: Value) -> (String, String) {
    let cb = agent.own_callback();
    let mut body = json!({"Username": ALICE, "CallbackUrl": cb});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    let a = agent.post_json("/sso/sso_url", None, &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let back = browser.login(&url, ALICE, ALICE_PASSWORD, &cb).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let a = agent.authenticate(&identifier, &code, &cb).await;
    assert_eq!(a.status, 200, "{}", a.text);
    (a.json().as_str().unwrap().to_string(), url)
}

async fn refresh(agent: &TestAgent, jwt: &str) -> Answer {
    agent
        .send(
            agent
                .http
                .post(format!("{}/sso/refresh", agent.base))
                .bearer_auth(jwt),
        )
        .await
}

fn new_jwt(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON string: {}", a.text))
        .to_string()
}

/// The stored (sealed) refresh token of the only grant, if any.
fn stored_refresh_token(agent: &TestAgent) -> Option<String> {
    let rows = agent.select("SELECT refresh_token_enc FROM session_grants", |r| {
        r.get::<_, Option<String>>(0)
    });
    assert_eq!(rows.len(), 1, "one grant expected");
    rows.into_iter().next().flatten()
}

fn set_stored_refresh_token(agent: &TestAgent, sealed: &str) {
    let s = sealed.to_string();
    agent
        .state
        .db
        .write_blocking(move |tx| {
            tx.execute("UPDATE session_grants SET refresh_token_enc = ?1", [&s])?;
            Ok(())
        })
        .unwrap();
}

fn set_alice_status(agent: &TestAgent, status: Status) {
    let now = agent.clock.now();
    agent
        .state
        .db
        .write_blocking(move |tx| {
            let u = users::by_email(tx, ALICE)?.unwrap();
            users::set_status(tx, u.id, status, now)?;
            Ok(())
        })
        .unwrap();
}

fn audited(agent: &TestAgent, outcome: &str) -> Vec<String> {
    agent
        .audit()
        .into_iter()
        .filter(|(a, o, _)| a == "session.refresh" && o == outcome)
        .map(|(_, _, d)| d)
        .collect()
}

#[tokio::test]
async fn refresh_renews_the_session_rotates_the_refresh_token_and_revokes_the_old_jwt() {
    let (agent, _op) = setup(|_| {}).await;
    let browser = Browser::new();
    let (jwt, url) = sign_in(&agent, &browser, json!({})).await;
    // The OP lists offline_access, so the sign-in asks for it.
    let scope = param(&url, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "offline_access"), "{scope}");
    let first = stored_refresh_token(&agent).expect("a refresh token is kept");
    assert!(first.starts_with("v1."), "sealed at rest");
    // The refresh token itself (opened as the agent does) is in no file of the data directory.
    let id: i64 = agent.select("SELECT id FROM session_grants", |r| r.get(0))[0];
    let clear = agent
        .state
        .sealer
        .open_secret(&first, &format!("session_grants:{id}:refresh_token"))
        .unwrap();
    assert!(clear.expose().len() > 20);
    assert!(
        crate::common::files_containing(agent.dir.path(), clear.expose()).is_empty(),
        "the refresh token is stored in clear"
    );

    let renewed = new_jwt(&refresh(&agent, &jwt).await);
    assert_ne!(renewed, jwt);
    let second = stored_refresh_token(&agent).expect("still renewable");
    assert_ne!(first, second, "the rotated refresh token is stored");

    // The old JWT is revoked; the new one works and renews again.
    agent
        .get("/sso/whoami", Some(&jwt))
        .await
        .assert_problem(401, "TOKEN", "revoked");
    let me = agent.get("/sso/whoami", Some(&renewed)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["Username"], ALICE);
    refresh(&agent, &jwt)
        .await
        .assert_problem(401, "TOKEN", "sign in again");
    let third = new_jwt(&refresh(&agent, &renewed).await);
    assert_eq!(agent.get("/sso/whoami", Some(&third)).await.status, 200);
    assert_eq!(audited(&agent, "ok").len(), 2);
    assert!(audited(&agent, "ok")[0].contains("refresh token rotated"));
}

#[tokio::test]
async fn a_rotated_out_refresh_token_is_refused_and_the_grant_dropped() {
    let (agent, _op) = setup(|_| {}).await;
    let browser = Browser::new();
    let (jwt, _) = sign_in(&agent, &browser, json!({})).await;
    let original = stored_refresh_token(&agent).unwrap();
    let renewed = new_jwt(&refresh(&agent, &jwt).await);
    let rotated = stored_refresh_token(&agent).unwrap();

    // Someone replays the first refresh token (stolen before the rotation).
    set_stored_refresh_token(&agent, &original);
    refresh(&agent, &renewed)
        .await
        .assert_problem(401, "TOKEN", "refused to renew");
    assert_eq!(stored_refresh_token(&agent), None, "the grant is dropped");
    assert!(
        audited(&agent, "refused")
            .iter()
            .any(|d| d.contains("invalid_grant")),
        "{:?}",
        agent.audit()
    );
    // The reuse revoked the whole chain at the IdP: the rotated token is dead too.
    set_stored_refresh_token(&agent, &rotated);
    refresh(&agent, &renewed)
        .await
        .assert_problem(401, "TOKEN", "invalid_grant");
    // The session itself lives on until it expires; it just cannot be renewed.
    assert_eq!(agent.get("/sso/whoami", Some(&renewed)).await.status, 200);
}

#[tokio::test]
async fn refresh_after_the_user_is_deactivated_fails_and_drops_the_grant() {
    let (agent, _op) = setup(|_| {}).await;
    let browser = Browser::new();
    let (jwt, _) = sign_in(&agent, &browser, json!({})).await;
    set_alice_status(&agent, Status::Inactive);
    refresh(&agent, &jwt)
        .await
        .assert_problem(401, "TOKEN", "inactive");
    assert_eq!(stored_refresh_token(&agent), None);
    // Reactivated, the session still cannot be renewed: the grant is gone.
    set_alice_status(&agent, Status::Active);
    refresh(&agent, &jwt)
        .await
        .assert_problem(401, "TOKEN", "no refresh token");
}

#[tokio::test]
async fn the_absolute_lifetime_bounds_renewals() {
    let (agent, _op) =
        setup(|s| s.session_max_age = std::time::Duration::from_secs(2 * 3600)).await;
    let browser = Browser::new();
    let started = agent.clock.now();
    let (jwt, _) = sign_in(&agent, &browser, json!({})).await;
    // A renewal never outlives the absolute lifetime (2 h here, under the 8 h session).
    let renewed = new_jwt(&refresh(&agent, &jwt).await);
    let exp = agent
        .state
        .auth
        .verify_session(&renewed)
        .map(|c| c.exp)
        .unwrap();
    assert!(exp <= started + 2 * 3600 + 5, "exp {exp} started {started}");
    agent.clock.advance(2 * 3600 + 10);
    refresh(&agent, &renewed)
        .await
        .assert_problem(401, "TOKEN", "maximum lifetime");
    assert_eq!(stored_refresh_token(&agent), None);
    assert!(
        audited(&agent, "refused")
            .iter()
            .any(|d| d.contains("maximum lifetime"))
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_session_redeem_it_once() {
    let (agent, _op) = setup(|_| {}).await;
    let browser = Browser::new();
    let (jwt, _) = sign_in(&agent, &browser, json!({})).await;
    let (a, b) = tokio::join!(refresh(&agent, &jwt), refresh(&agent, &jwt));
    let ok: Vec<&Answer> = [&a, &b].into_iter().filter(|x| x.status == 200).collect();
    assert_eq!(ok.len(), 1, "{} / {}", a.text, b.text);
    let loser = if a.status == 200 { &b } else { &a };
    loser.assert_problem(401, "TOKEN", "sign in again");
    // Had both redeemed the token, the IdP would have revoked the chain (reuse): it did not.
    let winner = new_jwt(ok[0]);
    new_jwt(&refresh(&agent, &winner).await);
}

#[tokio::test]
async fn sessions_without_a_refresh_grant_and_forged_tokens_are_refused() {
    let (agent, _op) = setup(|_| {}).await;
    // A password session (minted directly, as the token exchange's) has nothing to renew.
    refresh(&agent, &agent.admin_token())
        .await
        .assert_problem(401, "TOKEN", "cannot be renewed");
    // Garbage, and a JWT with the right shape signed by another key.
    refresh(&agent, "not-a-token")
        .await
        .assert_problem(401, "TOKEN", "malformed");
    let browser = Browser::new();
    let (jwt, _) = sign_in(&agent, &browser, json!({})).await;
    let other = amove_agent::auth::session::SessionKeys::ephemeral().unwrap();
    let claims = agent.state.auth.verify_session(&jwt).unwrap();
    let (forged, _) = other.mint(claims, agent.clock.now(), 3600).unwrap();
    refresh(&agent, &forged)
        .await
        .assert_problem(401, "TOKEN", "invalid");
    // No token at all.
    let a = agent
        .send(agent.http.post(format!("{}/sso/refresh", agent.base)))
        .await;
    assert_eq!(a.status, 401, "{}", a.text);
    // None of it touched the real session's grant.
    assert!(stored_refresh_token(&agent).is_some());
    new_jwt(&refresh(&agent, &jwt).await);
}

#[tokio::test]
async fn logout_ends_the_idp_session_and_comes_back_to_the_signed_out_page() {
    let (agent, op) = setup(|_| {}).await;
    let browser = Browser::new();
    let (jwt, _) = sign_in(&agent, &browser, json!({})).await;
    let a = agent
        .send(
            agent
                .http
                .post(format!("{}/sso/logout", agent.base))
                .bearer_auth(&jwt),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let logout = a.json()["LogoutUrl"].as_str().unwrap().to_string();
    assert!(
        logout.starts_with(&format!("{}/session/end?", op.origin)),
        "{logout}"
    );
    let signed_out = format!("http://localhost:{}/sso/signed_out", agent.port);
    assert_eq!(
        param(&logout, "post_logout_redirect_uri").as_deref(),
        Some(signed_out.as_str())
    );
    assert_eq!(param(&logout, "client_id").as_deref(), Some(CLIENT_ID));
    assert!(param(&logout, "id_token_hint").is_some());
    let state = param(&logout, "state").unwrap();
    // The session is over here at once, and cannot be renewed.
    agent
        .get("/sso/whoami", Some(&jwt))
        .await
        .assert_problem(401, "TOKEN", "revoked");
    refresh(&agent, &jwt)
        .await
        .assert_problem(401, "TOKEN", "revoked");

    // The browser follows it: the OP asks to confirm, ends its session, and sends the browser
    // to the agent's signed-out page with the state.
    let back = follow_logout(&browser, &logout, &signed_out).await;
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    let page = browser.http.get(&back).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("You are signed out"));
    // Single use, and a made-up state is refused.
    let again = browser.http.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 400);
    let forged = browser
        .http
        .get(format!("{signed_out}?state=made-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(forged.text().await.unwrap().contains("unknown"));

    // The OP's session is gone: the next sign-in shows its login form again.
    let a = agent.sso_url(ALICE, &agent.own_callback()).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();
    assert!(shows_login_form(&browser, &url).await);
}

#[tokio::test]
async fn force_authn_asks_the_provider_to_sign_in_again() {
    let (agent, _op) = setup(|_| {}).await;
    let browser = Browser::new();
    sign_in(&agent, &browser, json!({})).await;
    // Without ForceAuthn the OP's session signs Alice in silently.
    let a = agent.sso_url(ALICE, &agent.own_callback()).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();
    assert_eq!(param(&url, "prompt"), None);
    assert!(!shows_login_form(&browser, &url).await);
    // With it the request says prompt=login and the OP shows its form again.
    let a = agent
        .post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": ALICE, "CallbackUrl": agent.own_callback(), "ForceAuthn": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    assert_eq!(param(&url, "prompt").as_deref(), Some("login"));
    assert!(shows_login_form(&browser, &url).await);
    // ForceAuthn must be a boolean.
    agent
        .post_json(
            "/sso/sso_url",
            None,
            &json!({"Username": ALICE, "CallbackUrl": agent.own_callback(), "ForceAuthn": "yes"}),
        )
        .await
        .assert_problem(499, "DEFAULT", "ForceAuthn");
}

/// Follows the OP's RP-initiated logout: its confirmation form posted ("Yes, sign me out"),
/// until the redirect to `stop_at`, whose URL it returns.
async fn follow_logout(browser: &Browser, start: &str, stop_at: &str) -> String {
    browser
        .walk(start, stop_at, |_, html| {
            let xsrf = html
                .split("name=\"xsrf\" value=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_default()
                .to_string();
            vec![("xsrf", xsrf), ("logout", "yes".to_string())]
        })
        .await
}

/// Whether following `url` from the browser's cookies ends at the OP's login form (rather
/// than straight back at the callback).
async fn shows_login_form(browser: &Browser, url: &str) -> bool {
    let mut url = url::Url::parse(url).unwrap();
    for _ in 0..8 {
        let resp = browser.http.get(url.clone()).send().await.unwrap();
        if resp.status().is_redirection() {
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let next = url.join(&loc).unwrap();
            if next.path() == "/sso/callback" {
                return false;
            }
            url = next;
            continue;
        }
        return resp.text().await.unwrap().contains("id=\"login-form\"");
    }
    panic!("too many hops");
}

// ------------------------------------------------------------------------------------------
// With the fake provider: ID tokens of a refresh the test crafts.

mod crafted {
    use amove_agent::clock::Clock;
    use serde_json::{Value, json};

    use super::{new_jwt, refresh, stored_refresh_token};
    use crate::fake_oidc::{
        FAKE_ACCESS_TOKEN, FakeIdp, TestAgent, TestKey, TokenReply, at_hash, param,
    };

    const CLIENT_ID: &str = "amove-crafted-client";
    const CB: &str = "http://127.0.0.1:53682/cb";
    const ANN: &str = "ann@acme.test";

    fn claims(idp: &FakeIdp, now: i64, sub: &str, nonce: Option<&str>) -> Value {
        let mut c = json!({"iss": idp.issuer(), "aud": CLIENT_ID, "sub": sub, "email": ANN,
            "email_verified": true, "iat": now, "exp": now + 300,
            "at_hash": at_hash(FAKE_ACCESS_TOKEN)});
        if let Some(n) = nonce {
            c["nonce"] = json!(n);
        }
        c
    }

    fn answer(id_token: &str, refresh_token: &str) -> TokenReply {
        TokenReply::Raw(
            200,
            json!({"access_token": FAKE_ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300,
                   "id_token": id_token, "refresh_token": refresh_token})
            .to_string(),
        )
    }

    /// Ann signed in through the fake provider, which gave refresh token `rt-1`.
    async fn signed_in() -> (TestAgent, FakeIdp, String) {
        let idp = FakeIdp::start("", None).await;
        let agent = TestAgent::start(|_| {}).await;
        agent.add_user(ANN, "Ann Example");
        agent
            .setup_oidc(
                "okta",
                CLIENT_ID,
                "crafted-secret-value-1",
                &idp.openid_url(),
            )
            .await;
        let a = agent.sso_url(ANN, CB).await;
        let url = a.json()["Url"].as_str().unwrap().to_string();
        let nonce = param(&url, "nonce").unwrap();
        let c = claims(&idp, agent.clock.now(), "00u-ann", Some(&nonce));
        idp.reply(answer(&TestKey::a().sign(&c), "rt-1"));
        let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
        let jwt = new_jwt(&agent.authenticate(&identifier, "code-1", CB).await);
        (agent, idp, jwt)
    }

    #[tokio::test]
    async fn a_refresh_authenticates_as_the_code_exchange_and_needs_no_nonce() {
        let (agent, idp, jwt) = signed_in().await;
        let c = claims(&idp, agent.clock.now(), "00u-ann", None);
        idp.reply(answer(&TestKey::a().sign(&c), "rt-2"));
        new_jwt(&refresh(&agent, &jwt).await);
        let (form, auth) = idp.last_token_request().unwrap();
        assert_eq!(
            form.get("grant_type").map(String::as_str),
            Some("refresh_token")
        );
        assert_eq!(form.get("refresh_token").map(String::as_str), Some("rt-1"));
        assert!(
            auth.is_some_and(|h| h.starts_with("Basic ")),
            "client_secret_basic"
        );
    }

    #[tokio::test]
    async fn a_refreshed_id_token_of_another_subject_or_signer_ends_renewals() {
        for (key, sub, why) in [
            (TestKey::a(), "00u-mallory", "another user"),
            (TestKey::attacker(), "00u-ann", "signature"),
        ] {
            let (agent, idp, jwt) = signed_in().await;
            let c = claims(&idp, agent.clock.now(), sub, None);
            idp.reply(answer(&key.sign(&c), "rt-2"));
            refresh(&agent, &jwt)
                .await
                .assert_problem(401, "TOKEN", why);
            assert_eq!(stored_refresh_token(&agent), None, "{why}");
        }
    }

    #[tokio::test]
    async fn an_idp_that_cannot_answer_keeps_the_refresh_token_for_later() {
        let (agent, idp, jwt) = signed_in().await;
        idp.reply(TokenReply::Raw(503, "unavailable".into()));
        refresh(&agent, &jwt)
            .await
            .assert_problem(499, "SSO", "token endpoint");
        assert!(stored_refresh_token(&agent).is_some());
        // The IdP's refusal, in contrast, ends renewals.
        idp.reply(TokenReply::Raw(
            400,
            json!({"error": "invalid_grant", "error_description": "expired"}).to_string(),
        ));
        refresh(&agent, &jwt)
            .await
            .assert_problem(401, "TOKEN", "invalid_grant (expired)");
        assert_eq!(stored_refresh_token(&agent), None);
    }
}
