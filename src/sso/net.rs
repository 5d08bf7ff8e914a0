//! Outgoing HTTPS to identity providers (discovery, token, JWKS, directory): the one place
//! their HTTP client is built, with the OS trust store plus an admin's extra CA bundle, and
//! the proxy settings (an explicit proxy URL, else `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`,
//! else the system proxy on Windows and macOS; `NO_PROXY`; loopback never proxied). Errors of
//! a request are turned into words that name the cause (an untrusted certificate and its
//! issuer, a proxy's 407) by [`describe`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use url::Url;

use crate::sso::urls;

/// The environment variable naming an extra CA bundle (PEM) the agent trusts besides the OS
/// trust store: a TLS-inspecting proxy's CA, a private IdP's CA.
pub const CA_FILE_ENV: &str = "AMOVE_AGENT_CA_FILE";

/// Largest CA bundle read.
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// A proxy URL (`http://[user:password@]host:port`); its password never appears in `Debug`,
/// `Display` or [`masked`](Self::masked).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(Url);

impl ProxyUrl {
    /// Parses a proxy URL as admins write it: `http://` or `https://` (no scheme: `http://`),
    /// a host, an optional port and credentials, no path, query or fragment. The error says
    /// what is wrong without repeating the value (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        let rule = "must be http://[USER:PASSWORD@]HOST[:PORT] (or https://)";
        let url = Url::parse(&with_scheme).map_err(|_| rule.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{rule}; {} proxies are not supported",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(rule.to_string());
        }
        if (url.path() != "/" && !url.path().is_empty()) || url.query().is_some() {
            return Err(format!("{rule}, without a path or query"));
        }
        if url.fragment().is_some() {
            return Err(format!("{rule}, without a fragment"));
        }
        Ok(Self(url))
    }

    /// The URL with its credentials: for the HTTP client and sealed storage only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with the password replaced by `********`: what logs and reads show.
    pub fn masked(&self) -> String {
        let mut u = self.0.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some("********"));
        }
        u.to_string()
    }

    /// Whether the URL carries a user name or password.
    pub fn has_credentials(&self) -> bool {
        !self.0.username().is_empty() || self.0.password().is_some()
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyUrl({})", self.masked())
    }
}

impl std::fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Where the proxy of IdP requests comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySource {
    /// A policy file (its path): managed, the agent's own setting does not replace it.
    Policy(String),
    /// The agent's own setting (the network setting of the API).
    Setting,
    /// An environment variable (its name).
    Env(&'static str),
}

/// The network settings of IdP requests, from the environment and the agent's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSettings {
    /// The proxy for every IdP request that is not exempt; `None`: the system proxy (Windows,
    /// macOS), else none.
    pub proxy: Option<(ProxyUrl, ProxySource)>,
    /// Hosts reached directly (`NO_PROXY` syntax: `corp.example, .internal, 10.0.0.0/8, *`).
    /// Loopback hosts always are.
    pub no_proxy: Option<String>,
    /// An extra CA bundle (PEM) trusted besides the OS trust store.
    pub extra_ca_file: Option<PathBuf>,
    /// The policy file whose `Network.ProxyURL` manages the proxy (a URL, or `null`: none):
    /// the agent's own setting is not laid over it.
    pub proxy_managed_by: Option<String>,
}

impl NetSettings {
    /// From the process environment: [`CA_FILE_ENV`], `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY`, `NO_PROXY` (upper or lower case).
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From variables looked up by `var`. Every proxied request is https (IdP URLs are https
    /// unless loopback, and loopback is never proxied), so the proxy is the first set of
    /// `HTTPS_PROXY`, `ALL_PROXY` and `HTTP_PROXY`, each upper case first: an admin who set
    /// only `HTTP_PROXY` gets that proxy too.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let proxy = match set(["HTTPS_PROXY", "https_proxy"])
            .or_else(|| set(["ALL_PROXY", "all_proxy"]))
            .or_else(|| set(["HTTP_PROXY", "http_proxy"]))
        {
            Some((name, v)) => Some((
                ProxyUrl::parse(&v).map_err(|e| format!("{name} {e}"))?,
                ProxySource::Env(name),
            )),
            None => None,
        };
        Ok(Self {
            proxy,
            no_proxy: set(["NO_PROXY", "no_proxy"]).map(|(_, v)| v),
            extra_ca_file: var(CA_FILE_ENV)
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
            proxy_managed_by: None,
        })
    }

    /// The policy file that manages the proxy (sets one, or none), if one does.
    pub fn managed_by(&self) -> Option<&str> {
        match &self.proxy {
            Some((_, ProxySource::Policy(file))) => Some(file),
            _ => self.proxy_managed_by.as_deref(),
        }
    }

    /// These settings with the agent's own proxy (and its `NO_PROXY` list, when it has one)
    /// in place of the environment's; a proxy a policy manages stays.
    pub fn with_setting(mut self, proxy: Option<ProxyUrl>, no_proxy: Option<String>) -> Self {
        if self.managed_by().is_some() {
            return self;
        }
        if let Some(p) = proxy {
            self.proxy = Some((p, ProxySource::Setting));
        }
        if no_proxy.is_some() {
            self.no_proxy = no_proxy;
        }
        self
    }

    /// One line for the log: where requests go, never a password.
    pub fn summary(&self) -> String {
        let proxy = match &self.proxy {
            Some((p, ProxySource::Policy(file))) => format!("proxy {p} (policy {file})"),
            Some((p, ProxySource::Setting)) => format!("proxy {p} (agent setting)"),
            Some((p, ProxySource::Env(name))) => format!("proxy {p} (from {name})"),
            None => {
                let none = if cfg!(any(target_os = "macos", windows)) {
                    "the system proxy, if any"
                } else {
                    "no proxy"
                };
                match &self.proxy_managed_by {
                    Some(file) => format!("{none} (policy {file})"),
                    None => none.into(),
                }
            }
        };
        let no = self
            .no_proxy
            .as_deref()
            .map_or(String::new(), |n| format!(", NO_PROXY {n}"));
        let ca = self
            .extra_ca_file
            .as_deref()
            .map_or(String::new(), |f| format!(", extra CA {}", f.display()));
        format!("IdP requests: {proxy}{no}; loopback direct; OS trust store{ca}")
    }
}

/// Timeouts of IdP requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting (and the proxy's tunnel) gives up after this long.
    pub connect: Duration,
    /// A whole request gives up after this long.
    pub total: Duration,
}

/// The HTTP client for IdP requests: no redirects (SSRF), the timeouts, the trust store of
/// [`tls_config`] and the proxy rules of `net`.
pub fn client(net: &NetSettings, t: Timeouts) -> Result<reqwest::Client, String> {
    let tls = tls_config(net.extra_ca_file.as_deref())?;
    let route = Route::new(net);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(t.connect)
        .timeout(t.total)
        .user_agent(concat!("amove-agent/", env!("CARGO_PKG_VERSION")))
        .use_preconfigured_tls(tls)
        // One rule for every request (this also turns off reqwest's own reading of the
        // environment, so the rules below are all there is).
        .proxy(reqwest::Proxy::custom(move |url| route.proxy_for(url)))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// Which proxy a request goes through.
struct Route {
    /// The explicit or environment proxy, with its credentials.
    explicit: Option<ProxyUrl>,
    /// Decides whether a host is exempt (and, without an explicit proxy, the system's proxy).
    matcher: hyper_util::client::proxy::matcher::Matcher,
}

impl Route {
    fn new(net: &NetSettings) -> Self {
        let no = net.no_proxy.clone().unwrap_or_default();
        let matcher = match &net.proxy {
            Some((p, _)) => hyper_util::client::proxy::matcher::Matcher::builder()
                .all(p.expose().to_string())
                .no(no)
                .build(),
            // The system's settings (Windows registry, macOS SystemConfiguration) where the
            // crate reads them. Elsewhere nothing: the environment was read into `net`
            // already (or deliberately not, as in tests), and is not read behind its back.
            None if cfg!(any(target_os = "macos", windows)) => {
                hyper_util::client::proxy::matcher::Matcher::from_system()
            }
            None => hyper_util::client::proxy::matcher::Matcher::builder().build(),
        };
        Self {
            explicit: net.proxy.as_ref().map(|(p, _)| p.clone()),
            matcher,
        }
    }

    /// The proxy for `url`, or `None` to connect directly: always for loopback hosts (a local
    /// IdP, a test double), for hosts `NO_PROXY` names, and when no proxy is configured.
    fn proxy_for(&self, url: &Url) -> Option<String> {
        if is_loopback(url) {
            return None;
        }
        let uri: http::Uri = url.as_str().parse().ok()?;
        let hit = self.matcher.intercept(&uri)?;
        Some(match &self.explicit {
            Some(p) => p.expose().to_string(),
            None => hit.uri().to_string(),
        })
    }
}

/// Loopback by name or address, `*.localhost` included (RFC 6761).
fn is_loopback(url: &Url) -> bool {
    urls::is_loopback_host(url)
        || url
            .host_str()
            .is_some_and(|h| h.to_ascii_lowercase().ends_with(".localhost"))
}

/// The TLS configuration of IdP requests: the OS trust store (rustls-platform-verifier: the
/// system's verifier on Windows and macOS, the system's CA store on Linux, which honours
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus the certificates of `extra_ca_file`. A Linux system
/// without any CA store falls back to the bundled Mozilla roots, with a warning. The
/// verifier's refusals name the certificate's issuer ([`describe`]).
pub fn tls_config(extra_ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let extra = match extra_ca_file {
        Some(f) => read_ca_file(f)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner: Arc<dyn ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(
            extra.iter().cloned(),
            provider.clone(),
        ) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::warn!(
                    "the OS trust store could not be used ({e}); IdP certificates are checked \
                     against the bundled Mozilla roots{}",
                    if extra.is_empty() {
                        ""
                    } else {
                        " and the extra CA file"
                    }
                );
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                roots.add_parsable_certificates(extra);
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("TLS verifier: {e}"))?
            }
        };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NamingVerifier { inner }))
        .with_no_client_auth())
}

/// The certificates of a PEM bundle; an unreadable file, or one holding no certificate, is
/// an error naming the file (the agent does not start half-trusting).
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    read_ca_bundle(path).map_err(|e| format!("{CA_FILE_ENV} {e}"))
}

/// [`read_ca_file`] for any source of the path (the policy file's `Network.CaFile` too): the
/// error names the path, not the setting.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let named = |why: String| format!("{}: {why}", path.display());
    let len = std::fs::metadata(path)
        .map_err(|e| named(e.to_string()))?
        .len();
    if len > MAX_CA_FILE_BYTES {
        return Err(named(format!(
            "larger than {} MiB",
            MAX_CA_FILE_BYTES >> 20
        )));
    }
    let pem = std::fs::read(path).map_err(|e| named(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(format!("not a PEM certificate bundle ({e})")))?;
    if certs.is_empty() {
        return Err(named("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// A refused server certificate, with what the admin needs to fix it.
#[derive(Debug)]
struct Refused {
    /// The certificate's issuer (its distinguished name).
    issuer: String,
    /// The host the agent connected to.
    host: String,
    /// Why the verifier refused it.
    cause: CertificateError,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuer = &self.issuer;
        match &self.cause {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => write!(
                f,
                "the IdP's certificate has expired (issuer: {issuer}); check the time of this \
                 computer, or ask the IdP's admin"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                write!(
                    f,
                    "the IdP's certificate is not valid for {} (issuer: {issuer}); check the URL",
                    self.host
                )
            }
            _ => write!(
                f,
                "the IdP's certificate is not trusted (issuer: {issuer}); if your company \
                 inspects TLS, install its CA or set {CA_FILE_ENV}"
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// Delegates to the OS verifier, and names the issuer of a certificate it refuses.
#[derive(Debug)]
struct NamingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for NamingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(cause) => {
                    let issuer = x509_parser::parse_x509_certificate(end_entity)
                        .map(|(_, c)| crate::sso::oidc::idp_text(&c.issuer().to_string()))
                        .unwrap_or_else(|_| "unreadable".into());
                    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                        Arc::new(Refused {
                            issuer,
                            host: server_name.to_str().into_owned(),
                            cause,
                        }),
                    )))
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// The cause of a failed request in words, when it is one an admin can act on: a refused
/// certificate (naming its issuer), a proxy refusing (407 or another answer) or unreachable.
/// `None` for anything else (the callers say "could not connect", "timed out", …).
pub fn describe(e: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        // tokio-rustls wraps the TLS error into an io::Error, whose source() skips it.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(msg) = tls_words(candidate).or_else(|| proxy_words(candidate)) {
                return Some(msg);
            }
        }
        cur = err.source();
    }
    None
}

fn tls_words(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    match err.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(o))) => {
            Some(match o.downcast_ref::<Refused>() {
                Some(r) => r.to_string(),
                None => format!(
                    "the IdP's certificate is not trusted ({o}); if your company inspects TLS, \
                     install its CA or set {CA_FILE_ENV}"
                ),
            })
        }
        rustls::Error::InvalidCertificate(c) => Some(format!(
            "the IdP's certificate is not accepted ({c:?}); if your company inspects TLS, \
             install its CA or set {CA_FILE_ENV}"
        )),
        other => Some(format!("the TLS connection to the IdP failed ({other})")),
    }
}

/// hyper-util's tunnel errors are not public types: they are recognised by their text, which
/// the proxy tests pin.
fn proxy_words(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let text = err.to_string();
    let what = text.strip_prefix("tunnel error: ")?;
    Some(match what {
        "proxy authorization required" => "the proxy refused the connection (407): it requires \
            credentials, or refused the ones given; set them in the proxy URL \
            (http://USER:PASSWORD@HOST:PORT)"
            .to_string(),
        "unsuccessful" => {
            "the proxy refused the connection: it did not open a tunnel to the IdP (is the \
             IdP's host allowed through the proxy?)"
                .to_string()
        }
        "failed to create underlying connection" => "could not connect to the proxy".to_string(),
        other => format!("the proxy failed: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn the_environment_names_the_proxy_https_first() -> Result<(), String> {
        let n = NetSettings::from_vars(vars(&[
            ("HTTP_PROXY", "http://plain:8080"),
            ("https_proxy", "http://secure:3128"),
            ("NO_PROXY", "corp.example"),
            (CA_FILE_ENV, "/etc/corp-ca.pem"),
        ]))?;
        let (p, source) = n.proxy.clone().ok_or("no proxy")?;
        assert_eq!(p.masked(), "http://secure:3128/");
        assert_eq!(source, ProxySource::Env("https_proxy"));
        assert_eq!(n.no_proxy.as_deref(), Some("corp.example"));
        assert_eq!(n.extra_ca_file, Some(PathBuf::from("/etc/corp-ca.pem")));
        // Only HTTP_PROXY set: every proxied request is https, so it is used.
        let n = NetSettings::from_vars(vars(&[("HTTP_PROXY", "proxy.corp:8080")]))?;
        assert_eq!(
            n.proxy.map(|(p, s)| (p.masked(), s)),
            Some((
                "http://proxy.corp:8080/".into(),
                ProxySource::Env("HTTP_PROXY")
            ))
        );
        assert_eq!(NetSettings::from_vars(vars(&[]))?, NetSettings::default());
        Ok(())
    }

    #[test]
    fn a_bad_proxy_variable_is_named_without_its_value() {
        let e = NetSettings::from_vars(vars(&[("HTTPS_PROXY", "socks5://u:hunter2@p:1080")]))
            .unwrap_err();
        assert!(e.starts_with("HTTPS_PROXY must be http://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(ProxyUrl::parse("http://p:3128/path").is_err());
        assert!(ProxyUrl::parse("http://:3128").is_err());
    }

    #[test]
    fn the_agents_setting_replaces_the_environments_proxy() -> Result<(), String> {
        let n = NetSettings::from_vars(vars(&[("HTTPS_PROXY", "http://env:1")]))?
            .with_setting(Some(ProxyUrl::parse("http://u:pw@set:2")?), None);
        assert_eq!(
            n.proxy.as_ref().map(|(p, s)| (p.masked(), s.clone())),
            Some(("http://u:********@set:2/".into(), ProxySource::Setting))
        );
        assert!(!n.summary().contains("pw@"), "{}", n.summary());
        assert!(!format!("{n:?}").contains(":pw@"), "{n:?}");
        // A policy's proxy is managed: the agent's setting does not replace it.
        let policy = NetSettings {
            proxy: Some((
                ProxyUrl::parse("http://policy:3")?,
                ProxySource::Policy("/etc/amove/policy.json".into()),
            )),
            ..NetSettings::default()
        };
        let n = policy
            .clone()
            .with_setting(Some(ProxyUrl::parse("http://set:2")?), Some("x".into()));
        assert_eq!(n, policy);
        assert_eq!(n.managed_by(), Some("/etc/amove/policy.json"));
        // `"ProxyURL": null`: managed too, with no proxy.
        let none = NetSettings {
            proxy_managed_by: Some("/etc/amove/policy.json".into()),
            ..NetSettings::default()
        };
        let n = none
            .clone()
            .with_setting(Some(ProxyUrl::parse("http://set:2")?), None);
        assert_eq!(n, none);
        assert_eq!(n.managed_by(), Some("/etc/amove/policy.json"));
        Ok(())
    }

    #[test]
    fn loopback_is_never_proxied_and_no_proxy_is_honoured() -> Result<(), String> {
        let n = NetSettings {
            proxy: Some((
                ProxyUrl::parse("http://u:p@proxy:3128")?,
                ProxySource::Setting,
            )),
            no_proxy: Some("direct.example, .internal, 10.0.0.0/8".into()),
            ..NetSettings::default()
        };
        let r = Route::new(&n);
        for direct in [
            "http://127.0.0.1:8080/x",
            "http://localhost:1/",
            "https://[::1]:9/",
            "https://idp.localhost/",
            "https://direct.example/",
            "https://sso.direct.example/",
            "https://a.internal/",
            "https://10.1.2.3/",
        ] {
            assert_eq!(r.proxy_for(&url(direct)), None, "{direct}");
        }
        for proxied in [
            "https://acme.okta.com/",
            "https://notdirect.example/",
            "https://11.0.0.1/",
        ] {
            assert_eq!(
                r.proxy_for(&url(proxied)).as_deref(),
                Some("http://u:p@proxy:3128/"),
                "{proxied}"
            );
        }
        // Nothing configured: direct (the environment is read by from_env, not here).
        let none = Route::new(&NetSettings::default());
        if !cfg!(any(target_os = "macos", windows)) {
            assert_eq!(none.proxy_for(&url("https://acme.okta.com/")), None);
        }
        // NO_PROXY=* sends everything directly.
        let all = Route::new(&NetSettings {
            no_proxy: Some("*".into()),
            ..n
        });
        assert_eq!(all.proxy_for(&url("https://acme.okta.com/")), None);
        Ok(())
    }

    #[test]
    fn an_unusable_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("missing.pem");
        let e = tls_config(Some(&missing)).unwrap_err();
        assert!(
            e.starts_with(CA_FILE_ENV) && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap_or_else(|e| panic!("{e}"));
        let e = tls_config(Some(&empty)).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn refusals_name_the_issuer_and_what_to_do() {
        let r = Refused {
            issuer: "CN=Corp Inspection CA".into(),
            host: "idp.example".into(),
            cause: CertificateError::UnknownIssuer,
        };
        assert_eq!(
            r.to_string(),
            "the IdP's certificate is not trusted (issuer: CN=Corp Inspection CA); if your \
             company inspects TLS, install its CA or set AMOVE_AGENT_CA_FILE"
        );
        let r = Refused {
            cause: CertificateError::NotValidForName,
            ..r
        };
        assert!(r.to_string().contains("not valid for idp.example"));
    }
}
