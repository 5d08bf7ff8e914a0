//! The connection test of an OIDC configuration: a dry run of discovery, issuer, endpoints,
//! signing algorithms and JWKS that uses no cache and changes nothing.

use serde::Serialize;

use super::jwks::KeySet;
use super::{Oidc, discovery, id_token};
use crate::domain::Kind;

/// One item of a connection test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

impl Oidc {
    /// A dry run of a configuration: discovery, issuer, endpoints (with the client
    /// authentication a client with or without a secret would use), algorithms, JWKS.
    /// Uses no cache and changes nothing.
    pub async fn check_connection(
        &self,
        openid_url: &str,
        kind: Kind,
        has_secret: bool,
        now: i64,
    ) -> Vec<Check> {
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
        let parsed = discovery::parse(&bytes, &doc_url, kind == Kind::Entra, now)
            .and_then(|d| d.client_auth(has_secret).map(|auth| (d, auth)));
        let d = match parsed {
            Ok((d, auth)) => {
                checks.push(Check::pass(
                    ENDPOINTS,
                    format!(
                        "authorization {}, token {} ({})",
                        d.metadata.authorization_endpoint().as_str(),
                        d.token_endpoint,
                        auth.as_str()
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
