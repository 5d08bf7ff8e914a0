//! The agent's own redirect target (`GET /sso/callback`): the IdP sends the browser back here
//! with `code` and `state` (or `error`). A desktop sign-in is completed here; for an API
//! client that passed this URL as its `CallbackUrl`, the code is shown for the user to copy
//! back, never redeemed.
//!
//! **The page never shows the `Identifier` itself.** The `state` travels in URLs (the
//! authorization request, browser history, the IdP's logs) and is no secret, so anyone holding
//! it could open this page with a made-up `code`. What the page shows in the Identifier's place
//! is a *bound* Identifier: the transaction's id with an HMAC, keyed by the real Identifier,
//! of the very `code` on the page. `/sso/authenticate` accepts it only together with that code;
//! with any other code it names nothing. So the value shown for a made-up code is useless with
//! the real one, and the real Identifier never leaves the API client that received it.

use tracing::instrument;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::login::desktop::{DesktopSession, complete_desktop_login, idp_refusal};
use crate::login::seal_context;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::transactions::{self, Client};

/// Longest authorization code accepted.
pub const MAX_CODE: usize = 4096;

/// What an IdP's redirect back carries (the query of `/sso/callback`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Redirect<'a> {
    /// `state`.
    pub state: Option<&'a str>,
    /// `code`.
    pub code: Option<&'a str>,
    /// `error`.
    pub error: Option<&'a str>,
    /// `error_description`.
    pub error_description: Option<&'a str>,
}

/// What the agent's callback page shows.
#[derive(Debug)]
pub enum CallbackOutcome {
    /// The desktop's own sign-in completed.
    SignedIn(DesktopSession),
    /// An API client's sign-in: the code to copy back (not redeemed), and the bound
    /// Identifier that works with exactly that code, when the agent kept what it needs.
    CopyCode {
        /// The authorization code, as the IdP sent it.
        code: Secret,
        /// The bound Identifier (see the module's documentation).
        identifier: Option<Secret>,
    },
}

/// Handles the IdP's redirect to the agent's own callback. Every refusal says what to do.
#[instrument(skip_all)]
pub async fn agent_callback(state: &AppState, r: Redirect<'_>) -> Result<CallbackOutcome> {
    let Some(oauth_state) = r.state.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return Err(Error::invalid(
            "The identity provider sent the browser back without the sign-in's state. Start again.",
        ));
    };
    let idp_error = r.error.map(|e| idp_refusal(e, r.error_description));
    let code = r.code.filter(|c| !c.is_empty() && c.len() <= MAX_CODE);
    let s = oauth_state.to_string();
    let t = state
        .db
        .read(move |c| transactions::by_state(c, &s))
        .await?
        .filter(|t| !t.is_expired(state.now()))
        .ok_or_else(|| {
            Error::Security(
                "This sign-in is unknown or has expired (sign-ins must be completed within 10 \
                 minutes). Start again."
                    .into(),
            )
        })?;
    if t.client == Client::Desktop {
        let outcome = match (code, idp_error) {
            (_, Some(err)) => Err(err),
            (Some(c), None) => Ok(Secret::new(c)),
            (None, None) => Err("The identity provider sent no authorization code.".into()),
        };
        return complete_desktop_login(state, oauth_state, outcome)
            .await
            .map(CallbackOutcome::SignedIn);
    }
    // An API client passed this URL: show what to copy back; redeem nothing.
    if t.consumed_at.is_some() {
        return Err(Error::Security(
            "This sign-in was already completed. Start again if you need to sign in.".into(),
        ));
    }
    if let Some(err) = idp_error {
        return Err(Error::Sso(err));
    }
    let Some(code) = code else {
        return Err(Error::Sso(
            "The identity provider sent no authorization code. Start again.".into(),
        ));
    };
    let identifier = t.handle_enc.as_deref().and_then(|h| {
        let handle = state
            .sealer
            .open_secret(h, &seal_context(&t.handle_hash, "handle"))
            .ok()?;
        Some(Secret::new(bind(&handle, t.id, code)))
    });
    Ok(CallbackOutcome::CopyCode {
        code: Secret::new(code),
        identifier,
    })
}

/// The first character of a bound Identifier (a plain one is 54 base64url characters).
const BOUND_PREFIX: char = '~';

type HmacSha256 = Hmac<Sha256>;

fn mac(handle: &Secret, code: &str) -> HmacSha256 {
    // A key of any length is accepted by HMAC; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(handle.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(b"amove bound identifier\0");
    m.update(code.as_bytes());
    m
}

/// The bound Identifier of transaction `id` (real Identifier `handle`) for `code`.
fn bind(handle: &Secret, id: i64, code: &str) -> String {
    let mut b = Vec::with_capacity(40);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&mac(handle, code).finalize().into_bytes());
    format!("{BOUND_PREFIX}{}", URL_SAFE_NO_PAD.encode(b))
}

/// The transaction id a bound Identifier names, if `identifier` is one.
pub(crate) fn bound_id(identifier: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD
        .decode(identifier.trim().strip_prefix(BOUND_PREFIX)?)
        .ok()?;
    let id = i64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
    (raw.len() == 40 && id > 0).then_some(id)
}

/// Whether `identifier` is the bound Identifier of the transaction whose real Identifier is
/// `handle`, for exactly `code` (constant-time).
pub(crate) fn verify_bound(handle: &Secret, identifier: &str, code: &str) -> bool {
    let Some(raw) = identifier
        .trim()
        .strip_prefix(BOUND_PREFIX)
        .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
    else {
        return false;
    };
    raw.len() == 40 && mac(handle, code).verify_slice(&raw[8..]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_identifier_works_with_its_code_only() {
        let handle = Secret::new("the-real-identifier");
        let b = bind(&handle, 42, "code-1");
        assert_eq!(bound_id(&b), Some(42));
        assert!(verify_bound(&handle, &b, "code-1"));
        assert!(!verify_bound(&handle, &b, "code-2"));
        assert!(!verify_bound(&Secret::new("another"), &b, "code-1"));
        assert!(!b.contains("the-real-identifier"));
        assert_eq!(bound_id("not bound"), None);
        assert_eq!(bound_id("~AAAA"), None);
    }
}
