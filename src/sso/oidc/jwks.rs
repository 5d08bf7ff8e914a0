//! The IdP's signing keys (JWKS): parsing, choosing the key for a token, caching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::error::{Error, Result};

/// The usable signing keys of one JWKS document.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
    /// Entries that were skipped (encryption keys, unknown key types), for diagnostics.
    pub skipped: usize,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeySet({} keys, {} skipped)",
            self.keys.len(),
            self.skipped
        )
    }
}

/// What looking up a token's key found.
pub enum Lookup {
    /// The key to verify with.
    Found(Box<DecodingKey>),
    /// No key has this `kid` (a refetch may help: the IdP may have rotated its keys).
    UnknownKid,
    /// A key exists but cannot verify this algorithm (no refetch helps).
    Unusable(String),
}

/// Smallest RSA modulus accepted (NIST SP 800-131A; every IdP's keys are 2048 bits or more).
pub const MIN_RSA_BITS: usize = 2048;

/// The size in bits of an RSA modulus given as a JWK's `n` (base64url, big-endian); 0 when
/// it does not decode.
fn modulus_bits(n: &str) -> usize {
    use base64::Engine;
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n.trim_end_matches('='))
    else {
        return 0;
    };
    match bytes.iter().position(|&b| b != 0) {
        Some(i) => (bytes.len() - i) * 8 - bytes[i].leading_zeros() as usize,
        None => 0,
    }
}

fn family_matches(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::AlgorithmFamily as F;
    matches!(
        (&jwk.algorithm, alg.family()),
        (AlgorithmParameters::RSA(_), F::Rsa)
            | (AlgorithmParameters::EllipticCurve(_), F::Ec)
            | (AlgorithmParameters::OctetKeyPair(_), F::Ed)
    )
}

impl KeySet {
    /// Parses a JWKS document, keeping the public signature keys and skipping the rest
    /// (one odd entry must not make every key unusable).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Sso(format!("the IdP's JWKS is not JSON: {e}")))?;
        let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
            return Err(Error::Sso("the IdP's JWKS has no \"keys\" array".into()));
        };
        let mut set = KeySet::default();
        for entry in entries {
            match serde_json::from_value::<Jwk>(entry.clone()) {
                Ok(jwk)
                    if !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
                        // Symmetric and unknown keys never verify ID tokens here.
                        && matches!(
                            jwk.algorithm,
                            AlgorithmParameters::RSA(_)
                                | AlgorithmParameters::EllipticCurve(_)
                                | AlgorithmParameters::OctetKeyPair(_)
                        ) =>
                {
                    set.keys.push(jwk)
                }
                _ => set.skipped += 1,
            }
        }
        Ok(set)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, for diagnostics.
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap_or_else(|| "(no kid)".into()))
            .collect()
    }

    /// The key that verifies a token signed with `alg` under `kid`. Without a `kid`, the
    /// only key of the right type is used (several would be ambiguous).
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let candidates: Vec<&Jwk> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid))
                .collect(),
            None => self
                .keys
                .iter()
                .filter(|k| family_matches(k, alg))
                .collect(),
        };
        let jwk = match (kid, candidates.as_slice()) {
            (_, []) if kid.is_some() => return Lookup::UnknownKid,
            (_, []) => {
                return Lookup::Unusable(format!(
                    "the ID token names no key (kid) and the JWKS has no {alg:?} key"
                ));
            }
            (_, [one]) => *one,
            (None, _) => {
                return Lookup::Unusable(
                    "the ID token names no key (kid) and the JWKS has several".into(),
                );
            }
            (Some(_), [first, ..]) => *first,
        };
        if !family_matches(jwk, alg) {
            return Lookup::Unusable(format!(
                "the key {} is not a key for {alg:?}",
                kid.unwrap_or("")
            ));
        }
        if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
            let bits = modulus_bits(&rsa.n);
            if bits < MIN_RSA_BITS {
                return Lookup::Unusable(format!(
                    "the key {} is an RSA key of {bits} bits; at least {MIN_RSA_BITS} are required",
                    kid.unwrap_or("")
                ));
            }
        }
        if let Some(key_alg) = jwk.common.key_algorithm {
            let key_alg = format!("{key_alg:?}");
            if key_alg != format!("{alg:?}") {
                return Lookup::Unusable(format!(
                    "the key {} is for {key_alg}, not {alg:?}",
                    kid.unwrap_or("")
                ));
            }
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(k) => Lookup::Found(Box::new(k)),
            Err(e) => Lookup::Unusable(format!("the key in the JWKS is malformed: {e}")),
        }
    }
}

/// One cached JWKS.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The keys.
    pub keys: Arc<KeySet>,
    /// When they were fetched (agent clock).
    pub fetched_at: i64,
}

/// JWKS by URL, and when each was last refetched because of an unknown `kid`.
#[derive(Debug, Default)]
pub struct Cache(Mutex<HashMap<String, Cached>>, Mutex<HashMap<String, i64>>);

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic while holding the lock leaves a consistent map behind.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// True (and remembered) when an unknown `kid` may cause a refetch of `uri` now: at most
    /// one such refetch per `interval` seconds, so tokens with made-up `kid`s cannot make
    /// the agent hammer the IdP.
    pub fn may_refetch(&self, uri: &str, now: i64, interval: i64) -> bool {
        let mut last = self.1.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(uri) {
            Some(t) if now - *t < interval && *t <= now => false,
            _ => {
                if last.len() > 64 {
                    last.clear();
                }
                last.insert(uri.to_string(), now);
                true
            }
        }
    }
    /// The cached keys of `uri`, if fetched less than `ttl` seconds before `now`.
    pub fn get(&self, uri: &str, now: i64, ttl: i64) -> Option<Cached> {
        self.lock()
            .get(uri)
            .filter(|c| now - c.fetched_at < ttl && c.fetched_at <= now)
            .cloned()
    }
    /// Stores freshly fetched keys.
    pub fn put(&self, uri: &str, keys: Arc<KeySet>, now: i64) {
        let mut map = self.lock();
        if map.len() > 64 {
            map.clear();
        }
        map.insert(
            uri.to_string(),
            Cached {
                keys,
                fetched_at: now,
            },
        );
    }
    /// Forgets `uri`.
    pub fn remove(&self, uri: &str) {
        self.lock().remove(uri);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{"keys":[
        {"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
        {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
        {"kty":"oct","kid":"h","k":"c2VjcmV0"},
        {"kty":"weird","kid":"w"}
    ]}"#;

    #[test]
    fn keeps_signature_keys_only() -> Result<()> {
        let set = KeySet::parse(JWKS.as_bytes())?;
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped, 3);
        Ok(())
    }

    #[test]
    fn finds_by_kid_and_algorithm() -> Result<()> {
        let set = KeySet::parse(JWKS.as_bytes())?;
        assert!(matches!(
            set.find(Some("k1"), Algorithm::RS256),
            Lookup::Found(_)
        ));
        assert!(matches!(set.find(None, Algorithm::RS256), Lookup::Found(_)));
        assert!(matches!(
            set.find(Some("k2"), Algorithm::RS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(
            set.find(Some("h"), Algorithm::RS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(
            set.find(Some("k1"), Algorithm::ES256),
            Lookup::Unusable(_)
        ));
        assert!(matches!(
            set.find(Some("k1"), Algorithm::PS256),
            Lookup::Unusable(_)
        ));
        Ok(())
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() -> Result<()> {
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let jwks =
            |n: &str| format!(r#"{{"keys":[{{"kty":"RSA","kid":"k","n":"{n}","e":"AQAB"}}]}}"#);
        let mut n2048 = vec![0x80];
        n2048.extend([0x5a; 255]);
        // 1024 bits; 2047 bits (leading zero byte and bit); 2048 bits.
        for (n, bits) in [
            (b64(&[0xc5; 128]), Some(1024)),
            (
                b64(&[&[0x00, 0x7f][..], &[0x5a; 255][..]].concat()),
                Some(2047),
            ),
            (b64(&n2048), None),
        ] {
            let set = KeySet::parse(jwks(&n).as_bytes())?;
            match (set.find(Some("k"), Algorithm::RS256), bits) {
                (Lookup::Unusable(why), Some(bits)) => {
                    assert!(why.contains(&format!("RSA key of {bits} bits")), "{why}")
                }
                (Lookup::Found(_), None) => {}
                (_, bits) => panic!("a key of {bits:?} bits was not judged as it should be"),
            }
        }
        assert_eq!(modulus_bits("not base64!"), 0);
        Ok(())
    }

    #[test]
    fn refetches_are_rate_limited() {
        let c = Cache::default();
        assert!(c.may_refetch("u", 100, 60));
        assert!(!c.may_refetch("u", 159, 60));
        assert!(c.may_refetch("u", 160, 60));
        assert!(c.may_refetch("v", 160, 60));
    }

    #[test]
    fn cache_expires_by_the_given_clock() {
        let c = Cache::default();
        c.put("u", Arc::new(KeySet::default()), 100);
        assert!(c.get("u", 150, 60).is_some());
        assert!(c.get("u", 160, 60).is_none());
    }
}
