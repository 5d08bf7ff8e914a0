//! How the API shows a stored IdP configuration (`OktaSSO`, `EntraIDSSO`, `SamlSSO`): the
//! seed's keys, the secret always masked.

use serde::Serialize;

use crate::api::idp::SECRET_MASK;
use crate::api::policy::ManagedView;
use crate::policy::ManagedKey;
use crate::sso::oidc::discovery::ClientAuth;
use crate::state::AppState;
use crate::store::idp::{IdpConfig, Kind};

/// An Okta configuration as the API shows it (`OktaSSO`).
#[derive(Debug, Serialize)]
pub struct OktaView {
    #[serde(rename = "Id")]
    id: i64,
    #[serde(rename = "ClientId")]
    client_id: Option<String>,
    /// The mask when a secret is stored (it is write-only), `null` for a public client.
    #[serde(rename = "ClientSecret")]
    client_secret: Option<&'static str>,
    /// How the agent authenticates at the token endpoint: `none` (public client),
    /// `client_secret_basic` or `client_secret_post`.
    #[serde(rename = "ClientAuth")]
    client_auth: &'static str,
    #[serde(rename = "OpenIdURL")]
    openid_url: Option<String>,
    #[serde(rename = "Active")]
    active: bool,
    #[serde(flatten)]
    managed: ManagedView,
}

/// An Entra ID configuration as the API shows it (`EntraIDSSO`).
#[derive(Debug, Serialize)]
pub struct EntraView {
    #[serde(flatten)]
    oidc: OktaView,
    #[serde(rename = "GraphURL")]
    graph_url: Option<String>,
    #[serde(rename = "AllowedTenants")]
    allowed_tenants: Vec<String>,
}

/// A SAML configuration as the API shows it (`SamlSSO`).
#[derive(Debug, Serialize)]
pub struct SamlView {
    #[serde(rename = "Id")]
    id: i64,
    #[serde(rename = "Certificate")]
    certificate: Option<String>,
    #[serde(rename = "NextCertificate")]
    next_certificate: Option<String>,
    #[serde(rename = "SPEntityId")]
    sp_entity_id: Option<String>,
    #[serde(rename = "IdPSSOURL")]
    idp_sso_url: Option<String>,
    #[serde(rename = "IdPEntityId")]
    idp_entity_id: Option<String>,
    #[serde(rename = "GroupsAttribute")]
    groups_attribute: Option<String>,
    #[serde(rename = "AllowExpiredCertificate")]
    allow_expired_certificate: bool,
    /// Whether the agent signs its AuthnRequests (its signing certificate is in the SP
    /// metadata).
    #[serde(rename = "SignAuthnRequests")]
    sign_authn_requests: bool,
    /// Where the IdP's metadata is read from (certificate rollover).
    #[serde(rename = "IdPMetadataURL")]
    idp_metadata_url: Option<String>,
    /// Whether plain (unencrypted) assertions are refused.
    #[serde(rename = "RequireEncryptedAssertions")]
    require_encrypted_assertions: bool,
    #[serde(rename = "Active")]
    active: bool,
    /// `Certificate` and `NextCertificate` described: subject and expiry (read-only).
    #[serde(rename = "IdPCertificates")]
    idp_certificates: Vec<CertView>,
    /// The agent's ACS URL, to register at the IdP (read-only).
    #[serde(rename = "AcsURL")]
    acs_url: String,
    #[serde(flatten)]
    managed: ManagedView,
}

/// A certificate described for admins.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertView {
    /// Which field holds it.
    pub field: &'static str,
    /// Subject distinguished name.
    pub subject: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Whole days until then (negative once expired).
    pub days_left: i64,
}

fn cert_views(c: &IdpConfig, now: i64) -> Vec<CertView> {
    [
        ("Certificate", c.certificate.as_deref()),
        ("NextCertificate", c.next_certificate.as_deref()),
    ]
    .into_iter()
    .filter_map(|(field, pem)| {
        let info = crate::sso::cert::parse(field, pem?).ok()?;
        Some(CertView {
            field,
            subject: info.subject.clone(),
            not_after: crate::clock::rfc3339(info.not_after),
            days_left: info.days_to_expiry(now),
        })
    })
    .collect()
}

/// The API's view of a configuration, by kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum IdpView {
    /// Okta.
    Okta(OktaView),
    /// Entra ID.
    Entra(EntraView),
    /// SAML.
    Saml(SamlView),
}

/// The client authentication a sign-in uses: `none` without a secret; with one, what the
/// IdP's discovery document (as the agent last read it) leads to, and `client_secret_basic`
/// (the default when a document names no methods) before the agent has read it. A read never
/// fetches the document: `test_connection` and every sign-in do.
fn client_auth(state: &AppState, c: &IdpConfig, has_secret: bool) -> &'static str {
    if !has_secret {
        return ClientAuth::None.as_str();
    }
    c.openid_url
        .as_deref()
        .and_then(|u| state.oidc.cached_client_auth(u, c.kind))
        .unwrap_or(ClientAuth::Basic)
        .as_str()
}

/// The API's view of a configuration.
pub fn view(state: &AppState, c: &IdpConfig) -> IdpView {
    let managed = || ManagedView::of(state, c.account_id, ManagedKey::Idp(c.kind));
    let has_secret = c.client_secret_enc.is_some();
    let oidc = || OktaView {
        id: c.id,
        client_id: c.client_id.clone(),
        client_secret: has_secret.then_some(SECRET_MASK),
        client_auth: client_auth(state, c, has_secret),
        openid_url: c.openid_url.clone(),
        active: c.active,
        managed: managed(),
    };
    match c.kind {
        Kind::Okta => IdpView::Okta(oidc()),
        Kind::Entra => IdpView::Entra(EntraView {
            oidc: oidc(),
            graph_url: c.graph_url.clone(),
            allowed_tenants: c.allowed_tenants.clone(),
        }),
        Kind::Saml => IdpView::Saml(SamlView {
            id: c.id,
            certificate: c.certificate.clone(),
            next_certificate: c.next_certificate.clone(),
            sp_entity_id: c.sp_entity_id.clone(),
            idp_sso_url: c.idp_sso_url.clone(),
            idp_entity_id: c.idp_entity_id.clone(),
            groups_attribute: c.groups_attribute.clone(),
            allow_expired_certificate: c.allow_expired_certificate,
            sign_authn_requests: c.sign_authn_requests,
            require_encrypted_assertions: c.require_encrypted_assertions,
            idp_metadata_url: c.idp_metadata_url.clone(),
            active: c.active,
            idp_certificates: cert_views(c, state.now()),
            acs_url: crate::login::idp_config::acs_url(state),
            managed: managed(),
        }),
    }
}
