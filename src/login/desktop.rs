//! The desktop shell's own sign-in: it starts a login whose browser comes back to the agent
//! (`/sso/callback`) or to the `amove://` deep link the shell forwards, and awaits the session
//! the completion yields.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::instrument;
use url::Url;

use crate::error::{Error, Result};
use crate::login::audit_refusal;
use crate::login::callback_url::DEEP_LINK_SCHEME;
use crate::login::complete::{TxRef, complete};
use crate::login::start::{StartRequest, start_login};
use crate::query::QueryParams;
use crate::secret::Secret;
use crate::sso::oidc;
use crate::state::AppState;
use crate::store::transactions::{self, Client, LOGIN_TTL_SECS, Purpose};

/// What the desktop shell learns when its login completes.
#[derive(Debug, Clone)]
pub struct DesktopSession {
    /// The session JWT.
    pub token: Secret,
    /// The username (email).
    pub username: String,
    /// "First Last" or the email.
    pub display_name: String,
    /// The account identifier.
    pub account: String,
}

type Waiter = oneshot::Sender<std::result::Result<DesktopSession, String>>;

/// Logins the desktop shell started and awaits, by OAuth `state`.
#[derive(Debug, Default)]
pub struct DesktopLogins(Mutex<HashMap<String, Waiter>>);

impl DesktopLogins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        // A panic while holding the lock leaves a consistent map behind.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn register(
        &self,
        state: &str,
    ) -> oneshot::Receiver<std::result::Result<DesktopSession, String>> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.lock();
        // Waiters whose shell gave up are dropped here rather than kept forever.
        map.retain(|_, w| !w.is_closed());
        map.insert(state.to_string(), tx);
        rx
    }
    fn finish(&self, state: &str, outcome: std::result::Result<DesktopSession, String>) {
        if let Some(w) = self.lock().remove(state) {
            // The shell may have stopped waiting; nothing to do then.
            let _ = w.send(outcome);
        }
    }
}

/// Where the IdP sends the browser back to for a desktop login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopCallback {
    /// The agent's own `http://localhost:PORT/sso/callback`.
    Loopback,
    /// `amove://sso/callback`, forwarded by the shell to [`complete_desktop_login`].
    DeepLink,
}

/// A desktop login in progress: open `url` in the browser, then [`DesktopLogin::wait`].
#[derive(Debug)]
pub struct DesktopLogin {
    /// The IdP URL to open.
    pub url: Url,
    rx: oneshot::Receiver<std::result::Result<DesktopSession, String>>,
}

impl DesktopLogin {
    /// Waits for the browser to come back (at most the transaction's 10 minutes).
    pub async fn wait(self) -> Result<DesktopSession> {
        let limit = Duration::from_secs(LOGIN_TTL_SECS.unsigned_abs());
        match tokio::time::timeout(limit, self.rx).await {
            Ok(Ok(Ok(s))) => Ok(s),
            Ok(Ok(Err(msg))) => Err(Error::Auth(msg)),
            Ok(Err(_)) => Err(Error::internal("the desktop login was abandoned")),
            Err(_) => Err(Error::Security(
                "the sign-in was not completed within 10 minutes; start again".into(),
            )),
        }
    }
}

/// The callback URL of desktop logins.
pub fn desktop_callback_url(state: &AppState, cb: DesktopCallback) -> String {
    match cb {
        DesktopCallback::Loopback => format!("{}/sso/callback", state.base_url()),
        DesktopCallback::DeepLink => format!("{}://sso/callback", DEEP_LINK_SCHEME),
    }
}

/// Starts a login from the desktop shell for `username`. The browser comes back to the
/// agent (or the deep link), which completes it; [`DesktopLogin::wait`] then yields the
/// session.
pub async fn start_desktop_login(
    state: &AppState,
    username: &str,
    cb: DesktopCallback,
) -> Result<DesktopLogin> {
    start_desktop_login_with(state, username, cb, false).await
}

/// [`start_desktop_login`], with `force_authn` ("Sign in as someone else…"): the IdP asks
/// for credentials again even when its browser session would sign the previous user in
/// silently (OIDC `prompt=login`, SAML `ForceAuthn="true"`).
pub async fn start_desktop_login_with(
    state: &AppState,
    username: &str,
    cb: DesktopCallback,
    force_authn: bool,
) -> Result<DesktopLogin> {
    let callback = desktop_callback_url(state, cb);
    let started = start_login(
        state,
        StartRequest {
            username,
            callback_url: &callback,
            purpose: Purpose::Login,
            client: Client::Desktop,
            started_by_user_id: None,
            scopes: oidc::LOGIN_SCOPES,
            force_authn,
        },
    )
    .await?;
    let rx = state.desktop_logins.register(&started.state);
    Ok(DesktopLogin {
        url: started.url,
        rx,
    })
}

/// Completes a desktop login from the IdP's redirect (`/sso/callback` or the `amove://`
/// deep link the shell forwards): its `state` and `code`, or its `error`.
#[instrument(skip_all)]
pub async fn complete_desktop_login(
    state: &AppState,
    oauth_state: &str,
    outcome: std::result::Result<Secret, String>,
) -> Result<DesktopSession> {
    let s = oauth_state.to_string();
    let t = state
        .db
        .read(move |c| transactions::by_state(c, &s))
        .await?
        .filter(|t| t.client == Client::Desktop)
        .ok_or_else(|| {
            Error::Security(
                "this sign-in is unknown or has expired; start again from the app".into(),
            )
        })?;
    let result = match outcome {
        Ok(code) => complete(state, TxRef::Key(t.key()), &code)
            .await
            .map(|s| DesktopSession {
                token: s.token,
                username: s.user.email.clone(),
                display_name: s.user.display_name(),
                account: s.account_identifier,
            }),
        Err(idp_error) => {
            let key = t.key();
            let now = state.now();
            state
                .db
                .write(move |tx| transactions::consume(tx, &key, now))
                .await?;
            let e = Error::Sso(idp_error);
            audit_refusal(state, Some(t.account_id), &t.login_hint, &e).await;
            Err(e)
        }
    };
    state.desktop_logins.finish(
        oauth_state,
        result.as_ref().map(Clone::clone).map_err(Error::user_text),
    );
    result
}

/// Completes a desktop login from the `amove://sso/callback?code=…&state=…` deep link the
/// shell received (or `…?error=…&state=…`).
pub async fn complete_from_deep_link(state: &AppState, link: &str) -> Result<DesktopSession> {
    let (oauth_state, outcome) = parse_deep_link(link)?;
    complete_desktop_login(state, &oauth_state, outcome).await
}

/// What a deep link carries: the OAuth `state`, and the code or the IdP's refusal (as the
/// text a person is shown). Anything but an `amove://` URL with a state is `Invalid`.
pub fn parse_deep_link(link: &str) -> Result<(String, Result<Secret, String>)> {
    let url =
        Url::parse(link.trim()).map_err(|_| Error::invalid("the deep link is not a valid URL"))?;
    if url.scheme() != DEEP_LINK_SCHEME {
        return Err(Error::invalid("the deep link is not an amove:// URL"));
    }
    let q = QueryParams::parse(url.query());
    let oauth_state = q
        .get("state")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid("the deep link carries no state"))?;
    let outcome = match (q.get("code").filter(|c| !c.is_empty()), q.get("error")) {
        (_, Some(e)) => Err(idp_refusal(e, q.get("error_description"))),
        (Some(code), None) => Ok(Secret::new(code)),
        (None, None) => Err("The identity provider sent no authorization code.".into()),
    };
    Ok((oauth_state.to_string(), outcome))
}

/// "The identity provider refused the sign-in: error (description)", cleaned.
pub(crate) fn idp_refusal(error: &str, description: Option<&str>) -> String {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect::<String>()
    };
    match description.filter(|d| !d.is_empty()) {
        Some(d) => format!(
            "The identity provider refused the sign-in: {} ({})",
            clean(error),
            clean(d)
        ),
        None => format!(
            "The identity provider refused the sign-in: {}",
            clean(error)
        ),
    }
}
