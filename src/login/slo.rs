//! SAML single logout: the LogoutRequest sign-out sends to the IdP, and the agent's SLO
//! endpoint (`/sso/saml/slo`, HTTP-Redirect), which takes the IdP's LogoutResponse (the answer
//! to a sign-out the agent sent) and an IdP-initiated LogoutRequest (which ends the matching
//! sessions and is answered with a LogoutResponse). Both must be signed by the IdP
//! (docs/saml.md): a logout message nobody vouches for is refused.

use url::Url;

use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::login::session::{SamlSession, session_index_hash};
use crate::login::{idp_config, sp_keys};
use crate::sso::saml::logout::{
    self, Incoming, LogoutName, LogoutSubject, RawQuery, STATUS_SUCCESS,
};
use crate::sso::saml::sp_keys::KeyUse;
use crate::sso::saml::{CLOCK_SKEW_SECS, SpConfig};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::grants::{self, Grant};
use crate::store::idp::{self, IdpConfig, Kind};
use crate::store::tokens;

/// The path of the agent's SAML single logout endpoint.
pub const SLO_PATH: &str = "/sso/saml/slo";
/// How old an IdP's LogoutRequest may be.
const MAX_REQUEST_AGE_SECS: i64 = 10 * 60;

/// The agent's SLO endpoint, as the SP metadata publishes it.
pub fn slo_url(state: &AppState) -> String {
    format!("{}{SLO_PATH}", state.base_url())
}

fn seal_context(grant_id: i64) -> String {
    format!("session_grants:{grant_id}:saml_logout")
}

/// The LogoutRequest of a SAML session's sign-out, for the HTTP-Redirect binding, and its ID;
/// `None` when the IdP has no single logout service (`IdPSLOURL`) or the session kept no
/// NameID.
pub(crate) async fn logout_request(
    state: &AppState,
    g: &Grant,
    config: &IdpConfig,
    relay_state: &str,
    now: i64,
) -> Result<Option<(Url, String)>> {
    let (Some(slo), Some(sealed), Some(sp)) = (
        config.idp_slo_url.as_deref(),
        g.saml_logout_enc.as_deref(),
        config.sp_entity_id.as_deref(),
    ) else {
        return Ok(None);
    };
    let json = state.sealer.open_secret(sealed, &seal_context(g.id))?;
    let s: SamlSession = serde_json::from_str(json.expose())
        .map_err(|e| Error::internal(format!("stored SAML session: {e}")))?;
    let key = match config.sign_authn_requests {
        true => Some(sp_keys::signing_key(state, config.account_id).await?),
        false => None,
    };
    let who = LogoutSubject {
        name_id: s.name_id,
        format: s.name_id_format,
        name_qualifier: s.name_qualifier,
        sp_name_qualifier: s.sp_name_qualifier,
        session_index: s.session_index,
    };
    let m = logout::logout_request(
        sp,
        slo,
        &who,
        relay_state,
        now,
        key.as_deref().map(|k| &k.private),
    )
    .map_err(Error::internal)?;
    let url = Url::parse(&m.url).map_err(|_| Error::internal("LogoutRequest URL"))?;
    Ok(Some((url, m.id)))
}

/// What the SLO endpoint does with a message.
#[derive(Debug)]
pub enum SloOutcome {
    /// The IdP confirmed the agent's sign-out: show the signed-out page.
    SignedOut,
    /// The IdP ended sessions here: send the browser back with this LogoutResponse.
    Answer(Url),
}

/// Handles what the IdP sent to the SLO endpoint (the raw query, as its signature covers it).
/// Every refusal is `SECURITY` (or `DEFAULT` for a malformed query), audited when the account
/// is known.
pub async fn handle(state: &AppState, query: Option<&str>) -> Result<SloOutcome> {
    let raw = query.unwrap_or("");
    let q = RawQuery::parse(raw).map_err(Error::invalid)?;
    let message = q.message().map_err(Error::invalid)?;
    match message {
        Incoming::Response(r) => logout_response(state, &q, r).await,
        Incoming::Request(r) => idp_logout_request(state, &q, r).await,
    }
}

fn refused(why: impl std::fmt::Display) -> Error {
    Error::Security(format!("the logout message was refused: {why}"))
}

/// The IdP's certificates of a configuration (expired ones only where the admin allowed).
fn trust(state: &AppState, config: &IdpConfig) -> Result<SpConfig> {
    idp_config::sp_config(state, config)
}

async fn logout_response(
    state: &AppState,
    q: &RawQuery<'_>,
    r: logout::LogoutResponse,
) -> Result<SloOutcome> {
    let now = state.now();
    let Some(in_response_to) = r.in_response_to.clone().filter(|i| i.len() <= 256) else {
        return Err(refused(
            "the LogoutResponse answers no request (no InResponseTo)",
        ));
    };
    let id = in_response_to.clone();
    let Some(pending) = state
        .db
        .read(move |c| grants::logout_by_request(c, &id, now))
        .await?
    else {
        return Err(refused(
            "the LogoutResponse answers no sign-out the agent sent (unknown, completed or \
             expired InResponseTo)",
        ));
    };
    let (aid, cid) = (pending.account_id, pending.idp_config_id);
    let config = state
        .db
        .read(move |c| idp::get(c, aid, Kind::Saml))
        .await?
        .filter(|c| c.id == cid)
        .ok_or_else(|| refused("the SAML configuration changed since the sign-out"))?;
    let result = check_response(state, q, &r, &config, &pending);
    let ev = match &result {
        Ok(()) => NewEvent::ok(
            Some(aid),
            "anonymous",
            "signout",
            "the IdP confirmed the SAML single logout".to_string(),
        ),
        Err(e) => NewEvent::refused(Some(aid), "anonymous", "signout", e.user_text()),
    };
    let (hash, ok) = (pending.state_hash.clone(), result.is_ok());
    state
        .db
        .write(move |tx| {
            if ok {
                grants::take_logout(tx, &hash, now)?;
            }
            audit::record(tx, &ev, now)
        })
        .await?;
    result.map(|()| SloOutcome::SignedOut)
}

fn check_response(
    state: &AppState,
    q: &RawQuery<'_>,
    r: &logout::LogoutResponse,
    config: &IdpConfig,
    pending: &grants::PendingLogout,
) -> Result<()> {
    q.verify(&trust(state, config)?.certificates)
        .map_err(refused)?;
    check_issuer(r.issuer.as_deref(), config)?;
    check_destination(state, r.destination.as_deref())?;
    if q.relay_state().map(|s| sha256_hex(&s)).as_deref() != Some(pending.state_hash.as_str()) {
        return Err(refused("its RelayState is not the one of the sign-out"));
    }
    match r.status.as_deref() {
        Some(STATUS_SUCCESS) => Ok(()),
        other => Err(refused(format!(
            "the IdP did not confirm the sign-out (status {}); you are signed out of Amove, \
             but maybe not of the identity provider",
            crate::text::truncate(other.unwrap_or("none"), 120)
        ))),
    }
}

fn check_issuer(issuer: Option<&str>, config: &IdpConfig) -> Result<()> {
    match (&config.idp_entity_id, issuer) {
        (Some(want), Some(got)) if want == got => Ok(()),
        (Some(want), got) => Err(refused(format!(
            "its Issuer '{}' is not the IdP's '{want}'",
            crate::text::truncate(got.unwrap_or("none"), 120)
        ))),
        (None, _) => Ok(()),
    }
}

fn check_destination(state: &AppState, destination: Option<&str>) -> Result<()> {
    let want = slo_url(state);
    match destination {
        None => Ok(()),
        Some(d) if d == want => Ok(()),
        Some(d) => Err(refused(format!(
            "its Destination '{}' is not this agent's SLO endpoint ({want})",
            crate::text::truncate(d, 120)
        ))),
    }
}

async fn idp_logout_request(
    state: &AppState,
    q: &RawQuery<'_>,
    r: logout::IdpLogoutRequest,
) -> Result<SloOutcome> {
    let now = state.now();
    let Some(issuer) = r.issuer.clone() else {
        return Err(refused("the LogoutRequest names no Issuer"));
    };
    if !q.is_signed() {
        return Err(refused(
            "the LogoutRequest is not signed (the agent ends sessions only for a signed one)",
        ));
    }
    // The IdP is whichever SAML configuration naming this Issuer (or none) verifies it.
    let candidates = state.db.read(|c| idp::all_of_kind(c, Kind::Saml)).await?;
    let mut config = None;
    for c in candidates
        .into_iter()
        .filter(|c| c.idp_entity_id.as_deref().is_none_or(|e| e == issuer))
    {
        if let Ok(t) = trust(state, &c)
            && q.verify(&t.certificates).is_ok()
        {
            config = Some((c, t));
            break;
        }
    }
    let Some((config, sp)) = config else {
        return Err(refused(
            "its signature does not verify with the certificate of any IdP configured here",
        ));
    };
    let aid = config.account_id;
    let mut sp = sp;
    if matches!(r.name, LogoutName::Encrypted(_)) {
        let keys = sp_keys::in_force(state, aid, KeyUse::Encryption).await?;
        sp.decryption_keys = keys.iter().map(|k| k.private.clone()).collect();
    }
    // Signed, so its EncryptedID (if that is how it names the principal) may be decrypted.
    let who = match check_request(state, &r, now).and_then(|()| r.subject(&sp).map_err(refused)) {
        Ok(who) => who,
        Err(e) => {
            let ev = NewEvent::refused(Some(aid), "anonymous", "signout", e.user_text());
            state
                .db
                .write(move |tx| audit::record(tx, &ev, now))
                .await?;
            return Err(e);
        }
    };
    let Some(slo) = config.idp_slo_url.clone() else {
        return Err(refused(
            "the SAML configuration has no IdPSLOURL to answer the IdP at; an admin sets it (or \
             the IdP's metadata)",
        ));
    };
    // The request's ID is remembered like an assertion's: a replayed one ends nothing twice.
    let (rid, iss) = (r.id.clone(), issuer.clone());
    state
        .db
        .write(move |tx| {
            crate::store::replay::remember(
                tx,
                &iss,
                &format!("logout:{rid}"),
                now + MAX_REQUEST_AGE_SECS + CLOCK_SKEW_SECS,
                now,
            )
        })
        .await
        .map_err(|e| match e {
            Error::Security(_) => refused("this LogoutRequest was received already (replay)"),
            other => other,
        })?;
    let ended = end_sessions(state, aid, &issuer, &who, &r.session_indexes, now).await?;
    tracing::info!(ended, "SAML single logout from the IdP");
    let key = match config.sign_authn_requests {
        true => Some(sp_keys::signing_key(state, aid).await?),
        false => None,
    };
    let sp = config.sp_entity_id.clone().unwrap_or_default();
    let m = logout::logout_response(
        &sp,
        &slo,
        &r.id,
        &q.relay_state().unwrap_or_default(),
        now,
        key.as_deref().map(|k| &k.private),
    )
    .map_err(Error::internal)?;
    let url = Url::parse(&m.url).map_err(|_| Error::internal("LogoutResponse URL"))?;
    Ok(SloOutcome::Answer(url))
}

fn check_request(state: &AppState, r: &logout::IdpLogoutRequest, now: i64) -> Result<()> {
    check_destination(state, r.destination.as_deref())?;
    match r.issue_instant {
        Some(t) if t > now + CLOCK_SKEW_SECS => {
            return Err(refused("it was issued in the future (IssueInstant)"));
        }
        Some(t) if t.saturating_add(MAX_REQUEST_AGE_SECS + CLOCK_SKEW_SECS) < now => {
            return Err(refused("it was issued too long ago (IssueInstant)"));
        }
        Some(_) => {}
        None => return Err(refused("it has no readable IssueInstant")),
    }
    if r.not_on_or_after
        .is_some_and(|t| t.saturating_add(CLOCK_SKEW_SECS) <= now)
    {
        return Err(refused("it has expired (NotOnOrAfter)"));
    }
    Ok(())
}

/// Ends the sessions of `who` at `issuer` in account `aid` (only those of the request's
/// `session_indexes` when it names any): revoked with the access tokens minted from them,
/// audited.
async fn end_sessions(
    state: &AppState,
    aid: i64,
    issuer: &str,
    who: &LogoutSubject,
    session_indexes: &[String],
    now: i64,
) -> Result<usize> {
    let (iss, subject) = (issuer.to_string(), who.name_id.clone());
    let hashes: Vec<String> = session_indexes
        .iter()
        .map(|s| session_index_hash(s))
        .collect();
    let label = who.name_id.clone();
    let ended = state
        .db
        .write(move |tx| {
            let mut ended = Vec::new();
            if hashes.is_empty() {
                ended = grants::take_by_subject(tx, aid, &iss, &subject, None)?;
            }
            for h in &hashes {
                ended.extend(grants::take_by_subject(tx, aid, &iss, &subject, Some(h))?);
            }
            for g in &ended {
                tokens::revoke_minted_by(tx, &g.jti, now)?;
            }
            let detail = format!(
                "the IdP ended {} session(s) of {} (SAML single logout)",
                ended.len(),
                crate::text::truncate(&label, 120)
            );
            audit::record(tx, &NewEvent::ok(Some(aid), &label, "signout", detail), now)?;
            Ok(ended)
        })
        .await?;
    for g in &ended {
        state
            .auth
            .revoke_session(&g.jti, g.jwt_expires_at.max(now + 1))
            .await?;
    }
    Ok(ended.len())
}
