//! ID token validation (OpenID Connect Core §3.1.3.7), done here rather than by
//! openidconnect's verifier because two rules need it: Entra ID's `{tenantid}` issuer
//! template, and expiry with a small skew against the agent's injected clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::sso::oidc::discovery::TENANT_TEMPLATE;

/// Clock skew tolerated between the agent and the IdP for `exp`, `iat` and `nbf`.
pub const MAX_SKEW_SECS: i64 = 120;

/// Signature algorithms an ID token may use. Never `none`, never HMAC: the keys come from a
/// public JWKS, and HMAC "signed" with a public key proves nothing.
pub const ALLOWED_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused (shown to the caller; never contains the token).
pub type Refusal = String;

/// The parts of the JOSE header that matter.
#[derive(Debug, Clone)]
pub struct Header {
    /// The algorithm, checked against [`ALLOWED_ALGS`].
    pub alg: Algorithm,
    /// The key id.
    pub kid: Option<String>,
}

fn b64_json(part: &str, what: &str) -> Result<Map<String, Value>, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("its {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("its {what} is not a JSON object")),
    }
}

/// Reads the header and checks the algorithm before any key is looked up.
pub fn header(raw: &str) -> Result<Header, Refusal> {
    let parts: Vec<&str> = raw.split('.').collect();
    if parts.len() != 3 {
        return Err(if parts.len() == 5 {
            "it is encrypted (JWE), which this agent does not accept".into()
        } else {
            "it is not a signed JWT".into()
        });
    }
    let h = b64_json(parts[0], "header")?;
    let alg = h.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg.is_empty() || alg.eq_ignore_ascii_case("none") {
        return Err("it is not signed (alg none)".into());
    }
    if h.contains_key("crit") {
        return Err("its header has critical extensions this agent does not understand".into());
    }
    let alg = ALLOWED_ALGS
        .iter()
        .copied()
        .find(|a| format!("{a:?}") == alg)
        .ok_or_else(|| format!("its algorithm {alg} is not allowed"))?;
    if parts[2].is_empty() {
        return Err("it has no signature".into());
    }
    let kid = h.get("kid").and_then(Value::as_str).map(str::to_string);
    Ok(Header { alg, kid })
}

/// Verifies the signature with `key` and returns the claims (nothing else is checked).
pub fn verify_signature(
    raw: &str,
    header: &Header,
    key: &DecodingKey,
) -> Result<Map<String, Value>, Refusal> {
    let mut v = Validation::new(header.alg);
    // Every claim is checked by `check_claims` against the agent's clock and rules.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(raw, key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "its signature does not verify with the IdP's key".to_string()
            }
            _ => format!("its signature could not be verified ({e})"),
        })
}

/// What the claims must say.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The discovery document's issuer (may hold `{tenantid}`).
    pub issuer: &'a str,
    /// Whether `{tenantid}` is resolved from the token's `tid` (Entra ID).
    pub tenant_template: bool,
    /// Our client id.
    pub client_id: &'a str,
    /// The transaction's nonce; `None` for the ID token of a refresh, which answers no
    /// authorization request (OpenID Connect Core §12.2).
    pub nonce: Option<&'a str>,
    /// The access token of the same response, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// Now, by the agent's clock.
    pub now: i64,
}

fn str_claim<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c str> {
    claims.get(name).and_then(Value::as_str)
}

fn num_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("its {name} is not a time")),
        Some(_) => Err(format!("its {name} is not a number")),
    }
}

/// The issuer the token must carry: the discovery issuer, with Entra ID's `{tenantid}`
/// replaced by the token's `tid`.
pub fn resolve_issuer(
    issuer: &str,
    tenant_template: bool,
    claims: &Map<String, Value>,
) -> Result<String, Refusal> {
    if !tenant_template || !issuer.contains(TENANT_TEMPLATE) {
        return Ok(issuer.to_string());
    }
    let tid = str_claim(claims, "tid").unwrap_or("");
    let safe = !tid.is_empty()
        && tid.len() <= 64
        && tid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !safe {
        return Err("it has no usable tid claim to resolve the {tenantid} issuer template".into());
    }
    Ok(issuer.replace(TENANT_TEMPLATE, tid))
}

fn at_hash(alg: Algorithm, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            sha2::Sha384::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            sha2::Sha512::digest(access_token.as_bytes()).to_vec()
        }
        _ => sha2::Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

fn eq_ct(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks the claims of a token whose signature verified. Returns the issuer it carried.
pub fn check_claims(
    claims: &Map<String, Value>,
    alg: Algorithm,
    want: &Expected<'_>,
) -> Result<String, Refusal> {
    // iss
    let issuer = resolve_issuer(want.issuer, want.tenant_template, claims)?;
    match str_claim(claims, "iss") {
        Some(iss) if iss == issuer => {}
        Some(iss) => return Err(format!("its issuer '{iss}' is not '{issuer}'")),
        None => return Err("it has no issuer (iss)".into()),
    }
    // aud, azp
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err("it has no audience (aud)".into()),
    };
    if !auds.contains(&want.client_id) {
        return Err(format!(
            "it was issued for another application (aud does not contain the client id '{}')",
            want.client_id
        ));
    }
    match str_claim(claims, "azp") {
        Some(azp) if azp != want.client_id => {
            return Err(format!(
                "it was issued to another party (azp '{azp}' is not the client id)"
            ));
        }
        None if auds.len() > 1 => {
            return Err("it has several audiences but no authorized party (azp)".into());
        }
        _ => {}
    }
    // exp, iat, nbf
    let now = want.now;
    let exp = num_claim(claims, "exp")?.ok_or("it has no expiry (exp)")?;
    if exp.saturating_add(MAX_SKEW_SECS) <= now {
        return Err(format!(
            "it expired at {} (now {}, {MAX_SKEW_SECS} s of clock skew allowed)",
            crate::clock::rfc3339(exp),
            crate::clock::rfc3339(now)
        ));
    }
    let iat = num_claim(claims, "iat")?.ok_or("it has no issue time (iat)")?;
    if iat > now + MAX_SKEW_SECS {
        return Err(format!(
            "it was issued in the future ({}; now {}) — check the clocks",
            crate::clock::rfc3339(iat),
            crate::clock::rfc3339(now)
        ));
    }
    if let Some(nbf) = num_claim(claims, "nbf")?
        && nbf > now + MAX_SKEW_SECS
    {
        return Err("it is not valid yet (nbf)".into());
    }
    // nonce
    if let Some(nonce) = want.nonce {
        match str_claim(claims, "nonce") {
            Some(n) if eq_ct(n, nonce) => {}
            Some(_) => {
                return Err("its nonce is not the one of this sign-in (replayed token?)".into());
            }
            None => return Err("it has no nonce".into()),
        }
    }
    // sub
    match str_claim(claims, "sub") {
        Some(s) if !s.trim().is_empty() && s.len() <= 255 => {}
        _ => return Err("it has no subject (sub)".into()),
    }
    // at_hash, when present and an access token came with it
    if let (Some(h), Some(at)) = (str_claim(claims, "at_hash"), want.access_token)
        && !eq_ct(h, &at_hash(alg, at))
    {
        return Err("its at_hash does not match the access token".into());
    }
    Ok(issuer)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// The claims of a JSON object (empty for anything else); `identity`'s tests use it too.
    pub(crate) fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn good() -> Value {
        json!({"iss": "https://idp.test", "aud": "cid", "exp": 2_000, "iat": 1_000,
               "nonce": "n1", "sub": "s1"})
    }

    fn want() -> Expected<'static> {
        Expected {
            issuer: "https://idp.test",
            tenant_template: false,
            client_id: "cid",
            nonce: Some("n1"),
            access_token: None,
            now: 1_500,
        }
    }

    fn check(v: Value, w: &Expected<'_>) -> Result<String, Refusal> {
        check_claims(&claims(v), Algorithm::RS256, w)
    }

    fn with(k: &str, val: Value) -> Value {
        let mut v = good();
        v[k] = val;
        v
    }

    fn without(k: &str) -> Value {
        let mut m = claims(good());
        m.remove(k);
        Value::Object(m)
    }

    #[test]
    fn accepts_a_good_token() {
        assert_eq!(check(good(), &want()), Ok("https://idp.test".into()));
    }

    #[test]
    fn refuses_each_broken_claim() {
        let w = want();
        assert!(check(with("iss", json!("https://evil.test")), &w).is_err());
        assert!(check(with("aud", json!("other")), &w).is_err());
        assert!(check(with("aud", json!(["cid", "other"])), &w).is_err());
        assert!(check(with("azp", json!("other")), &w).is_err());
        assert!(check(with("exp", json!(1_500 - MAX_SKEW_SECS)), &w).is_err());
        assert!(check(with("iat", json!(1_500 + MAX_SKEW_SECS + 1)), &w).is_err());
        assert!(check(with("nonce", json!("n2")), &w).is_err());
        assert!(check(with("sub", json!("")), &w).is_err());
        for k in ["iss", "aud", "exp", "iat", "nonce", "sub"] {
            assert!(check(without(k), &w).is_err(), "{k}");
        }
    }

    #[test]
    fn a_refreshed_token_needs_no_nonce_but_every_other_claim() {
        let w = Expected {
            nonce: None,
            ..want()
        };
        assert!(check(without("nonce"), &w).is_ok());
        assert!(check(with("iss", json!("https://evil.test")), &w).is_err());
        assert!(check(with("aud", json!("other")), &w).is_err());
        assert!(check(without("sub"), &w).is_err());
    }

    #[test]
    fn extreme_times_never_overflow() {
        // exp + skew used to overflow (a panic in debug builds, a wrap in release).
        let w = want();
        assert!(check(with("exp", json!(i64::MAX)), &w).is_ok());
        assert!(check(with("exp", json!(i64::MIN)), &w).is_err());
        assert!(check(with("iat", json!(i64::MIN)), &w).is_ok());
    }

    #[test]
    fn tolerates_small_skew() {
        let w = want();
        assert!(check(with("exp", json!(1_500 - MAX_SKEW_SECS + 1)), &w).is_ok());
        assert!(check(with("iat", json!(1_500 + MAX_SKEW_SECS)), &w).is_ok());
    }

    #[test]
    fn several_audiences_need_our_azp() {
        let mut v = with("aud", json!(["cid", "other"]));
        v["azp"] = json!("cid");
        assert!(check(v, &want()).is_ok());
    }

    #[test]
    fn resolves_the_entra_tenant_template() {
        let w = Expected {
            issuer: "https://login.test/{tenantid}/v2.0",
            tenant_template: true,
            ..want()
        };
        let mut v = with("iss", json!("https://login.test/t1/v2.0"));
        v["tid"] = json!("t1");
        assert_eq!(
            check(v.clone(), &w),
            Ok("https://login.test/t1/v2.0".into())
        );
        v["tid"] = json!("t2");
        assert!(check(v.clone(), &w).is_err());
        v["tid"] = json!("../x");
        assert!(check(v, &w).is_err());
    }

    #[test]
    fn checks_at_hash_when_present() {
        let w = Expected {
            access_token: Some("tok"),
            ..want()
        };
        let ok = with("at_hash", json!(at_hash(Algorithm::RS256, "tok")));
        assert!(check(ok, &w).is_ok());
        assert!(check(with("at_hash", json!("AAAA")), &w).is_err());
    }

    #[test]
    fn header_refuses_none_hmac_and_jwe() {
        let h = |j: &str| format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(j));
        assert!(header(&h(r#"{"alg":"RS256","kid":"k"}"#)).is_ok());
        assert!(header(&h(r#"{"alg":"none"}"#)).is_err_and(|e| e.contains("alg none")));
        assert!(header(&h(r#"{"alg":"HS256"}"#)).is_err_and(|e| e.contains("HS256")));
        assert!(header("a.b.c.d.e").is_err_and(|e| e.contains("JWE")));
        assert!(
            header(&format!(
                "{}.e30.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#)
            ))
            .is_err()
        );
    }
}
