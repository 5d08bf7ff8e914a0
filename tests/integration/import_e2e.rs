//! Importing users and groups end to end: the real agent binary and the real OpenID Provider
//! of `tests/idp/oidc`, whose directory APIs (Okta Users/Groups, Microsoft Graph) stand in for
//! the cloud ones. The admin's import sign-in goes through the provider's login form, the
//! agent reads the directory with the access token the provider issued, persists the users,
//! and the imported users then sign in through the same provider.

use std::collections::BTreeMap;

use amove_agent::sso::urls::LOOPBACK_GRAPH_ENV;
use serde_json::{Value, json};

use crate::common::{Agent, Answer, USER_PASSWORD, add_user, user_token};
use crate::fake_oidc::{Browser, RealOp, op_client, param};

const CLIENT_ID: &str = "amove-import";
const CLIENT_SECRET: &str = "amove-import-secret-value";
/// The import's loopback callback (an admin tool's); nobody serves it: the browser stops there.
const CB: &str = "http://127.0.0.1:9/import";
/// Where an "IdP admin console" of the test gets its own management token.
const TOOL_CB: &str = "http://127.0.0.1:9/tool";
const ADMIN: &str = "admin@acme.test";
const ADMIN_IDP_PASSWORD: &str = "ada-at-the-idp";
const TENANT: &str = "22222222-2222-2222-2222-222222222222";

// ------------------------------------------------------------------------------------------
// The identity provider's users

fn idp_user(id: &str, email: &str, first: &str, last: &str, groups: &[&str]) -> Value {
    json!({
        "accountId": id, "email": email, "email_verified": true,
        "given_name": first, "family_name": last, "name": format!("{first} {last}"),
        "password": format!("{first}-password").to_lowercase(), "groups": groups,
    })
}

/// The agent's admin at the IdP.
fn ada() -> Value {
    let mut u = idp_user("00uada", ADMIN, "Ada", "Admin", &["amove-admins"]);
    u["password"] = json!(ADMIN_IDP_PASSWORD);
    u
}

/// Ada, Alice (two groups), Bob (no group; email not verified) and Carol (five groups).
fn okta_users() -> Vec<Value> {
    let mut bob = idp_user("00ubob", "bob@corp.test", "Bob", "Nogroup", &[]);
    bob["email_verified"] = json!(false);
    vec![
        ada(),
        idp_user(
            "00ualice",
            "alice@corp.test",
            "Alice",
            "Two",
            &["engineering", "sso-users"],
        ),
        bob,
        idp_user(
            "00ucarol",
            "carol@corp.test",
            "Carol",
            "Many",
            &["engineering", "sales", "ops", "finance", "support"],
        ),
    ]
}

/// A config for the real provider: one client for the agent (and the test's admin tool),
/// `users`, and `directory`; `extra` is merged in at the top level.
fn op_config(issuer_path: &str, users: Vec<Value>, directory: Value, extra: Value) -> Value {
    let mut c = json!({
        "issuerPath": issuer_path,
        "clients": [op_client(CLIENT_ID, CLIENT_SECRET, "client_secret_basic",
            &["http://127.0.0.1/import", "http://127.0.0.1/tool"])],
        "users": users,
        "directory": directory,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

// ------------------------------------------------------------------------------------------
// Fixture: the agent binary with an active configuration at the real provider

struct Fixture {
    agent: Agent,
    op: RealOp,
    admin: String,
    issuer: String,
}

/// The real provider with `config`, and an agent (account `acme`, owner `admin@acme.test`)
/// whose active `kind` configuration points at it (Entra: `GraphURL` = `{origin}/graph`).
async fn fixture(kind: &str, config: Value) -> Fixture {
    let op = RealOp::start(&config).await;
    // Graph is the provider's test double on loopback, which only the test setting allows.
    let agent = Agent::with_account_env(&[(LOOPBACK_GRAPH_ENV, "1")]).await;
    let admin = agent.admin_token().await;
    let issuer = format!("{}{}", op.origin, config["issuerPath"].as_str().unwrap());
    let mut body = json!({
        "ClientId": CLIENT_ID,
        "ClientSecret": CLIENT_SECRET,
        "OpenIdURL": format!("{issuer}/.well-known/openid-configuration"),
        "Active": true,
    });
    if kind == "entraId" {
        body["GraphURL"] = json!(format!("{}/graph", op.origin));
    }
    let r = agent
        .post_json(&format!("/sso/setup_{kind}"), Some(&admin), &body)
        .await;
    assert_eq!(r.status, 200, "setup_{kind}: {}", r.text);
    Fixture {
        agent,
        op,
        admin,
        issuer,
    }
}

/// The Okta-shaped provider (issuer at the origin) with `users`, pages of two, and `directory`
/// merged over that.
async fn okta(users: Vec<Value>, directory: Value, extra: Value) -> Fixture {
    let mut d = json!({ "pageSize": 2 });
    for (k, v) in directory.as_object().unwrap() {
        d[k] = v.clone();
    }
    fixture("okta", op_config("", users, d, extra)).await
}

/// A started import: its identifier and the provider URL it sends the admin to.
struct Started {
    identifier: String,
    url: String,
}

impl Fixture {
    async fn start_import(&self) -> Started {
        let r = self
            .agent
            .post_json(
                "/sso/sso_url_import_user",
                Some(&self.admin),
                &json!({"CallbackUrl": CB, "Username": ""}),
            )
            .await;
        assert_eq!(r.status, 200, "sso_url_import_user: {}", r.text);
        let body = r.json();
        Started {
            identifier: body["Identifier"].as_str().unwrap().to_string(),
            url: body["Url"].as_str().unwrap().to_string(),
        }
    }

    /// Ada signs in at the provider's form; returns the code of the redirect to `CB`.
    async fn idp_login(&self, s: &Started) -> String {
        let back = Browser::new()
            .login(&s.url, ADMIN, ADMIN_IDP_PASSWORD, CB)
            .await;
        assert_eq!(param(&back, "state"), param(&s.url, "state"), "{back}");
        param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
    }

    /// `GET /sso/get_user_usergroups` as `token`.
    async fn read_as(&self, token: &str, code: &str, identifier: Option<&str>) -> Answer {
        let mut q = vec![("authorizationCode", code), ("callbackUrl", CB)];
        if let Some(i) = identifier {
            q.push(("identifier", i));
        }
        let req = self
            .agent
            .http
            .get(self.agent.url("/sso/get_user_usergroups"))
            .query(&[("token", token)])
            .query(&q);
        self.agent.send(req).await
    }

    /// A whole import read: start, sign in at the provider, read. Returns the list and the
    /// Import-Id.
    async fn read_directory(&self) -> (Vec<Value>, i64) {
        let s = self.start_import().await;
        let code = self.idp_login(&s).await;
        let r = self.read_as(&self.admin, &code, None).await;
        assert_eq!(r.status, 200, "get_user_usergroups: {}", r.text);
        let id = r.headers["import-id"].to_str().unwrap().parse().unwrap();
        (r.json().as_array().cloned().unwrap(), id)
    }

    async fn import(&self, body: Value) -> Value {
        let r = self
            .agent
            .post_json("/usergroup/import_users", Some(&self.admin), &body)
            .await;
        assert_eq!(r.status, 200, "import_users: {}", r.text);
        r.json()
    }

    /// `email` signs in to the agent through the provider (sso_url → form → authenticate);
    /// returns the username of the session.
    async fn sign_in(&self, email: &str, password: &str) -> String {
        self.sign_in_as(email, email, password).await
    }

    /// Like [`Fixture::sign_in`], typing `username` at the agent and `login` at the provider.
    async fn sign_in_as(&self, username: &str, login: &str, password: &str) -> String {
        let a = self
            .agent
            .post_json(
                "/sso/sso_url",
                None,
                &json!({"Username": username, "CallbackUrl": CB}),
            )
            .await;
        assert_eq!(a.status, 200, "sso_url: {}", a.text);
        let url = a.json()["Url"].as_str().unwrap().to_string();
        let back = Browser::new().login(&url, login, password, CB).await;
        let jwt = self
            .agent
            .post_json(
                "/sso/authenticate",
                None,
                &json!({"Identifier": a.json()["Identifier"], "AuthorizationCode": param(&back, "code"),
                        "CallbackUrl": CB}),
            )
            .await;
        assert_eq!(jwt.status, 200, "authenticate: {}", jwt.text);
        let me = self
            .agent
            .get("/sso/whoami", jwt.json().as_str())
            .await
            .json();
        me["Username"].as_str().unwrap().to_string()
    }

    /// A management token of the provider for Ada, as an admin console would get one.
    async fn tool_token(&self, scope: &str) -> String {
        let disc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut auth = url::Url::parse(disc["authorization_endpoint"].as_str().unwrap()).unwrap();
        auth.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("redirect_uri", TOOL_CB)
            .append_pair("state", "tool-state")
            .append_pair("nonce", "tool-nonce");
        let back = Browser::new()
            .login(auth.as_str(), ADMIN, ADMIN_IDP_PASSWORD, TOOL_CB)
            .await;
        let r = crate::common::client()
            .post(disc["token_endpoint"].as_str().unwrap())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &param(&back, "code").unwrap()),
                ("redirect_uri", TOOL_CB),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert!(
            body["scope"]
                .as_str()
                .is_some_and(|s| s.split(' ').all(|x| scope.split(' ').any(|y| y == x))),
            "{body}"
        );
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The directory requests the provider served: (method, path and query, status).
    async fn directory_log(&self) -> Vec<(String, String, u16)> {
        let log: Value = reqwest::get(format!("{}/_idp/directory-log", self.op.origin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["method"].as_str().unwrap().to_string(),
                    e["url"].as_str().unwrap().to_string(),
                    e["status"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.agent.data_dir.join("agent.db")).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Each user of the account linked to this provider: email → (subject, sorted groups).
    fn linked_users(&self) -> BTreeMap<String, (String, Vec<String>)> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT u.email, l.subject, \
                   (SELECT group_concat(name, ',') FROM (SELECT g.name FROM groups g \
                     JOIN group_members m ON m.group_id = g.id WHERE m.user_id = u.id ORDER BY g.name)) \
                 FROM users u JOIN user_idp_links l ON l.user_id = u.id WHERE l.issuer = ?1",
            )
            .unwrap();
        stmt.query_map([&self.issuer], |r| {
            let groups: Option<String> = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get::<_, String>(1)?,
                    groups
                        .map(|g| g.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                ),
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }
}

/// Email → group names of a read.
fn groups_by_email(list: &[Value]) -> BTreeMap<String, Vec<String>> {
    list.iter()
        .map(|r| {
            (
                r["User"]["Email"].as_str().unwrap().to_string(),
                r["UserGroups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g["Name"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

/// Asserts that every GET of the log was answered 200 exactly once (no page skipped or read
/// twice), apart from the `throttled` 429s, each followed by a successful retry of its URL.
#[track_caller]
fn assert_each_page_once(log: &[(String, String, u16)], throttled: usize) {
    let mut ok: BTreeMap<&str, usize> = BTreeMap::new();
    let mut limited = Vec::new();
    for (m, url, status) in log {
        assert_eq!(m, "GET", "{log:?}");
        match status {
            200 => *ok.entry(url).or_default() += 1,
            429 => limited.push(url.as_str()),
            s => panic!("unexpected {s} for {url}: {log:?}"),
        }
    }
    assert_eq!(limited.len(), throttled, "{log:?}");
    for url in limited {
        assert_eq!(ok.get(url), Some(&1), "{url} was not retried: {log:?}");
    }
    assert!(
        ok.values().all(|n| *n == 1),
        "a page was read twice: {log:?}"
    );
}

// ------------------------------------------------------------------------------------------
// Okta

#[tokio::test]
async fn okta_import_reads_every_page_waits_out_a_429_and_persists_users_groups_and_links() {
    // 4 + 3 users in pages of two; the 3rd directory request (users, page 3) is rate limited.
    let f = okta(
        okta_users(),
        json!({
            "groups": [{"id": "00gengineering", "name": "engineering", "description": "Engineers"},
                       {"name": "nobody-here", "description": "a group without members"}],
            "extraUsers": {"count": 3, "domain": "corp.test", "groups": ["sso-users"]},
            "throttleAt": 3,
        }),
        json!({}),
    )
    .await;
    let s = f.start_import().await;
    let scope = param(&s.url, "scope").unwrap();
    for want in ["openid", "okta.users.read", "okta.groups.read"] {
        assert!(scope.split(' ').any(|x| x == want), "{scope}");
    }
    assert!(
        s.url.starts_with(&format!("{}/auth?", f.op.origin)),
        "{}",
        s.url
    );
    let code = f.idp_login(&s).await;
    let started = std::time::Instant::now();
    let r = f.read_as(&f.admin, &code, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "the 429 was not waited out: {:?}",
        started.elapsed()
    );
    let list = r.json().as_array().cloned().unwrap();
    let by_email = groups_by_email(&list);
    let expected: BTreeMap<String, Vec<String>> = [
        (ADMIN, vec!["amove-admins"]),
        ("alice@corp.test", vec!["engineering", "sso-users"]),
        ("bob@corp.test", vec![]),
        (
            "carol@corp.test",
            vec!["engineering", "finance", "ops", "sales", "support"],
        ),
        ("user00001@corp.test", vec!["sso-users"]),
        ("user00002@corp.test", vec!["sso-users"]),
        ("user00003@corp.test", vec!["sso-users"]),
    ]
    .into_iter()
    .map(|(e, g)| (e.to_string(), g.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(by_email, expected);
    let carol = list
        .iter()
        .find(|r| r["User"]["Email"] == "carol@corp.test")
        .unwrap();
    assert_eq!(
        carol["User"],
        json!({"Username": "carol@corp.test", "Email": "carol@corp.test", "Firstname": "Carol",
               "Lastname": "Many", "ExternalId": "00ucarol"})
    );
    let eng = carol["UserGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Name"] == "engineering")
        .unwrap();
    assert_eq!(
        eng,
        &json!({"Name": "engineering", "Description": "Engineers", "ExternalId": "00gengineering"})
    );

    // Users (7): 4 pages; groups (8): 4 pages; members: sso-users (4) 2 pages, the 7 other
    // groups (the memberless one too) 1 page each; plus the one 429.
    let log = f.directory_log().await;
    assert_each_page_once(&log, 1);
    let pages = |prefix: &str| {
        log.iter()
            .filter(|(_, u, s)| *s == 200 && u.starts_with(prefix))
            .count()
    };
    assert_eq!(pages("/api/v1/users?"), 4, "{log:?}");
    assert_eq!(pages("/api/v1/groups?"), 4, "{log:?}");
    assert_eq!(pages("/api/v1/groups/00gengineering/users?"), 1, "{log:?}");
    assert_eq!(pages("/api/v1/groups/"), 2 + 7, "{log:?}");
    assert_eq!(log.len(), 4 + 4 + 9 + 1, "{log:?}");
    assert_eq!(log[2], ("GET".into(), log[3].1.clone(), 429));

    let import_id: i64 = r.headers["import-id"].to_str().unwrap().parse().unwrap();
    let out = f.import(json!({"ImportId": import_id})).await;
    assert_eq!(
        names(&out["Created"]),
        [
            "alice@corp.test",
            "bob@corp.test",
            "carol@corp.test",
            "user00001@corp.test",
            "user00002@corp.test",
            "user00003@corp.test"
        ]
    );
    assert_eq!(names(&out["Updated"]), [ADMIN]);
    assert_eq!(out["Skipped"], json!([]));
    assert_eq!(
        out["Groups"], 7,
        "the memberless group is not created: {out}"
    );
    let linked = f.linked_users();
    assert_eq!(linked.len(), 7, "{linked:?}");
    for (email, groups) in &expected {
        let (_, g) = &linked[email];
        assert_eq!(g, groups, "{email}");
    }
    assert_eq!(linked["carol@corp.test"].0, "00ucarol");
    assert_eq!(linked[ADMIN].0, "00uada");
    assert_eq!(
        f.count("SELECT COUNT(*) FROM users WHERE role = 'user' AND password_hash IS NULL"),
        6
    );

    // Bob's email is not verified at the IdP, so a first sign-in could not match him by
    // email; the import's link binds him.
    assert_eq!(
        f.sign_in("bob@corp.test", "bob-password").await,
        "bob@corp.test"
    );
    assert_eq!(
        f.sign_in("carol@corp.test", "carol-password").await,
        "carol@corp.test"
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM user_idp_links"), 7);
}

#[tokio::test]
async fn okta_import_of_a_directory_with_only_the_admin_imports_nobody_else() {
    let mut admin = ada();
    admin["groups"] = json!([]);
    let f = okta(vec![admin], json!({}), json!({})).await;
    let (list, id) = f.read_directory().await;
    assert_eq!(
        groups_by_email(&list),
        BTreeMap::from([(ADMIN.to_string(), Vec::<String>::new())])
    );
    let out = f.import(json!({"ImportId": id})).await;
    assert_eq!(
        out,
        json!({"Created": [], "Updated": [ADMIN], "Skipped": [], "Groups": 0, "RemovedAtIdP": []})
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM groups"), 0);
    assert_eq!(f.count("SELECT COUNT(*) FROM users"), 1);
}

#[tokio::test]
async fn okta_refusing_the_token_fails_the_import_naming_the_apis_error() {
    // The provider does not offer the Okta scopes to this application: the sign-in works, its
    // access token lacks them, and Okta's API answers 403 E0000006.
    let f = okta(okta_users(), json!({}), json!({"extraScopes": []})).await;
    let s = f.start_import().await;
    let code = f.idp_login(&s).await;
    let r = f.read_as(&f.admin, &code, None).await;
    r.assert_problem(
        499,
        "SSO",
        "reading the directory failed: Okta's API answered 403 Forbidden: You do not have \
         permission to perform the requested action",
    );
    let log = f.directory_log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].2, 403);
    assert_eq!(f.count("SELECT COUNT(*) FROM directory_reads"), 0);
}

#[tokio::test]
async fn a_code_works_once_and_an_import_is_bound_to_its_identifier_and_callback() {
    let f = okta(okta_users(), json!({}), json!({})).await;
    let first = f.start_import().await;
    let code = f.idp_login(&first).await;
    assert_eq!(
        f.read_as(&f.admin, &code, Some(&first.identifier))
            .await
            .status,
        200
    );
    // The same code again: the import is spent.
    f.read_as(&f.admin, &code, Some(&first.identifier))
        .await
        .assert_problem(499, "SECURITY", "already completed");
    f.read_as(&f.admin, &code, None)
        .await
        .assert_problem(499, "NOT_FOUND", "no pending import");
    // The spent code on a fresh import: the provider refuses it.
    let second = f.start_import().await;
    f.read_as(&f.admin, &code, None)
        .await
        .assert_problem(499, "SSO", "invalid_grant");
    // ...and that burnt the second import too (consumed before the exchange).
    let code2 = f.idp_login(&second).await;
    f.read_as(&f.admin, &code2, Some(&second.identifier))
        .await
        .assert_problem(499, "SECURITY", "already completed");

    // Another callback URL than the import's is refused before the code is redeemed.
    let third = f.start_import().await;
    let code3 = f.idp_login(&third).await;
    let req = f
        .agent
        .http
        .get(f.agent.url("/sso/get_user_usergroups"))
        .query(&[
            ("token", f.admin.as_str()),
            ("authorizationCode", code3.as_str()),
            ("callbackUrl", "http://127.0.0.1:9/other"),
            ("identifier", third.identifier.as_str()),
        ]);
    f.agent
        .send(req)
        .await
        .assert_problem(499, "SECURITY", "callbackUrl is not the one");

    // Missing parameters are named.
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
    f.agent
        .post_json("/usergroup/import_users", Some(&f.admin), &json!({}))
        .await
        .assert_problem(499, "DEFAULT", "ImportId is required");
}

#[tokio::test]
async fn a_read_is_imported_only_by_the_admin_who_made_it_and_only_as_selected() {
    let f = okta(okta_users(), json!({}), json!({})).await;
    let (_, id) = f.read_directory().await;
    // A standard user can do none of it.
    let sam = user_token(&f.agent, "sam@acme.test").await;
    f.agent
        .post_json(
            "/sso/sso_url_import_user",
            Some(&sam),
            &json!({"CallbackUrl": CB}),
        )
        .await
        .assert_problem(499, "ACCESS", "requires an admin");
    f.read_as(&sam, "some-code", None)
        .await
        .assert_problem(499, "ACCESS", "requires an admin");
    f.agent
        .post_json(
            "/usergroup/import_users",
            Some(&sam),
            &json!({"ImportId": id}),
        )
        .await
        .assert_problem(499, "ACCESS", "requires an admin");
    // Another admin of the account cannot open this admin's read.
    add_user(&f.agent.data_dir, "acme", "max@acme.test", true, true);
    let max = f.agent.password_token("max@acme.test", USER_PASSWORD).await;
    f.agent
        .post_json(
            "/usergroup/import_users",
            Some(&max),
            &json!({"ImportId": id}),
        )
        .await
        .assert_problem(499, "NOT_FOUND", "of yours");
    f.agent
        .post_json(
            "/usergroup/import_users",
            Some(&f.admin),
            &json!({"ImportId": id + 1000}),
        )
        .await
        .assert_problem(499, "NOT_FOUND", "no directory read");
    assert_eq!(f.count("SELECT COUNT(*) FROM user_idp_links"), 0);
    // A selection imports only the users it names.
    let out = f
        .import(json!({"ImportId": id, "ExternalIds": ["00ubob"]}))
        .await;
    assert_eq!(out["Created"], json!(["bob@corp.test"]), "{out}");
    assert_eq!(out["Updated"], json!([]), "{out}");
    assert_eq!(
        f.linked_users(),
        BTreeMap::from([("bob@corp.test".to_string(), ("00ubob".to_string(), vec![]))])
    );
}

#[tokio::test]
async fn reimporting_after_changes_at_the_idp_keeps_links_and_reports_removed_users() {
    let f = okta(
        okta_users(),
        json!({}),
        json!({"extraScopes": ["okta.users.read", "okta.groups.read", "okta.users.manage"]}),
    )
    .await;
    let (_, id) = f.read_directory().await;
    let first = f.import(json!({"ImportId": id})).await;
    assert_eq!(first["Created"].as_array().map(Vec::len), Some(3));
    // The same read again is idempotent.
    let again = f.import(json!({"ImportId": id})).await;
    assert_eq!(again["Created"], json!([]));
    assert_eq!(again["Updated"].as_array().map(Vec::len), Some(4));

    // At the IdP (through Okta's own API): Alice's email changes, Carol is deactivated.
    let tool = f.tool_token("openid okta.users.manage").await;
    let http = crate::common::client();
    let r = http
        .post(format!("{}/api/v1/users/00ualice", f.op.origin))
        .bearer_auth(&tool)
        .json(&json!({"profile": {"email": "alice.renamed@corp.test", "lastName": "Renamed"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .delete(format!("{}/api/v1/users/00ucarol", f.op.origin))
        .bearer_auth(&tool)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let (list, id) = f.read_directory().await;
    assert_eq!(list.len(), 3, "{list:?}");
    let out = f.import(json!({"ImportId": id})).await;
    assert_eq!(out["Created"], json!([]), "{out}");
    // Reported by their usernames here, not by the IdP's new email.
    assert_eq!(
        names(&out["Updated"]),
        ["admin@acme.test", "alice@corp.test", "bob@corp.test"],
        "{out}"
    );
    assert_eq!(
        out["RemovedAtIdP"],
        json!(["carol@corp.test"]),
        "reported, not deleted: {out}"
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM users WHERE email = 'carol@corp.test'"),
        1
    );
    // Alice keeps her account (found through her link), with the IdP's new name.
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM users WHERE email = 'alice@corp.test' AND last_name = 'Renamed'"
        ),
        1
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM users WHERE email = 'alice.renamed@corp.test'"),
        0
    );
    // She signs in with her new email at the IdP and is still Alice here.
    assert_eq!(
        f.sign_in_as(
            "alice@corp.test",
            "alice.renamed@corp.test",
            "alice-password"
        )
        .await,
        "alice@corp.test"
    );
}

// ------------------------------------------------------------------------------------------
// Entra ID

/// Entra-shaped users: `sub` is pairwise, the object id is `oid`, the tenant `tid`.
fn entra_users() -> Vec<Value> {
    let oid = |n: u32| format!("{n:08}-0000-0000-0000-00000000e1d0");
    let mut users = okta_users();
    for (i, u) in users.iter_mut().enumerate() {
        let n = i as u32 + 1;
        u["accountId"] = json!(format!("pairwise-sub-{n}"));
        u["oid"] = json!(oid(n));
        u["tid"] = json!(TENANT);
    }
    users
}

#[tokio::test]
async fn entra_import_reads_every_graph_page_resolves_group_names_and_links_tid_oid() {
    let f = fixture(
        "entraId",
        op_config(
            &format!("/{TENANT}/v2.0"),
            entra_users(),
            json!({"pageSize": 2, "throttleAt": 2,
                   "groups": [{"id": "6e000000-0000-0000-0000-000000000001", "name": "engineering",
                               "description": "Engineers"}]}),
            json!({}),
        ),
    )
    .await;
    let s = f.start_import().await;
    let scope = param(&s.url, "scope").unwrap();
    for want in [
        "https://graph.microsoft.com/User.Read.All",
        "https://graph.microsoft.com/GroupMember.Read.All",
    ] {
        assert!(scope.split(' ').any(|x| x == want), "{scope}");
    }
    let code = f.idp_login(&s).await;
    let r = f.read_as(&f.admin, &code, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.json().as_array().cloned().unwrap();
    assert_eq!(
        groups_by_email(&list)["carol@corp.test"],
        ["engineering", "finance", "ops", "sales", "support"]
    );
    assert_eq!(
        groups_by_email(&list)["bob@corp.test"],
        Vec::<String>::new()
    );
    let alice = list
        .iter()
        .find(|r| r["User"]["Email"] == "alice@corp.test")
        .unwrap();
    assert_eq!(
        alice["User"]["ExternalId"],
        "00000002-0000-0000-0000-00000000e1d0"
    );
    assert_eq!(alice["User"]["Firstname"], "Alice");
    assert_eq!(
        alice["UserGroups"][0],
        json!({"Name": "engineering", "Description": "Engineers",
               "ExternalId": "6e000000-0000-0000-0000-000000000001"})
    );

    // Users 2 pages, groups (7) 4 pages, each group's transitive members; one 429
    // (Retry-After) waited out.
    let log = f.directory_log().await;
    assert_each_page_once(&log, 1);
    assert!(
        log.iter().all(|(_, u, _)| u.starts_with("/graph/v1.0/")),
        "{log:?}"
    );
    let pages = |prefix: &str| {
        log.iter()
            .filter(|(_, u, s)| *s == 200 && u.starts_with(prefix))
            .count()
    };
    assert_eq!(pages("/graph/v1.0/users?"), 2, "{log:?}");
    assert_eq!(pages("/graph/v1.0/groups?"), 4, "{log:?}");
    assert_eq!(
        pages("/graph/v1.0/groups/6e000000-0000-0000-0000-000000000001/transitiveMembers?"),
        1
    );

    let id: i64 = r.headers["import-id"].to_str().unwrap().parse().unwrap();
    let out = f.import(json!({"ImportId": id})).await;
    assert_eq!(out["Created"].as_array().map(Vec::len), Some(3), "{out}");
    let linked = f.linked_users();
    assert_eq!(
        linked["carol@corp.test"].0,
        format!("{TENANT}/00000004-0000-0000-0000-00000000e1d0")
    );
    assert_eq!(
        linked["carol@corp.test"].1,
        ["engineering", "finance", "ops", "sales", "support"]
    );
    // An imported user's Entra sign-in (sub is pairwise; tid/oid binds) lands on the link.
    assert_eq!(
        f.sign_in("alice@corp.test", "alice-password").await,
        "alice@corp.test"
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM user_idp_links"), 4);
}
