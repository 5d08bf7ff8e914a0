//! Local-API hardening: Host and Origin checks, content types, body limits, CORS, logs,
//! start-up and shutdown behaviour.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{ADMIN_PASSWORD, Agent, BIN};

#[tokio::test]
async fn health_answers_without_auth() {
    let a = Agent::start().await;
    let r = a.get("/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Status"], "ok");
}

#[tokio::test]
async fn foreign_host_headers_are_refused() {
    let a = Agent::with_account().await;
    for host in [
        "evil.test",
        &format!("evil.test:{}", a.port),
        "localhost:1",
        "127.0.0.2:80",
    ] {
        let r = a
            .send(a.http.get(a.url("/health")).header("Host", host))
            .await;
        r.assert_problem(499, "SECURITY", "is not this agent");
    }
    for host in [
        format!("localhost:{}", a.port),
        format!("127.0.0.1:{}", a.port),
        format!("LOCALHOST:{}", a.port),
    ] {
        let r = a
            .send(a.http.get(a.url("/health")).header("Host", host.as_str()))
            .await;
        assert_eq!(r.status, 200, "{host}");
    }
}

#[tokio::test]
async fn foreign_origins_are_refused_but_own_ui_origins_pass() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    for origin in [
        "https://evil.test",
        "null",
        "http://localhost:1",
        "http://127.0.0.1.evil.test",
    ] {
        let r = a
            .send(
                a.http
                    .get(a.url("/sso/get_okta"))
                    .query(&[("token", &t)])
                    .header("Origin", origin),
            )
            .await;
        r.assert_problem(499, "SECURITY", "not allowed");
    }
    let own = format!("http://localhost:{}", a.port);
    for origin in [own.as_str(), "tauri://localhost", "http://tauri.localhost"] {
        let r = a
            .send(
                a.http
                    .get(a.url("/sso/get_okta"))
                    .query(&[("token", &t)])
                    .header("Origin", origin),
            )
            .await;
        assert_eq!(r.status, 200, "{origin}: {}", r.text);
    }
    // The SAML ACS is posted to by the IdP's page, from the IdP's origin.
    let r = a
        .send(
            a.http
                .post(a.url("/sso/saml/acs"))
                .header("Origin", "https://idp.evil.test")
                .body("x"),
        )
        .await;
    assert_ne!(r.json()["type"], "SECURITY", "{}", r.text);
}

#[tokio::test]
async fn a_cross_site_form_post_cannot_reach_a_json_endpoint() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let body = "ClientId=c&ClientSecret=s&OpenIdURL=https://a.test&Active=true";
    for ct in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let r = a
            .send(
                a.http
                    .post(a.url("/sso/setup_okta"))
                    .query(&[("token", &t)])
                    .header("Content-Type", ct)
                    .body(body),
            )
            .await;
        r.assert_problem(499, "DEFAULT", "Content-Type must be application/json");
    }
    let r = a
        .send(
            a.http
                .post(a.url("/sso/setup_okta"))
                .query(&[("token", &t)])
                .body("{}"),
        )
        .await;
    r.assert_problem(
        499,
        "DEFAULT",
        "Content-Type must be application/json (got none)",
    );
    assert_eq!(a.get("/sso/get_okta", Some(&t)).await.text, "null");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_our_error() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    let send = |body: String| {
        a.http
            .post(a.url("/sso/setup_okta"))
            .query(&[("token", &t)])
            .header("Content-Type", "application/json")
            .body(body)
    };
    a.send(send("{\"ClientId\": ".into())).await.assert_problem(
        499,
        "DEFAULT",
        "request body is not valid JSON",
    );
    a.send(send("[1,2]".into())).await.assert_problem(
        499,
        "DEFAULT",
        "must be a JSON object, not an array",
    );
    a.send(send(String::new()))
        .await
        .assert_problem(499, "DEFAULT", "request body is empty");
    a.send(send("{\"ClientId\":\"a\",\"clientid\":\"b\"}".into()))
        .await
        .assert_problem(499, "DEFAULT", "name the same field");
    let huge = json!({"ClientId": "x".repeat(100 * 1024)}).to_string();
    a.send(send(huge))
        .await
        .assert_problem(499, "DEFAULT", "the limit is 65536 bytes");
    let deep = "[".repeat(10_000);
    a.send(send(deep))
        .await
        .assert_problem(499, "DEFAULT", "not valid JSON");
}

#[tokio::test]
async fn no_permissive_cors() {
    let a = Agent::start().await;
    let r = a
        .send(
            a.http
                .request(reqwest::Method::OPTIONS, a.url("/sso/get_okta"))
                .header("Origin", format!("http://localhost:{}", a.port))
                .header("Access-Control-Request-Method", "GET"),
        )
        .await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
    let r = a
        .send(
            a.http
                .get(a.url("/health"))
                .header("Origin", format!("http://localhost:{}", a.port)),
        )
        .await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let a = Agent::start().await;
    a.get("/nope", None)
        .await
        .assert_problem(404, "NOT_FOUND", "no endpoint GET /nope");
    a.send(a.http.get(a.url("/sso/setup_okta")))
        .await
        .assert_problem(405, "DEFAULT", "/sso/setup_okta does not accept GET");
}

#[tokio::test]
async fn access_log_redacts_tokens() {
    let a = Agent::with_account().await;
    let t = a.admin_token().await;
    a.get("/sso/get_okta", Some(&t)).await;
    a.get("/sso/audit?page=1", Some(&t)).await;
    let log = std::fs::read_to_string(a.data_dir.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("/sso/get_okta") && log.contains("token=[redacted]"),
        "{log}"
    );
    assert!(!log.contains(&t), "token in the log");
    assert!(!log.contains(ADMIN_PASSWORD), "password in the log");
}

/// `amove-agent serve --addr 127.0.0.1:PORT` on a fresh data directory (kept by the caller).
fn serve_on(port: u16, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir)
    .stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn a_taken_port_is_reported_and_the_agent_exits_non_zero() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tmp");
    let out = serve_on(port, dir.path()).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

#[tokio::test]
async fn a_program_on_the_other_localhost_address_stops_the_start() {
    // `localhost` is also [::1]: a program listening there on the agent's port would receive
    // the browser's redirects to http://localhost:PORT/sso/callback and the SAML posts.
    let Ok(squatter) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this machine: nothing to squat");
        return;
    };
    let port = squatter.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = serve_on(port, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // It must exit by itself; an agent that started anyway is killed and the test fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent started although [::1]:{port} is another program's");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("[::1]:{port}")) && err.contains("localhost"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

#[tokio::test]
async fn the_agent_owns_both_localhost_addresses() {
    let a = Agent::start().await;
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return;
    }
    let r = a
        .http
        .get(format!("http://[::1]:{}/health", a.port))
        .header("Host", format!("localhost:{}", a.port))
        .send()
        .await
        .expect("[::1] answers");
    assert_eq!(r.status(), 200);
    // Nobody else can take it while the agent runs.
    assert!(std::net::TcpListener::bind(format!("[::1]:{}", a.port)).is_err());
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut a = Agent::start().await;
    assert_eq!(a.get("/health", None).await.status, 200);
    let status = a.terminate().expect("status");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn addr_and_data_dir_come_from_the_environment_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("AMOVE_AGENT_ADDR", "127.0.0.1:0")
        .env("AMOVE_AGENT_DATA_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    assert!(dir.path().join("agent.db").exists());
}

#[cfg(unix)]
#[tokio::test]
async fn key_files_left_readable_by_others_are_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    crate::common::init_account(&dir, "acme", "admin@acme.test");
    drop(Agent::start_in(&dir, &[]).await);
    let keys = [dir.join("data.key"), dir.join("session-signing.pem")];
    for k in &keys {
        std::fs::set_permissions(k, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = Agent::start_in(&dir, &[]).await;
    assert_eq!(a.get("/health", None).await.status, 200);
    for k in &keys {
        assert_eq!(mode(k), 0o600, "{}", k.display());
    }
    assert_eq!(mode(&dir), 0o700);
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(log.contains("tightened permissions 644 -> 600"), "{log}");
}
