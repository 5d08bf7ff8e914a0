//! The shell's one door to the core's desktop sign-in: start a login, await it, complete it
//! from an `amove://` deep link. No other module of the shell names the core's login module,
//! so moving it is a change of the one `use` line below.

use amove_agent::login as service;
use amove_agent::secret::Secret;
use amove_agent::state::AppState;

pub use service::{DesktopCallback, DesktopLogin, DesktopSession};

/// Where the IdP returns desktop logins: `amove://sso/callback` with
/// `AMOVE_DESKTOP_CALLBACK=deep-link`, else the agent's loopback `/sso/callback`.
pub fn callback() -> DesktopCallback {
    parse_callback(std::env::var("AMOVE_DESKTOP_CALLBACK").ok().as_deref())
}

fn parse_callback(value: Option<&str>) -> DesktopCallback {
    match value {
        Some("deep-link" | "deeplink" | "amove") => DesktopCallback::DeepLink,
        _ => DesktopCallback::Loopback,
    }
}

/// Starts a desktop login for `username`: open its `url`, then [`DesktopLogin::wait`].
/// `force_authn` (*Sign in as someone else…*) makes the IdP ask for credentials again.
pub async fn start(
    state: &AppState,
    username: &str,
    force_authn: bool,
) -> amove_agent::Result<DesktopLogin> {
    service::start_desktop_login_with(state, username, callback(), force_authn).await
}

/// Renews a session JWT (expired or not) through the IdP's refresh token: the new JWT, or 401
/// `TOKEN` when it cannot be renewed (sign in again).
pub async fn refresh(state: &AppState, token: &Secret) -> amove_agent::Result<Secret> {
    service::session::refresh(state, token).await
}

/// Completes the pending login an `amove://sso/callback?…` link belongs to.
pub async fn complete(state: &AppState, link: &str) -> amove_agent::Result<DesktopSession> {
    service::complete_from_deep_link(state, link).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_link_callback_only_when_asked_for() {
        for v in ["deep-link", "deeplink", "amove"] {
            assert_eq!(parse_callback(Some(v)), DesktopCallback::DeepLink);
        }
        for v in [None, Some(""), Some("loopback"), Some("Deep-Link")] {
            assert_eq!(parse_callback(v), DesktopCallback::Loopback);
        }
    }
}
