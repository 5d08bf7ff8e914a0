//! SAML single logout over the HTTP-Redirect binding: the LogoutRequest and LogoutResponse the
//! agent sends (deflated, base64, signed in the query like its AuthnRequests), and reading
//! what the IdP sends to the agent's SLO endpoint — the query signature verified against the
//! IdP's certificates over the octets as received (bindings §3.4.4.1) before anything of the
//! message is trusted.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Verifier;
use openssl::x509::X509;

use super::SpConfig;
use super::response::{NameId, decrypt_encrypted_id};
use super::sp_keys::{signed_query_named, unsigned_query_named};
use super::xmltree::{Node, parse_tree};

/// The status of a successful logout.
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// Largest inflated logout message read.
pub const MAX_LOGOUT_BYTES: usize = 64 * 1024;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";

fn esc(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

fn new_id() -> Result<String, String> {
    Ok(format!(
        "_{}",
        hex::encode(crate::crypto::random_bytes::<20>().map_err(|e| e.to_string())?)
    ))
}

fn instant(now: i64) -> Result<String, String> {
    chrono::DateTime::from_timestamp(now, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .ok_or_else(|| "the clock is out of range".to_string())
}

/// What a LogoutRequest names: whose session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutSubject {
    /// The NameID the assertion carried.
    pub name_id: String,
    /// Its Format.
    pub format: Option<String>,
    /// Its NameQualifier: repeated as the assertion gave it (SAML core §3.7.1; ADFS and
    /// Shibboleth match on it).
    pub name_qualifier: Option<String>,
    /// Its SPNameQualifier (as `name_qualifier`).
    pub sp_name_qualifier: Option<String>,
    /// The AuthnStatement's SessionIndex.
    pub session_index: Option<String>,
}

/// A message for the browser: its ID and `destination?SAMLRequest|SAMLResponse=…`.
#[derive(Debug, Clone)]
pub struct RedirectMessage {
    /// The message's ID.
    pub id: String,
    /// Where to send the browser.
    pub url: String,
}

/// A LogoutRequest from the SP `issuer` to the IdP's SLO URL `destination`.
pub fn logout_request(
    issuer: &str,
    destination: &str,
    who: &LogoutSubject,
    relay_state: &str,
    now: i64,
    key: Option<&PKey<Private>>,
) -> Result<RedirectMessage, String> {
    let id = new_id()?;
    let attr = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| format!(" {name}=\"{}\"", esc(v)))
            .unwrap_or_default()
    };
    let format = [
        ("NameQualifier", &who.name_qualifier),
        ("SPNameQualifier", &who.sp_name_qualifier),
        ("Format", &who.format),
    ]
    .iter()
    .map(|(name, v)| attr(name, v))
    .collect::<String>();
    let session = who
        .session_index
        .as_deref()
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", esc(s)))
        .unwrap_or_default();
    let xml = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{}\"><saml:Issuer>{}</saml:Issuer>\
         <saml:NameID{format}>{}</saml:NameID>{session}</samlp:LogoutRequest>",
        instant(now)?,
        esc(destination),
        esc(issuer),
        esc(&who.name_id),
    );
    redirect(destination, "SAMLRequest", &xml, relay_state, key)
        .map(|url| RedirectMessage { id, url })
}

/// The LogoutResponse to an IdP's LogoutRequest `in_response_to`.
pub fn logout_response(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    relay_state: &str,
    now: i64,
    key: Option<&PKey<Private>>,
) -> Result<RedirectMessage, String> {
    let id = new_id()?;
    let xml = format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\">\
         <saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/>\
         </samlp:Status></samlp:LogoutResponse>",
        instant(now)?,
        esc(destination),
        esc(in_response_to),
        esc(issuer),
    );
    redirect(destination, "SAMLResponse", &xml, relay_state, key)
        .map(|url| RedirectMessage { id, url })
}

fn redirect(
    destination: &str,
    param: &str,
    xml: &str,
    relay_state: &str,
    key: Option<&PKey<Private>>,
) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("could not encode the logout message: {e}");
    let mut deflated = DeflateEncoder::new(Vec::new(), Compression::default());
    deflated.write_all(xml.as_bytes()).map_err(fail)?;
    let encoded = STANDARD.encode(deflated.finish().map_err(fail)?);
    let query = match key {
        Some(k) => signed_query_named(param, &encoded, relay_state, k)?,
        None => unsigned_query_named(param, &encoded, relay_state),
    };
    let sep = if destination.contains('?') { '&' } else { '?' };
    Ok(format!("{destination}{sep}{query}"))
}

/// A logout message the IdP sent to the SLO endpoint, its query signature verified.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// The answer to the agent's LogoutRequest.
    Response(LogoutResponse),
    /// The IdP ends a session (IdP-initiated, or another SP's sign-out).
    Request(IdpLogoutRequest),
}

/// A LogoutResponse.
#[derive(Debug, Clone)]
pub struct LogoutResponse {
    /// `InResponseTo`: the ID of the agent's LogoutRequest.
    pub in_response_to: Option<String>,
    /// `Destination`.
    pub destination: Option<String>,
    /// The Issuer.
    pub issuer: Option<String>,
    /// The top-level StatusCode.
    pub status: Option<String>,
}

/// A LogoutRequest from the IdP.
#[derive(Debug, Clone)]
pub struct IdpLogoutRequest {
    /// Its ID (the LogoutResponse's InResponseTo).
    pub id: String,
    /// `Destination`.
    pub destination: Option<String>,
    /// The Issuer.
    pub issuer: Option<String>,
    /// `IssueInstant`, if readable.
    pub issue_instant: Option<i64>,
    /// `NotOnOrAfter`, if given.
    pub not_on_or_after: Option<i64>,
    /// Whose session ends: the NameID, or its `EncryptedID` (read by [`Self::subject`]).
    pub name: LogoutName,
    /// Its `SessionIndex`es (SAML core §3.7.1: zero or more; at most [`MAX_SESSION_INDEXES`]):
    /// the sessions that end. None: every session of the principal.
    pub session_indexes: Vec<String>,
}

/// Most `SessionIndex` elements read from one LogoutRequest.
pub const MAX_SESSION_INDEXES: usize = 32;

/// How a LogoutRequest names the principal.
#[derive(Debug, Clone)]
pub enum LogoutName {
    /// A `NameID`.
    Plain(NameId),
    /// An `EncryptedID` (Shibboleth encrypts the NameIDs of its logout requests by default).
    Encrypted(Node),
}

impl IdpLogoutRequest {
    /// Whose session ends (the first `SessionIndex` as its `session_index`), an `EncryptedID`
    /// decrypted with `sp`'s keys. Only for a request
    /// whose signature verified: decrypting what nobody vouches for would be an oracle.
    pub fn subject(&self, sp: &SpConfig) -> Result<LogoutSubject, String> {
        let n = match &self.name {
            LogoutName::Plain(n) => n.clone(),
            LogoutName::Encrypted(enc) => decrypt_encrypted_id(enc, sp).map_err(|_| {
                "its EncryptedID cannot be decrypted with this agent's SP encryption key (it \
                 was encrypted to another key, or altered)"
                    .to_string()
            })?,
        };
        if n.value.is_empty() {
            return Err("the LogoutRequest's NameID is empty".into());
        }
        Ok(LogoutSubject {
            name_id: n.value,
            format: n.format,
            name_qualifier: n.name_qualifier,
            sp_name_qualifier: n.sp_name_qualifier,
            session_index: self.session_indexes.first().cloned(),
        })
    }
}

/// The SLO endpoint's query: the raw (still URL-encoded) values, as the signature covers them.
#[derive(Debug, Default, Clone)]
pub struct RawQuery<'a> {
    saml: Option<(&'a str, &'a str)>,
    relay_state: Option<&'a str>,
    sig_alg: Option<&'a str>,
    signature: Option<&'a str>,
}

fn decode(raw: &str) -> String {
    form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl<'a> RawQuery<'a> {
    /// Reads a query string; a parameter given twice is refused (which one is signed?).
    pub fn parse(query: &'a str) -> Result<Self, String> {
        let mut q = RawQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "SAMLRequest" | "SAMLResponse" => {
                    if q.saml.is_some() {
                        return Err("the query carries more than one SAML message".into());
                    }
                    q.saml = Some((k, v));
                    continue;
                }
                "RelayState" => &mut q.relay_state,
                "SigAlg" => &mut q.sig_alg,
                "Signature" => &mut q.signature,
                _ => continue,
            };
            if slot.replace(v).is_some() {
                return Err(format!("the query carries {k} more than once"));
            }
        }
        if q.saml.is_none() {
            return Err("the query carries no SAMLRequest or SAMLResponse".into());
        }
        Ok(q)
    }

    /// The RelayState, decoded.
    pub fn relay_state(&self) -> Option<String> {
        self.relay_state.map(decode).filter(|s| !s.is_empty())
    }

    /// Whether the message is signed (carries `Signature`).
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// Verifies the query signature with one of `certificates` (DER). Only RSA with
    /// SHA-256/384/512.
    pub fn verify(&self, certificates: &[Vec<u8>]) -> Result<(), String> {
        let (Some(sig_alg), Some(signature), Some((param, value))) =
            (self.sig_alg, self.signature, self.saml)
        else {
            return Err("the message is not signed (no SigAlg and Signature)".into());
        };
        let digest = match decode(sig_alg).as_str() {
            RSA_SHA256 => MessageDigest::sha256(),
            RSA_SHA384 => MessageDigest::sha384(),
            RSA_SHA512 => MessageDigest::sha512(),
            other => {
                return Err(format!(
                    "its signature algorithm {} is not allowed",
                    super::envelope::printable(other, 80)
                ));
            }
        };
        let mut signed = format!("{param}={value}");
        if let Some(r) = self.relay_state {
            signed.push_str(&format!("&RelayState={r}"));
        }
        signed.push_str(&format!("&SigAlg={sig_alg}"));
        let sig = STANDARD
            .decode(decode(signature).trim())
            .map_err(|_| "its Signature is not base64".to_string())?;
        for der in certificates {
            let Ok(key) = X509::from_der(der).and_then(|c| c.public_key()) else {
                continue;
            };
            let ok = Verifier::new(digest, &key)
                .and_then(|mut v| {
                    v.update(signed.as_bytes())?;
                    v.verify(&sig)
                })
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
        }
        Err("its signature does not verify with the IdP's certificate".into())
    }

    /// The message itself: inflated, parsed (no DTDs), read.
    pub fn message(&self) -> Result<Incoming, String> {
        let Some((param, value)) = self.saml else {
            return Err("the query carries no SAML message".into());
        };
        let b64: String = decode(value).split_whitespace().collect();
        let deflated = STANDARD
            .decode(b64)
            .map_err(|_| format!("{param} is not base64"))?;
        let mut xml = String::new();
        DeflateDecoder::new(&deflated[..])
            .take(MAX_LOGOUT_BYTES as u64 + 1)
            .read_to_string(&mut xml)
            .map_err(|_| format!("{param} is not a deflated XML message"))?;
        if xml.len() > MAX_LOGOUT_BYTES {
            return Err(format!(
                "{param} is larger than {} KiB",
                MAX_LOGOUT_BYTES / 1024
            ));
        }
        let root = parse_tree(&xml).map_err(|e| format!("{param} is not valid XML ({e})"))?;
        let issuer = root
            .child("Issuer")
            .map(|i| i.text.trim().to_string())
            .filter(|i| !i.is_empty());
        let destination = root.attr("Destination").map(str::to_string);
        match (param, root.name.as_str()) {
            ("SAMLResponse", "LogoutResponse") => Ok(Incoming::Response(LogoutResponse {
                in_response_to: root.attr("InResponseTo").map(str::to_string),
                destination,
                issuer,
                status: root
                    .child("Status")
                    .and_then(|s| s.child("StatusCode"))
                    .and_then(|c| c.attr("Value"))
                    .map(str::to_string),
            })),
            ("SAMLRequest", "LogoutRequest") => {
                Ok(Incoming::Request(read_request(&root, issuer, destination)?))
            }
            (_, other) => Err(format!(
                "{param} holds a {}, not a logout message",
                super::envelope::printable(other, 60)
            )),
        }
    }
}

fn time_attr(n: &Node, name: &str) -> Option<i64> {
    n.attr(name)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
}

fn read_request(
    root: &Node,
    issuer: Option<String>,
    destination: Option<String>,
) -> Result<IdpLogoutRequest, String> {
    let id = root
        .attr("ID")
        .map(str::trim)
        .filter(|i| !i.is_empty() && i.len() <= 256)
        .ok_or("the LogoutRequest has no ID")?
        .to_string();
    let name = match (root.child("NameID"), root.child("EncryptedID")) {
        (Some(n), None) => {
            let n = NameId::of(n);
            if n.value.is_empty() {
                return Err("the LogoutRequest's NameID is empty".into());
            }
            LogoutName::Plain(n)
        }
        (None, Some(e)) => LogoutName::Encrypted(e.clone()),
        (None, None) => return Err("the LogoutRequest has no NameID".into()),
        (Some(_), Some(_)) => {
            return Err("the LogoutRequest has both a NameID and an EncryptedID".into());
        }
    };
    let session_indexes: Vec<String> = root
        .children_named("SessionIndex")
        .map(|s| s.text.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if session_indexes.len() > MAX_SESSION_INDEXES {
        return Err(format!(
            "the LogoutRequest names more than {MAX_SESSION_INDEXES} SessionIndex elements"
        ));
    }
    Ok(IdpLogoutRequest {
        id,
        destination,
        issuer,
        issue_instant: time_attr(root, "IssueInstant"),
        not_on_or_after: time_attr(root, "NotOnOrAfter"),
        name,
        session_indexes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (PKey<Private>, Vec<u8>) {
        let g =
            super::super::sp_keys::generate("idp", 1_800_000_000).unwrap_or_else(|e| panic!("{e}"));
        let key =
            super::super::sp_keys::private_key(&g.private_pkcs8).unwrap_or_else(|e| panic!("{e}"));
        let der = X509::from_pem(g.certificate_pem.as_bytes())
            .and_then(|c| c.to_der())
            .unwrap_or_else(|e| panic!("{e}"));
        (key, der)
    }

    fn sp_with(decryption_keys: Vec<PKey<Private>>) -> SpConfig {
        SpConfig {
            sp_entity_id: "https://sp".into(),
            acs_url: "https://sp/acs".into(),
            idp_sso_url: "https://idp/sso".into(),
            idp_entity_id: None,
            certificates: Vec::new(),
            decryption_keys,
            require_encrypted_assertions: false,
        }
    }

    fn who() -> LogoutSubject {
        LogoutSubject {
            name_id: "alice@corp.test".into(),
            format: Some(super::super::NAMEID_EMAIL.into()),
            name_qualifier: Some("https://idp/\"q\"".into()),
            sp_name_qualifier: Some("https://sp".into()),
            session_index: Some("_s1".into()),
        }
    }

    #[test]
    fn a_signed_request_round_trips_and_verifies_only_as_sent() {
        let (k, der) = key();
        let m = logout_request(
            "https://sp",
            "https://idp/slo",
            &who(),
            "rs&1",
            1_700_000_000,
            Some(&k),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let query = m.url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let q = RawQuery::parse(query).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.verify(std::slice::from_ref(&der)), Ok(()));
        assert_eq!(q.relay_state().as_deref(), Some("rs&1"));
        match q.message() {
            Ok(Incoming::Request(r)) => {
                assert_eq!(r.id, m.id);
                assert_eq!(r.subject(&sp_with(Vec::new())), Ok(who()));
                assert_eq!(r.issuer.as_deref(), Some("https://sp"));
                assert_eq!(r.destination.as_deref(), Some("https://idp/slo"));
            }
            other => panic!("{other:?}"),
        }
        // Another RelayState, another key, no signature: refused.
        let tampered = query.replace("RelayState=rs%261", "RelayState=rs%262");
        assert!(
            RawQuery::parse(&tampered)
                .and_then(|q| q.verify(std::slice::from_ref(&der)))
                .is_err()
        );
        let (_, other) = key();
        assert!(q.verify(&[other]).is_err());
        let unsigned = query.split("&SigAlg").next().unwrap_or("");
        let q = RawQuery::parse(unsigned).unwrap_or_else(|e| panic!("{e}"));
        assert!(!q.is_signed());
        assert!(q.verify(&[der]).is_err());
    }

    /// The IdP's signed LogoutRequest naming the principal by `name` (a NameID or EncryptedID).
    fn idp_request(name: &str, idp_key: &PKey<Private>) -> Result<IdpLogoutRequest, String> {
        let xml = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_lr1\" Version=\"2.0\" \
             IssueInstant=\"2026-12-03T10:00:00Z\" Destination=\"https://sp/slo\">\
             <saml:Issuer>https://idp</saml:Issuer>{name}\
             <samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"
        );
        let url = redirect("https://sp/slo", "SAMLRequest", &xml, "", Some(idp_key))?;
        let query = url
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        match RawQuery::parse(&query)?.message()? {
            Incoming::Request(r) => Ok(r),
            other => Err(format!("{other:?}")),
        }
    }

    /// Shibboleth encrypts the NameID of its LogoutRequests: decrypted with the SP's key (its
    /// qualifiers kept), refused with the reason under any other, never both forms at once.
    #[test]
    fn an_encrypted_name_id_is_read_with_the_sp_key_only() {
        use super::super::testing::{Encryption, encrypt_element};
        let (idp_key, _) = key();
        let sp_key = |name| {
            let g = super::super::sp_keys::generate(name, 1_800_000_000)
                .unwrap_or_else(|e| panic!("{e}"));
            let k = super::super::sp_keys::private_key(&g.private_pkcs8)
                .unwrap_or_else(|e| panic!("{e}"));
            (k, g.certificate_pem)
        };
        let ((ours, cert), (theirs, _)) = (sp_key("sp"), sp_key("other"));
        let name_id = format!(
            "<saml:NameID xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
             NameQualifier=\"https://idp/&quot;q&quot;\" SPNameQualifier=\"https://sp\" \
             Format=\"{}\">alice@corp.test</saml:NameID>",
            super::super::NAMEID_EMAIL
        );
        let encrypted = encrypt_element(&name_id, &cert, "EncryptedID", &Encryption::gcm())
            .unwrap_or_else(|e| panic!("{e}"));
        let r = idp_request(&encrypted, &idp_key).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(r.name, LogoutName::Encrypted(_)));
        assert_eq!(r.subject(&sp_with(vec![theirs.clone(), ours])), Ok(who()));
        let refused = r.subject(&sp_with(vec![theirs])).unwrap_err();
        assert!(refused.contains("cannot be decrypted"), "{refused}");
        assert!(!refused.contains("alice"), "{refused}");
        let plain = idp_request(&name_id, &idp_key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.subject(&sp_with(Vec::new())), Ok(who()));
        let both = idp_request(&format!("{name_id}{encrypted}"), &idp_key).unwrap_err();
        assert!(both.contains("both a NameID and an EncryptedID"), "{both}");
        let none = idp_request("", &idp_key).unwrap_err();
        assert!(none.contains("has no NameID"), "{none}");
    }

    #[test]
    fn a_response_is_read_with_its_status_and_in_response_to() {
        let m = logout_response(
            "https://idp",
            "https://sp/slo",
            "_req\"1",
            "",
            1_700_000_000,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let query = m.url.split_once('?').map(|(_, q)| q).unwrap_or("");
        match RawQuery::parse(query).and_then(|q| q.message()) {
            Ok(Incoming::Response(r)) => {
                assert_eq!(r.in_response_to.as_deref(), Some("_req\"1"));
                assert_eq!(r.status.as_deref(), Some(STATUS_SUCCESS));
                assert_eq!(r.issuer.as_deref(), Some("https://idp"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_queries_are_refused_with_a_reason() {
        for q in [
            "",
            "RelayState=x",
            "SAMLRequest=a&SAMLResponse=b",
            "SAMLRequest=a&SigAlg=x&SigAlg=y",
            "SAMLRequest=%%%",
            "SAMLRequest=bm90IGRlZmxhdGVk",
        ] {
            let r = RawQuery::parse(q).and_then(|q| q.message().map(|_| ()));
            assert!(r.is_err(), "{q}");
        }
        let dtd = {
            let mut d = DeflateEncoder::new(Vec::new(), Compression::default());
            let _ = d.write_all(b"<!DOCTYPE x [<!ENTITY e \"e\">]><LogoutRequest ID=\"a\"/>");
            STANDARD.encode(d.finish().unwrap_or_default())
        };
        let q = format!(
            "SAMLRequest={}",
            form_urlencoded::byte_serialize(dtd.as_bytes()).collect::<String>()
        );
        assert!(RawQuery::parse(&q).and_then(|q| q.message()).is_err());
    }
}
