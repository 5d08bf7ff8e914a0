//! Validation of a response posted to the ACS: size, encoding and DTDs refused first, the
//! envelope checked, then samael's signature check, then the conditions with the agent's
//! clock; the result is the identity the assertion names.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use quick_xml::events::Event;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};
use samael::service_provider::ServiceProvider;

use super::envelope::{check_envelope, read_envelope};
use super::metadata::idp_metadata;
use super::testing::strip_xml_decl;
use super::xmlenc::{self, NOT_OURS};
use super::xmltree::{Node, parse_tree};
use super::{CLOCK_SKEW_SECS, MAX_RESPONSE_BYTES, SpConfig};

/// The identity a valid response asserts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamlIdentity {
    /// The assertion's Issuer (the IdP entity id).
    pub issuer: String,
    /// The NameID, as the full text of the element.
    pub name_id: String,
    /// The NameID's Format, if given.
    pub name_id_format: Option<String>,
    /// The NameID's `NameQualifier` and `SPNameQualifier`, which a LogoutRequest repeats.
    #[serde(default)]
    pub name_qualifier: Option<String>,
    /// See `name_qualifier`.
    #[serde(default)]
    pub sp_name_qualifier: Option<String>,
    /// The assertion's ID (for the replay cache).
    pub assertion_id: String,
    /// Until when the assertion could be replayed (its NotOnOrAfter plus the skew).
    pub replayable_until: i64,
    /// The email to match a local user: the NameID when it is one, else an email attribute.
    pub email: Option<String>,
    /// Every attribute with its values.
    pub attributes: Vec<(String, Vec<String>)>,
    /// The AuthnStatement's `SessionNotOnOrAfter`: the IdP's cap on the session it starts.
    #[serde(default)]
    pub session_not_on_or_after: Option<i64>,
    /// The AuthnStatement's `SessionIndex`: the IdP's session, which single logout names.
    #[serde(default)]
    pub session_index: Option<String>,
}

/// Refuses an XML declaration naming any encoding but UTF-8 before a parser sees it: libxml2
/// honours `encoding="UTF-7"` (and others) and would read different characters than the
/// checks before it did.
fn refuse_other_encodings(xml: &str) -> Result<(), String> {
    let t = xml.trim_start_matches('\u{feff}').trim_start();
    let Some(decl) = t
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split_once("?>"))
        .map(|(d, _)| d)
    else {
        return Ok(());
    };
    let Some(after) = decl.split_once("encoding").map(|(_, a)| a) else {
        return Ok(());
    };
    let value: String = after
        .trim_start()
        .trim_start_matches('=')
        .trim_start()
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| !matches!(c, '"' | '\'' | ' ' | '?'))
        .collect();
    if value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8") {
        Ok(())
    } else {
        Err(format!(
            "the response declares the encoding '{}'; only UTF-8 is accepted",
            super::envelope::printable(&value, 40)
        ))
    }
}

/// The refusal when no valid signature by a configured IdP certificate covers the assertion.
pub const SIGNATURE_INVALID: &str =
    "the signature is missing, invalid, or not made by the configured IdP certificate";

/// How old a Response may be (its IssueInstant), besides the skew.
pub const MAX_ISSUE_DELAY_SECS: i64 = 300;

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
    let compact: Vec<u8> = saml_response
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
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
    refuse_other_encodings(xml)?;
    refuse_dtd(xml)?;
    refuse_control_characters(xml)?;
    let envelope = read_envelope(xml)?;
    check_envelope(&envelope, &sp.acs_url, request_id)?;
    if sp.certificates.is_empty() {
        return Err("no IdP certificate is configured".into());
    }
    if sp.require_encrypted_assertions && !envelope.encrypted {
        return Err(
            "the assertion is not encrypted, and this IdP's configuration requires \
             encrypted assertions (RequireEncryptedAssertions)"
                .into(),
        );
    }
    // An encrypted assertion is decrypted into the document first; a valid signature must
    // still cover what was decrypted (the Response's, over the ciphertext, or the assertion's
    // own, checked below as for a plain assertion).
    let (document, trust) = if envelope.encrypted {
        decrypted_document(xml, sp, envelope.has_signature)
            .map_err(|e| explain_signature_failure(xml, e))?
    } else {
        (xml.to_string(), Trust::SamaelVerifies)
    };
    // What the IdP posted, for wording a signature failure: never the decrypted plaintext, whose
    // content must not show in a refusal before a signature vouches for it (an oracle under CBC).
    let posted = xml;
    let xml = document.as_str();
    // With no IdPEntityId configured the Issuer is not checked (SPEC); samael compares it to
    // its metadata's entity id, so give it the document's own. This can only refuse more: the
    // signature is verified against the configured certificates regardless.
    let expected_issuer = match &sp.idp_entity_id {
        Some(id) => id.clone(),
        None => assertion_issuer(xml).ok_or("the response has no assertion Issuer")?,
    };
    // samael verifies the signatures against the certificates of its IdP metadata; with none
    // it verifies nothing, which is right only for a document built from what a verified
    // Response signature covered (`Trust::ResponseVerified`).
    let certificates: &[Vec<u8>] = match trust {
        Trust::SamaelVerifies => &sp.certificates,
        Trust::ResponseVerified => &[],
    };
    let provider = ServiceProvider {
        entity_id: Some(sp.sp_entity_id.clone()),
        acs_url: Some(sp.acs_url.clone()),
        idp_metadata: idp_metadata(&expected_issuer, certificates),
        allow_idp_initiated: false,
        max_clock_skew: chrono::Duration::seconds(CLOCK_SKEW_SECS),
        max_issue_delay: chrono::Duration::seconds(MAX_ISSUE_DELAY_SECS),
        allowed_signature_algorithms: Some(SIGNATURE_ALGORITHMS.to_vec()),
        ..ServiceProvider::default()
    };
    let assertion = provider
        .parse_xml_response_with_mode(xml, Some(&[request_id]), REDUCE_MODE)
        .map_err(|e| explain_signature_failure(posted, describe_samael_error(e)))?;
    // An `EncryptedID` in place of the NameID: decrypted from the signed content.
    let encrypted_name_id = match assertion.subject.as_ref().map(|s| s.name_id.is_none()) {
        Some(true) => Some(decrypt_name_id(xml, sp, trust)?),
        _ => None,
    };

    // What samael leaves to the caller, checked with the agent's clock.
    let conditions = assertion
        .conditions
        .as_ref()
        .ok_or("the assertion has no Conditions")?;
    // Several AudienceRestrictions must all be satisfied (SAML core §2.5.1.4: each one lists
    // audiences of which one must be us; the restrictions combine with AND).
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .unwrap_or_default();
    if restrictions.is_empty()
        || !restrictions
            .iter()
            .all(|r| r.audience.contains(&sp.sp_entity_id))
    {
        return Err(format!(
            "the assertion's Audience is not this agent's SPEntityId '{}' (every \
             AudienceRestriction must name it)",
            sp.sp_entity_id
        ));
    }
    // The Response's own Issuer (when present, whatever is signed) must be the assertion's,
    // and its IssueInstant recent: refusing on unsigned content is safe.
    let assertion_issuer_value = assertion.issuer.value.clone().unwrap_or_default();
    if let Some(ri) = envelope.issuer.as_deref().map(str::trim)
        && !ri.is_empty()
        && ri != assertion_issuer_value.trim()
    {
        return Err(format!(
            "the Response's Issuer '{}' is not the assertion's",
            super::envelope::printable(ri, 200)
        ));
    }
    let issued = envelope
        .issue_instant
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .ok_or("the Response has no valid IssueInstant")?;
    if issued > now + CLOCK_SKEW_SECS {
        return Err("the Response was issued in the future (IssueInstant)".into());
    }
    if issued.saturating_add(MAX_ISSUE_DELAY_SECS + CLOCK_SKEW_SECS) < now {
        return Err("the response was issued too long ago".into());
    }
    // A sign-in needs an authentication statement; its SessionNotOnOrAfter caps the session.
    let statements = assertion.authn_statements.as_deref().unwrap_or_default();
    if statements.is_empty() {
        return Err("the assertion has no AuthnStatement (it authenticates nobody)".into());
    }
    let session_not_on_or_after = statements
        .iter()
        .filter_map(|s| s.session_not_on_or_after.map(|t| t.timestamp()))
        .min();
    let session_index = statements
        .iter()
        .find_map(|s| s.session_index.clone())
        .filter(|s| !s.trim().is_empty());
    if session_not_on_or_after.is_some_and(|t| t <= now) {
        return Err("the IdP's session has already ended (SessionNotOnOrAfter)".into());
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
    if until.saturating_add(CLOCK_SKEW_SECS) <= now {
        return Err("the assertion has expired (NotOnOrAfter is in the past)".into());
    }
    if assertion.id.trim().is_empty() {
        return Err("the assertion has no ID".into());
    }
    let name_id = match (&subject.name_id, encrypted_name_id) {
        (Some(n), _) => NameId {
            value: n.value.trim().to_string(),
            format: n.format.clone(),
            name_qualifier: n.name_qualifier.clone(),
            sp_name_qualifier: n.sp_name_qualifier.clone(),
        },
        (None, Some(n)) => n,
        (None, None) => return Err("the assertion has no NameID".into()),
    };
    let NameId {
        value: name_id_value,
        format: name_id_format,
        name_qualifier,
        sp_name_qualifier,
    } = name_id;
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
    // The NameID is an email only when its Format says so: a persistent or unspecified NameID
    // that happens to look like one is an opaque id (the link's subject), never a match key.
    let email_format = name_id_format.as_deref() == Some(super::NAMEID_EMAIL);
    let email = if email_format && looks_like_email(&name_id_value) {
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
        name_id_format,
        name_qualifier,
        sp_name_qualifier,
        assertion_id: assertion.id.clone(),
        replayable_until: until.saturating_add(CLOCK_SKEW_SECS),
        email,
        attributes,
        session_not_on_or_after,
        session_index,
    })
}

/// What samael hands on after verifying: the bytes the signature's digest was computed over
/// (xmlsec's pre-digest buffer, the canonical form of the signed element), parsed as they are.
/// Nothing the signature does not cover can be in them, whatever the document around it holds
/// (signature wrapping needs no separate pruning), and no second pass over the document is
/// needed to rebuild the signed part. With two verified references (Response and assertion
/// both signed) the Response's, which encloses the assertion, is the one read.
const REDUCE_MODE: ReduceMode = ReduceMode::PreDigest;

/// The signature algorithms accepted (no SHA-1).
const SIGNATURE_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// [`SIGNATURE_INVALID`] said better when `xml` is signed with an algorithm the agent refuses
/// (SHA-1, most often: Entra ID and ADFS still offer it): the refusal names the algorithm and
/// what to set at the IdP. Any other error is returned as it is. `xml` must be what the IdP
/// posted: an algorithm read from decrypted content would disclose plaintext no signature
/// covers yet (so a SHA-1 signature inside an encrypted assertion reads as merely invalid).
fn explain_signature_failure(xml: &str, e: String) -> String {
    if e != SIGNATURE_INVALID {
        return e;
    }
    let signature: Vec<&str> = SIGNATURE_ALGORITHMS
        .iter()
        .map(|a| a.signature_uri())
        .collect();
    let digest: Vec<&str> = SIGNATURE_ALGORITHMS
        .iter()
        .map(|a| a.digest_uri())
        .collect();
    match super::envelope::refused_signature_algorithm(xml, &signature, &digest) {
        Some(alg) => format!(
            "the IdP signed with {alg}, which the agent refuses (SHA-1 and unknown algorithms); \
             have it sign with SHA-256 (Entra ID: the application's SAML signing certificate, \
             Signing Algorithm SHA-256; ADFS: the relying party trust's Advanced tab, Secure \
             hash algorithm SHA-256; Okta: Signature Algorithm RSA-SHA256)"
        ),
        None => e,
    }
}

/// Who vouches for the document samael reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// samael verifies its signatures (and reduces it to what they cover).
    SamaelVerifies,
    /// It was built from the content a verified Response signature covers, the ciphertext
    /// of its assertion included: nothing unsigned is in it.
    ResponseVerified,
}

/// What a verified signature covers in `xml`: the document reduced by xmlsec, or `None` when
/// no signature verifies against the configured certificates.
fn signed_content(xml: &str, sp: &SpConfig) -> Option<String> {
    let certs: Vec<CertificateDer> = sp
        .certificates
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        REDUCE_MODE,
        Some(SIGNATURE_ALGORITHMS),
    )
    .ok()
}

/// The Response with its `EncryptedAssertion` replaced by the assertion it hides. When a
/// valid Response signature covers the encrypted assertion, the document is built from that
/// signed content (and samael need not verify again); otherwise the decrypted assertion must
/// carry its own valid signature, which samael checks as for a plain one.
fn decrypted_document(
    xml: &str,
    sp: &SpConfig,
    has_signature: bool,
) -> Result<(String, Trust), String> {
    // With no signature element in the document there is nothing to verify before decrypting
    // (xmlsec would parse the whole document to find none).
    let verified = has_signature
        .then(|| signed_content(xml, sp))
        .flatten()
        .filter(|reduced| {
            parse_tree(reduced).is_ok_and(|t| {
                t.name == "Response" && t.children_named("EncryptedAssertion").count() == 1
            })
        });
    let (source, trust) = match verified {
        Some(reduced) => (reduced, Trust::ResponseVerified),
        None => (xml.to_string(), Trust::SamaelVerifies),
    };
    let tree = parse_tree(&source)?;
    let enc = tree
        .children_named("EncryptedAssertion")
        .next()
        .ok_or("the response's EncryptedAssertion is not a child of the Response")?;
    let assertion = decrypt_to_element(enc, sp, "Assertion")?;
    let mut nested = Vec::new();
    assertion.1.find_all("Assertion", &mut nested);
    assertion.1.find_all("Response", &mut nested);
    if nested.len() != 1 {
        return Err(
            "the encrypted assertion holds more than one Assertion (signature \
             wrapping refused)"
                .into(),
        );
    }
    let document = format!(
        "{}{}{}",
        &source[..enc.span.0],
        assertion.0,
        &source[enc.span.1..]
    );
    Ok((document, trust))
}

/// Decrypts `enc` with the agent's keys into one element named `want`: (its XML, its tree).
/// Every way the plaintext can be wrong reads as a failure to decrypt (no oracle).
fn decrypt_to_element(enc: &Node, sp: &SpConfig, want: &str) -> Result<(String, Node), String> {
    let keys: Vec<_> = sp.decryption_keys.iter().collect();
    let plain = xmlenc::decrypt(enc, &keys)?;
    let text = std::str::from_utf8(&plain).map_err(|_| NOT_OURS)?;
    if refuse_other_encodings(text).is_err() || refuse_dtd(text).is_err() {
        return Err(NOT_OURS.into());
    }
    let body = strip_xml_decl(text);
    let tree = parse_tree(&body).map_err(|_| NOT_OURS)?;
    // Another element reads like any other failure: a message naming what was decrypted
    // would show plaintext that no signature has vouched for yet (an oracle under CBC).
    if tree.name != want {
        return Err(NOT_OURS.into());
    }
    Ok((body, tree))
}

/// A NameID as the IdP gave it: the value and the attributes a LogoutRequest repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameId {
    /// The text of the element, trimmed.
    pub value: String,
    /// `Format`.
    pub format: Option<String>,
    /// `NameQualifier`.
    pub name_qualifier: Option<String>,
    /// `SPNameQualifier`.
    pub sp_name_qualifier: Option<String>,
}

impl NameId {
    /// The NameID element `n`.
    pub fn of(n: &Node) -> Self {
        let attr = |name| n.attr(name).map(str::to_string);
        Self {
            value: n.text.trim().to_string(),
            format: attr("Format"),
            name_qualifier: attr("NameQualifier"),
            sp_name_qualifier: attr("SPNameQualifier"),
        }
    }
}

/// The NameID inside `EncryptedID` element `enc`, decrypted with the SP's keys. Call it only
/// on content a verified signature covers: a failure reads like any other (no oracle).
pub fn decrypt_encrypted_id(enc: &Node, sp: &SpConfig) -> Result<NameId, String> {
    let (_, name_id) = decrypt_to_element(enc, sp, "NameID")?;
    Ok(NameId::of(&name_id))
}

/// The NameID hidden in the signed assertion's `Subject/EncryptedID`.
fn decrypt_name_id(xml: &str, sp: &SpConfig, trust: Trust) -> Result<NameId, String> {
    let signed = match trust {
        Trust::ResponseVerified => xml.to_string(),
        Trust::SamaelVerifies => signed_content(xml, sp).ok_or("the assertion has no NameID")?,
    };
    let tree = parse_tree(&signed)?;
    let assertion = match tree.name.as_str() {
        "Assertion" => Some(&tree),
        _ => tree.child("Assertion"),
    };
    let ids: Vec<&Node> = assertion
        .and_then(|a| a.child("Subject"))
        .map(|s| s.children_named("EncryptedID").collect())
        .unwrap_or_default();
    let [enc] = ids.as_slice() else {
        return Err("the assertion has no NameID".into());
    };
    decrypt_encrypted_id(enc, sp)
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

/// Refuses the control characters XML 1.0 does not allow (all of C0 but tab, line feed and
/// carriage return). libxml2 lets some through, and xmlsec's base64 decoder skips them, so
/// they would be the one change to a signed document that nothing notices.
fn refuse_control_characters(xml: &str) -> Result<(), String> {
    match xml
        .bytes()
        .find(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    {
        Some(b) => Err(format!(
            "the response contains the control character U+{b:04X}, which XML does not allow"
        )),
        None => Ok(()),
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

fn describe_samael_error(e: samael::service_provider::Error) -> String {
    use samael::service_provider::Error as E;
    match e {
        E::FailedToValidateSignature => SIGNATURE_INVALID.into(),
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
            "an encrypted assertion reached the validator undecrypted".into()
        }
        other => format!("the response is not a valid SAML response ({other})"),
    }
}
