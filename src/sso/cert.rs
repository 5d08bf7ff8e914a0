//! X.509 certificates of SAML identity providers: parsing (PEM or bare base64 DER, as IdP
//! metadata carries them), normalising to PEM, and describing them for admins.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::clock::rfc3339;

/// Fewest bits of an RSA key that verifies a SAML response (NIST SP 800-131A, as for OIDC).
pub const MIN_RSA_BITS: usize = 2048;

/// Largest certificate text accepted.
pub const MAX_CERT_TEXT: usize = 32 * 1024;

/// A parsed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The certificate as PEM (normalised: one block, 64-column base64).
    pub pem: String,
    /// The DER bytes.
    pub der: Vec<u8>,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity (Unix time).
    pub not_before: i64,
    /// End of validity (Unix time).
    pub not_after: i64,
    /// e.g. `RSA 2048`, `EC`.
    pub key: String,
    /// The size of an RSA key, in bits.
    pub rsa_bits: Option<usize>,
    /// SHA-256 fingerprint, colon-separated uppercase hex.
    pub sha256_fingerprint: String,
}

impl CertInfo {
    /// True when `now` is past the end of validity.
    pub fn is_expired(&self, now: i64) -> bool {
        now > self.not_after
    }
    /// `Err` naming `field` when the key is too weak to trust: RSA under [`MIN_RSA_BITS`], or
    /// DSA.
    pub fn check_key(&self, field: &str) -> Result<(), String> {
        match self.rsa_bits {
            Some(bits) if bits < MIN_RSA_BITS => Err(format!(
                "{field} has an RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
            )),
            _ if self.key == "DSA" => Err(format!("{field} has a DSA key, which is refused")),
            _ => Ok(()),
        }
    }
    /// Whole days from `now` to the end of validity (negative when expired).
    pub fn days_to_expiry(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
    /// One line for admins: subject, validity, key.
    pub fn describe(&self, now: i64) -> String {
        format!(
            "subject {}; valid {} to {} ({} days left); key {}",
            self.subject,
            rfc3339(self.not_before),
            rfc3339(self.not_after),
            self.days_to_expiry(now),
            self.key
        )
    }
}

/// Parses a certificate given as PEM or as bare base64 DER. The error names `field`.
pub fn parse(field: &str, text: &str) -> Result<CertInfo, String> {
    if text.len() > MAX_CERT_TEXT {
        return Err(format!(
            "{field} is too large (at most {MAX_CERT_TEXT} characters)"
        ));
    }
    let not_x509 = || format!("{field} must be an X.509 certificate (PEM, or base64 DER)");
    let text = text.trim();
    let der = if text.contains("-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|_| not_x509())?;
        if pem.label != "CERTIFICATE" {
            return Err(format!("{field} must be a CERTIFICATE, not {}", pem.label));
        }
        pem.contents
    } else {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD.decode(compact).map_err(|_| not_x509())?
    };
    let (rest, cert) = X509Certificate::from_der(&der).map_err(|_| not_x509())?;
    if !rest.is_empty() {
        return Err(not_x509());
    }
    let mut rsa_bits = None;
    let key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(k)) => {
            // The modulus' bit length, leading zero bytes and bits not counted.
            let m = k.modulus;
            let first = m.iter().position(|b| *b != 0).unwrap_or(m.len());
            let bits = m
                .get(first)
                .map_or(0, |b| (m.len() - first) * 8 - b.leading_zeros() as usize);
            rsa_bits = Some(bits);
            format!("RSA {bits}")
        }
        Ok(PublicKey::EC(_)) => "EC".to_string(),
        Ok(PublicKey::DSA(_)) => "DSA".to_string(),
        _ => "unknown".to_string(),
    };
    let fp = crate::crypto::sha256_hex_bytes(&der);
    let sha256_fingerprint = fp
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let info = CertInfo {
        pem: to_pem(&der),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key,
        rsa_bits,
        sha256_fingerprint,
        der: Vec::new(),
    };
    Ok(CertInfo { der, ..info })
}

fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // a certificate's validity is wall-clock time
    fn self_signed(days_valid: i64) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["idp.test".into()]).unwrap_or_default();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days_valid);
        let key = rcgen::KeyPair::generate();
        match key.and_then(|k| params.self_signed(&k)) {
            Ok(c) => c.pem(),
            Err(_) => String::new(),
        }
    }

    #[test]
    fn parses_pem_and_bare_base64_der_alike() -> Result<(), String> {
        let pem = self_signed(30);
        let a = parse("Certificate", &pem)?;
        let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let b = parse("Certificate", &bare)?;
        assert_eq!(a.der, b.der);
        assert_eq!(a.pem, b.pem);
        assert!(a.subject.contains("rcgen") || !a.subject.is_empty());
        Ok(())
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() -> Result<(), String> {
        // openssl req -x509 -newkey rsa:1024 (a fixture: rcgen makes no RSA keys).
        let weak = parse(
            "Certificate",
            include_str!("../../tests/fixtures/rsa1024-idp-cert.pem"),
        )?;
        assert_eq!(weak.rsa_bits, Some(1024));
        assert_eq!(weak.key, "RSA 1024");
        let e = weak.check_key("Certificate").unwrap_err();
        assert!(e.contains("RSA key of 1024 bits; at least 2048"), "{e}");
        // An EC key (rcgen's) passes.
        assert!(
            parse("Certificate", &self_signed(30))?
                .check_key("Certificate")
                .is_ok()
        );
        Ok(())
    }

    #[test]
    fn refuses_garbage_naming_the_field() {
        for bad in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            "QUJD",
        ] {
            let e = parse("NextCertificate", bad).err().unwrap_or_default();
            assert!(
                e.starts_with("NextCertificate must be an X.509 certificate"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // measured against the certificate just made
    fn reports_expiry() -> Result<(), String> {
        let c = parse("Certificate", &self_signed(10))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(!c.is_expired(now));
        assert!(c.is_expired(now + 11 * 86_400));
        assert!((9..=10).contains(&c.days_to_expiry(now)));
        Ok(())
    }
}
