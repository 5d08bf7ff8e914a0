//! A signed-in session after its sign-in: what it keeps of the IdP's answer (the grant,
//! sealed), its renewal (`/sso/refresh`: the refresh token redeemed at the IdP, the user and
//! link checked again, the old session JWT revoked, a new one minted) and where sign-out
//! sends the browser so the IdP's session ends too (`LogoutUrl`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tracing::instrument;
use url::Url;

use crate::auth::session::SessionClaims;
use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use crate::login::{idp_config, session_policy};
use crate::secret::Secret;
use crate::sso::oidc::{RefreshExchange, RefreshFailure};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::grants::{self, Grant, NewGrant, PendingLogout, Secrets};
use crate::store::idp::{self, IdpConfig, Kind};
use crate::store::{accounts, links, users};

/// The audit action of renewals and their refusals.
pub const AUDIT_REFRESH: &str = "session.refresh";

/// The path of the agent's signed-out page (`post_logout_redirect_uri`).
pub const SIGNED_OUT_PATH: &str = "/sso/signed_out";

/// What a sign-in keeps for its session.
#[derive(Debug)]
pub struct Kept {
    /// The IdP's issuer, as the link names it.
    pub issuer: String,
    /// The IdP subject, as the link names it.
    pub subject: String,
    /// OIDC: the refresh token.
    pub refresh_token: Option<Secret>,
    /// OIDC: the ID token.
    pub id_token: Option<Secret>,
    /// SAML: the NameID and SessionIndex a LogoutRequest names.
    pub saml: Option<SamlSession>,
}

/// The SAML session a LogoutRequest names (sealed at rest, never shown).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SamlSession {
    /// The NameID.
    pub name_id: String,
    /// Its Format.
    pub name_id_format: Option<String>,
    /// Its NameQualifier (kept since sessions of 2026-12; older ones have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<String>,
    /// Its SPNameQualifier (as `name_qualifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<String>,
    /// The AuthnStatement's SessionIndex.
    pub session_index: Option<String>,
}

fn context(grant_id: i64, what: &str) -> String {
    format!("session_grants:{grant_id}:{what}")
}

/// SHA-256 of a SAML SessionIndex, which an IdP-initiated LogoutRequest finds its session by.
pub(crate) fn session_index_hash(index: &str) -> String {
    sha256_hex(index)
}

/// Records the grant of a session just minted (`claims`) through configuration `config`,
/// its secrets sealed to it.
pub(crate) async fn keep(
    state: &AppState,
    config: &IdpConfig,
    user_id: i64,
    claims: &SessionClaims,
    kept: Kept,
    now: i64,
) -> Result<()> {
    let new = NewGrant {
        jti: claims.jti.clone(),
        jwt_expires_at: claims.exp,
        account_id: config.account_id,
        user_id,
        provider: config.kind,
        idp_config_id: config.id,
        issuer: kept.issuer,
        subject: kept.subject,
        started_at: now,
        saml_session_hash: kept
            .saml
            .as_ref()
            .and_then(|s| s.session_index.as_deref())
            .map(session_index_hash),
    };
    let saml_json = kept
        .saml
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::internal(format!("SAML session: {e}")))?
        .map(Secret::new);
    let sealer = state.sealer.clone();
    let (rt, idt) = (kept.refresh_token, kept.id_token);
    let aid = config.account_id;
    let started_before =
        now.saturating_sub(session_policy::absolute_lifetime_secs(state, aid).await?);
    state
        .db
        .write(move |tx| {
            // Expired sessions that cannot be renewed are of no use any more.
            grants::purge(tx, now, aid, started_before)?;
            let id = grants::insert(tx, &new)?;
            let seal = |s: &Option<Secret>, what: &str| {
                s.as_ref()
                    .map(|s| sealer.seal_secret(s, &context(id, what)))
                    .transpose()
            };
            let secrets = Secrets {
                refresh_token_enc: seal(&rt, "refresh_token")?,
                id_token_enc: seal(&idt, "id_token")?,
                saml_logout_enc: seal(&saml_json, "saml_logout")?,
            };
            grants::set_secrets(tx, id, &secrets)
        })
        .await
}

/// One lock per grant, so concurrent renewals of one session redeem its refresh token once:
/// the second waits, then finds its session renewed already and is refused.
#[derive(Default)]
pub struct RefreshLocks(Mutex<HashMap<i64, Weak<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn lock_for(&self, grant_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        // A panic while holding the lock leaves a consistent map behind.
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(&grant_id).and_then(Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(grant_id, Arc::downgrade(&l));
        l
    }
}

/// A refused renewal: 401 `TOKEN`, saying to sign in again.
fn refused(why: &str) -> Error {
    Error::Token(format!("{why}; sign in again"))
}

/// Renews the session of `token` (a session JWT, expired or not): see the module docs and
/// docs/sessions.md. Answers the new session JWT; a refusal is 401 `TOKEN` and drops the
/// refresh token; an IdP that cannot be reached is 499 `SSO` and keeps it.
#[instrument(skip_all)]
pub async fn refresh(state: &AppState, token: &Secret) -> Result<Secret> {
    let claims = state.auth.session_claims_any_age(token.expose())?;
    let result = refresh_session(state, &claims).await;
    if let Err(e) = &result {
        let ev = NewEvent::refused(
            Some(claims.aid),
            &claims.email,
            AUDIT_REFRESH,
            e.user_text(),
        );
        let now = state.now();
        if let Err(err) = state.db.write(move |tx| audit::record(tx, &ev, now)).await {
            tracing::warn!(error = %err, "could not record a refused session renewal");
        }
    }
    result
}

async fn grant_of(state: &AppState, jti: &str) -> Result<Option<Grant>> {
    let j = jti.to_string();
    state.db.read(move |c| grants::by_jti(c, &j)).await
}

async fn refresh_session(state: &AppState, claims: &SessionClaims) -> Result<Secret> {
    let not_renewable = "this session cannot be renewed: it did not come from a sign-in at an \
                         identity provider, or it was renewed or signed out already";
    let Some(g) = grant_of(state, &claims.jti).await? else {
        return Err(refused(not_renewable));
    };
    // Concurrent renewals of one session: one at a time; the later ones find it renewed.
    let lock = state.refresh_locks.lock_for(g.id);
    let _held = lock.lock().await;
    let Some(g) = grant_of(state, &claims.jti).await? else {
        return Err(refused(not_renewable));
    };
    if g.provider == Kind::Saml {
        return Err(refused(
            "a SAML session cannot be renewed (SAML has no refresh tokens)",
        ));
    }
    let Some(sealed_rt) = g.refresh_token_enc.clone() else {
        return Err(refused(
            "this session cannot be renewed: the identity provider gave no refresh token for it \
             (offline_access not granted), or a renewal was refused before",
        ));
    };
    let now = state.now();
    match check_still_allowed(state, &g, now).await {
        Ok(()) => {}
        Err(e) => {
            drop_refresh_token(state, g.id).await;
            return Err(e);
        }
    }
    let (user, account_identifier, config) = match renewal_context(state, &g).await {
        Ok(c) => c,
        Err(e) => {
            drop_refresh_token(state, g.id).await;
            return Err(e);
        }
    };
    let rt = state
        .sealer
        .open_secret(&sealed_rt, &context(g.id, "refresh_token"))?;
    let secret = idp_config::client_secret(state, &config)?;
    let (client_id, openid_url) = idp_config::oidc_client(&config)?;
    let refreshed = state
        .oidc
        .refresh(
            openid_url,
            &RefreshExchange {
                kind: g.provider,
                client_id,
                client_secret: secret.as_ref(),
                refresh_token: &rt,
                issuer: &g.issuer,
                subject: &g.subject,
                allowed_tenants: &config.allowed_tenants,
                now,
            },
        )
        .await;
    let refreshed = match refreshed {
        Ok(r) => r,
        Err(RefreshFailure::Refused(why)) => {
            drop_refresh_token(state, g.id).await;
            return Err(refused(&format!(
                "the identity provider refused to renew this session ({why})"
            )));
        }
        // Offline or the IdP is down: the session may be renewed once it answers again.
        Err(RefreshFailure::Unavailable(e)) => return Err(e),
    };
    let cap = g
        .started_at
        .saturating_add(session_policy::absolute_lifetime_secs(state, g.account_id).await?);
    let (new_token, new_claims) = state.auth.mint_session_until(
        &user,
        &account_identifier,
        g.provider.as_str(),
        Some(cap),
    )?;
    let seal = |s: &Option<Secret>, what: &str| {
        s.as_ref()
            .map(|s| state.sealer.seal_secret(s, &context(g.id, what)))
            .transpose()
    };
    let rt_enc = seal(&refreshed.refresh_token, "refresh_token")?;
    let idt_enc = seal(&refreshed.id_token, "id_token")?;
    let (old_jti, new_jti, new_exp) = (g.jti.clone(), new_claims.jti.clone(), new_claims.exp);
    let (aid, email, rotated) = (g.account_id, user.email.clone(), rt_enc.is_some());
    let renewed = state
        .db
        .write(move |tx| {
            if !grants::renew(
                tx,
                g.id,
                &old_jti,
                (&new_jti, new_exp),
                rt_enc.as_deref(),
                idt_enc.as_deref(),
                now,
            )? {
                return Ok(false);
            }
            // The access tokens minted from the session stay with it.
            crate::store::tokens::move_minted(tx, &old_jti, &new_jti)?;
            let detail = format!(
                "session renewed at the identity provider{}; valid until {}",
                if rotated {
                    " (refresh token rotated)"
                } else {
                    ""
                },
                crate::clock::rfc3339(new_exp)
            );
            audit::record(
                tx,
                &NewEvent::ok(Some(aid), &email, AUDIT_REFRESH, detail),
                now,
            )?;
            Ok(true)
        })
        .await?;
    if !renewed {
        return Err(refused("this session was renewed or signed out meanwhile"));
    }
    state
        .auth
        .revoke_session(&claims.jti, claims.exp.max(now + 1))
        .await?;
    Ok(Secret::new(new_token))
}

/// The absolute lifetime: renewals end that long after the sign-in.
async fn check_still_allowed(state: &AppState, g: &Grant, now: i64) -> Result<()> {
    let max = session_policy::absolute_lifetime_secs(state, g.account_id).await?;
    if g.started_at.saturating_add(max) <= now {
        return Err(refused(&format!(
            "this session reached its maximum lifetime ({} days since the sign-in)",
            max / 86_400
        )));
    }
    Ok(())
}

/// The user (still active, still linked to the session's IdP identity), their account's
/// identifier and the configuration (still the active one the session came through).
async fn renewal_context(state: &AppState, g: &Grant) -> Result<(users::User, String, IdpConfig)> {
    let (aid, uid, kind, issuer, subject) = (
        g.account_id,
        g.user_id,
        g.provider,
        g.issuer.clone(),
        g.subject.clone(),
    );
    let (user, link, ident, config) = state
        .db
        .read(move |c| {
            Ok((
                users::by_id(c, uid)?,
                links::by_subject(c, aid, &issuer, &subject)?,
                accounts::by_id(c, aid)?.map(|a| a.identifier),
                idp::get(c, aid, kind)?,
            ))
        })
        .await?;
    let Some(user) = user.filter(|u| u.account_id == aid) else {
        return Err(refused("the session's user no longer exists"));
    };
    if user.status != users::Status::Active {
        return Err(refused(&format!(
            "the user {} is inactive; ask an admin",
            user.email
        )));
    }
    if link.is_none_or(|l| l.user_id != user.id) {
        return Err(refused(&format!(
            "{} is no longer linked to the identity the session signed in with",
            user.email
        )));
    }
    let Some(config) = config.filter(|c| c.active && c.id == g.idp_config_id) else {
        return Err(refused(&format!(
            "the account's {} configuration was removed or deactivated since the sign-in",
            kind.label()
        )));
    };
    let ident = ident.ok_or_else(|| Error::internal("account vanished"))?;
    Ok((user, ident, config))
}

async fn drop_refresh_token(state: &AppState, id: i64) {
    if let Err(e) = state
        .db
        .write(move |tx| grants::drop_refresh_token(tx, id))
        .await
    {
        tracing::warn!(error = %e, "could not drop a refused refresh token");
    }
}

/// Ends the grant of session `jti` (sign-out) and answers where to send the browser so the
/// IdP's session ends too: RP-initiated logout (OIDC) or a SAML LogoutRequest; `None` when the
/// session has no IdP sign-in or the IdP offers no logout endpoint. Never fails the sign-out:
/// an IdP that cannot be asked is logged and leaves `None`.
#[instrument(skip_all)]
pub async fn end(state: &AppState, jti: &str) -> Result<Option<Url>> {
    let j = jti.to_string();
    let Some(g) = state
        .db
        .write(move |tx| grants::take_by_jti(tx, &j))
        .await?
    else {
        return Ok(None);
    };
    match logout_url(state, &g).await {
        Ok(u) => Ok(u),
        Err(e) => {
            tracing::warn!(error = %e, "no logout URL for the IdP; the sign-out stays local");
            Ok(None)
        }
    }
}

async fn logout_url(state: &AppState, g: &Grant) -> Result<Option<Url>> {
    let (aid, kind) = (g.account_id, g.provider);
    let Some(config) = state
        .db
        .read(move |c| idp::get(c, aid, kind))
        .await?
        .filter(|c| c.id == g.idp_config_id)
    else {
        return Ok(None);
    };
    let now = state.now();
    let logout_state = random_token()?;
    let (url, request_id) = if kind.is_oidc() {
        match oidc_logout_url(state, g, &config, &logout_state, now).await? {
            Some(u) => (u, None),
            None => return Ok(None),
        }
    } else {
        match crate::login::slo::logout_request(state, g, &config, &logout_state, now).await? {
            Some((u, id)) => (u, Some(id)),
            None => return Ok(None),
        }
    };
    let p = PendingLogout {
        state_hash: sha256_hex(&logout_state),
        account_id: aid,
        provider: kind,
        idp_config_id: config.id,
        request_id,
        expires_at: now.saturating_add(grants::LOGOUT_TTL_SECS),
    };
    state
        .db
        .write(move |tx| grants::insert_logout(tx, &p, now))
        .await?;
    Ok(Some(url))
}

/// RP-initiated logout 1.0: the `end_session_endpoint` with `id_token_hint`,
/// `post_logout_redirect_uri` (the agent's signed-out page), `state` and `client_id`.
async fn oidc_logout_url(
    state: &AppState,
    g: &Grant,
    config: &IdpConfig,
    logout_state: &str,
    now: i64,
) -> Result<Option<Url>> {
    let (Some(openid_url), Some(client_id)) = (&config.openid_url, &config.client_id) else {
        return Ok(None);
    };
    let d = state.oidc.discover(openid_url, config.kind, now).await?;
    let Some(mut url) = d.end_session_endpoint.clone() else {
        return Ok(None);
    };
    let hint = g
        .id_token_enc
        .as_deref()
        .map(|s| state.sealer.open_secret(s, &context(g.id, "id_token")))
        .transpose()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(h) = &hint {
            q.append_pair("id_token_hint", h.expose());
        }
        q.append_pair("post_logout_redirect_uri", &signed_out_url(state))
            .append_pair("state", logout_state)
            .append_pair("client_id", client_id);
    }
    Ok(Some(url))
}

/// The agent's signed-out page, as the IdP must have it registered.
pub fn signed_out_url(state: &AppState) -> String {
    format!("{}{SIGNED_OUT_PATH}", state.base_url())
}

/// What the signed-out page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOut {
    /// The IdP ended its session and sent the browser back with the sign-out's `state`.
    AtIdp(Kind),
}

/// The IdP sent the browser back to the signed-out page: its `state` must be the one of a
/// sign-out the agent sent (single use, 10 minutes), else `SECURITY`.
pub async fn signed_out(state: &AppState, logout_state: Option<&str>) -> Result<SignedOut> {
    let Some(s) = logout_state.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return Err(Error::Security(
            "this page ends a sign-out the agent started, and the identity provider sent no \
             state back"
                .into(),
        ));
    };
    let (hash, now) = (sha256_hex(s), state.now());
    let p = state
        .db
        .write(move |tx| grants::take_logout(tx, &hash, now))
        .await?
        .filter(|p| p.request_id.is_none());
    match p {
        Some(p) => Ok(SignedOut::AtIdp(p.provider)),
        None => Err(Error::Security(
            "this sign-out is unknown, was completed already or has expired".into(),
        )),
    }
}
