//! For tests and the benchmark: an IdP that signs responses with its own key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::{Crypto, CryptoProvider};
use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};

use super::NAMEID_EMAIL;

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
