//! The AuthnRequest the agent sends: a POST to the ACS asked for, encoded for the
//! HTTP-Redirect binding, signed with the agent's key when the configuration says so.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use openssl::pkey::{PKey, Private};
use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
use samael::traits::ToXml;

use super::sp_keys::{signed_query, unsigned_query};
use super::{HTTP_POST_BINDING, NAMEID_EMAIL, SpConfig};

/// An AuthnRequest ready for the browser.
#[derive(Debug, Clone)]
pub struct RedirectRequest {
    /// The request's ID (the response's InResponseTo must equal it).
    pub id: String,
    /// `IdPSSOURL?SAMLRequest=…&RelayState=…`.
    pub url: String,
}

/// Builds an AuthnRequest asking for a POST to the ACS, encoded for the HTTP-Redirect binding
/// (deflate, base64, url-encode) with `relay_state`; with `signing_key`, the query carries
/// `SigAlg` and `Signature` (bindings §3.4.4.1) and the XML no enveloped signature. With
/// `force_authn` the IdP is asked to authenticate the user again (`ForceAuthn="true"`).
pub fn redirect_request(
    sp: &SpConfig,
    relay_state: &str,
    now: i64,
    signing_key: Option<&PKey<Private>>,
    force_authn: bool,
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
        force_authn: force_authn.then_some(true),
        ..AuthnRequest::default()
    };
    let xml = request
        .to_string()
        .map_err(|e| format!("could not encode the AuthnRequest: {e}"))?;
    let mut deflated = DeflateEncoder::new(Vec::new(), Compression::default());
    deflated
        .write_all(xml.as_bytes())
        .map_err(|e| format!("could not encode the AuthnRequest: {e}"))?;
    let encoded = STANDARD.encode(
        deflated
            .finish()
            .map_err(|e| format!("could not encode the AuthnRequest: {e}"))?,
    );
    let query = match signing_key {
        Some(key) => signed_query(&encoded, relay_state, key)?,
        None => unsigned_query(&encoded, relay_state),
    };
    // An SSO URL with a query of its own (Google's `?idpid=…`) keeps it; only the three
    // parameters are signed.
    let sep = if sp.idp_sso_url.contains('?') {
        '&'
    } else {
        '?'
    };
    Ok(RedirectRequest {
        id,
        url: format!("{}{sep}{query}", sp.idp_sso_url),
    })
}
