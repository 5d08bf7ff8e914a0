//! Reading an IdP's SAML metadata (an `EntityDescriptor`): what the agent configures from it
//! — the entity id, the HTTP-Redirect SingleSignOnService, the signing certificates and
//! whether it wants AuthnRequests signed.
//!
//! The document is size-capped and DTDs are refused before parsing. A metadata signature is
//! not verified: the agent has no anchor to verify it against, so trust comes from where the
//! admin got it (an https URL of their IdP, or text they pasted).

use super::HTTP_REDIRECT_BINDING;
use super::xmltree::{Node, parse_tree};
use crate::sso::cert;

/// Largest metadata document read (Entra ID's and ADFS's are a few tens of KiB).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// The SAML 2.0 protocol, as `protocolSupportEnumeration` names it.
const SAML2_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// What the agent takes from an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// `EntityDescriptor/@entityID`.
    pub entity_id: String,
    /// The HTTP-Redirect `SingleSignOnService` Location.
    pub sso_url: String,
    /// The signing certificates (`KeyDescriptor use="signing"` or without `use`), PEM, in
    /// document order.
    pub signing_certificates: Vec<String>,
    /// `IDPSSODescriptor/@WantAuthnRequestsSigned`.
    pub want_authn_requests_signed: bool,
    /// The HTTP-Redirect `SingleLogoutService` Location, if the IdP has one.
    pub slo_url: Option<String>,
    /// The earliest `validUntil` on the way to the `IDPSSODescriptor` (an aggregate's, the
    /// `EntityDescriptor`'s, the descriptor's own; metadata §2.3.1), as Unix seconds.
    pub valid_until: Option<i64>,
}

/// [`parse_idp_metadata`], refusing metadata whose `validUntil` has passed at `now`: expired
/// metadata is no longer the IdP's word (metadata §2.3.1), and a stale copy is what an
/// attacker who kept an old one would serve.
pub fn parse_current_idp_metadata(xml: &str, now: i64) -> Result<IdpMetadata, String> {
    let m = parse_idp_metadata(xml)?;
    match m.valid_until {
        Some(t) if t <= now => Err(format!(
            "the metadata expired at {} (its validUntil); get a current copy from the IdP",
            crate::clock::rfc3339(t)
        )),
        _ => Ok(m),
    }
}

/// The `validUntil` of `n`, if it has one; an unreadable one is an error.
fn valid_until(n: &Node) -> Result<Option<i64>, String> {
    let Some(raw) = n.attr("validUntil") else {
        return Ok(None);
    };
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| Some(t.timestamp()))
        .map_err(|_| {
            format!(
                "the metadata's validUntil '{}' is not a date and time",
                super::envelope::printable(raw, 60)
            )
        })
}

/// Parses IdP metadata; every error names what is missing or wrong.
pub fn parse_idp_metadata(xml: &str) -> Result<IdpMetadata, String> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "the metadata is larger than {} KiB",
            MAX_METADATA_BYTES / 1024
        ));
    }
    let lower = xml.to_ascii_lowercase();
    if lower.contains("<!doctype") || lower.contains("<!entity") {
        return Err("the metadata contains a DTD or entity declaration, which is refused".into());
    }
    let root = parse_tree(xml).map_err(|e| format!("the metadata is not valid XML ({e})"))?;
    let root_valid_until = valid_until(&root)?;
    let entity = match root.name.as_str() {
        "EntityDescriptor" => root,
        "EntitiesDescriptor" => {
            let idps: Vec<&Node> = root
                .children_named("EntityDescriptor")
                .filter(|e| e.child("IDPSSODescriptor").is_some())
                .collect();
            match idps.as_slice() {
                [one] => (*one).clone(),
                [] => return Err("the metadata describes no identity provider".into()),
                many => {
                    return Err(format!(
                        "the metadata describes {} identity providers; give your IdP's own \
                         metadata, not a federation's aggregate",
                        many.len()
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the metadata's root is {}, not an EntityDescriptor",
                super::envelope::printable(other, 60)
            ));
        }
    };
    let entity_id = entity
        .attr("entityID")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or("the metadata's EntityDescriptor has no entityID")?
        .to_string();
    let idp = entity
        .children_named("IDPSSODescriptor")
        .find(|d| {
            d.attr("protocolSupportEnumeration")
                .is_some_and(|p| p.split_whitespace().any(|x| x == SAML2_PROTOCOL))
        })
        .ok_or("the metadata has no SAML 2.0 IDPSSODescriptor")?;
    let valid_until = [root_valid_until, valid_until(&entity)?, valid_until(idp)?]
        .into_iter()
        .flatten()
        .min();
    let sso_url = redirect_location(idp, "SingleSignOnService")
        .ok_or("the metadata has no HTTP-Redirect SingleSignOnService")?;
    let slo_url = redirect_location(idp, "SingleLogoutService");
    let mut signing_certificates = Vec::new();
    for kd in idp.children_named("KeyDescriptor") {
        if !matches!(kd.attr("use"), None | Some("signing") | Some("")) {
            continue;
        }
        let mut certs = Vec::new();
        kd.find_all("X509Certificate", &mut certs);
        for c in certs {
            let info = cert::parse("the metadata's signing certificate", &c.text)?;
            if !signing_certificates.contains(&info.pem) {
                signing_certificates.push(info.pem);
            }
        }
    }
    if signing_certificates.is_empty() {
        return Err(
            "the metadata has no signing certificate (KeyDescriptor use=\"signing\")".into(),
        );
    }
    let want_authn_requests_signed = matches!(
        idp.attr("WantAuthnRequestsSigned").map(str::trim),
        Some("true") | Some("1")
    );
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        signing_certificates,
        want_authn_requests_signed,
        slo_url,
        valid_until,
    })
}

/// The `Location` of `idp`'s first `service` element with the HTTP-Redirect binding.
fn redirect_location(idp: &Node, service: &str) -> Option<String> {
    idp.children_named(service)
        .find(|s| s.attr("Binding") == Some(HTTP_REDIRECT_BINDING))
        .and_then(|s| s.attr("Location"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::saml::testing::TestIdp;

    fn metadata(idp_attrs: &str, keys: &str, sso: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.corp.test/metadata">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"{idp_attrs}>
    {keys}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.corp.test/post"/>
    {sso}
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
        )
    }

    fn key(use_attr: &str, idp: &TestIdp) -> String {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &idp.cert_der);
        format!(
            r#"<md:KeyDescriptor{use_attr}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
{b64}
</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
        )
    }

    const REDIRECT: &str = r#"<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.corp.test/sso"/>"#;

    #[test]
    fn reads_entity_sso_url_signing_certificates_and_want_signed() {
        let (a, b, e) = (
            TestIdp::new().unwrap(),
            TestIdp::new().unwrap(),
            TestIdp::new().unwrap(),
        );
        let keys = format!(
            "{}{}{}",
            key(r#" use="signing""#, &a),
            key(r#" use="encryption""#, &e),
            key("", &b)
        );
        let m = parse_idp_metadata(&metadata(
            r#" WantAuthnRequestsSigned="true""#,
            &keys,
            REDIRECT,
        ))
        .unwrap();
        assert_eq!(m.entity_id, "https://idp.corp.test/metadata");
        assert_eq!(m.sso_url, "https://idp.corp.test/sso");
        assert_eq!(m.signing_certificates, [a.cert_pem(), b.cert_pem()]);
        assert!(m.want_authn_requests_signed);
        let m = parse_idp_metadata(&metadata("", &key("", &a), REDIRECT)).unwrap();
        assert!(!m.want_authn_requests_signed);
    }

    #[test]
    fn errors_name_what_is_missing() {
        let a = TestIdp::new().unwrap();
        let cases = [
            (
                metadata("", &key("", &a), ""),
                "no HTTP-Redirect SingleSignOnService",
            ),
            (
                metadata("", &key(r#" use="encryption""#, &a), REDIRECT),
                "no signing certificate",
            ),
            (
                metadata("", &key("", &a), REDIRECT)
                    .replace("SAML:2.0:protocol\"", "SAML:1.1:protocol\""),
                "no SAML 2.0 IDPSSODescriptor",
            ),
            (
                metadata("", &key("", &a), REDIRECT)
                    .replace(" entityID=\"https://idp.corp.test/metadata\"", ""),
                "has no entityID",
            ),
            (
                "<html><body>login</body></html>".into(),
                "not an EntityDescriptor",
            ),
            ("<md:EntityDescriptor".into(), "not valid XML"),
            (
                format!(
                    "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
                    metadata("", &key("", &a), REDIRECT)
                ),
                "DTD",
            ),
            ("x".repeat(MAX_METADATA_BYTES + 1), "larger than"),
            (
                metadata("", &key("", &a), REDIRECT).replace(
                    &base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        &a.cert_der,
                    )[..40],
                    "!!!!",
                ),
                "signing certificate must be an X.509 certificate",
            ),
        ];
        for (xml, needle) in cases {
            let e = parse_idp_metadata(&xml).unwrap_err();
            assert!(e.contains(needle), "{e:?} does not contain {needle:?}");
        }
    }

    /// The earliest validUntil counts; past it the metadata is refused, and an unreadable one
    /// is an error naming it.
    #[test]
    fn expired_metadata_is_refused() {
        let a = TestIdp::new().unwrap();
        let (now, day) = (1_800_000_000, 86_400);
        let at = |t: i64| crate::clock::rfc3339(t);
        let doc = |entity: Option<i64>, idp: Option<i64>| {
            let attr = |t: Option<i64>| {
                t.map(|t| format!(r#" validUntil="{}""#, at(t)))
                    .unwrap_or_default()
            };
            metadata(&attr(idp), &key("", &a), REDIRECT)
                .replace(" entityID=", &format!("{} entityID=", attr(entity)))
        };
        let m = parse_current_idp_metadata(&doc(Some(now + 2 * day), Some(now + day)), now);
        assert_eq!(m.unwrap().valid_until, Some(now + day));
        assert_eq!(
            parse_current_idp_metadata(&doc(None, None), now)
                .unwrap()
                .valid_until,
            None
        );
        for (entity, idp) in [(Some(now - 1), None), (Some(now + day), Some(now))] {
            let e = parse_current_idp_metadata(&doc(entity, idp), now).unwrap_err();
            assert!(e.contains("expired at") && e.contains("validUntil"), "{e}");
        }
        let e = parse_idp_metadata(
            &doc(None, None).replace(" entityID=", r#" validUntil="next tuesday" entityID="#),
        )
        .unwrap_err();
        assert!(e.contains("validUntil 'next tuesday' is not a date"), "{e}");
    }

    #[test]
    fn an_aggregate_with_one_idp_is_read_and_with_several_refused() {
        let a = TestIdp::new().unwrap();
        let one = metadata("", &key("", &a), REDIRECT);
        let body = one.split_once("?>").unwrap().1;
        let wrap = |n: usize| {
            format!(
                r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{}</md:EntitiesDescriptor>"#,
                body.repeat(n)
            )
        };
        assert_eq!(
            parse_idp_metadata(&wrap(1)).unwrap().sso_url,
            "https://idp.corp.test/sso"
        );
        assert!(
            parse_idp_metadata(&wrap(2))
                .unwrap_err()
                .contains("2 identity providers")
        );
    }
}
