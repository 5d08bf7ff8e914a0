//! Entra ID tenants: which `tid` may sign in.
//!
//! A multi-tenant Entra configuration (`OpenIdURL` under `common`, `organizations` or
//! `consumers`, whose discovery issuer holds `{tenantid}`) accepts a token from any tenant
//! that consented to the app, and every claim that could match a local user (`email`,
//! `preferred_username`) is whatever that tenant's admin wrote. So such a configuration
//! lists the tenants allowed to sign in (`AllowedTenants`) and nothing else gets through; a
//! single-tenant configuration accepts only the tenant its issuer names.

use serde_json::{Map, Value};
use url::Url;

use crate::sso::oidc::discovery::TENANT_TEMPLATE;

/// The path segments of Microsoft's multi-tenant endpoints.
pub const MULTI_TENANT_SEGMENTS: &[&str] = &["common", "organizations", "consumers"];

/// Longest tenant id accepted (a GUID is 36; verified domain names are longer).
pub const MAX_TENANT_ID: usize = 64;

/// Whether an Entra `OpenIdURL` names one of Microsoft's multi-tenant endpoints.
pub fn is_multi_tenant_url(url: &Url) -> bool {
    url.path_segments().is_some_and(|mut segments| {
        segments.any(|s| {
            MULTI_TENANT_SEGMENTS
                .iter()
                .any(|m| s.eq_ignore_ascii_case(m))
        })
    })
}

/// A tenant id as stored and compared: trimmed, lowercase, 1 to 64 characters of letters,
/// digits, `-` and `.` (a GUID, as Entra's `tid` carries it).
pub fn parse_tenant_id(raw: &str) -> Result<String, String> {
    let t = raw.trim().to_ascii_lowercase();
    let ok = !t.is_empty()
        && t.len() <= MAX_TENANT_ID
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(t)
    } else {
        Err(format!(
            "'{}' is not a tenant id (the directory's GUID, as Entra ID's tid claim carries it)",
            crate::sso::oidc::idp_text(raw)
        ))
    }
}

/// Checks the tenant (`tid`) of a validated Entra ID token against the configuration:
/// with a `{tenantid}` issuer it must be listed in `allowed`; with a fixed issuer it must be
/// the tenant that issuer names (and listed, when `allowed` lists any). The error says which
/// tenant was refused.
pub fn check(
    discovery_issuer: &str,
    claims: &Map<String, Value>,
    allowed: &[String],
) -> Result<(), String> {
    let tid = claims
        .get("tid")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("the Entra ID token names no tenant (tid)")?;
    let tid = parse_tenant_id(tid)?;
    let listed = allowed.contains(&tid);
    if discovery_issuer.contains(TENANT_TEMPLATE) {
        if allowed.is_empty() {
            return Err(format!(
                "this Entra ID configuration is multi-tenant and lists no AllowedTenants, so \
                 no tenant (here {tid}) may sign in"
            ));
        }
        if !listed {
            return Err(format!(
                "the Entra ID tenant {tid} is not one of this account's AllowedTenants"
            ));
        }
        return Ok(());
    }
    let own = Url::parse(discovery_issuer).ok().is_some_and(|u| {
        u.path_segments()
            .is_some_and(|mut s| s.any(|seg| seg.eq_ignore_ascii_case(&tid)))
    });
    if !own || (!allowed.is_empty() && !listed) {
        return Err(format!(
            "the Entra ID tenant {tid} is not the tenant of this configuration's issuer"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tid(t: &str) -> Map<String, Value> {
        match json!({ "tid": t }) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn multi_tenant_urls_are_recognised() {
        for (u, multi) in [
            (
                "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
                true,
            ),
            ("https://login.microsoftonline.com/Organizations/v2.0", true),
            ("https://login.microsoftonline.com/consumers/v2.0", true),
            (
                "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
                false,
            ),
            (
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
                false,
            ),
        ] {
            assert_eq!(is_multi_tenant_url(&Url::parse(u).unwrap()), multi, "{u}");
        }
    }

    #[test]
    fn a_template_issuer_signs_in_only_listed_tenants() {
        let iss = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let allowed = vec!["t-1".to_string()];
        assert!(check(iss, &tid("T-1"), &allowed).is_ok());
        let e = check(iss, &tid("t-2"), &allowed).unwrap_err();
        assert!(
            e.contains("t-2 is not one of this account's AllowedTenants"),
            "{e}"
        );
        let e = check(iss, &tid("t-1"), &[]).unwrap_err();
        assert!(e.contains("lists no AllowedTenants"), "{e}");
        assert!(check(iss, &Map::new(), &allowed).is_err());
        assert!(check(iss, &tid("../x"), &allowed).is_err());
    }

    #[test]
    fn a_fixed_issuer_signs_in_only_its_own_tenant() {
        let iss = "https://login.microsoftonline.com/t-1/v2.0";
        assert!(check(iss, &tid("t-1"), &[]).is_ok());
        let e = check(iss, &tid("t-2"), &[]).unwrap_err();
        assert!(e.contains("t-2 is not the tenant"), "{e}");
        // A list on a single-tenant configuration can only narrow it.
        assert!(check(iss, &tid("t-1"), &["t-9".to_string()]).is_err());
    }

    #[test]
    fn tenant_ids_are_normalised_and_checked() {
        assert_eq!(parse_tenant_id(" ABC-1 ").unwrap(), "abc-1");
        assert!(parse_tenant_id("").is_err());
        assert!(parse_tenant_id("a/b").is_err());
        assert!(parse_tenant_id(&"a".repeat(65)).is_err());
    }
}
