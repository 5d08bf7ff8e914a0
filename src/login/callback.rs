//! The agent's own redirect target (`GET /sso/callback`): the IdP sends the browser back here
//! with `code` and `state` (or `error`). A desktop sign-in is completed here; for an API
//! client that passed this URL as its `CallbackUrl`, the code is shown for the user to copy
//! back, never redeemed.

use tracing::instrument;

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
    /// An API client's sign-in: the code to copy back (not redeemed), and the `Identifier`
    /// when the agent kept it for this page.
    CopyCode {
        /// The authorization code, as the IdP sent it.
        code: Secret,
        /// The transaction's `Identifier`, when kept.
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
        state
            .sealer
            .open_secret(h, &seal_context(&t.handle_hash, "handle"))
            .ok()
    });
    Ok(CallbackOutcome::CopyCode {
        code: Secret::new(code),
        identifier,
    })
}
