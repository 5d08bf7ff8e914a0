//! Who signed in, from validated ID token claims: the immutable subject, the email a first
//! link may match, and what the sign-in says about groups.

use serde_json::{Map, Value};

use super::refused;
use crate::domain::Kind;
use crate::error::{Error, Result};
use crate::sso::groups::{self, SignInGroups};

/// Who the IdP says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpIdentity {
    /// Okta or Entra ID.
    pub provider: Kind,
    /// The issuer the token carried (Entra: the tenant's issuer).
    pub issuer: String,
    /// The immutable subject: Okta `sub`; Entra `tid/oid`.
    pub subject: String,
    /// The email to match a local user with on the first login (`None` when the IdP does
    /// not vouch for one).
    pub email: Option<String>,
    /// For the audit trail: the email, or the IdP's user name, or the subject.
    pub label: String,
    /// What the sign-in says about the user's groups.
    pub groups: SignInGroups,
}

fn claim<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn looks_like_email(s: &str) -> bool {
    s.len() <= 254
        && s.split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
}

/// The email Entra ID vouches for, the key of a first link. Entra's `email` claim is
/// whatever the user's mail attribute says (an admin of any tenant, and for some accounts the
/// user, can set it), so it counts only when Entra marks it verified for the tenant: the
/// `xms_edov` optional claim true, or the `verified_primary_email` optional claim. Otherwise
/// `preferred_username`, the user's UPN in the (allowed) tenant, when it looks like an email
/// and agrees with the `upn` claim if that is sent too.
fn entra_email(claims: &Map<String, Value>) -> Option<&str> {
    let edov = match claims.get("xms_edov") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(v)) => v.eq_ignore_ascii_case("true") || v == "1",
        _ => false,
    };
    let verified = match claims.get("verified_primary_email") {
        Some(Value::String(s)) => Some(s.trim()),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::trim).next(),
        _ => None,
    }
    .filter(|e| !e.is_empty());
    let upn = claim(claims, "preferred_username")
        .filter(|p| claim(claims, "upn").is_none_or(|u| u.eq_ignore_ascii_case(p)));
    edov.then(|| claim(claims, "email"))
        .flatten()
        .or(verified)
        .or(upn)
        .filter(|e| looks_like_email(e))
}

/// Who signed in, from validated claims. The subject is immutable: Okta's `sub`, Entra's
/// `oid` with its `tid` (never the email, which users and admins can change — nOAuth).
/// The email is only a key for the first link: Okta's only when `email_verified` is true,
/// Entra's as [`entra_email`] says.
pub fn identity(kind: Kind, issuer: &str, claims: &Map<String, Value>) -> Result<IdpIdentity> {
    // `check_claims` refused tokens without `sub` already; this keeps `identity` total.
    let sub =
        claim(claims, "sub").ok_or_else(|| refused("the identity provider named no subject"))?;
    let (subject, email) = match kind {
        Kind::Entra => {
            let oid = claim(claims, "oid").ok_or_else(|| {
                Error::Sso("the Entra ID token has no oid claim (the user's object id)".into())
            })?;
            let tid = claim(claims, "tid").ok_or_else(|| {
                Error::Sso("the Entra ID token has no tid claim (the tenant id)".into())
            })?;
            (format!("{tid}/{oid}"), entra_email(claims))
        }
        _ => {
            // Verified only when Okta says so: a missing claim vouches for nothing.
            let verified = claims.get("email_verified") == Some(&Value::Bool(true))
                || claims.get("email_verified") == Some(&Value::String("true".into()));
            let email = claim(claims, "email").filter(|e| verified && looks_like_email(e));
            (sub.to_string(), email)
        }
    };
    let email = email.map(str::to_lowercase);
    let label = email
        .clone()
        .or_else(|| claim(claims, "email").map(str::to_string))
        .or_else(|| claim(claims, "preferred_username").map(str::to_string))
        .unwrap_or_else(|| subject.clone());
    Ok(IdpIdentity {
        provider: kind,
        issuer: issuer.to_string(),
        subject,
        email,
        label,
        groups: groups::from_oidc_claims(kind, claims)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::oidc::id_token::tests::claims;
    use serde_json::json;

    #[test]
    fn okta_identity_is_sub_and_needs_a_verified_email() -> Result<()> {
        let c = claims(json!({"sub": "00u1", "email": "Ann@Acme.test", "email_verified": true}));
        let who = identity(Kind::Okta, "https://acme.okta.com", &c)?;
        assert_eq!(who.subject, "00u1");
        assert_eq!(who.email.as_deref(), Some("ann@acme.test"));
        let c = claims(json!({"sub": "00u1", "email": "ann@acme.test"}));
        assert_eq!(
            identity(Kind::Okta, "i", &c)?.email,
            None,
            "no email_verified claim"
        );
        let c = claims(json!({"sub": "00u1", "email": "ann@acme.test", "email_verified": false}));
        assert_eq!(identity(Kind::Okta, "i", &c)?.email, None);
        Ok(())
    }

    #[test]
    fn entra_identity_is_tid_and_oid_never_the_email() -> Result<()> {
        let c = claims(json!({"sub": "pairwise", "oid": "o1", "tid": "t1",
                               "preferred_username": "ann@acme.test"}));
        let who = identity(Kind::Entra, "https://login.test/t1/v2.0", &c)?;
        assert_eq!(who.subject, "t1/o1");
        assert_eq!(who.email.as_deref(), Some("ann@acme.test"));
        let c = claims(json!({"sub": "s", "tid": "t1", "email": "a@b.test"}));
        assert!(matches!(identity(Kind::Entra, "i", &c), Err(Error::Sso(_))));
        Ok(())
    }

    #[test]
    fn entra_email_is_only_what_entra_verified() -> Result<()> {
        let email = |v: Value| -> Result<Option<String>> {
            let mut c = claims(json!({"sub": "s", "oid": "o1", "tid": "t1"}));
            if let Value::Object(extra) = v {
                c.extend(extra);
            }
            Ok(identity(Kind::Entra, "https://login.test/t1/v2.0", &c)?.email)
        };
        // The mail attribute alone is whatever the tenant wrote: never a key.
        assert_eq!(email(json!({"email": "victim@corp.test"}))?, None);
        assert_eq!(
            email(json!({"email": "victim@corp.test", "xms_edov": false}))?,
            None
        );
        assert_eq!(
            email(json!({"email": "Ann@Corp.test", "xms_edov": true}))?.as_deref(),
            Some("ann@corp.test")
        );
        assert_eq!(
            email(json!({"email": "ann@corp.test", "xms_edov": "1"}))?.as_deref(),
            Some("ann@corp.test")
        );
        assert_eq!(
            email(json!({"email": "x@evil.test", "verified_primary_email": ["ann@corp.test"]}))?
                .as_deref(),
            Some("ann@corp.test")
        );
        // preferred_username (the UPN), unless the upn claim says otherwise.
        assert_eq!(
            email(json!({"email": "victim@corp.test", "preferred_username": "mal@evil.test"}))?
                .as_deref(),
            Some("mal@evil.test")
        );
        assert_eq!(
            email(json!({"preferred_username": "victim@corp.test", "upn": "mal@evil.test"}))?,
            None
        );
        Ok(())
    }
}
