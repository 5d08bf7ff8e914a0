//! Encrypted assertions and NameIDs (XML Encryption), with responses the tests build, sign
//! and encrypt themselves: what decrypts, and everything that must not sign anyone in.

use openssl::pkey::{PKey, Private};

use super::sp_keys::{generate, private_key};
use super::testing::{Encryption, ResponseSpec, TestIdp, encode, encrypt_element};
use super::tests::{self, REQ, now, spec};
use super::xmlenc::NOT_OURS;
use super::*;

/// The agent's encryption key pair: (private key, certificate PEM).
fn sp_key() -> (PKey<Private>, String) {
    let g = generate("sp", now()).unwrap();
    (private_key(&g.private_pkcs8).unwrap(), g.certificate_pem)
}

fn sp(idp: &TestIdp, key: &PKey<Private>) -> SpConfig {
    let mut c = tests::sp(idp);
    c.decryption_keys = vec![key.clone()];
    c
}

/// The response of `s` with its (signed, per `s`) assertion encrypted to `cert` by `how`.
fn encrypted_response(idp: &TestIdp, s: &ResponseSpec, cert: &str, how: &Encryption) -> String {
    let assertion = s.signed_assertion(idp).unwrap();
    let enc = encrypt_element(&assertion, cert, "EncryptedAssertion", how).unwrap();
    s.build_with(idp, None, &[enc]).unwrap()
}

fn check(cfg: &SpConfig, xml: &str) -> Result<SamlIdentity, String> {
    validate_response(cfg, &encode(xml), REQ, now())
}

#[track_caller]
fn refused(r: Result<SamlIdentity, String>, needle: &str) {
    match r {
        Ok(id) => panic!("accepted ({}), expected a refusal: {needle:?}", id.name_id),
        Err(e) => assert!(e.contains(needle), "{e:?} does not contain {needle:?}"),
    }
}

fn algorithms() -> Vec<Encryption> {
    let mut all = Vec::new();
    for data in ["aes128-gcm", "aes256-gcm"] {
        for sha256 in [false, true] {
            all.push(Encryption {
                data: format!("http://www.w3.org/2009/xmlenc11#{data}"),
                key: "http://www.w3.org/2009/xmlenc11#rsa-oaep".into(),
                oaep_sha256: sha256,
                key_beside: false,
            });
        }
    }
    for data in ["aes128-cbc", "aes256-cbc"] {
        for beside in [false, true] {
            all.push(Encryption {
                data: format!("http://www.w3.org/2001/04/xmlenc#{data}"),
                key: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p".into(),
                oaep_sha256: false,
                key_beside: beside,
            });
        }
    }
    all
}

#[test]
fn a_signed_assertion_encrypted_every_accepted_way_signs_in() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    for how in algorithms() {
        let s = spec();
        let id = check(&sp(&idp, &key), &encrypted_response(&idp, &s, &cert, &how))
            .unwrap_or_else(|e| panic!("{how:?}: {e}"));
        assert_eq!(id.name_id, "alice@corp.test", "{how:?}");
        assert_eq!(id.assertion_id, s.assertion_id);
    }
}

#[test]
fn an_unsigned_assertion_under_a_signed_response_signs_in() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let mut s = spec();
    s.sign_assertion = false;
    s.sign_response = true;
    let id = check(
        &sp(&idp, &key),
        &encrypted_response(&idp, &s, &cert, &Encryption::gcm()),
    )
    .unwrap();
    assert_eq!(id.email.as_deref(), Some("alice@corp.test"));
}

/// XML Encryption decrypts in context: an assertion whose plaintext uses the `saml` prefix the
/// Response declares (it does not declare it again) signs in under a signed Response.
#[test]
fn an_encrypted_assertion_using_the_responses_namespace_declarations_signs_in() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let mut s = spec();
    s.sign_assertion = false;
    s.sign_response = true;
    let declared = r#" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#;
    let assertion = s.assertion_xml();
    assert!(assertion.contains(declared));
    let assertion = assertion.replacen(declared, "", 1);
    let enc = encrypt_element(&assertion, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap();
    let response = s.build_with(&idp, None, &[enc]).unwrap();
    let id = check(&sp(&idp, &key), &response).unwrap();
    assert_eq!(id.email.as_deref(), Some("alice@corp.test"));
}

#[test]
fn an_encrypted_assertion_no_signature_covers_is_refused() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let mut s = spec();
    s.sign_assertion = false;
    s.sign_response = false;
    refused(
        check(
            &sp(&idp, &key),
            &encrypted_response(&idp, &s, &cert, &Encryption::gcm()),
        ),
        "signature is missing",
    );
    // Anyone can encrypt to the agent (its certificate is public): an assertion put in place
    // of a signed Response's encrypted one breaks the Response's signature.
    let mut signed = spec();
    signed.sign_assertion = false;
    signed.sign_response = true;
    let good = encrypted_response(&idp, &signed, &cert, &Encryption::gcm());
    let mut evil = spec();
    evil.sign_assertion = false;
    evil.name_id_xml = "admin@corp.test".into();
    let forged = encrypt_element(
        &evil.assertion_xml(),
        &cert,
        "EncryptedAssertion",
        &Encryption::gcm(),
    )
    .unwrap();
    let start = good.find("<saml:EncryptedAssertion>").unwrap();
    let end = good.find("</saml:EncryptedAssertion>").unwrap() + "</saml:EncryptedAssertion>".len();
    let mut swapped = good.clone();
    swapped.replace_range(start..end, &forged);
    refused(check(&sp(&idp, &key), &swapped), "signature is missing");
}

#[test]
fn rsa_1_5_key_transport_is_refused() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let how = Encryption {
        key: "http://www.w3.org/2001/04/xmlenc#rsa-1_5".into(),
        ..Encryption::gcm()
    };
    refused(
        check(
            &sp(&idp, &key),
            &encrypted_response(&idp, &spec(), &cert, &how),
        ),
        "RSA PKCS#1 v1.5 (rsa-1_5), which is refused",
    );
}

#[test]
fn an_assertion_encrypted_to_another_key_says_so() {
    let idp = TestIdp::new().unwrap();
    let (key, _) = sp_key();
    let (_, other_cert) = sp_key();
    refused(
        check(
            &sp(&idp, &key),
            &encrypted_response(&idp, &spec(), &other_cert, &Encryption::gcm()),
        ),
        NOT_OURS,
    );
    // A ciphertext altered in transit reads the same (no oracle), GCM and CBC alike.
    let (key, cert) = sp_key();
    for how in algorithms() {
        let xml = encrypted_response(&idp, &spec(), &cert, &how);
        let marker = "</xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>";
        let Some(at) = xml.find(marker).map(|i| i + marker.len() + 30) else {
            continue;
        };
        let mut bytes = xml.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        refused(
            check(&sp(&idp, &key), &String::from_utf8(bytes).unwrap()),
            "",
        );
    }
}

#[test]
fn signature_wrapping_inside_the_encrypted_payload_is_refused() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let s = spec();
    let signed = s.signed_assertion(&idp).unwrap();
    // An unsigned assertion for admin that carries the signed one inside it.
    let mut evil = spec();
    evil.sign_assertion = false;
    evil.name_id_xml = "admin@corp.test".into();
    let wrapper = evil.assertion_xml().replacen(
        "<saml:Subject>",
        &format!("<saml:Advice>{signed}</saml:Advice><saml:Subject>"),
        1,
    );
    let enc = encrypt_element(&wrapper, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap();
    refused(
        check(&sp(&idp, &key), &s.build_with(&idp, None, &[enc]).unwrap()),
        "more than one Assertion",
    );
    // Two assertions side by side in the payload are not one element.
    let two = format!("{signed}{}", evil.assertion_xml());
    let enc = encrypt_element(&two, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap();
    refused(
        check(&sp(&idp, &key), &s.build_with(&idp, None, &[enc]).unwrap()),
        "",
    );
    // The signed assertion with its NameID changed after signing.
    let altered = signed.replace("alice@corp.test", "admin@corp.test");
    let enc = encrypt_element(&altered, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap();
    refused(
        check(&sp(&idp, &key), &s.build_with(&idp, None, &[enc]).unwrap()),
        "signature is missing",
    );
}

#[test]
fn a_plain_assertion_is_refused_when_encryption_is_required() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let mut cfg = sp(&idp, &key);
    cfg.require_encrypted_assertions = true;
    refused(
        check(&cfg, &spec().build(&idp).unwrap()),
        "requires encrypted assertions (RequireEncryptedAssertions)",
    );
    check(
        &cfg,
        &encrypted_response(&idp, &spec(), &cert, &Encryption::gcm()),
    )
    .unwrap();
}

#[test]
fn an_encrypted_name_id_in_a_signed_assertion_is_decrypted() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let name_id = format!(
        r#"<saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Format="{NAMEID_EMAIL}" SPNameQualifier="https://sp.test">bob@corp.test</saml:NameID>"#
    );
    let enc_id = encrypt_element(&name_id, &cert, "EncryptedID", &Encryption::gcm()).unwrap();
    let s = spec();
    // The assertion as the IdP signs it: an EncryptedID where the NameID was.
    let assertion = s.assertion_xml();
    let start = assertion.find("<saml:NameID").unwrap();
    let end = assertion.find("</saml:NameID>").unwrap() + "</saml:NameID>".len();
    let mut with_enc_id = assertion.clone();
    with_enc_id.replace_range(start..end, &enc_id);
    let signed = testing::strip_xml_decl(&idp.sign(&with_enc_id).unwrap());
    for encrypt_assertion in [false, true] {
        let inner = if encrypt_assertion {
            encrypt_element(&signed, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap()
        } else {
            signed.clone()
        };
        let id = check(
            &sp(&idp, &key),
            &s.build_with(&idp, None, &[inner]).unwrap(),
        )
        .unwrap();
        assert_eq!(id.name_id, "bob@corp.test");
        assert_eq!(id.email.as_deref(), Some("bob@corp.test"));
        assert_eq!(id.sp_name_qualifier.as_deref(), Some("https://sp.test"));
        assert_eq!(id.name_qualifier, None);
    }
    // Encrypted to another key: the clear error, no sign-in.
    let (_, other) = sp_key();
    let enc_id = encrypt_element(&name_id, &other, "EncryptedID", &Encryption::gcm()).unwrap();
    let mut wrong = assertion;
    wrong.replace_range(start..end, &enc_id);
    let signed = testing::strip_xml_decl(&idp.sign(&wrong).unwrap());
    refused(
        check(
            &sp(&idp, &key),
            &s.build_with(&idp, None, &[signed]).unwrap(),
        ),
        NOT_OURS,
    );
}

#[test]
fn a_payload_that_is_not_an_assertion_reads_as_undecryptable_naming_nothing_of_it() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let s = spec();
    let other =
        r#"<saml:Secret xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">x</saml:Secret>"#;
    let enc = encrypt_element(other, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap();
    let r = check(&sp(&idp, &key), &s.build_with(&idp, None, &[enc]).unwrap());
    assert_eq!(r.err().as_deref(), Some(NOT_OURS));
}

/// A SHA-1 signature inside an encrypted assertion is refused as invalid and names nothing of
/// the decrypted plaintext (no oracle under CBC); a SHA-1 signature on the Response around it,
/// which is what the IdP posted in clear, is named.
#[test]
fn a_sha1_signature_is_named_only_where_it_was_posted_in_clear() {
    let idp = TestIdp::new().unwrap();
    let (key, cert) = sp_key();
    let sha1 = |x: &str| {
        x.replace(
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        )
        .replace(
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        )
    };
    let s = spec();
    let inner = testing::strip_xml_decl(&idp.sign(&sha1(&s.assertion_xml())).unwrap());
    let enc = encrypt_element(&inner, &cert, "EncryptedAssertion", &Encryption::gcm()).unwrap();
    let e = check(&sp(&idp, &key), &s.build_with(&idp, None, &[enc]).unwrap()).unwrap_err();
    assert_eq!(e, SIGNATURE_INVALID);
    // The Response signed with SHA-1 around an assertion encrypted with no signature inside.
    let mut s = spec();
    (s.sign_assertion, s.sign_response) = (false, true);
    let enc = encrypt_element(
        &testing::strip_xml_decl(&s.assertion_xml()),
        &cert,
        "EncryptedAssertion",
        &Encryption::gcm(),
    )
    .unwrap();
    let response = sha1(&s.response_xml(&enc));
    let posted = testing::strip_xml_decl(&idp.sign(&response).unwrap());
    let e = check(&sp(&idp, &key), &posted).unwrap_err();
    assert!(
        e.contains("signed with http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
        "{e}"
    );
}
