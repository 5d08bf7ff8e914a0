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

impl Fixture {
    /// Reads the directory and returns the Import-Id.
    async fn read_directory(&self) -> i64 {
        self.begin().await;
        let r = self.read(&self.admin, "").await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.headers["import-id"].to_str().unwrap().parse().unwrap()
    }

    async fn import(&self, body: Value) -> Value {
        let r = self
            .agent
            .post_json("/usergroup/import_users", Some(&self.admin), &body)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }
}

#[tokio::test]
async fn persisting_creates_users_groups_and_links_and_is_idempotent() {
    let f = entra().await;
    let id = f.read_directory().await;
    let out = f.import(json!({"ImportId": id})).await;
    assert_eq!(out["Created"].as_array().map(Vec::len), Some(5), "{out}");
    assert_eq!(out["Groups"], 2);
    let again = f.import(json!({"ImportId": id})).await;
    assert_eq!(
        again["Created"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );
    assert_eq!(again["Updated"].as_array().map(Vec::len), Some(5));
    let db = &f.agent.state.db;
    let (groups, memberships, links): (i64, i64, i64) = db
        .read(|c| {
            Ok((
                c.query_row("SELECT COUNT(*) FROM groups", [], |r| r.get(0))?,
                c.query_row("SELECT COUNT(*) FROM group_members", [], |r| r.get(0))?,
                c.query_row(
                    "SELECT COUNT(*) FROM user_idp_links WHERE subject LIKE 'tenant-1/00u%'",
                    [],
                    |r| r.get(0),
                )?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((groups, memberships, links), (2, 3, 5));
}

#[tokio::test]
async fn an_imported_user_signs_in_through_its_link_even_after_an_email_change() {
    let f = entra().await;
    let id = f.read_directory().await;
    f.import(json!({"ImportId": id})).await;
    let begun = f.agent.sso_url("user1@corp.test", CB).await.json();
    let url = begun["Url"].as_str().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": f.idp.issuer(), "aud": CLIENT_ID, "sub": "pairwise-u1", "oid": "00u1", "tid": "tenant-1",
        "email": "renamed@corp.test", "iat": now, "exp": now + 300,
        "nonce": param(url, "nonce").unwrap(), "at_hash": at_hash(FAKE_ACCESS_TOKEN),
    });
    f.idp.reply(TokenReply::IdToken(TestKey::a().sign(&claims)));
    let jwt = f
        .agent
        .authenticate(begun["Identifier"].as_str().unwrap(), "code-123", CB)
        .await;
    assert_eq!(jwt.status, 200, "{}", jwt.text);
    let me = f
        .agent
        .get("/sso/whoami", Some(jwt.json().as_str().unwrap()))
        .await
        .json();
    assert_eq!(me["Username"], "user1@corp.test");
}

#[tokio::test]
async fn users_gone_from_the_idp_are_reported_not_deleted() {
    let f = entra().await;
    let id = f.read_directory().await;
    f.import(json!({"ImportId": id})).await;
    // The directory now lists only four users.
    let mut smaller = directory_of(4, &[("eng", &[0, 1])], None);
    smaller.token = FAKE_ACCESS_TOKEN.to_string();
    let (_, graph) = serve(smaller).await;
    let mut cfg = f.agent.get("/sso/get_entraId", Some(&f.admin)).await.json();
    cfg["GraphURL"] = json!(graph.as_str());
    assert_eq!(
        f.agent
            .put_json("/sso/update_entraId", Some(&f.admin), &cfg)
            .await
            .status,
        200
    );
    let id = f.read_directory().await;
    let out = f.import(json!({"ImportId": id})).await;
    assert_eq!(out["RemovedAtIdP"], json!(["user4@corp.test"]), "{out}");
    let still: i64 = f
        .agent
        .state
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM users WHERE email = 'user4@corp.test'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(still, 1);
}

#[tokio::test]
async fn a_selection_imports_only_the_named_users_and_reads_are_the_admins_own() {
    let f = entra().await;
    let id = f.read_directory().await;
    let out = f
        .import(json!({"ImportId": id, "ExternalIds": ["00u0"]}))
        .await;
    assert_eq!(out["Created"], json!(["user0@corp.test"]));
    f.agent
        .post_json(
            "/usergroup/import_users",
            Some(&f.admin),
            &json!({"ImportId": id + 1000}),
        )
        .await
        .assert_problem(499, "NOT_FOUND", "no directory read");
    f.agent
        .post_json("/usergroup/import_users", Some(&f.admin), &json!({}))
        .await
        .assert_problem(499, "DEFAULT", "ImportId is required");
}
