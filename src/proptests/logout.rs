//! The SLO endpoint's query (`RawQuery`, then the message it carries): arbitrary queries never
//! panic and every refusal says something; a signed LogoutRequest with one byte flipped never
//! verifies as a request naming anyone else.

use std::sync::OnceLock;

use openssl::pkey::{PKey, Private};
use proptest::prelude::*;

use super::{config, flip, flipped};
use crate::sso::saml::logout::{self, Incoming, LogoutSubject, RawQuery};
use crate::sso::saml::{SpConfig, sp_keys};

struct Fixture {
    /// The query of a signed LogoutRequest, as the IdP would send it.
    query: String,
    /// The signer's certificate (DER).
    cert: Vec<u8>,
    /// Whom it names.
    who: LogoutSubject,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let g = sp_keys::generate("idp", 1_800_000_000).expect("key");
        let key: PKey<Private> = sp_keys::private_key(&g.private_pkcs8).expect("key");
        let cert = openssl::x509::X509::from_pem(g.certificate_pem.as_bytes())
            .and_then(|c| c.to_der())
            .expect("certificate");
        let who = LogoutSubject {
            name_id: "alice@corp.test".into(),
            format: Some(crate::sso::saml::NAMEID_EMAIL.into()),
            name_qualifier: Some("https://idp.test".into()),
            sp_name_qualifier: Some("https://sp.test".into()),
            session_index: Some("_s1".into()),
        };
        let m = logout::logout_request(
            "https://idp.test",
            "https://sp.test/slo",
            &who,
            "relay&state",
            1_700_000_000,
            Some(&key),
        )
        .expect("request");
        let query = m
            .url
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        Fixture { query, cert, who }
    })
}

fn no_keys() -> SpConfig {
    SpConfig {
        sp_entity_id: "https://sp.test".into(),
        acs_url: "https://sp.test/acs".into(),
        idp_sso_url: "https://idp.test/sso".into(),
        idp_entity_id: None,
        certificates: Vec::new(),
        decryption_keys: Vec::new(),
        require_encrypted_assertions: false,
    }
}

/// What the endpoint would act on: the subject of a request whose signature verifies.
fn verified_subject(query: &str, cert: &[u8]) -> Result<LogoutSubject, String> {
    let q = RawQuery::parse(query)?;
    q.verify(&[cert.to_vec()])?;
    match q.message()? {
        Incoming::Request(r) => r.subject(&no_keys()),
        Incoming::Response(_) => Err("a response".into()),
    }
}

/// Any query: parsed, verified and read without a panic; a refusal is never empty.
fn reads_without_panic(query: &str) -> Result<(), TestCaseError> {
    let cert = &fixture().cert;
    match RawQuery::parse(query) {
        Err(e) => prop_assert!(!e.is_empty()),
        Ok(q) => {
            if let Err(e) = q.verify(std::slice::from_ref(cert)) {
                prop_assert!(!e.is_empty());
            }
            match q.message() {
                Err(e) => prop_assert!(!e.is_empty()),
                Ok(Incoming::Request(r)) => {
                    if let Err(e) = r.subject(&no_keys()) {
                        prop_assert!(!e.is_empty());
                    }
                }
                Ok(Incoming::Response(_)) => {}
            }
        }
    }
    Ok(())
}

#[test]
fn the_fixture_verifies() {
    let f = fixture();
    assert_eq!(verified_subject(&f.query, &f.cert), Ok(f.who.clone()));
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_query_is_read_without_a_panic(query in ".{0,400}") {
        reads_without_panic(&query)?;
    }

    #[test]
    fn query_shaped_soup_is_read_without_a_panic(
        parts in prop::collection::vec(
            prop_oneof![
                Just("SAMLRequest=".to_string()),
                Just("SAMLResponse=".to_string()),
                Just("RelayState=".to_string()),
                Just("SigAlg=".to_string()),
                Just("Signature=".to_string()),
                Just("&".to_string()),
                "[A-Za-z0-9%+/=]{0,40}",
            ],
            0..24,
        )
    ) {
        reads_without_panic(&parts.concat())?;
    }

    /// One byte of the signed query flipped: refused, or (a flip the signature does not cover,
    /// such as the case of a percent-escape's hex digit) read as the same request.
    #[test]
    fn a_flipped_byte_never_names_someone_else(at in flip(fixture().query.len())) {
        let f = fixture();
        let Some(query) = flipped(&f.query, at) else { return Ok(()) };
        reads_without_panic(&query)?;
        if let Ok(who) = verified_subject(&query, &f.cert) {
            prop_assert_eq!(who, f.who.clone(), "{}", query);
        }
    }
}
