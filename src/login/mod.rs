//! The sign-in service: everything between "a user wants to sign in" and "here is their
//! session", with no HTTP in it. The HTTP handlers (`api::login`, `api::saml`,
//! `api::import`) and the desktop shell both call it; it returns domain results and the one
//! domain [`Error`].
//!
//! One file per behaviour of SPEC.md's "Login flow" and "Who signs in":
//! - [`start`]: `sso_url` — resolve the account and its active provider, check the callback
//!   URL ([`callback_url`]), record the transaction, build the IdP's URL;
//! - [`acs`]: the SAML ACS — validate the posted response, issue the one-time code;
//! - [`complete`]: `authenticate` — consume the transaction, exchange the code, mint the
//!   session;
//! - [`link`]: who signs in — the link between a local user and an IdP subject;
//! - [`groups`]: what a sign-in says about the user's groups;
//! - [`callback`]: the agent's own redirect target;
//! - [`desktop`]: the desktop shell's awaited sign-ins and the deep link;
//! - [`import`]: the admin's directory import (a sign-in asking for directory scopes);
//! - [`check`]: the `test_connection` dry run;
//! - [`session`]: a session after its sign-in — renewal (`/sso/refresh`), the absolute
//!   lifetime ([`session_policy`]), sign-out at the IdP; [`slo`]: SAML single logout;
//! - [`cache`] and [`idp_config`]: what sign-in reads, cached or opened.

pub mod acs;
pub mod cache;
pub mod callback;
pub mod callback_url;
pub mod check;
pub mod complete;
pub mod desktop;
pub mod groups;
pub mod idp_config;
pub mod idp_metadata;
pub mod import;
pub mod link;
pub mod network;
pub mod session;
pub mod session_policy;
pub mod slo;
pub mod sp_keys;
pub mod start;

pub use cache::LoginCache;
pub use complete::{SignedIn, authenticate};
pub use desktop::{
    DesktopCallback, DesktopLogin, DesktopLogins, DesktopSession, complete_desktop_login,
    complete_from_deep_link, desktop_callback_url, start_desktop_login, start_desktop_login_with,
};
pub use start::{StartRequest, Started, start_login};

use crate::error::Error;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};

/// The audit action of sign-ins and their refusals.
pub const AUDIT_SIGNIN: &str = "signin";

/// The seal context of a login transaction's secret `what` (PKCE verifier, SAML result, the
/// kept `Identifier`): bound to the transaction, so a sealed value cannot be moved to another.
pub(crate) fn seal_context(handle_hash: &str, what: &str) -> String {
    format!("login_transactions:{handle_hash}:{what}")
}

/// Records a refused sign-in with its reason (best effort: the refusal itself stands).
pub async fn audit_refusal(state: &AppState, account_id: Option<i64>, actor: &str, e: &Error) {
    let ev = NewEvent::refused(account_id, actor, AUDIT_SIGNIN, e.user_text());
    let now = state.now();
    if let Err(err) = state.db.write(move |tx| audit::record(tx, &ev, now)).await {
        tracing::warn!(error = %err, "could not record a refused sign-in");
    }
}
