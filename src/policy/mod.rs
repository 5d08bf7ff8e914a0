//! Managed configuration: the policy file an MDM or GPO pushes (docs/policy.md). It is read at
//! start and whenever it changes; what it declares is applied to the database and locked
//! against the admins' API, what it leaves out stays theirs.
//!
//! `parse` turns the file into a [`Policy`] (validated by the same functions as the API's
//! input), `file` reads it safely, `apply` writes it, `watch` follows the file.

pub mod apply;
pub mod file;
pub mod parse;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::domain::Kind;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::net::{NetSettings, ProxySource};
use crate::store::idp::IdpConfig;

pub use parse::parse;

/// The platform's policy file: `/etc/amove/policy.json` (Linux and other Unix),
/// `/Library/Application Support/Amove/policy.json` (macOS), `%ProgramData%\Amove\policy.json`
/// (Windows).
pub fn default_path() -> PathBuf {
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Amove/policy.json")
    } else if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("Amove").join("policy.json")
    } else {
        PathBuf::from("/etc/amove/policy.json")
    }
}

/// How the file treats one key: absent (not managed), `null` (managed: none), or a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Declared<T> {
    /// Not in the file: not managed, the admins' to set.
    #[default]
    Absent,
    /// `null`: managed, and none is allowed.
    Null,
    /// Managed, with this value.
    Value(T),
}

impl<T> Declared<T> {
    /// Whether the file declares the key (`null` included).
    pub fn is_declared(&self) -> bool {
        !matches!(self, Declared::Absent)
    }
}

/// The account a policy configures (created if missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    /// Its identifier, validated like `init --account`.
    pub identifier: String,
    /// Its display name, when the policy sets one.
    pub display_name: Option<String>,
}

/// A provider configuration the policy declares, validated like `setup_*`'s body.
#[derive(Debug, Clone)]
pub struct IdpPolicy {
    /// The configuration (account id, `Id` and sealed secret filled in when applied).
    pub config: IdpConfig,
    /// The client secret it gives, if any.
    pub secret: Option<Secret>,
    /// What the audit trail says of it (never secrets).
    pub summary: String,
}

/// `Network`: the machine's network settings for IdP requests ([`NetworkPolicy::lay_over`]
/// the environment's; `login::network` applies them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// `ProxyURL`: the proxy for HTTPS calls to identity providers, parsed as the network
    /// setting parses it (it may carry credentials: its `Debug` masks them).
    pub proxy_url: Declared<crate::sso::net::ProxyUrl>,
    /// `CaFile`: an extra CA bundle (PEM) to trust, an absolute path.
    pub ca_file: Declared<PathBuf>,
}

impl NetworkPolicy {
    /// `base` (the environment's settings) with what the policy file at `path` declares laid
    /// over it: a `ProxyURL` is the proxy, managed (`null`: no proxy, managed too: neither the
    /// environment's nor the agent's own setting applies); a `CaFile` replaces
    /// `AMOVE_AGENT_CA_FILE` (`null`: no extra CA). What it leaves out stays as in `base`.
    pub fn lay_over(&self, mut base: NetSettings, path: &Path) -> NetSettings {
        let file = path.display().to_string();
        match &self.proxy_url {
            Declared::Absent => {}
            Declared::Null => {
                base.proxy = None;
                base.proxy_managed_by = Some(file);
            }
            Declared::Value(url) => {
                base.proxy = Some((url.clone(), ProxySource::Policy(file.clone())));
                base.proxy_managed_by = Some(file);
            }
        }
        match &self.ca_file {
            Declared::Absent => {}
            Declared::Null => base.extra_ca_file = None,
            Declared::Value(ca) => base.extra_ca_file = Some(ca.clone()),
        }
        base
    }
}

/// The account's sign-in settings the policy declares (`AutoProvision`,
/// `AutoProvisionDomains`, `AdminGroups`, `SessionLifetimeDays`), each managed on its own.
/// `null` is the setting's "none": off, an empty list, the default lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigninPolicy {
    /// `AutoProvision`.
    pub auto_provision: Declared<bool>,
    /// `AutoProvisionDomains`, validated and sorted.
    pub auto_provision_domains: Declared<Vec<String>>,
    /// `AdminGroups`, validated and sorted.
    pub admin_groups: Declared<Vec<String>>,
    /// `SessionLifetimeDays`.
    pub session_lifetime_days: Declared<i64>,
}

impl SigninPolicy {
    /// `current` with what the policy declares laid over it.
    pub fn lay_over(
        &self,
        mut current: crate::store::signin_settings::SigninSettings,
    ) -> crate::store::signin_settings::SigninSettings {
        fn set<T: Clone>(d: &Declared<T>, none: T, into: &mut T) {
            match d {
                Declared::Absent => {}
                Declared::Null => *into = none,
                Declared::Value(v) => *into = v.clone(),
            }
        }
        set(&self.auto_provision, false, &mut current.auto_provision);
        set(
            &self.auto_provision_domains,
            Vec::new(),
            &mut current.auto_provision_domains,
        );
        set(&self.admin_groups, Vec::new(), &mut current.admin_groups);
        set(
            &self.session_lifetime_days,
            crate::store::signin_settings::DEFAULT_SESSION_LIFETIME_DAYS,
            &mut current.session_lifetime_days,
        );
        current
    }

    /// The keys it declares.
    pub fn managed_keys(&self) -> impl Iterator<Item = ManagedKey> {
        [
            (self.auto_provision.is_declared(), ManagedKey::AutoProvision),
            (
                self.auto_provision_domains.is_declared(),
                ManagedKey::AutoProvisionDomains,
            ),
            (self.admin_groups.is_declared(), ManagedKey::AdminGroups),
            (
                self.session_lifetime_days.is_declared(),
                ManagedKey::SessionLifetime,
            ),
        ]
        .into_iter()
        .filter_map(|(declared, k)| declared.then_some(k))
    }
}

/// A parsed, validated policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of its bytes (hex), to tell one version from another in logs and the audit.
    pub digest: String,
    /// `Account`.
    pub account: Option<AccountPolicy>,
    /// `Okta`, `EntraId`, `Saml`, in that order.
    pub idps: Vec<(Kind, Declared<IdpPolicy>)>,
    /// `CallbackUrls` (validated and normalised; `null` means an empty list).
    pub callback_urls: Declared<Vec<String>>,
    /// `AccessTokenLifetimeSeconds` (`null`: tokens valid until revoked, as in the API).
    pub access_token_lifetime: Declared<i64>,
    /// `Network`.
    pub network: NetworkPolicy,
    /// The sign-in settings.
    pub signin: SigninPolicy,
}

impl Policy {
    /// Every setting the policy manages.
    pub fn managed_keys(&self) -> Vec<ManagedKey> {
        let mut keys = Vec::new();
        if self.account.is_some() {
            keys.push(ManagedKey::Account);
        }
        keys.extend(
            self.idps
                .iter()
                .filter(|(_, d)| d.is_declared())
                .map(|(k, _)| ManagedKey::Idp(*k)),
        );
        if self.callback_urls.is_declared() {
            keys.push(ManagedKey::CallbackUrls);
        }
        if self.access_token_lifetime.is_declared() {
            keys.push(ManagedKey::AccessTokenLifetime);
        }
        keys.extend(self.signin.managed_keys());
        if self.network.proxy_url.is_declared() {
            keys.push(ManagedKey::ProxyUrl);
        }
        if self.network.ca_file.is_declared() {
            keys.push(ManagedKey::CaFile);
        }
        keys
    }
}

/// A setting a policy can manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManagedKey {
    /// `Account` (identifier, display name).
    Account,
    /// `Okta`, `EntraId` or `Saml`.
    Idp(Kind),
    /// `CallbackUrls`.
    CallbackUrls,
    /// `AccessTokenLifetimeSeconds`.
    AccessTokenLifetime,
    /// `AutoProvision`.
    AutoProvision,
    /// `AutoProvisionDomains`.
    AutoProvisionDomains,
    /// `AdminGroups`.
    AdminGroups,
    /// `SessionLifetimeDays`.
    SessionLifetime,
    /// `Network.ProxyURL`.
    ProxyUrl,
    /// `Network.CaFile`.
    CaFile,
}

impl ManagedKey {
    /// The key as the file spells it.
    pub fn label(self) -> &'static str {
        match self {
            ManagedKey::Account => "Account",
            ManagedKey::Idp(Kind::Okta) => "Okta",
            ManagedKey::Idp(Kind::Entra) => "EntraId",
            ManagedKey::Idp(Kind::Saml) => "Saml",
            ManagedKey::CallbackUrls => "CallbackUrls",
            ManagedKey::AccessTokenLifetime => "AccessTokenLifetimeSeconds",
            ManagedKey::AutoProvision => "AutoProvision",
            ManagedKey::AutoProvisionDomains => "AutoProvisionDomains",
            ManagedKey::AdminGroups => "AdminGroups",
            ManagedKey::SessionLifetime => "SessionLifetimeDays",
            ManagedKey::ProxyUrl => "Network.ProxyURL",
            ManagedKey::CaFile => "Network.CaFile",
        }
    }

    /// Every key, in the file's order.
    pub const ALL: [ManagedKey; 12] = [
        ManagedKey::Account,
        ManagedKey::Idp(Kind::Okta),
        ManagedKey::Idp(Kind::Entra),
        ManagedKey::Idp(Kind::Saml),
        ManagedKey::CallbackUrls,
        ManagedKey::AccessTokenLifetime,
        ManagedKey::AutoProvision,
        ManagedKey::AutoProvisionDomains,
        ManagedKey::AdminGroups,
        ManagedKey::SessionLifetime,
        ManagedKey::ProxyUrl,
        ManagedKey::CaFile,
    ];

    /// The key a label names.
    pub fn parse(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.label() == label)
    }
}

/// What the last good policy manages: what the API refuses to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    /// The policy file.
    pub path: PathBuf,
    /// The account it configures (`None`: it manages only machine-wide settings).
    pub account_id: Option<i64>,
    /// The settings it declares.
    pub keys: Vec<ManagedKey>,
    /// SHA-256 of the file it came from.
    pub digest: String,
}

impl Managed {
    /// Whether `key` of `account_id` is managed.
    pub fn manages(&self, account_id: i64, key: ManagedKey) -> bool {
        let scoped = !matches!(key, ManagedKey::ProxyUrl | ManagedKey::CaFile);
        self.keys.contains(&key) && (!scoped || self.account_id == Some(account_id))
    }
}

/// Where the policy stands, as `GET /sso/policy` shows it.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The file the agent follows (`None`: policies are off).
    pub path: Option<PathBuf>,
    /// What the last good policy manages.
    pub managed: Option<Arc<Managed>>,
    /// The last good policy itself (the network settings read `Network` from it).
    pub policy: Option<Arc<Policy>>,
    /// Why the file as it is now is not applied, if it is not.
    pub error: Option<String>,
    /// When the last good policy was applied.
    pub applied_at: Option<i64>,
}

/// The agent's policy state, shared by the watcher (which writes it) and the API (which
/// consults it before every change of a setting, and again inside that change's write
/// transaction: the watcher publishes a new policy inside the transaction that applies it, so
/// no admin's write can slip between the two). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PolicyState(Arc<RwLock<Status>>);

impl PolicyState {
    /// A state following `path`.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self(Arc::new(RwLock::new(Status {
            path,
            ..Status::default()
        })))
    }

    /// A snapshot of the state.
    pub fn status(&self) -> Status {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The last good policy, if any.
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.status().policy
    }

    /// The policy file managing `key` of `account_id`, if one does.
    pub fn managed_by(&self, account_id: i64, key: ManagedKey) -> Option<PathBuf> {
        let s = self.0.read().ok()?;
        let m = s.managed.as_ref()?;
        m.manages(account_id, key).then(|| m.path.clone())
    }

    /// Fails with `ACCESS`, naming the policy file, when `key` of `account_id` is managed.
    pub fn refuse_if_managed(&self, account_id: i64, key: ManagedKey) -> Result<()> {
        match self.managed_by(account_id, key) {
            Some(path) => Err(managed_error(key, &path)),
            None => Ok(()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.0.write() {
            f(&mut s);
        }
    }
}

/// The refusal of a change to a managed setting.
pub fn managed_error(key: ManagedKey, path: &Path) -> Error {
    Error::Access(format!(
        "{} is managed by the policy file {}; change it there (an MDM or GPO pushes it), not \
         through the API",
        key.label(),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::net::ProxyUrl;

    fn env() -> NetSettings {
        NetSettings {
            proxy: Some((
                ProxyUrl::parse("http://env-proxy:8080").unwrap_or_else(|e| panic!("{e}")),
                ProxySource::Env("HTTPS_PROXY"),
            )),
            no_proxy: Some("corp.example".into()),
            extra_ca_file: Some(PathBuf::from("/env/ca.pem")),
            proxy_managed_by: None,
        }
    }

    #[test]
    fn the_policys_network_is_laid_over_the_environments() {
        let path = Path::new("/etc/amove/policy.json");
        let file = Some("/etc/amove/policy.json".to_string());
        // Nothing declared: the environment's, unmanaged.
        assert_eq!(NetworkPolicy::default().lay_over(env(), path), env());

        let proxy =
            ProxyUrl::parse("http://u:pw@policy-proxy:3128").unwrap_or_else(|e| panic!("{e}"));
        let set = NetworkPolicy {
            proxy_url: Declared::Value(proxy.clone()),
            ca_file: Declared::Value(PathBuf::from("/etc/amove/ca.pem")),
        }
        .lay_over(env(), path);
        assert_eq!(
            set.proxy,
            Some((proxy, ProxySource::Policy("/etc/amove/policy.json".into())))
        );
        assert_eq!(set.extra_ca_file, Some(PathBuf::from("/etc/amove/ca.pem")));
        assert_eq!(
            set.no_proxy.as_deref(),
            Some("corp.example"),
            "NO_PROXY kept"
        );
        assert_eq!(set.managed_by(), file.as_deref());

        // null: none, and managed (the environment's proxy and CA file do not apply).
        let none = NetworkPolicy {
            proxy_url: Declared::Null,
            ca_file: Declared::Null,
        }
        .lay_over(env(), path);
        assert_eq!(
            (none.proxy.as_ref(), none.extra_ca_file.as_ref()),
            (None, None)
        );
        assert_eq!(none.managed_by(), file.as_deref());

        // Only a CA file: the proxy stays the environment's and is not managed.
        let ca_only = NetworkPolicy {
            proxy_url: Declared::Absent,
            ca_file: Declared::Value(PathBuf::from("/etc/amove/ca.pem")),
        }
        .lay_over(env(), path);
        assert_eq!(ca_only.proxy, env().proxy);
        assert_eq!(ca_only.managed_by(), None);
    }
}
