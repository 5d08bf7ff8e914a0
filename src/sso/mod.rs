//! Identity-provider protocol logic (URLs, certificates; OIDC and SAML as they land).
//! Nothing here knows about HTTP requests or responses: it takes plain values.

pub mod cert;
pub mod directory;
pub mod groups;
pub mod http;
pub mod net;
pub mod oidc;
pub mod saml;
pub mod urls;
