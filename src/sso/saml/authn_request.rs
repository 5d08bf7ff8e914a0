//! The AuthnRequest the agent sends: a POST to the ACS asked for, encoded for the
//! HTTP-Redirect binding.

use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};

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
