//! Storage: the CLI, restarts, concurrency, crash safety.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::common::{ADMIN_PASSWORD, Agent, add_user, cli, init_account};

#[tokio::test]
async fn cli_init_user_add_and_list() {
    let dir = tempfile::tempdir().expect("tmp");
    init_account(dir.path(), "mycompany", "max@mycompany.test");
    let (ok, _, err) = cli(
        dir.path(),
        &["init", "--account", "mycompany", "--admin", "other@x.test"],
        &[("AMOVE_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(
        dir.path(),
        &[
            "init",
            "--account",
            "second",
            "--admin",
            "max@mycompany.test",
        ],
        &[("AMOVE_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(
        dir.path(),
        &["init", "--account", "third", "--admin", "t@x.test"],
        &[("AMOVE_ADMIN_PASSWORD", "short")],
    );
    assert!(!ok && err.contains("at least 12 characters"), "{err}");
    let (ok, _, err) = cli(
        dir.path(),
        &["init", "--account", "Bad Name", "--admin", "t@x.test"],
        &[],
    );
    assert!(!ok && err.contains("account identifier"), "{err}");
    // Without the variable and without a terminal, it says how to give the password.
    let (ok, _, err) = cli(
        dir.path(),
        &["init", "--account", "fourth", "--admin", "f@x.test"],
        &[],
    );
    assert!(!ok && err.contains("AMOVE_ADMIN_PASSWORD"), "{err}");

    add_user(dir.path(), "mycompany", "ann@mycompany.test", true, false);
    let (ok, _, err) = cli(
        dir.path(),
        &[
            "user",
            "add",
            "--account",
            "mycompany",
            "--email",
            "bob@mycompany.test",
            "--name",
            "Bob Builder",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        dir.path(),
        &["user", "add", "--account", "nope", "--email", "x@y.test"],
        &[],
    );
    assert!(!ok && err.contains("no account 'nope'"), "{err}");
    let (ok, out, _) = cli(
        dir.path(),
        &["user", "list", "--account", "mycompany", "--json"],
        &[],
    );
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    let emails: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["Username"].as_str())
        .collect();
    assert_eq!(
        emails,
        [
            "ann@mycompany.test",
            "bob@mycompany.test",
            "max@mycompany.test"
        ]
    );
    assert_eq!(list[1]["Firstname"], "Bob");
    assert_eq!(list[2]["Role"], "owner");
    assert_eq!(list[0]["Role"], "admin");
    assert_eq!(list[1]["HasPassword"], false);
}

#[tokio::test]
async fn restart_keeps_everything() {
    let mut a = Agent::with_account().await;
    let t = a.admin_token().await;
    let saved = a
        .post_json(
            "/sso/setup_okta",
            Some(&t),
            &json!({"ClientId": "c", "ClientSecret": "s3cret-s3cret", "OpenIdURL": "https://a.okta.com", "Active": true}),
        )
        .await
        .json();
    a.restart().await;
    assert_eq!(a.get("/sso/get_okta", Some(&t)).await.json(), saved);
    assert!(
        a.get("/sso/audit", Some(&t))
            .await
            .text
            .contains("idp.okta.create")
    );
}

#[tokio::test]
async fn concurrent_setup_update_delete_leave_a_consistent_state() {
    let a = Arc::new(Agent::with_account().await);
    let t = Arc::new(a.admin_token().await);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let (a, t) = (a.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let (path, kind) = match i % 3 {
                0 => ("okta", "okta"),
                1 => ("entraId", "entraId"),
                _ => ("okta", "okta"),
            };
            let body = json!({
                "Id": 1 + (i % 4), "ClientId": format!("c{i}"), "ClientSecret": format!("secret-{i}"),
                "OpenIdURL": "https://a.okta.com", "Active": i % 2 == 0
            });
            let r = match i % 5 {
                0 | 1 => a.post_json(&format!("/sso/setup_{path}"), Some(&t), &body).await,
                2 | 3 => a.put_json(&format!("/sso/update_{path}"), Some(&t), &body).await,
                _ => a.delete(&format!("/sso/delete_{kind}"), Some(&t)).await,
            };
            let code = r.json()["type"].as_str().map(str::to_string);
            (r.status.as_u16(), code)
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (status, code) = task.await.expect("join");
        match (status, code.as_deref()) {
            (200, _) => ok += 1,
            (499, Some("DUPLICATE" | "NOT_FOUND" | "DEFAULT")) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(ok > 0);
    let okta = a.get("/sso/get_okta", Some(&t)).await.json();
    let entra = a.get("/sso/get_entraId", Some(&t)).await.json();
    let active = [&okta, &entra]
        .iter()
        .filter(|c| c["Active"] == true)
        .count();
    assert!(active <= 1, "two active configurations: {okta} {entra}");
    // Every successful change left exactly one audit event.
    let audit = a.get("/sso/audit?pageSize=500", Some(&t)).await.json();
    let changes = audit["Items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["Action"].as_str().is_some_and(|s| s.starts_with("idp.")))
        .count();
    assert_eq!(changes, ok);
    let conn = rusqlite::Connection::open(a.data_dir.join("agent.db")).expect("db");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn kill_during_a_write_burst_loses_no_acknowledged_write() {
    let mut a = Agent::with_account().await;
    add_user(&a.data_dir, "acme", "w@acme.test", false, true);
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (base, acked, stop) = (a.base.clone(), acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = crate::common::client();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let user = if w % 2 == 0 {
                    "admin@acme.test"
                } else {
                    "w@acme.test"
                };
                let pw = if w % 2 == 0 {
                    ADMIN_PASSWORD
                } else {
                    crate::common::USER_PASSWORD
                };
                let body = form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "password")
                    .append_pair("username", user)
                    .append_pair("password", pw)
                    .append_pair("scope", &format!("w{w}-{n}"))
                    .finish();
                let r = http
                    .post(format!("{base}/sso/ttapi/2.0/authz/0/authn"))
                    .body(body)
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if let Ok(v) = r.json::<serde_json::Value>().await
                    && let Some(t) = v["access_token"].as_str()
                {
                    acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(t.to_string());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = a.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        let _ = w.await;
    }
    let acked: Vec<String> = acknowledged
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(acked.len() >= 4, "only {} writes acknowledged", acked.len());
    let conn = rusqlite::Connection::open(a.data_dir.join("agent.db")).expect("db");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    drop(conn);
    let mut b = Agent::start_in(&a.data_dir.clone(), &[]).await;
    let mut seen = HashSet::new();
    for t in &acked {
        let r = b.get("/sso/whoami", Some(t)).await;
        assert_eq!(r.status, 200, "acknowledged token lost: {}", r.text);
        seen.insert(t.clone());
    }
    assert_eq!(seen.len(), acked.len());
    b.kill();
    drop(dir);
}
