//! SAML 2.0 service-provider logic: the AuthnRequest (HTTP-Redirect binding), fail-closed
//! validation of responses posted to the ACS, and the SP metadata admins register.
//!
//! Signature checking is samael's (xmlsec): the document is reduced to exactly what a
//! verified signature covers before anything is read from it, so XML signature wrapping
//! cannot smuggle unsigned content in. On top of samael's checks this module refuses DTDs
//! and entities before parsing, requires an Audience equal to the SP entity id, and applies
//! the time window with the agent's own clock.
//!
//! Beside this file: `authn_request` (the AuthnRequest), `response` (validation of what the
//! ACS receives), `envelope` (the Response envelope it checks first), `metadata` (SP and IdP
//! metadata), `sp_keys` (the agent's key pairs and redirect signatures), `logout` (single logout messages) and [`testing`] (a signing IdP for tests and the benchmark).

mod authn_request;
mod envelope;
pub mod idp_metadata;
pub mod logout;
mod metadata;
mod response;
pub mod sp_keys;
pub mod testing;
pub mod xmlenc;
pub mod xmltree;

pub use authn_request::{RedirectRequest, redirect_request};
pub use idp_metadata::{IdpMetadata, parse_idp_metadata};
pub use metadata::{SpMetadata, sp_metadata};
pub use response::{SIGNATURE_INVALID, SamlIdentity, validate_response};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Allowed clock difference between the agent and the IdP.
pub const CLOCK_SKEW_SECS: i64 = 120;
/// The HTTP-POST binding URI.
pub const HTTP_POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// The HTTP-Redirect binding URI.
pub const HTTP_REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// NameID format asked for: the agent matches users by email.
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// Largest decoded SAML response accepted.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// What the agent knows about the SP side and the IdP it trusts.
#[derive(Debug, Clone)]
pub struct SpConfig {
    /// The agent's entity id (Issuer of requests, expected Audience).
    pub sp_entity_id: String,
    /// The agent's ACS URL (expected Destination and Recipient).
    pub acs_url: String,
    /// The IdP's SSO URL (HTTP-Redirect binding).
    pub idp_sso_url: String,
    /// When set, responses and assertions must name this Issuer.
    pub idp_entity_id: Option<String>,
    /// The IdP signing certificates (DER): the current one and, during a rollover, the next.
    pub certificates: Vec<Vec<u8>>,
    /// The agent's SP encryption keys in force (the active one, and one retiring after a
    /// rotation): what an `EncryptedAssertion` or `EncryptedID` is decrypted with.
    pub decryption_keys: Vec<openssl::pkey::PKey<openssl::pkey::Private>>,
    /// Refuse plain (unencrypted) assertions.
    pub require_encrypted_assertions: bool,
}

/// Decodes certificates stored as PEM into DER.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    STANDARD.decode(body.trim()).ok()
}

#[cfg(test)]
#[path = "saml_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "saml_enc_tests.rs"]
mod enc_tests;
