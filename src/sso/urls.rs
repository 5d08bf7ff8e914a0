//! URL rules for identity provider endpoints and callbacks.

use std::net::IpAddr;

use url::{Host, Url};

/// True for `localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// True when `ip` is a loopback address.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Parses an identity provider URL: absolute, https (http only for loopback hosts, so local
/// IdPs work), with a host, no credentials and no fragment. The error names `field`.
pub fn parse_idp_url(field: &str, raw: &str) -> Result<Url, String> {
    let rule =
        format!("{field} must be an absolute https URL (http is allowed only for loopback hosts)");
    let url = Url::parse(raw.trim()).map_err(|_| rule.clone())?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        _ => return Err(rule),
    }
    if url.host().is_none() {
        return Err(rule);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{field} must not contain a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(format!("{field} must not contain a fragment (#...)"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        for ok in [
            "https://acme.okta.com/.well-known/openid-configuration",
            "http://127.0.0.1:8080/x",
            "http://localhost:3000",
            "http://[::1]:9/",
        ] {
            assert!(parse_idp_url("OpenIdURL", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else_naming_the_field() {
        for bad in [
            "",
            "acme.okta.com",
            "/relative",
            "http://acme.okta.com/",
            "http://localhost.evil.test/",
            "ftp://127.0.0.1/",
            "javascript:alert(1)",
            "file:///etc/passwd",
        ] {
            let e = parse_idp_url("OpenIdURL", bad).err().unwrap_or_default();
            assert!(
                e.starts_with("OpenIdURL must be an absolute https URL"),
                "{bad}: {e}"
            );
        }
        assert!(parse_idp_url("X", "https://u:p@a.test/").is_err());
        assert!(parse_idp_url("X", "https://a.test/#f").is_err());
    }
}
