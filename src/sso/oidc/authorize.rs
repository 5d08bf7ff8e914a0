//! The authorization request: the URL that sends the browser to the IdP (authorization code
//! flow with `state`, `nonce`, PKCE S256 and `login_hint`), built by openidconnect.

use oauth2::{PkceCodeChallenge, RedirectUrl};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{CsrfToken, Nonce, Scope};
use url::Url;

use super::Oidc;
use super::discovery::Discovered;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Scopes of a sign-in (SPEC: `openid email profile`).
pub const LOGIN_SCOPES: &[&str] = &["email", "profile"];
/// The scope that asks for a refresh token (OpenID Connect Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// What an authorization request carries besides the discovery document.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// Our client id.
    pub client_id: &'a str,
    /// The callback URL (redirect URI), exactly as the client gave it.
    pub redirect_uri: &'a str,
    /// `redirect_uri`, parsed.
    pub redirect_url: &'a Url,
    /// OAuth state.
    pub state: &'a str,
    /// OIDC nonce.
    pub nonce: &'a str,
    /// The PKCE S256 challenge.
    pub pkce_challenge: PkceCodeChallenge,
    /// The username typed in (`login_hint`).
    pub login_hint: &'a str,
    /// Scopes besides `openid`.
    pub scopes: &'a [&'a str],
    /// `prompt=login`: authenticate again even with a session at the IdP.
    pub prompt_login: bool,
}

/// A new PKCE S256 pair: the challenge for the URL and the verifier to keep (sealed).
pub fn new_pkce() -> (PkceCodeChallenge, Secret) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (challenge, Secret::new(verifier.secret().clone()))
}

impl Oidc {
    /// The URL that sends the browser to the IdP: authorization code flow with `state`,
    /// `nonce`, PKCE S256 and `login_hint`.
    pub fn authorization_url(&self, d: &Discovered, req: AuthRequest<'_>) -> Result<Url> {
        // The URI goes out exactly as given (the token request repeats it, and the IdP
        // compares strings); the parse already done is reused when it reads the same.
        let redirect = if req.redirect_url.as_str() == req.redirect_uri {
            RedirectUrl::from_url(req.redirect_url.clone())
        } else {
            RedirectUrl::new(req.redirect_uri.to_string())
                .map_err(|e| Error::invalid(format!("CallbackUrl is not a valid URL: {e}")))?
        };
        // Only the authorization endpoint is needed here (not a copy of the whole metadata
        // on every sso_url, as `from_provider_metadata` would take).
        let client = CoreClient::new(
            openidconnect::ClientId::new(req.client_id.to_string()),
            d.metadata.issuer().clone(),
            openidconnect::core::CoreJsonWebKeySet::default(),
        )
        .set_auth_uri(d.metadata.authorization_endpoint().clone())
        .set_redirect_uri(redirect);
        let (state, nonce) = (req.state.to_string(), req.nonce.to_string());
        let mut auth = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        );
        for s in req.scopes {
            auth = auth.add_scope(Scope::new((*s).to_string()));
        }
        if req.prompt_login {
            auth = auth.add_prompt(openidconnect::core::CoreAuthPrompt::Login);
        }
        let (url, _, _) = auth
            .set_pkce_challenge(req.pkce_challenge)
            .add_extra_param("login_hint", req.login_hint.to_string())
            .url();
        Ok(url)
    }
}
