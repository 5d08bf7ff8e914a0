//! Who may get in (issue 18): AutoProvision by verified domain through the real OpenID Provider
//! and with crafted ID tokens (exact domains only, never a deactivated user's place), AdminGroups
//! granting and taking back the admin role (never the owner's, never a hand-made admin's), and
//! rights checked per request: a demoted admin's or a deactivated user's existing credentials
//! stop granting the old rights at once.

use serde_json::{Value, json};

use crate::common::{ADMIN_PASSWORD, Agent, Answer, USER_PASSWORD, add_user, user_cli};
use crate::fake_oidc::{
    FAKE_ACCESS_TOKEN, FakeIdp, RealOp, TestAgent, TestKey, TokenReply, at_hash, op_client, param,
};
use amove_agent::bootstrap;
use amove_agent::clock::Clock;
use amove_agent::secret::Secret;
use amove_agent::store::users::Status;

const CLIENT_ID: &str = "amove-access-client";
const CB: &str = "http://127.0.0.1:53682/cb";
const SETTINGS: &str = "/sso/signin_settings";

async fn put_settings(agent: &TestAgent, body: Value) -> Answer {
    agent
        .put_json(SETTINGS, Some(&agent.admin_token()), &body)
        .await
}

/// The role of the user `email` as stored (`None`: no such user).
fn role_of(agent: &TestAgent, email: &str) -> Option<String> {
    let email = email.to_string();
    agent
        .state
        .db
        .read_blocking(move |c| {
            Ok(
                amove_agent::store::users::by_email(c, &email)?
                    .map(|u| u.role.as_str().to_string()),
            )
        })
        .unwrap()
}

fn user_count(agent: &TestAgent) -> usize {
    agent
        .select("SELECT email FROM users", |r| r.get::<_, String>(0))
        .len()
}

/// Audit details of `action`, newest first.
fn audited(agent: &TestAgent, action: &str) -> Vec<String> {
    agent
        .audit()
        .into_iter()
        .filter(|(a, outcome, _)| a == action && outcome == "ok")
        .map(|(_, _, d)| d)
        .collect()
}

#[track_caller]
fn jwt_of(a: &Answer) -> String {
    assert_eq!(a.status, 200, "authenticate: {}", a.text);
    a.json().as_str().unwrap().to_string()
}

/// Okta-shaped claims for subject `sub` with `extra`, at the fake IdP.
fn okta_claims(idp: &FakeIdp, nonce: &str, sub: &str, extra: Value) -> Value {
    // The fake IdP's own wall clock.
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut c = json!({
        "iss": idp.issuer(), "aud": CLIENT_ID, "sub": sub, "iat": now, "exp": now + 300,
        "nonce": nonce, "at_hash": at_hash(FAKE_ACCESS_TOKEN),
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

/// Starts a sign-in typed as `typed` and completes it with the crafted `claims`.
async fn fake_sign_in(
    agent: &TestAgent,
    idp: &FakeIdp,
    typed: &str,
    sub: &str,
    claims: Value,
) -> Answer {
    let a = agent.sso_url(typed, CB).await;
    assert_eq!(a.status, 200, "sso_url {typed}: {}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let c = okta_claims(idp, &param(&url, "nonce").unwrap(), sub, claims);
    idp.reply(TokenReply::IdToken(TestKey::a().sign(&c)));
    agent
        .authenticate(a.json()["Identifier"].as_str().unwrap(), "code-123", CB)
        .await
}

/// An agent whose account `acme` has an active Okta configuration at a fake OP.
async fn okta_fake() -> (TestAgent, FakeIdp) {
    let idp = FakeIdp::start("", None).await;
    let agent = TestAgent::start(|_| {}).await;
    agent
        .setup_oidc("okta", CLIENT_ID, "okta-secret", &idp.openid_url())
        .await;
    (agent, idp)
}

async fn real_op(agent: &TestAgent, users: Value, port: u16) -> RealOp {
    let cb = agent.own_callback();
    RealOp::start_on(
        &json!({
            "clients": [op_client(CLIENT_ID, "real-secret", "client_secret_basic", &[&cb])],
            "users": users,
            "pkceRequired": true,
        }),
        port,
    )
    .await
}

async fn setup_real_okta(agent: &TestAgent, op: &RealOp) {
    agent
        .setup_oidc("okta", CLIENT_ID, "real-secret", &op.openid_url())
        .await;
}

#[tokio::test]
async fn autoprovision_creates_verified_users_of_a_listed_domain_at_the_real_openid_provider() {
    let agent = TestAgent::start(|_| {}).await;
    let op = real_op(
        &agent,
        json!([
            {"accountId": "00u-new", "email": "new@acme.test", "email_verified": true,
             "password": "new-password"},
            {"accountId": "00u-unv", "email": "unverified@acme.test", "email_verified": false,
             "password": "unv-password"},
            {"accountId": "00u-str", "email": "stranger@other.test", "email_verified": true,
             "password": "str-password"},
        ]),
        0,
    )
    .await;
    setup_real_okta(&agent, &op).await;

    // Off (the default): an unknown username is not even routed to the account.
    agent
        .sso_url("new@acme.test", &agent.own_callback())
        .await
        .assert_problem(499, "NOT_FOUND", "there is no user new@acme.test");
    let s = put_settings(
        &agent,
        json!({"AutoProvision": true, "AutoProvisionDomains": ["ACME.test"]}),
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.json()["AutoProvisionDomains"], json!(["acme.test"]));
    assert_eq!(s.json()["SessionLifetimeDays"], 30);
    assert_eq!(
        audited(&agent, "signin_settings.update")[0],
        "AutoProvision=true, AutoProvisionDomains: acme.test, AdminGroups: none, \
         SessionLifetimeDays=30"
    );

    let before = user_count(&agent);
    let jwt = jwt_of(
        &agent
            .sign_in_at("new@acme.test", "new@acme.test", "new-password")
            .await,
    );
    let me = agent.get("/sso/whoami", Some(&jwt)).await.json();
    assert_eq!(
        (me["Username"].as_str(), me["Role"].as_str()),
        (Some("new@acme.test"), Some("user"))
    );
    assert_eq!(user_count(&agent), before + 1);
    let created = audited(&agent, "user.autoprovision");
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].contains("standard user") && created[0].contains("acme.test"));
    // The next sign-in goes through the link: nobody is created again.
    jwt_of(
        &agent
            .sign_in_at("new@acme.test", "new@acme.test", "new-password")
            .await,
    );
    assert_eq!(audited(&agent, "user.autoprovision").len(), 1);

    // An email the IdP does not call verified creates nobody.
    agent
        .sign_in_at(
            "unverified@acme.test",
            "unverified@acme.test",
            "unv-password",
        )
        .await
        .assert_problem(401, "AUTH", "did not provide a verified email address");
    // Nor does a verified email of another domain, whatever username was typed.
    agent
        .sign_in_at("someone@acme.test", "stranger@other.test", "str-password")
        .await
        .assert_problem(
            401,
            "AUTH",
            "not one the account adds users of automatically",
        );
    assert_eq!(user_count(&agent), before + 1);
    assert_eq!(role_of(&agent, "unverified@acme.test"), None);
    assert_eq!(role_of(&agent, "stranger@other.test"), None);

    // Off again: unknown users are refused at once.
    assert_eq!(
        put_settings(&agent, json!({"AutoProvision": false}))
            .await
            .status,
        200
    );
    agent
        .sso_url("other@acme.test", &agent.own_callback())
        .await
        .assert_problem(499, "NOT_FOUND", "there is no user");
}

#[tokio::test]
async fn autoprovision_takes_the_exact_domain_only() {
    let (agent, idp) = okta_fake().await;
    let s = put_settings(&agent, json!({"AutoProvisionDomains": ["acme.test"]})).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.json()["AutoProvision"], false);
    let before = user_count(&agent);
    // Listed but off: a sign-in routed through a known username creates nobody.
    fake_sign_in(
        &agent,
        &idp,
        "admin@acme.test",
        "00u-new",
        json!({"email": "new@acme.test", "email_verified": true}),
    )
    .await
    .assert_problem(401, "AUTH", "not a user of this account; ask an admin");
    assert_eq!(
        put_settings(&agent, json!({"AutoProvision": true}))
            .await
            .status,
        200
    );
    for (i, email) in [
        "ann@evil-acme.test",
        "ann@acme.test.evil.test",
        "ann@sub.acme.test",
        "ann@acme.test.",
        // "acme" with a Cyrillic а: its own xn-- name.
        "ann@\u{0430}cme.test",
        "ann@acme.test@evil.test",
        // Verified, listed domain, but no username: a quote, a space.
        "\"ann\"@acme.test",
        "ann lee@acme.test",
    ]
    .iter()
    .enumerate()
    {
        let a = fake_sign_in(
            &agent,
            &idp,
            "someone@acme.test",
            &format!("00u-trick-{i}"),
            json!({"email": email, "email_verified": true}),
        )
        .await;
        assert_eq!(a.status, 401, "{email}: {}", a.text);
        assert_eq!(a.json()["type"], "AUTH", "{email}: {}", a.text);
    }
    assert_eq!(user_count(&agent), before, "nobody created");
    // Domains are case-insensitive: the username is the lower-case email.
    let a = fake_sign_in(
        &agent,
        &idp,
        "someone@acme.test",
        "00u-ann",
        json!({"email": "Ann@ACME.Test", "email_verified": true}),
    )
    .await;
    jwt_of(&a);
    assert_eq!(role_of(&agent, "ann@acme.test").as_deref(), Some("user"));
}

#[tokio::test]
async fn autoprovision_never_takes_a_deactivated_users_place_or_another_accounts_user() {
    let (agent, idp) = okta_fake().await;
    assert_eq!(
        put_settings(
            &agent,
            json!({"AutoProvision": true, "AutoProvisionDomains": ["acme.test"]})
        )
        .await
        .status,
        200
    );
    agent.add_user("ivy@acme.test", "Ivy Inactive");
    bootstrap::set_user_status(
        &agent.state.db,
        "acme",
        "ivy@acme.test",
        Status::Inactive,
        agent.clock.now(),
    )
    .unwrap();
    bootstrap::init_account(
        &agent.state.db,
        "beta",
        None,
        "owner@beta.test",
        None,
        &Secret::new(ADMIN_PASSWORD),
        agent.clock.now(),
    )
    .unwrap();
    bootstrap::add_user(
        &agent.state.db,
        "beta",
        "bob@acme.test",
        false,
        None,
        None,
        agent.clock.now(),
    )
    .unwrap();
    let before = user_count(&agent);
    fake_sign_in(
        &agent,
        &idp,
        "ivy@acme.test",
        "00u-ivy",
        json!({"email": "ivy@acme.test", "email_verified": true}),
    )
    .await
    .assert_problem(401, "AUTH", "inactive");
    fake_sign_in(
        &agent,
        &idp,
        "someone@acme.test",
        "00u-bob",
        json!({"email": "bob@acme.test", "email_verified": true}),
    )
    .await
    .assert_problem(401, "AUTH", "not a user of this account");
    assert_eq!(user_count(&agent), before);
    assert!(audited(&agent, "user.autoprovision").is_empty());
}

#[tokio::test]
async fn admin_groups_grant_and_revoke_at_the_real_openid_provider_and_old_credentials_follow() {
    let agent = TestAgent::start(|_| {}).await;
    let bob = |groups: Value| {
        json!([{"accountId": "00u-bob", "email": "bob@acme.test", "email_verified": true,
                "password": "bob-password", "groups": groups}])
    };
    let op = real_op(&agent, bob(json!(["Everyone", "Amove Admins"])), 0).await;
    setup_real_okta(&agent, &op).await;
    agent.add_user("bob@acme.test", "Bob Builder");
    let s = put_settings(&agent, json!({"AdminGroups": ["amove admins"]})).await;
    assert_eq!(s.status, 200, "{}", s.text);

    let jwt = jwt_of(
        &agent
            .sign_in_at("bob@acme.test", "bob@acme.test", "bob-password")
            .await,
    );
    assert_eq!(role_of(&agent, "bob@acme.test").as_deref(), Some("admin"));
    assert!(
        audited(&agent, "user.role")[0].contains("admin: member of the AdminGroup 'amove admins'"),
        "{:?}",
        agent.audit()
    );
    let token = agent.session_token_grant(&jwt).await;
    for t in [&jwt, &token] {
        let a = agent.get(SETTINGS, Some(t)).await;
        assert_eq!(a.status, 200, "an admin now: {}", a.text);
    }

    // The IdP drops Bob from the group: the provider, started again on its port (same issuer),
    // now says so, and his next sign-in takes the role back.
    let port: u16 = op.origin.rsplit(':').next().unwrap().parse().unwrap();
    drop(op);
    let _op = real_op(&agent, bob(json!(["Everyone"])), port).await;
    let jwt2 = jwt_of(
        &agent
            .sign_in_at("bob@acme.test", "bob@acme.test", "bob-password")
            .await,
    );
    assert_eq!(role_of(&agent, "bob@acme.test").as_deref(), Some("user"));
    assert!(
        audited(&agent, "user.role")[0].contains("standard user: was admin by AdminGroups"),
        "{:?}",
        agent.audit()
    );
    // Every credential he holds — the new session, the session from when he was an admin, and
    // the access token issued then — is refused on an admin endpoint at once.
    for t in [&jwt2, &jwt, &token] {
        agent
            .get(SETTINGS, Some(t))
            .await
            .assert_problem(499, "ACCESS", "is a standard user");
        let me = agent.get("/sso/whoami", Some(t)).await;
        assert_eq!(me.json()["Role"], "user", "{}", me.text);
    }
}

#[tokio::test]
async fn admin_groups_leave_the_owner_and_hand_made_admins_alone() {
    let (agent, idp) = okta_fake().await;
    bootstrap::add_user(
        &agent.state.db,
        "acme",
        "hand@acme.test",
        true,
        None,
        None,
        agent.clock.now(),
    )
    .unwrap();
    agent.add_user("rule@acme.test", "Rule Made");
    let s = put_settings(&agent, json!({"AdminGroups": ["Amove Admins"]})).await;
    assert_eq!(s.status, 200, "{}", s.text);
    let sign_in = |email: &'static str, sub: &'static str, groups: Option<Value>| {
        let mut claims = json!({"email": email, "email_verified": true});
        if let Some(g) = groups {
            claims["groups"] = g;
        }
        fake_sign_in(&agent, &idp, email, sub, claims)
    };
    // In no AdminGroup, and not by the rule's doing: left as they are.
    jwt_of(&sign_in("admin@acme.test", "00u-owner", Some(json!(["Everyone"]))).await);
    jwt_of(&sign_in("hand@acme.test", "00u-hand", Some(json!([]))).await);
    assert_eq!(role_of(&agent, "admin@acme.test").as_deref(), Some("owner"));
    assert_eq!(role_of(&agent, "hand@acme.test").as_deref(), Some("admin"));
    // The rule's admin: a sign-in without a groups claim (Okta leaves an empty one out) shows
    // no AdminGroup, so the role goes.
    jwt_of(&sign_in("rule@acme.test", "00u-rule", Some(json!(["AMOVE ADMINS"]))).await);
    assert_eq!(role_of(&agent, "rule@acme.test").as_deref(), Some("admin"));
    jwt_of(&sign_in("rule@acme.test", "00u-rule", None).await);
    assert_eq!(role_of(&agent, "rule@acme.test").as_deref(), Some("user"));
    assert!(audited(&agent, "user.role")[0].contains("the sign-in carried no groups"));
    // A hand-made admin who is in the group stays one made by hand.
    jwt_of(&sign_in("hand@acme.test", "00u-hand", Some(json!(["Amove Admins"]))).await);
    jwt_of(&sign_in("hand@acme.test", "00u-hand", Some(json!([]))).await);
    assert_eq!(role_of(&agent, "hand@acme.test").as_deref(), Some("admin"));
}

#[tokio::test]
async fn a_deactivated_users_session_and_access_token_are_refused_at_once() {
    let a = Agent::with_account().await;
    add_user(&a.data_dir, "acme", "ivy@acme.test", false, true);
    let jwt = a.session_jwt("ivy@acme.test", USER_PASSWORD).await;
    let token = a.password_token("ivy@acme.test", USER_PASSWORD).await;
    // Both used once, so the agent has the user cached for each.
    for t in [&jwt, &token] {
        assert_eq!(a.get("/sso/whoami", Some(t)).await.status, 200);
    }
    let status = |verb: &str| user_cli(&a.data_dir, verb, "ivy@acme.test");
    // Deactivated by another process (the CLI), while the agent runs.
    status("disable");
    for t in [&jwt, &token] {
        a.get("/sso/whoami", Some(t))
            .await
            .assert_problem(401, "AUTH", "inactive");
    }
    status("enable");
    for t in [&jwt, &token] {
        assert_eq!(a.get("/sso/whoami", Some(t)).await.status, 200);
    }
}

#[tokio::test]
async fn an_admin_group_taken_off_the_list_takes_the_role_away_at_once() {
    let (agent, idp) = okta_fake().await;
    agent.add_user("one@acme.test", "One Group");
    agent.add_user("two@acme.test", "Two Groups");
    let s = put_settings(
        &agent,
        json!({"AdminGroups": ["Amove Admins", "Ops Admins"]}),
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.text);
    let one = jwt_of(
        &fake_sign_in(
            &agent,
            &idp,
            "one@acme.test",
            "00u-one",
            json!({"email": "one@acme.test", "email_verified": true, "groups": ["Amove Admins"]}),
        )
        .await,
    );
    let two = jwt_of(
        &fake_sign_in(
            &agent,
            &idp,
            "two@acme.test",
            "00u-two",
            json!({"email": "two@acme.test", "email_verified": true,
                   "groups": ["Amove Admins", "ops admins"]}),
        )
        .await,
    );
    for t in [&one, &two] {
        assert_eq!(agent.get(SETTINGS, Some(t)).await.status, 200);
    }
    // "Amove Admins" is taken off: One, in no other listed group, is a standard user at once —
    // before any new sign-in; Two is still in "Ops Admins".
    let s = put_settings(&agent, json!({"AdminGroups": ["Ops Admins"]})).await;
    assert_eq!(s.status, 200, "{}", s.text);
    agent
        .get(SETTINGS, Some(&one))
        .await
        .assert_problem(499, "ACCESS", "is a standard user");
    assert_eq!(agent.get(SETTINGS, Some(&two)).await.status, 200);
    assert_eq!(role_of(&agent, "one@acme.test").as_deref(), Some("user"));
    assert!(
        audited(&agent, "user.role")[0].contains("one@acme.test is now standard user"),
        "{:?}",
        agent.audit()
    );
    // The owner, who made the change, is untouched.
    assert_eq!(role_of(&agent, "admin@acme.test").as_deref(), Some("owner"));
}
