//! The callback URL policy of sign-in (RFC 8252 for native apps).
//!
//! Allowed without configuration: loopback `http://` on any port (`127.0.0.1`, `localhost`,
//! `[::1]`; RFC 8252 §7.3) and the agent's `amove://` deep-link scheme. Anything else must be
//! an https URL on the account's list, matched exactly.

use url::{Host, Url};

use crate::error::{Error, Result};

/// The agent's deep-link scheme.
pub const DEEP_LINK_SCHEME: &str = "amove";
/// Most URLs an account may allow.
pub const MAX_URLS: usize = 50;
const MAX_URL_LEN: usize = 2048;

/// How a callback URL is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// `http://` on a loopback address.
    Loopback,
    /// `amove://…`.
    DeepLink,
    /// An https URL that must be on the account's allow-list.
    Https,
}

fn is_rfc8252_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// Parses a `CallbackUrl` and classifies it; anything that can never be allowed is a
/// `SECURITY` refusal naming the rule.
pub fn classify(raw: &str) -> Result<(Url, CallbackKind)> {
    let rule = "CallbackUrl must be a loopback http URL (127.0.0.1, localhost or [::1], any \
                port), an amove:// URL, or an https URL an admin allowed for the account";
    if raw.len() > MAX_URL_LEN {
        return Err(Error::invalid(format!(
            "CallbackUrl must be at most {MAX_URL_LEN} characters"
        )));
    }
    let url = Url::parse(raw.trim()).map_err(|_| Error::Security(rule.into()))?;
    if url.fragment().is_some() {
        return Err(Error::Security(
            "CallbackUrl must not contain a fragment (#...)".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Security(
            "CallbackUrl must not contain a user name or password".into(),
        ));
    }
    let kind = match url.scheme() {
        "http" if is_rfc8252_loopback(&url) => CallbackKind::Loopback,
        s if s == DEEP_LINK_SCHEME => CallbackKind::DeepLink,
        "https" if url.host().is_some() => CallbackKind::Https,
        _ => return Err(Error::Security(rule.into())),
    };
    Ok((url, kind))
}

/// Checks a `CallbackUrl` against the policy, with `allowed` the account's list.
pub fn check(raw: &str, allowed: &[String]) -> Result<Url> {
    let (url, kind) = classify(raw)?;
    if kind == CallbackKind::Https && !allowed.iter().any(|a| a == url.as_str()) {
        return Err(Error::Security(format!(
            "CallbackUrl {url} is not on this account's list of allowed callback URLs; an admin \
             can add it with PUT /sso/callback_urls"
        )));
    }
    Ok(url)
}

/// Whether a checked `CallbackUrl` is the agent's own callback page (loopback http, any
/// port, path `/sso/callback`): the one place that shows an API client's user the
/// `Identifier` to copy back, so the only transactions whose `Identifier` is kept (sealed).
pub fn is_agent_callback(url: &Url) -> bool {
    url.scheme() == "http" && is_rfc8252_loopback(url) && url.path() == "/sso/callback"
}

/// Validates one entry of the allow-list: an absolute https URL, no credentials, no fragment.
pub fn validate_allowed(raw: &str) -> Result<String> {
    let url = Url::parse(raw.trim()).map_err(|_| {
        Error::invalid(format!(
            "CallbackUrls: '{}' is not an absolute URL",
            crate::text::truncate(raw, 100)
        ))
    })?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err(Error::invalid(format!(
            "CallbackUrls: '{url}' must be an https URL (loopback and amove:// URLs are always allowed)"
        )));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(format!(
            "CallbackUrls: '{url}' must not contain credentials or a fragment"
        )));
    }
    if url.as_str().len() > MAX_URL_LEN {
        return Err(Error::invalid(format!(
            "CallbackUrls: each URL must be at most {MAX_URL_LEN} characters"
        )));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_deep_links_are_always_allowed() {
        for ok in [
            "http://127.0.0.1:5000/cb",
            "http://localhost:29123/sso/callback",
            "http://[::1]:1/x",
            "http://127.0.0.1/cb",
            "amove://sso/callback",
        ] {
            assert!(check(ok, &[]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn https_needs_the_allow_list_and_everything_else_is_refused() {
        let allowed = vec!["https://app.acme.test/cb".to_string()];
        assert!(check("https://app.acme.test/cb", &allowed).is_ok());
        for bad in [
            "https://evil.test/cb",
            "https://app.acme.test/cb2",
            "http://evil.test/cb",
            "http://127.0.0.2:80/cb",
            "http://localhost.evil.test/cb",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://u:p@127.0.0.1/cb",
            "http://127.0.0.1/cb#frag",
            "not a url",
        ] {
            assert!(
                matches!(check(bad, &allowed), Err(Error::Security(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn allow_list_takes_only_https() {
        assert!(validate_allowed("https://app.acme.test/cb").is_ok());
        assert!(validate_allowed("http://app.acme.test/cb").is_err());
        assert!(validate_allowed("amove://x").is_err());
        assert!(validate_allowed("https://a.test/#x").is_err());
    }
}
