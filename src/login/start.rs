//! Starting a login (`sso_url`, the desktop's sign-in, an import): resolve the account and
//! its active provider, check the callback URL, record a single-use login transaction and
//! build the IdP's URL — an OIDC authorization request (state, nonce, PKCE S256) or a SAML
//! AuthnRequest (HTTP-Redirect binding) with the transaction's `state` as `RelayState`.

use url::Url;

use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use crate::login::cache::login_context;
use crate::login::{audit_refusal, callback_url, idp_config, seal_context, sp_keys};
use crate::secret::Secret;
use crate::sso::oidc::{self, AuthRequest};
use crate::sso::saml;
use crate::state::AppState;
use crate::store::idp::{IdpConfig, Kind};
use crate::store::transactions::{self, Client, LOGIN_TTL_SECS, NewTransaction, Purpose};

/// A started login: what `sso_url` answers.
#[derive(Debug, Clone)]
pub struct Started {
    /// The transaction handle (`Identifier`).
    pub identifier: String,
    /// Where to send the browser.
    pub url: Url,
    /// The OAuth `state` of the transaction.
    pub state: String,
}

/// What starts a login transaction.
#[derive(Debug, Clone)]
pub struct StartRequest<'a> {
    /// The username typed in: routes to the account, hints the IdP; never the identity.
    pub username: &'a str,
    /// The redirect URI.
    pub callback_url: &'a str,
    /// Login or import.
    pub purpose: Purpose,
    /// Who completes it.
    pub client: Client,
    /// The admin starting an import.
    pub started_by_user_id: Option<i64>,
    /// Scopes besides `openid` (a sign-in adds `offline_access` where the IdP offers it).
    pub scopes: &'a [&'a str],
    /// Make the IdP authenticate the user again even when it has a session for them ("Sign
    /// in as someone else…"): OIDC `prompt=login`, SAML `ForceAuthn="true"`.
    pub force_authn: bool,
}

/// Starts a login for `req.username`: resolves the account and its active provider, checks
/// the callback URL, records the transaction and builds the IdP's URL.
pub async fn start_login(state: &AppState, req: StartRequest<'_>) -> Result<Started> {
    let now = state.now();
    let username = req.username.trim().to_lowercase();
    let Some((account_id, (config, allowed))) = login_context(state, &username).await? else {
        return Err(Error::NotFound(format!(
            "there is no user {username}; ask your admin to add you"
        )));
    };
    let Some(config) = config else {
        return Err(Error::NotFound(
            "this account has no active identity provider; an admin must set one up".into(),
        ));
    };
    let callback = match callback_url::check(req.callback_url, &allowed) {
        Ok(url) => url,
        Err(e) => {
            audit_refusal(state, Some(account_id), &username, &e).await;
            return Err(e);
        }
    };
    // The desktop's own logins complete without it; an API client's user copies it from
    // the agent's page, or already has it.
    let keep_identifier = req.client == Client::Api && callback_url::is_agent_callback(&callback);
    if config.kind == Kind::Saml {
        return start_saml_login(
            state,
            &req,
            &username,
            account_id,
            &config,
            keep_identifier,
            now,
        )
        .await;
    }
    let openid_url = config
        .openid_url
        .as_deref()
        .ok_or_else(|| Error::internal("OIDC configuration without OpenIdURL"))?;
    let client_id = config
        .client_id
        .as_deref()
        .ok_or_else(|| Error::internal("OIDC configuration without ClientId"))?;
    let discovered = state.oidc.discover(openid_url, config.kind, now).await?;

    let id = state.login_cache.ids.next(now);
    let handle = transactions::handle::new(id)?;
    let handle_hash = sha256_hex(&handle);
    let tx_state = transactions::handle::new(id)?;
    let nonce = random_token()?;
    let (challenge, verifier) = oidc::new_pkce();
    let scopes = sign_in_scopes(req.scopes, req.purpose, config.kind, &discovered);
    let url = state.oidc.authorization_url(
        &discovered,
        AuthRequest {
            client_id,
            redirect_uri: req.callback_url.trim(),
            redirect_url: &callback,
            state: &tx_state,
            nonce: &nonce,
            pkce_challenge: challenge,
            login_hint: &username,
            scopes: &scopes,
            prompt_login: req.force_authn,
        },
    )?;
    let pkce_verifier_enc = Some(
        state
            .sealer
            .seal_secret(&verifier, &seal_context(&handle_hash, "pkce_verifier"))?,
    );
    let protocol = ProtocolState {
        nonce: Some(nonce),
        pkce_verifier_enc,
        saml_request_id: None,
    };
    record_login(
        state,
        &req,
        &username,
        account_id,
        &config,
        (id, handle, handle_hash, tx_state),
        keep_identifier,
        protocol,
        url,
        now,
    )
    .await
}

/// The scopes of an authorization request: `scopes`, and for a sign-in `offline_access`
/// (a refresh token, so the session can be renewed: `login::session`) where the IdP offers
/// it — listed in `scopes_supported` (Okta), or Entra ID, whose v2 endpoints grant it without
/// listing it.
fn sign_in_scopes<'a>(
    scopes: &[&'a str],
    purpose: Purpose,
    kind: Kind,
    d: &oidc::discovery::Discovered,
) -> Vec<&'a str> {
    let mut all = scopes.to_vec();
    if purpose == Purpose::Login
        && !all.contains(&oidc::OFFLINE_ACCESS)
        && (kind == Kind::Entra || d.supports_scope(oidc::OFFLINE_ACCESS))
    {
        all.push(oidc::OFFLINE_ACCESS);
    }
    all
}

/// The SAML side of [`start_login`]: an AuthnRequest (HTTP-Redirect binding) whose ID the
/// transaction keeps, with the transaction's `state` as `RelayState`.
async fn start_saml_login(
    state: &AppState,
    req: &StartRequest<'_>,
    username: &str,
    account_id: i64,
    config: &IdpConfig,
    keep_identifier: bool,
    now: i64,
) -> Result<Started> {
    let sp = idp_config::sp_config(state, config)?;
    let id = state.login_cache.ids.next(now);
    let handle = transactions::handle::new(id)?;
    let handle_hash = sha256_hex(&handle);
    let relay_state = transactions::handle::new(id)?;
    let key = match config.sign_authn_requests {
        true => Some(sp_keys::signing_key(state, account_id).await?),
        false => None,
    };
    // Signed on the async worker: the request is the agent's own and fixed in size, so the
    // RSA signature is a bounded ~0.3 ms, and queued on the blocking pool (`cpu::run`, as the
    // ACS's checks of outside input are) it measured worse: 0.63-0.66 ms of CPU per `sso_url`
    // against 0.41-0.51 ms here, alternating runs of the SAML benchmark (BENCHMARKS.md).
    let request = saml::redirect_request(
        &sp,
        &relay_state,
        now,
        key.as_deref().map(|k| &k.private),
        req.force_authn,
    )
    .map_err(Error::internal)?;
    let url = Url::parse(&request.url).map_err(|_| Error::internal("AuthnRequest URL"))?;
    let protocol = ProtocolState {
        nonce: None,
        pkce_verifier_enc: None,
        saml_request_id: Some(request.id),
    };
    record_login(
        state,
        req,
        username,
        account_id,
        config,
        (id, handle, handle_hash, relay_state),
        keep_identifier,
        protocol,
        url,
        now,
    )
    .await
}

/// What a login transaction keeps that depends on the protocol.
struct ProtocolState {
    nonce: Option<String>,
    pkce_verifier_enc: Option<String>,
    saml_request_id: Option<String>,
}

/// Records the transaction of a started login (purging expired ones) and answers with its
/// handle, the IdP URL and the `state`. The handle itself is kept, sealed, only when
/// `keep_identifier` (see [`callback_url::is_agent_callback`]); otherwise only its hash.
#[allow(clippy::too_many_arguments)]
async fn record_login(
    state: &AppState,
    req: &StartRequest<'_>,
    username: &str,
    account_id: i64,
    config: &IdpConfig,
    (id, handle, handle_hash, tx_state): (i64, String, String, String),
    keep_identifier: bool,
    protocol: ProtocolState,
    url: Url,
    now: i64,
) -> Result<Started> {
    let t = NewTransaction {
        id,
        handle_enc: keep_identifier
            .then(|| {
                state.sealer.seal_secret(
                    &Secret::new(handle.clone()),
                    &seal_context(&handle_hash, "handle"),
                )
            })
            .transpose()?,
        pkce_verifier_enc: protocol.pkce_verifier_enc,
        handle_hash,
        account_id,
        purpose: req.purpose,
        client: req.client,
        provider: config.kind,
        idp_config_id: config.id,
        idp_config_version: config.version,
        started_by_user_id: req.started_by_user_id,
        login_hint: username.to_string(),
        callback_url: req.callback_url.trim().to_string(),
        state: tx_state.clone(),
        nonce: protocol.nonce,
        saml_request_id: protocol.saml_request_id,
        created_at: now,
        expires_at: now.saturating_add(LOGIN_TTL_SECS),
    };
    // Expired transactions can no longer be used (`consume` checks); they are deleted at
    // most once a minute rather than by every insert.
    let purge = state.login_cache.purge_due(now);
    state
        .db
        .write_uncached(move |tx| {
            if purge {
                transactions::purge_expired(tx, now)?;
            }
            transactions::insert(tx, &t)
        })
        .await?;
    Ok(Started {
        identifier: handle,
        url,
        state: tx_state,
    })
}
