//! The SAML Assertion Consumer Service's work: the response posted for a sign-in this agent
//! started (found by its `RelayState`) is validated fail-closed (`sso::saml`), its assertion
//! id remembered against replay, and a one-time code issued for the transaction; the browser
//! goes on to the transaction's callback URL with that code and the `state`. Also the SP
//! metadata admins register. Every refusal is recorded in the audit trail.

use url::Url;

use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use crate::login::idp_config::{acs_url, sp_config};
use crate::login::{audit_refusal, seal_context, sp_keys};
use crate::secret::Secret;
use crate::sso::saml;
use crate::sso::saml::sp_keys::KeyUse;
use crate::state::AppState;
use crate::store::idp::{self, Kind};
use crate::store::{accounts, replay, transactions};

/// How long the one-time code the ACS issues can be redeemed.
pub const CODE_TTL_SECS: i64 = 120;

/// What the IdP's page posted to the ACS (each field at most once; the HTTP layer checks the
/// form itself).
#[derive(Debug, Default)]
pub struct AcsPost {
    /// `SAMLResponse`, base64.
    pub saml_response: Option<String>,
    /// `RelayState`: the `state` of the transaction the response answers.
    pub relay_state: Option<String>,
}

/// A refusal with who it concerns: (account, actor, error).
type AcsFailure = (Option<i64>, String, Error);

/// Validates a posted response; on success returns where to send the browser: the
/// transaction's callback URL with a one-time `code` and the `state`. A refusal is recorded in
/// the audit trail and issues no code.
pub async fn receive(state: &AppState, post: AcsPost) -> Result<Url> {
    match validate_and_issue(state, post).await {
        Ok(url) => Ok(url),
        Err((account, actor, e)) => {
            audit_refusal(state, account, &actor, &e).await;
            Err(e)
        }
    }
}

async fn validate_and_issue(
    state: &AppState,
    post: AcsPost,
) -> std::result::Result<Url, AcsFailure> {
    let anon = |e: Error| (None, "anonymous".to_string(), e);
    let (response, relay) = (post.saml_response, post.relay_state);
    let response = response
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anon(Error::invalid("SAMLResponse is missing")))?;
    let relay = relay.filter(|r| !r.is_empty() && r.len() <= 256).ok_or_else(|| {
        anon(Error::Security(
            "it carries no RelayState of a sign-in started by this agent (unsolicited responses are refused)".into(),
        ))
    })?;
    let now = state.now();
    let r = relay.clone();
    let t = state
        .db
        .read(move |c| transactions::by_state(c, &r))
        .await
        .map_err(anon)?
        .filter(|t| t.provider == Kind::Saml)
        .ok_or_else(|| {
            anon(Error::Security(
                "it does not answer a sign-in started by this agent (unknown RelayState; unsolicited responses are refused)".into(),
            ))
        })?;
    let fail = |e: Error| (Some(t.account_id), t.login_hint.clone(), e);
    if t.consumed_at.is_some() || t.code_hash.is_some() {
        return Err(fail(Error::Security(
            "this sign-in was already answered; start again".into(),
        )));
    }
    if t.is_expired(now) {
        return Err(fail(Error::Security(
            "this sign-in has expired (10 minutes); start again".into(),
        )));
    }
    let aid = t.account_id;
    let config = state
        .db
        .read(move |c| idp::get(c, aid, Kind::Saml))
        .await
        .map_err(fail)?
        // The very configuration the sign-in started with, and still active.
        .filter(|c| t.started_with(c) && c.active)
        .ok_or_else(|| {
            fail(Error::Sso(
                "the SAML configuration changed since this sign-in started; start again".into(),
            ))
        })?;
    let mut sp = sp_config(state, &config).map_err(fail)?;
    sp.decryption_keys = sp_keys::in_force(state, config.account_id, KeyUse::Encryption)
        .await
        .map_err(fail)?
        .iter()
        .map(|k| k.private.clone())
        .collect();
    // A SAML transaction always has its AuthnRequest's ID; never compare with "" instead.
    let request_id = t
        .saml_request_id
        .clone()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            fail(Error::Security(
                "this sign-in sent no AuthnRequest, so no response can answer it".into(),
            ))
        })?;
    // Signature verification and parsing are CPU work in libxmlsec: off the async workers.
    let identity = tokio::task::spawn_blocking(move || {
        saml::validate_response(&sp, &response, &request_id, now)
    })
    .await
    .map_err(|e| fail(Error::internal(format!("SAML validation task: {e}"))))?
    .map_err(|msg| {
        // The IdP may have switched keys: read its metadata again (rate-limited).
        if msg == saml::SIGNATURE_INVALID {
            crate::login::idp_metadata::refresh_after_signature_failure(state, &config);
        }
        fail(Error::Security(msg))
    })?;

    let code = random_token().map_err(fail)?;
    let code_hash = sha256_hex(&code);
    let result = serde_json::to_string(&identity).map_err(|e| fail(Error::internal(e)))?;
    let sealed = state
        .sealer
        .seal_secret(
            &Secret::new(result),
            &seal_context(&t.handle_hash, "saml_result"),
        )
        .map_err(fail)?;
    let (key, issuer, assertion_id, until) = (
        t.key(),
        identity.issuer.clone(),
        identity.assertion_id.clone(),
        identity.replayable_until,
    );
    state
        .db
        .write(move |tx| {
            replay::remember(tx, &issuer, &assertion_id, until, now)?;
            transactions::set_code(tx, &key, &code_hash, now + CODE_TTL_SECS, Some(&sealed))
        })
        .await
        .map_err(fail)?;
    let mut url =
        Url::parse(&t.callback_url).map_err(|_| fail(Error::internal("stored callback URL")))?;
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &t.state);
    Ok(url)
}

/// The SP metadata XML of account `ident`'s SAML configuration (public by nature: IdPs fetch
/// it).
pub async fn sp_metadata(state: &AppState, ident: &str) -> Result<String> {
    let ident = ident.trim().to_lowercase();
    let i = ident.clone();
    let config = state
        .db
        .read(move |c| {
            let Some(a) = accounts::by_identifier(c, &i)? else { return Ok(None) };
            idp::get(c, a.id, Kind::Saml)
        })
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "account '{}' has no SAML configuration; an admin sets SPEntityId with /sso/setup_saml first",
                crate::text::truncate(&ident, 64)
            ))
        })?;
    let mut m = saml::SpMetadata {
        entity_id: config.sp_entity_id.clone().unwrap_or_default(),
        acs_url: acs_url(state),
        slo_url: crate::login::slo::slo_url(state),
        authn_requests_signed: config.sign_authn_requests,
        signing_certificates: Vec::new(),
        encryption_certificates: Vec::new(),
    };
    // Keys are generated on first use: only a configuration that signs publishes (and so
    // creates) a signing key.
    if config.sign_authn_requests {
        let keys = sp_keys::in_force(state, config.account_id, KeyUse::Signing).await?;
        m.signing_certificates = keys.iter().map(|k| k.certificate_pem.clone()).collect();
    }
    // The encryption certificate is always published: an IdP that reads the metadata may
    // encrypt (ADFS does so by itself), and the ACS decrypts.
    let keys = sp_keys::in_force(state, config.account_id, KeyUse::Encryption).await?;
    m.encryption_certificates = keys.iter().map(|k| k.certificate_pem.clone()).collect();
    Ok(saml::sp_metadata(&m))
}
