//! How the API shows a stored IdP configuration (`OktaSSO`, `EntraIDSSO`, `SamlSSO`): the
//! seed's keys, the secret always masked; and the schemas of the bodies it takes.

use serde::Serialize;

use crate::api::idp::SECRET_MASK;
use crate::state::AppState;
use crate::store::idp::{IdpConfig, Kind};

/// An Okta configuration as the API shows it (`OktaSSO`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OktaView {
    #[serde(rename = "Id")]
    id: i64,
    #[serde(rename = "ClientId")]
    client_id: Option<String>,
    /// Always the mask: the secret is write-only.
    #[serde(rename = "ClientSecret")]
    client_secret: &'static str,
    #[serde(rename = "OpenIdURL")]
    openid_url: Option<String>,
    #[serde(rename = "Active")]
    active: bool,
}

/// An Entra ID configuration as the API shows it (`EntraIDSSO`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntraView {
    #[serde(flatten)]
    oidc: OktaView,
    #[serde(rename = "GraphURL")]
    graph_url: Option<String>,
    #[serde(rename = "AllowedTenants")]
    allowed_tenants: Vec<String>,
}

/// A SAML configuration as the API shows it (`SamlSSO`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    #[serde(rename = "Active")]
    active: bool,
    /// The agent's ACS URL, to register at the IdP (read-only).
    #[serde(rename = "AcsURL")]
    acs_url: String,
}

/// The API's view of a configuration, by kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum IdpView {
    /// Okta.
    Okta(OktaView),
    /// Entra ID.
    Entra(EntraView),
    /// SAML.
    Saml(SamlView),
}

/// The API's view of a configuration.
pub fn view(state: &AppState, c: &IdpConfig) -> IdpView {
    let oidc = || OktaView {
        id: c.id,
        client_id: c.client_id.clone(),
        client_secret: SECRET_MASK,
        openid_url: c.openid_url.clone(),
        active: c.active,
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
            active: c.active,
            acs_url: crate::login::idp_config::acs_url(state),
        }),
    }
}

// The request bodies, as the OpenAPI document shows them. The handlers read them with
// `Fields` (case-insensitive keys, one message per bad field); these types only describe them.

/// The body of `setup_okta` (and the OIDC part of `setup_entraId`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct OktaSetup {
    /// The application's client id.
    #[serde(rename = "ClientId")]
    #[schema(min_length = 1, max_length = 256)]
    pub client_id: String,
    /// The client secret (write-only: reads show a mask; on update, the mask or no value keeps
    /// the stored one).
    #[serde(rename = "ClientSecret")]
    #[schema(min_length = 1, max_length = 2048)]
    pub client_secret: String,
    /// The discovery URL: absolute https (http only for loopback hosts).
    #[serde(rename = "OpenIdURL")]
    #[schema(example = "https://tenant.okta.com/.well-known/openid-configuration")]
    pub openid_url: String,
    /// Whether sign-ins use it (at most one configuration of an account is active).
    #[serde(rename = "Active")]
    pub active: Option<bool>,
}

/// The body of `setup_entraId`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct EntraSetup {
    /// The OIDC fields.
    #[serde(flatten)]
    pub oidc: OktaSetup,
    /// Microsoft Graph's base URL (default `https://graph.microsoft.com`).
    #[serde(rename = "GraphURL")]
    pub graph_url: Option<String>,
    /// The tenant ids allowed to sign in (required for a `common`/`organizations` URL).
    #[serde(rename = "AllowedTenants")]
    pub allowed_tenants: Option<Vec<String>>,
}

/// The body of `setup_saml`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct SamlSetup {
    /// The IdP's signing certificate: PEM, or bare base64 DER (RSA of 2048 bits or more).
    #[serde(rename = "Certificate")]
    pub certificate: String,
    /// The next certificate, during a rollover.
    #[serde(rename = "NextCertificate")]
    pub next_certificate: Option<String>,
    /// Our entity id (the Audience the IdP names).
    #[serde(rename = "SPEntityId")]
    #[schema(min_length = 1, max_length = 1024)]
    pub sp_entity_id: String,
    /// The IdP's SSO URL (HTTP-Redirect binding): absolute https (http only for loopback).
    #[serde(rename = "IdPSSOURL")]
    pub idp_sso_url: String,
    /// The IdP's entity id; when set, the response's Issuer must equal it.
    #[serde(rename = "IdPEntityId")]
    pub idp_entity_id: Option<String>,
    /// The attribute carrying the user's groups.
    #[serde(rename = "GroupsAttribute")]
    pub groups_attribute: Option<String>,
    /// Keep verifying with a certificate that has expired since it was saved.
    #[serde(rename = "AllowExpiredCertificate")]
    pub allow_expired_certificate: Option<bool>,
    /// Whether sign-ins use it.
    #[serde(rename = "Active")]
    pub active: Option<bool>,
}

/// An update: the whole configuration with its `Id`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct Update<T> {
    /// The configuration's `Id`.
    #[serde(rename = "Id")]
    pub id: i64,
    /// The configuration.
    #[serde(flatten)]
    pub config: T,
}
