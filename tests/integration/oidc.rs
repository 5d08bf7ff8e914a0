//! OIDC sign-in (Okta, Entra ID): the whole dance against the real OpenID Provider of
//! `tests/idp/oidc`, the seed's Python sample, and every refusal proven with ID tokens the
//! test crafts and a fake provider serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use amove_agent::clock::Clock;
use amove_agent::login::{self, DesktopCallback};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::fake_oidc::{
    Browser, Endless, FAKE_ACCESS_TOKEN, FakeIdp, PUB_A, RealOp, TestAgent, TestKey, TokenReply,
    at_hash, op_client, param, s256, unsigned,
};

const CLIENT_ID: &str = "amove-test-client";
const CLIENT_SECRET: &str = "fake-client-secret-value-42";
/// A loopback callback nobody serves: fake-provider tests never follow it.
const CB: &str = "http://127.0.0.1:53682/cb";
const ANN: &str = "ann@acme.test";

// ------------------------------------------------------------------------------------------
// Fake-provider fixture

struct Fixture {
    agent: TestAgent,
    idp: FakeIdp,
}

struct Begun {
    identifier: String,
    nonce: String,
    url: String,
}

/// A fake provider (discovery under `prefix`, naming `issuer`), an agent whose account has
/// Ann, and an active `kind` (`okta` / `entraId`) configuration pointing at the provider.
async fn fixture_with(
    kind: &str,
    prefix: &str,
    issuer: Option<&str>,
    tweak: impl FnOnce(&mut amove_agent::config::Settings),
) -> Fixture {
    fixture_with_secret(kind, prefix, issuer, CLIENT_SECRET, tweak).await
}

/// [`fixture_with`] with the configuration's client secret (`""`: a public client).
async fn fixture_with_secret(
    kind: &str,
    prefix: &str,
    issuer: Option<&str>,
    secret: &str,
    tweak: impl FnOnce(&mut amove_agent::config::Settings),
) -> Fixture {
    let idp = FakeIdp::start(prefix, issuer).await;
    let agent = TestAgent::start(tweak).await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc(kind, CLIENT_ID, secret, &idp.openid_url())
        .await;
    Fixture { agent, idp }
}

async fn okta() -> Fixture {
    fixture_with("okta", "", None, |_| {}).await
}

/// An Okta fixture whose configuration has no client secret (a public client).
async fn fixture_public() -> Fixture {
    fixture_with_secret("okta", "", None, "", |_| {}).await
}

impl Fixture {
    async fn begin(&self) -> Begun {
        let a = self.agent.sso_url(ANN, CB).await;
        assert_eq!(a.status, 200, "sso_url: {}", a.text);
        let body = a.json();
        let url = body["Url"].as_str().unwrap().to_string();
        Begun {
            identifier: body["Identifier"].as_str().unwrap().to_string(),
            nonce: param(&url, "nonce").unwrap(),
            url,
        }
    }

    fn now(&self) -> i64 {
        self.agent.clock.now()
    }

    /// Claims of a good Okta ID token for Ann.
    fn claims(&self, nonce: &str) -> Value {
        let now = self.now();
        json!({
            "iss": self.idp.issuer(),
            "aud": CLIENT_ID,
            "sub": "00u-ann",
            "email": ANN,
            "email_verified": true,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "at_hash": at_hash(FAKE_ACCESS_TOKEN),
        })
    }

    /// Makes the provider answer `id_token` and redeems the transaction.
    async fn finish(&self, b: &Begun, id_token: String) -> crate::common::Answer {
        self.idp.reply(TokenReply::IdToken(id_token));
        self.agent.authenticate(&b.identifier, "code-123", CB).await
    }

    /// A whole sign-in with claims changed by `edit`, signed with key A.
    async fn sign_in_with(&self, edit: impl FnOnce(&mut Value)) -> crate::common::Answer {
        let b = self.begin().await;
        let mut c = self.claims(&b.nonce);
        edit(&mut c);
        self.finish(&b, TestKey::a().sign(&c)).await
    }
}

#[track_caller]
fn assert_jwt(a: &crate::common::Answer) -> String {
    assert_eq!(a.status, 200, "authenticate: {}", a.text);
    let jwt = a.json().as_str().map(str::to_string).unwrap_or_default();
    assert_eq!(jwt.split('.').count(), 3, "not a JWT: {}", a.text);
    jwt
}

async fn whoami(agent: &TestAgent, token: &str) -> Value {
    let a = agent.get("/sso/whoami", Some(token)).await;
    assert_eq!(a.status, 200, "whoami: {}", a.text);
    a.json()
}

// ------------------------------------------------------------------------------------------
// The happy path with the fake provider (what the refusals below are measured against)

#[tokio::test]
async fn crafted_good_token_signs_in_with_pkce_state_nonce_and_basic_auth() {
    let f = okta().await;
    let b = f.begin().await;
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", CB),
        ("code_challenge_method", "S256"),
        ("login_hint", ANN),
    ] {
        assert_eq!(param(&b.url, k).as_deref(), Some(v), "{k} in {}", b.url);
    }
    let scope = param(&b.url, "scope").unwrap();
    for s in ["openid", "email", "profile"] {
        assert!(scope.split(' ').any(|x| x == s), "{scope}");
    }
    assert!(param(&b.url, "state").is_some_and(|s| s.len() >= 32));
    assert!(b.url.starts_with(&format!("{}/authorize?", f.idp.origin())));

    let jwt = assert_jwt(&f.finish(&b, TestKey::a().sign(&f.claims(&b.nonce))).await);
    let me = whoami(&f.agent, &jwt).await;
    assert_eq!(me["Username"], ANN);
    assert_eq!(me["Account"], "acme");
    // The session: user, account, role, how, and the default 8 hours.
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["email"], ANN);
    assert_eq!(claims["acct"], "acme");
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["amr"], "okta");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        8 * 3600
    );

    let (form, auth) = f.idp.last_token_request().unwrap();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "code-123");
    assert_eq!(form["redirect_uri"], CB);
    assert_eq!(
        s256(&form["code_verifier"]),
        param(&b.url, "code_challenge").unwrap(),
        "the verifier sent must be the one the challenge was made from"
    );
    assert!(auth.is_some_and(|h| h.starts_with("Basic ")));
    assert!(!form.contains_key("client_secret"));

    let audit = f.agent.audit();
    assert!(
        audit
            .iter()
            .any(|(a, o, d)| a == "signin" && o == "ok" && d.contains("linked to subject 00u-ann")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn uses_client_secret_post_when_the_provider_offers_only_that() {
    let f = okta().await;
    f.idp.set_auth_methods(&["client_secret_post"]);
    assert_jwt(&f.sign_in_with(|_| {}).await);
    let (form, auth) = f.idp.last_token_request().unwrap();
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert!(auth.is_none());
    // The configuration says which method the agent chose.
    let got = f
        .agent
        .get("/sso/get_okta", Some(&f.agent.admin_token()))
        .await
        .json();
    assert_eq!(got["ClientAuth"], "client_secret_post", "{got}");
}

#[tokio::test]
async fn a_public_client_sends_its_client_id_and_verifier_and_no_secret() {
    let f = fixture_public().await;
    // Even an IdP that lists only secret methods (as Entra ID does) gets no secret.
    f.idp
        .set_auth_methods(&["client_secret_basic", "client_secret_post"]);
    let b = f.begin().await;
    assert_jwt(&f.finish(&b, TestKey::a().sign(&f.claims(&b.nonce))).await);
    let (form, auth) = f.idp.last_token_request().unwrap();
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(!form.contains_key("client_secret"), "{form:?}");
    assert!(auth.is_none(), "{auth:?}");
    assert_eq!(
        s256(&form["code_verifier"]),
        param(&b.url, "code_challenge").unwrap()
    );
    let got = f
        .agent
        .get("/sso/get_okta", Some(&f.agent.admin_token()))
        .await
        .json();
    assert_eq!(got["ClientAuth"], "none");
    assert_eq!(got["ClientSecret"], Value::Null);
}

// ------------------------------------------------------------------------------------------
// ID token refusals

#[tokio::test]
async fn refuses_alg_none() {
    let f = okta().await;
    let b = f.begin().await;
    let t = unsigned(&json!({"alg": "none", "kid": "key-a"}), &f.claims(&b.nonce));
    f.finish(&b, t)
        .await
        .assert_problem(499, "SECURITY", "alg none");
}

#[tokio::test]
async fn refuses_a_bad_signature() {
    let f = okta().await;
    let b = f.begin().await;
    // Right kid, wrong key: what a forger without the IdP's key produces.
    let t = TestKey::attacker().sign(&f.claims(&b.nonce));
    f.finish(&b, t)
        .await
        .assert_problem(499, "SECURITY", "signature does not verify");
}

#[tokio::test]
async fn refuses_hs256_signed_with_the_rsa_public_key() {
    let f = okta().await;
    let b = f.begin().await;
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("key-a".into());
    let t = jsonwebtoken::encode(
        &h,
        &f.claims(&b.nonce),
        &EncodingKey::from_secret(PUB_A.as_bytes()),
    )
    .unwrap();
    f.finish(&b, t)
        .await
        .assert_problem(499, "SECURITY", "algorithm HS256 is not allowed");
}

#[tokio::test]
async fn refuses_a_wrong_issuer() {
    let f = okta().await;
    f.sign_in_with(|c| c["iss"] = json!("https://evil.example.com"))
        .await
        .assert_problem(499, "SECURITY", "issuer 'https://evil.example.com'");
}

#[tokio::test]
async fn refuses_a_discovery_document_naming_another_issuer() {
    let f = fixture_with("okta", "", Some("https://login.example.com"), |_| {}).await;
    f.agent.sso_url(ANN, CB).await.assert_problem(
        499,
        "SSO",
        "names issuer 'https://login.example.com'",
    );
}

#[tokio::test]
async fn refuses_a_wrong_audience() {
    let f = okta().await;
    f.sign_in_with(|c| c["aud"] = json!("another-client"))
        .await
        .assert_problem(499, "SECURITY", "aud does not contain the client id");
}

#[tokio::test]
async fn refuses_several_audiences_without_azp() {
    let f = okta().await;
    f.sign_in_with(|c| c["aud"] = json!([CLIENT_ID, "another-client"]))
        .await
        .assert_problem(499, "SECURITY", "several audiences but no authorized party");
    // With azp naming us, the same audiences are fine.
    assert_jwt(
        &f.sign_in_with(|c| {
            c["aud"] = json!([CLIENT_ID, "another-client"]);
            c["azp"] = json!(CLIENT_ID);
        })
        .await,
    );
}

#[tokio::test]
async fn refuses_an_expired_id_token() {
    let f = okta().await;
    let now = f.now();
    f.sign_in_with(|c| {
        c["iat"] = json!(now - 900);
        c["exp"] = json!(now - 121);
    })
    .await
    .assert_problem(499, "SECURITY", "it expired at");
    // Within the two minutes of skew it is still accepted.
    assert_jwt(&f.sign_in_with(|c| c["exp"] = json!(now - 100)).await);
}

#[tokio::test]
async fn refuses_an_id_token_issued_in_the_future() {
    let f = okta().await;
    let now = f.now();
    f.sign_in_with(|c| c["iat"] = json!(now + 300))
        .await
        .assert_problem(499, "SECURITY", "issued in the future");
}

#[tokio::test]
async fn refuses_an_id_token_without_sub() {
    let f = okta().await;
    f.sign_in_with(|c| {
        c.as_object_mut().unwrap().remove("sub");
    })
    .await
    .assert_problem(499, "SECURITY", "no subject (sub)");
}

#[tokio::test]
async fn refuses_a_nonce_mismatch_and_records_why() {
    let f = okta().await;
    f.sign_in_with(|c| c["nonce"] = json!("some-other-nonce"))
        .await
        .assert_problem(499, "SECURITY", "nonce is not the one of this sign-in");
    let audit = f.agent.audit();
    assert!(
        audit
            .iter()
            .any(|(a, o, d)| a == "signin" && o == "refused" && d.contains("nonce")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn refuses_a_missing_nonce() {
    let f = okta().await;
    f.sign_in_with(|c| {
        c.as_object_mut().unwrap().remove("nonce");
    })
    .await
    .assert_problem(499, "SECURITY", "it has no nonce");
}

#[tokio::test]
async fn refuses_an_at_hash_that_does_not_match() {
    let f = okta().await;
    f.sign_in_with(|c| c["at_hash"] = json!(at_hash("another-access-token")))
        .await
        .assert_problem(499, "SECURITY", "at_hash");
}

#[tokio::test]
async fn refuses_an_unknown_kid_even_after_one_rate_limited_refetch() {
    let f = okta().await;
    assert_jwt(&f.sign_in_with(|_| {}).await);
    assert_eq!(f.idp.jwks_fetches(), 1);
    let stranger = TestKey {
        kid: "key-unknown".into(),
        pem: crate::fake_oidc::KEY_B,
    };

    let b = f.begin().await;
    f.finish(&b, stranger.sign(&f.claims(&b.nonce)))
        .await
        .assert_problem(499, "SECURITY", "even after fetching it again");
    assert_eq!(f.idp.jwks_fetches(), 2, "one refetch for the unknown kid");

    // Within the refetch interval another unknown kid does not make the agent fetch again.
    let b = f.begin().await;
    f.finish(&b, stranger.sign(&f.claims(&b.nonce)))
        .await
        .assert_problem(499, "SECURITY", "not fetched again yet");
    assert_eq!(f.idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn accepts_a_rotated_key_after_refetching_the_jwks() {
    let f = okta().await;
    assert_jwt(&f.sign_in_with(|_| {}).await);
    f.idp.set_jwks(vec![TestKey::b()]);
    let b = f.begin().await;
    let jwt = assert_jwt(&f.finish(&b, TestKey::b().sign(&f.claims(&b.nonce))).await);
    assert_eq!(whoami(&f.agent, &jwt).await["Username"], ANN);
    assert_eq!(f.idp.jwks_fetches(), 2);
}

// ------------------------------------------------------------------------------------------
// Token endpoint failures

#[tokio::test]
async fn token_endpoint_error_is_reported_with_the_idps_words_and_no_secret() {
    let f = okta().await;
    let b = f.begin().await;
    f.idp.reply(TokenReply::Raw(
        400,
        json!({"error": "invalid_grant", "error_description": "The code has expired."}).to_string(),
    ));
    let a = f.agent.authenticate(&b.identifier, "code-123", CB).await;
    a.assert_problem(499, "SSO", "invalid_grant (The code has expired.)");
    assert!(!a.text.contains(CLIENT_SECRET) && !a.text.contains("code-123"));
}

#[tokio::test]
async fn malformed_token_response_is_an_sso_error() {
    let f = okta().await;
    let b = f.begin().await;
    f.idp
        .reply(TokenReply::Raw(200, "<html>surprise</html>".into()));
    f.agent
        .authenticate(&b.identifier, "code-123", CB)
        .await
        .assert_problem(499, "SSO", "not a token response");

    let b = f.begin().await;
    f.idp.reply(TokenReply::Raw(
        200,
        json!({"access_token": "x", "token_type": "Bearer"}).to_string(),
    ));
    f.agent
        .authenticate(&b.identifier, "code-123", CB)
        .await
        .assert_problem(499, "SSO", "has no id_token");
}

/// What a provider may send before the agent stops reading: the limit and the sockets'
/// buffers, far less than a provider streaming for the request's whole timeout (~64 MB/s).
const STREAMED_AT_MOST: usize = 8 << 20;

#[tokio::test]
async fn an_endless_token_response_is_cut_off_at_its_size_limit() {
    let f = fixture_with("okta", "", None, |s| s.idp_timeout = Duration::from_secs(4)).await;
    let b = f.begin().await;
    f.idp.reply(TokenReply::Endless);
    let a = f.agent.authenticate(&b.identifier, "code-123", CB).await;
    a.assert_problem(499, "SSO", "answered more than 256 KiB");
    let sent = f.idp.streamed();
    assert!(sent < STREAMED_AT_MOST, "the agent read {sent} bytes");
}

#[tokio::test]
async fn endless_discovery_and_jwks_documents_are_cut_off_at_their_size_limit() {
    let f = fixture_with("okta", "", None, |s| s.idp_timeout = Duration::from_secs(4)).await;
    f.idp.set_endless(Some(Endless::Discovery));
    f.agent
        .sso_url(ANN, CB)
        .await
        .assert_problem(499, "SSO", "is too large (over 512 KiB)");
    let sent = f.idp.streamed();
    assert!(sent < STREAMED_AT_MOST, "the agent read {sent} bytes");

    // A failed discovery is not cached: the next login fetches it again, and the JWKS is
    // read once the code is exchanged.
    f.idp.set_endless(Some(Endless::Jwks));
    let b = f.begin().await;
    let token = TestKey::a().sign(&f.claims(&b.nonce));
    f.finish(&b, token)
        .await
        .assert_problem(499, "SSO", "is too large (over 512 KiB)");
    let sent = f.idp.streamed();
    assert!(sent < 2 * STREAMED_AT_MOST, "the agent read {sent} bytes");
}

#[tokio::test]
async fn hanging_token_endpoint_is_cut_off_by_the_configured_timeout() {
    let f = fixture_with("okta", "", None, |s| s.idp_timeout = Duration::from_secs(2)).await;
    let b = f.begin().await;
    f.idp.reply(TokenReply::Hang);
    let started = Instant::now();
    let a = f.agent.authenticate(&b.identifier, "code-123", CB).await;
    a.assert_problem(499, "SSO", "did not answer within 2 s");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_request_outliving_the_request_timeout_is_cut_off_with_408() {
    // A provider that takes connections and never answers, with an IdP timeout longer than
    // the agent's request timeout: the request timeout is what ends `sso_url`.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let openid_url = format!(
        "http://{}/.well-known/openid-configuration",
        silent.local_addr().unwrap()
    );
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            open.push(c);
        }
    });
    let agent = TestAgent::start(|s| {
        s.request_timeout = Duration::from_secs(1);
        s.idp_timeout = Duration::from_secs(60);
    })
    .await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc("okta", CLIENT_ID, CLIENT_SECRET, &openid_url)
        .await;
    let started = Instant::now();
    agent.sso_url(ANN, CB).await.assert_problem(
        408,
        "DEFAULT",
        "took longer than 1 s and was cancelled",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Cut off before its write was queued: nothing was recorded.
    let pending = agent.select("SELECT count(*) FROM login_transactions", |r| {
        r.get::<_, i64>(0)
    });
    assert_eq!(pending, vec![0]);
    held.abort();
}

// ------------------------------------------------------------------------------------------
// Transactions and callback URLs

#[tokio::test]
async fn an_identifier_works_once() {
    let f = okta().await;
    let b = f.begin().await;
    let t = TestKey::a().sign(&f.claims(&b.nonce));
    assert_jwt(&f.finish(&b, t.clone()).await);
    f.finish(&b, t)
        .await
        .assert_problem(499, "SECURITY", "already used");
    f.agent
        .authenticate("made-up-identifier", "code-123", CB)
        .await
        .assert_problem(499, "SECURITY", "unknown or has expired");
}

#[tokio::test]
async fn only_the_whole_identifier_redeems_not_its_id_nor_the_state() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let f = okta().await;
    let b = f.begin().await;
    // The Identifier's first 8 bytes locate the transaction; the other 32 prove possession.
    let mut bytes = URL_SAFE_NO_PAD.decode(&b.identifier).expect("base64url");
    assert_eq!(bytes.len(), 40);
    bytes[39] ^= 1;
    let same_id_other_secret = URL_SAFE_NO_PAD.encode(&bytes);
    let state = param(&b.url, "state").unwrap();
    assert_ne!(state, b.identifier);
    for forged in [
        same_id_other_secret.as_str(),
        state.as_str(),
        &b.identifier[..b.identifier.len() - 1],
        &format!("{}=", b.identifier),
        "' OR 1=1 --",
    ] {
        f.agent
            .authenticate(forged, "code-123", CB)
            .await
            .assert_problem(499, "SECURITY", "unknown or has expired");
    }
    assert!(f.idp.last_token_request().is_none(), "no code was redeemed");
    // None of that burnt the real one.
    let t = TestKey::a().sign(&f.claims(&b.nonce));
    assert_jwt(&f.finish(&b, t).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_identifier_let_exactly_one_through() {
    let f = okta().await;
    let b = f.begin().await;
    f.idp
        .reply(TokenReply::IdToken(TestKey::a().sign(&f.claims(&b.nonce))));
    let go = || f.agent.authenticate(&b.identifier, "code-123", CB);
    let (a1, a2, a3, a4) = tokio::join!(go(), go(), go(), go());
    let answers = [a1, a2, a3, a4];
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    for a in answers.iter().filter(|a| a.status != 200) {
        a.assert_problem(499, "SECURITY", "already used");
    }
}

#[tokio::test]
async fn a_different_callback_url_is_refused_and_burns_the_identifier() {
    let f = okta().await;
    let b = f.begin().await;
    f.idp
        .reply(TokenReply::IdToken(TestKey::a().sign(&f.claims(&b.nonce))));
    f.agent
        .authenticate(&b.identifier, "code-123", "http://127.0.0.1:53682/other")
        .await
        .assert_problem(499, "SECURITY", "CallbackUrl is not the one");
    f.agent
        .authenticate(&b.identifier, "code-123", CB)
        .await
        .assert_problem(499, "SECURITY", "already used");
    assert!(f.idp.last_token_request().is_none(), "no code was redeemed");
}

#[tokio::test]
async fn an_expired_transaction_is_refused_and_purged() {
    let f = okta().await;
    let b = f.begin().await;
    f.agent.clock.advance(10 * 60 + 1);
    // The ID token itself would be fine now: only the transaction is too old.
    f.idp
        .reply(TokenReply::IdToken(TestKey::a().sign(&f.claims(&b.nonce))));
    f.agent
        .authenticate(&b.identifier, "code-123", CB)
        .await
        .assert_problem(499, "SECURITY", "this sign-in expired");
    assert!(f.idp.last_token_request().is_none(), "no code was redeemed");
    // The next sso_url purges it.
    f.begin().await;
    let n: i64 = f
        .agent
        .state
        .db
        .read_blocking(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM login_transactions", [], |r| r.get(0))?)
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn disallowed_callback_urls_are_refused_until_an_admin_allows_them() {
    let f = okta().await;
    for bad in [
        "https://app.acme.test/cb",
        "http://evil.example.com/cb",
        "http://127.0.0.1.evil.example.com/cb",
        "javascript:alert(1)",
    ] {
        f.agent
            .sso_url(ANN, bad)
            .await
            .assert_problem(499, "SECURITY", "CallbackUrl");
    }
    for ok in [
        "http://localhost:1234/cb",
        "http://[::1]:9/cb",
        "amove://sso/callback",
    ] {
        assert_eq!(f.agent.sso_url(ANN, ok).await.status, 200, "{ok}");
    }
    let admin = f.agent.admin_token();
    let put = f
        .agent
        .put_json(
            "/sso/callback_urls",
            Some(&admin),
            &json!({"CallbackUrls": ["https://app.acme.test/cb"]}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        f.agent.get("/sso/callback_urls", Some(&admin)).await.json(),
        json!({"CallbackUrls": ["https://app.acme.test/cb"], "Managed": false})
    );
    assert_eq!(
        f.agent
            .sso_url(ANN, "https://app.acme.test/cb")
            .await
            .status,
        200
    );
    f.agent
        .put_json(
            "/sso/callback_urls",
            Some(&admin),
            &json!({"CallbackUrls": ["http://app.acme.test/cb"]}),
        )
        .await
        .assert_problem(499, "DEFAULT", "must be an https URL");
}

// ------------------------------------------------------------------------------------------
// Who signs in

#[tokio::test]
async fn the_idps_identity_signs_in_not_the_typed_username() {
    let f = okta().await;
    f.agent.add_user("bob@acme.test", "Bob Example");
    // Bob types his name, but the IdP says Ann signed in: the session is Ann's.
    let a = f.agent.sso_url("bob@acme.test", CB).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let id = a.json()["Identifier"].as_str().unwrap().to_string();
    let nonce = param(&url, "nonce").unwrap();
    f.idp
        .reply(TokenReply::IdToken(TestKey::a().sign(&f.claims(&nonce))));
    let jwt = assert_jwt(&f.agent.authenticate(&id, "code-123", CB).await);
    assert_eq!(whoami(&f.agent, &jwt).await["Username"], ANN);
}

#[tokio::test]
async fn a_second_user_cannot_use_the_first_users_link() {
    // Entra ID: the subject is tid/oid; the email is mutable and only matches on first login.
    let f = fixture_with("entraId", "/tenant-1/v2.0", None, |_| {}).await;
    f.agent.add_user("bob@acme.test", "Bob Example");
    let entra = |oid: &str, email: &str| {
        let oid = oid.to_string();
        let email = email.to_string();
        move |c: &mut Value| {
            c["oid"] = json!(oid);
            c["tid"] = json!("tenant-1");
            c["sub"] = json!(format!("pairwise-{oid}"));
            c["email"] = json!(email);
            // Entra vouches for the email (the xms_edov optional claim).
            c["xms_edov"] = json!(true);
            c.as_object_mut().unwrap().remove("email_verified");
        }
    };
    assert_jwt(&f.sign_in_with(entra("oid-ann", ANN)).await);

    // Another directory user sets their (mutable) email to Ann's: refused.
    f.sign_in_with(entra("oid-mallory", ANN))
        .await
        .assert_problem(
            401,
            "AUTH",
            "already linked to a different Entra ID identity",
        );

    // Ann's subject always resolves to Ann, whatever email the token carries now.
    let jwt = assert_jwt(&f.sign_in_with(entra("oid-ann", "bob@acme.test")).await);
    assert_eq!(whoami(&f.agent, &jwt).await["Username"], ANN);
    let links: Vec<(String, String)> = f
        .agent
        .state
        .db
        .read_blocking(|c| {
            let mut s = c.prepare("SELECT issuer, subject FROM user_idp_links")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .unwrap();
    assert_eq!(
        links,
        vec![(f.idp.issuer(), "tenant-1/oid-ann".to_string())]
    );
}

#[tokio::test]
async fn entra_multi_tenant_issuer_template_is_resolved_from_tid() {
    let f = entra_multi_tenant(&["t-123", "t-999"]).await;
    let origin = f.idp.origin().to_string();
    let tenant = |tid: &str, iss_tid: &str| {
        let (tid, iss) = (tid.to_string(), format!("{origin}/{iss_tid}/v2.0"));
        move |c: &mut Value| {
            c["iss"] = json!(iss);
            c["tid"] = json!(tid);
            c["oid"] = json!("oid-ann");
            c["preferred_username"] = json!(ANN);
        }
    };
    assert_jwt(&f.sign_in_with(tenant("t-123", "t-123")).await);
    f.sign_in_with(tenant("t-123", "t-999"))
        .await
        .assert_problem(499, "SECURITY", "is not '");
    f.sign_in_with(|c| {
        c["iss"] = json!(format!("{origin}/t-123/v2.0"));
        c["oid"] = json!("oid-ann");
    })
    .await
    .assert_problem(499, "SECURITY", "no usable tid");
}

/// An Entra ID configuration at a multi-tenant (`/common`) endpoint whose discovery issuer is
/// the `{tenantid}` template, allowing `allowed`.
async fn entra_multi_tenant(allowed: &[&str]) -> Fixture {
    entra_multi_tenant_at(Some("{origin}/{tenantid}/v2.0"), allowed).await
}

async fn entra_multi_tenant_at(issuer: Option<&str>, allowed: &[&str]) -> Fixture {
    let idp = FakeIdp::start("/common/v2.0", issuer).await;
    let agent = TestAgent::start(|_| {}).await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc_with(
            "entraId",
            CLIENT_ID,
            CLIENT_SECRET,
            &idp.openid_url(),
            json!({ "AllowedTenants": allowed }),
        )
        .await;
    Fixture { agent, idp }
}

/// Claims edits of an Entra token from tenant `tid` for object `oid`, carrying `upn` as its
/// UPN (`preferred_username`) and no verified email.
fn entra_user(origin: &str, tid: &str, oid: &str, upn: &str) -> impl FnOnce(&mut Value) + use<> {
    let (iss, tid, oid, upn) = (
        format!("{origin}/{tid}/v2.0"),
        tid.to_string(),
        oid.to_string(),
        upn.to_string(),
    );
    move |c: &mut Value| {
        c["iss"] = json!(iss);
        c["tid"] = json!(tid);
        c["oid"] = json!(oid);
        c["sub"] = json!(format!("pairwise-{oid}"));
        c["preferred_username"] = json!(upn);
        c["email"] = json!(upn);
        let c = c.as_object_mut().unwrap();
        c.remove("email_verified");
    }
}

#[tokio::test]
async fn a_multi_tenant_entra_configuration_needs_allowed_tenants() {
    let idp = FakeIdp::start("/common/v2.0", Some("{origin}/{tenantid}/v2.0")).await;
    let agent = TestAgent::start(|_| {}).await;
    let setup = |extra: Value| {
        let mut body = json!({
            "ClientId": CLIENT_ID, "ClientSecret": CLIENT_SECRET,
            "OpenIdURL": idp.openid_url(), "Active": true,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let token = agent.admin_token();
    for extra in [json!({}), json!({"AllowedTenants": []})] {
        agent
            .post_json("/sso/setup_entraId", Some(&token), &setup(extra))
            .await
            .assert_problem(499, "DEFAULT", "AllowedTenants is required");
    }
    agent
        .post_json(
            "/sso/setup_entraId",
            Some(&token),
            &setup(json!({"AllowedTenants": ["not/a tenant"]})),
        )
        .await
        .assert_problem(499, "DEFAULT", "AllowedTenants");
    let saved = agent
        .post_json(
            "/sso/setup_entraId",
            Some(&token),
            &setup(json!({"AllowedTenants": ["T-1", "t-1", "t-2"]})),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json()["AllowedTenants"], json!(["t-1", "t-2"]));
    // The list cannot be emptied while the URL stays multi-tenant.
    let mut update = setup(json!({"AllowedTenants": []}));
    update["Id"] = saved.json()["Id"].clone();
    agent
        .put_json("/sso/update_entraId", Some(&token), &update)
        .await
        .assert_problem(499, "DEFAULT", "AllowedTenants is required");
}

#[tokio::test]
async fn another_entra_tenant_never_takes_over_a_linked_user() {
    // The attack: in a tenant of their own, an attacker sets a user's mail and UPN-like name
    // to the victim's, consents to the multi-tenant app and signs in.
    let f = entra_multi_tenant(&["t-corp", "t-partner"]).await;
    let origin = f.idp.origin().to_string();
    // The victim signs in through the real tenant and is linked.
    let jwt = assert_jwt(
        &f.sign_in_with(entra_user(&origin, "t-corp", "oid-ann", ANN))
            .await,
    );
    assert_eq!(whoami(&f.agent, &jwt).await["Username"], ANN);

    // A tenant that is not allowed: refused, naming the tenant, and audited.
    f.sign_in_with(entra_user(&origin, "t-evil", "oid-mallory", ANN))
        .await
        .assert_problem(
            401,
            "AUTH",
            "tenant t-evil is not one of this account's AllowedTenants",
        );
    let audit = f
        .agent
        .get("/sso/audit?pageSize=20", Some(&f.agent.admin_token()))
        .await
        .text;
    assert!(audit.contains("t-evil is not one of"), "{audit}");

    // An allowed tenant, same email: the victim is linked already, so refused.
    f.sign_in_with(entra_user(&origin, "t-partner", "oid-mallory", ANN))
        .await
        .assert_problem(
            401,
            "AUTH",
            "already linked to a different Entra ID identity",
        );

    // Even with the victim's very object id, another tenant's issuer is another identity.
    f.sign_in_with(entra_user(&origin, "t-partner", "oid-ann", ANN))
        .await
        .assert_problem(
            401,
            "AUTH",
            "already linked to a different Entra ID identity",
        );

    // The victim still signs in, and only one link exists.
    assert_jwt(
        &f.sign_in_with(entra_user(&origin, "t-corp", "oid-ann", ANN))
            .await,
    );
    let links: i64 = f
        .agent
        .state
        .db
        .read_blocking(
            |c| Ok(c.query_row("SELECT COUNT(*) FROM user_idp_links", [], |r| r.get(0))?),
        )
        .unwrap();
    assert_eq!(links, 1);
}

#[tokio::test]
async fn a_multi_tenant_issuer_with_no_allowed_tenants_signs_nobody_in() {
    // A configuration whose URL is not one of Microsoft's multi-tenant names but whose
    // discovery issuer is the template (saved before the rule, or a custom domain).
    let idp = FakeIdp::start("/tenant-any/v2.0", Some("{origin}/{tenantid}/v2.0")).await;
    let agent = TestAgent::start(|_| {}).await;
    agent.add_user(ANN, "Ann Example");
    agent
        .setup_oidc("entraId", CLIENT_ID, CLIENT_SECRET, &idp.openid_url())
        .await;
    let f = Fixture { agent, idp };
    let origin = f.idp.origin().to_string();
    f.sign_in_with(entra_user(&origin, "t-corp", "oid-ann", ANN))
        .await
        .assert_problem(401, "AUTH", "lists no AllowedTenants");
}

#[tokio::test]
async fn a_single_tenant_entra_configuration_accepts_only_its_tenant() {
    let f = fixture_with("entraId", "/t-corp/v2.0", None, |_| {}).await;
    let origin = f.idp.origin().to_string();
    // The issuer is right (the fake signs what the test says), the tid is another tenant.
    let other = entra_user(&origin, "t-evil", "oid-ann", ANN);
    let iss = format!("{origin}/t-corp/v2.0");
    f.sign_in_with(move |c| {
        other(c);
        c["iss"] = json!(iss);
    })
    .await
    .assert_problem(
        401,
        "AUTH",
        "t-evil is not the tenant of this configuration",
    );
    assert_jwt(
        &f.sign_in_with(entra_user(&origin, "t-corp", "oid-ann", ANN))
            .await,
    );
}

#[tokio::test]
async fn an_unverified_entra_email_links_nobody() {
    let f = fixture_with("entraId", "/t-corp/v2.0", None, |_| {}).await;
    f.sign_in_with(|c| {
        c["tid"] = json!("t-corp");
        c["oid"] = json!("oid-mallory");
        c["email"] = json!(ANN);
        let c = c.as_object_mut().unwrap();
        c.remove("email_verified");
        c.remove("preferred_username");
    })
    .await
    .assert_problem(401, "AUTH", "did not provide a verified email");
}

#[tokio::test]
async fn entra_template_issuer_from_another_origin_is_refused() {
    let f =
        entra_multi_tenant_at(Some("https://login.example.com/{tenantid}/v2.0"), &["t-1"]).await;
    f.agent
        .sso_url(ANN, CB)
        .await
        .assert_problem(499, "SSO", "is not the URL it was fetched from");
}

#[tokio::test]
async fn an_okta_email_links_only_when_okta_says_it_is_verified() {
    let f = okta().await;
    for edit in [
        |c: &mut Value| {
            c.as_object_mut().unwrap().remove("email_verified");
        },
        |c: &mut Value| c["email_verified"] = json!("maybe"),
    ] {
        f.sign_in_with(edit)
            .await
            .assert_problem(401, "AUTH", "verified email");
    }
    assert_jwt(&f.sign_in_with(|_| {}).await);
}

#[tokio::test]
async fn another_accounts_admin_cannot_squat_a_link_and_admins_manage_their_own() {
    let f = okta().await;
    // An admin of another account links this account's IdP identity (issuer and subject are
    // whatever their own IdP writes) to a user of theirs.
    let (other, mallory) = amove_agent::bootstrap::init_account(
        &f.agent.state.db,
        "globex",
        None,
        "mallory@globex.test",
        None,
        &amove_agent::secret::Secret::new("a long enough password"),
        f.now(),
    )
    .unwrap();
    let squat = amove_agent::store::links::Link {
        account_id: other,
        user_id: mallory.id,
        provider: amove_agent::domain::Kind::Okta,
        issuer: f.idp.issuer(),
        subject: "00u-ann".into(),
        linked_at: f.now(),
    };
    f.agent
        .state
        .db
        .write_blocking(move |tx| amove_agent::store::links::insert(tx, &squat))
        .unwrap();
    // Ann still signs in, and is linked in her own account.
    assert_jwt(&f.sign_in_with(|_| {}).await);
    let admin = f.agent.admin_token();
    let links = f.agent.get("/sso/links", Some(&admin)).await.json();
    assert_eq!(links.as_array().map(Vec::len), Some(1), "{links}");
    assert_eq!(links[0]["Username"], ANN);
    assert_eq!(links[0]["Subject"], "00u-ann");
    // The admin removes it (audited); the next sign-in links afresh.
    let id = links[0]["Id"].as_i64().unwrap();
    let del = f
        .agent
        .send(
            f.agent
                .http
                .delete(format!("{}/sso/links/{id}", f.agent.base))
                .query(&[("token", &admin)]),
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(
        f.agent.get("/sso/links", Some(&admin)).await.json(),
        json!([])
    );
    assert!(
        f.agent
            .get("/sso/audit", Some(&admin))
            .await
            .text
            .contains("removed the Okta link of ann@acme.test")
    );
    assert_jwt(&f.sign_in_with(|_| {}).await);
    // Another account's link is not this admin's to see or remove.
    let theirs: i64 = f.agent.select(
        "SELECT id FROM user_idp_links WHERE account_id <> (SELECT account_id FROM users WHERE email = 'ann@acme.test')",
        |r| r.get(0),
    )[0];
    let r = f
        .agent
        .send(
            f.agent
                .http
                .delete(format!("{}/sso/links/{theirs}", f.agent.base))
                .query(&[("token", &admin)]),
        )
        .await;
    r.assert_problem(499, "NOT_FOUND", "no IdP link");
}

#[tokio::test]
async fn a_login_completes_only_against_the_configuration_it_started_with() {
    // An update keeps the configuration's Id: a login started before it must not finish
    // against the changed IdP settings.
    let f = okta().await;
    let b = f.begin().await;
    let admin = f.agent.admin_token();
    let mut cfg = f.agent.get("/sso/get_okta", Some(&admin)).await.json();
    cfg["ClientSecret"] = json!(CLIENT_SECRET);
    let upd = f
        .agent
        .put_json("/sso/update_okta", Some(&admin), &cfg)
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    f.finish(&b, TestKey::a().sign(&f.claims(&b.nonce)))
        .await
        .assert_problem(499, "SSO", "changed since this sign-in started");
    // A login started after the update completes.
    assert_jwt(&f.sign_in_with(|_| {}).await);
}

#[tokio::test]
async fn an_unknown_identity_is_told_to_ask_an_admin() {
    let f = okta().await;
    f.sign_in_with(|c| {
        c["sub"] = json!("00u-carol");
        c["email"] = json!("carol@acme.test");
    })
    .await
    .assert_problem(401, "AUTH", "ask an admin");
}

#[tokio::test]
async fn okta_email_marked_unverified_does_not_link() {
    let f = okta().await;
    f.sign_in_with(|c| c["email_verified"] = json!(false))
        .await
        .assert_problem(401, "AUTH", "did not provide a verified email");
    assert_jwt(&f.sign_in_with(|_| {}).await);
}

#[tokio::test]
async fn inactive_users_are_refused() {
    let f = okta().await;
    amove_agent::bootstrap::set_user_status(
        &f.agent.state.db,
        "acme",
        ANN,
        amove_agent::store::users::Status::Inactive,
        f.now(),
    )
    .unwrap();
    f.sign_in_with(|_| {})
        .await
        .assert_problem(401, "AUTH", "inactive");
}

// ------------------------------------------------------------------------------------------
// The real OpenID Provider

pub(crate) const ALICE: &str = "alice@example.com";
pub(crate) const ALICE_PASSWORD: &str = "alice-password";
const TENANT: &str = "11111111-1111-1111-1111-111111111111";
const ALICE_OID: &str = "00000000-0000-0000-0000-0000000000a1";

pub(crate) fn op_users() -> Value {
    json!([{
        "accountId": ALICE_OID,
        "email": ALICE,
        "email_verified": true,
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "password": ALICE_PASSWORD,
        "oid": ALICE_OID,
        "tid": TENANT,
    }, {
        "accountId": "bob",
        "email": "bob@example.com",
        "email_verified": false,
        "password": "bob-password",
    }])
}

/// The real OP with one client whose redirect URI is `callback`, and an agent whose
/// account has Alice and an active `kind` configuration for it.
async fn real(kind: &str, issuer_path: &str, auth: &str) -> (TestAgent, RealOp) {
    real_with(kind, issuer_path, auth, CLIENT_SECRET).await
}

/// [`real`] with the client secret the agent is given (`""`: none, a public client).
async fn real_with(
    kind: &str,
    issuer_path: &str,
    auth: &str,
    agent_secret: &str,
) -> (TestAgent, RealOp) {
    let agent = TestAgent::start(|_| {}).await;
    let cb = agent.own_callback();
    let op = RealOp::start(&json!({
        "issuerPath": issuer_path,
        "clients": [op_client(CLIENT_ID, CLIENT_SECRET, auth, &[&cb, "amove://sso/callback"])],
        "users": op_users(),
        "pkceRequired": true,
    }))
    .await;
    agent.add_user(ALICE, "Alice Example");
    let openid_url = format!(
        "{}{issuer_path}/.well-known/openid-configuration",
        op.origin
    );
    agent
        .setup_oidc(kind, CLIENT_ID, agent_secret, &openid_url)
        .await;
    (agent, op)
}

/// sso_url → the provider's login → the redirect with the code → authenticate.
async fn real_sign_in(agent: &TestAgent, browser: &Browser) -> String {
    let cb = agent.own_callback();
    let a = agent.sso_url(ALICE, &cb).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let back = browser.login(&url, ALICE, ALICE_PASSWORD, &cb).await;
    assert_eq!(param(&back, "state"), param(&url, "state"));
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    assert_jwt(&agent.authenticate(&identifier, &code, &cb).await)
}

#[tokio::test]
async fn okta_shaped_sign_in_end_to_end_against_the_real_provider() {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    let browser = Browser::new();
    let jwt = real_sign_in(&agent, &browser).await;
    let me = whoami(&agent, &jwt).await;
    assert_eq!(me["Username"], ALICE);
    assert_eq!(me["Account"], "acme");

    // The session token is accepted by the token exchange's session-token grant.
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ssocircle:api:sessiontoken")
        .append_pair("password", &jwt)
        .finish();
    let a = agent
        .send(
            agent
                .http
                .post(format!("{}/sso/ttapi/2.0/authz/0/authn", agent.base))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let access = a.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(whoami(&agent, &access).await["Username"], ALICE);

    // A second login (the provider remembers Alice: no form) uses the same link.
    let jwt2 = real_sign_in(&agent, &browser).await;
    assert_eq!(whoami(&agent, &jwt2).await["Username"], ALICE);
    let n: i64 = agent
        .state
        .db
        .read_blocking(
            |c| Ok(c.query_row("SELECT COUNT(*) FROM user_idp_links", [], |r| r.get(0))?),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn entra_shaped_sign_in_end_to_end_with_a_tenant_issuer() {
    let path = format!("/{TENANT}/v2.0");
    let (agent, op) = real("entraId", &path, "client_secret_post").await;
    let jwt = real_sign_in(&agent, &Browser::new()).await;
    assert_eq!(whoami(&agent, &jwt).await["Username"], ALICE);
    let link: (String, String) = agent
        .state
        .db
        .read_blocking(|c| {
            Ok(
                c.query_row("SELECT issuer, subject FROM user_idp_links", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
            )
        })
        .unwrap();
    assert_eq!(
        link,
        (
            format!("{}{path}", op.origin),
            format!("{TENANT}/{ALICE_OID}")
        )
    );
}

#[tokio::test]
async fn a_public_client_signs_in_at_the_real_provider_with_pkce_and_no_secret() {
    // The OP's client is registered with token_endpoint_auth_method "none": it refuses any
    // client authentication, so the sign-in succeeds only as a public client.
    for (kind, path) in [
        ("okta", String::new()),
        ("entraId", format!("/{TENANT}/v2.0")),
    ] {
        let (agent, _op) = real_with(kind, &path, "none", "").await;
        let got = agent
            .get(&format!("/sso/get_{kind}"), Some(&agent.admin_token()))
            .await
            .json();
        assert_eq!(got["ClientAuth"], "none", "{got}");
        let jwt = real_sign_in(&agent, &Browser::new()).await;
        assert_eq!(whoami(&agent, &jwt).await["Username"], ALICE, "{kind}");
    }
}

#[tokio::test]
async fn the_real_provider_refuses_a_public_client_without_pkce() {
    let (agent, op) = real_with("okta", "", "none", "").await;
    let cb = agent.own_callback();
    let browser = Browser::new();
    let a = agent.sso_url(ALICE, &cb).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();

    // The agent's authorization request, with the PKCE parameters replaced by `challenge`
    // (or left out).
    let with_challenge = |challenge: Option<&str>| {
        let mut u = url::Url::parse(&url).unwrap();
        let mut kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| !k.starts_with("code_challenge"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some(c) = challenge {
            kept.push(("code_challenge".into(), c.into()));
            kept.push(("code_challenge_method".into(), "S256".into()));
        }
        u.query_pairs_mut().clear().extend_pairs(kept);
        u.to_string()
    };

    // No code_challenge in the authorization request: the OP answers an error, no code.
    let back = browser
        .login(&with_challenge(None), ALICE, ALICE_PASSWORD, &cb)
        .await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );
    assert!(param(&back, "code").is_none(), "{back}");

    // A code issued for a challenge is not redeemed without its verifier, asked at the OP's
    // token endpoint as a public client (client_id in the body, no secret); with the
    // verifier the same request succeeds, so the verifier is what was missing.
    let verifier = "a-test-verifier-of-forty-three-or-more-characters-0123456789";
    let back = browser
        .login(
            &with_challenge(Some(&s256(verifier))),
            ALICE,
            ALICE_PASSWORD,
            &cb,
        )
        .await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let redeem = |verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cb.as_str()),
            ("client_id", CLIENT_ID),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        reqwest::Client::new()
            .post(format!("{}/token", op.origin))
            .form(&form)
            .send()
    };
    let resp = redeem(None).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body.get("access_token").is_none() && body.get("id_token").is_none());
    let resp = redeem(Some(verifier)).await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert!(body["id_token"].is_string(), "{body}");
}

#[tokio::test]
async fn a_public_configuration_for_a_confidential_app_says_how_to_fix_it() {
    // The OP expects a secret; the agent has none: the IdP's words, then what to do.
    let (agent, _op) = real_with("okta", "", "client_secret_basic", "").await;
    let cb = agent.own_callback();
    let a = agent.sso_url(ALICE, &cb).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let back = Browser::new().login(&url, ALICE, ALICE_PASSWORD, &cb).await;
    let code = param(&back, "code").unwrap();
    let r = agent.authenticate(&identifier, &code, &cb).await;
    r.assert_problem(
        499,
        "SSO",
        "the IdP refused the authorization code: invalid_client",
    );
    r.assert_problem(
        499,
        "SSO",
        "register the application at the IdP as a native/public app",
    );
}

#[tokio::test]
async fn unverified_okta_email_from_the_real_provider_is_refused() {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    agent.add_user("bob@example.com", "Bob Example");
    let cb = agent.own_callback();
    let a = agent.sso_url("bob@example.com", &cb).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let back = Browser::new()
        .login(&url, "bob@example.com", "bob-password", &cb)
        .await;
    agent
        .authenticate(
            a.json()["Identifier"].as_str().unwrap(),
            &param(&back, "code").unwrap(),
            &cb,
        )
        .await
        .assert_problem(401, "AUTH", "did not provide a verified email");
}

#[tokio::test]
async fn desktop_login_completes_at_the_agents_own_callback() {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    let pending = login::start_desktop_login(&agent.state, ALICE, DesktopCallback::Loopback)
        .await
        .unwrap();
    let url = pending.url.to_string();
    let waiter = tokio::spawn(pending.wait());
    let browser = Browser::new();
    let cb = agent.own_callback();
    let back = browser.login(&url, ALICE, ALICE_PASSWORD, &cb).await;
    // The browser lands on the agent's page, which completes the login.
    let page = browser.http.get(&back).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("You are signed in"), "{html}");
    let session = waiter.await.unwrap().unwrap();
    assert_eq!(session.username, ALICE);
    assert_eq!(session.display_name, "Alice Example");
    assert_eq!(
        whoami(&agent, session.token.expose()).await["Username"],
        ALICE
    );
    // The page redeemed the code: nothing is left to redeem twice.
    let again = browser.http.get(&back).send().await.unwrap();
    assert!(again.text().await.unwrap().contains("Sign-in failed"));
}

#[tokio::test]
async fn callback_page_shows_the_code_to_api_clients_without_redeeming_it() {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    let cb = agent.own_callback();
    let a = agent.sso_url(ALICE, &cb).await;
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let browser = Browser::new();
    let back = browser.login(&url, ALICE, ALICE_PASSWORD, &cb).await;
    let code = param(&back, "code").unwrap();
    let html = browser
        .http
        .get(&back)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("<code id=\"code\">{code}</code>")),
        "{html}"
    );
    // The page shows an Identifier bound to this code, never the Identifier itself.
    assert!(!html.contains(&identifier), "{html}");
    let bound = shown_identifier(&html);
    assert_ne!(bound, identifier);
    // Not redeemed: the client can still authenticate with what the page shows.
    assert_jwt(&agent.authenticate(&bound, &code, &cb).await);
}

/// The value the callback page shows in the Identifier's place.
fn shown_identifier(html: &str) -> String {
    html.split("<code id=\"identifier\">")
        .nth(1)
        .and_then(|r| r.split("</code>").next())
        .unwrap_or_else(|| panic!("no identifier on the page: {html}"))
        .to_string()
}

#[tokio::test]
async fn the_callback_page_never_discloses_the_identifier_to_a_made_up_code() {
    // The state travels in URLs and is no secret: with it and a made-up code, the page shows
    // a value bound to that made-up code, useless with the real one.
    let f = okta().await;
    let own = f.agent.own_callback();
    let a = f.agent.sso_url(ANN, &own).await;
    let identifier = a.json()["Identifier"].as_str().unwrap().to_string();
    let url = a.json()["Url"].as_str().unwrap().to_string();
    let nonce = param(&url, "nonce").unwrap();
    let state = param(&url, "state").unwrap();
    let page = f
        .agent
        .get(&format!("/sso/callback?state={state}&code=made-up"), None)
        .await
        .text;
    assert!(!page.contains(&identifier), "{page}");
    let bound = shown_identifier(&page);
    f.idp
        .reply(TokenReply::IdToken(TestKey::a().sign(&f.claims(&nonce))));
    f.agent
        .authenticate(&bound, "the-real-code", &own)
        .await
        .assert_problem(499, "SECURITY", "unknown or has expired");
    // A forged bound value (right id, wrong MAC) names nothing either.
    let mut forged: Vec<char> = bound.chars().collect();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    f.agent
        .authenticate(&forged, "made-up", &own)
        .await
        .assert_problem(499, "SECURITY", "unknown or has expired");
    // Nothing was consumed: the client's own Identifier still works.
    assert_jwt(
        &f.agent
            .authenticate(&identifier, "the-real-code", &own)
            .await,
    );
}

/// The IdP compares redirect URIs as strings, and the token request repeats the
/// `CallbackUrl` as given: the authorization URL must carry it unchanged, not re-serialized.
#[tokio::test]
async fn the_redirect_uri_goes_out_exactly_as_given() {
    let f = okta().await;
    for callback in [
        CB,
        "http://127.0.0.1:53682",
        "http://LOCALHOST:53682/cb?x=%7e",
        "amove://sso/callback",
    ] {
        let a = f.agent.sso_url(ANN, callback).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let url = a.json()["Url"].as_str().unwrap().to_string();
        assert_eq!(
            param(&url, "redirect_uri").as_deref(),
            Some(callback),
            "{url}"
        );
    }
}

/// The `Identifier` is a bearer secret: it is kept (sealed) only when the agent's own page
/// must show it to an API client's user; for every other callback only its hash is stored.
#[tokio::test]
async fn the_identifier_is_kept_only_for_the_agents_own_callback_page() {
    let f = okta().await;
    let own = f.agent.own_callback();
    let mut started = Vec::new();
    for (callback, kept) in [
        (own.as_str(), true),
        (CB, false),
        ("http://127.0.0.1:53682/sso/callback/", false),
        ("amove://sso/callback", false),
    ] {
        let a = f.agent.sso_url(ANN, callback).await;
        assert_eq!(a.status, 200, "{}", a.text);
        started.push((a.json()["Identifier"].as_str().unwrap().to_string(), kept));
    }
    // The desktop's own logins come back to the same page but complete there.
    let desktop = login::start_desktop_login(&f.agent.state, ANN, DesktopCallback::Loopback)
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>, String)> = f.agent.select(
        "SELECT handle_hash, handle_enc, client FROM login_transactions",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    assert_eq!(rows.len(), 5);
    for (identifier, kept) in &started {
        let hash = amove_agent::crypto::sha256_hex(identifier);
        let (_, enc, _) = rows.iter().find(|(h, _, _)| *h == hash).unwrap();
        match enc {
            Some(sealed) => {
                assert!(kept, "kept for a callback that never shows it");
                assert!(!sealed.contains(identifier.as_str()), "stored in clear");
            }
            None => assert!(!kept, "not kept for the agent's own page"),
        }
    }
    let (_, enc, _) = rows.iter().find(|(_, _, c)| c == "desktop").unwrap();
    assert_eq!(enc, &None, "kept for a desktop login");
    drop(desktop);
}

#[tokio::test]
async fn test_connection_reports_each_check() {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    let admin = agent.admin_token();
    let a = agent
        .post_json(
            "/sso/test_connection?provider=okta",
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["Ok"], true, "{body}");
    let names: Vec<&str> = body["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    for n in [
        "Discovery document",
        "Issuer",
        "Endpoints",
        "Signing algorithms",
        "JWKS",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    agent
        .post_json(
            "/sso/test_connection?provider=entraId",
            Some(&admin),
            &json!({}),
        )
        .await
        .assert_problem(499, "NOT_FOUND", "no Entra ID configuration");

    // A provider whose discovery names another issuer fails that check, item by item.
    let fake = FakeIdp::start("", Some("https://login.example.com")).await;
    let a = agent
        .post_json(
            "/sso/setup_entraId",
            Some(&admin),
            &json!({"ClientId": "c", "ClientSecret": "s", "OpenIdURL": fake.openid_url(), "Active": false}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let body = agent
        .post_json(
            "/sso/test_connection?provider=entraId",
            Some(&admin),
            &json!({}),
        )
        .await
        .json();
    assert_eq!(body["Ok"], false);
    let issuer = body["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == "Issuer")
        .cloned()
        .unwrap();
    assert_eq!(issuer["Ok"], false, "{body}");
}

// ------------------------------------------------------------------------------------------
// The seed's Python sample, run unchanged (see tests/samples/README.md)

#[tokio::test]
async fn seed_python_sample_get_sso_url_then_authenticate_runs_unchanged() {
    let have_requests = std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        have_requests,
        "python3 with requests is needed: pip install requests (see tests/samples/README.md)"
    );
    run_seed_sample(
        &["python3", "-u"],
        "run_sample.py",
        "get_sso_url_then_authenticate.py",
    )
    .await;
}

#[tokio::test]
async fn seed_javascript_sample_get_sso_url_then_authenticate_runs_unchanged() {
    let version = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node 20 or later is needed (found {version:?})"
    );
    run_seed_sample(
        &["node"],
        "run_sample.mjs",
        "get_sso_url_then_authenticate.mjs",
    )
    .await;
}

/// Runs a seed sample through its runner (tests/samples/README.md) against an agent and the
/// real OpenID Provider, plays the user at the IdP, and checks the token it prints.
async fn run_seed_sample(program: &[&str], runner: &str, sample: &str) {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples");
    let mut child = tokio::process::Command::new(program[0])
        .args(&program[1..])
        .arg(samples.join(runner))
        .arg(samples.join(sample))
        .arg(format!("http://localhost:{}", agent.port))
        .arg(ALICE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = out.next_line().await.unwrap().unwrap_or_default();
    let url = first
        .strip_prefix("Open in a browser: ")
        .unwrap_or_else(|| panic!("unexpected output {first:?}"))
        .to_string();
    // The "user" opens the URL, signs in, and pastes the code from the redirect.
    let cb = agent.own_callback();
    let back = Browser::new().login(&url, ALICE, ALICE_PASSWORD, &cb).await;
    let code = param(&back, "code").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{code}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let second = out.next_line().await.unwrap().unwrap_or_default();
    let status = child.wait().await.unwrap();
    let jwt = second
        .strip_prefix("Token: ")
        .unwrap_or_else(|| panic!("unexpected output {second:?}"))
        .to_string();
    assert!(status.success());
    assert_eq!(whoami(&agent, &jwt).await["Username"], ALICE);
}

// ------------------------------------------------------------------------------------------
// More of the contract

#[tokio::test]
async fn desktop_login_completes_from_the_deep_link() {
    let (agent, _op) = real("okta", "", "client_secret_basic").await;
    let pending = login::start_desktop_login(&agent.state, ALICE, DesktopCallback::DeepLink)
        .await
        .unwrap();
    assert_eq!(
        param(pending.url.as_str(), "redirect_uri").as_deref(),
        Some("amove://sso/callback")
    );
    let url = pending.url.to_string();
    let waiter = tokio::spawn(pending.wait());
    let link = Browser::new()
        .login(&url, ALICE, ALICE_PASSWORD, "amove://sso/callback")
        .await;
    // What the shell does when the OS hands it the deep link.
    let session = login::complete_from_deep_link(&agent.state, &link)
        .await
        .unwrap();
    assert_eq!(session.username, ALICE);
    assert_eq!(waiter.await.unwrap().unwrap().username, ALICE);
    assert!(
        login::complete_from_deep_link(&agent.state, &link)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_idp_error_at_the_callback_ends_a_desktop_login_in_plain_words() {
    let f = okta().await;
    let pending = login::start_desktop_login(&f.agent.state, ANN, DesktopCallback::Loopback)
        .await
        .unwrap();
    let state = param(pending.url.as_str(), "state").unwrap();
    let waiter = tokio::spawn(pending.wait());
    let page = f
        .agent
        .http
        .get(format!("{}/sso/callback", f.agent.base))
        .query(&[
            ("state", state.as_str()),
            ("error", "access_denied"),
            ("error_description", "<b>User cancelled</b>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("access_denied (&lt;b&gt;User cancelled"),
        "{html}"
    );
    assert!(!html.contains("<b>User"), "{html}");
    let err = waiter.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("access_denied"), "{err}");
}

#[tokio::test]
async fn discovery_is_cached_and_fetched_again_after_its_ttl_or_a_failure() {
    let f = okta().await;
    f.begin().await;
    f.begin().await;
    assert_eq!(f.idp.discovery_fetches(), 1, "cached");
    f.agent.clock.advance(3601);
    f.begin().await;
    assert_eq!(f.idp.discovery_fetches(), 2, "expired after its TTL");
    let b = f.begin().await;
    f.idp.reply(TokenReply::Raw(500, String::new()));
    f.agent
        .authenticate(&b.identifier, "code-123", CB)
        .await
        .assert_problem(499, "SSO", "token endpoint");
    f.begin().await;
    assert_eq!(f.idp.discovery_fetches(), 3, "dropped after the IdP failed");
}

#[tokio::test]
async fn sso_url_names_what_is_missing() {
    let f = okta().await;
    f.agent
        .sso_url("nobody@acme.test", CB)
        .await
        .assert_problem(499, "NOT_FOUND", "no user nobody@acme.test");
    let admin = f.agent.admin_token();
    let a = f.agent.send(
        f.agent
            .http
            .delete(format!("{}/sso/delete_okta", f.agent.base))
            .query(&[("token", admin.as_str())]),
    );
    assert_eq!(a.await.status, 200);
    f.agent
        .sso_url(ANN, CB)
        .await
        .assert_problem(499, "NOT_FOUND", "no active identity provider");
    f.agent
        .post_json("/sso/sso_url", None, &json!({"username": ANN}))
        .await
        .assert_problem(499, "DEFAULT", "CallbackUrl is required");
}

/// `sso_url` caches what it reads (an account per username; a configuration and allow-list
/// per account): every change must show at once, and a user another process adds (the CLI)
/// must be found although the agent never saw the write.
#[tokio::test]
async fn sso_url_sees_configuration_allow_list_and_new_users_at_once() {
    let f = okta().await;
    let admin = f.agent.admin_token();
    let https = "https://app.acme.test/cb";
    assert_eq!(f.agent.sso_url(ANN, CB).await.status, 200);
    f.agent
        .sso_url(ANN, https)
        .await
        .assert_problem(499, "SECURITY", "CallbackUrl");
    let allow = |urls: Value| {
        let (agent, admin) = (&f.agent, admin.clone());
        async move {
            let r = agent
                .put_json(
                    "/sso/callback_urls",
                    Some(&admin),
                    &json!({ "CallbackUrls": urls }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    allow(json!([https])).await;
    assert_eq!(f.agent.sso_url(ANN, https).await.status, 200);
    allow(json!([])).await;
    f.agent
        .sso_url(ANN, https)
        .await
        .assert_problem(499, "SECURITY", "CallbackUrl");
    // Deactivated: no provider at once.
    let mut cfg = f.agent.get("/sso/get_okta", Some(&admin)).await.json();
    cfg["Active"] = json!(false);
    let r = f
        .agent
        .put_json("/sso/update_okta", Some(&admin), &cfg)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    f.agent
        .sso_url(ANN, CB)
        .await
        .assert_problem(499, "NOT_FOUND", "no active identity provider");
    cfg["Active"] = json!(true);
    let r = f
        .agent
        .put_json("/sso/update_okta", Some(&admin), &cfg)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(f.agent.sso_url(ANN, CB).await.status, 200);
    // Unknown, then added by another process: found at once (misses are not cached).
    let carl = "carl@acme.test";
    f.agent
        .sso_url(carl, CB)
        .await
        .assert_problem(499, "NOT_FOUND", "there is no user");
    let other =
        rusqlite::Connection::open(f.agent.dir.path().join(amove_agent::server::DB_FILE)).unwrap();
    other
        .execute(
            "INSERT INTO users (account_id, email, role, status, created_at, updated_at) \
             SELECT account_id, ?1, 'user', 'active', 0, 0 FROM users WHERE email = ?2",
            [carl, ANN],
        )
        .unwrap();
    assert_eq!(f.agent.sso_url(carl, CB).await.status, 200);
}
