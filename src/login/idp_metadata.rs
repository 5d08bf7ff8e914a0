//! SAML configuration from the IdP's metadata: filling a setup/update body from
//! `IdPMetadataURL` or `IdPMetadataXML`, and keeping a configuration in step with its
//! metadata URL (certificate rollover, a moved SSO URL).
//!
//! The refresh runs with the hourly upkeep once 12 hours have passed since the last one, and
//! after a signature fails to verify (at most once per 5 minutes per configuration). It never
//! removes a certificate that still verifies: a new signing certificate becomes
//! `NextCertificate` (both verify), an expired one is dropped, a changed SSO URL is taken, and
//! each change is audited. A failed fetch changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::fields::Fields;
use crate::sso::saml::idp_metadata::{IdpMetadata, MAX_METADATA_BYTES, parse_current_idp_metadata};
use crate::sso::{cert, urls};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::idp::{self, IdpConfig, Kind};

/// How often a configuration's metadata URL is read again.
pub const REFRESH_SECS: i64 = 12 * 3600;
/// Least time between two reads after signature failures.
pub const RETRY_AFTER_FAILURE_SECS: i64 = 300;

/// When each configuration's metadata was last read (any read, for the 12-hour schedule)
/// and last read because a signature failed (for the 5-minute limit), by id.
#[derive(Default)]
pub struct RefreshTimes {
    any: Mutex<HashMap<i64, i64>>,
    after_failure: Mutex<HashMap<i64, i64>>,
}

impl RefreshTimes {
    /// Claims a read of configuration `id` when the last one is at least `min_gap` old.
    fn claim(map: &Mutex<HashMap<i64, i64>>, id: i64, now: i64, min_gap: i64) -> bool {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&id) {
            Some(last) if now - last < min_gap => false,
            _ => {
                map.insert(id, now);
                true
            }
        }
    }
}

/// Fetches the metadata at `url` (no redirects, the IdP timeouts, at most 1 MiB).
pub async fn fetch(state: &AppState, url: &Url) -> Result<IdpMetadata> {
    let bytes = state
        .oidc
        .fetch_document(
            url,
            "SAML metadata",
            "application/samlmetadata+xml, application/xml, text/xml",
            MAX_METADATA_BYTES,
        )
        .await?;
    let xml = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Sso(format!("the SAML metadata at {url} is not UTF-8 XML")))?;
    parse_current_idp_metadata(xml, state.now())
        .map_err(|e| Error::Sso(format!("IdPMetadataURL ({url}): {e}")))
}

/// With `IdPMetadataURL` or `IdPMetadataXML` in the body, fills what the admin left out from
/// the metadata: `IdPSSOURL`, `IdPEntityId`, `Certificate` and `NextCertificate` (the
/// metadata's signing certificates valid now), and `SignAuthnRequests` when the IdP wants
/// signed requests. Fields the admin sends win. The pasted XML itself is not kept.
pub async fn fill(state: &AppState, f: &mut Fields) -> Result<()> {
    let url = f
        .opt_str("IdPMetadataURL")?
        .filter(|u| !u.trim().is_empty());
    let xml = f
        .opt_str("IdPMetadataXML")?
        .filter(|x| !x.trim().is_empty());
    let m = match (url, xml) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "give IdPMetadataURL or IdPMetadataXML, not both",
            ));
        }
        (Some(u), None) => {
            let url = urls::parse_idp_url("IdPMetadataURL", &u).map_err(Error::Invalid)?;
            fetch(state, &url).await?
        }
        (None, Some(x)) => parse_current_idp_metadata(&x, state.now())
            .map_err(|e| Error::invalid(format!("IdPMetadataXML: {e}")))?,
        (None, None) => return Ok(()),
    };
    let now = state.now();
    let usable: Vec<String> = m
        .signing_certificates
        .iter()
        .filter(|pem| {
            cert::parse("certificate", pem)
                .is_ok_and(|c| c.check_key("certificate").is_ok() && !c.is_expired(now))
        })
        .cloned()
        .collect();
    if usable.is_empty() && !f.has("Certificate") {
        return Err(Error::invalid(
            "the metadata has no signing certificate that is valid now (each one is expired, \
             or has a key under 2048 bits)",
        ));
    }
    f.fill("IdPSSOURL", Value::String(m.sso_url.clone()));
    if let Some(slo) = &m.slo_url {
        f.fill("IdPSLOURL", Value::String(slo.clone()));
    }
    f.fill("IdPEntityId", Value::String(m.entity_id.clone()));
    let mut certs = usable.into_iter();
    if let Some(c) = certs.next() {
        f.fill("Certificate", Value::String(c));
    }
    if let Some(c) = certs.next() {
        f.fill("NextCertificate", Value::String(c));
    }
    if m.want_authn_requests_signed {
        f.fill("SignAuthnRequests", Value::Bool(true));
    }
    Ok(())
}

/// What a refresh changes in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollover {
    /// The new `Certificate` and `NextCertificate`.
    pub certificate: Option<String>,
    /// See `certificate`.
    pub next_certificate: Option<String>,
    /// The new `IdPSSOURL`.
    pub idp_sso_url: Option<String>,
    /// The new `IdPSLOURL`.
    pub idp_slo_url: Option<String>,
    /// One line per change, for the audit trail.
    pub changes: Vec<String>,
}

/// The rollover `m` calls for in `c` at `now`: an expired `Certificate` gives way to
/// `NextCertificate`, an expired `NextCertificate` is dropped, a signing certificate of the
/// metadata that neither slot holds takes the `NextCertificate` slot (unless the one there is
/// still published), and a changed SSO URL or single logout URL is taken (metadata that no
/// longer lists a single logout service leaves the one configured). Nothing that verifies is
/// removed.
pub fn plan(c: &IdpConfig, m: &IdpMetadata, now: i64) -> Rollover {
    let describe = |pem: &str| {
        cert::parse("certificate", pem).map_or_else(
            |_| "a certificate".to_string(),
            |i| {
                format!(
                    "subject {}, valid until {}",
                    i.subject,
                    crate::clock::rfc3339(i.not_after)
                )
            },
        )
    };
    let expired = |pem: &str| {
        !c.allow_expired_certificate
            && cert::parse("certificate", pem).is_ok_and(|i| i.is_expired(now))
    };
    let usable = |pem: &str| {
        cert::parse("certificate", pem)
            .is_ok_and(|i| i.check_key("certificate").is_ok() && !i.is_expired(now))
    };
    let mut r = Rollover {
        certificate: c.certificate.clone(),
        next_certificate: c.next_certificate.clone(),
        idp_sso_url: c.idp_sso_url.clone(),
        idp_slo_url: c.idp_slo_url.clone(),
        changes: Vec::new(),
    };
    if let Some(n) = r.next_certificate.clone()
        && expired(&n)
    {
        r.changes.push(format!(
            "NextCertificate expired and was dropped ({})",
            describe(&n)
        ));
        r.next_certificate = None;
    }
    if let Some(cur) = r.certificate.clone()
        && expired(&cur)
        && let Some(n) = r.next_certificate.take()
    {
        r.changes.push(format!(
            "Certificate expired and was dropped ({}); NextCertificate is now Certificate ({})",
            describe(&cur),
            describe(&n)
        ));
        r.certificate = Some(n);
    }
    let held = |r: &Rollover, pem: &String| {
        r.certificate.as_ref() == Some(pem) || r.next_certificate.as_ref() == Some(pem)
    };
    for pem in m.signing_certificates.iter().filter(|p| usable(p)) {
        if held(&r, pem) {
            continue;
        }
        let next_published = r
            .next_certificate
            .as_ref()
            .is_some_and(|n| m.signing_certificates.contains(n));
        if next_published {
            continue;
        }
        r.changes.push(format!(
            "the IdP's metadata publishes a new signing certificate, now NextCertificate ({})",
            describe(pem)
        ));
        r.next_certificate = Some(pem.clone());
    }
    if r.idp_sso_url.as_deref() != Some(m.sso_url.as_str())
        && urls::parse_idp_url("IdPSSOURL", &m.sso_url).is_ok()
    {
        r.changes.push(format!(
            "IdPSSOURL changed from {} to {} (from the metadata)",
            r.idp_sso_url.as_deref().unwrap_or("none"),
            m.sso_url
        ));
        r.idp_sso_url = Some(m.sso_url.clone());
    }
    if let Some(slo) = &m.slo_url
        && r.idp_slo_url.as_ref() != Some(slo)
        && urls::parse_idp_url("IdPSLOURL", slo).is_ok()
    {
        r.changes.push(format!(
            "IdPSLOURL changed from {} to {slo} (from the metadata)",
            r.idp_slo_url.as_deref().unwrap_or("none"),
        ));
        r.idp_slo_url = Some(slo.clone());
    }
    r
}

/// Reads the metadata of account `account_id`'s SAML configuration and applies
/// [`plan`]; returns the changes made. A configuration without `IdPMetadataURL` has none.
pub async fn refresh(state: &AppState, account_id: i64, actor: &str) -> Result<Vec<String>> {
    let Some(c) = state
        .db
        .read(move |conn| idp::get(conn, account_id, Kind::Saml))
        .await?
    else {
        return Err(Error::NotFound(
            "this account has no SAML configuration".into(),
        ));
    };
    let Some(raw) = c.idp_metadata_url.clone() else {
        return Err(Error::invalid(
            "the SAML configuration has no IdPMetadataURL to refresh from",
        ));
    };
    let now = state.now();
    RefreshTimes::claim(&state.login_cache.metadata_reads.any, c.id, now, 0);
    let url = urls::parse_idp_url("IdPMetadataURL", &raw).map_err(Error::Sso)?;
    let m = match fetch(state, &url).await {
        Ok(m) => m,
        Err(e) => {
            let ev = NewEvent::refused(
                Some(account_id),
                actor,
                "idp.saml.metadata",
                format!("the IdP's metadata could not be read; nothing changed: {e}"),
            );
            let _ = state.db.write(move |tx| audit::record(tx, &ev, now)).await;
            return Err(e);
        }
    };
    let r = plan(&c, &m, now);
    if r.changes.is_empty() {
        return Ok(Vec::new());
    }
    let (actor, changes) = (actor.to_string(), r.changes.clone());
    state
        .db
        .write(move |tx| {
            // Only if the configuration is still the one the plan was made from.
            let values = idp::FromMetadata {
                certificate: r.certificate.as_deref(),
                next_certificate: r.next_certificate.as_deref(),
                idp_sso_url: r.idp_sso_url.as_deref(),
                idp_slo_url: r.idp_slo_url.as_deref(),
            };
            if !idp::apply_rollover(tx, c.id, c.version, &values, now)? {
                return Ok(());
            }
            for change in &r.changes {
                let ev = NewEvent::ok(
                    Some(account_id),
                    &actor,
                    "idp.saml.metadata",
                    change.clone(),
                );
                audit::record(tx, &ev, now)?;
            }
            Ok(())
        })
        .await?;
    Ok(changes)
}

/// The upkeep's pass: every SAML configuration with a metadata URL whose last read is
/// [`REFRESH_SECS`] old is read again. Failures are audited by [`refresh`] and logged.
pub async fn refresh_due(state: &AppState) -> Result<()> {
    let now = state.now();
    let configs = state.db.read(idp::with_metadata_url).await?;
    for (id, account_id) in configs {
        let reads = &state.login_cache.metadata_reads.any;
        if RefreshTimes::claim(reads, id, now, REFRESH_SECS)
            && let Err(e) = refresh(state, account_id, "agent").await
        {
            tracing::warn!(account_id, error = %e, "SAML metadata refresh failed");
        }
    }
    Ok(())
}

/// After a signature failed to verify: reads the metadata again in the background (the IdP
/// may have switched keys), at most once per [`RETRY_AFTER_FAILURE_SECS`].
pub fn refresh_after_signature_failure(state: &AppState, c: &IdpConfig) {
    let reads = &state.login_cache.metadata_reads.after_failure;
    if c.idp_metadata_url.is_none()
        || !RefreshTimes::claim(reads, c.id, state.now(), RETRY_AFTER_FAILURE_SECS)
    {
        return;
    }
    let (state, account_id) = (state.clone(), c.account_id);
    tokio::spawn(async move {
        if let Err(e) = refresh(&state, account_id, "agent").await {
            tracing::warn!(account_id, error = %e, "SAML metadata refresh failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::saml::testing::TestIdp;

    #[allow(clippy::disallowed_methods)]
    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn config(cert: &str, next: Option<&str>) -> IdpConfig {
        IdpConfig {
            id: 1,
            account_id: 1,
            kind: Kind::Saml,
            active: true,
            client_id: None,
            client_secret_enc: None,
            openid_url: None,
            graph_url: None,
            certificate: Some(cert.into()),
            next_certificate: next.map(str::to_string),
            sp_entity_id: Some("sp".into()),
            idp_sso_url: Some("https://idp.test/sso".into()),
            idp_entity_id: None,
            groups_attribute: None,
            allowed_tenants: vec![],
            allow_expired_certificate: false,
            sign_authn_requests: false,
            require_encrypted_assertions: false,
            idp_metadata_url: Some("https://idp.test/metadata".into()),
            idp_slo_url: None,
            version: 1,
            updated_at: 0,
        }
    }

    fn metadata(certs: &[&str], sso: &str) -> IdpMetadata {
        IdpMetadata {
            entity_id: "https://idp.test".into(),
            sso_url: sso.into(),
            signing_certificates: certs.iter().map(|c| c.to_string()).collect(),
            want_authn_requests_signed: false,
            slo_url: None,
            valid_until: None,
        }
    }

    #[test]
    fn a_new_certificate_becomes_next_and_nothing_that_verifies_is_removed() {
        let (a, b, c) = (
            TestIdp::new().unwrap(),
            TestIdp::new().unwrap(),
            TestIdp::new().unwrap(),
        );
        let (a, b, c) = (a.cert_pem(), b.cert_pem(), c.cert_pem());
        let sso = "https://idp.test/sso";
        // Unchanged: nothing to do.
        assert!(
            plan(&config(&a, None), &metadata(&[&a], sso), now())
                .changes
                .is_empty()
        );
        // A second certificate published: it becomes NextCertificate.
        let r = plan(&config(&a, None), &metadata(&[&a, &b], sso), now());
        assert_eq!(
            (r.certificate.as_deref(), r.next_certificate.as_deref()),
            (Some(&*a), Some(&*b))
        );
        // The current one no longer published: kept (it still verifies) until it expires.
        let r = plan(&config(&a, Some(&b)), &metadata(&[&b], sso), now());
        assert!(r.changes.is_empty());
        // A third while the next one is still published: the next one stays.
        let r = plan(&config(&a, Some(&b)), &metadata(&[&b, &c], sso), now());
        assert_eq!(r.next_certificate.as_deref(), Some(&*b));
        // A third replacing a next one the IdP withdrew.
        let r = plan(&config(&a, Some(&b)), &metadata(&[&a, &c], sso), now());
        assert_eq!(r.next_certificate.as_deref(), Some(&*c));
        // A moved SSO URL is taken; a non-https one is not.
        let r = plan(
            &config(&a, None),
            &metadata(&[&a], "https://idp.test/new"),
            now(),
        );
        assert_eq!(r.idp_sso_url.as_deref(), Some("https://idp.test/new"));
        let r = plan(
            &config(&a, None),
            &metadata(&[&a], "http://evil.test/sso"),
            now(),
        );
        assert_eq!(r.idp_sso_url.as_deref(), Some(sso));
    }

    /// The single logout URL follows the metadata like the SSO URL; metadata without one (or
    /// with a non-https one) leaves the configured URL.
    #[test]
    fn a_moved_single_logout_url_is_taken() {
        let a = TestIdp::new().unwrap().cert_pem();
        let sso = "https://idp.test/sso";
        let with_slo = |slo: Option<&str>| IdpMetadata {
            slo_url: slo.map(str::to_string),
            ..metadata(&[&a], sso)
        };
        let mut c = config(&a, None);
        let r = plan(&c, &with_slo(Some("https://idp.test/slo")), now());
        assert_eq!(r.idp_slo_url.as_deref(), Some("https://idp.test/slo"));
        assert!(
            r.changes
                .iter()
                .any(|l| l
                    == "IdPSLOURL changed from none to https://idp.test/slo (from the metadata)"),
            "{:?}",
            r.changes
        );
        c.idp_slo_url = Some("https://idp.test/slo".into());
        assert!(
            plan(&c, &with_slo(Some("https://idp.test/slo")), now())
                .changes
                .is_empty()
        );
        for (m, why) in [
            (with_slo(None), "no longer listed"),
            (with_slo(Some("http://evil.test/slo")), "not https"),
        ] {
            let r = plan(&c, &m, now());
            assert_eq!(
                r.idp_slo_url.as_deref(),
                Some("https://idp.test/slo"),
                "{why}"
            );
            assert!(r.changes.is_empty(), "{why}: {:?}", r.changes);
        }
    }

    #[test]
    fn expired_certificates_are_dropped_and_the_next_one_promoted() {
        let (old, new) = (
            TestIdp::new().unwrap().cert_pem(),
            TestIdp::new().unwrap().cert_pem(),
        );
        // A year and a day on, both test certificates (365 days) have expired.
        let later = now() + 366 * 86_400;
        let r = plan(
            &config(&old, Some(&new)),
            &metadata(&[&new], "https://idp.test/sso"),
            later,
        );
        assert!(r.next_certificate.is_none(), "{r:?}");
        // Expired metadata certificates are never taken; the current one stays (no other).
        assert_eq!(r.certificate.as_deref(), Some(&*old));
        let fresh = TestIdp::new().unwrap().cert_pem();
        let r = plan(
            &config(&old, Some(&fresh)),
            &metadata(&[&fresh], "https://idp.test/sso"),
            now() + 10,
        );
        assert!(r.changes.is_empty());
        // An expired current certificate gives way to a valid next one.
        let make = |at: i64| {
            crate::sso::saml::sp_keys::generate("idp", at)
                .unwrap()
                .certificate_pem
        };
        let (expired, valid) = (make(now() - 6 * 365 * 86_400), make(now()));
        let r = plan(
            &config(&expired, Some(&valid)),
            &metadata(&[&valid], "https://idp.test/sso"),
            now(),
        );
        assert_eq!(
            (r.certificate.as_deref(), r.next_certificate.as_deref()),
            (Some(&*valid), None)
        );
        assert!(
            r.changes[0].contains("NextCertificate is now Certificate"),
            "{:?}",
            r.changes
        );
        // The admin's choice to accept expired certificates is honoured.
        let mut keep = config(&old, Some(&new));
        keep.allow_expired_certificate = true;
        assert_eq!(
            plan(&keep, &metadata(&[&new], "https://idp.test/sso"), later)
                .next_certificate
                .as_deref(),
            Some(&*new)
        );
    }
}
