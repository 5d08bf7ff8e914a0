//! Importing users and groups: the import sign-in through an OpenID Provider (the fake one,
//! with crafted tokens), then the directory read from the Graph double.

use serde_json::{Value, json};

use crate::directory::{directory_of, serve};
use crate::fake_oidc::{
    FAKE_ACCESS_TOKEN, FakeIdp, TestAgent, TestKey, TokenReply, at_hash, param,
};

const CLIENT_ID: &str = "amove-import-client";
const CB: &str = "http://127.0.0.1:53682/import";

struct Fixture {
    agent: TestAgent,
    idp: FakeIdp,
    admin: String,
}

/// An agent whose account has an active Entra ID configuration at a fake OP (tenant path),
/// with Microsoft Graph served by the directory double.
async fn entra() -> Fixture {
    let idp = FakeIdp::start("/tenant-1/v2.0", None).await;
    let agent = TestAgent::start(|_| {}).await;
    let mut dir = directory_of(5, &[("eng", &[0, 1]), ("ops", &[1])], None);
    dir.token = FAKE_ACCESS_TOKEN.to_string();
    let (_, graph) = serve(dir).await;
    let admin = agent.admin_token();
    let r = agent
        .post_json(
            "/sso/setup_entraId",
            Some(&admin),
            &json!({"ClientId": CLIENT_ID, "ClientSecret": "import-secret", "OpenIdURL": idp.openid_url(),
                    "GraphURL": graph.as_str(), "Active": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    Fixture { agent, idp, admin }
}

impl Fixture {
    /// Starts an import and has the fake OP answer its code with a valid ID token.
    async fn begin(&self) -> Value {
        let r = self
            .agent
            .post_json(
                "/sso/sso_url_import_user",
                Some(&self.admin),
                &json!({"CallbackUrl": CB, "Username": ""}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let url = r.json()["Url"].as_str().unwrap().to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": self.idp.issuer(), "aud": CLIENT_ID, "sub": "pairwise-admin", "oid": "oid-admin",
            "tid": "tenant-1", "email": "admin@acme.test", "iat": now, "exp": now + 300,
            "nonce": param(&url, "nonce").unwrap(), "at_hash": at_hash(FAKE_ACCESS_TOKEN),
        });
        self.idp
            .reply(TokenReply::IdToken(TestKey::a().sign(&claims)));
        r.json()
    }

    async fn read(&self, token: &str, extra: &str) -> crate::common::Answer {
        let path = format!(
            "/sso/get_user_usergroups?authorizationCode=code-123&callbackUrl={}{extra}",
            urlencode(CB)
        );
        self.agent.get(&path, Some(token)).await
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn entra_import_reads_users_and_groups_through_graph() {
    let f = entra().await;
    let started = f.begin().await;
    let scope = param(started["Url"].as_str().unwrap(), "scope").unwrap();
    assert!(
        scope.contains("https://graph.microsoft.com/GroupMember.Read.All"),
        "{scope}"
    );
    assert!(
        scope.contains("https://graph.microsoft.com/User.Read.All"),
        "{scope}"
    );
    let r = f.read(&f.admin, "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(5));
    let user1 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["User"]["Email"] == "user1@corp.test")
        .unwrap();
    let names: Vec<&str> = user1["UserGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["Name"].as_str())
        .collect();
    assert_eq!(names, ["eng", "ops"]);
    assert_eq!(user1["User"]["ExternalId"], "00u1");
    // The code works once.
    f.read(&f.admin, "")
        .await
        .assert_problem(499, "NOT_FOUND", "no pending import");
}

#[tokio::test]
async fn the_identifier_may_name_the_import_and_is_single_use() {
    let f = entra().await;
    let started = f.begin().await;
    let id = format!(
        "&identifier={}",
        urlencode(started["Identifier"].as_str().unwrap())
    );
    assert_eq!(f.read(&f.admin, &id).await.status, 200);
    f.read(&f.admin, &id)
        .await
        .assert_problem(499, "SECURITY", "already completed");
}

#[tokio::test]
async fn another_callback_url_is_refused() {
    let f = entra().await;
    let started = f.begin().await;
    let id = format!(
        "&identifier={}",
        urlencode(started["Identifier"].as_str().unwrap())
    );
    let path = format!(
        "/sso/get_user_usergroups?authorizationCode=code-123&callbackUrl=http://127.0.0.1:1/x{id}"
    );
    f.agent.get(&path, Some(&f.admin)).await.assert_problem(
        499,
        "SECURITY",
        "callbackUrl is not the one",
    );
}

#[tokio::test]
async fn standard_users_cannot_import() {
    let f = entra().await;
    let user = f.agent.add_user("sam@acme.test", "Sam Standard");
    let (sam, _) = f
        .agent
        .state
        .auth
        .mint_session(&user, "acme", "entra")
        .unwrap();
    f.agent
        .post_json(
            "/sso/sso_url_import_user",
            Some(&sam),
            &json!({"CallbackUrl": CB}),
        )
        .await
        .assert_problem(499, "ACCESS", "requires an admin");
    f.read(&sam, "")
        .await
        .assert_problem(499, "ACCESS", "requires an admin");
}

#[tokio::test]
async fn missing_parameters_are_named() {
    let f = entra().await;
    f.agent
        .get("/sso/get_user_usergroups?callbackUrl=x", Some(&f.admin))
        .await
        .assert_problem(499, "DEFAULT", "authorizationCode is required");
    f.agent
        .get(
            "/sso/get_user_usergroups?authorizationCode=x",
            Some(&f.admin),
        )
        .await
        .assert_problem(499, "DEFAULT", "callbackUrl is required");
    f.agent
        .post_json(
            "/sso/sso_url_import_user",
            Some(&f.admin),
            &json!({"CallbackUrl": CB, "Username": "stranger@other.test"}),
        )
        .await
        .assert_problem(499, "ACCESS", "your own account");
}
