//! Shared helpers: start the real `amove-agent` binary on an ephemeral port with a temporary
//! data directory, provision accounts through its CLI, and talk to it over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Path of the agent binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_amove-agent");
/// Password of accounts made by [`Agent::with_account`].
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// Password of users made with a password by the helpers.
pub const USER_PASSWORD: &str = "another long password";

/// A running agent process.
pub struct Agent {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// Client without cookies or redirects.
    pub http: reqwest::Client,
}

/// An HTTP answer, read fully.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
    /// Asserts the Click API problem body: status, `type`, `error-code` header, and that the
    /// message contains `needle`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str, needle: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        let body = self.json();
        assert_eq!(body["type"], code, "type of {}", self.text);
        assert_eq!(body["status"], status, "status field of {}", self.text);
        assert_eq!(
            self.headers.get("error-code").and_then(|v| v.to_str().ok()),
            Some(code)
        );
        let msgs = body["errors"][code].as_array().cloned().unwrap_or_default();
        assert!(
            msgs.iter()
                .any(|m| m.as_str().is_some_and(|m| m.contains(needle))),
            "no message containing {needle:?} in {}",
            self.text
        );
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Runs the agent CLI with `args` against `data_dir`; returns (success, stdout, stderr).
pub fn cli(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null());
    cmd.env_remove("AMOVE_ADMIN_PASSWORD")
        .env_remove("AMOVE_USER_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run amove-agent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates account `ident` with owner `admin` (password [`ADMIN_PASSWORD`]).
pub fn init_account(data_dir: &Path, ident: &str, admin: &str) {
    let (ok, _, err) = cli(
        data_dir,
        &[
            "init",
            "--account",
            ident,
            "--admin",
            admin,
            "--name",
            "Ada Admin",
        ],
        &[("AMOVE_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    assert!(ok, "init failed: {err}");
}

/// Adds a user; with `password` the user gets [`USER_PASSWORD`].
pub fn add_user(data_dir: &Path, ident: &str, email: &str, admin: bool, password: bool) {
    let mut args = vec!["user", "add", "--account", ident, "--email", email];
    if admin {
        args.push("--admin");
    }
    let env: Vec<(&str, &str)> = if password {
        vec![("AMOVE_USER_PASSWORD", USER_PASSWORD)]
    } else {
        vec![]
    };
    let (ok, _, err) = cli(data_dir, &args, &env);
    assert!(ok, "user add failed: {err}");
}

/// `amove-agent user VERB --account acme --email EMAIL` (`disable`, `enable`), which must succeed.
pub fn user_cli(data_dir: &Path, verb: &str, email: &str) {
    let (ok, _, err) = cli(
        data_dir,
        &["user", verb, "--account", "acme", "--email", email],
        &[],
    );
    assert!(ok, "user {verb} failed: {err}");
}

impl Agent {
    /// Starts an agent on a fresh temporary data directory.
    pub async fn start() -> Agent {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut a = Self::start_in(&dir, &[]).await;
        a._tmp = Some(tmp);
        a
    }

    /// Starts an agent with account `acme` owned by `admin@acme.test`.
    pub async fn with_account() -> Agent {
        Self::with_account_env(&[]).await
    }

    /// [`with_account`](Self::with_account) with extra environment.
    pub async fn with_account_env(env: &[(&str, &str)]) -> Agent {
        let tmp = tempfile::tempdir().expect("tempdir");
        init_account(tmp.path(), "acme", "admin@acme.test");
        let dir = tmp.path().to_path_buf();
        let mut a = Self::start_in(&dir, env).await;
        a._tmp = Some(tmp);
        a
    }

    /// Starts an agent on `dir` (kept by the caller) with extra environment.
    pub async fn start_in(dir: &Path, env: &[(&str, &str)]) -> Agent {
        // The agent's log goes into its data directory, so the tests that scan the data
        // directory for secrets scan the log too.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("AMOVE_LOG", "debug")
            // No policy file unless a test gives one: the machine's must not leak in.
            .env("AMOVE_AGENT_POLICY", dir.join("no-policy.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn amove-agent");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            r.read_line(&mut line).map(|_| line)
        })
        .await
        .expect("join")
        .expect("read listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let port: u16 = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Agent {
            child: Some(child),
            base: url,
            port,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            http: client(),
        }
    }

    /// Stops the agent with SIGKILL and returns its data directory (kept alive).
    pub fn kill(&mut self) -> Option<tempfile::TempDir> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self._tmp.take()
    }

    /// Stops the agent gracefully (SIGTERM) and returns its exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// Restarts on the same data directory.
    pub async fn restart(&mut self) {
        let tmp = self.kill();
        let mut a = Self::start_in(&self.data_dir.clone(), &[]).await;
        a._tmp = tmp;
        std::mem::swap(self, &mut a);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        let mut req = self.http.delete(self.url(path));
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut req = self.http.put(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.query(&[("token", t)]);
        }
        self.send(req).await
    }

    /// The token exchange with a form body.
    pub async fn authn_form(&self, form: &str) -> Answer {
        self.send(
            self.http
                .post(self.url("/sso/ttapi/2.0/authz/0/authn"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.to_string()),
        )
        .await
    }

    /// A long-lived access token through the password grant.
    pub async fn password_token(&self, username: &str, password: &str) -> String {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "password")
            .append_pair("username", username)
            .append_pair("password", password)
            .finish();
        let a = self.authn_form(&form).await;
        assert_eq!(a.status, 200, "password grant failed: {}", a.text);
        a.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A session JWT for a local password (`POST /sso/session`).
    pub async fn session_jwt(&self, username: &str, password: &str) -> String {
        let r = self
            .post_json(
                "/sso/session",
                None,
                &serde_json::json!({"Username": username, "Password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json().as_str().expect("a JSON string").to_string()
    }

    /// The access token of `admin@acme.test` (see [`Agent::with_account`]).
    pub async fn admin_token(&self) -> String {
        self.password_token("admin@acme.test", ADMIN_PASSWORD).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A self-signed certificate (PEM) valid from `from_days` to `to_days` relative to now.
#[allow(clippy::disallowed_methods)] // a certificate's validity is wall-clock time
pub fn certificate(from_days: i64, to_days: i64) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["idp.test".into()]).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    let key = rcgen::KeyPair::generate().expect("key");
    params.self_signed(&key).expect("cert").pem()
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// Adds a standard user with a password to `acme` on a running agent and returns its token.
pub async fn user_token(agent: &Agent, email: &str) -> String {
    add_user(&agent.data_dir, "acme", email, false, true);
    agent.password_token(email, USER_PASSWORD).await
}
