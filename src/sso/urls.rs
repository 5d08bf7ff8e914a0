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

/// Microsoft Graph's hosts (global and national clouds): the only places the agent sends a
/// Graph access token, the user's at sign-in and the admin's `User.Read.All` at an import.
pub const GRAPH_HOSTS: &[&str] = &[
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
];

/// The environment variable of the test setting that lets `GraphURL` name a loopback URL
/// (a test double of Graph). Never set in production: the agent warns at start and records
/// every such configuration in the audit trail.
pub const LOOPBACK_GRAPH_ENV: &str = "AMOVE_TEST_ALLOW_LOOPBACK_GRAPH";

/// Parses a `GraphURL`: the root of one of [`GRAPH_HOSTS`] over https (default port, no path,
/// query or credentials) or, only when `allow_loopback` (the test setting
/// [`LOOPBACK_GRAPH_ENV`]), a loopback URL.
pub fn parse_graph_url(raw: &str, allow_loopback: bool) -> Result<Url, String> {
    let rule = format!(
        "GraphURL must be Microsoft Graph's root URL in your cloud: one of {}",
        GRAPH_HOSTS
            .iter()
            .map(|h| format!("https://{h}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let url = Url::parse(raw.trim()).map_err(|_| rule.clone())?;
    if allow_loopback && is_loopback_host(&url) && matches!(url.scheme(), "http" | "https") {
        return parse_idp_url("GraphURL", raw);
    }
    let host_ok = matches!(url.host(), Some(Host::Domain(d))
        if GRAPH_HOSTS.iter().any(|h| d.eq_ignore_ascii_case(h)));
    if url.scheme() != "https"
        || !host_ok
        || url.port().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(rule);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_urls_are_microsofts_hosts_only() {
        for ok in [
            "https://graph.microsoft.com",
            "https://GRAPH.microsoft.com/",
            "https://graph.microsoft.us",
            "https://dod-graph.microsoft.us/",
            "https://microsoftgraph.chinacloudapi.cn",
        ] {
            assert!(parse_graph_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "https://graph.microsoft.com.evil.example",
            "https://evil.example/graph.microsoft.com",
            "http://graph.microsoft.com",
            "https://graph.microsoft.com:8443",
            "https://user@graph.microsoft.com",
            "https://graph.microsoft.com/v1.0",
            "https://graph.microsoft.com/?x=1",
            "http://127.0.0.1:9999/graph",
            "not a url",
        ] {
            let e = parse_graph_url(bad, false).unwrap_err();
            assert!(e.starts_with("GraphURL must be"), "{bad}: {e}");
        }
        // The test setting lets loopback through, and only loopback.
        assert!(parse_graph_url("http://127.0.0.1:9999/graph", true).is_ok());
        assert!(parse_graph_url("https://evil.example", true).is_err());
    }

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
