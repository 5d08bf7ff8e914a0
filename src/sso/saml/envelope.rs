//! The Response envelope, read before any signature is checked and used only to refuse:
//! one Response with exactly one Assertion, status Success, this ACS, this request.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// The XML Signature namespace.
const XMLDSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

fn undeclared(prefix: &[u8]) -> String {
    format!(
        "the response uses the namespace prefix '{}' without declaring it",
        String::from_utf8_lossy(prefix)
    )
}

/// What the Response element itself says, read before any signature is checked. Only ever
/// used to refuse: with only the assertion signed, samael reduces the document to the
/// assertion, so the envelope (status, Destination, InResponseTo) is checked here, fail-closed,
/// whatever is signed.
#[derive(Debug, Default)]
pub(super) struct Envelope {
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
    /// `Response/Issuer`, when present.
    pub(super) issuer: Option<String>,
    /// `Response/@IssueInstant`.
    pub(super) issue_instant: Option<String>,
    /// Whether the one assertion is an `EncryptedAssertion`.
    pub(super) encrypted: bool,
    /// Whether the document has any XML Signature element (one inside an encrypted assertion
    /// is ciphertext, not an element, until decrypted).
    pub(super) has_signature: bool,
}

/// The SAML success status.
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Reads the Response envelope and refuses any document that is not one Response holding
/// exactly one Assertion or one EncryptedAssertion. More assertions (or one of each, or
/// responses nested anywhere) are what XML signature wrapping attacks are made of; an IdP
/// answering one AuthnRequest sends one.
pub(super) fn read_envelope(xml: &str) -> Result<Envelope, String> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let (mut responses, mut assertions, mut encrypted) = (0, 0, 0);
    let mut env = Envelope::default();
    // Local names of the open elements, outermost first.
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| "the response is not well-formed XML")?;
        // libxml2 (which verifies the signatures) reads an element with an undeclared prefix
        // in no namespace, and an element that is no longer in the XML Signature namespace is
        // no signature to it: a response whose signature was damaged that way would pass as
        // one that never had one. Such a document is refused here, whatever is signed.
        let in_dsig = match ns {
            ResolveResult::Unknown(prefix) => return Err(undeclared(&prefix)),
            ResolveResult::Bound(n) => n.as_ref() == XMLDSIG_NS,
            ResolveResult::Unbound => false,
        };
        if let Event::Start(e) | Event::Empty(e) = &event {
            for a in e.attributes().with_checks(false).flatten() {
                if let (ResolveResult::Unknown(prefix), _) =
                    reader.resolver().resolve_attribute(a.key)
                {
                    return Err(undeclared(&prefix));
                }
            }
            if e.local_name().as_ref() == b"Signature" && !in_dsig {
                return Err(
                    "the response has a Signature element outside the XML Signature namespace"
                        .into(),
                );
            }
            if e.local_name().as_ref() == b"Signature" {
                env.has_signature = true;
            }
        }
        let (e, opens) = match &event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Text(t) if path.is_empty() => {
                // Outside the root element XML allows only whitespace (and comments).
                if !t.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                    return Err("the response has text outside its Response element".into());
                }
                continue;
            }
            Event::Text(t) => {
                if let Some(slot) = text_slot(&mut env, &path) {
                    slot.push_str(&t.decode().unwrap_or_default());
                }
                continue;
            }
            Event::CData(t) => {
                if let Some(slot) = text_slot(&mut env, &path) {
                    slot.push_str(&t.decode().unwrap_or_default());
                }
                continue;
            }
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap_or_default();
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .and_then(|s| s.chars().next()),
                };
                if let Some(slot) = text_slot(&mut env, &path) {
                    slot.extend(c);
                }
                continue;
            }
            // libxml2 closes what is left open at the end; a truncated document is refused.
            Event::Eof if !path.is_empty() => {
                return Err(
                    "the response is not well-formed XML (it ends inside an element)".into(),
                );
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
                env.issue_instant = attribute(e, "IssueInstant")?;
            }
            b"Issuer" if at(&path, &[b"Response"]) => {
                env.issuer.get_or_insert_with(String::new);
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
    if assertions + encrypted == 0 {
        return Err("the response contains no Assertion".into());
    }
    env.encrypted = encrypted == 1;
    Ok(env)
}

/// Where the text at `path` goes: the StatusMessage, or the Response's own Issuer.
fn text_slot<'e>(env: &'e mut Envelope, path: &[Vec<u8>]) -> Option<&'e mut String> {
    match path {
        [_, status, message] if status == b"Status" && message == b"StatusMessage" => {
            Some(&mut env.message)
        }
        [_, issuer] if issuer == b"Issuer" => env.issuer.as_mut(),
        _ => None,
    }
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
pub(super) fn check_envelope(
    env: &Envelope,
    acs_url: &str,
    request_id: &str,
) -> Result<(), String> {
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
pub(super) fn printable(s: &str, max: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let joined = words.join(" ");
    let clean: String = joined.chars().filter(|c| !c.is_control()).collect();
    match clean.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

/// The first `SignatureMethod` or `DigestMethod` algorithm of an XML Signature's `SignedInfo`
/// in `xml` that is in neither allowed list: for the message when a signature fails to
/// verify, so an admin whose IdP still signs with SHA-1 learns that, not just "invalid". Only
/// ever used to word a refusal; a document it cannot read yields `None`.
pub(super) fn refused_signature_algorithm(
    xml: &str,
    signature_methods: &[&str],
    digest_methods: &[&str],
) -> Option<String> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut in_signed_info = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().ok()?;
        let dsig = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == XMLDSIG_NS);
        let (e, opens) = match &event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(e) if dsig && e.local_name().as_ref() == b"SignedInfo" => {
                in_signed_info = in_signed_info.saturating_sub(1);
                continue;
            }
            Event::Eof => return None,
            _ => continue,
        };
        if !dsig {
            continue;
        }
        let allowed = match e.local_name().as_ref() {
            b"SignedInfo" if opens => {
                in_signed_info += 1;
                continue;
            }
            b"SignatureMethod" if in_signed_info > 0 => signature_methods,
            b"DigestMethod" if in_signed_info > 0 => digest_methods,
            _ => continue,
        };
        let algorithm = e
            .try_get_attribute("Algorithm")
            .ok()
            .flatten()
            .and_then(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        if !algorithm.is_empty() && !allowed.contains(&algorithm.as_str()) {
            return Some(printable(&algorithm, 100));
        }
    }
}
