//! OpenID Provider discovery: where the document is, fetching it, checking its issuer.

use openidconnect::core::{CoreClientAuthMethod, CoreProviderMetadata};
use url::Url;

use crate::error::{Error, Result};
use crate::sso::urls;

/// The well-known path of the discovery document (OpenID Connect Discovery 1.0, §4).
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";
/// The placeholder Entra ID's multi-tenant documents put into `issuer`.
pub const TENANT_TEMPLATE: &str = "{tenantid}";
/// Largest discovery document or JWKS read from an IdP.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// The URL of the discovery document for an `OpenIdURL`: the URL itself when it already
/// names the document, otherwise the issuer URL with the well-known path appended.
pub fn document_url(openid_url: &str) -> Result<Url> {
    let url = urls::parse_idp_url("OpenIdURL", openid_url).map_err(Error::Sso)?;
    if url.path().ends_with(WELL_KNOWN) {
        return Ok(url);
    }
    let mut s = url.to_string();
    if url.query().is_some() {
        return Err(Error::Sso(
            "OpenIdURL must be the issuer or its discovery document, without a query".into(),
        ));
    }
    while s.ends_with('/') {
        s.pop();
    }
    Url::parse(&format!("{s}{WELL_KNOWN}")).map_err(|e| {
        Error::Sso(format!(
            "OpenIdURL cannot be turned into a discovery URL: {e}"
        ))
    })
}

/// The issuer a discovery document fetched from `doc_url` must name: the URL before the
/// well-known path (trailing slashes ignored).
fn expected_issuer(doc_url: &Url) -> String {
    let s = doc_url.as_str();
    let s = s.split_once('?').map_or(s, |(a, _)| a);
    s.strip_suffix(WELL_KNOWN)
        .unwrap_or(s)
        .trim_end_matches('/')
        .to_string()
}

/// Checks that the document's `issuer` is the URL it was fetched from (Discovery §4.3).
///
/// With `allow_tenant_template` (Entra ID), an issuer holding `{tenantid}` matches when the
/// template stands for exactly one path segment of the URL: the multi-tenant document at
/// `https://login.microsoftonline.com/common/v2.0/...` names
/// `https://login.microsoftonline.com/{tenantid}/v2.0`. Scheme, host and port must still
/// be the same.
pub fn check_issuer(issuer: &str, doc_url: &Url, allow_tenant_template: bool) -> Result<()> {
    let want = expected_issuer(doc_url);
    let got = issuer.trim_end_matches('/');
    if got == want {
        return Ok(());
    }
    if allow_tenant_template
        && let Some((before, after)) = got.split_once(TENANT_TEMPLATE)
        && !after.contains(TENANT_TEMPLATE)
        && let Some(rest) = want.strip_prefix(before)
        && let Some(segment) = rest.strip_suffix(after)
        && !segment.is_empty()
        && !segment.contains('/')
    {
        return Ok(());
    }
    Err(Error::Sso(format!(
        "the discovery document at {doc_url} names issuer '{issuer}', which is not the URL it \
         was fetched from ('{want}'); check OpenIdURL"
    )))
}

/// A discovery document that passed the checks.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// Where it was fetched from.
    pub document_url: Url,
    /// Its `issuer`, exactly as written (may hold `{tenantid}` for Entra ID).
    pub issuer: String,
    /// The parsed document.
    pub metadata: CoreProviderMetadata,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The JWKS.
    pub jwks_uri: Url,
    /// RP-initiated logout's `end_session_endpoint`, when the IdP has a usable one.
    pub end_session_endpoint: Option<Url>,
    /// When it was fetched (agent clock).
    pub fetched_at: i64,
}

impl Discovered {
    /// Whether `scopes_supported` lists `scope`.
    pub fn supports_scope(&self, scope: &str) -> bool {
        self.metadata
            .scopes_supported()
            .is_some_and(|s| s.iter().any(|x| x.as_str() == scope))
    }

    /// How a client with (`has_secret`) or without a secret authenticates at this IdP's
    /// token endpoint: see [`choose_auth`].
    pub fn client_auth(&self, has_secret: bool) -> Result<ClientAuth> {
        choose_auth(
            self.metadata.token_endpoint_auth_methods_supported(),
            has_secret,
        )
    }
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client (`none`, RFC 8252 §8.5): `client_id` in the body, the PKCE verifier
    /// its proof.
    None,
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
}

impl ClientAuth {
    /// The discovery name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
        }
    }
}

/// Picks the client authentication. Without a secret: `none`, whatever the document lists
/// (Entra ID serves public clients but does not list `none`; an IdP that refuses says so at
/// the token endpoint). With one: `client_secret_basic` when offered (and by default, as the
/// spec says when the list is absent), else `client_secret_post`.
pub fn choose_auth(
    methods: Option<&Vec<CoreClientAuthMethod>>,
    has_secret: bool,
) -> Result<ClientAuth> {
    if !has_secret {
        return Ok(ClientAuth::None);
    }
    let Some(methods) = methods else {
        return Ok(ClientAuth::Basic);
    };
    if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) {
        Ok(ClientAuth::Basic)
    } else if methods.contains(&CoreClientAuthMethod::ClientSecretPost) {
        Ok(ClientAuth::Post)
    } else {
        let offered: Vec<String> = methods
            .iter()
            .map(|m| serde_json::to_string(m).unwrap_or_default())
            .collect();
        Err(Error::Sso(format!(
            "the IdP's token endpoint supports neither client_secret_basic nor \
             client_secret_post (it offers {}); register the application as a public client \
             and remove its ClientSecret, or allow one of them",
            offered.join(", ")
        )))
    }
}

fn endpoint(field: &str, raw: &str) -> Result<Url> {
    urls::parse_idp_url(field, raw).map_err(|e| {
        Error::Sso(format!(
            "the discovery document's {field} is not usable: {e}"
        ))
    })
}

/// Parses and checks a discovery document fetched from `doc_url`.
pub fn parse(
    bytes: &[u8],
    doc_url: &Url,
    allow_tenant_template: bool,
    now: i64,
) -> Result<Discovered> {
    let metadata: CoreProviderMetadata = serde_json::from_slice(bytes).map_err(|e| {
        Error::Sso(format!(
            "the discovery document at {doc_url} is not a valid OpenID Provider configuration: {e}"
        ))
    })?;
    let issuer = metadata.issuer().as_str().to_string();
    check_issuer(&issuer, doc_url, allow_tenant_template)?;
    endpoint(
        "authorization_endpoint",
        metadata.authorization_endpoint().as_str(),
    )?;
    let token_endpoint = match metadata.token_endpoint() {
        Some(t) => endpoint("token_endpoint", t.as_str())?,
        None => {
            return Err(Error::Sso(format!(
                "the discovery document at {doc_url} has no token_endpoint"
            )));
        }
    };
    let jwks_uri = endpoint("jwks_uri", metadata.jwks_uri().as_str())?;
    Ok(Discovered {
        document_url: doc_url.clone(),
        issuer,
        metadata,
        token_endpoint,
        jwks_uri,
        end_session_endpoint: end_session_endpoint(bytes, doc_url),
        fetched_at: now,
    })
}

/// The `end_session_endpoint` of a discovery document (RP-initiated logout 1.0, not in the
/// core metadata openidconnect reads). One that is not an https URL (http only for loopback)
/// is left out, with a warning: sign-out then ends only the local session, and sign-in
/// still works.
fn end_session_endpoint(bytes: &[u8], doc_url: &Url) -> Option<Url> {
    #[derive(serde::Deserialize)]
    struct Logout {
        end_session_endpoint: Option<String>,
    }
    let raw = serde_json::from_slice::<Logout>(bytes)
        .ok()?
        .end_session_endpoint?;
    match urls::parse_idp_url("end_session_endpoint", &raw) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(%doc_url, error = %e, "the discovery document's end_session_endpoint is not usable; sign-out stays local");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn document_url_accepts_issuer_or_document() -> Result<()> {
        assert_eq!(
            document_url("https://acme.okta.com")?.as_str(),
            "https://acme.okta.com/.well-known/openid-configuration"
        );
        assert_eq!(
            document_url("https://acme.okta.com/oauth2/default/")?.as_str(),
            "https://acme.okta.com/oauth2/default/.well-known/openid-configuration"
        );
        let full = "https://acme.okta.com/.well-known/openid-configuration";
        assert_eq!(document_url(full)?.as_str(), full);
        assert!(document_url("http://evil.test/").is_err());
        Ok(())
    }

    #[test]
    fn issuer_must_be_the_url_it_was_fetched_from() {
        let doc = url("https://acme.okta.com/oauth2/default/.well-known/openid-configuration");
        assert!(check_issuer("https://acme.okta.com/oauth2/default", &doc, false).is_ok());
        assert!(check_issuer("https://acme.okta.com/oauth2/default/", &doc, false).is_ok());
        assert!(check_issuer("https://evil.okta.com/oauth2/default", &doc, false).is_err());
        assert!(check_issuer("https://acme.okta.com", &doc, false).is_err());
    }

    #[test]
    fn tenant_template_matches_one_segment_of_the_same_origin() {
        let doc =
            url("https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration");
        let tmpl = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(check_issuer(tmpl, &doc, true).is_ok());
        assert!(check_issuer(tmpl, &doc, false).is_err());
        assert!(check_issuer("https://evil.test/{tenantid}/v2.0", &doc, true).is_err());
        let deep =
            url("https://login.microsoftonline.com/a/b/v2.0/.well-known/openid-configuration");
        assert!(check_issuer(tmpl, &deep, true).is_err());
    }

    #[test]
    fn reads_a_usable_end_session_endpoint_and_leaves_out_a_bad_one() {
        let doc = url("https://idp.test/.well-known/openid-configuration");
        let with = |v: &str| {
            format!(
                r#"{{"issuer":"https://idp.test","authorization_endpoint":"https://idp.test/a",
                "token_endpoint":"https://idp.test/t","jwks_uri":"https://idp.test/k",
                "response_types_supported":["code"],"subject_types_supported":["public"],
                "id_token_signing_alg_values_supported":["RS256"],
                "scopes_supported":["openid","offline_access"]{v}}}"#
            )
        };
        let d = parse(
            with(r#","end_session_endpoint":"https://idp.test/logout""#).as_bytes(),
            &doc,
            false,
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.end_session_endpoint.as_ref().map(url::Url::as_str),
            Some("https://idp.test/logout")
        );
        assert!(d.supports_scope("offline_access"));
        assert!(!d.supports_scope("okta.users.read"));
        let d = parse(
            with(r#","end_session_endpoint":"http://evil.test/logout""#).as_bytes(),
            &doc,
            false,
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(d.end_session_endpoint.is_none());
        let d = parse(with("").as_bytes(), &doc, false, 0).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.end_session_endpoint.is_none());
    }

    #[test]
    fn basic_is_preferred_and_the_default() -> Result<()> {
        assert_eq!(choose_auth(None, true)?, ClientAuth::Basic);
        let both = vec![
            CoreClientAuthMethod::ClientSecretPost,
            CoreClientAuthMethod::ClientSecretBasic,
        ];
        assert_eq!(choose_auth(Some(&both), true)?, ClientAuth::Basic);
        let post = vec![CoreClientAuthMethod::ClientSecretPost];
        assert_eq!(choose_auth(Some(&post), true)?, ClientAuth::Post);
        let jwt = vec![CoreClientAuthMethod::PrivateKeyJwt];
        assert!(choose_auth(Some(&jwt), true).is_err());
        Ok(())
    }

    #[test]
    fn a_client_without_a_secret_is_public_whatever_the_idp_lists() -> Result<()> {
        // Entra ID's documents list only secret and JWT methods, yet serve public clients.
        let entra = vec![
            CoreClientAuthMethod::ClientSecretPost,
            CoreClientAuthMethod::PrivateKeyJwt,
            CoreClientAuthMethod::ClientSecretBasic,
        ];
        assert_eq!(choose_auth(Some(&entra), false)?, ClientAuth::None);
        assert_eq!(choose_auth(None, false)?, ClientAuth::None);
        let jwt = vec![CoreClientAuthMethod::PrivateKeyJwt];
        assert_eq!(choose_auth(Some(&jwt), false)?, ClientAuth::None);
        assert_eq!(ClientAuth::None.as_str(), "none");
        Ok(())
    }
}
