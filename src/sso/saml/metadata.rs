//! SAML metadata: the SP metadata admins register at their IdP, and the IdP metadata samael
//! checks a response against (the configured certificates).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{EntityDescriptor, IdpSsoDescriptor, KeyDescriptor};

use super::{HTTP_POST_BINDING, NAMEID_EMAIL, xmlenc};

/// What the SP metadata says of the agent.
#[derive(Debug, Clone, Default)]
pub struct SpMetadata {
    /// The agent's entity id.
    pub entity_id: String,
    /// The ACS (HTTP-POST binding).
    pub acs_url: String,
    /// The single logout endpoint (HTTP-Redirect binding); none when empty.
    pub slo_url: String,
    /// Whether AuthnRequests are signed (`AuthnRequestsSigned`).
    pub authn_requests_signed: bool,
    /// Certificates (PEM) of the keys that sign AuthnRequests: during a rotation, the active
    /// one and the one retiring.
    pub signing_certificates: Vec<String>,
    /// Certificates (PEM) of the keys assertions may be encrypted to: the active one first,
    /// then one retiring after a rotation (both decrypt).
    pub encryption_certificates: Vec<String>,
}

/// The SP metadata XML admins register at their IdP.
pub fn sp_metadata(m: &SpMetadata) -> String {
    let esc = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
    let mut keys = String::new();
    for pem in &m.signing_certificates {
        key_descriptor(&mut keys, "signing", pem, &[]);
    }
    let methods: Vec<&str> = xmlenc::DATA_ALGORITHMS
        .iter()
        .chain(xmlenc::KEY_ALGORITHMS)
        .copied()
        .collect();
    for pem in &m.encryption_certificates {
        key_descriptor(&mut keys, "encryption", pem, &methods);
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="{signed}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
{keys}{slo}    <md:NameIDFormat>{NAMEID_EMAIL}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{HTTP_POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = esc(&m.entity_id),
        acs = esc(&m.acs_url),
        signed = m.authn_requests_signed,
        slo = if m.slo_url.is_empty() {
            String::new()
        } else {
            format!(
                "    <md:SingleLogoutService Binding=\"{}\" Location=\"{}\"/>\n",
                super::HTTP_REDIRECT_BINDING,
                esc(&m.slo_url)
            )
        },
    )
}

/// Appends a `KeyDescriptor` of `key_use` carrying the certificate `pem` (its base64 body:
/// the agent's own certificates, PEM it wrote itself) and the `EncryptionMethod`s accepted.
fn key_descriptor(out: &mut String, key_use: &str, pem: &str, methods: &[&str]) {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    out.push_str(&format!(
        "    <md:KeyDescriptor use=\"{key_use}\">\n      <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\n        <ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data>\n      </ds:KeyInfo>\n"
    ));
    for m in methods {
        out.push_str(&format!("      <md:EncryptionMethod Algorithm=\"{m}\"/>\n"));
    }
    out.push_str("    </md:KeyDescriptor>\n");
}

/// The IdP as samael needs it to check a response: its entity id and signing certificates.
pub(super) fn idp_metadata(entity_id: &str, certificates: &[Vec<u8>]) -> EntityDescriptor {
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
