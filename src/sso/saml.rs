//! SAML 2.0 service-provider logic: the AuthnRequest (HTTP-Redirect binding), fail-closed
//! validation of responses posted to the ACS, and the SP metadata admins register.
//!
//! Signature checking is samael's (xmlsec): the document is reduced to exactly what a
//! verified signature covers before anything is read from it, so XML signature wrapping
//! cannot smuggle unsigned content in. On top of samael's checks this module refuses DTDs
//! and entities before parsing, requires an Audience equal to the SP entity id, and applies
//! the time window with the agent's own clock.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use quick_xml::events::Event;
use samael::crypto::AllowedSignatureAlgorithm;
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{EntityDescriptor, IdpSsoDescriptor, KeyDescriptor};
use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
use samael::service_provider::ServiceProvider;

/// Allowed clock difference between the agent and the IdP.
pub const CLOCK_SKEW_SECS: i64 = 120;
/// The HTTP-POST binding URI.
pub const HTTP_POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// The HTTP-Redirect binding URI.
pub const HTTP_REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// NameID format asked for: the agent matches users by email.
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// Largest decoded SAML response accepted.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// What the agent knows about the SP side and the IdP it trusts.
#[derive(Debug, Clone)]
pub struct SpConfig {
    /// The agent's entity id (Issuer of requests, expected Audience).
    pub sp_entity_id: String,
    /// The agent's ACS URL (expected Destination and Recipient).
    pub acs_url: String,
    /// The IdP's SSO URL (HTTP-Redirect binding).
    pub idp_sso_url: String,
    /// When set, responses and assertions must name this Issuer.
    pub idp_entity_id: Option<String>,
    /// The IdP signing certificates (DER): the current one and, during a rollover, the next.
    pub certificates: Vec<Vec<u8>>,
}

/// An AuthnRequest ready for the browser.
#[derive(Debug, Clone)]
pub struct RedirectRequest {
    /// The request's ID (the response's InResponseTo must equal it).
    pub id: String,
    /// `IdPSSOURL?SAMLRequest=…&RelayState=…`.
    pub url: String,
}

/// Builds an AuthnRequest asking for a POST to the ACS, encoded for the HTTP-Redirect binding
/// (deflate, base64, url-encode) with `relay_state`.
pub fn redirect_request(
    sp: &SpConfig,
    relay_state: &str,
    now: i64,
) -> Result<RedirectRequest, String> {
    let id = format!(
        "_{}",
        hex::encode(crate::crypto::random_bytes::<20>().map_err(|e| e.to_string())?)
    );
    let issue_instant =
        chrono::DateTime::from_timestamp(now, 0).ok_or("the clock is out of range")?;
    let request = AuthnRequest {
        id: id.clone(),
        version: "2.0".into(),
        issue_instant,
        destination: Some(sp.idp_sso_url.clone()),
        assertion_consumer_service_url: Some(sp.acs_url.clone()),
        protocol_binding: Some(HTTP_POST_BINDING.into()),
        issuer: Some(Issuer {
            value: Some(sp.sp_entity_id.clone()),
            ..Issuer::default()
        }),
        name_id_policy: Some(NameIdPolicy {
            format: Some(NAMEID_EMAIL.into()),
            allow_create: Some(true),
            sp_name_qualifier: None,
        }),
        ..AuthnRequest::default()
    };
    let url = request
        .redirect(relay_state)
        .map_err(|e| format!("could not encode the AuthnRequest: {e}"))?
        .ok_or("the AuthnRequest has no destination")?;
    Ok(RedirectRequest {
        id,
        url: url.to_string(),
    })
}

/// The identity a valid response asserts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamlIdentity {
    /// The assertion's Issuer (the IdP entity id).
    pub issuer: String,
    /// The NameID, as the full text of the element.
    pub name_id: String,
    /// The NameID's Format, if given.
    pub name_id_format: Option<String>,
    /// The assertion's ID (for the replay cache).
    pub assertion_id: String,
    /// Until when the assertion could be replayed (its NotOnOrAfter plus the skew).
    pub replayable_until: i64,
    /// The email to match a local user: the NameID when it is one, else an email attribute.
    pub email: Option<String>,
    /// Every attribute with its values.
    pub attributes: Vec<(String, Vec<String>)>,
}

/// Attribute names that carry an email address, in order of preference.
const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];

/// Validates a base64 `SAMLResponse` posted to the ACS for the AuthnRequest `request_id`.
/// Every failure says what was wrong; nothing unsigned is ever read.
pub fn validate_response(
    sp: &SpConfig,
    saml_response: &str,
    request_id: &str,
    now: i64,
) -> Result<SamlIdentity, String> {
    let compact: String = saml_response
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err("SAMLResponse is missing".into());
    }
    if compact.len() > MAX_RESPONSE_BYTES * 4 / 3 + 4 {
        return Err("SAMLResponse is too large".into());
    }
    let bytes = STANDARD
        .decode(compact)
        .map_err(|_| "SAMLResponse is not valid base64")?;
    let xml = std::str::from_utf8(&bytes).map_err(|_| "SAMLResponse is not UTF-8 XML")?;
    refuse_dtd(xml)?;
    let envelope = read_envelope(xml)?;
    check_envelope(&envelope, &sp.acs_url, request_id)?;
    if sp.certificates.is_empty() {
        return Err("no IdP certificate is configured".into());
    }
    // With no IdPEntityId configured the Issuer is not checked (SPEC); samael compares it to
    // its metadata's entity id, so give it the document's own. This can only refuse more: the
    // signature is verified against the configured certificates regardless.
    let expected_issuer = match &sp.idp_entity_id {
        Some(id) => id.clone(),
        None => assertion_issuer(xml).ok_or("the response has no assertion Issuer")?,
    };
    let provider = ServiceProvider {
        entity_id: Some(sp.sp_entity_id.clone()),
        acs_url: Some(sp.acs_url.clone()),
        idp_metadata: idp_metadata(&expected_issuer, &sp.certificates),
        allow_idp_initiated: false,
        max_clock_skew: chrono::Duration::seconds(CLOCK_SKEW_SECS),
        max_issue_delay: chrono::Duration::seconds(300),
        allowed_signature_algorithms: Some(vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::RsaSha384,
            AllowedSignatureAlgorithm::RsaSha512,
            AllowedSignatureAlgorithm::EcdsaSha256,
            AllowedSignatureAlgorithm::EcdsaSha384,
            AllowedSignatureAlgorithm::EcdsaSha512,
        ]),
        ..ServiceProvider::default()
    };
    let assertion = provider
        .parse_xml_response(xml, Some(&[request_id]))
        .map_err(describe_samael_error)?;

    // What samael leaves to the caller, checked with the agent's clock.
    let conditions = assertion
        .conditions
        .as_ref()
        .ok_or("the assertion has no Conditions")?;
    let audiences: Vec<&String> = conditions
        .audience_restrictions
        .iter()
        .flatten()
        .flat_map(|r| r.audience.iter())
        .collect();
    if !audiences.iter().any(|a| **a == sp.sp_entity_id) {
        return Err(format!(
            "the assertion's Audience is not this agent's SPEntityId '{}'",
            sp.sp_entity_id
        ));
    }
    if let Some(nb) = conditions.not_before
        && now + CLOCK_SKEW_SECS < nb.timestamp()
    {
        return Err("the assertion is not yet valid (NotBefore is in the future)".into());
    }
    let not_on_or_after = conditions.not_on_or_after.map(|t| t.timestamp());
    let subject = assertion
        .subject
        .as_ref()
        .ok_or("the assertion has no Subject")?;
    let confirmation_until = subject
        .subject_confirmations
        .iter()
        .flatten()
        .filter_map(|c| c.subject_confirmation_data.as_ref()?.not_on_or_after)
        .map(|t| t.timestamp())
        .max();
    let until = match (not_on_or_after, confirmation_until) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err("the assertion has no NotOnOrAfter".into()),
    };
    if until + CLOCK_SKEW_SECS <= now {
        return Err("the assertion has expired (NotOnOrAfter is in the past)".into());
    }
    if assertion.id.trim().is_empty() {
        return Err("the assertion has no ID".into());
    }
    let name_id = subject
        .name_id
        .as_ref()
        .ok_or("the assertion has no NameID")?;
    let name_id_value = name_id.value.trim().to_string();
    if name_id_value.is_empty() {
        return Err("the assertion's NameID is empty".into());
    }
    let issuer = assertion.issuer.value.clone().unwrap_or_default();
    let attributes: Vec<(String, Vec<String>)> = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .map(|a| {
            let name = a.name.clone().unwrap_or_default();
            let values = a.values.iter().filter_map(|v| v.value.clone()).collect();
            (name, values)
        })
        .collect();
    let email = if looks_like_email(&name_id_value) {
        Some(name_id_value.to_lowercase())
    } else {
        EMAIL_ATTRIBUTES.iter().find_map(|want| {
            attributes
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(want))
                .and_then(|(_, v)| v.first())
                .filter(|v| looks_like_email(v))
                .map(|v| v.to_lowercase())
        })
    };
    Ok(SamlIdentity {
        issuer,
        name_id: name_id_value,
        name_id_format: name_id.format.clone(),
        assertion_id: assertion.id.clone(),
        replayable_until: until + CLOCK_SKEW_SECS,
        email,
        attributes,
    })
}

fn looks_like_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !s.contains(char::is_whitespace))
}

/// Refuses any document type declaration or entity before the XML is parsed (XXE, entity
/// expansion): SAML messages never need them.
fn refuse_dtd(xml: &str) -> Result<(), String> {
    let lower = xml.to_ascii_lowercase();
    if lower.contains("<!doctype") || lower.contains("<!entity") {
        return Err("the response contains a DTD or entity declaration, which is refused".into());
    }
    Ok(())
}

/// What the Response element itself says, read before any signature is checked. Only ever
/// used to refuse: with only the assertion signed, samael reduces the document to the
/// assertion, so the envelope (status, Destination, InResponseTo) is checked here, fail-closed,
/// whatever is signed.
#[derive(Debug, Default)]
struct Envelope {
    /// The top-level `Status/StatusCode/@Value`.
    status: Option<String>,
    /// The nested (second-level) `StatusCode/@Value`.
    sub_status: Option<String>,
    /// `Status/StatusMessage`.
    message: String,
    /// `Response/@Destination`.
    destination: Option<String>,
    /// `Response/@InResponseTo`.
    in_response_to: Option<String>,
}

/// The SAML success status.
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Reads the Response envelope and refuses any document that is not one Response holding
/// exactly one Assertion. More assertions (or encrypted ones, or responses nested anywhere)
/// are what XML signature wrapping attacks are made of; an IdP answering one AuthnRequest
/// sends one.
fn read_envelope(xml: &str) -> Result<Envelope, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut responses, mut assertions, mut encrypted) = (0, 0, 0);
    let mut env = Envelope::default();
    // Local names of the open elements, outermost first.
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|_| "the response is not well-formed XML")?;
        let (e, opens) = match &event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Text(t) if in_status_message(&path) => {
                env.message.push_str(&t.decode().unwrap_or_default());
                continue;
            }
            Event::CData(t) if in_status_message(&path) => {
                env.message.push_str(&t.decode().unwrap_or_default());
                continue;
            }
            Event::GeneralRef(r) if in_status_message(&path) => {
                let name = r.decode().unwrap_or_default();
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .and_then(|s| s.chars().next()),
                };
                env.message.extend(c);
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = e.local_name().as_ref().to_vec();
        let at = |path: &[Vec<u8>], want: &[&[u8]]| {
            path.len() == want.len() && path.iter().zip(want).all(|(a, b)| a.as_slice() == *b)
        };
        match name.as_slice() {
            b"Response" if path.is_empty() => {
                responses += 1;
                env.destination = attribute(e, "Destination")?;
                env.in_response_to = attribute(e, "InResponseTo")?;
            }
            b"Response" => {
                return Err(
                    "the response contains a nested Response (signature wrapping refused)".into(),
                );
            }
            b"Assertion" => assertions += 1,
            b"EncryptedAssertion" => encrypted += 1,
            b"StatusCode" if at(&path, &[b"Response", b"Status"]) => {
                env.status = attribute(e, "Value")?;
            }
            b"StatusCode" if at(&path, &[b"Response", b"Status", b"StatusCode"]) => {
                env.sub_status = env.sub_status.take().or(attribute(e, "Value")?);
            }
            _ => {}
        }
        if opens {
            path.push(name);
        }
    }
    if responses != 1 {
        return Err("the document is not a SAML Response".into());
    }
    if assertions + encrypted > 1 {
        return Err(format!(
            "the response must contain exactly one Assertion, not {} (signature wrapping refused)",
            assertions + encrypted
        ));
    }
    if encrypted > 0 {
        return Err(
            "encrypted assertions are not supported; configure the IdP to sign, not encrypt".into(),
        );
    }
    if assertions == 0 {
        return Err("the response contains no Assertion".into());
    }
    Ok(env)
}

fn in_status_message(path: &[Vec<u8>]) -> bool {
    path.len() == 3 && path[1] == b"Status" && path[2] == b"StatusMessage"
}

/// An unprefixed attribute's value (`None` when absent).
fn attribute(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| Some(v.trim().to_string()))
            .map_err(|_| format!("the response's {name} attribute is malformed")),
        Ok(None) => Ok(None),
        Err(_) => Err(format!("the response's {name} attribute is malformed")),
    }
}

/// The envelope's refusals (SAML core §3.2.2): a non-Success status, a Destination other
/// than the ACS, an InResponseTo of another request, and the assertion count. Refusing on
/// unsigned content is safe; nothing here is ever a reason to accept.
fn check_envelope(env: &Envelope, acs_url: &str, request_id: &str) -> Result<(), String> {
    let status = env
        .status
        .as_deref()
        .ok_or("the response has no Status/StatusCode")?;
    if status != STATUS_SUCCESS {
        let short = |s: &str| s.rsplit(':').next().unwrap_or(s).to_string();
        let mut why = format!("the IdP answered with status {}", short(status));
        if let Some(sub) = &env.sub_status {
            why.push_str(&format!(", sub-status {}", short(sub)));
        }
        let message = printable(&env.message, 200);
        if !message.is_empty() {
            why.push_str(&format!(", message \"{message}\""));
        }
        why.push_str(", not Success; no sign-in happened");
        return Err(why);
    }
    if let Some(d) = &env.destination
        && d != acs_url
    {
        return Err("the response's Destination is not this agent's ACS URL".into());
    }
    if let Some(irt) = &env.in_response_to
        && irt != request_id
    {
        return Err(
            "the response does not answer this sign-in (its InResponseTo names another request)"
                .into(),
        );
    }
    Ok(())
}

/// `s` without control characters, whitespace collapsed, at most `max` characters: for
/// IdP-written text shown on a page and in the audit trail.
fn printable(s: &str, max: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let joined = words.join(" ");
    let clean: String = joined.chars().filter(|c| !c.is_control()).collect();
    match clean.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

/// The text of the first Issuer inside an Assertion (unverified; only used as the expected
/// issuer when none is configured).
fn assertion_issuer(xml: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut in_assertion, mut in_issuer) = (0usize, false);
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => match e.local_name().as_ref() {
                b"Assertion" => in_assertion += 1,
                b"Issuer" if in_assertion > 0 => in_issuer = true,
                _ => {}
            },
            Event::Text(t) if in_issuer => text.push_str(&t.decode().ok()?),
            Event::End(e) if in_issuer && e.local_name().as_ref() == b"Issuer" => {
                return Some(text.trim().to_string());
            }
            Event::End(e) if e.local_name().as_ref() == b"Assertion" => {
                in_assertion = in_assertion.saturating_sub(1);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

fn idp_metadata(entity_id: &str, certificates: &[Vec<u8>]) -> EntityDescriptor {
    let certs = certificates
        .iter()
        .map(|der| STANDARD.encode(der))
        .collect();
    EntityDescriptor {
        entity_id: Some(entity_id.to_string()),
        idp_sso_descriptors: Some(vec![IdpSsoDescriptor {
            id: None,
            valid_until: None,
            cache_duration: None,
            protocol_support_enumeration: None,
            error_url: None,
            signature: None,
            key_descriptors: vec![KeyDescriptor {
                key_use: Some("signing".into()),
                key_info: KeyInfo {
                    id: None,
                    x509_data: Some(X509Data {
                        certificates: certs,
                    }),
                },
                encryption_methods: None,
            }],
            organization: None,
            contact_people: vec![],
            artifact_resolution_service: vec![],
            single_logout_services: vec![],
            manage_name_id_services: vec![],
            name_id_formats: vec![],
            want_authn_requests_signed: None,
            single_sign_on_services: vec![],
            name_id_mapping_services: vec![],
            assertion_id_request_services: vec![],
            attribute_profiles: vec![],
            attributes: vec![],
        }]),
        ..EntityDescriptor::default()
    }
}

fn describe_samael_error(e: samael::service_provider::Error) -> String {
    use samael::service_provider::Error as E;
    match e {
        E::FailedToValidateSignature => {
            "the signature is missing, invalid, or not made by the configured IdP certificate".into()
        }
        E::DestinationValidationError { .. } => "the response's Destination is not this agent's ACS URL".into(),
        E::AssertionRecipientMismatch { .. } => "the assertion's Recipient is not this agent's ACS URL".into(),
        E::ResponseInResponseToInvalid { .. } | E::AssertionInResponseToInvalid { .. } => {
            "the response does not answer this sign-in (InResponseTo does not match; unsolicited responses are refused)".into()
        }
        E::ResponseBadStatusCode { code } => format!("the IdP answered with status {code}, not Success"),
        E::ResponseIssuerMismatch { .. } | E::AssertionIssuerMismatch { .. } => {
            "the response's Issuer is not the configured IdPEntityId".into()
        }
        E::ResponseExpired { .. } | E::AssertionExpired { .. } => "the response was issued too long ago".into(),
        E::AssertionConditionExpired { .. } | E::AssertionSubjectConfirmationExpired { .. } => {
            "the assertion has expired (NotOnOrAfter is in the past)".into()
        }
        E::AssertionConditionExpiredBefore { .. } | E::AssertionSubjectConfirmationExpiredBefore { .. } => {
            "the assertion is not yet valid (NotBefore is in the future)".into()
        }
        E::AssertionConditionAudienceRestrictionFailed { .. } => {
            "the assertion's Audience is not this agent's SPEntityId".into()
        }
        E::AssertionBearerSubjectConfirmationMissing | E::AssertionSubjectConfirmationMissing => {
            "the assertion has no bearer SubjectConfirmation".into()
        }
        E::EncryptedAssertionsNotYetSupported | E::MissingPrivateKeySP => {
            "encrypted assertions are not supported; configure the IdP to sign, not encrypt".into()
        }
        other => format!("the response is not a valid SAML response ({other})"),
    }
}

/// The SP metadata XML admins register at their IdP.
pub fn sp_metadata(sp_entity_id: &str, acs_url: &str) -> String {
    let esc = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>{NAMEID_EMAIL}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{HTTP_POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = esc(sp_entity_id),
        acs = esc(acs_url),
    )
}

/// Decodes certificates stored as PEM into DER.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    STANDARD.decode(body.trim()).ok()
}

/// For tests and the benchmark: an IdP that signs responses with its own key.
pub mod testing {
    use super::*;
    use samael::crypto::{Crypto, CryptoProvider};
    use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};

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
                status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
                issue_instant: now,
                not_before: now - 30,
                not_on_or_after: now + 300,
                sign_response: false,
                sign_assertion: true,
                attributes: vec![],
            }
        }

        /// The assertion element (with a signature template when it is to be signed).
        pub fn assertion_xml(&self) -> String {
            let irt = self
                .in_response_to
                .as_deref()
                .map(|i| format!(r#" InResponseTo="{i}""#))
                .unwrap_or_default();
            let sig = if self.sign_assertion {
                signature_template(&self.assertion_id)
            } else {
                String::new()
            };
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
                r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="{aid}" Version="2.0" IssueInstant="{ii}"><saml:Issuer>{iss}</saml:Issuer>{sig}<saml:Subject><saml:NameID Format="{NAMEID_EMAIL}">{nameid}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{nooa}" Recipient="{dest}"{irt}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{nooa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{ii}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>{attr_statement}</saml:Assertion>"#,
                aid = self.assertion_id,
                ii = ts(self.issue_instant),
                iss = self.issuer,
                nameid = self.name_id_xml,
                nooa = ts(self.not_on_or_after),
                nb = ts(self.not_before),
                dest = self.destination,
                aud = self.audience,
            )
        }

        /// The whole response around `assertion` (unsigned templates included).
        pub fn response_xml(&self, assertion: &str) -> String {
            let irt = self
                .in_response_to
                .as_deref()
                .map(|i| format!(r#" InResponseTo="{i}""#))
                .unwrap_or_default();
            let sig = if self.sign_response {
                signature_template(&self.response_id)
            } else {
                String::new()
            };
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
}

#[cfg(test)]
#[path = "saml_tests.rs"]
mod tests;
