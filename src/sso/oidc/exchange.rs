//! The code exchange at the token endpoint (oauth2's client with the PKCE verifier and the
//! client authentication discovery names) and the sign-in it completes: the ID token
//! validated, Entra's tenant checked, the identity read.

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType as BasicErrorType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::discovery::{self, Discovered};
use super::identity::{IdpIdentity, identity};
use super::{Oidc, describe_http_error, idp_text, tenant};
use crate::domain::Kind;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::http;

/// Largest token response read from an IdP (an ID token with a few hundred group claims
/// is tens of KiB).
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// The token response with the ID token kept as raw text, for [`id_token`](super::id_token)
/// to validate.
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

/// What a code exchange needs.
#[derive(Debug)]
pub struct CodeExchange<'a> {
    /// Okta or Entra ID.
    pub kind: Kind,
    /// Our client id.
    pub client_id: &'a str,
    /// Our client secret; `None` for a public client (`token_endpoint_auth_method` `none`:
    /// `client_id` in the body, the PKCE verifier its proof).
    pub client_secret: Option<&'a Secret>,
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

/// The outcome of a code exchange whose ID token passed every check.
#[derive(Debug)]
pub struct SignedInAtIdp {
    /// Who signed in.
    pub identity: IdpIdentity,
    /// The validated ID token claims.
    pub claims: Map<String, Value>,
    /// The access token of the same response (an import reads the directory with it).
    pub access_token: Secret,
    /// The ID token itself (kept, sealed, for RP-initiated logout's `id_token_hint`).
    pub id_token: Secret,
    /// The refresh token, when the IdP gave one (`offline_access`).
    pub refresh_token: Option<Secret>,
}

/// What redeeming a refresh token needs: the client authentication of the code exchange and
/// who the session belongs to, which a new ID token must name again.
#[derive(Debug)]
pub struct RefreshExchange<'a> {
    /// Okta or Entra ID.
    pub kind: Kind,
    /// Our client id.
    pub client_id: &'a str,
    /// Our client secret; `None` for a public client.
    pub client_secret: Option<&'a Secret>,
    /// The refresh token.
    pub refresh_token: &'a Secret,
    /// The issuer the session's identity came from (Entra: the tenant's).
    pub issuer: &'a str,
    /// The session's IdP subject (as [`identity`] reads it).
    pub subject: &'a str,
    /// Entra ID: the configuration's `AllowedTenants`.
    pub allowed_tenants: &'a [String],
    /// Now (agent clock).
    pub now: i64,
}

/// A redeemed refresh token.
#[derive(Debug)]
pub struct Refreshed {
    /// The rotated refresh token, when the IdP rotates them.
    pub refresh_token: Option<Secret>,
    /// A new ID token (validated, same subject), when the IdP sent one.
    pub id_token: Option<Secret>,
}

/// Why a refresh did not happen: the IdP (or the agent, on the ID token) refused the
/// refresh token, so it is of no further use; or the IdP could not be asked.
#[derive(Debug)]
pub enum RefreshFailure {
    /// The refresh token is refused (`invalid_grant`, a new ID token that fails a check):
    /// drop it, the user signs in again.
    Refused(String),
    /// The IdP could not be reached or answered something unusable: try again later.
    Unavailable(Error),
}

impl Oidc {
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
        let (id_token, access_token, refresh_token) = self.exchange_code(d, x).await?;
        let (claims, issuer) = self
            .validate_id_token(
                d,
                x.kind,
                &id_token,
                x.client_id,
                Some(x.nonce),
                Some(&access_token),
                x.now,
            )
            .await?;
        if x.kind == Kind::Entra {
            check_tenant(d, &claims, x.allowed_tenants)?;
        }
        let identity = identity(x.kind, &issuer, &claims)?;
        Ok(SignedInAtIdp {
            identity,
            claims,
            access_token,
            id_token,
            refresh_token,
        })
    }

    /// The client of `d`'s token endpoint, authenticating as discovery says for a client with
    /// or without a secret (the same for the code exchange and a refresh).
    fn token_client(
        d: &Discovered,
        client_id: &str,
        secret: Option<&Secret>,
    ) -> Result<(TokenClient, discovery::ClientAuth)> {
        let auth = d.client_auth(secret.is_some())?;
        let mut client: TokenClient = oauth2::Client::new(ClientId::new(client_id.to_string()))
            .set_token_uri(TokenUrl::from_url(d.token_endpoint.clone()))
            .set_auth_type(match auth {
                discovery::ClientAuth::Basic => AuthType::BasicAuth,
                // Without a secret oauth2 sends `client_id` in the body and nothing else.
                discovery::ClientAuth::Post | discovery::ClientAuth::None => AuthType::RequestBody,
            });
        if let Some(secret) = secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok((client, auth))
    }

    /// The code exchange at the token endpoint; returns (id_token, access_token,
    /// refresh_token).
    async fn exchange_code(
        &self,
        d: &Discovered,
        x: &CodeExchange<'_>,
    ) -> Result<(Secret, Secret, Option<Secret>)> {
        let redirect = RedirectUrl::new(x.redirect_uri.to_string())
            .map_err(|e| Error::invalid(format!("CallbackUrl is not a valid URL: {e}")))?;
        let (client, auth) = Self::token_client(d, x.client_id, x.client_secret)?;
        let resp = client
            .set_redirect_uri(redirect)
            .exchange_code(AuthorizationCode::new(x.code.expose().to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(x.pkce_verifier.expose().to_string()))
            .request_async(&http::CappedClient {
                http: &self.http(),
                limit: MAX_TOKEN_RESPONSE_BYTES,
            })
            .await
            .map_err(|e| self.token_error(e, auth, "authorization code"))?;
        let id_token = resp.extra_fields().id_token.clone().ok_or_else(|| {
            Error::Sso("the IdP's token response has no id_token (is the openid scope allowed for this application?)".into())
        })?;
        Ok((
            Secret::new(id_token),
            Secret::new(resp.access_token().secret().clone()),
            resp.refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
        ))
    }

    /// Redeems a refresh token at the token endpoint of `openid_url` (the same client
    /// authentication as the code exchange) and validates a new ID token as at sign-in, with
    /// no nonce (OpenID Connect Core §12.2) and the session's subject.
    pub async fn refresh(
        &self,
        openid_url: &str,
        x: &RefreshExchange<'_>,
    ) -> std::result::Result<Refreshed, RefreshFailure> {
        let d = self
            .discover(openid_url, x.kind, x.now)
            .await
            .map_err(RefreshFailure::Unavailable)?;
        let (client, auth) = Self::token_client(&d, x.client_id, x.client_secret)
            .map_err(RefreshFailure::Unavailable)?;
        let resp = client
            .exchange_refresh_token(&RefreshToken::new(x.refresh_token.expose().to_string()))
            .request_async(&http::CappedClient {
                http: &self.http(),
                limit: MAX_TOKEN_RESPONSE_BYTES,
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(RequestTokenError::ServerResponse(r)) => {
                return Err(RefreshFailure::Refused(server_refusal(&r, "refresh token")));
            }
            Err(e) => {
                self.forget(&d);
                return Err(RefreshFailure::Unavailable(self.token_error(
                    e,
                    auth,
                    "refresh token",
                )));
            }
        };
        let access_token = Secret::new(resp.access_token().secret().clone());
        let id_token = resp.extra_fields().id_token.clone().map(Secret::new);
        if let Some(raw) = &id_token {
            let checked = self
                .validate_id_token(
                    &d,
                    x.kind,
                    raw,
                    x.client_id,
                    None,
                    Some(&access_token),
                    x.now,
                )
                .await
                .and_then(|(claims, issuer)| {
                    if x.kind == Kind::Entra {
                        check_tenant(&d, &claims, x.allowed_tenants)?;
                    }
                    identity(x.kind, &issuer, &claims)
                });
            match checked {
                Ok(who) if who.issuer == x.issuer && who.subject == x.subject => {}
                Ok(_) => {
                    return Err(RefreshFailure::Refused(
                        "the ID token of the refresh names another user than the session's".into(),
                    ));
                }
                Err(Error::Sso(m)) => return Err(RefreshFailure::Unavailable(Error::Sso(m))),
                Err(e) => return Err(RefreshFailure::Refused(e.user_text())),
            }
        }
        Ok(Refreshed {
            refresh_token: resp
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
            id_token,
        })
    }

    fn token_error(
        &self,
        e: RequestTokenError<http::BodyError, BasicErrorResponse>,
        auth: discovery::ClientAuth,
        what: &str,
    ) -> Error {
        let msg = match e {
            RequestTokenError::ServerResponse(r) => {
                let mut msg = server_refusal(&r, what);
                if auth == discovery::ClientAuth::None
                    && matches!(
                        r.error(),
                        BasicErrorType::InvalidClient | BasicErrorType::UnauthorizedClient
                    )
                {
                    msg.push_str(
                        "; the agent signs in as a public client (no ClientSecret is configured): \
                         register the application at the IdP as a native/public app, or set its \
                         ClientSecret",
                    );
                }
                msg
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
}

/// The IdP's refusal at the token endpoint in its own (cleaned) words.
fn server_refusal(r: &BasicErrorResponse, what: &str) -> String {
    let code = idp_text(r.error().as_ref());
    match r.error_description() {
        Some(d) => format!("the IdP refused the {what}: {code} ({})", idp_text(d)),
        None => format!("the IdP refused the {what}: {code}"),
    }
}

/// Entra ID: the token's tenant must be one the configuration allows.
fn check_tenant(d: &Discovered, claims: &Map<String, Value>, allowed: &[String]) -> Result<()> {
    tenant::check(&d.issuer, claims, allowed).map_err(|why| {
        Error::Auth(format!(
            "{why}; sign in with an account of your organisation's tenant, or ask an admin"
        ))
    })
}
