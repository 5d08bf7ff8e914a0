//! The code exchange at the token endpoint (oauth2's client with the PKCE verifier and the
//! client authentication discovery names) and the sign-in it completes: the ID token
//! validated, Entra's tenant checked, the identity read.

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType as BasicErrorType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RequestTokenError, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
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
        let auth = d.client_auth(x.client_secret.is_some())?;
        let mut client: TokenClient = oauth2::Client::new(ClientId::new(x.client_id.to_string()))
            .set_token_uri(TokenUrl::from_url(d.token_endpoint.clone()))
            .set_redirect_uri(redirect)
            .set_auth_type(match auth {
                discovery::ClientAuth::Basic => AuthType::BasicAuth,
                // Without a secret oauth2 sends `client_id` in the body and nothing else.
                discovery::ClientAuth::Post | discovery::ClientAuth::None => AuthType::RequestBody,
            });
        if let Some(secret) = x.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        let resp = client
            .exchange_code(AuthorizationCode::new(x.code.expose().to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(x.pkce_verifier.expose().to_string()))
            .request_async(&http::CappedClient {
                http: &self.http(),
                limit: MAX_TOKEN_RESPONSE_BYTES,
            })
            .await
            .map_err(|e| self.token_error(e, auth))?;
        let id_token = resp.extra_fields().id_token.clone().ok_or_else(|| {
            Error::Sso("the IdP's token response has no id_token (is the openid scope allowed for this application?)".into())
        })?;
        Ok((
            Secret::new(id_token),
            Secret::new(resp.access_token().secret().clone()),
        ))
    }

    fn token_error(
        &self,
        e: RequestTokenError<http::BodyError, BasicErrorResponse>,
        auth: discovery::ClientAuth,
    ) -> Error {
        let msg = match e {
            RequestTokenError::ServerResponse(r) => {
                let code = idp_text(r.error().as_ref());
                let mut msg = match r.error_description() {
                    Some(d) => format!(
                        "the IdP refused the authorization code: {code} ({})",
                        idp_text(d)
                    ),
                    None => format!("the IdP refused the authorization code: {code}"),
                };
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
