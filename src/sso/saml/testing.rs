//! For tests and the benchmark: an IdP that signs responses with its own key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::{Crypto, CryptoProvider};
use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};

use super::{NAMEID_EMAIL, SpConfig};

/// The agent's side of a test sign-in: `sp_entity_id`, `acs_url`, the IdP `issuer` and its
/// certificate; no decryption key, plain assertions accepted.
pub fn sp_config(idp: &TestIdp, sp_entity_id: &str, acs_url: &str, issuer: &str) -> SpConfig {
    SpConfig {
        sp_entity_id: sp_entity_id.into(),
        acs_url: acs_url.into(),
        idp_sso_url: "https://idp.corp.test/sso".into(),
        idp_entity_id: Some(issuer.into()),
        certificates: vec![idp.cert_der.clone()],
        decryption_keys: Vec::new(),
        require_encrypted_assertions: false,
    }
}

/// A signing IdP: key and self-signed certificate.
pub struct TestIdp {
    key_der: Vec<u8>,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
}

impl TestIdp {
    /// A fresh RSA-2048 IdP.
    pub fn new() -> Result<Self, String> {
        let idp = IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048))
            .map_err(|e| e.to_string())?;
        let cert = idp
            .create_certificate(&CertificateParams {
                common_name: "test-idp",
                issuer_name: "test-idp",
                days_until_expiration: 365,
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            key_der: idp.export_private_key_der().map_err(|e| e.to_string())?,
            cert_der: cert.der_data().to_vec(),
        })
    }
    /// The IdP whose private key (PKCS#1/PKCS#8 DER) and certificate (DER) these are, as
    /// [`TestIdp::key_der`] and `cert_der` gave them (the benchmark keeps one across processes).
    pub fn from_der(key_der: Vec<u8>, cert_der: Vec<u8>) -> Self {
        Self { key_der, cert_der }
    }
    /// The private key (DER).
    pub fn key_der(&self) -> &[u8] {
        &self.key_der
    }
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.cert_der);
        let lines: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }
    /// Fills every empty `ds:Signature` template of `xml` (see [`signature_template`]).
    pub fn sign(&self, xml: &str) -> Result<String, String> {
        Crypto::sign_xml(xml, &self.key_der).map_err(|e| e.to_string())
    }
}

/// An enveloped-signature template referencing `#id`, to put as the first child after Issuer.
pub fn signature_template(id: &str) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
    )
}

/// [`signature_template`] for `id` when `signed`, else nothing.
fn template_if(signed: bool, id: &str) -> String {
    if signed {
        signature_template(id)
    } else {
        String::new()
    }
}

/// The parts of a response a test varies.
#[derive(Debug, Clone)]
pub struct ResponseSpec {
    /// Response ID.
    pub response_id: String,
    /// Assertion ID.
    pub assertion_id: String,
    /// InResponseTo (response and subject confirmation); `None` = unsolicited.
    pub in_response_to: Option<String>,
    /// Destination and Recipient.
    pub destination: String,
    /// Audience.
    pub audience: String,
    /// Issuer.
    pub issuer: String,
    /// NameID element content (raw XML, so tests can inject comments).
    pub name_id_xml: String,
    /// The NameID's Format.
    pub name_id_format: String,
    /// Status code URI.
    pub status: String,
    /// Time of issue.
    pub issue_instant: i64,
    /// NotBefore.
    pub not_before: i64,
    /// NotOnOrAfter.
    pub not_on_or_after: i64,
    /// Sign the Response element.
    pub sign_response: bool,
    /// Sign the Assertion element.
    pub sign_assertion: bool,
    /// Extra attributes: (name, values).
    pub attributes: Vec<(String, Vec<String>)>,
}

fn ts(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

impl ResponseSpec {
    /// A valid response for `request_id` now.
    pub fn valid(
        request_id: &str,
        acs: &str,
        sp_entity_id: &str,
        issuer: &str,
        name_id: &str,
        now: i64,
    ) -> Self {
        Self {
            response_id: format!(
                "_r{}",
                hex::encode(crate::crypto::random_bytes::<8>().unwrap_or_default())
            ),
            assertion_id: format!(
                "_a{}",
                hex::encode(crate::crypto::random_bytes::<8>().unwrap_or_default())
            ),
            in_response_to: Some(request_id.to_string()),
            destination: acs.to_string(),
            audience: sp_entity_id.to_string(),
            issuer: issuer.to_string(),
            name_id_xml: name_id.to_string(),
            name_id_format: NAMEID_EMAIL.to_string(),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            issue_instant: now,
            not_before: now - 30,
            not_on_or_after: now + 300,
            sign_response: false,
            sign_assertion: true,
            attributes: vec![],
        }
    }

    /// ` InResponseTo="…"` when the response answers a request; nothing when unsolicited.
    fn in_response_to_attribute(&self) -> String {
        self.in_response_to
            .as_deref()
            .map(|i| format!(r#" InResponseTo="{i}""#))
            .unwrap_or_default()
    }

    /// The assertion element (with a signature template when it is to be signed).
    pub fn assertion_xml(&self) -> String {
        let irt = self.in_response_to_attribute();
        let sig = template_if(self.sign_assertion, &self.assertion_id);
        let attrs: String = self
            .attributes
            .iter()
            .map(|(n, vs)| {
                let values: String = vs
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{v}</saml:AttributeValue>"))
                    .collect();
                format!(r#"<saml:Attribute Name="{n}">{values}</saml:Attribute>"#)
            })
            .collect();
        let attr_statement = if attrs.is_empty() {
            String::new()
        } else {
            format!("<saml:AttributeStatement>{attrs}</saml:AttributeStatement>")
        };
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="{aid}" Version="2.0" IssueInstant="{ii}"><saml:Issuer>{iss}</saml:Issuer>{sig}<saml:Subject><saml:NameID Format="{nameid_format}">{nameid}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{nooa}" Recipient="{dest}"{irt}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{nooa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{ii}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>{attr_statement}</saml:Assertion>"#,
            aid = self.assertion_id,
            ii = ts(self.issue_instant),
            iss = self.issuer,
            nameid = self.name_id_xml,
            nameid_format = self.name_id_format,
            nooa = ts(self.not_on_or_after),
            nb = ts(self.not_before),
            dest = self.destination,
            aud = self.audience,
        )
    }

    /// The whole response around `assertion` (unsigned templates included).
    pub fn response_xml(&self, assertion: &str) -> String {
        let irt = self.in_response_to_attribute();
        let sig = template_if(self.sign_response, &self.response_id);
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{rid}" Version="2.0" IssueInstant="{ii}" Destination="{dest}"{irt}><saml:Issuer>{iss}</saml:Issuer>{sig}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertion}</samlp:Response>"#,
            rid = self.response_id,
            ii = ts(self.issue_instant),
            dest = self.destination,
            iss = self.issuer,
            status = self.status,
        )
    }

    /// Signs per the spec's flags and returns the XML.
    pub fn build(&self, idp: &TestIdp) -> Result<String, String> {
        self.build_with(idp, None, &[self.signed_assertion(idp)?])
    }

    /// The assertion element, signed when `sign_assertion` is set.
    pub fn signed_assertion(&self, idp: &TestIdp) -> Result<String, String> {
        if self.sign_assertion {
            Ok(strip_xml_decl(&idp.sign(&self.assertion_xml())?))
        } else {
            Ok(self.assertion_xml())
        }
    }

    /// The response around `assertions` (any number, in order), with `status` in place of
    /// the Status element when given; the Response is signed when `sign_response` is set.
    pub fn build_with(
        &self,
        idp: &TestIdp,
        status: Option<&str>,
        assertions: &[String],
    ) -> Result<String, String> {
        let mut response = self.response_xml(&assertions.concat());
        if let Some(status) = status {
            let start = response.find("<samlp:Status>").ok_or("no Status")?;
            let end =
                response.find("</samlp:Status>").ok_or("no Status")? + "</samlp:Status>".len();
            response.replace_range(start..end, status);
        }
        let response = if self.sign_response {
            idp.sign(&response)?
        } else {
            response
        };
        Ok(strip_xml_decl(&response))
    }
}

/// A Status element: top-level code, optional sub-status and message (raw XML text).
pub fn status_xml(code: &str, sub: Option<&str>, message: Option<&str>) -> String {
    let sub = sub
        .map(|s| format!(r#"<samlp:StatusCode Value="{s}"/>"#))
        .unwrap_or_default();
    let message = message
        .map(|m| format!("<samlp:StatusMessage>{m}</samlp:StatusMessage>"))
        .unwrap_or_default();
    format!(
        r#"<samlp:Status><samlp:StatusCode Value="{code}">{sub}</samlp:StatusCode>{message}</samlp:Status>"#
    )
}

/// Removes a leading `<?xml …?>` declaration (to embed a signed element in another).
pub fn strip_xml_decl(xml: &str) -> String {
    let t = xml.trim_start();
    match t
        .strip_prefix("<?xml")
        .and_then(|r| r.find("?>").map(|i| r[i + 2..].to_string()))
    {
        Some(rest) => rest.trim_start().to_string(),
        None => t.to_string(),
    }
}

/// Base64 of `xml`, as a SAMLResponse form field.
pub fn encode(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}

/// How a test IdP encrypts an assertion: the data and key-transport algorithms (URIs).
#[derive(Debug, Clone)]
pub struct Encryption {
    /// `EncryptedData`'s algorithm (e.g. `…xmlenc11#aes256-gcm`).
    pub data: String,
    /// `EncryptedKey`'s algorithm (e.g. `…xmlenc#rsa-oaep-mgf1p`, `…#rsa-1_5`).
    pub key: String,
    /// The xmlenc11 OAEP `DigestMethod`/`MGF` (e.g. sha256 and mgf1sha256), when given.
    pub oaep_sha256: bool,
    /// Put the `EncryptedKey` beside the `EncryptedData` (Shibboleth's layout) rather than in
    /// its `KeyInfo`.
    pub key_beside: bool,
}

impl Encryption {
    /// AES-256-GCM with RSA-OAEP (MGF1-SHA1): what most IdPs send.
    pub fn gcm() -> Self {
        Self {
            data: "http://www.w3.org/2009/xmlenc11#aes256-gcm".into(),
            key: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p".into(),
            oaep_sha256: false,
            key_beside: false,
        }
    }
}

/// Encrypts the element `plain_xml` to the certificate `cert_pem` as `<saml:{wrapper}>`
/// (`EncryptedAssertion` or `EncryptedID`), the way IdPs do (XML Encryption, Type Element).
pub fn encrypt_element(
    plain_xml: &str,
    cert_pem: &str,
    wrapper: &str,
    how: &Encryption,
) -> Result<String, String> {
    use openssl::pkey_ctx::PkeyCtx;
    use openssl::rsa::Padding;
    use openssl::symm::{Cipher, encrypt_aead};
    let e = |err: openssl::error::ErrorStack| err.to_string();
    let cert = openssl::x509::X509::from_pem(cert_pem.as_bytes()).map_err(e)?;
    let public = cert.public_key().map_err(e)?;
    let (cipher, key_len, gcm) = match how.data.rsplit('#').next().unwrap_or("") {
        "aes128-gcm" => (Cipher::aes_128_gcm(), 16, true),
        "aes256-gcm" => (Cipher::aes_256_gcm(), 32, true),
        "aes128-cbc" => (Cipher::aes_128_cbc(), 16, false),
        "aes256-cbc" => (Cipher::aes_256_cbc(), 32, false),
        other => return Err(format!("test encryptor: no cipher {other}")),
    };
    let cek = crate::crypto::random_bytes::<32>().map_err(|x| x.to_string())?;
    let cek = &cek[..key_len];
    let mut value = Vec::new();
    if gcm {
        let iv = crate::crypto::random_bytes::<12>().map_err(|x| x.to_string())?;
        let mut tag = [0u8; 16];
        let ct =
            encrypt_aead(cipher, cek, Some(&iv), &[], plain_xml.as_bytes(), &mut tag).map_err(e)?;
        value.extend_from_slice(&iv);
        value.extend_from_slice(&ct);
        value.extend_from_slice(&tag);
    } else {
        // XML Encryption's padding: arbitrary bytes, the last one counting them.
        let iv = crate::crypto::random_bytes::<16>().map_err(|x| x.to_string())?;
        let mut padded = plain_xml.as_bytes().to_vec();
        let pad = 16 - padded.len() % 16;
        padded.extend(std::iter::repeat_n(0xA5u8, pad - 1));
        padded.push(u8::try_from(pad).unwrap_or(16));
        let mut c =
            openssl::symm::Crypter::new(cipher, openssl::symm::Mode::Encrypt, cek, Some(&iv))
                .map_err(e)?;
        c.pad(false);
        let mut ct = vec![0u8; padded.len() + 16];
        let mut n = c.update(&padded, &mut ct).map_err(e)?;
        n += c.finalize(&mut ct[n..]).map_err(e)?;
        ct.truncate(n);
        value.extend_from_slice(&iv);
        value.extend_from_slice(&ct);
    }
    let mut ctx = PkeyCtx::new(&public).map_err(e)?;
    ctx.encrypt_init().map_err(e)?;
    let oaep = how.key.ends_with("rsa-oaep-mgf1p") || how.key.ends_with("xmlenc11#rsa-oaep");
    if oaep {
        ctx.set_rsa_padding(Padding::PKCS1_OAEP).map_err(e)?;
        if how.oaep_sha256 {
            ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).map_err(e)?;
            ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).map_err(e)?;
        }
    } else {
        ctx.set_rsa_padding(Padding::PKCS1).map_err(e)?;
    }
    let mut wrapped = Vec::new();
    ctx.encrypt_to_vec(cek, &mut wrapped).map_err(e)?;
    let params = if how.oaep_sha256 {
        r#"<ds:DigestMethod xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><xenc11:MGF xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" Algorithm="http://www.w3.org/2009/xmlenc11#mgf1sha256"/>"#
    } else {
        ""
    };
    let encrypted_key = format!(
        r#"<xenc:EncryptedKey xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"><xenc:EncryptionMethod Algorithm="{alg}">{params}</xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>"#,
        alg = how.key,
        wrapped = STANDARD.encode(&wrapped),
    );
    let (inside, beside) = if how.key_beside {
        (String::new(), encrypted_key)
    } else {
        (
            format!(
                r#"<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">{encrypted_key}</ds:KeyInfo>"#
            ),
            String::new(),
        )
    };
    Ok(format!(
        r#"<saml:{wrapper}><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{data}"/>{inside}<xenc:CipherData><xenc:CipherValue>{value}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>{beside}</saml:{wrapper}>"#,
        data = how.data,
        value = STANDARD.encode(&value),
    ))
}
