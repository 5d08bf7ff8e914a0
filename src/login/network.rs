//! The agent's network setting for IdP requests (an admin's proxy URL and `NO_PROXY` list,
//! stored with the proxy URL sealed), laid over the environment's [`NetSettings`] and applied
//! to the OIDC client at start and whenever it changes.

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sso::net::{NetSettings, ProxySource, ProxyUrl};
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::settings;

const PROXY_URL: &str = "network.proxy_url";
const NO_PROXY: &str = "network.no_proxy";
/// Longest `NoProxy` list.
pub const MAX_NO_PROXY: usize = 2048;

/// The stored network setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSetting {
    /// The proxy of IdP requests, replacing the environment's.
    pub proxy: Option<ProxyUrl>,
    /// Hosts reached directly, replacing the environment's `NO_PROXY`.
    pub no_proxy: Option<String>,
}

/// The seal context of the stored proxy URL (it may carry a password).
fn seal_context() -> String {
    format!("agent_settings:{PROXY_URL}")
}

/// Reads the stored setting (blocking: at start, and inside reads).
fn load_from(state: &AppState, c: &rusqlite::Connection) -> Result<NetworkSetting> {
    let proxy = match settings::get(c, PROXY_URL)? {
        Some(sealed) => {
            let url = state.sealer.open_secret(&sealed, &seal_context())?;
            Some(ProxyUrl::parse(url.expose()).map_err(Error::internal)?)
        }
        None => None,
    };
    Ok(NetworkSetting {
        proxy,
        no_proxy: settings::get(c, NO_PROXY)?,
    })
}

/// The stored setting.
pub async fn load(state: &AppState) -> Result<NetworkSetting> {
    let s = state.clone();
    state.db.read(move |c| load_from(&s, c)).await
}

/// What IdP requests use: the environment's (and policy's) settings with the stored one laid
/// over them (a proxy a policy manages stays).
pub fn effective(state: &AppState, stored: &NetworkSetting) -> NetSettings {
    state
        .oidc
        .base_network()
        .with_setting(stored.proxy.clone(), stored.no_proxy.clone())
}

/// A policy file set new network settings (or its `Network` went away: the environment's):
/// they become the base the stored setting is laid over, and apply at once. Nothing changes
/// when they cannot be used (the client for them is built first).
pub async fn set_base(state: &AppState, base: NetSettings) -> Result<()> {
    let _change = state.oidc.lock_network().await;
    let stored = load(state).await?;
    let net = base.clone().with_setting(stored.proxy, stored.no_proxy);
    state.oidc.set_network(&net)?;
    state.oidc.set_base_network(base);
    tracing::info!("{}", net.summary());
    Ok(())
}

/// Whether `base` could become the base (see [`set_base`]): checked before a policy is
/// applied, so that a file whose `Network` the agent cannot use is refused as a whole.
pub fn check_base(state: &AppState, base: &NetSettings) -> Result<()> {
    state.oidc.check_network(base)
}

/// At start: applies the stored setting to the OIDC client. A setting that cannot be read
/// (its key lost) is logged and left out: the environment's settings apply.
pub fn apply_stored(state: &AppState) {
    let stored = state
        .db
        .read_blocking(|c| load_from(state, c))
        .unwrap_or_else(|e| {
            tracing::error!("the stored network setting cannot be read ({e}); ignoring it");
            NetworkSetting::default()
        });
    let net = effective(state, &stored);
    if stored == NetworkSetting::default() {
        // The client built at start already has these settings.
        tracing::info!("{}", net.summary());
        return;
    }
    match state.oidc.set_network(&net) {
        Ok(()) => tracing::info!("{}", net.summary()),
        Err(e) => tracing::error!("the network setting is not usable ({e}); ignoring it"),
    }
}

/// Stores `new` (validated by the caller), applies it, and audits the change under the
/// admin's account. The proxy is checked by building the client first: nothing is stored
/// that the agent could not use.
pub async fn save(
    state: &AppState,
    account_id: i64,
    actor: &str,
    new: NetworkSetting,
) -> Result<NetworkSetting> {
    // Held until the setting is stored: a policy applied meanwhile waits, then lays its
    // settings under this one.
    let _change = state.oidc.lock_network().await;
    // The policy's state first: it is published before its network settings apply (and
    // remembered across restarts), so no change slips in between.
    state
        .policy
        .refuse_if_managed(account_id, crate::policy::ManagedKey::ProxyUrl)?;
    if let Some(file) = state.oidc.base_network().managed_by() {
        return Err(Error::Access(format!(
            "the proxy is managed by the policy file {file}; change it there"
        )));
    }
    let net = effective(state, &new);
    state.oidc.set_network(&net)?;
    let sealed = match &new.proxy {
        Some(p) => Some(
            state
                .sealer
                .seal_secret(&Secret::new(p.expose()), &seal_context())?,
        ),
        None => None,
    };
    let summary = format!(
        "ProxyURL={}, NoProxy={}",
        new.proxy.as_ref().map_or("(none)".into(), ProxyUrl::masked),
        new.no_proxy.as_deref().unwrap_or("(none)")
    );
    let (actor, now, no_proxy) = (actor.to_string(), state.now(), new.no_proxy.clone());
    state
        .db
        .write(move |tx| {
            settings::put(tx, PROXY_URL, sealed.as_deref(), now)?;
            settings::put(tx, NO_PROXY, no_proxy.as_deref(), now)?;
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &actor, "network.update", summary),
                now,
            )
        })
        .await?;
    tracing::info!("network setting changed: {}", net.summary());
    Ok(new)
}

/// Where the effective proxy comes from, as the API names it.
pub fn source_name(net: &NetSettings) -> &'static str {
    match &net.proxy {
        Some((_, ProxySource::Policy(_))) => "policy",
        Some((_, ProxySource::Setting)) => "setting",
        Some((_, ProxySource::Env(name))) => name,
        None if cfg!(any(target_os = "macos", windows)) => "system",
        None => "none",
    }
}
