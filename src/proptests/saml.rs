//! The SAMLResponse path: arbitrary bytes, XML soup, and mutations of a valid signed response
//! (byte flips, element duplication and reordering, truncation) are all refused.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::{Mutation, config};
use crate::sso::saml::testing::{ResponseSpec, TestIdp, encode, sp_config, strip_xml_decl};
use crate::sso::saml::{SpConfig, validate_response};

const ACS: &str = "http://localhost:29123/sso/saml/acs";
const SP: &str = "https://amove.test/sp";
const ISSUER: &str = "https://idp.corp.test/metadata";
const REQ: &str = "_req123";

/// Elements of the response that mutations duplicate and reorder.
const ELEMENTS: &[&str] = &[
    "saml:Issuer",
    "ds:Signature",
    "ds:Reference",
    "samlp:Status",
    "saml:Assertion",
    "saml:Subject",
    "saml:NameID",
    "saml:Conditions",
    "saml:Audience",
    "saml:AuthnStatement",
    "saml:AttributeStatement",
    "saml:Attribute",
];

struct Fixture {
    sp: SpConfig,
    xml: String,
    now: i64,
    /// Byte ranges of the elements of [`ELEMENTS`] in `xml`.
    spans: Vec<(usize, usize)>,
}

// The test IdP's certificate is valid from the wall clock's now.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One valid response, signed on the Response and on the Assertion (so every byte of it is
/// covered by a signature), built once.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let idp = TestIdp::new().expect("test IdP");
        let now = wall_clock();
        let mut spec = ResponseSpec::valid(REQ, ACS, SP, ISSUER, "alice@corp.test", now);
        spec.sign_response = true;
        spec.attributes = vec![("groups".into(), vec!["eng".into(), "admins".into()])];
        // Exclusive canonicalization leaves out namespace declarations that nothing uses or
        // that repeat one in scope, so a change to one of those is no change to what is
        // signed (the 100x runs found both: the assertion's `xmlns:xs`, and its own
        // `xmlns:saml` under the Response's): the fixture has neither.
        let assertion = spec
            .assertion_xml()
            .replace(r#" xmlns:xs="http://www.w3.org/2001/XMLSchema""#, "");
        let signed = strip_xml_decl(&idp.sign(&assertion).expect("signed assertion")).replacen(
            r#" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#,
            "",
            1,
        );
        let xml = spec
            .build_with(&idp, None, &[signed])
            .expect("signed response")
            // Whitespace after the root is not part of the document's content: none, so that
            // every truncation cuts into the Response.
            .trim_end()
            .to_string();
        let sp = sp_config(&idp, SP, ACS, ISSUER);
        let spans = super::spans(&xml, ELEMENTS);
        Fixture {
            sp,
            xml,
            now,
            spans,
        }
    })
}

/// `sig` with the base64 of its `SignatureValue` and `DigestValue` decoded as xmlsec decodes
/// it (what is not base64 skipped, the unused bits of the last character ignored): a flip of
/// one of those bits, or of a line break into another control character, is no change to the
/// signature (the 100x runs found both; control characters are refused, see
/// `refuses_control_characters_even_where_base64_skips_them`).
fn decoded_values(sig: &str) -> String {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let mut out = sig.to_string();
    for tag in ["ds:SignatureValue", "ds:DigestValue"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let (Some(a), Some(b)) = (out.find(&open), out.find(&close)) else {
            continue;
        };
        let text: String = out[a + open.len()..b.max(a + open.len())]
            .chars()
            // Only the alphabet counts: the decoder skips what it does not refuse.
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
            .collect();
        if let Ok(bytes) = lenient.decode(text) {
            out.replace_range(a + open.len()..b, &hex::encode(bytes));
        }
    }
    out
}

/// What the signatures cover: the document without its `ds:Signature` elements (an enveloped
/// signature is taken out before digesting, so where it sits is not signed), and the
/// signatures themselves (their values decoded). Moving a signature among its siblings changes neither: the 100x run
/// found that such a move is accepted, as XML signature defines, and it is no change to
/// anything the agent reads.
pub(super) fn signed_content(xml: &str) -> (String, Vec<String>) {
    let (open, close) = ("<ds:Signature", "</ds:Signature>");
    let (mut rest, mut out, mut sigs) = (xml, String::new(), Vec::new());
    while let Some(at) = rest.find(open) {
        let Some(end) = rest[at..].find(close).map(|e| at + e + close.len()) else {
            break;
        };
        out.push_str(&rest[..at]);
        sigs.push(decoded_values(&rest[at..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    sigs.sort();
    (out, sigs)
}

fn check(xml: &str) -> Result<String, String> {
    let f = fixture();
    validate_response(&f.sp, &encode(xml), REQ, f.now).map(|id| id.name_id)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let f = fixture();
    super::mutation(f.xml.len(), f.spans.len())
}

fn apply(m: &Mutation) -> Option<String> {
    let f = fixture();
    m.apply(&f.xml, &f.spans)
}

/// Pieces of SAML-ish XML, hostile ones included, for soup.
fn xml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\">"
                .to_string()
        ),
        Just(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\">"
                .to_string()
        ),
        Just("</saml:Assertion>".to_string()),
        Just("</samlp:Response>".to_string()),
        Just("<saml:NameID>alice@corp.test</saml:NameID>".to_string()),
        Just("<!DOCTYPE r [<!ENTITY x \"y\">]>".to_string()),
        Just("&x;".to_string()),
        Just("<!-- c -->".to_string()),
        Just("<![CDATA[z]]>".to_string()),
        Just("<?xml version=\"1.0\" encoding=\"UTF-16\"?>".to_string()),
        Just("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>".to_string()),
        ".{0,12}",
    ]
}

#[test]
fn the_fixture_is_valid_and_every_mutation_target_is_found() {
    assert_eq!(check(&fixture().xml).as_deref(), Ok("alice@corp.test"));
    assert!(
        fixture().spans.len() >= ELEMENTS.len(),
        "{:?}",
        fixture().spans
    );
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn a_mutated_signed_response_never_signs_anyone_in(m in mutation()) {
        let Some(xml) = apply(&m) else { return Ok(()) };
        prop_assume!(signed_content(&xml) != signed_content(&fixture().xml));
        let r = check(&xml);
        prop_assert!(r.is_err(), "{m:?} was accepted: {r:?} in {xml}");
        prop_assert!(!r.unwrap_err().is_empty());
    }

    #[test]
    fn arbitrary_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let f = fixture();
        prop_assert!(validate_response(&f.sp, &STANDARD.encode(&bytes), REQ, f.now).is_err());
        let raw = String::from_utf8_lossy(&bytes);
        prop_assert!(validate_response(&f.sp, &raw, REQ, f.now).is_err());
    }

    #[test]
    fn xml_soup_is_refused(pieces in prop::collection::vec(xml_piece(), 0..24)) {
        prop_assert!(check(&pieces.concat()).is_err());
    }
}
