//! Encrypted assertions (XML Encryption): mutations of a valid encrypted response never sign
//! anyone in beyond what its signature or its cipher allows.
//!
//! - A Response signed over its `EncryptedAssertion` (AES-256-GCM): every byte is covered by
//!   the signature (and the ciphertext by GCM's tag too); the mutations of the SAML property
//!   (bit flips, truncation, duplication and exchange of elements).
//! - An unsigned Response around an assertion that is signed and then encrypted with
//!   AES-128-CBC, which has no integrity of its own: bit flips, truncation, exchange and
//!   duplication of cipher blocks, and flips of the wrapped key. The test decrypts each
//!   mutated ciphertext itself: the response may sign in only when the plaintext still carries
//!   exactly what the assertion's signature covers. Every refusal of a changed plaintext reads
//!   as a failure to decrypt or a bad signature, never as something about the plaintext (an
//!   error that described the decrypted bytes would be a decryption oracle).

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::pkey::{PKey, Private};
use proptest::prelude::*;

use super::config;
use super::saml::signed_content;
use crate::sso::saml::sp_keys::{generate, private_key};
use crate::sso::saml::testing::{
    Encryption, ResponseSpec, TestIdp, encode, encrypt_element, sp_config, strip_xml_decl,
};
use crate::sso::saml::xmlenc::NOT_OURS;
use crate::sso::saml::{SIGNATURE_INVALID, SpConfig, validate_response};

const ACS: &str = "http://localhost:29123/sso/saml/acs";
const SP: &str = "https://amove.test/sp";
const ISSUER: &str = "https://idp.corp.test/metadata";
const REQ: &str = "_req123";
const CIPHER_OPEN: &str = "<xenc:CipherValue>";
const CIPHER_CLOSE: &str = "</xenc:CipherValue>";

/// Elements of the GCM response that mutations duplicate and exchange.
const ELEMENTS: &[&str] = &[
    "saml:Issuer",
    "ds:Signature",
    "samlp:Status",
    "saml:EncryptedAssertion",
    "xenc:EncryptedData",
    "xenc:EncryptedKey",
    "xenc:EncryptionMethod",
    "xenc:CipherData",
    "xenc:CipherValue",
];

struct Fixture {
    sp: SpConfig,
    now: i64,
    /// The Response signed over its GCM-encrypted assertion, and its elements.
    gcm: String,
    gcm_spans: Vec<(usize, usize)>,
    /// The unsigned Response around the signed, CBC-encrypted assertion.
    cbc: String,
    /// The decoded CipherValues of its EncryptedData (IV and ciphertext) and EncryptedKey.
    data: Vec<u8>,
    wrapped: Vec<u8>,
    /// The content key and the plaintext (the signed assertion).
    cek: Vec<u8>,
    plain: String,
}

#[allow(clippy::disallowed_methods)]
fn wall_clock() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The decoded text of the first (`first`) or last CipherValue of `xml`, and its range.
fn cipher_value(xml: &str, first: bool) -> (Vec<u8>, (usize, usize)) {
    let at = if first {
        xml.find(CIPHER_OPEN)
    } else {
        xml.rfind(CIPHER_OPEN)
    }
    .expect("a CipherValue")
        + CIPHER_OPEN.len();
    let end = at + xml[at..].find(CIPHER_CLOSE).expect("its end");
    let bytes = STANDARD.decode(&xml[at..end]).expect("base64");
    (bytes, (at, end))
}

fn unwrap(key: &PKey<Private>, wrapped: &[u8]) -> Vec<u8> {
    let mut ctx = openssl::pkey_ctx::PkeyCtx::new(key).expect("key");
    ctx.decrypt_init().expect("init");
    ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
        .expect("OAEP");
    let mut out = Vec::new();
    ctx.decrypt_to_vec(wrapped, &mut out)
        .expect("the content key");
    out
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let idp = TestIdp::new().expect("test IdP");
        let now = wall_clock();
        let g = generate("sp", now).expect("SP key");
        let key = private_key(&g.private_pkcs8).expect("SP private key");
        let mut sp = sp_config(&idp, SP, ACS, ISSUER);
        sp.decryption_keys = vec![key.clone()];
        // As in the SAML property: no namespace declaration that exclusive canonicalization
        // leaves out (unused, or repeating one in scope), so a change to one is a change.
        let assertion = |s: &ResponseSpec| {
            s.assertion_xml()
                .replace(r#" xmlns:xs="http://www.w3.org/2001/XMLSchema""#, "")
        };

        let mut s = ResponseSpec::valid(REQ, ACS, SP, ISSUER, "alice@corp.test", now);
        s.sign_assertion = false;
        s.sign_response = true;
        // The EncryptedKey beside the EncryptedData: no xenc declaration repeated in scope.
        let how = Encryption {
            key_beside: true,
            ..Encryption::gcm()
        };
        let enc = encrypt_element(
            &assertion(&s),
            &g.certificate_pem,
            "EncryptedAssertion",
            &how,
        )
        .expect("encrypted");
        let gcm = s
            .build_with(&idp, None, &[enc])
            .expect("signed response")
            .trim_end()
            .to_string();

        let mut s = ResponseSpec::valid(REQ, ACS, SP, ISSUER, "alice@corp.test", now);
        s.sign_assertion = true;
        s.sign_response = false;
        let plain = strip_xml_decl(&idp.sign(&assertion(&s)).expect("signed assertion"));
        let how = Encryption {
            data: "http://www.w3.org/2001/04/xmlenc#aes128-cbc".into(),
            ..Encryption::gcm()
        };
        let enc = encrypt_element(&plain, &g.certificate_pem, "EncryptedAssertion", &how)
            .expect("encrypted");
        let cbc = s.build_with(&idp, None, &[enc]).expect("response");
        let (wrapped, _) = cipher_value(&cbc, true);
        let (data, _) = cipher_value(&cbc, false);
        let cek = unwrap(&key, &wrapped);
        let gcm_spans = super::spans(&gcm, ELEMENTS);
        Fixture {
            sp,
            now,
            gcm,
            gcm_spans,
            cbc,
            data,
            wrapped,
            cek,
            plain,
        }
    })
}

fn check(xml: &str) -> Result<String, String> {
    let f = fixture();
    validate_response(&f.sp, &encode(xml), REQ, f.now).map(|id| id.name_id)
}

/// A change to the CBC response's ciphertext.
#[derive(Debug, Clone)]
enum CipherMutation {
    /// Flip bit `.1` of byte `.0` of the IV and ciphertext.
    Flip(usize, u8),
    /// Keep the first `.0` bytes.
    Truncate(usize),
    /// Exchange two 16-byte blocks.
    Swap(usize, usize),
    /// Insert a copy of block `.0` after block `.1`.
    Duplicate(usize, usize),
    /// Flip bit `.1` of byte `.0` of the wrapped content key.
    FlipKey(usize, u8),
}

fn cipher_mutation() -> impl Strategy<Value = CipherMutation> {
    let f = fixture();
    let (len, blocks, key) = (f.data.len(), f.data.len() / 16, f.wrapped.len());
    prop_oneof![
        4 => (0..len, 0u8..8).prop_map(|(i, b)| CipherMutation::Flip(i, b)),
        1 => (0..len).prop_map(CipherMutation::Truncate),
        1 => (0..blocks, 0..blocks).prop_map(|(a, b)| CipherMutation::Swap(a, b)),
        1 => (0..blocks, 0..blocks).prop_map(|(a, b)| CipherMutation::Duplicate(a, b)),
        1 => (0..key, 0u8..8).prop_map(|(i, b)| CipherMutation::FlipKey(i, b)),
    ]
}

impl CipherMutation {
    /// The changed (IV and ciphertext, wrapped key).
    fn apply(&self, data: &[u8], wrapped: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut d, mut k) = (data.to_vec(), wrapped.to_vec());
        let block = |i: usize| i * 16..i * 16 + 16;
        match *self {
            CipherMutation::Flip(i, bit) => d[i] ^= 1 << bit,
            CipherMutation::Truncate(n) => d.truncate(n),
            CipherMutation::Swap(a, b) => {
                let x = data[block(a)].to_vec();
                d[block(a)].copy_from_slice(&data[block(b)]);
                d[block(b)].copy_from_slice(&x);
            }
            CipherMutation::Duplicate(a, b) => {
                let x = data[block(a)].to_vec();
                d.splice(block(b).end..block(b).end, x);
            }
            CipherMutation::FlipKey(i, bit) => k[i] ^= 1 << bit,
        }
        (d, k)
    }
}

/// What AES-128-CBC with the fixture's content key makes of `data` (XML Encryption's padding
/// removed), when it is text.
fn plaintext(data: &[u8]) -> Option<String> {
    use openssl::symm::{Cipher, Crypter, Mode};
    let f = fixture();
    if data.len() < 32 || !data.len().is_multiple_of(16) {
        return None;
    }
    let (iv, body) = data.split_at(16);
    let mut c = Crypter::new(Cipher::aes_128_cbc(), Mode::Decrypt, &f.cek, Some(iv)).ok()?;
    c.pad(false);
    let mut out = vec![0u8; body.len() + 16];
    let mut n = c.update(body, &mut out).ok()?;
    n += c.finalize(&mut out[n..]).ok()?;
    out.truncate(n);
    let pad = usize::from(*out.last()?);
    if pad == 0 || pad > 16 {
        return None;
    }
    out.truncate(out.len() - pad);
    String::from_utf8(out).ok()
}

#[test]
fn both_fixtures_sign_in() {
    let f = fixture();
    assert_eq!(check(&f.gcm).as_deref(), Ok("alice@corp.test"));
    assert_eq!(check(&f.cbc).as_deref(), Ok("alice@corp.test"));
    assert_eq!(plaintext(&f.data).as_deref(), Some(f.plain.as_str()));
    assert!(f.gcm_spans.len() >= ELEMENTS.len());
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn a_mutated_signed_encrypted_response_never_signs_anyone_in(
        m in super::mutation(fixture().gcm.len(), fixture().gcm_spans.len())
    ) {
        let f = fixture();
        let Some(xml) = m.apply(&f.gcm, &f.gcm_spans) else { return Ok(()) };
        prop_assume!(signed_content(&xml) != signed_content(&f.gcm));
        let r = check(&xml);
        prop_assert!(r.is_err(), "{m:?} was accepted: {r:?} in {xml}");
    }

    #[test]
    fn a_mutated_cbc_ciphertext_signs_in_only_as_the_signed_assertion(m in cipher_mutation()) {
        let f = fixture();
        let (data, wrapped) = m.apply(&f.data, &f.wrapped);
        let (_, (da, db)) = cipher_value(&f.cbc, false);
        let (_, (ka, kb)) = cipher_value(&f.cbc, true);
        let xml = format!(
            "{}{}{}{}{}",
            &f.cbc[..ka],
            STANDARD.encode(&wrapped),
            &f.cbc[kb..da],
            STANDARD.encode(&data),
            &f.cbc[db..]
        );
        let key_intact = wrapped == f.wrapped;
        let same = key_intact
            && plaintext(&data).is_some_and(|p| signed_content(&p) == signed_content(&f.plain));
        let r = check(&xml);
        if same {
            prop_assert_eq!(r.as_deref(), Ok("alice@corp.test"), "{:?}", m);
        } else {
            let e = r.err().unwrap_or_default();
            prop_assert!(
                e == NOT_OURS || e == SIGNATURE_INVALID,
                "{m:?}: {e:?} (a changed plaintext must read as undecryptable or unsigned)"
            );
        }
    }
}
