//! The SAML Assertion Consumer Service's work: the response posted for a sign-in this agent
//! started (found by its `RelayState`) is validated fail-closed (`sso::saml`), its assertion
//! id remembered against replay, and a one-time code issued for the transaction; the browser
//! goes on to the transaction's callback URL with that code and the `state`. Also the SP
//! metadata admins register. Every refusal is recorded in the audit trail.

use url::Url;

use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use std::sync::Arc;

use crate::login::cache::{active_config, cached_active_config};
use crate::login::idp_config::{acs_url, sp_config};
use crate::login::{audit_refusal, seal_context, sp_keys};
use crate::secret::Secret;
use crate::sso::saml;
use crate::sso::saml::sp_keys::KeyUse;
use crate::state::AppState;
use crate::store::idp::{self, IdpConfig, Kind};
use crate::store::transactions::Transaction;
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
    // One blocking job reads the transaction and, when the sign-in caches hold its account's
    // configuration and keys (every sign-in but the first after a configuration change),
    // validates the response as well: signature checks are CPU work in libxmlsec, off the
    // async workers, and queued for a core (`cpu`).
    let cpu = crate::cpu::admit().await.map_err(anon)?;
    let job = state.clone();
    let first = state
        .db
        .read_then(
            move |c| transactions::by_state(c, &relay),
            move |t| -> std::result::Result<First, AcsFailure> {
                let t = pending_saml(t, now)?;
                let (Some(config), Some(keys)) = (
                    cached_active_config(&job, t.account_id),
                    sp_keys::cached_in_force(&job, t.account_id, KeyUse::Encryption),
                ) else {
                    return Ok(First::Uncached(t, response));
                };
                let config = same_config(&t, config)?;
                let (sp, request_id) = validation_inputs(&job, &t, &config, &keys)?;
                let identity = saml::validate_response(&sp, &response, &request_id, now);
                Ok(First::Validated(t, config, Box::new(identity)))
            },
        )
        .await
        .map_err(anon)??;
    drop(cpu);
    let (t, config, identity) = match first {
        First::Validated(t, config, identity) => (t, config, *identity),
        // The caches are filled asynchronously (the keys may have to be made), then the
        // response is validated in a job of its own.
        First::Uncached(t, response) => {
            let config = same_config(
                &t,
                active_config(state, t.account_id)
                    .await
                    .map_err(|e| failure(&t, e))?,
            )?;
            let keys = sp_keys::in_force(state, t.account_id, KeyUse::Encryption)
                .await
                .map_err(|e| failure(&t, e))?;
            let (sp, request_id) = validation_inputs(state, &t, &config, &keys)?;
            let identity = crate::cpu::run("SAML validation task", move || {
                saml::validate_response(&sp, &response, &request_id, now)
            })
            .await
            .map_err(|e| failure(&t, e))?;
            (t, config, identity)
        }
    };
    let fail = |e: Error| failure(&t, e);
    let identity = identity.map_err(|msg| {
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
    // The replay cache and the login transaction are read by nothing cached in memory, so
    // the write leaves the caches' epoch (and `sso_url`'s cached configurations) as they are.
    state
        .db
        .write_uncached(move |tx| {
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

/// What the ACS's first blocking job found.
enum First {
    /// The transaction, its configuration (from the caches) and the validation's outcome
    /// (boxed: the variants' sizes would differ by the identity's).
    Validated(
        Transaction,
        Arc<IdpConfig>,
        Box<std::result::Result<saml::SamlIdentity, String>>,
    ),
    /// The pending transaction, and the response still to validate: the caches did not hold
    /// the account's configuration or keys.
    Uncached(Transaction, String),
}

/// A refusal concerning transaction `t`'s account and sign-in.
fn failure(t: &Transaction, e: Error) -> AcsFailure {
    (Some(t.account_id), t.login_hint.clone(), e)
}

/// The SAML sign-in the `RelayState` names, still waiting for its answer at `now`.
fn pending_saml(t: Option<Transaction>, now: i64) -> std::result::Result<Transaction, AcsFailure> {
    let t = t.filter(|t| t.provider == Kind::Saml).ok_or_else(|| {
        (
            None,
            "anonymous".to_string(),
            Error::Security(
                "it does not answer a sign-in started by this agent (unknown RelayState; unsolicited responses are refused)".into(),
            ),
        )
    })?;
    if t.consumed_at.is_some() || t.code_hash.is_some() {
        return Err(failure(
            &t,
            Error::Security("this sign-in was already answered; start again".into()),
        ));
    }
    if t.is_expired(now) {
        return Err(failure(
            &t,
            Error::Security("this sign-in has expired (10 minutes); start again".into()),
        ));
    }
    Ok(t)
}

/// The account's active configuration (cached for the write epoch, as `sso_url` reads it),
/// which must be the very SAML configuration the sign-in started with.
fn same_config(
    t: &Transaction,
    config: Option<Arc<IdpConfig>>,
) -> std::result::Result<Arc<IdpConfig>, AcsFailure> {
    config
        .filter(|c| c.kind == Kind::Saml && t.started_with(c) && c.active)
        .ok_or_else(|| {
            failure(
                t,
                Error::Sso(
                    "the SAML configuration changed since this sign-in started; start again".into(),
                ),
            )
        })
}

/// What the response is validated against: the SP's side of `config` with the account's
/// decryption `keys`, and the ID of the AuthnRequest the sign-in sent.
fn validation_inputs(
    state: &AppState,
    t: &Transaction,
    config: &IdpConfig,
    keys: &sp_keys::Keys,
) -> std::result::Result<(saml::SpConfig, String), AcsFailure> {
    let mut sp = sp_config(state, config).map_err(|e| failure(t, e))?;
    sp.decryption_keys = keys.iter().map(|k| k.private.clone()).collect();
    // A SAML transaction always has its AuthnRequest's ID; never compare with "" instead.
    let request_id = t
        .saml_request_id
        .clone()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            failure(
                t,
                Error::Security(
                    "this sign-in sent no AuthnRequest, so no response can answer it".into(),
                ),
            )
        })?;
    Ok((sp, request_id))
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
