//! The agent's own SAML key pairs (it is the SP): generating one, and the HTTP-Redirect
//! binding signature over an AuthnRequest (SAML bindings §3.4.4.1).
//!
//! Keys are RSA-2048 with a self-signed certificate, as IdPs expect of an SP (Okta, Entra ID
//! and ADFS pin the uploaded certificate; none checks a chain). Where they are kept, and
//! when they rotate, is the sign-in service's business (`login::sp_keys`).

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509, X509NameBuilder};
use zeroize::Zeroizing;

/// Bits of the RSA keys the agent generates.
pub const SP_KEY_BITS: u32 = 2048;
/// Validity of a generated SP certificate: five years (renewed by rotating the keys).
pub const SP_CERT_DAYS: i64 = 5 * 365;
/// `SigAlg` of the agent's redirect signatures.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// What a key is for; the SP metadata's `KeyDescriptor use`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUse {
    /// Signing AuthnRequests.
    Signing,
    /// Decrypting assertions encrypted to the agent.
    Encryption,
}

impl KeyUse {
    /// The stored and published name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Signing => "signing",
            KeyUse::Encryption => "encryption",
        }
    }
}

/// A freshly generated key pair.
pub struct Generated {
    /// The private key, PKCS#8 DER (to be sealed at once).
    pub private_pkcs8: Zeroizing<Vec<u8>>,
    /// The self-signed certificate, PEM.
    pub certificate_pem: String,
    /// End of the certificate's validity (Unix time).
    pub not_after: i64,
}

/// Generates an RSA-2048 key pair and a self-signed certificate valid from `now` (an hour
/// back, for clock skew) for [`SP_CERT_DAYS`], its subject naming `subject`.
pub fn generate(subject: &str, now: i64) -> Result<Generated, String> {
    let rsa = Rsa::generate(SP_KEY_BITS).map_err(e("RSA key generation"))?;
    let key = PKey::from_rsa(rsa).map_err(e("RSA key"))?;
    let mut name = X509NameBuilder::new().map_err(e("certificate name"))?;
    // CN is at most 64 characters (RFC 5280 ub-common-name).
    let cn: String = subject.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn)
        .map_err(e("certificate name"))?;
    name.append_entry_by_text("O", "Amove agent")
        .map_err(e("certificate name"))?;
    let name = name.build();
    let not_before = now.saturating_sub(3600);
    let not_after = now.saturating_add(SP_CERT_DAYS * 86_400);
    let serial = crate::crypto::random_bytes::<16>().map_err(|err| err.to_string())?;
    let serial = BigNum::from_slice(&serial)
        .and_then(|b| Asn1Integer::from_bn(&b))
        .map_err(e("certificate serial"))?;
    let mut cert = X509::builder().map_err(e("certificate"))?;
    cert.set_version(2).map_err(e("certificate"))?;
    cert.set_serial_number(&serial)
        .map_err(e("certificate serial"))?;
    cert.set_subject_name(&name).map_err(e("certificate"))?;
    cert.set_issuer_name(&name).map_err(e("certificate"))?;
    cert.set_pubkey(&key).map_err(e("certificate"))?;
    let start = Asn1Time::from_unix(not_before).map_err(e("certificate validity"))?;
    let end = Asn1Time::from_unix(not_after).map_err(e("certificate validity"))?;
    cert.set_not_before(&start)
        .map_err(e("certificate validity"))?;
    cert.set_not_after(&end)
        .map_err(e("certificate validity"))?;
    cert.sign(&key, MessageDigest::sha256())
        .map_err(e("certificate signature"))?;
    let certificate_pem = String::from_utf8(cert.build().to_pem().map_err(e("certificate"))?)
        .map_err(|_| "certificate PEM is not UTF-8".to_string())?;
    let private_pkcs8 = Zeroizing::new(
        key.private_key_to_pkcs8()
            .map_err(e("private key encoding"))?,
    );
    Ok(Generated {
        private_pkcs8,
        certificate_pem,
        not_after,
    })
}

/// An openssl failure, naming the step.
fn e(what: &'static str) -> impl Fn(openssl::error::ErrorStack) -> String {
    move |err| format!("{what}: {err}")
}

/// Reads a private key kept as PKCS#8 DER.
pub fn private_key(pkcs8: &[u8]) -> Result<PKey<Private>, String> {
    PKey::private_key_from_pkcs8(pkcs8).map_err(|e| format!("SP private key: {e}"))
}

/// The query string of a signed HTTP-Redirect message: `SAMLRequest=…[&RelayState=…]
/// &SigAlg=…&Signature=…`, each value form-urlencoded. The signature (RSA-SHA256) covers
/// the octets `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as they appear in the query, as
/// bindings §3.4.4.1 requires; nothing else in the URL is signed.
pub fn signed_query(
    saml_request_b64: &str,
    relay_state: &str,
    key: &PKey<Private>,
) -> Result<String, String> {
    signed_query_named("SAMLRequest", saml_request_b64, relay_state, key)
}

/// [`signed_query`] for the message parameter `param` (`SAMLRequest` or `SAMLResponse`).
pub fn signed_query_named(
    param: &str,
    message_b64: &str,
    relay_state: &str,
    key: &PKey<Private>,
) -> Result<String, String> {
    let mut query = unsigned_query_named(param, message_b64, relay_state);
    query.push_str("&SigAlg=");
    query.push_str(&encode(RSA_SHA256));
    let mut signer = Signer::new(MessageDigest::sha256(), key)
        .map_err(|e| format!("AuthnRequest signature: {e}"))?;
    signer
        .update(query.as_bytes())
        .map_err(|e| format!("AuthnRequest signature: {e}"))?;
    let signature = signer
        .sign_to_vec()
        .map_err(|e| format!("AuthnRequest signature: {e}"))?;
    query.push_str("&Signature=");
    query.push_str(&encode(&base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        signature,
    )));
    Ok(query)
}

/// `SAMLRequest=…[&RelayState=…]`, form-urlencoded.
pub fn unsigned_query(saml_request_b64: &str, relay_state: &str) -> String {
    unsigned_query_named("SAMLRequest", saml_request_b64, relay_state)
}

/// [`unsigned_query`] for the message parameter `param`.
pub fn unsigned_query_named(param: &str, message_b64: &str, relay_state: &str) -> String {
    let mut query = format!("{param}={}", encode(message_b64));
    if !relay_state.is_empty() {
        query.push_str("&RelayState=");
        query.push_str(&encode(relay_state));
    }
    query
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::sign::Verifier;

    #[test]
    fn generated_keys_are_rsa_2048_with_a_self_signed_certificate() {
        let g = generate("Amove SP acme", 1_800_000_000).unwrap();
        let info = crate::sso::cert::parse("SP", &g.certificate_pem).unwrap();
        assert_eq!(info.rsa_bits, Some(2048));
        assert_eq!(info.subject, info.issuer);
        assert!(info.subject.contains("Amove SP acme"), "{}", info.subject);
        assert_eq!(info.not_after, g.not_after);
        assert!(info.not_before < 1_800_000_000);
        let key = private_key(&g.private_pkcs8).unwrap();
        let cert = X509::from_pem(g.certificate_pem.as_bytes()).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
    }

    #[test]
    fn the_signature_covers_exactly_the_three_parameters_as_sent() {
        let g = generate("t", 1_800_000_000).unwrap();
        let key = private_key(&g.private_pkcs8).unwrap();
        let q = signed_query("ab+c/d==", "r s&t", &key).unwrap();
        let (signed, sig) = q.split_once("&Signature=").unwrap();
        assert_eq!(
            signed,
            "SAMLRequest=ab%2Bc%2Fd%3D%3D&RelayState=r+s%26t&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"
        );
        let sig: String = form_urlencoded::parse(format!("s={sig}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig).unwrap();
        let public = X509::from_pem(g.certificate_pem.as_bytes())
            .unwrap()
            .public_key()
            .unwrap();
        let verify = |octets: &str| {
            let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
            v.update(octets.as_bytes()).unwrap();
            v.verify(&sig).unwrap()
        };
        assert!(verify(signed));
        // Another RelayState (or any other change of the octets) does not verify.
        assert!(!verify(&signed.replace("r+s%26t", "r+s%26u")));
    }

    #[test]
    fn no_relay_state_means_no_parameter() {
        assert_eq!(unsigned_query("x", ""), "SAMLRequest=x");
    }
}
