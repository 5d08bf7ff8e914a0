//! Completing a login (`authenticate`, the agent's own callback, the deep link): the
//! transaction is consumed atomically before anything else, then the code is exchanged (OIDC:
//! PKCE verifier, nonce, client secret; SAML: the one-time code the ACS issued), the identity
//! resolved and linked, the groups synced, and a session minted.

use tracing::instrument;

use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::login::link::link_user;
use crate::login::{audit_refusal, idp_config, seal_context};
use crate::login::{callback, groups, session};
use crate::secret::Secret;
use crate::sso::oidc::{self, CodeExchange, IdpIdentity};
use crate::sso::saml;
use crate::state::AppState;
use crate::store::accounts;
use crate::store::idp::{self, IdpConfig, Kind};
use crate::store::transactions::{self, LOGIN_TTL_SECS, Purpose};
use crate::store::users::User;

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
pub(crate) enum TxRef<'a> {
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

/// The key of the transaction a bound Identifier (see [`callback`]) names, if it was bound
/// to exactly this `code`; otherwise `None` (unknown, like any other bad Identifier).
async fn unbind(
    state: &AppState,
    id: i64,
    bound: &str,
    code: &Secret,
) -> Result<Option<transactions::Key>> {
    let Some(t) = state.db.read(move |c| transactions::by_id(c, id)).await? else {
        return Ok(None);
    };
    let Some(sealed) = t.handle_enc.as_deref() else {
        return Ok(None);
    };
    let handle = state
        .sealer
        .open_secret(sealed, &seal_context(&t.handle_hash, "handle"))?;
    Ok(callback::verify_bound(&handle, bound, code.expose())
        .then(|| transactions::Key::from_identifier(handle.expose()))
        .flatten())
}

pub(crate) async fn complete(state: &AppState, r: TxRef<'_>, code: &Secret) -> Result<SignedIn> {
    let now = state.now();
    let (key, callback) = match r {
        TxRef::Identifier {
            handle,
            callback_url,
        } => (
            // Anything that cannot be one of our handles is simply unknown.
            match callback::bound_id(handle) {
                Some(id) => unbind(state, id, handle, code).await?,
                None => transactions::Key::from_identifier(handle),
            },
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
    let (aid, kind) = (t.account_id, t.provider);
    let config = state
        .db
        .read(move |c| idp::get(c, aid, kind))
        .await?
        .filter(|c| t.started_with(c) && c.active)
        .ok_or_else(|| {
            Error::Sso(
                "the identity provider configuration changed since this sign-in started; start again"
                    .into(),
            )
        })?;
    // The IdP may cap the session it started (SAML SessionNotOnOrAfter).
    let (who, groups, session_cap, kept) = if kind.is_oidc() {
        let s = oidc_exchange(state, t, &config, code, now).await?;
        let g = groups::resolve(state, &config, &s.identity.groups, Some(&s.access_token)).await;
        let kept = session::Kept {
            issuer: s.identity.issuer.clone(),
            subject: s.identity.subject.clone(),
            refresh_token: s.refresh_token,
            id_token: Some(s.id_token),
            saml: None,
        };
        (s.identity, g, None, kept)
    } else {
        let (who, cap, saml_session) = saml_identity(state, t, &config, code, now)?;
        let g = groups::resolve(state, &config, &who.groups, None).await;
        let kept = session::Kept {
            issuer: who.issuer.clone(),
            subject: who.subject.clone(),
            refresh_token: None,
            id_token: None,
            saml: Some(saml_session),
        };
        (who, g, cap, kept)
    };
    let user = link_user(state, t.account_id, who, groups, now).await?;
    let account_identifier = state
        .db
        .read(move |c| accounts::by_id(c, aid))
        .await?
        .map(|a| a.identifier)
        .ok_or_else(|| Error::internal("account vanished"))?;
    let (token, claims) =
        state
            .auth
            .mint_session_until(&user, &account_identifier, kind.as_str(), session_cap)?;
    session::keep(state, &config, user.id, &claims, kept, now).await?;
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
    let secret = idp_config::client_secret(state, config)?;
    let (client_id, openid_url) = idp_config::oidc_client(config)?;
    let signed_in = state
        .oidc
        .sign_in(
            openid_url,
            &CodeExchange {
                kind: config.kind,
                client_id,
                client_secret: secret.as_ref(),
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
/// ACS verified, the session cap its AuthnStatement set and what single logout names.
fn saml_identity(
    state: &AppState,
    t: &transactions::Transaction,
    config: &IdpConfig,
    code: &Secret,
    now: i64,
) -> Result<(IdpIdentity, Option<i64>, session::SamlSession)> {
    let r = saml_result(state, t, code, now)?;
    let cap = r.session_not_on_or_after;
    let saml_session = session::SamlSession {
        name_id: r.name_id.clone(),
        name_id_format: r.name_id_format.clone(),
        name_qualifier: r.name_qualifier.clone(),
        sp_name_qualifier: r.sp_name_qualifier.clone(),
        session_index: r.session_index.clone(),
    };
    let who = IdpIdentity {
        provider: Kind::Saml,
        label: r.name_id.clone(),
        groups: crate::sso::groups::from_saml_attributes(
            &r.attributes,
            config.groups_attribute.as_deref(),
        ),
        issuer: r.issuer,
        subject: r.name_id,
        email: r.email,
    };
    Ok((who, cap, saml_session))
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
