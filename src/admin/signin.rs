//! What the account's sign-in settings may be (`GET`/`PUT /sso/signin_settings`, the policy
//! file's `AutoProvision`, `AutoProvisionDomains`, `AdminGroups`, `SessionLifetimeDays`), and
//! the one rule both they and a sign-in use to read a domain name.

use crate::error::{Error, Result};
use crate::fields::{Fields, check_text};
use crate::sso::groups::MAX_GROUP_LEN;
use crate::store::signin_settings::SigninSettings;

/// Characters a domain name may have at most (RFC 1035, without the root's dot).
const MAX_DOMAIN_LEN: usize = 253;
/// Domains an account may auto-provision at most.
pub const MAX_DOMAINS: usize = 100;
/// Admin groups an account may name at most.
pub const MAX_ADMIN_GROUPS: usize = 100;
/// Bounds of `SessionLifetimeDays`: a day to a year.
pub const SESSION_LIFETIME_DAYS: std::ops::RangeInclusive<i64> = 1..=365;

/// The keys of the sign-in settings, as the API and the policy file spell them.
pub const AUTO_PROVISION: &str = "AutoProvision";
/// See [`AUTO_PROVISION`].
pub const AUTO_PROVISION_DOMAINS: &str = "AutoProvisionDomains";
/// See [`AUTO_PROVISION`].
pub const ADMIN_GROUPS: &str = "AdminGroups";
/// See [`AUTO_PROVISION`].
pub const SESSION_LIFETIME: &str = "SessionLifetimeDays";

/// The audit action of a change of the sign-in settings.
pub const SIGNIN_AUDIT: &str = "signin_settings.update";

/// What the audit trail says of sign-in settings (all four, as saved).
pub fn signin_summary(s: &SigninSettings) -> String {
    let list = |l: &[String]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.join(", ")
        }
    };
    format!(
        "{AUTO_PROVISION}={}, {AUTO_PROVISION_DOMAINS}: {}, {ADMIN_GROUPS}: {}, \
         {SESSION_LIFETIME}={}",
        s.auto_provision,
        list(&s.auto_provision_domains),
        list(&s.admin_groups),
        s.session_lifetime_days
    )
}

/// A change of the sign-in settings: each field `None` when the body leaves it out (kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigninChange {
    /// `AutoProvision`.
    pub auto_provision: Option<bool>,
    /// `AutoProvisionDomains`, validated and sorted.
    pub auto_provision_domains: Option<Vec<String>>,
    /// `AdminGroups`, validated and sorted.
    pub admin_groups: Option<Vec<String>>,
    /// `SessionLifetimeDays`, in bounds.
    pub session_lifetime_days: Option<i64>,
}

impl SigninChange {
    /// `current` with this change made.
    pub fn applied_to(&self, current: &SigninSettings) -> SigninSettings {
        SigninSettings {
            auto_provision: self.auto_provision.unwrap_or(current.auto_provision),
            auto_provision_domains: self
                .auto_provision_domains
                .clone()
                .unwrap_or_else(|| current.auto_provision_domains.clone()),
            admin_groups: self
                .admin_groups
                .clone()
                .unwrap_or_else(|| current.admin_groups.clone()),
            session_lifetime_days: self
                .session_lifetime_days
                .unwrap_or(current.session_lifetime_days),
        }
    }
}

/// Reads and checks the sign-in settings a body gives (absent or `null`: left as they are).
pub fn change(f: &Fields) -> Result<SigninChange> {
    Ok(SigninChange {
        auto_provision: f.opt_bool(AUTO_PROVISION)?,
        auto_provision_domains: f
            .opt_str_list(AUTO_PROVISION_DOMAINS)?
            .map(|d| auto_provision_domains(&d))
            .transpose()?,
        admin_groups: f
            .opt_str_list(ADMIN_GROUPS)?
            .map(|g| admin_groups(&g))
            .transpose()?,
        session_lifetime_days: f
            .opt_i64(SESSION_LIFETIME)?
            .map(session_lifetime_days)
            .transpose()?,
    })
}

/// Checks `SessionLifetimeDays`: 1 to 365.
pub fn session_lifetime_days(days: i64) -> Result<i64> {
    if SESSION_LIFETIME_DAYS.contains(&days) {
        Ok(days)
    } else {
        Err(Error::invalid(format!(
            "{SESSION_LIFETIME} must be from {} to {} (days a signed-in session may be renewed)",
            SESSION_LIFETIME_DAYS.start(),
            SESSION_LIFETIME_DAYS.end()
        )))
    }
}

/// Checks and normalises `AutoProvisionDomains`: at most [`MAX_DOMAINS`] domain names (see
/// [`domain`]), no two the same, sorted.
pub fn auto_provision_domains(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > MAX_DOMAINS {
        return Err(Error::invalid(format!(
            "{AUTO_PROVISION_DOMAINS} may hold at most {MAX_DOMAINS} domains"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for d in raw {
        let ascii = domain(d)?;
        if out.contains(&ascii) {
            return Err(Error::invalid(format!(
                "{AUTO_PROVISION_DOMAINS} names {ascii} twice"
            )));
        }
        out.push(ascii);
    }
    out.sort();
    Ok(out)
}

/// One domain of `AutoProvisionDomains`: a fully qualified DNS name of at least two labels,
/// lower-cased and in ASCII (an internationalised name becomes its `xn--` form), with no
/// wildcard, no leading or trailing dot, no `@`. Only that exact domain matches, never its
/// subdomains.
pub fn domain(raw: &str) -> Result<String> {
    let d = raw.trim();
    // A message names the value, but never more of it than a domain name may be long.
    let shown: String = d.chars().take(MAX_DOMAIN_LEN).collect();
    let cut = if shown.len() < d.len() { "…" } else { "" };
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "{AUTO_PROVISION_DOMAINS}: '{shown}{cut}' {why}"
        )))
    };
    if d.chars().count() > MAX_DOMAIN_LEN {
        return bad("is longer than a domain name may be (253 characters)");
    }
    if d.is_empty() {
        return bad("is blank; give domain names such as example.com");
    }
    if d.contains('*') {
        return bad(
            "is a wildcard: list each domain exactly (subdomains are not matched, and no \
             wildcard is)",
        );
    }
    if d.contains('@') {
        return bad("is an email address, not a domain name such as example.com");
    }
    if d.starts_with('.') || d.ends_with('.') {
        return bad("must not start or end with a dot");
    }
    match ascii_domain(d) {
        Some(a) => Ok(a),
        None => bad(
            "is not a domain name (two or more labels of letters, digits and hyphens, such as \
             example.com)",
        ),
    }
}

/// The lower-case ASCII form of a domain name (IDNA, strict: letters, digits and hyphens,
/// DNS lengths, no trailing dot), of at least two labels and not an IP address; `None`
/// otherwise. A sign-in's email domain goes through the same function before it is compared
/// with the list, so `EXAMPLE.com` matches `example.com` while a look-alike in another script
/// (`exаmple.com` with a Cyrillic а) becomes its own `xn--` name and does not.
pub fn ascii_domain(d: &str) -> Option<String> {
    let a = idna::domain_to_ascii_strict(d).ok()?;
    let labels: Vec<&str> = a.split('.').collect();
    let tld = labels.last()?;
    (labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
        && !tld.bytes().all(|b| b.is_ascii_digit()))
    .then_some(a)
}

/// The ASCII domain of a verified sign-in `email`: the part after its one `@`, through
/// [`ascii_domain`]; `None` when it has none that is a domain name.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || local.contains('@') {
        return None;
    }
    ascii_domain(domain)
}

/// Checks `AdminGroups`: at most [`MAX_ADMIN_GROUPS`] group names or ids (trimmed, not blank,
/// at most [`MAX_GROUP_LEN`] characters, no control characters), no two the same ignoring
/// case (groups are matched ignoring case), sorted.
pub fn admin_groups(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > MAX_ADMIN_GROUPS {
        return Err(Error::invalid(format!(
            "{ADMIN_GROUPS} may hold at most {MAX_ADMIN_GROUPS} groups"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for g in raw {
        check_text(ADMIN_GROUPS, g, MAX_GROUP_LEN)
            .map_err(|e| Error::invalid(format!("{e} (each group name or id)")))?;
        let g = g.trim().to_string();
        if out.iter().any(|o| same_group(o, &g)) {
            return Err(Error::invalid(format!("{ADMIN_GROUPS} names '{g}' twice")));
        }
        out.push(g);
    }
    out.sort();
    Ok(out)
}

/// Whether two group names or ids are the same group: equal ignoring case (Okta group names,
/// Entra object ids and LDAP-style DNs all compare so).
pub fn same_group(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn domains_are_lower_case_ascii_and_exact() {
        assert_eq!(
            auto_provision_domains(&list(&[" Example.COM ", "bücher.example"])).ok(),
            Some(vec!["example.com".into(), "xn--bcher-kva.example".into()])
        );
        for (bad, why) in [
            ("*.example.com", "wildcard"),
            ("ann@example.com", "email address"),
            ("example.com.", "end with a dot"),
            (".example.com", "start or end with a dot"),
            ("localhost", "not a domain name"),
            ("exa mple.com", "not a domain name"),
            ("exa_mple.com", "not a domain name"),
            ("-bad.example.com", "not a domain name"),
            ("10.0.0.1", "not a domain name"),
            ("", "blank"),
            (&format!("{}.com", "a".repeat(64)), "not a domain name"),
            (&"a.".repeat(200), "longer than a domain name may be"),
        ] {
            let e = domain(bad).map_err(|e| e.to_string());
            assert!(e.as_ref().is_err_and(|m| m.contains(why)), "{bad:?}: {e:?}");
        }
        let long = domain(&"x".repeat(10_000)).map_err(|e| e.to_string());
        assert!(
            long.is_err_and(|m| m.len() < 400),
            "the value is not echoed whole"
        );
        let dup = auto_provision_domains(&list(&["example.com", "EXAMPLE.com"]));
        assert!(dup.is_err_and(|e| e.to_string().contains("twice")));
        let many: Vec<String> = (0..=MAX_DOMAINS).map(|i| format!("d{i}.test")).collect();
        assert!(auto_provision_domains(&many).is_err());
    }

    #[test]
    fn an_email_domain_matches_only_its_exact_ascii_form() {
        assert_eq!(
            email_domain("ann@EXAMPLE.com").as_deref(),
            Some("example.com")
        );
        // A look-alike in another script is its own name.
        assert_eq!(
            email_domain("ann@ex\u{0430}mple.com").as_deref(),
            Some("xn--exmple-4nf.com")
        );
        assert_eq!(email_domain("ann@example.com."), None, "trailing dot");
        assert_eq!(email_domain("ann@b@example.com"), None);
        assert_eq!(email_domain("@example.com"), None);
        assert_eq!(email_domain("ann@"), None);
        assert_eq!(email_domain("ann@com"), None);
    }

    #[test]
    fn admin_groups_are_trimmed_and_unique_ignoring_case() {
        assert_eq!(
            admin_groups(&list(&[" Amove Admins ", "0b1c-guid"])).ok(),
            Some(vec!["0b1c-guid".into(), "Amove Admins".into()])
        );
        assert!(admin_groups(&list(&["Admins", "admins"])).is_err());
        assert!(admin_groups(&list(&[" "])).is_err());
        assert!(admin_groups(&list(&["a\u{7}b"])).is_err());
        assert!(admin_groups(&[("x".repeat(MAX_GROUP_LEN + 1))]).is_err());
        assert!(same_group("CN=Admins,OU=x", "cn=admins,ou=x"));
    }

    #[test]
    fn session_lifetime_is_a_day_to_a_year() {
        assert_eq!(session_lifetime_days(1).ok(), Some(1));
        assert_eq!(session_lifetime_days(365).ok(), Some(365));
        for bad in [0, -1, 366] {
            assert!(session_lifetime_days(bad).is_err(), "{bad}");
        }
    }
}
