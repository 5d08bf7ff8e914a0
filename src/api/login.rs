//! Sign-in through the account's identity provider: `POST /sso/sso_url`,
//! `POST /sso/authenticate`, `GET /sso/callback` and `POST /sso/test_connection`, plus the
//! desktop shell's own login ([`start_desktop_login`] / [`DesktopLogin::wait`]).
//!
//! The flow: `sso_url` records a single-use login transaction (10 minutes) and returns its
//! handle as `Identifier` with the IdP's authorization URL; `authenticate` consumes the
//! transaction atomically before anything else, exchanges the code, validates the ID token,
//! resolves the local user through the IdP subject link, and mints a session JWT. Protocol
//! work is in `sso::oidc`; storage in `store::{transactions, links}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tracing::instrument;
use url::Url;

use crate::api::extract::{Admin, Fields, QueryParams, check_text};
use crate::api::signin_groups::{self, GroupUpdate};
use crate::api::{AppState, callback_urls};
use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::oidc::{self, AuthRequest, Check, CodeExchange, IdpIdentity};
use crate::sso::saml;
use crate::store::audit::{self, NewEvent};
use crate::store::cache::GenCache;
use crate::store::groups as group_store;
use crate::store::idp::{self, IdpConfig, Kind};
use crate::store::transactions::{self, Client, LOGIN_TTL_SECS, NewTransaction, Purpose};
use crate::store::users::{Status, User};
use crate::store::{accounts, links, users};

const MAX_USERNAME: usize = 320;
const MAX_URL: usize = 2048;
const MAX_CODE: usize = 4096;
/// The audit action of sign-ins and their refusals.
pub const AUDIT_SIGNIN: &str = "signin";

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/sso_url", post(post_sso_url))
        .route("/sso/authenticate", post(post_authenticate))
        .route("/sso/callback", get(get_callback))
        .route("/sso/test_connection", post(post_test_connection))
}

// ------------------------------------------------------------------------------------------
// Starting a login

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
    /// Scopes besides `openid`.
    pub scopes: &'a [&'a str],
}

pub(crate) fn seal_context(handle_hash: &str, what: &str) -> String {
    format!("login_transactions:{handle_hash}:{what}")
}

/// An account's active configuration and callback allow-list, as [`LoginCache`] keeps them.
type AccountLogin = (Option<Arc<IdpConfig>>, Arc<Vec<String>>);

/// What every `sso_url` reads — the account of a username, and the account's active
/// configuration and callback allow-list — cached exactly for [`Db::epoch`]: only this
/// process writes configurations and allow-lists, and a user's account never changes.
/// Unknown usernames are not cached (the CLI may add them at any time).
///
/// [`Db::epoch`]: crate::store::Db::epoch
#[derive(Default)]
pub struct LoginCache {
    accounts_of: GenCache<String, i64>,
    accounts: GenCache<i64, AccountLogin>,
    last_purge: AtomicI64,
    /// Ids of new login transactions.
    ids: transactions::IdAllocator,
}

impl LoginCache {
    /// A cache whose login transaction ids start after `last_id` (the table's highest).
    pub fn starting_after(last_id: i64) -> Self {
        Self {
            ids: transactions::IdAllocator::after(last_id),
            ..Self::default()
        }
    }

    /// Whether expired login transactions are due to be purged (true at most once a minute).
    fn purge_due(&self, now: i64) -> bool {
        let last = self.last_purge.load(Ordering::Relaxed);
        now - last >= 60
            && self
                .last_purge
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

/// The account of `username` (lowercased), its active configuration and allow-list.
async fn login_context(state: &AppState, username: &str) -> Result<Option<(i64, AccountLogin)>> {
    // Taken before reading: a read racing a write is tagged with the epoch the write ends.
    let epoch = i64::try_from(state.db.epoch()).unwrap_or(i64::MAX);
    let cache = &state.login_cache;
    let account_id = match cache.accounts_of.get(username, epoch) {
        Some(a) => a,
        None => {
            let lookup = username.to_string();
            let Some(user) = state.db.read(move |c| users::by_email(c, &lookup)).await? else {
                return Ok(None);
            };
            cache
                .accounts_of
                .put(username.to_string(), epoch, user.account_id);
            user.account_id
        }
    };
    if let Some((config, allowed)) = cache.accounts.get(&account_id, epoch) {
        return Ok(Some((account_id, (config, allowed))));
    }
    let (config, allowed) = state
        .db
        .read(move |c| {
            Ok((
                idp::active(c, account_id)?.map(Arc::new),
                Arc::new(crate::store::callback_urls::list(c, account_id)?),
            ))
        })
        .await?;
    cache
        .accounts
        .put(account_id, epoch, (config.clone(), allowed.clone()));
    Ok(Some((account_id, (config, allowed))))
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
    let callback = match callback_urls::check(req.callback_url, &allowed) {
        Ok(url) => url,
        Err(e) => {
            audit_refusal(state, Some(account_id), &username, &e).await;
            return Err(e);
        }
    };
    // The desktop's own logins complete without it; an API client's user copies it from
    // the agent's page, or already has it.
    let keep_identifier = req.client == Client::Api && callback_urls::is_agent_callback(&callback);
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
            scopes: req.scopes,
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
    let sp = crate::api::saml::sp_config(state, config)?;
    let id = state.login_cache.ids.next(now);
    let handle = transactions::handle::new(id)?;
    let handle_hash = sha256_hex(&handle);
    let relay_state = transactions::handle::new(id)?;
    let request = saml::redirect_request(&sp, &relay_state, now).map_err(Error::internal)?;
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
/// `keep_identifier` (see [`callback_urls::is_agent_callback`]); otherwise only its hash.
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
        started_by_user_id: req.started_by_user_id,
        login_hint: username.to_string(),
        callback_url: req.callback_url.trim().to_string(),
        state: tx_state.clone(),
        nonce: protocol.nonce,
        saml_request_id: protocol.saml_request_id,
        created_at: now,
        expires_at: now + LOGIN_TTL_SECS,
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

/// What `sso_url` answers (the seed's keys), serialized without copying the URL.
#[derive(serde::Serialize)]
struct SsoUrlAnswer<'a> {
    #[serde(rename = "Identifier")]
    identifier: &'a str,
    #[serde(rename = "Url")]
    url: &'a str,
}

#[instrument(skip_all)]
async fn post_sso_url(State(state): State<AppState>, f: Fields) -> Result<Response> {
    let username = f.req_str("Username", MAX_USERNAME)?;
    let callback = f.req_str("CallbackUrl", MAX_URL)?;
    let started = start_login(
        &state,
        StartRequest {
            username: &username,
            callback_url: &callback,
            purpose: Purpose::Login,
            client: Client::Api,
            started_by_user_id: None,
            scopes: oidc::LOGIN_SCOPES,
        },
    )
    .await?;
    Ok(Json(SsoUrlAnswer {
        identifier: &started.identifier,
        url: started.url.as_str(),
    })
    .into_response())
}

// ------------------------------------------------------------------------------------------
// Completing a login

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session JWT.
    pub token: Secret,
    /// The user who signed in.
    pub user: User,
    /// Their account's identifier.
    pub account_identifier: String,
    /// Through which provider.
    pub provider: Kind,
}

/// How a completion names its transaction.
enum TxRef<'a> {
    /// By the `Identifier` a client sends (checked against its callback URL).
    Identifier {
        handle: &'a str,
        callback_url: &'a str,
    },
    /// By its key, for the agent's own callback (found through `state`).
    Key(transactions::Key),
}

/// Completes a login from `/sso/authenticate`: the transaction named by `identifier`, the
/// authorization `code`, and the callback URL the client used.
#[instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    identifier: &str,
    code: &Secret,
    callback_url: &str,
) -> Result<SignedIn> {
    complete(
        state,
        TxRef::Identifier {
            handle: identifier,
            callback_url,
        },
        code,
    )
    .await
}

async fn complete(state: &AppState, r: TxRef<'_>, code: &Secret) -> Result<SignedIn> {
    let now = state.now();
    let (key, callback) = match r {
        TxRef::Identifier {
            handle,
            callback_url,
        } => (
            // Anything that cannot be one of our handles is simply unknown.
            transactions::Key::from_identifier(handle),
            Some(callback_url.trim().to_string()),
        ),
        TxRef::Key(k) => (Some(k), None),
    };
    // Consumed before anything else: a second call with the same Identifier fails even if
    // this one fails later.
    let (consumed, existing) = match key {
        None => (None, None),
        Some(key) => {
            state
                .db
                .write(move |tx| {
                    let consumed = transactions::consume(tx, &key, now)?;
                    let existing = match consumed {
                        Some(_) => None,
                        None => transactions::by_key(tx, &key)?,
                    };
                    Ok((consumed, existing))
                })
                .await?
        }
    };
    let Some(t) = consumed else {
        let (account, actor, msg) = match existing {
            Some(t) => (
                Some(t.account_id),
                t.login_hint,
                "this Identifier was already used: each sign-in can be completed once; start \
                 again with /sso/sso_url",
            ),
            None => (
                None,
                "anonymous".to_string(),
                "the Identifier is unknown or has expired; start again with /sso/sso_url",
            ),
        };
        let e = Error::Security(msg.into());
        audit_refusal(state, account, &actor, &e).await;
        return Err(e);
    };
    let result = complete_transaction(state, &t, callback.as_deref(), code, now).await;
    if let Err(e) = &result {
        audit_refusal(state, Some(t.account_id), &t.login_hint, e).await;
    }
    result
}

async fn complete_transaction(
    state: &AppState,
    t: &transactions::Transaction,
    callback: Option<&str>,
    code: &Secret,
    now: i64,
) -> Result<SignedIn> {
    if t.is_expired(now) {
        return Err(Error::Security(format!(
            "this sign-in expired (it must be completed within {} minutes); start again",
            LOGIN_TTL_SECS / 60
        )));
    }
    if let Some(cb) = callback
        && cb != t.callback_url
    {
        return Err(Error::Security(
            "CallbackUrl is not the one this sign-in was started with".into(),
        ));
    }
    if t.purpose != Purpose::Login {
        return Err(Error::Security(
            "this Identifier belongs to a user import, not a sign-in".into(),
        ));
    }
    let (aid, kind, config_id) = (t.account_id, t.provider, t.idp_config_id);
    let config = state
        .db
        .read(move |c| idp::get(c, aid, kind))
        .await?
        .filter(|c| c.id == config_id && c.active)
        .ok_or_else(|| {
            Error::Sso(
                "the identity provider configuration changed since this sign-in started; start again"
                    .into(),
            )
        })?;
    let (who, groups) = if kind.is_oidc() {
        let s = oidc_exchange(state, t, &config, code, now).await?;
        let g =
            signin_groups::resolve(state, &config, &s.identity.groups, Some(&s.access_token)).await;
        (s.identity, g)
    } else {
        let who = saml_identity(state, t, &config, code, now)?;
        let g = signin_groups::resolve(state, &config, &who.groups, None).await;
        (who, g)
    };
    let user = link_user(state, t.account_id, who, groups, now).await?;
    let account_identifier = state
        .db
        .read(move |c| accounts::by_id(c, aid))
        .await?
        .map(|a| a.identifier)
        .ok_or_else(|| Error::internal("account vanished"))?;
    let (token, _) = state
        .auth
        .mint_session(&user, &account_identifier, kind.as_str())?;
    Ok(SignedIn {
        token: Secret::new(token),
        user,
        account_identifier,
        provider: kind,
    })
}

/// Exchanges the authorization code of an OIDC transaction (PKCE verifier, nonce, client
/// secret) and validates the ID token; the result carries the access token too (an import
/// reads the directory with it).
pub(crate) async fn oidc_exchange(
    state: &AppState,
    t: &transactions::Transaction,
    config: &IdpConfig,
    code: &Secret,
    now: i64,
) -> Result<oidc::SignedInAtIdp> {
    let verifier = t
        .pkce_verifier_enc
        .as_deref()
        .ok_or_else(|| Error::internal("OIDC transaction without a PKCE verifier"))
        .and_then(|s| {
            state
                .sealer
                .open_secret(s, &seal_context(&t.handle_hash, "pkce_verifier"))
        })?;
    let nonce = t
        .nonce
        .as_deref()
        .ok_or_else(|| Error::internal("OIDC transaction without a nonce"))?;
    let secret = crate::api::idp::client_secret(state, config)?;
    let (client_id, openid_url) = match (&config.client_id, &config.openid_url) {
        (Some(c), Some(u)) => (c.as_str(), u.as_str()),
        _ => return Err(Error::internal("OIDC configuration incomplete")),
    };
    let signed_in = state
        .oidc
        .sign_in(
            openid_url,
            &CodeExchange {
                kind: config.kind,
                client_id,
                client_secret: &secret,
                code,
                pkce_verifier: &verifier,
                redirect_uri: &t.callback_url,
                nonce,
                allowed_tenants: &config.allowed_tenants,
                now,
            },
        )
        .await?;
    Ok(signed_in)
}

/// Redeems the one-time code the SAML ACS issued for this transaction for the identity the
/// ACS verified.
fn saml_identity(
    state: &AppState,
    t: &transactions::Transaction,
    config: &IdpConfig,
    code: &Secret,
    now: i64,
) -> Result<IdpIdentity> {
    let r = saml_result(state, t, code, now)?;
    Ok(IdpIdentity {
        provider: Kind::Saml,
        label: r.name_id.clone(),
        groups: crate::sso::groups::from_saml_attributes(
            &r.attributes,
            config.groups_attribute.as_deref(),
        ),
        issuer: r.issuer,
        subject: r.name_id,
        email: r.email,
    })
}

/// Redeems the one-time code the SAML ACS issued for this transaction for everything the
/// ACS verified (identity and attributes).
pub(crate) fn saml_result(
    state: &AppState,
    t: &transactions::Transaction,
    code: &Secret,
    now: i64,
) -> Result<saml::SamlIdentity> {
    let (Some(expected), Some(expires), Some(sealed)) = (
        t.code_hash.as_deref(),
        t.code_expires_at,
        t.result_enc.as_deref(),
    ) else {
        return Err(Error::Security(
            "no SAML response reached the agent for this sign-in; complete the sign-in at the \
             identity provider first"
                .into(),
        ));
    };
    if expires <= now {
        return Err(Error::Security(
            "the authorization code has expired; sign in again".into(),
        ));
    }
    let presented = sha256_hex(code.expose());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        presented.as_bytes(),
        expected.as_bytes(),
    )) {
        return Err(Error::Security(
            "the authorization code is not the one issued for this sign-in".into(),
        ));
    }
    let json = state
        .sealer
        .open_secret(sealed, &seal_context(&t.handle_hash, "saml_result"))?;
    serde_json::from_str(json.expose())
        .map_err(|e| Error::internal(format!("stored SAML result: {e}")))
}

/// Finds the local user of an IdP identity: through its link, or — on the first login
/// through this issuer — by email within the account, then links them; then brings their
/// IdP group memberships up to date. One write transaction, recorded in the audit trail.
async fn link_user(
    state: &AppState,
    account_id: i64,
    who: IdpIdentity,
    groups: GroupUpdate,
    now: i64,
) -> Result<User> {
    state
        .db
        .write(move |tx| {
            let (user, mut detail) = find_or_link(tx, account_id, &who, now)?;
            if let Some(refs) = &groups.groups {
                let mut ids = Vec::with_capacity(refs.len());
                for r in refs {
                    if let Some(id) = group_store::resolve(tx, account_id, r, now)? {
                        ids.push(id);
                    }
                }
                let change = group_store::set_idp_memberships(tx, account_id, user.id, &ids)?;
                detail.push_str(&format!("; groups: {}", change.summary()));
            }
            if let Some(note) = &groups.note {
                detail.push_str(&format!("; {note}"));
            }
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &user.email, AUDIT_SIGNIN, detail),
                now,
            )?;
            Ok(user)
        })
        .await
}

/// The local user of `who` and the audit detail of their sign-in (see [`link_user`]).
fn find_or_link(
    tx: &rusqlite::Connection,
    account_id: i64,
    who: &IdpIdentity,
    now: i64,
) -> Result<(User, String)> {
    let label = who.provider.label();
    let ask = "ask an admin of your account";
    if let Some(link) = links::by_subject(tx, &who.issuer, &who.subject)? {
        let user = users::by_id(tx, link.user_id)?
            .filter(|u| u.account_id == account_id)
            .ok_or_else(|| {
                Error::Auth(format!(
                    "your {label} identity ({}) is linked to a user of another account; {ask}",
                    who.label
                ))
            })?;
        check_active(&user)?;
        return Ok((user, format!("via {label} as {}", who.label)));
    }
    let email = who.email.as_deref().ok_or_else(|| {
        Error::Auth(format!(
            "{label} did not provide a verified email address for {}, so no user of this \
             account can be matched; {ask}",
            who.label
        ))
    })?;
    let user = users::by_email(tx, email)?
        .filter(|u| u.account_id == account_id)
        .ok_or_else(|| {
            Error::Auth(format!(
                "{email} signed in at {label} but is not a user of this account; {ask} to add you"
            ))
        })?;
    // One link per user and provider kind: an identity of another tenant, authorization
    // server or IdP never links a user who is linked already, whatever email it carries.
    if let Some(existing) = links::for_user(tx, user.id, who.provider)?
        && (existing.issuer != who.issuer || existing.subject != who.subject)
    {
        return Err(Error::Auth(format!(
            "{email} is already linked to a different {label} identity; {ask}"
        )));
    }
    check_active(&user)?;
    links::insert(
        tx,
        &links::Link {
            user_id: user.id,
            provider: who.provider,
            issuer: who.issuer.clone(),
            subject: who.subject.clone(),
            linked_at: now,
        },
    )?;
    let detail = format!(
        "via {label}; first sign-in: linked to subject {} of {}",
        who.subject, who.issuer
    );
    Ok((user, detail))
}

fn check_active(user: &User) -> Result<()> {
    if user.status != Status::Active {
        return Err(Error::Auth(format!(
            "the user {} is inactive; ask an admin of your account",
            user.email
        )));
    }
    Ok(())
}

/// Records a refused sign-in with its reason (best effort: the refusal itself stands).
pub(crate) async fn audit_refusal(
    state: &AppState,
    account_id: Option<i64>,
    actor: &str,
    e: &Error,
) {
    let reason = match e.public_messages() {
        Some(m) => m.join("; "),
        None => "internal error".to_string(),
    };
    let ev = NewEvent::refused(account_id, actor, AUDIT_SIGNIN, reason);
    let now = state.now();
    if let Err(err) = state.db.write(move |tx| audit::record(tx, &ev, now)).await {
        tracing::warn!(error = %err, "could not record a refused sign-in");
    }
}

#[instrument(skip_all)]
async fn post_authenticate(State(state): State<AppState>, f: Fields) -> Result<Json<Value>> {
    let identifier = f.req_str("Identifier", 256)?;
    let code = f
        .opt_str("AuthorizationCode")?
        .ok_or_else(|| Error::invalid("AuthorizationCode is required"))?;
    check_text("AuthorizationCode", &code, MAX_CODE)?;
    let callback = f.req_str("CallbackUrl", MAX_URL)?;
    let signed_in = authenticate(&state, &identifier, &Secret::new(code.trim()), &callback).await?;
    Ok(Json(Value::String(signed_in.token.expose().to_string())))
}

// ------------------------------------------------------------------------------------------
// The desktop shell's own login

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
        DesktopCallback::DeepLink => format!("{}://sso/callback", callback_urls::DEEP_LINK_SCHEME),
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
        result.as_ref().map(Clone::clone).map_err(|e| {
            e.public_messages()
                .map(|m| m.join("; "))
                .unwrap_or_else(|| "internal error".into())
        }),
    );
    result
}

/// Completes a desktop login from the `amove://sso/callback?code=…&state=…` deep link the
/// shell received (or `…?error=…&state=…`).
pub async fn complete_from_deep_link(state: &AppState, link: &str) -> Result<DesktopSession> {
    let url =
        Url::parse(link.trim()).map_err(|_| Error::invalid("the deep link is not a valid URL"))?;
    if url.scheme() != callback_urls::DEEP_LINK_SCHEME {
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
    complete_desktop_login(state, oauth_state, outcome).await
}

/// "The identity provider refused the sign-in: error (description)", cleaned.
fn idp_refusal(error: &str, description: Option<&str>) -> String {
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

// ------------------------------------------------------------------------------------------
// GET /sso/callback: the agent's own redirect target

const PAGE_STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2330;\
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}\
main{background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:2rem 2.5rem;\
max-width:36rem}h1{font-size:1.3rem;margin:0 0 1rem}.ok{color:#17753b}.err{color:#b3261e}\
code{display:block;background:#eef0f4;border-radius:6px;padding:.6rem .8rem;margin:.3rem 0 1rem;\
word-break:break-all;font:14px ui-monospace,monospace;user-select:all}p{margin:.5rem 0}";

pub(crate) fn esc(s: &str) -> String {
    html_escape::encode_safe(s).into_owned()
}

/// A small self-contained page with a strict CSP (no scripts, no external anything; the
/// one inline style is allowed by its hash).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{PAGE_STYLE}</style></head><body><main>{body}</main></body></html>",
        esc(title)
    );
    let style_hash = base64::engine::general_purpose::STANDARD.encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(PAGE_STYLE),
    ));
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in failed",
        &format!(
            "<h1 class=\"err\">Sign-in failed</h1><p>{}</p><p>You can close this window and try \
             again.</p>",
            esc(message)
        ),
    )
}

#[instrument(skip_all)]
async fn get_callback(State(state): State<AppState>, q: QueryParams) -> Response {
    let Some(oauth_state) = q.get("state").filter(|s| !s.is_empty() && s.len() <= 256) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The identity provider sent the browser back without the sign-in's state. Start again.",
        );
    };
    let idp_error = q
        .get("error")
        .map(|e| idp_refusal(e, q.get("error_description")));
    let code = q
        .get("code")
        .filter(|c| !c.is_empty() && c.len() <= MAX_CODE);
    let s = oauth_state.to_string();
    let t = match state.db.read(move |c| transactions::by_state(c, &s)).await {
        Ok(Some(t)) if !t.is_expired(state.now()) => t,
        Ok(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in is unknown or has expired (sign-ins must be completed within 10 \
                 minutes). Start again.",
            );
        }
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &internal_text(&e)),
    };
    if t.client == Client::Desktop {
        let outcome = match (code, idp_error) {
            (_, Some(err)) => Err(err),
            (Some(c), None) => Ok(Secret::new(c)),
            (None, None) => Err("The identity provider sent no authorization code.".into()),
        };
        return match complete_desktop_login(&state, oauth_state, outcome).await {
            Ok(s) => page(
                StatusCode::OK,
                "Signed in",
                &format!(
                    "<h1 class=\"ok\">You are signed in</h1><p>Signed in to Amove as \
                     <b>{}</b> ({}).</p><p>You can close this window.</p>",
                    esc(&s.display_name),
                    esc(&s.username)
                ),
            ),
            Err(e) => error_page(StatusCode::BAD_REQUEST, &internal_text(&e)),
        };
    }
    // An API client passed this URL: show what to copy back; redeem nothing.
    if t.consumed_at.is_some() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in was already completed. Start again if you need to sign in.",
        );
    }
    if let Some(err) = idp_error {
        return error_page(StatusCode::BAD_REQUEST, &err);
    }
    let Some(code) = code else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no authorization code. Start again.",
        );
    };
    let identifier = t.handle_enc.as_deref().and_then(|h| {
        state
            .sealer
            .open_secret(h, &seal_context(&t.handle_hash, "handle"))
            .ok()
    });
    let identifier_html = match identifier {
        Some(i) => format!(
            "<p>Identifier</p><code id=\"identifier\">{}</code>",
            esc(i.expose())
        ),
        None => String::new(),
    };
    page(
        StatusCode::OK,
        "Almost signed in",
        &format!(
            "<h1 class=\"ok\">Almost done</h1><p>Copy the authorization code into the \
             application that started this sign-in (it calls <b>/sso/authenticate</b>). It \
             works once, within 10 minutes.</p><p>Authorization code</p>\
             <code id=\"code\">{}</code>{identifier_html}",
            esc(code)
        ),
    )
}

fn internal_text(e: &Error) -> String {
    e.public_messages()
        .map(|m| m.join("; "))
        .unwrap_or_else(|| "Something went wrong in the agent; see its log.".into())
}

// ------------------------------------------------------------------------------------------
// POST /sso/test_connection?provider=okta|entraId

async fn post_test_connection(
    State(state): State<AppState>,
    Admin(p): Admin,
    q: QueryParams,
) -> Result<Json<Value>> {
    let provider = q.get("provider").unwrap_or("");
    let kind = match provider.to_ascii_lowercase().as_str() {
        "okta" => Kind::Okta,
        "entraid" | "entra" => Kind::Entra,
        "saml" => return crate::api::saml::test_connection(&state, &p).await,
        _ => {
            return Err(Error::invalid(
                "provider must be okta, entraId or saml (query parameter)",
            ));
        }
    };
    let aid = p.account_id();
    let config = state
        .db
        .read(move |c| idp::get(c, aid, kind))
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "there is no {} configuration to test; set one up first",
                kind.label()
            ))
        })?;
    let mut checks = vec![Check::pass(
        "Configuration",
        format!(
            "ClientId {}, {}",
            config.client_id.as_deref().unwrap_or(""),
            if config.active {
                "active"
            } else {
                "not active"
            }
        ),
    )];
    checks.push(match crate::api::idp::client_secret(&state, &config) {
        Ok(_) => Check::pass("Client secret", "stored and readable"),
        Err(_) => Check::fail(
            "Client secret",
            "the stored secret cannot be read; set it again",
        ),
    });
    let openid_url = config.openid_url.clone().unwrap_or_default();
    checks.extend(
        state
            .oidc
            .check_connection(&openid_url, kind, state.now())
            .await,
    );
    let ok = checks.iter().all(|c| c.ok);
    Ok(Json(json!({ "Ok": ok, "Checks": checks })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_everything_and_carry_a_strict_csp() {
        let resp = error_page(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        let csp = resp
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!csp.contains("unsafe"));
        assert_eq!(resp.headers()[header::REFERRER_POLICY], "no-referrer");
    }

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(esc("<b>&"), "&lt;b&gt;&amp;");
        assert!(!esc("\"'").contains(['"', '\'']));
    }
}
