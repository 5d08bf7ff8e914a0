//! Runtime settings of the agent: address, data directory, lifetimes and limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The address the agent listens on when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:29123";
/// How long a session JWT from sign-in lasts unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a session can be renewed (`/sso/refresh`) after its sign-in, unless configured
/// otherwise: then the user signs in again.
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest JSON body the API reads.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Largest SAML ACS form body (signed responses with many attributes are large).
pub const DEFAULT_ACS_BODY_LIMIT: usize = 1024 * 1024;
/// A request that takes longer than this is cut off.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting to an identity provider gives up after this long.
pub const DEFAULT_IDP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request to an identity provider (discovery, JWKS, token) gives up after this long.
pub const DEFAULT_IDP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a fetched discovery document or JWKS is trusted before it is fetched again.
pub const DEFAULT_IDP_METADATA_TTL: Duration = Duration::from_secs(3600);
/// Least time between two JWKS fetches caused by an ID token with an unknown `kid`.
pub const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// How often the policy file is checked for a change.
pub const DEFAULT_POLICY_POLL_INTERVAL: Duration = Duration::from_secs(3);

/// Settings of one running agent.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Directory holding the database and keys.
    pub data_dir: PathBuf,
    /// Lifetime of session JWTs.
    pub session_ttl: Duration,
    /// The absolute session lifetime: renewals end this long after the sign-in.
    pub session_max_age: Duration,
    /// Largest JSON request body.
    pub body_limit: usize,
    /// Largest SAML ACS body.
    pub acs_body_limit: usize,
    /// Cut-off for a whole request.
    pub request_timeout: Duration,
    /// Connect timeout for requests to identity providers.
    pub idp_connect_timeout: Duration,
    /// Total timeout for one request to an identity provider.
    pub idp_timeout: Duration,
    /// Cache lifetime of discovery documents and JWKS.
    pub idp_metadata_ttl: Duration,
    /// Rate limit of JWKS refetches on an unknown `kid`.
    pub jwks_refetch_interval: Duration,
    /// Test setting: `GraphURL` may name a loopback URL (a Graph test double). Off in
    /// production; see [`crate::sso::urls::LOOPBACK_GRAPH_ENV`].
    pub loopback_graph: bool,
    /// The managed configuration (policy) file the agent follows; `None`: none.
    pub policy_path: Option<PathBuf>,
    /// How often the policy file is checked for a change.
    pub policy_poll_interval: Duration,
    /// Proxy and trust store of requests to identity providers, as the environment (and a
    /// policy) set them; the network setting stored through the API is laid over it.
    pub net: crate::sso::net::NetSettings,
}

impl Settings {
    /// Defaults for `data_dir`, everything else as documented (the policy file: the
    /// platform's, [`crate::policy::default_path`]).
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            addr,
            data_dir,
            session_ttl: DEFAULT_SESSION_TTL,
            session_max_age: DEFAULT_SESSION_MAX_AGE,
            body_limit: DEFAULT_BODY_LIMIT,
            acs_body_limit: DEFAULT_ACS_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idp_connect_timeout: DEFAULT_IDP_CONNECT_TIMEOUT,
            idp_timeout: DEFAULT_IDP_TIMEOUT,
            idp_metadata_ttl: DEFAULT_IDP_METADATA_TTL,
            jwks_refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL,
            loopback_graph: false,
            policy_path: Some(crate::policy::default_path()),
            policy_poll_interval: DEFAULT_POLICY_POLL_INTERVAL,
            net: Default::default(),
        }
    }
}

/// The platform's per-user data directory for the agent
/// (`~/.local/share/amove-agent`, `~/Library/Application Support/amove-agent`,
/// `%APPDATA%\amove-agent`), or `./amove-agent-data` when the platform has none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("amove-agent"))
        .unwrap_or_else(|| PathBuf::from("amove-agent-data"))
}

/// Parses a `--addr` value: `IP:PORT`, or `localhost:PORT` meaning 127.0.0.1.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let candidate = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_string(),
    };
    candidate
        .parse()
        .map_err(|_| format!("invalid address {s:?}: expected IP:PORT, e.g. 127.0.0.1:29123"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(parse_addr("127.0.0.1:0").map(|a| a.port()), Ok(0));
        assert_eq!(
            parse_addr("localhost:29123").map(|a| a.to_string()),
            Ok("127.0.0.1:29123".into())
        );
        assert!(parse_addr("nonsense").is_err());
    }
}
