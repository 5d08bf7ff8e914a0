//! Group memberships from sign-in: Okta's `groups` claim (names) through the real OpenID
//! Provider and with crafted tokens, Entra ID's groups ids and its overage marker resolved
//! through the Microsoft Graph double, and SAML group attributes (configured or default)
//! from the real SimpleSAMLphp IdP and crafted assertions.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::directory::{directory_of, serve};
use crate::fake_oidc::{
    Browser, FAKE_ACCESS_TOKEN, FakeIdp, RealOp, TestAgent, TestKey, TokenReply, at_hash,
    op_client, param,
};

const CLIENT_ID: &str = "amove-groups-client";
const CB: &str = "http://127.0.0.1:53682/cb";
const ANN: &str = "ann@acme.test";

async fn whoami_groups(agent: &TestAgent, jwt: &str) -> Vec<String> {
    let a = agent.get("/sso/whoami", Some(jwt)).await;
    assert_eq!(a.status, 200, "whoami: {}", a.text);
    serde_json::from_value(a.json()["Groups"].clone()).unwrap()
}

#[track_caller]
fn jwt_of(a: &crate::common::Answer) -> String {
    assert_eq!(a.status, 200, "authenticate: {}", a.text);
    a.json().as_str().unwrap().to_string()
}

/// The newest sign-in event's detail.
fn last_sign_in(agent: &TestAgent) -> String {
    agent
        .audit()
        .into_iter()
        .find(|(action, outcome, _)| action == "signin" && outcome == "ok")
        .map(|(_, _, d)| d)
        .unwrap_or_default()
}

/// Signs Ann in at `idp` with the claims of `claims(nonce)`.
async fn sign_in(agent: &TestAgent, idp: &FakeIdp, claims: impl Fn(&str) -> Value) -> String {
    let a = agent.sso_url(ANN, CB).await;
    assert_eq!(a.status, 200, "sso_url: {}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let c = claims(&param(&url, "nonce").unwrap());
    idp.reply(TokenReply::IdToken(TestKey::a().sign(&c)));
    jwt_of(&agent.authenticate(&identifier, "code-123", CB).await)
}

fn okta_claims(idp: &FakeIdp, nonce: &str, extra: Value) -> Value {
    // The fake IdP's own wall clock.
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut c = json!({
        "iss": idp.issuer(), "aud": CLIENT_ID, "sub": "00u-ann", "email": ANN,
        "email_verified": true, "iat": now, "exp": now + 300, "nonce": nonce,
        "at_hash": at_hash(FAKE_ACCESS_TOKEN),
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

fn entra_claims(idp: &FakeIdp, nonce: &str, extra: Value) -> Value {
    let mut c = okta_claims(idp, nonce, extra);
    c["oid"] = json!("00u1");
    c["tid"] = json!("tenant-1");
    // Entra's email claim is unverified; the UPN is the first link's key.
    c["preferred_username"] = json!(ANN);
    c
}

/// An agent whose account has Ann and an active Okta configuration at a fake OP.
async fn okta() -> (TestAgent, FakeIdp) {
    let idp = FakeIdp::start("", None).await;
    let agent = TestAgent::start(|_| {}).await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc("okta", CLIENT_ID, "okta-secret", &idp.openid_url())
        .await;
    (agent, idp)
}

#[tokio::test]
async fn okta_groups_claim_names_become_memberships_and_follow_the_idp() {
    let (agent, idp) = okta().await;
    let jwt = sign_in(&agent, &idp, |n| {
        okta_claims(&idp, n, json!({"groups": ["eng", "ops", "eng"]}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["eng", "ops"]);
    assert!(
        last_sign_in(&agent).contains("groups: +eng, +ops"),
        "{:?}",
        agent.audit()
    );
    // Removed from eng at the IdP: the next sign-in removes it here.
    let jwt = sign_in(&agent, &idp, |n| {
        okta_claims(&idp, n, json!({"groups": ["ops"]}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["ops"]);
    assert!(last_sign_in(&agent).contains("groups: -eng"));
    // A token without the claim says nothing about groups: memberships stay.
    let jwt = sign_in(&agent, &idp, |n| okta_claims(&idp, n, json!({}))).await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["ops"]);
    assert!(!last_sign_in(&agent).contains("groups:"));
    // An empty list does: the user is in no IdP group any more.
    let jwt = sign_in(&agent, &idp, |n| {
        okta_claims(&idp, n, json!({"groups": []}))
    })
    .await;
    assert!(whoami_groups(&agent, &jwt).await.is_empty());
}

#[tokio::test]
async fn a_malformed_groups_claim_refuses_the_sign_in_and_changes_nothing() {
    let (agent, idp) = okta().await;
    let jwt = sign_in(&agent, &idp, |n| {
        okta_claims(&idp, n, json!({"groups": ["eng"]}))
    })
    .await;
    for bad in [json!({"groups": 42}), json!({"groups": ["ok", {"x": 1}]})] {
        let a = agent.sso_url(ANN, CB).await;
        let url = a.json()["Url"].as_str().unwrap().to_string();
        let c = okta_claims(&idp, &param(&url, "nonce").unwrap(), bad);
        idp.reply(TokenReply::IdToken(TestKey::a().sign(&c)));
        agent
            .authenticate(a.json()["Identifier"].as_str().unwrap(), "code-123", CB)
            .await
            .assert_problem(499, "SSO", "groups claim");
    }
    assert_eq!(whoami_groups(&agent, &jwt).await, ["eng"]);
}

/// An agent whose account has Ann and an active Entra ID configuration at a fake OP, with
/// Graph served by the directory double where Ann (`00u1`) is in eng and ops.
async fn entra(graph_token: &str) -> (TestAgent, FakeIdp, crate::directory::S) {
    let idp = FakeIdp::start("/tenant-1/v2.0", None).await;
    let agent = TestAgent::start(|s| s.loopback_graph = true).await;
    agent.add_user(ANN, "Ann Example");
    let mut dir = directory_of(3, &[("eng", &[1]), ("ops", &[1, 2]), ("hr", &[2])], None);
    dir.token = graph_token.to_string();
    dir.me = "00u1".into();
    let (dir, graph) = serve(dir).await;
    let r = agent
        .post_json(
            "/sso/setup_entraId",
            Some(&agent.admin_token()),
            &json!({"ClientId": CLIENT_ID, "ClientSecret": "entra-secret", "OpenIdURL": idp.openid_url(),
                    "GraphURL": graph.as_str(), "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (agent, idp, dir)
}

#[tokio::test]
async fn entra_overage_reads_the_groups_from_graph_never_from_claim_sources() {
    let (agent, idp, dir) = entra(FAKE_ACCESS_TOKEN).await;
    // `_claim_sources` points somewhere else: it must not be called (it would get the token).
    let mut elsewhere = directory_of(0, &[], None);
    elsewhere.token = FAKE_ACCESS_TOKEN.into();
    let (elsewhere, other) = serve(elsewhere).await;
    let jwt = sign_in(&agent, &idp, |n| {
        entra_claims(
            &idp,
            n,
            json!({"_claim_names": {"groups": "src1"},
                   "_claim_sources": {"src1": {"endpoint": format!("{other}v1.0/me/transitiveMemberOf/microsoft.graph.group")}}}),
        )
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["eng", "ops"]);
    assert!(dir.requests.load(Ordering::SeqCst) >= 1);
    assert_eq!(elsewhere.requests.load(Ordering::SeqCst), 0);
    assert!(last_sign_in(&agent).contains("groups: +eng, +ops"));
    // `hasgroups` (the implicit flow's marker) is an overage too.
    let jwt = sign_in(&agent, &idp, |n| {
        entra_claims(&idp, n, json!({"hasgroups": true}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["eng", "ops"]);
}

#[tokio::test]
async fn entra_overage_with_graph_refusing_signs_in_and_keeps_the_memberships() {
    let (agent, idp, _dir) = entra("a-token-the-agent-does-not-have").await;
    // A group id the account does not know is named through Graph, which refuses: the
    // sign-in goes on and the group is kept under its id until an import names it.
    let jwt = sign_in(&agent, &idp, |n| {
        entra_claims(&idp, n, json!({"groups": ["00g-eng"]}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["00g-eng"]);
    assert!(
        last_sign_in(&agent)
            .contains("group names could not be read: Microsoft Graph answered 401"),
        "{}",
        last_sign_in(&agent)
    );
    let jwt = sign_in(&agent, &idp, |n| {
        entra_claims(&idp, n, json!({"_claim_names": {"groups": "src1"}}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["00g-eng"]);
    let detail = last_sign_in(&agent);
    assert!(detail.contains("group memberships not updated"), "{detail}");
    assert!(
        detail.contains("InvalidAuthenticationToken") || detail.contains("401"),
        "{detail}"
    );
    assert!(!detail.contains(FAKE_ACCESS_TOKEN));
}

#[tokio::test]
async fn entra_group_ids_are_named_through_graph_once() {
    let (agent, idp, dir) = entra(FAKE_ACCESS_TOKEN).await;
    let jwt = sign_in(&agent, &idp, |n| {
        entra_claims(&idp, n, json!({"groups": ["00g-eng", "00g-ops"]}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["eng", "ops"]);
    let calls = dir.requests.load(Ordering::SeqCst);
    assert!(calls >= 1);
    // Known ids need no Graph call.
    let jwt = sign_in(&agent, &idp, |n| {
        entra_claims(&idp, n, json!({"groups": ["00g-ops"]}))
    })
    .await;
    assert_eq!(whoami_groups(&agent, &jwt).await, ["ops"]);
    assert_eq!(dir.requests.load(Ordering::SeqCst), calls);
}

/// AdminGroups for Entra ID count the object ids the token carries, never the display names
/// Graph gives them: Entra group names are not unique, and users can create groups.
#[tokio::test]
async fn entra_admin_groups_match_object_ids_never_display_names() {
    async fn role_with(agent: &TestAgent, idp: &FakeIdp, admin_groups: Value) -> Value {
        let r = agent
            .put_json(
                "/sso/signin_settings",
                Some(&agent.admin_token()),
                &json!({ "AdminGroups": admin_groups }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let jwt = sign_in(agent, idp, |n| {
            entra_claims(idp, n, json!({"groups": ["00g-ops"]}))
        })
        .await;
        assert_eq!(
            whoami_groups(agent, &jwt).await,
            ["ops"],
            "named through Graph"
        );
        agent.get("/sso/whoami", Some(&jwt)).await.json()["Role"].clone()
    }
    let (agent, idp, _dir) = entra(FAKE_ACCESS_TOKEN).await;
    assert_eq!(
        role_with(&agent, &idp, json!(["ops"])).await,
        "user",
        "a display name grants nothing"
    );
    assert_eq!(
        role_with(&agent, &idp, json!(["00G-OPS"])).await,
        "admin",
        "the object id (in any case) does"
    );
}

#[tokio::test]
async fn okta_groups_claim_from_the_real_openid_provider() {
    let agent = TestAgent::start(|_| {}).await;
    let cb = agent.own_callback();
    let op = RealOp::start(&json!({
        "clients": [op_client(CLIENT_ID, "real-secret", "client_secret_basic", &[&cb])],
        "users": [{"accountId": "00u-ann", "email": ANN, "email_verified": true,
                   "password": "ann-password", "groups": ["Everyone", "Engineering"]}],
        "pkceRequired": true,
    }))
    .await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc("okta", CLIENT_ID, "real-secret", &op.openid_url())
        .await;
    let a = agent.sso_url(ANN, &cb).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let back = Browser::new().login(&url, ANN, "ann-password", &cb).await;
    let code = param(&back, "code").unwrap();
    let jwt = jwt_of(
        &agent
            .authenticate(a.json()["Identifier"].as_str().unwrap(), &code, &cb)
            .await,
    );
    assert_eq!(
        whoami_groups(&agent, &jwt).await,
        ["Engineering", "Everyone"]
    );
}

/// Entra ID's overage through the real OpenID Provider: its ID token carries
/// `_claim_names.groups` (and no groups), and the groups come from the provider's Graph, which
/// accepts only the access token that provider issued for this sign-in.
#[tokio::test]
async fn entra_overage_from_the_real_openid_provider_is_read_from_its_graph() {
    let tenant = "22222222-2222-2222-2222-222222222222";
    let oid = "00000000-0000-0000-0000-0000000000b2";
    let agent = TestAgent::start(|s| s.loopback_graph = true).await;
    let cb = agent.own_callback();
    let op = RealOp::start(&json!({
        "issuerPath": format!("/{tenant}/v2.0"),
        "clients": [op_client(CLIENT_ID, "real-secret", "client_secret_post", &[&cb])],
        "users": [{"accountId": oid, "oid": oid, "tid": tenant, "email": ANN,
                   "password": "ann-password", "groups": ["engineering", "ops"],
                   "_claim_names": {"groups": "src1"}}],
        // The groups live in the directory only: the ID token carries the overage marker.
        "claims": {"openid": ["sub", "oid", "tid", "_claim_names"]},
        "directory": {"groups": [{"id": "g-eng", "name": "engineering"},
                                 {"id": "g-ops", "name": "ops"}], "pageSize": 1},
    }))
    .await;
    agent.add_user(ANN, "Ann Example");
    let r = agent
        .post_json(
            "/sso/setup_entraId",
            Some(&agent.admin_token()),
            &json!({"ClientId": CLIENT_ID, "ClientSecret": "real-secret",
                    "OpenIdURL": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", op.origin),
                    "GraphURL": format!("{}/graph", op.origin), "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = agent.sso_url(ANN, &cb).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let back = Browser::new().login(&url, ANN, "ann-password", &cb).await;
    let jwt = jwt_of(
        &agent
            .authenticate(
                a.json()["Identifier"].as_str().unwrap(),
                &param(&back, "code").unwrap(),
                &cb,
            )
            .await,
    );
    assert_eq!(whoami_groups(&agent, &jwt).await, ["engineering", "ops"]);
    let external: Vec<String> = agent
        .state
        .db
        .read_blocking(|c| {
            let mut st = c.prepare("SELECT external_id FROM groups ORDER BY external_id")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .unwrap();
    assert_eq!(external, ["g-eng", "g-ops"], "the Graph ids, from Graph");
    let log: Value = reqwest::get(format!("{}/_idp/directory-log", op.origin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(
        paths
            .iter()
            .filter(|p| p.contains("/me/transitiveMemberOf"))
            .count()
            >= 2,
        "every page of the user's groups: {log}"
    );
}
