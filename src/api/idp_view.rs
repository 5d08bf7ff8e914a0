//! How the API shows a stored IdP configuration (`OktaSSO`, `EntraIDSSO`, `SamlSSO`): the
//! seed's keys, the secret always masked; and the schemas of the bodies it takes.

use serde::Serialize;

use crate::api::idp::SECRET_MASK;
use crate::api::policy::ManagedView;
use crate::policy::ManagedKey;
use crate::sso::oidc::discovery::ClientAuth;
use crate::state::AppState;
use crate::store::idp::{IdpConfig, Kind};

/// An Okta configuration as the API shows it (`OktaSSO`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    /// Whether the agent signs its AuthnRequests (its signing certificate is in the SP
    /// metadata).
    #[serde(rename = "SignAuthnRequests")]
    sign_authn_requests: bool,
    /// Where the IdP's metadata is read from (certificate rollover).
    #[serde(rename = "IdPMetadataURL")]
    idp_metadata_url: Option<String>,
    /// The IdP's SingleLogoutService (HTTP-Redirect): sign-out sends a LogoutRequest there.
    #[serde(rename = "IdPSLOURL")]
    idp_slo_url: Option<String>,
    /// The agent's single logout endpoint, to register at the IdP (read-only).
    #[serde(rename = "SLOURL")]
    slo_url: String,
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
            idp_slo_url: c.idp_slo_url.clone(),
            slo_url: crate::login::slo::slo_url(state),
            active: c.active,
            idp_certificates: cert_views(c, state.now()),
            acs_url: crate::login::idp_config::acs_url(state),
            managed: managed(),
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
    /// The client secret (write-only: reads show a mask). Omitted on setup, or `""`: a public
    /// client (PKCE, no secret); on update, the mask or no value keeps the stored one and `""`
    /// removes it.
    #[serde(rename = "ClientSecret")]
    #[schema(max_length = 2048)]
    pub client_secret: Option<String>,
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

/// The body of `setup_saml`. With `IdPMetadataURL` or `IdPMetadataXML`, what the admin
/// leaves out (`IdPSSOURL`, `IdPEntityId`, `Certificate`, `NextCertificate`,
/// `SignAuthnRequests`) is taken from the IdP's metadata; without, `Certificate` and
/// `IdPSSOURL` are required.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct SamlSetup {
    /// The IdP's signing certificate: PEM, or bare base64 DER (RSA of 2048 bits or more).
    #[serde(rename = "Certificate")]
    pub certificate: Option<String>,
    /// The next certificate, during a rollover.
    #[serde(rename = "NextCertificate")]
    pub next_certificate: Option<String>,
    /// Our entity id (the Audience the IdP names).
    #[serde(rename = "SPEntityId")]
    #[schema(min_length = 1, max_length = 1024)]
    pub sp_entity_id: String,
    /// The IdP's SSO URL (HTTP-Redirect binding): absolute https (http only for loopback).
    #[serde(rename = "IdPSSOURL")]
    pub idp_sso_url: Option<String>,
    /// The IdP's entity id; when set, the response's Issuer must equal it.
    #[serde(rename = "IdPEntityId")]
    pub idp_entity_id: Option<String>,
    /// Where the IdP's metadata is read (now, every 12 hours and after a signature failure:
    /// certificate rollover). Absolute https (http only for loopback).
    #[serde(rename = "IdPMetadataURL")]
    pub idp_metadata_url: Option<String>,
    /// The IdP's SingleLogoutService (HTTP-Redirect binding), where sign-out sends its
    /// LogoutRequest: absolute https (http only for loopback). Taken from the metadata when
    /// left out; without one, sign-out ends only the agent's session.
    #[serde(rename = "IdPSLOURL")]
    pub idp_slo_url: Option<String>,
    /// The IdP's metadata document itself (read once; not with `IdPMetadataURL`).
    #[serde(rename = "IdPMetadataXML")]
    pub idp_metadata_xml: Option<String>,
    /// The attribute carrying the user's groups.
    #[serde(rename = "GroupsAttribute")]
    pub groups_attribute: Option<String>,
    /// Keep verifying with a certificate that has expired since it was saved.
    #[serde(rename = "AllowExpiredCertificate")]
    pub allow_expired_certificate: Option<bool>,
    /// Sign AuthnRequests with the agent's SP signing key (its certificate is in the SP
    /// metadata).
    #[serde(rename = "SignAuthnRequests")]
    pub sign_authn_requests: Option<bool>,
    /// Refuse assertions that are not encrypted to the agent's SP encryption key.
    #[serde(rename = "RequireEncryptedAssertions")]
    pub require_encrypted_assertions: Option<bool>,
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
