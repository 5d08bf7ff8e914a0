//! IdP metadata XML (`parse_idp_metadata`): arbitrary bytes and mutations of a valid document
//! (byte flips, truncation, duplication and exchange of elements) never panic, every refusal
//! is one of the parser's own messages, and what it accepts is always usable (an entity id,
//! an SSO URL, certificates that parse) and taken from the document.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::{Mutation, config};
use crate::sso::cert;
use crate::sso::saml::idp_metadata::{IdpMetadata, parse_idp_metadata};
use crate::sso::saml::testing::TestIdp;

/// Elements of the document that mutations duplicate and exchange.
const ELEMENTS: &[&str] = &[
    "md:IDPSSODescriptor",
    "md:KeyDescriptor",
    "ds:KeyInfo",
    "ds:X509Certificate",
    "md:SingleSignOnService",
    "md:NameIDFormat",
];

struct Fixture {
    xml: String,
    spans: Vec<(usize, usize)>,
}

/// A metadata document as IdPs publish it: a signing and an encryption key, two SSO services.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (a, b) = (
            TestIdp::new().expect("test IdP"),
            TestIdp::new().expect("test IdP"),
        );
        let key = |use_attr: &str, idp: &TestIdp| {
            format!(
                r#"<md:KeyDescriptor{use_attr}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
                STANDARD.encode(&idp.cert_der)
            )
        };
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.corp.test/metadata">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true">
    {}
    {}
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.corp.test/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.corp.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
            key(r#" use="signing""#, &a),
            key(r#" use="encryption""#, &b)
        );
        let spans = super::spans(&xml, ELEMENTS);
        Fixture { xml, spans }
    })
}

/// The beginnings of every message `parse_idp_metadata` gives (the certificate's messages
/// name the metadata's signing certificate).
const MESSAGES: &[&str] = &[
    "the metadata is larger than",
    "the metadata contains a DTD or entity declaration",
    "the metadata is not valid XML",
    "the metadata describes no identity provider",
    "the metadata describes ",
    "the metadata's root is ",
    "the metadata's EntityDescriptor has no entityID",
    "the metadata has no SAML 2.0 IDPSSODescriptor",
    "the metadata has no HTTP-Redirect SingleSignOnService",
    "the metadata has no signing certificate",
    "the metadata's signing certificate",
    "the metadata's validUntil",
];

/// Never a panic; a refusal is one of [`MESSAGES`]; an acceptance is usable and comes from
/// `xml` (its entity id and SSO URL are in the document, its certificates parse).
fn check(xml: &str) -> Result<Option<IdpMetadata>, String> {
    match parse_idp_metadata(xml) {
        Err(e) if MESSAGES.iter().any(|m| e.starts_with(m)) => Ok(None),
        Err(e) => Err(format!("undocumented error {e:?}")),
        Ok(m) => {
            // Attribute values are normalised: a tab or line break reads as a space.
            let doc = xml.replace(['\t', '\n', '\r'], " ");
            if m.entity_id.is_empty() || m.sso_url.is_empty() || m.signing_certificates.is_empty() {
                return Err(format!("accepted but not usable: {m:?}"));
            }
            if !doc.contains(&m.entity_id) {
                return Err(format!(
                    "entity id {:?} is not in the document",
                    m.entity_id
                ));
            }
            if !doc.contains(&m.sso_url) {
                return Err(format!("SSO URL {:?} is not in the document", m.sso_url));
            }
            for pem in &m.signing_certificates {
                cert::parse("certificate", pem).map_err(|e| format!("{e}: {pem}"))?;
            }
            Ok(Some(m))
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let f = fixture();
    super::mutation(f.xml.len(), f.spans.len())
}

#[test]
fn the_fixture_is_read_and_every_mutation_target_is_found() {
    let m = check(&fixture().xml).ok().flatten();
    assert_eq!(
        m.map(|m| (
            m.sso_url,
            m.signing_certificates.len(),
            m.want_authn_requests_signed
        )),
        Some(("https://idp.corp.test/sso".to_string(), 1, true))
    );
    assert!(fixture().spans.len() >= ELEMENTS.len() + 3);
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn mutated_metadata_is_refused_with_a_documented_error_or_read_sanely(m in mutation()) {
        let Some(xml) = m.apply(&fixture().xml, &fixture().spans) else { return Ok(()) };
        let r = check(&xml);
        prop_assert!(r.is_ok(), "{m:?}: {r:?} in {xml}");
    }

    #[test]
    fn arbitrary_bytes_are_refused_with_a_documented_error(
        bytes in prop::collection::vec(any::<u8>(), 0..2048)
    ) {
        let raw = String::from_utf8_lossy(&bytes);
        let r = check(&raw);
        prop_assert!(matches!(r, Ok(None)), "{r:?}");
    }
}
