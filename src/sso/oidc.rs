//! OpenID Connect sign-in for Okta and Entra ID: discovery, authorization URL with PKCE,
//! code exchange, ID token validation, and the IdP identity a login links to.
//!
//! openidconnect builds the authorization request (its PKCE recipe) and parses the
//! discovery document; its oauth2 core exchanges the code. The ID token is validated in
//! [`id_token`] (Entra's `{tenantid}` issuer and the agent's clock need that). No HTTP
//! server types here: handlers in `api::login` translate.
//!
//! This file holds [`Oidc`], the client with its caches of discovery documents and JWKS, and
//! the ID token check against them. Beside it: `authorize` (the authorization URL),
//! `exchange` (the code exchange and the sign-in it completes), `identity` (who signed in,
//! from the claims) and `connection_check` (the dry run of a configuration).

mod authorize;
mod connection_check;
pub mod discovery;
mod exchange;
pub mod id_token;
mod identity;
pub mod jwks;
pub mod tenant;

pub use authorize::{AuthRequest, LOGIN_SCOPES, OFFLINE_ACCESS, new_pkce};
pub use connection_check::Check;
pub use exchange::{
    CodeExchange, MAX_TOKEN_RESPONSE_BYTES, RawIdToken, RefreshExchange, RefreshFailure, Refreshed,
    SignedInAtIdp,
};
pub use identity::{IdpIdentity, identity};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use url::Url;

use crate::domain::Kind;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::{http, net};
use discovery::Discovered;
use jwks::{KeySet, Lookup};

/// Timeouts and cache lifetimes.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Connect timeout for IdP requests.
    pub connect_timeout: Duration,
    /// Total timeout for one IdP request.
    pub timeout: Duration,
    /// Lifetime of cached discovery documents and JWKS, in seconds.
    pub metadata_ttl: i64,
    /// Least seconds between two JWKS fetches caused by an unknown `kid`.
    pub jwks_refetch_interval: i64,
    /// Proxy and trust store.
    pub net: net::NetSettings,
}

impl OidcSettings {
    /// From the agent's settings.
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            connect_timeout: s.idp_connect_timeout,
            timeout: s.idp_timeout,
            metadata_ttl: secs(s.idp_metadata_ttl),
            jwks_refetch_interval: secs(s.jwks_refetch_interval),
            net: s.net.clone(),
        }
    }
}

/// The shared OIDC machinery: one HTTP client and the caches.
pub struct Oidc {
    /// Rebuilt when the network setting changes ([`Oidc::set_network`]).
    http: RwLock<reqwest::Client>,
    /// The network settings from the environment or a policy, under the agent's own setting
    /// (`settings.net` at start; [`Oidc::set_base_network`] when a policy changes).
    base_net: RwLock<net::NetSettings>,
    /// Held by whoever changes the network settings (an admin's save, a policy's), so that
    /// one change's client never replaces a later one's.
    network_change: tokio::sync::Mutex<()>,
    settings: OidcSettings,
    discovery: Mutex<HashMap<(String, bool), Arc<Discovered>>>,
    jwks: jwks::Cache,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Oidc({:?})", self.settings)
    }
}

/// Text from an IdP fit for a message: no control characters, bounded length.
pub(crate) fn idp_text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    clean.trim().to_string()
}

fn describe_http_error(e: &reqwest::Error, what: &str, timeout: Duration) -> String {
    if let Some(cause) = net::describe(e) {
        format!("{cause} (the IdP's {what})")
    } else if e.is_timeout() {
        format!(
            "the IdP's {what} did not answer within {} s",
            timeout.as_secs().max(1)
        )
    } else if e.is_connect() {
        format!("could not connect to the IdP's {what}")
    } else if e.is_redirect() {
        format!("the IdP's {what} answered with a redirect, which is not followed")
    } else {
        format!("the request to the IdP's {what} failed")
    }
}

impl Oidc {
    /// The machinery with an HTTP client ([`net::client`]) that follows no redirects (SSRF),
    /// gives up after the configured timeouts and goes through the configured proxy with the
    /// OS trust store. An unusable network setting (a CA file that cannot be read) is an
    /// error: the agent does not start trusting less than it was told to.
    pub fn new(settings: OidcSettings) -> Result<Self> {
        let http = Self::client(&settings, &settings.net)?;
        Ok(Self {
            http: RwLock::new(http),
            base_net: RwLock::new(settings.net.clone()),
            network_change: tokio::sync::Mutex::new(()),
            settings,
            discovery: Mutex::new(HashMap::new()),
            jwks: jwks::Cache::default(),
        })
    }

    fn client(settings: &OidcSettings, net: &net::NetSettings) -> Result<reqwest::Client> {
        net::client(
            net,
            net::Timeouts {
                connect: settings.connect_timeout,
                total: settings.timeout,
            },
        )
        .map_err(Error::Invalid)
    }

    /// The HTTP client for IdP requests (no redirects, the configured timeouts, proxy and
    /// trust store): the directory APIs of an import use it too. Cheap: a shared handle.
    pub fn http(&self) -> reqwest::Client {
        // A panic while holding the lock leaves the previous client, which is whole.
        self.http.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The network settings from the environment or a policy (what the agent's own setting
    /// is laid over).
    pub fn base_network(&self) -> net::NetSettings {
        self.base_net
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the environment's or policy's network settings (a policy file changed); the
    /// caller applies the result with [`Oidc::set_network`].
    pub fn set_base_network(&self, net: net::NetSettings) {
        *self.base_net.write().unwrap_or_else(|p| p.into_inner()) = net;
    }

    /// Serialises changes of the network settings: hold it from reading the settings to
    /// applying (and storing) the new ones.
    pub async fn lock_network(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.network_change.lock().await
    }

    /// Whether an HTTP client can be built for `net` (its CA file readable and holding
    /// certificates), without using it.
    pub fn check_network(&self, net: &net::NetSettings) -> Result<()> {
        Self::client(&self.settings, net).map(|_| ())
    }

    /// Replaces the HTTP client with one for `net` (the network setting changed); requests
    /// under way finish with the old one. Discovery documents and keys stay cached: they do
    /// not depend on the route they came by.
    pub fn set_network(&self, net: &net::NetSettings) -> Result<()> {
        let http = Self::client(&self.settings, net)?;
        *self.http.write().unwrap_or_else(|p| p.into_inner()) = http;
        Ok(())
    }

    fn lock_discovery(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, bool), Arc<Discovered>>> {
        // A panic while holding the lock leaves a consistent map behind.
        self.discovery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// GETs a JSON document from the IdP (discovery, JWKS).
    async fn fetch(&self, url: &Url, what: &str) -> Result<Vec<u8>> {
        self.fetch_document(url, what, "application/json", discovery::MAX_DOCUMENT_BYTES)
            .await
    }

    /// GETs a document from an IdP (no redirects, the timeouts, at most `limit` bytes);
    /// errors name `what` and the URL.
    pub async fn fetch_document(
        &self,
        url: &Url,
        what: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let resp = self
            .http()
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| {
                Error::Sso(format!(
                    "{} ({url})",
                    describe_http_error(&e, what, self.settings.timeout)
                ))
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::Sso(format!(
                "the IdP's {what} at {url} answered HTTP {}",
                status.as_u16()
            )));
        }
        http::read_body(resp, limit).await.map_err(|e| {
            Error::Sso(match e {
                http::BodyError::TooLarge(n) => format!(
                    "the IdP's {what} at {url} is too large (over {} KiB)",
                    n / 1024
                ),
                http::BodyError::Http(e) => format!(
                    "{} ({url})",
                    describe_http_error(&e, what, self.settings.timeout)
                ),
            })
        })
    }

    /// The discovery document of `openid_url`, from the cache when fresh.
    pub async fn discover(
        &self,
        openid_url: &str,
        kind: Kind,
        now: i64,
    ) -> Result<Arc<Discovered>> {
        // Keyed by the configured URL as written: a hit costs no URL parsing.
        let key = (openid_url.to_string(), kind == Kind::Entra);
        if let Some(d) = self
            .lock_discovery()
            .get(&key)
            .filter(|d| now - d.fetched_at < self.settings.metadata_ttl && d.fetched_at <= now)
        {
            return Ok(d.clone());
        }
        let doc_url = discovery::document_url(openid_url)?;
        let d = Arc::new(self.discover_fresh(&doc_url, kind, now).await?);
        let mut map = self.lock_discovery();
        if map.len() > 64 {
            map.clear();
        }
        map.insert(key, d.clone());
        Ok(d)
    }

    /// How a client with a secret authenticates at `openid_url`'s token endpoint, by the
    /// discovery document in the cache (fresh or not); `None` when it has not been read.
    pub fn cached_client_auth(
        &self,
        openid_url: &str,
        kind: Kind,
    ) -> Option<discovery::ClientAuth> {
        let key = (openid_url.to_string(), kind == Kind::Entra);
        self.lock_discovery()
            .get(&key)
            .and_then(|d| d.client_auth(true).ok())
    }

    async fn discover_fresh(&self, doc_url: &Url, kind: Kind, now: i64) -> Result<Discovered> {
        let bytes = self.fetch(doc_url, "discovery document").await?;
        discovery::parse(&bytes, doc_url, kind == Kind::Entra, now)
    }

    /// Forgets the cached discovery document and JWKS of `d`, so the next sign-in fetches
    /// them again (after the IdP failed or answered something unexpected).
    pub fn forget(&self, d: &Discovered) {
        self.lock_discovery()
            .retain(|(u, _), _| u != d.document_url.as_str());
        self.jwks.remove(d.jwks_uri.as_str());
    }

    /// The key that verifies a token with this header: from the cached JWKS, or a fresh
    /// one; an unknown `kid` (the IdP may have rotated its keys) causes one refetch, at most
    /// one per `jwks_refetch_interval`.
    async fn key_for(&self, d: &Discovered, h: &id_token::Header, now: i64) -> Result<DecodingKey> {
        let uri = d.jwks_uri.as_str();
        let kid = h.kid.as_deref().unwrap_or("");
        let (mut keys, mut fresh) = match self.jwks.get(uri, now, self.settings.metadata_ttl) {
            Some(c) => (c.keys, false),
            None => (self.fetch_jwks(d, now).await?, true),
        };
        let mut refetched = false;
        loop {
            match keys.find(h.kid.as_deref(), h.alg) {
                Lookup::Found(k) => return Ok(*k),
                Lookup::Unusable(why) => return Err(refused(&why)),
                Lookup::UnknownKid if refetched => {
                    return Err(refused(&format!(
                        "its key '{kid}' is not in the IdP's JWKS (even after fetching it again)"
                    )));
                }
                Lookup::UnknownKid
                    if !self
                        .jwks
                        .may_refetch(uri, now, self.settings.jwks_refetch_interval) =>
                {
                    return Err(refused(&format!(
                        "its key '{kid}' is not in the IdP's JWKS (fetched again less than {} s \
                         ago, so not fetched again yet)",
                        self.settings.jwks_refetch_interval
                    )));
                }
                Lookup::UnknownKid if fresh => {
                    // Just fetched: fetching again would not change anything.
                    return Err(refused(&format!(
                        "its key '{kid}' is not in the IdP's JWKS (even after fetching it again)"
                    )));
                }
                Lookup::UnknownKid => {
                    keys = self.fetch_jwks(d, now).await?;
                    refetched = true;
                    fresh = true;
                }
            }
        }
    }

    async fn fetch_jwks(&self, d: &Discovered, now: i64) -> Result<Arc<KeySet>> {
        let bytes = self.fetch(&d.jwks_uri, "JWKS").await?;
        let keys = Arc::new(KeySet::parse(&bytes)?);
        self.jwks.put(d.jwks_uri.as_str(), keys.clone(), now);
        Ok(keys)
    }

    /// Validates a raw ID token: algorithm, signature (JWKS), then the claims.
    /// Returns the claims and the issuer they carried.
    #[allow(clippy::too_many_arguments)]
    pub async fn validate_id_token(
        &self,
        d: &Discovered,
        kind: Kind,
        raw: &Secret,
        client_id: &str,
        nonce: Option<&str>,
        access_token: Option<&Secret>,
        now: i64,
    ) -> Result<(Map<String, Value>, String)> {
        let raw = raw.expose();
        let header = id_token::header(raw).map_err(|r| refused(&r))?;
        let key = self.key_for(d, &header, now).await?;
        let claims = id_token::verify_signature(raw, &header, &key).map_err(|r| refused(&r))?;
        let want = id_token::Expected {
            issuer: &d.issuer,
            tenant_template: kind == Kind::Entra,
            client_id,
            nonce,
            access_token: access_token.map(Secret::expose),
            now,
        };
        let issuer = id_token::check_claims(&claims, header.alg, &want).map_err(|r| refused(&r))?;
        Ok((claims, issuer))
    }
}

/// A refused ID token (SECURITY): the reason, never the token.
fn refused(why: &str) -> Error {
    Error::Security(format!(
        "the ID token from the identity provider was refused: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idp_text_is_bounded_and_clean() {
        assert_eq!(idp_text("bad\ncode\u{7}"), "badcode");
        assert_eq!(idp_text(&"x".repeat(1000)).len(), 300);
    }
}
