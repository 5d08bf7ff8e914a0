//! In-process benchmarks of the sign-in paths (run by `scripts/bench.sh`; `cargo bench
//! --bench sso`): SAML response validations per second, and what `authenticate` adds on top
//! of the identity provider's own token endpoint time. Prints Markdown table rows.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/integration/common.rs"]
mod common;
#[path = "../tests/integration/fake_oidc.rs"]
mod fake_oidc;

use std::time::{Duration, Instant};

use amove_agent::sso::saml::testing::{ResponseSpec, TestIdp, encode};
use amove_agent::sso::saml::{SpConfig, validate_response};
use fake_oidc::{FAKE_ACCESS_TOKEN, FakeIdp, TestAgent, TestKey, TokenReply, at_hash, param};
use serde_json::json;

const CLIENT_ID: &str = "amove-bench-client";
const CB: &str = "http://127.0.0.1:53682/cb";
const ANN: &str = "ann@acme.test";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// SAML: one signed one-assertion response validated over and over on every core.
fn saml_validations() {
    let idp = TestIdp::new().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let acs = "http://localhost:29123/sso/saml/acs";
    let sp = SpConfig {
        sp_entity_id: "https://amove.test/sp".into(),
        acs_url: acs.into(),
        idp_sso_url: "https://idp.test/sso".into(),
        idp_entity_id: Some("https://idp.test".into()),
        certificates: vec![idp.cert_der.clone()],
    };
    let mut spec = ResponseSpec::valid(
        "_req",
        acs,
        &sp.sp_entity_id,
        "https://idp.test",
        "alice@corp.test",
        now,
    );
    spec.attributes = vec![("groups".into(), vec!["engineering".into(), "admins".into()])];
    let response = encode(&spec.build(&idp).unwrap());
    assert!(validate_response(&sp, &response, "_req", now).is_ok());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let run_for = Duration::from_secs(5);
    let started = Instant::now();
    let counts: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while started.elapsed() < run_for {
                        assert!(validate_response(&sp, &response, "_req", now).is_ok());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: usize = counts.iter().sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "| SAML ACS validation, signed one-assertion response ({} bytes), {threads} threads | {rate:.0} validations/s ({:.2} ms each per core) | >= 1,000 /s |",
        response.len(),
        1000.0 * threads as f64 / rate
    );
}

/// OIDC: `authenticate` latency minus the token endpoint's own latency (warm JWKS).
async fn authenticate_overhead() {
    let idp = FakeIdp::start("", None).await;
    let agent = TestAgent::start(|_| {}).await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc("okta", CLIENT_ID, "bench-client-secret", &idp.openid_url())
        .await;
    let http = reqwest::Client::new();
    let token_url = format!("{}/token", idp.origin());
    let (mut total, mut at_idp) = (Vec::new(), Vec::new());
    for i in 0..300 {
        let begun = agent.sso_url(ANN, CB).await.json();
        let url = begun["Url"].as_str().unwrap().to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": idp.issuer(), "aud": CLIENT_ID, "sub": "00u-ann", "email": ANN,
            "email_verified": true, "iat": now, "exp": now + 300,
            "nonce": param(&url, "nonce").unwrap(), "at_hash": at_hash(FAKE_ACCESS_TOKEN),
        });
        idp.reply(TokenReply::IdToken(TestKey::a().sign(&claims)));
        // The IdP's own time: the same token request, made directly.
        let t0 = Instant::now();
        let direct = http
            .post(&token_url)
            .basic_auth(CLIENT_ID, Some("bench-client-secret"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "code-123"),
                ("redirect_uri", CB),
                ("code_verifier", "x"),
            ])
            .send()
            .await
            .unwrap();
        let _ = direct.bytes().await;
        let idp_time = t0.elapsed();
        let t1 = Instant::now();
        let r = agent
            .authenticate(begun["Identifier"].as_str().unwrap(), "code-123", CB)
            .await;
        let auth_time = t1.elapsed();
        assert_eq!(r.status, 200, "{}", r.text);
        if i >= 20 {
            total.push(auth_time);
            at_idp.push(idp_time);
        }
    }
    let (m_total, m_idp) = (median(total.clone()), median(at_idp.clone()));
    println!(
        "| OIDC authenticate (warm JWKS), median over 280 | {:.2} ms in all, {:.2} ms at the IdP's token endpoint: the agent adds {:.2} ms (p99 of all {:.2} ms) | < 3 ms added |",
        m_total.as_secs_f64() * 1e3,
        m_idp.as_secs_f64() * 1e3,
        m_total.saturating_sub(m_idp).as_secs_f64() * 1e3,
        p99(total).as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes flags such as --bench; nothing to parse.
    saml_validations();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(authenticate_overhead());
}
