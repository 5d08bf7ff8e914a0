//! What sign-in reads from a stored IdP configuration: the client secret (sealed at rest),
//! the Microsoft Graph root a token may be sent to, and the SAML SP/IdP parameters.

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::{cert, saml, urls};
use crate::state::AppState;
use crate::store::idp::{IdpConfig, Kind};

/// Microsoft Graph's global endpoint, the default `GraphURL`.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// The seal context of an OIDC configuration's client secret.
pub fn secret_context(account_id: i64, kind: Kind) -> String {
    format!("idp_configs:{account_id}:{}:client_secret", kind.as_str())
}

/// Opens the stored client secret of an OIDC configuration (for the sign-in code exchange);
/// `None` for a public client, which has none.
pub fn client_secret(state: &AppState, c: &IdpConfig) -> Result<Option<Secret>> {
    c.client_secret_enc
        .as_deref()
        .map(|sealed| {
            state
                .sealer
                .open_secret(sealed, &secret_context(c.account_id, c.kind))
        })
        .transpose()
}

/// The client id and `OpenIdURL` of an OIDC configuration (both required on save).
pub fn oidc_client(c: &IdpConfig) -> Result<(&str, &str)> {
    match (&c.client_id, &c.openid_url) {
        (Some(id), Some(url)) => Ok((id.as_str(), url.as_str())),
        _ => Err(Error::internal("OIDC configuration incomplete")),
    }
}

/// The configuration's Graph root, checked again where a token is about to be sent to it (a
/// configuration saved before the host rule, or under the test setting since switched off,
/// never receives one).
pub fn graph_url(state: &AppState, c: &IdpConfig) -> std::result::Result<url::Url, String> {
    let raw = c.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL);
    urls::parse_graph_url(raw, state.settings.loopback_graph).map_err(|e| {
        format!("the stored GraphURL is refused ({e}); an admin must correct the configuration")
    })
}

/// The agent's ACS URL, following the address it is bound to.
pub fn acs_url(state: &AppState) -> String {
    format!("{}/sso/saml/acs", state.base_url())
}

/// The SP side of a stored SAML configuration. Only certificates that may verify a response
/// now are in it: a certificate that has expired since it was saved is left out (unless the
/// admin allowed expired certificates for this IdP), and so is a weak one saved before the
/// key rule; with none left, a `SECURITY` error says why and what to do.
pub fn sp_config(state: &AppState, config: &IdpConfig) -> Result<saml::SpConfig> {
    let now = state.now();
    let mut certificates = Vec::new();
    let mut refused = Vec::new();
    for (field, pem) in [
        ("Certificate", config.certificate.as_deref()),
        ("NextCertificate", config.next_certificate.as_deref()),
    ] {
        let Some(pem) = pem else { continue };
        let c = cert::parse(field, pem).map_err(Error::internal)?;
        if let Err(weak) = c.check_key(field) {
            refused.push(weak);
        } else if c.is_expired(now) && !config.allow_expired_certificate {
            refused.push(format!(
                "{field} expired on {}",
                crate::clock::rfc3339(c.not_after)
            ));
        } else {
            certificates.push(c.der);
        }
    }
    if certificates.is_empty() {
        return Err(Error::Security(format!(
            "no IdP certificate can verify a sign-in: {}; an admin must upload the IdP's \
             current signing certificate (or allow expired certificates for an IdP that never \
             rotates)",
            refused.join("; ")
        )));
    }
    let missing = |f: &str| Error::internal(format!("SAML configuration without {f}"));
    Ok(saml::SpConfig {
        sp_entity_id: config
            .sp_entity_id
            .clone()
            .ok_or_else(|| missing("SPEntityId"))?,
        acs_url: acs_url(state),
        idp_sso_url: config
            .idp_sso_url
            .clone()
            .ok_or_else(|| missing("IdPSSOURL"))?,
        idp_entity_id: config.idp_entity_id.clone(),
        certificates,
        // Opened by the ACS (`login::sp_keys`), which alone decrypts.
        decryption_keys: Vec::new(),
        require_encrypted_assertions: config.require_encrypted_assertions,
    })
}
