//! Validation of an identity provider configuration (`OktaSSO`, `EntraIDSSO`, `SamlSSO`), as
//! the API's setup/update bodies and the policy file's provider objects give it.

use crate::error::{Error, Result};
use crate::fields::{Fields, check_text};
use crate::login::idp_config::DEFAULT_GRAPH_URL;
use crate::secret::Secret;
use crate::sso::{cert, oidc, urls};
use crate::store::idp::{IdpConfig, Kind};

/// What a read shows in place of the client secret.
pub const SECRET_MASK: &str = "********";

const MAX_ID: usize = 256;
const MAX_SECRET: usize = 2048;
const MAX_ENTITY_ID: usize = 1024;
const MAX_ATTRIBUTE_NAME: usize = 256;
const MAX_TENANTS: usize = 100;

/// What the client secret of a request asks for.
pub enum SecretChange {
    /// Keep the stored secret (omitted, or the mask sent back).
    Keep,
    /// Store this one.
    Set(Secret),
    /// Store none: a public client (`"ClientSecret": ""`).
    Remove,
}

/// A validated configuration from a request body.
pub struct Validated {
    /// The configuration (its `Id` 0, its secret not yet sealed).
    pub config: IdpConfig,
    /// What to do with the client secret.
    pub secret: SecretChange,
    /// Human summary for the audit trail (never secrets).
    pub summary: String,
}

/// Validates a request body (or a provider object of the policy file) into a configuration;
/// every invalid field is reported at once.
pub fn validate(
    kind: Kind,
    f: &Fields,
    account_id: i64,
    now: i64,
    is_update: bool,
    loopback_graph: bool,
) -> Result<Validated> {
    let mut errors = Vec::new();
    let mut take = |r: Result<Option<String>>| match r {
        Ok(v) => v,
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    let active = match f.opt_bool("Active") {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            take(Err(e));
            false
        }
    };
    let mut config = IdpConfig {
        id: 0,
        account_id,
        kind,
        active,
        client_id: None,
        client_secret_enc: None,
        openid_url: None,
        graph_url: None,
        certificate: None,
        next_certificate: None,
        sp_entity_id: None,
        idp_sso_url: None,
        idp_entity_id: None,
        groups_attribute: None,
        allowed_tenants: Vec::new(),
        allow_expired_certificate: false,
        sign_authn_requests: false,
        require_encrypted_assertions: false,
        idp_metadata_url: None,
        idp_slo_url: None,
        version: 1,
        updated_at: now,
    };
    let mut secret = SecretChange::Keep;
    let mut summary;
    if kind.is_oidc() {
        config.client_id = take(f.req_str("ClientId", MAX_ID).map(Some));
        match f.opt_str("ClientSecret") {
            // Omitted: on setup a public client, on update the stored secret kept.
            Ok(None) => {}
            // The documented way to remove a secret (and to say "none" on setup).
            Ok(Some(s)) if s.is_empty() => secret = SecretChange::Remove,
            Ok(Some(s)) if is_update && s == SECRET_MASK => {}
            Ok(Some(s)) => match check_text("ClientSecret", &s, MAX_SECRET) {
                Ok(()) if s == SECRET_MASK => {
                    take(Err(Error::invalid(
                        "ClientSecret must be the real secret, not the mask",
                    )));
                }
                Ok(()) => secret = SecretChange::Set(Secret::new(s)),
                Err(e) => {
                    take(Err(Error::invalid(format!(
                        "{e} (send \"\" for a public client without a secret)"
                    ))));
                }
            },
            Err(e) => {
                take(Err(e));
            }
        }
        config.openid_url = take(url_field(f, "OpenIdURL", true));
        if kind == Kind::Entra {
            config.graph_url = take(graph_url_field(f, loopback_graph))
                .or_else(|| Some(DEFAULT_GRAPH_URL.to_string()));
            match tenants_field(f, config.openid_url.as_deref()) {
                Ok(t) => config.allowed_tenants = t,
                Err(e) => {
                    take(Err(e));
                }
            }
        }
        summary = format!(
            "ClientId={}, OpenIdURL={}, Active={active}",
            config.client_id.as_deref().unwrap_or(""),
            config.openid_url.as_deref().unwrap_or("")
        );
        if let Some(g) = &config.graph_url
            && g != DEFAULT_GRAPH_URL
        {
            summary.push_str(&format!(", GraphURL={g}"));
            if urls::parse_graph_url(g, false).is_err() {
                summary.push_str(&format!(
                    " (loopback: test setting {} is on)",
                    urls::LOOPBACK_GRAPH_ENV
                ));
            }
        }
        if !config.allowed_tenants.is_empty() {
            summary.push_str(&format!(
                ", AllowedTenants={}",
                config.allowed_tenants.join(" ")
            ));
        }
    } else {
        // An optional boolean, false when omitted (`take` collects its error).
        let flag = |name| {
            f.opt_bool(name)
                .map(|v| v.filter(|b| *b).map(|_| String::new()))
        };
        config.allow_expired_certificate = take(flag("AllowExpiredCertificate")).is_some();
        config.sign_authn_requests = take(flag("SignAuthnRequests")).is_some();
        config.require_encrypted_assertions = take(flag("RequireEncryptedAssertions")).is_some();
        let expired_ok = config.allow_expired_certificate;
        config.certificate = take(cert_field(f, "Certificate", true, now, expired_ok));
        config.next_certificate = take(cert_field(f, "NextCertificate", false, now, expired_ok));
        config.sp_entity_id = take(f.req_str("SPEntityId", MAX_ENTITY_ID).map(Some));
        config.idp_sso_url = take(url_field(f, "IdPSSOURL", true));
        config.idp_metadata_url = take(url_field(f, "IdPMetadataURL", false));
        config.idp_slo_url = take(url_field(f, "IdPSLOURL", false));
        config.idp_entity_id = take(match f.opt_str("IdPEntityId") {
            Ok(Some(s)) if s.trim().is_empty() => Ok(None),
            Ok(Some(s)) => {
                check_text("IdPEntityId", &s, MAX_ENTITY_ID).map(|()| Some(s.trim().to_string()))
            }
            other => other,
        });
        config.groups_attribute = take(match f.opt_str("GroupsAttribute") {
            Ok(Some(s)) if s.trim().is_empty() => Ok(None),
            Ok(Some(s)) => check_text("GroupsAttribute", &s, MAX_ATTRIBUTE_NAME)
                .map(|()| Some(s.trim().to_string())),
            other => other,
        });
        summary = format!(
            "SPEntityId={}, IdPSSOURL={}, SignAuthnRequests={}, RequireEncryptedAssertions={}, \
             Active={active}",
            config.sp_entity_id.as_deref().unwrap_or(""),
            config.idp_sso_url.as_deref().unwrap_or(""),
            config.sign_authn_requests,
            config.require_encrypted_assertions
        );
        if let Some(slo) = &config.idp_slo_url {
            summary.push_str(&format!(", IdPSLOURL={slo}"));
        }
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            Error::Invalid(errors.remove(0))
        } else {
            Error::Fields(errors)
        });
    }
    Ok(Validated {
        config,
        secret,
        summary,
    })
}

fn url_field(f: &Fields, name: &str, required: bool) -> Result<Option<String>> {
    let raw = match f.opt_str(name)? {
        Some(s) if !s.trim().is_empty() => s,
        Some(_) if required => return Err(Error::invalid(format!("{name} must not be blank"))),
        None if required => return Err(Error::invalid(format!("{name} is required"))),
        _ => return Ok(None),
    };
    if raw.len() > 2048 {
        return Err(Error::invalid(format!(
            "{name} must be at most 2048 characters"
        )));
    }
    urls::parse_idp_url(name, &raw)
        .map(|u| Some(u.to_string()))
        .map_err(Error::Invalid)
}

/// `GraphURL`: Microsoft Graph's root in one of its clouds (loopback only under the test
/// setting), stored without its trailing slash as before.
fn graph_url_field(f: &Fields, loopback_graph: bool) -> Result<Option<String>> {
    match f.opt_str("GraphURL")? {
        Some(s) if !s.trim().is_empty() => {
            let url = urls::parse_graph_url(&s, loopback_graph).map_err(Error::Invalid)?;
            Ok(Some(url.to_string()))
        }
        _ => Ok(None),
    }
}

/// `AllowedTenants` of an Entra ID configuration: tenant ids, required (non-empty) when
/// `OpenIdURL` is one of Microsoft's multi-tenant endpoints.
fn tenants_field(f: &Fields, openid_url: Option<&str>) -> Result<Vec<String>> {
    let raw = f.opt_str_list("AllowedTenants")?.unwrap_or_default();
    if raw.len() > MAX_TENANTS {
        return Err(Error::invalid(format!(
            "AllowedTenants lists at most {MAX_TENANTS} tenants"
        )));
    }
    let mut tenants = Vec::with_capacity(raw.len());
    for t in &raw {
        let t = oidc::tenant::parse_tenant_id(t)
            .map_err(|e| Error::invalid(format!("AllowedTenants: {e}")))?;
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    }
    let multi = openid_url
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| oidc::tenant::is_multi_tenant_url(&u));
    if multi && tenants.is_empty() {
        return Err(Error::invalid(
            "AllowedTenants is required for a multi-tenant Entra ID configuration (OpenIdURL \
             names common, organizations or consumers): list the tenant ids (GUIDs) whose users \
             may sign in",
        ));
    }
    Ok(tenants)
}

fn cert_field(
    f: &Fields,
    name: &str,
    required: bool,
    now: i64,
    expired_ok: bool,
) -> Result<Option<String>> {
    let raw = match f.opt_str(name)? {
        Some(s) if !s.trim().is_empty() => s,
        Some(_) if required => return Err(Error::invalid(format!("{name} must not be blank"))),
        None if required => return Err(Error::invalid(format!("{name} is required"))),
        _ => return Ok(None),
    };
    let c = cert::parse(name, &raw).map_err(Error::Invalid)?;
    c.check_key(name).map_err(Error::Invalid)?;
    if c.is_expired(now) && !expired_ok {
        return Err(Error::invalid(format!(
            "{name} expired on {}; upload the IdP's current certificate (or set \
             AllowExpiredCertificate for an IdP that never rotates)",
            crate::clock::rfc3339(c.not_after)
        )));
    }
    Ok(Some(c.pem))
}
