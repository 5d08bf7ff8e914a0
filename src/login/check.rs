//! `test_connection`: a dry run of a stored configuration, check by check — the discovery
//! document and JWKS of an OIDC provider (issuer, endpoints, keys), or the SAML certificates
//! (subject, validity, days to expiry) and URLs. Changes nothing.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::login::idp_config::{self, acs_url};
use crate::sso::{cert, oidc::Check};
use crate::state::AppState;
use crate::store::idp::{self, Kind};

/// The outcome of a connection test.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionTest {
    /// Whether every check passed.
    pub ok: bool,
    /// Each check, in order.
    pub checks: Vec<Check>,
}

impl ConnectionTest {
    fn of(checks: Vec<Check>) -> Self {
        Self {
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// The first check of every test: what is configured, and whether it is active.
fn configuration_check(what: String, active: bool) -> Check {
    let state = if active { "active" } else { "not active" };
    Check::pass("Configuration", format!("{what}, {state}"))
}

/// Tests account `aid`'s configuration of `kind`.
pub async fn test_connection(
    state: &AppState,
    aid: i64,
    account_identifier: &str,
    kind: Kind,
) -> Result<ConnectionTest> {
    match kind {
        Kind::Saml => test_saml(state, aid, account_identifier).await,
        Kind::Okta | Kind::Entra => test_oidc(state, aid, kind).await,
    }
}

async fn test_oidc(state: &AppState, aid: i64, kind: Kind) -> Result<ConnectionTest> {
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
    let mut checks = vec![configuration_check(
        format!("ClientId {}", config.client_id.as_deref().unwrap_or("")),
        config.active,
    )];
    checks.push(match idp_config::client_secret(state, &config) {
        Ok(Some(_)) => Check::pass("Client secret", "stored and readable"),
        Ok(None) => Check::pass(
            "Client secret",
            "none: the agent signs in as a public client (PKCE)",
        ),
        Err(_) => Check::fail(
            "Client secret",
            "the stored secret cannot be read; set it again",
        ),
    });
    let openid_url = config.openid_url.clone().unwrap_or_default();
    checks.extend(
        state
            .oidc
            .check_connection(
                &openid_url,
                kind,
                config.client_secret_enc.is_some(),
                state.now(),
            )
            .await,
    );
    Ok(ConnectionTest::of(checks))
}

/// The IdP's metadata, read now (nothing is applied): it must parse, name the configured
/// entity, and publish the certificates in use; what a refresh would change is listed.
async fn metadata_check(
    state: &AppState,
    config: &crate::store::idp::IdpConfig,
    raw: &str,
    now: i64,
) -> Check {
    const NAME: &str = "IdP metadata";
    let url = match crate::sso::urls::parse_idp_url("IdPMetadataURL", raw) {
        Ok(u) => u,
        Err(e) => return Check::fail(NAME, e),
    };
    let m = match crate::login::idp_metadata::fetch(state, &url).await {
        Ok(m) => m,
        Err(e) => return Check::fail(NAME, e.user_text()),
    };
    if let Some(want) = &config.idp_entity_id
        && want != &m.entity_id
    {
        return Check::fail(
            NAME,
            format!(
                "the metadata at {url} describes {}, not IdPEntityId {want}",
                m.entity_id
            ),
        );
    }
    let plan = crate::login::idp_metadata::plan(config, &m, now);
    let mut detail = format!(
        "{url}: entity {}, {} signing certificate(s), SSO URL {}",
        m.entity_id,
        m.signing_certificates.len(),
        m.sso_url
    );
    if plan.changes.is_empty() {
        detail.push_str("; the configuration is up to date");
    } else {
        detail.push_str(&format!(
            "; a refresh would apply: {}",
            plan.changes.join("; ")
        ));
    }
    Check::pass(NAME, detail)
}

async fn test_saml(state: &AppState, aid: i64, account_identifier: &str) -> Result<ConnectionTest> {
    let config = state
        .db
        .read(move |c| idp::get(c, aid, Kind::Saml))
        .await?
        .ok_or_else(|| {
            Error::NotFound("there is no SAML configuration to test; set one up first".into())
        })?;
    let now = state.now();
    let mut checks = vec![configuration_check(
        format!(
            "SPEntityId {}",
            config.sp_entity_id.as_deref().unwrap_or("")
        ),
        config.active,
    )];
    for (name, pem) in [
        ("Certificate", config.certificate.as_deref()),
        ("Next certificate", config.next_certificate.as_deref()),
    ] {
        let Some(pem) = pem else { continue };
        checks.push(match cert::parse(name, pem) {
            Ok(c) if c.is_expired(now) => {
                Check::fail(name, format!("expired: {}", c.describe(now)))
            }
            Ok(c) if c.not_before > now => Check::pass(
                name,
                format!("not yet valid (rollover): {}", c.describe(now)),
            ),
            Ok(c) if c.days_to_expiry(now) < 30 => Check::fail(
                name,
                format!(
                    "expires in under 30 days, plan the rollover: {}",
                    c.describe(now)
                ),
            ),
            Ok(c) => Check::pass(name, c.describe(now)),
            Err(e) => Check::fail(name, e),
        });
    }
    checks.push(Check::pass(
        "IdP SSO URL",
        config.idp_sso_url.clone().unwrap_or_default(),
    ));
    if let Some(raw) = &config.idp_metadata_url {
        checks.push(metadata_check(state, &config, raw, now).await);
    }
    checks.push(Check::pass(
        "Service provider",
        format!(
            "ACS URL {} (HTTP-POST); metadata at {}/sso/saml/metadata?account={}",
            acs_url(state),
            state.base_url(),
            account_identifier
        ),
    ));
    Ok(ConnectionTest::of(checks))
}
