//! Managed configuration: the real agent started with a policy file (docs/policy.md) serves
//! what it declares, refuses admins' changes to it, follows the file without a restart, keeps
//! its last good configuration when the file goes bad, and refuses files others could write.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Agent, BIN, files_containing};

const SECRET: &str = "policy-client-secret-7f3a9c";

/// A public client, as the example (no secret on 500 laptops).
fn okta(client_id: &str) -> Value {
    json!({
        "ClientId": client_id,
        "OpenIdURL": "https://corp.okta.example/.well-known/openid-configuration",
        "Active": true
    })
}

fn policy(client_id: &str) -> Value {
    json!({
        "Account": {"Identifier": "acme", "DisplayName": "Acme Corp."},
        "Okta": okta(client_id),
        "EntraId": null,
        "CallbackUrls": ["https://tools.acme.example/sso"],
        "AccessTokenLifetimeSeconds": 2_592_000,
        "Network": {"ProxyURL": "http://proxy.acme.example:3128", "CaFile": null}
    })
}

/// A directory for policy files, and the file's path in it.
fn policy_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.json");
    (dir, path)
}

/// Writes the file as an MDM would: aside, then renamed into place, mode 0644.
fn write(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write policy");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename policy");
}

fn write_json(path: &Path, v: &Value) {
    write(path, v.to_string().as_bytes());
}

fn env(path: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("AMOVE_AGENT_POLICY", path.display().to_string()),
        ("AMOVE_AGENT_POLICY_POLL_MS", "100".to_string()),
    ]
}

async fn start(path: &Path) -> Agent {
    let env = env(path);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Agent::with_account_env(&env).await
}

/// A policy file managing Okta with `client_id`, an agent following it, and its admin's token.
async fn started(client_id: &str) -> (tempfile::TempDir, PathBuf, Agent, String) {
    let (dir, path) = policy_dir();
    write_json(&path, &policy(client_id));
    let a = start(&path).await;
    let t = a.admin_token().await;
    (dir, path, a, t)
}

/// Polls `probe` until it returns `Some`, for at most ten seconds.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn policy_status(a: &Agent, t: &str) -> Value {
    let s = a.get("/sso/policy", Some(t)).await;
    assert_eq!(s.status, 200, "{}", s.text);
    s.json()
}

async fn audit(a: &Agent, t: &str) -> Vec<Value> {
    a.get("/sso/audit", Some(t)).await.json()["Items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn serves_the_managed_okta_configuration_and_refuses_its_update_and_delete() {
    let (_dir, path, a, t) = started("0oa-managed").await;
    let where_ = path.display().to_string();

    let okta = a.get("/sso/get_okta", Some(&t)).await;
    assert_eq!(okta.status, 200, "{}", okta.text);
    let okta = okta.json();
    assert_eq!(okta["ClientId"], "0oa-managed");
    assert_eq!(okta["Active"], true);
    assert_eq!(okta["ClientSecret"], Value::Null);
    assert_eq!(okta["ClientAuth"], "none");
    assert_eq!(okta["Managed"], true);
    assert_eq!(okta["ManagedBy"], where_.as_str());

    let mut changed = okta.clone();
    changed["ClientId"] = json!("0oa-admin");
    a.put_json("/sso/update_okta", Some(&t), &changed)
        .await
        .assert_problem(499, "ACCESS", &where_);
    a.delete("/sso/delete_okta", Some(&t))
        .await
        .assert_problem(499, "ACCESS", &where_);
    assert_eq!(
        a.get("/sso/get_okta", Some(&t)).await.json()["ClientId"],
        "0oa-managed",
        "the refused update changed nothing"
    );

    // "EntraId": null — managed, none allowed.
    let entra = json!({"ClientId": "e", "ClientSecret": "s",
        "OpenIdURL": "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"});
    a.post_json("/sso/setup_entraId", Some(&t), &entra)
        .await
        .assert_problem(499, "ACCESS", "EntraId is managed");
    // SAML is not in the policy: still the admins' to set.
    let saml = json!({"Certificate": crate::common::certificate(-1, 365),
        "SPEntityId": "https://amove.test/sp", "IdPSSOURL": "https://idp.acme.test/sso"});
    let s = a.post_json("/sso/setup_saml", Some(&t), &saml).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.json()["Managed"], false);

    let cb = a.get("/sso/callback_urls", Some(&t)).await.json();
    assert_eq!(
        cb["CallbackUrls"],
        json!(["https://tools.acme.example/sso"])
    );
    assert_eq!(cb["Managed"], true);
    a.put_json(
        "/sso/callback_urls",
        Some(&t),
        &json!({"CallbackUrls": ["https://evil.example/cb"]}),
    )
    .await
    .assert_problem(499, "ACCESS", "CallbackUrls is managed");
    let ttl = a.get("/sso/ttapi/policy", Some(&t)).await.json();
    assert_eq!(ttl["AccessTokenLifetimeSeconds"], 2_592_000);
    assert_eq!(ttl["Managed"], true);
    a.put_json(
        "/sso/ttapi/policy",
        Some(&t),
        &json!({"AccessTokenLifetimeSeconds": null}),
    )
    .await
    .assert_problem(499, "ACCESS", "AccessTokenLifetimeSeconds is managed");

    let status = policy_status(&a, &t).await;
    assert_eq!(status["Applied"], true);
    assert_eq!(status["Error"], Value::Null);
    assert_eq!(
        status["Managed"],
        json!([
            "Account",
            "Okta",
            "EntraId",
            "CallbackUrls",
            "AccessTokenLifetimeSeconds",
            "Network.ProxyURL",
            "Network.CaFile"
        ])
    );
    let events = audit(&a, &t).await;
    assert!(
        events
            .iter()
            .any(|e| e["Action"] == "idp.okta.create" && e["Actor"] == "policy"),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e["Action"] == "policy.apply"));
}

#[tokio::test]
async fn creates_the_policys_account_when_missing() {
    let (_dir, path) = policy_dir();
    let mut p = policy("0oa-new");
    p["Account"] = json!({"Identifier": "newco", "DisplayName": "New Co."});
    write_json(&path, &p);
    let a = start(&path).await;
    let conn = rusqlite::Connection::open(a.data_dir.join("agent.db")).expect("db");
    let (name, kind): (String, String) = conn
        .query_row(
            "SELECT a.name, i.kind FROM accounts a JOIN idp_configs i ON i.account_id = a.id \
             WHERE a.identifier = 'newco'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the account and its Okta configuration");
    assert_eq!((name.as_str(), kind.as_str()), ("New Co.", "okta"));
    // acme, not in the policy, is not managed.
    let t = a.admin_token().await;
    let put = a
        .put_json(
            "/sso/callback_urls",
            Some(&t),
            &json!({"CallbackUrls": ["https://tools.acme.example/sso"]}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["Managed"], false);
}

#[tokio::test]
async fn picks_up_a_changed_file_without_restart() {
    let (_dir, path, a, t) = started("0oa-first").await;
    assert_eq!(
        a.get("/sso/get_okta", Some(&t)).await.json()["ClientId"],
        "0oa-first"
    );

    // Now a confidential client: its secret is sealed like any other, never in the
    // database, the log or the remembered state in clear, and never shown.
    let mut p = policy("0oa-second");
    p["Okta"]["ClientSecret"] = json!(SECRET);
    write_json(&path, &p);
    let okta = eventually("the new ClientId", || async {
        let o = a.get("/sso/get_okta", Some(&t)).await.json();
        (o["ClientId"] == "0oa-second").then_some(o)
    })
    .await;
    assert_eq!(okta["ClientSecret"], "********");
    assert_ne!(okta["ClientAuth"], "none");
    assert!(files_containing(&a.data_dir, SECRET).is_empty());
    assert!(!a.get("/sso/audit", Some(&t)).await.text.contains(SECRET));

    // Okta left out of the policy: the admins' again, with the value it had.
    let mut p = policy("unused");
    p.as_object_mut().map(|o| o.remove("Okta"));
    write_json(&path, &p);
    let okta = eventually("Okta released", || async {
        let o = a.get("/sso/get_okta", Some(&t)).await.json();
        (o["Managed"] == false).then_some(o)
    })
    .await;
    assert_eq!(okta["ClientId"], "0oa-second");
    let mut update = okta.clone();
    update["ClientId"] = json!("0oa-admin");
    update["ClientSecret"] = json!("a-new-secret");
    let u = a.put_json("/sso/update_okta", Some(&t), &update).await;
    assert_eq!(u.status, 200, "{}", u.text);

    // The file removed: nothing is managed.
    std::fs::remove_file(&path).expect("rm");
    eventually("the policy released", || async {
        let s = policy_status(&a, &t).await;
        (s["Applied"] == false).then_some(())
    })
    .await;
    let put = a
        .put_json(
            "/sso/ttapi/policy",
            Some(&t),
            &json!({"AccessTokenLifetimeSeconds": 60}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
}

#[tokio::test]
async fn keeps_its_last_good_configuration_when_the_file_becomes_malformed() {
    let (_dir, path, mut a, t) = started("0oa-good").await;

    write(&path, b"{\"Okta\": {\"ClientId\": \"0oa-bad\",");
    let status = eventually("the refusal", || async {
        let s = policy_status(&a, &t).await;
        s["Error"].is_string().then_some(s)
    })
    .await;
    let error = status["Error"].as_str().unwrap_or_default();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("not valid JSON"), "{error}");
    assert_eq!(
        status["Applied"], true,
        "the last good policy stays in force"
    );
    let okta = a.get("/sso/get_okta", Some(&t)).await.json();
    assert_eq!(
        (okta["ClientId"].as_str(), okta["Managed"].as_bool()),
        (Some("0oa-good"), Some(true))
    );
    a.delete("/sso/delete_okta", Some(&t))
        .await
        .assert_problem(499, "ACCESS", "Okta is managed");
    let refused = audit(&a, &t)
        .await
        .into_iter()
        .find(|e| e["Action"] == "policy.apply" && e["Outcome"] == "refused");
    assert!(
        refused.is_some_and(|e| e["Detail"]
            .as_str()
            .is_some_and(|d| d.contains("not valid JSON"))),
        "the refusal is audited"
    );
    let log = std::fs::read_to_string(a.data_dir.join("agent.log")).unwrap_or_default();
    assert!(log.contains("refused: the file is not valid JSON"), "{log}");

    // Valid JSON, invalid value: the problem names the key, and nothing changes.
    let mut bad = policy("0oa-bad");
    bad["Okta"]["OpenIdURL"] = json!("http://corp.okta.example/.well-known/openid-configuration");
    bad["Saml"] = json!({"SPEntityId": "x"});
    write_json(&path, &bad);
    let status = eventually("the second refusal", || async {
        let s = policy_status(&a, &t).await;
        s["Error"]
            .as_str()
            .is_some_and(|e| e.contains("Okta: OpenIdURL"))
            .then_some(s)
    })
    .await;
    assert!(
        status["Error"]
            .as_str()
            .is_some_and(|e| e.contains("Saml: Certificate is required"))
    );
    assert_eq!(
        a.get("/sso/get_okta", Some(&t)).await.json()["ClientId"],
        "0oa-good"
    );
    assert_eq!(a.get("/sso/get_saml", Some(&t)).await.json(), Value::Null);

    // Restarted on the bad file, the agent still holds what the last good one managed.
    let data = a.kill();
    let dir = a.data_dir.clone();
    let env = env(&path);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = Agent::start_in(&dir, &env).await;
    let t = b.admin_token().await;
    let okta = b.get("/sso/get_okta", Some(&t)).await.json();
    assert_eq!(
        (okta["ClientId"].as_str(), okta["Managed"].as_bool()),
        (Some("0oa-good"), Some(true))
    );
    b.put_json("/sso/update_okta", Some(&t), &okta)
        .await
        .assert_problem(499, "ACCESS", "Okta is managed");
    // ... and the network settings its Network set (remembered sealed: it may hold a
    // password).
    let network = b.get("/sso/network", Some(&t)).await.json();
    assert_eq!(
        network["Effective"]["Proxy"], "http://proxy.acme.example:3128/",
        "{network}"
    );
    assert_eq!(
        network["Effective"]["ManagedBy"],
        path.display().to_string()
    );
    b.put_json("/sso/network", Some(&t), &json!({"ProxyURL": null}))
        .await
        .assert_problem(
            499,
            "ACCESS",
            &format!(
                "Network.ProxyURL is managed by the policy file {}",
                path.display()
            ),
        );
    let remembered = std::fs::read_to_string(dir.join("policy-managed.json")).unwrap_or_default();
    assert!(
        remembered.contains("\"Network\"") && !remembered.contains("proxy.acme.example"),
        "{remembered}"
    );
    drop(data);
}

#[tokio::test]
async fn refuses_a_world_writable_file() {
    let (_dir, path) = policy_dir();
    write_json(&path, &policy("0oa-writable"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let a = start(&path).await;
    let t = a.admin_token().await;
    assert_eq!(a.get("/sso/get_okta", Some(&t)).await.json(), Value::Null);
    let status = policy_status(&a, &t).await;
    assert_eq!(status["Applied"], false);
    assert!(
        status["Error"]
            .as_str()
            .is_some_and(|e| e.contains("world-writable")),
        "{status}"
    );
    let log = std::fs::read_to_string(a.data_dir.join("agent.log")).unwrap_or_default();
    assert!(log.contains("is world-writable"), "{log}");

    // Fixed by the admin: applied without a restart.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    eventually("the fixed file applied", || async {
        let o = a.get("/sso/get_okta", Some(&t)).await.json();
        (o["ClientId"] == "0oa-writable").then_some(())
    })
    .await;
    // Made world-writable again, with other content: refused, the last good one kept.
    write_json(&path, &policy("0oa-tampered"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    eventually("the refusal", || async {
        let s = policy_status(&a, &t).await;
        s["Error"]
            .as_str()
            .is_some_and(|e| e.contains("world-writable"))
            .then_some(())
    })
    .await;
    assert_eq!(
        a.get("/sso/get_okta", Some(&t)).await.json()["ClientId"],
        "0oa-writable"
    );
    assert!(audit(&a, &t).await.iter().any(|e| {
        e["Outcome"] == "refused"
            && e["Detail"]
                .as_str()
                .is_some_and(|d| d.contains("world-writable"))
    }));
}

fn check(path: &Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["policy", "check"])
        .arg(path)
        .output()
        .expect("run policy check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_check_accepts_a_good_file_and_names_each_problem_of_a_bad_one() {
    let (_dir, path) = policy_dir();
    write_json(&path, &policy("0oa-check"));
    let (ok, out, err) = check(&path);
    assert!(ok, "{err}");
    assert!(out.contains("OK for account 'acme'"), "{out}");
    assert!(out.contains("manages Account, Okta, EntraId"), "{out}");

    let mut bad = policy("0oa-check");
    bad["Okta"]["OpenIdURL"] = json!("http://corp.okta.example/.well-known/openid-configuration");
    bad["AccessTokenLifetimeSeconds"] = json!(0);
    bad["CallbackUrls"] = json!(["http://tools.acme.example/sso"]);
    bad["Network"] = json!({"ProxyURL": "ftp://user:hunter2@proxy", "CaFile": "relative.pem"});
    bad["Oktaa"] = json!({});
    write_json(&path, &bad);
    let (ok, _, err) = check(&path);
    assert!(!ok);
    let name = path.display().to_string();
    for needle in [
        "Okta: OpenIdURL must be an absolute https URL",
        "AccessTokenLifetimeSeconds must be from 1 to",
        "CallbackUrls: 'http://tools.acme.example/sso' must be an https URL",
        "Network.ProxyURL: must be http://[USER:PASSWORD@]HOST[:PORT] (or https://); ftp proxies",
        "Network.CaFile: must be an absolute path",
        "Oktaa: unknown key",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("policy file {name}: ")) && l.contains(needle)),
            "no line naming the file and {needle:?} in {err}"
        );
    }
    assert!(
        !err.contains("hunter2"),
        "the proxy's credentials are never repeated"
    );

    write(&path, b"[1, 2]");
    let (ok, _, err) = check(&path);
    assert!(!ok && err.contains("must hold one JSON object"), "{err}");

    write_json(&path, &json!({"Okta": okta("x")}));
    let (ok, _, err) = check(&path);
    assert!(!ok && err.contains("Account is required"), "{err}");

    write_json(&path, &policy("0oa-check"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o646)).expect("chmod");
    let (ok, _, err) = check(&path);
    assert!(!ok && err.contains("world-writable"), "{err}");
}

#[tokio::test]
async fn sign_in_settings_are_managed_key_by_key() {
    let (_dir, path) = policy_dir();
    write_json(
        &path,
        &json!({"Account": {"Identifier": "acme"}, "SessionLifetimeDays": 7,
                "AdminGroups": ["Fleet Admins"]}),
    );
    let a = start(&path).await;
    let t = a.admin_token().await;
    let file = path.display().to_string();
    let v = eventually("the managed sign-in settings", || async {
        let v = a.get("/sso/signin_settings", Some(&t)).await.json();
        (v["Managed"] == true).then_some(v)
    })
    .await;
    assert_eq!(v["SessionLifetimeDays"], 7);
    assert_eq!(v["AdminGroups"], json!(["Fleet Admins"]));
    assert_eq!(v["ManagedBy"], file.as_str());
    assert_eq!(
        v["ManagedKeys"],
        json!(["AdminGroups", "SessionLifetimeDays"])
    );
    assert_eq!(v["AutoProvision"], false);

    // A managed key may not change; the refusal names the file, and nothing is written.
    for body in [
        json!({"SessionLifetimeDays": 8}),
        json!({"AutoProvision": true, "AdminGroups": []}),
    ] {
        let r = a.put_json("/sso/signin_settings", Some(&t), &body).await;
        r.assert_problem(499, "ACCESS", "is managed by the policy file");
        r.assert_problem(499, "ACCESS", &file);
    }
    let now = a.get("/sso/signin_settings", Some(&t)).await.json();
    assert_eq!(
        (
            now["AutoProvision"].clone(),
            now["SessionLifetimeDays"].clone()
        ),
        (json!(false), json!(7))
    );
    // Sent as it is in force, or left out, it is no change: the admins' keys are saved.
    let r = a
        .put_json(
            "/sso/signin_settings",
            Some(&t),
            &json!({"SessionLifetimeDays": 7, "AdminGroups": ["Fleet Admins"],
                    "AutoProvision": true, "AutoProvisionDomains": ["acme.example"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["AutoProvision"], true);
    assert_eq!(r.json()["AutoProvisionDomains"], json!(["acme.example"]));

    // The file no longer manages the lifetime: it is the admins' again, value kept.
    write_json(
        &path,
        &json!({"Account": {"Identifier": "acme"}, "AdminGroups": ["Fleet Admins"]}),
    );
    eventually("the lifetime released", || async {
        let v = a.get("/sso/signin_settings", Some(&t)).await.json();
        (v["ManagedKeys"] == json!(["AdminGroups"])).then_some(())
    })
    .await;
    let r = a
        .put_json(
            "/sso/signin_settings",
            Some(&t),
            &json!({"SessionLifetimeDays": 90}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["SessionLifetimeDays"], 90);
}

#[tokio::test]
async fn sign_in_settings_refuse_bad_values_and_standard_users() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    for (body, needle) in [
        (
            json!({"AutoProvisionDomains": ["*.acme.test"]}),
            "AutoProvisionDomains: '*.acme.test' is a wildcard",
        ),
        (
            json!({"AutoProvisionDomains": ["acme.test", "ACME.test"]}),
            "names acme.test twice",
        ),
        (
            json!({"AutoProvisionDomains": "acme.test"}),
            "AutoProvisionDomains must be a list of strings",
        ),
        (
            json!({"AdminGroups": ["ok", " "]}),
            "AdminGroups must not be blank",
        ),
        (
            json!({"SessionLifetimeDays": 0}),
            "SessionLifetimeDays must be from 1 to 365",
        ),
        (
            json!({"SessionLifetimeDays": "forever"}),
            "SessionLifetimeDays must be an integer",
        ),
        (
            json!({"AutoProvision": "yes"}),
            "AutoProvision must be true or false",
        ),
    ] {
        a.put_json("/sso/signin_settings", Some(&t), &body)
            .await
            .assert_problem(499, "DEFAULT", needle);
    }
    let v = a.get("/sso/signin_settings", Some(&t)).await.json();
    assert_eq!(
        v,
        json!({"AutoProvision": false, "AutoProvisionDomains": [], "AdminGroups": [],
               "SessionLifetimeDays": 30, "Managed": false, "ManagedKeys": []}),
        "nothing written"
    );
    let user = crate::common::user_token(&a, "sam@acme.test").await;
    for r in [
        a.get("/sso/signin_settings", Some(&user)).await,
        a.put_json(
            "/sso/signin_settings",
            Some(&user),
            &json!({"AutoProvision": true}),
        )
        .await,
    ] {
        r.assert_problem(499, "ACCESS", "is a standard user");
    }
    a.get("/sso/signin_settings", None)
        .await
        .assert_problem(401, "TOKEN", "a token is required");
}
