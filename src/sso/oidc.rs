//! OpenID Connect sign-in for Okta and Entra ID: discovery, authorization URL with PKCE,
//! code exchange, ID token validation, and the IdP identity a login links to.
//!
//! openidconnect builds the authorization request (its PKCE recipe) and parses the
//! discovery document; its oauth2 core exchanges the code. The ID token is validated in
//! [`id_token`] (Entra's `{tenantid}` issuer and the agent's clock need that). No HTTP
//! server types here: handlers in `api::login` translate.

pub mod discovery;
pub mod id_token;
pub mod jwks;
pub mod tenant;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{CsrfToken, Nonce, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::domain::Kind;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::groups::{self, SignInGroups};
use crate::sso::http;
use discovery::Discovered;
use jwks::{KeySet, Lookup};

/// Largest token response read from an IdP (an ID token with a few hundred group claims
/// is tens of KiB).
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// Scopes of a sign-in (SPEC: `openid email profile`).
pub const LOGIN_SCOPES: &[&str] = &["email", "profile"];

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
        }
    }
}

/// The shared OIDC machinery: one HTTP client and the caches.
pub struct Oidc {
    http: reqwest::Client,
    settings: OidcSettings,
    discovery: Mutex<HashMap<(String, bool), Arc<Discovered>>>,
    jwks: jwks::Cache,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Oidc({:?})", self.settings)
    }
}

/// The token response with the ID token kept as raw text, for [`id_token`] to validate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawIdToken {
    /// The compact JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for RawIdToken {}

type RawTokenResponse = StandardTokenResponse<RawIdToken, BasicTokenType>;
type TokenClient = oauth2::Client<
    BasicErrorResponse,
    RawTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What an authorization request carries besides the discovery document.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// Our client id.
    pub client_id: &'a str,
    /// The callback URL (redirect URI), exactly as the client gave it.
    pub redirect_uri: &'a str,
    /// `redirect_uri`, parsed.
    pub redirect_url: &'a Url,
    /// OAuth state.
    pub state: &'a str,
    /// OIDC nonce.
    pub nonce: &'a str,
    /// The PKCE S256 challenge.
    pub pkce_challenge: PkceCodeChallenge,
    /// The username typed in (`login_hint`).
    pub login_hint: &'a str,
    /// Scopes besides `openid`.
    pub scopes: &'a [&'a str],
}

/// What a code exchange needs.
#[derive(Debug)]
pub struct CodeExchange<'a> {
    /// Okta or Entra ID.
    pub kind: Kind,
    /// Our client id.
    pub client_id: &'a str,
    /// Our client secret.
    pub client_secret: &'a Secret,
    /// The authorization code.
    pub code: &'a Secret,
    /// The PKCE verifier.
    pub pkce_verifier: &'a Secret,
    /// The redirect URI the code was issued for.
    pub redirect_uri: &'a str,
    /// The transaction's nonce.
    pub nonce: &'a str,
    /// Entra ID: the configuration's `AllowedTenants` (see [`tenant::check`]).
    pub allowed_tenants: &'a [String],
    /// Now (agent clock).
    pub now: i64,
}

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

/// The outcome of a code exchange whose ID token passed every check.
#[derive(Debug)]
pub struct SignedInAtIdp {
    /// Who signed in.
    pub identity: IdpIdentity,
    /// The validated ID token claims.
    pub claims: Map<String, Value>,
    /// The access token of the same response (an import reads the directory with it).
    pub access_token: Secret,
}

/// One item of a connection test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }
    /// A failed check.
    pub fn fail(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// A new PKCE S256 pair: the challenge for the URL and the verifier to keep (sealed).
pub fn new_pkce() -> (PkceCodeChallenge, Secret) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (challenge, Secret::new(verifier.secret().clone()))
}

/// Text from an IdP fit for a message: no control characters, bounded length.
pub(crate) fn idp_text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    clean.trim().to_string()
}

fn describe_http_error(e: &reqwest::Error, what: &str, timeout: Duration) -> String {
    if e.is_timeout() {
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
    /// The machinery with an HTTP client that follows no redirects (SSRF) and gives up
    /// after the configured timeouts.
    pub fn new(settings: OidcSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("amove-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("http client: {e}")))?;
        Ok(Self {
            http,
            settings,
            discovery: Mutex::new(HashMap::new()),
            jwks: jwks::Cache::default(),
        })
    }

    /// The HTTP client for IdP requests (no redirects, the configured timeouts): the
    /// directory APIs of an import use it too.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn lock_discovery(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, bool), Arc<Discovered>>> {
        // A panic while holding the lock leaves a consistent map behind.
        self.discovery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// GETs a JSON document from the IdP (discovery, JWKS).
    async fn fetch(&self, url: &Url, what: &str) -> Result<Vec<u8>> {
        let resp = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
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
        http::read_body(resp, discovery::MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| {
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

    /// The URL that sends the browser to the IdP: authorization code flow with `state`,
    /// `nonce`, PKCE S256 and `login_hint`.
    pub fn authorization_url(&self, d: &Discovered, req: AuthRequest<'_>) -> Result<Url> {
        // The URI goes out exactly as given (the token request repeats it, and the IdP
        // compares strings); the parse already done is reused when it reads the same.
        let redirect = if req.redirect_url.as_str() == req.redirect_uri {
            RedirectUrl::from_url(req.redirect_url.clone())
        } else {
            RedirectUrl::new(req.redirect_uri.to_string())
                .map_err(|e| Error::invalid(format!("CallbackUrl is not a valid URL: {e}")))?
        };
        // Only the authorization endpoint is needed here (not a copy of the whole metadata
        // on every sso_url, as `from_provider_metadata` would take).
        let client = CoreClient::new(
            openidconnect::ClientId::new(req.client_id.to_string()),
            d.metadata.issuer().clone(),
            openidconnect::core::CoreJsonWebKeySet::default(),
        )
        .set_auth_uri(d.metadata.authorization_endpoint().clone())
        .set_redirect_uri(redirect);
        let (state, nonce) = (req.state.to_string(), req.nonce.to_string());
        let mut auth = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        );
        for s in req.scopes {
            auth = auth.add_scope(Scope::new((*s).to_string()));
        }
        let (url, _, _) = auth
            .set_pkce_challenge(req.pkce_challenge)
            .add_extra_param("login_hint", req.login_hint.to_string())
            .url();
        Ok(url)
    }

    /// Exchanges the code, validates the ID token and returns who signed in. Any IdP-side
    /// failure drops the cached metadata so the next attempt starts afresh.
    pub async fn sign_in(&self, openid_url: &str, x: &CodeExchange<'_>) -> Result<SignedInAtIdp> {
        let d = self.discover(openid_url, x.kind, x.now).await?;
        let result = self.sign_in_with(&d, x).await;
        if matches!(result, Err(Error::Sso(_))) {
            self.forget(&d);
        }
        result
    }

    async fn sign_in_with(&self, d: &Discovered, x: &CodeExchange<'_>) -> Result<SignedInAtIdp> {
        let (id_token, access_token) = self.exchange_code(d, x).await?;
        let (claims, issuer) = self
            .validate_id_token(
                d,
                x.kind,
                &id_token,
                x.client_id,
                x.nonce,
                Some(&access_token),
                x.now,
            )
            .await?;
        if x.kind == Kind::Entra {
            tenant::check(&d.issuer, &claims, x.allowed_tenants).map_err(|why| {
                Error::Auth(format!(
                    "{why}; sign in with an account of your organisation's tenant, or ask an \
                     admin"
                ))
            })?;
        }
        let identity = identity(x.kind, &issuer, &claims)?;
        Ok(SignedInAtIdp {
            identity,
            claims,
            access_token,
        })
    }

    /// The code exchange at the token endpoint; returns (id_token, access_token).
    async fn exchange_code(
        &self,
        d: &Discovered,
        x: &CodeExchange<'_>,
    ) -> Result<(Secret, Secret)> {
        let redirect = RedirectUrl::new(x.redirect_uri.to_string())
            .map_err(|e| Error::invalid(format!("CallbackUrl is not a valid URL: {e}")))?;
        let client: TokenClient = oauth2::Client::new(ClientId::new(x.client_id.to_string()))
            .set_client_secret(ClientSecret::new(x.client_secret.expose().to_string()))
            .set_token_uri(TokenUrl::from_url(d.token_endpoint.clone()))
            .set_redirect_uri(redirect)
            .set_auth_type(match d.auth_method {
                discovery::ClientAuth::Basic => AuthType::BasicAuth,
                discovery::ClientAuth::Post => AuthType::RequestBody,
            });
        let resp = client
            .exchange_code(AuthorizationCode::new(x.code.expose().to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(x.pkce_verifier.expose().to_string()))
            .request_async(&http::CappedClient {
                http: &self.http,
                limit: MAX_TOKEN_RESPONSE_BYTES,
            })
            .await
            .map_err(|e| self.token_error(e))?;
        let id_token = resp.extra_fields().id_token.clone().ok_or_else(|| {
            Error::Sso("the IdP's token response has no id_token (is the openid scope allowed for this application?)".into())
        })?;
        Ok((
            Secret::new(id_token),
            Secret::new(resp.access_token().secret().clone()),
        ))
    }

    fn token_error(&self, e: RequestTokenError<http::BodyError, BasicErrorResponse>) -> Error {
        let msg = match e {
            RequestTokenError::ServerResponse(r) => {
                let code = idp_text(r.error().as_ref());
                match r.error_description() {
                    Some(d) => format!(
                        "the IdP refused the authorization code: {code} ({})",
                        idp_text(d)
                    ),
                    None => format!("the IdP refused the authorization code: {code}"),
                }
            }
            RequestTokenError::Request(http::BodyError::Http(e)) => {
                describe_http_error(&e, "token endpoint", self.settings.timeout)
            }
            RequestTokenError::Request(http::BodyError::TooLarge(n)) => format!(
                "the IdP's token endpoint answered more than {} KiB, which is not a token response",
                n / 1024
            ),
            // The body may hold tokens: name only where parsing failed.
            RequestTokenError::Parse(e, _) => format!(
                "the IdP's token endpoint answered something that is not a token response \
                 (at '{}': {})",
                e.path(),
                idp_text(&e.inner().to_string())
            ),
            RequestTokenError::Other(m) => {
                format!("the IdP's token endpoint failed: {}", idp_text(&m))
            }
        };
        Error::Sso(msg)
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
        nonce: &str,
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

    /// A dry run of a configuration: discovery, issuer, endpoints, algorithms, JWKS.
    /// Uses no cache and changes nothing.
    pub async fn check_connection(&self, openid_url: &str, kind: Kind, now: i64) -> Vec<Check> {
        const DOC: &str = "Discovery document";
        const ISSUER: &str = "Issuer";
        const ENDPOINTS: &str = "Endpoints";
        const ALGS: &str = "Signing algorithms";
        const JWKS: &str = "JWKS";
        let mut checks = Vec::new();
        let skip = |checks: &mut Vec<Check>, from: usize, why: &str| {
            for name in [DOC, ISSUER, ENDPOINTS, ALGS, JWKS].iter().skip(from) {
                checks.push(Check::fail(name, format!("not checked: {why}")));
            }
        };
        let doc_url = match discovery::document_url(openid_url) {
            Ok(u) => u,
            Err(e) => {
                checks.push(Check::fail(DOC, e.to_string()));
                skip(&mut checks, 1, "no discovery document");
                return checks;
            }
        };
        let bytes = match self.fetch(&doc_url, "discovery document").await {
            Ok(b) => b,
            Err(e) => {
                checks.push(Check::fail(DOC, e.to_string()));
                skip(&mut checks, 1, "no discovery document");
                return checks;
            }
        };
        let issuer =
            match serde_json::from_slice::<openidconnect::core::CoreProviderMetadata>(&bytes) {
                Ok(m) => {
                    checks.push(Check::pass(DOC, format!("fetched {doc_url}")));
                    m.issuer().as_str().to_string()
                }
                Err(e) => {
                    checks.push(Check::fail(
                        DOC,
                        format!("{doc_url} is not a valid OpenID Provider configuration: {e}"),
                    ));
                    skip(&mut checks, 1, "no discovery document");
                    return checks;
                }
            };
        match discovery::check_issuer(&issuer, &doc_url, kind == Kind::Entra) {
            Ok(()) => checks.push(Check::pass(ISSUER, issuer.clone())),
            Err(e) => {
                checks.push(Check::fail(ISSUER, e.to_string()));
                skip(&mut checks, 2, "the issuer does not match");
                return checks;
            }
        }
        let d = match discovery::parse(&bytes, &doc_url, kind == Kind::Entra, now) {
            Ok(d) => {
                checks.push(Check::pass(
                    ENDPOINTS,
                    format!(
                        "authorization {}, token {} ({})",
                        d.metadata.authorization_endpoint().as_str(),
                        d.token_endpoint,
                        d.auth_method.as_str()
                    ),
                ));
                d
            }
            Err(e) => {
                checks.push(Check::fail(ENDPOINTS, e.to_string()));
                skip(&mut checks, 3, "the endpoints are not usable");
                return checks;
            }
        };
        let offered: Vec<String> = d
            .metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .map(|a| {
                serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        let usable: Vec<&String> = offered
            .iter()
            .filter(|a| {
                id_token::ALLOWED_ALGS
                    .iter()
                    .any(|x| format!("{x:?}") == **a)
            })
            .collect();
        if usable.is_empty() {
            checks.push(Check::fail(
                ALGS,
                format!(
                    "none of the IdP's ID token algorithms ({}) is allowed",
                    offered.join(", ")
                ),
            ));
        } else {
            checks.push(Check::pass(
                ALGS,
                usable
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        match self
            .fetch(&d.jwks_uri, "JWKS")
            .await
            .and_then(|b| KeySet::parse(&b))
        {
            Ok(k) if k.is_empty() => checks.push(Check::fail(
                JWKS,
                format!("{} has no usable signing key", d.jwks_uri),
            )),
            Ok(k) => checks.push(Check::pass(
                JWKS,
                format!("{} signing key(s): {}", k.len(), k.kids().join(", ")),
            )),
            Err(e) => checks.push(Check::fail(JWKS, e.to_string())),
        }
        checks
    }
}

/// A refused ID token (SECURITY): the reason, never the token.
fn refused(why: &str) -> Error {
    Error::Security(format!(
        "the ID token from the identity provider was refused: {why}"
    ))
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
/// The email is only a key for the first link: Okta's when not explicitly unverified,
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
            let unverified = claims.get("email_verified") == Some(&Value::Bool(false))
                || claims.get("email_verified") == Some(&Value::String("false".into()));
            let email = claim(claims, "email").filter(|e| !unverified && looks_like_email(e));
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
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn okta_identity_is_sub_and_needs_a_verified_email() -> Result<()> {
        let c = claims(json!({"sub": "00u1", "email": "Ann@Acme.test", "email_verified": true}));
        let who = identity(Kind::Okta, "https://acme.okta.com", &c)?;
        assert_eq!(who.subject, "00u1");
        assert_eq!(who.email.as_deref(), Some("ann@acme.test"));
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

    #[test]
    fn idp_text_is_bounded_and_clean() {
        assert_eq!(idp_text("bad\ncode\u{7}"), "badcode");
        assert_eq!(idp_text(&"x".repeat(1000)).len(), 300);
    }
}
