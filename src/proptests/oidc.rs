//! OIDC inputs: ID tokens (JWS compact form), JWKS and discovery documents.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use proptest::prelude::*;
use serde_json::json;
use url::Url;

use super::{config, flip, flipped, json};
use crate::error::Error;
use crate::sso::oidc::id_token::{header, verify_signature};
use crate::sso::oidc::{discovery, jwks::KeySet};

/// An EdDSA-signed ID token and the key that verifies it.
fn signed() -> &'static (String, DecodingKey) {
    static S: OnceLock<(String, DecodingKey)> = OnceLock::new();
    S.get_or_init(|| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let der = key.to_pkcs8_der().expect("pkcs8");
        let mut h = jsonwebtoken::Header::new(Algorithm::EdDSA);
        h.kid = Some("k1".into());
        let claims = json!({"iss": "https://idp.test", "aud": "cid", "sub": "s1",
                            "exp": 2_000_000_000, "iat": 1_000, "nonce": "n1"});
        let token = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
            .expect("signed");
        (
            token,
            DecodingKey::from_ed_der(&key.verifying_key().to_bytes()),
        )
    })
}

fn verify(raw: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let h = header(raw)?;
    verify_signature(raw, &h, &signed().1)
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn is_sso(e: &Error) -> bool {
    matches!(e, Error::Sso(_))
}

const DOC_URL: &str = "https://idp.test/.well-known/openid-configuration";

fn discovery_doc() -> serde_json::Value {
    json!({
        "issuer": "https://idp.test",
        "authorization_endpoint": "https://idp.test/authorize",
        "token_endpoint": "https://idp.test/token",
        "jwks_uri": "https://idp.test/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

fn jwk() -> impl Strategy<Value = serde_json::Value> {
    let kty = prop_oneof![
        Just("RSA".to_string()),
        Just("EC".to_string()),
        Just("OKP".to_string()),
        ".{0,4}"
    ];
    (kty, json(), json(), json(), proptest::option::of(".{0,8}")).prop_map(|(kty, n, e, x, kid)| {
        json!({"kty": kty, "n": n, "e": e, "x": x, "crv": "Ed25519", "kid": kid, "use": "sig"})
    })
}

#[test]
fn the_signed_token_verifies_unmutated() {
    assert_eq!(
        verify(&signed().0).map(|c| c["sub"].clone()),
        Ok(json!("s1"))
    );
}

#[test]
fn the_discovery_document_parses_unmutated() {
    let url = Url::parse(DOC_URL).expect("url");
    let doc = discovery_doc().to_string();
    assert!(discovery::parse(doc.as_bytes(), &url, false, 0).is_ok());
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_mutated_signed_id_token_never_verifies(f in flip(signed().0.len())) {
        let Some(raw) = flipped(&signed().0, f) else { return Ok(()) };
        prop_assert!(verify(&raw).is_err(), "{f:?} verified");
    }

    #[test]
    fn arbitrary_text_is_no_id_token(raw in ".{0,300}") {
        prop_assert!(verify(&raw).is_err());
    }

    #[test]
    fn a_jws_of_arbitrary_json_is_refused(h in json(), c in json(), sig in "[A-Za-z0-9_-]{0,90}") {
        let raw = format!("{}.{}.{sig}", b64(&h), b64(&c));
        if let Ok(hdr) = header(&raw) {
            // Only the allow-listed algorithms get as far as the key.
            prop_assert!(crate::sso::oidc::id_token::ALLOWED_ALGS.contains(&hdr.alg));
        }
        prop_assert!(verify(&raw).is_err());
    }

    #[test]
    fn jwks_of_arbitrary_bytes_or_keys_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        keys in prop::collection::vec(jwk(), 0..6),
    ) {
        if let Err(e) = KeySet::parse(&bytes) {
            prop_assert!(is_sso(&e));
        }
        let doc = json!({"keys": keys}).to_string();
        if let Err(e) = KeySet::parse(doc.as_bytes()) {
            prop_assert!(is_sso(&e));
        }
    }

    #[test]
    fn discovery_documents_with_any_field_changed_never_panic(
        field in prop::sample::select(vec!["issuer", "authorization_endpoint", "token_endpoint",
            "jwks_uri", "response_types_supported", "token_endpoint_auth_methods_supported"]),
        value in json(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let url = Url::parse(DOC_URL).expect("url");
        let mut doc = discovery_doc();
        doc[field] = value.clone();
        match discovery::parse(doc.to_string().as_bytes(), &url, false, 0) {
            Ok(_) => prop_assert!(field != "issuer" || value == json!("https://idp.test")),
            Err(e) => prop_assert!(is_sso(&e)),
        }
        if let Err(e) = discovery::parse(&bytes, &url, false, 0) {
            prop_assert!(is_sso(&e));
        }
    }
}
