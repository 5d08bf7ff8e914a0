//! Following the policy file: read at start, then polled (its fingerprint: size, times, inode,
//! owner, mode) every few seconds; a change applies without a restart. A file that cannot be
//! trusted, parsed or applied is refused with a log line and an audit event, and the agent
//! keeps its last good configuration — across restarts too, since what that configuration
//! manages (and its `Network`, sealed) is remembered in the data directory. A policy's
//! `Network` becomes the base of the network settings once the rest of it is applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::policy::file::{self, Fingerprint, Read};
use crate::policy::{Declared, Managed, ManagedKey, NetworkPolicy, apply};
use crate::secret::Secret;
use crate::sso::net::NetSettings;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};

/// Where the data directory remembers what the last good policy manages.
pub const MANAGED_FILE: &str = "policy-managed.json";

/// What [`MANAGED_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Remembered {
    path: PathBuf,
    account_id: Option<i64>,
    managed: Vec<String>,
    digest: String,
    applied_at: i64,
    /// The policy's `Network` as a policy file of its own (`{"Network": {…}}`), sealed: its
    /// proxy URL may carry a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
}

/// The seal context of [`Remembered::network`].
const NETWORK_SEAL_CONTEXT: &str = "policy-managed:network";

/// Reads the policy at start (before the first request is served).
pub async fn load_at_start(state: &AppState) -> Option<Fingerprint> {
    let path = state.policy.status().path?;
    // Only what the same file managed: another --policy starts afresh.
    if let Some(r) = remembered(&state.settings.data_dir).filter(|r| r.path == path) {
        let keys = r
            .managed
            .iter()
            .filter_map(|l| ManagedKey::parse(l))
            .collect();
        state.policy.update(|s| {
            s.managed = Some(Arc::new(Managed {
                path: r.path,
                account_id: r.account_id,
                keys,
                digest: r.digest,
            }));
            s.applied_at = Some(r.applied_at);
        });
        // The network settings it set stay in force until the file says otherwise (refresh
        // below) — also when the file is now refused.
        if let Some(net) = r.network.and_then(|n| remembered_network(state, &path, &n)) {
            follow_network(state, net).await;
        }
    }
    refresh(state, &path).await
}

/// Polls the policy file until the agent stops.
pub async fn watch(state: AppState, mut last: Option<Fingerprint>) {
    let Some(path) = state.policy.status().path else {
        return;
    };
    let mut tick = tokio::time::interval(state.settings.policy_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let p = path.clone();
        // A stat is a blocking call, if a cheap one.
        let now = tokio::task::spawn_blocking(move || file::fingerprint(&p))
            .await
            .ok()
            .flatten();
        if now != last {
            last = refresh(&state, &path).await;
        }
    }
}

/// Reads, validates and applies the file as it is now; returns the fingerprint it had.
pub async fn refresh(state: &AppState, path: &Path) -> Option<Fingerprint> {
    let p = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || (file::fingerprint(&p), file::read(&p))).await;
    let (fp, read) = match read {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "policy file: reading failed");
            return None;
        }
    };
    let bytes = match read {
        Ok(Read::Bytes(b)) => b,
        Ok(Read::Absent) => {
            release(state, path).await;
            return fp;
        }
        Err(reason) => {
            refuse(state, path, &reason).await;
            return fp;
        }
    };
    let (now, graph) = (state.now(), state.settings.loopback_graph);
    let policy = match crate::policy::parse(path, &bytes, now, graph) {
        Ok(p) => p,
        Err(problems) => {
            refuse(state, path, &problems.join("; ")).await;
            return fp;
        }
    };
    // Checked before anything is applied: a file whose Network the agent cannot use is
    // refused as a whole.
    let net = policy.network.lay_over(state.settings.net.clone(), path);
    // Building the client reads the CA file and the OS trust store: blocking.
    let check = {
        let (s, n) = (state.clone(), net.clone());
        tokio::task::spawn_blocking(move || crate::login::network::check_base(&s, &n)).await
    };
    match check {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            refuse(state, path, &format!("Network: {}", e.user_text())).await;
            return fp;
        }
        Err(e) => {
            tracing::error!(error = %e, "policy file: checking its Network failed");
            return None;
        }
    }
    let before = state.policy.status();
    let publish = {
        let (shared, policy, path) = (
            state.policy.clone(),
            Arc::new(policy.clone()),
            path.to_path_buf(),
        );
        move |account_id| {
            let managed = Managed {
                path,
                account_id,
                keys: policy.managed_keys(),
                digest: policy.digest.clone(),
            };
            shared.update(|s| {
                s.managed = Some(Arc::new(managed));
                s.policy = Some(policy);
            });
        }
    };
    match apply::apply(&state.db, &state.sealer, &policy, now, publish).await {
        Ok(applied) => {
            let recovered = before.error.is_some();
            let labels: Vec<&str> = policy.managed_keys().iter().map(|k| k.label()).collect();
            tracing::info!(
                path = %path.display(),
                digest = %policy.digest,
                managed = %labels.join(", "),
                changes = applied.changes.len(),
                "policy file applied"
            );
            for c in &applied.changes {
                tracing::info!(path = %path.display(), "policy: {c}");
            }
            if !applied.changes.is_empty() || recovered {
                let detail = format!(
                    "policy file {} applied (sha256 {}): manages {}; {} change(s)",
                    path.display(),
                    &policy.digest[..12.min(policy.digest.len())],
                    labels.join(", "),
                    applied.changes.len()
                );
                record(
                    state,
                    applied.account_id,
                    NewEvent::ok(applied.account_id, apply::ACTOR, "policy.apply", detail),
                )
                .await;
            }
            if let Some(managed) = state.policy.status().managed {
                remember(state, &managed, &policy.network, now);
            }
            state.policy.update(|s| {
                s.error = None;
                s.applied_at = Some(now);
            });
            follow_network(state, net).await;
        }
        Err(e) => {
            // Published inside a transaction that did not commit: back to the last good one.
            state.policy.update(|s| {
                s.managed = before.managed;
                s.policy = before.policy;
            });
            refuse(state, path, &e.user_text()).await;
            // A fault (the database busy or failing) is retried at the next poll; the file
            // itself was fine.
            if matches!(e, crate::Error::Internal(_)) {
                return None;
            }
        }
    }
    fp
}

/// The file is gone: the settings it managed are the admins' again (with their values), and
/// the network settings the environment's.
async fn release(state: &AppState, path: &Path) {
    if state.policy.status().managed.is_some() {
        tracing::info!(
            path = %path.display(),
            "policy file removed: the settings it managed are the admins' again"
        );
    }
    forget(&state.settings.data_dir);
    state.policy.update(|s| {
        s.managed = None;
        s.policy = None;
        s.error = None;
        s.applied_at = None;
    });
    follow_network(state, state.settings.net.clone()).await;
}

/// Makes `net` the base of the network settings, unless it already is (a client rebuilt for
/// nothing would drop its open connections).
async fn follow_network(state: &AppState, net: NetSettings) {
    if state.oidc.base_network() == net {
        return;
    }
    if let Err(e) = crate::login::network::set_base(state, net).await {
        tracing::error!(
            "policy: the network settings cannot be applied ({}); the previous ones stay in \
             force",
            e.user_text()
        );
    }
}

/// `Network` as a policy file of its own, `None` when the policy declares none of it.
fn network_json(n: &NetworkPolicy) -> Option<String> {
    fn value<T>(d: &Declared<T>, text: impl Fn(&T) -> String) -> Option<serde_json::Value> {
        match d {
            Declared::Absent => None,
            Declared::Null => Some(serde_json::Value::Null),
            Declared::Value(v) => Some(text(v).into()),
        }
    }
    let o: serde_json::Map<String, serde_json::Value> = [
        ("ProxyURL", value(&n.proxy_url, |u| u.expose().to_string())),
        ("CaFile", value(&n.ca_file, |p| p.display().to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), v?)))
    .collect();
    (!o.is_empty()).then(|| serde_json::json!({ "Network": o }).to_string())
}

/// The network settings a remembered `Network` sets, read (and checked) as the file was.
fn remembered_network(state: &AppState, path: &Path, sealed: &str) -> Option<NetSettings> {
    let json = state
        .sealer
        .open_secret(sealed, NETWORK_SEAL_CONTEXT)
        .inspect_err(|e| tracing::warn!(error = %e, "policy: the remembered Network is unreadable"))
        .ok()?;
    let (now, graph) = (state.now(), state.settings.loopback_graph);
    match crate::policy::parse(path, json.expose().as_bytes(), now, graph) {
        Ok(p) => Some(p.network.lay_over(state.settings.net.clone(), path)),
        Err(problems) => {
            tracing::warn!(
                "policy: the remembered Network no longer applies: {}",
                problems.join("; ")
            );
            None
        }
    }
}

/// The file is refused: logged, audited, and the last good configuration kept.
async fn refuse(state: &AppState, path: &Path, reason: &str) {
    let msg = format!(
        "policy file {} refused: {reason}; the agent keeps its last good configuration",
        path.display()
    );
    tracing::error!("{msg}");
    state.policy.update(|s| s.error = Some(msg.clone()));
    let account_id = state.policy.status().managed.and_then(|m| m.account_id);
    record(
        state,
        account_id,
        NewEvent::refused(account_id, apply::ACTOR, "policy.apply", msg),
    )
    .await;
}

async fn record(state: &AppState, account_id: Option<i64>, e: NewEvent) {
    let now = state.now();
    let r = state
        .db
        .write_uncached(move |tx| audit::record(tx, &e, now))
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, ?account_id, "policy: the audit event could not be recorded");
    }
}

fn remembered(data_dir: &Path) -> Option<Remembered> {
    let bytes = std::fs::read(data_dir.join(MANAGED_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn remember(state: &AppState, m: &Managed, network: &NetworkPolicy, now: i64) {
    let data_dir = &state.settings.data_dir;
    let network = network_json(network).and_then(|n| {
        state
            .sealer
            .seal_secret(&Secret::new(n), NETWORK_SEAL_CONTEXT)
            .inspect_err(|e| tracing::warn!(error = %e, "policy: cannot seal its Network"))
            .ok()
    });
    let r = Remembered {
        path: m.path.clone(),
        account_id: m.account_id,
        managed: m.keys.iter().map(|k| k.label().to_string()).collect(),
        digest: m.digest.clone(),
        applied_at: now,
        network,
    };
    // Written aside and renamed, so a crash never leaves half a file (the data directory is
    // the user's alone; what is secret in it is sealed).
    let tmp = data_dir.join(format!("{MANAGED_FILE}.tmp"));
    let write = serde_json::to_vec_pretty(&r)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, data_dir.join(MANAGED_FILE)));
    if let Err(e) = write {
        tracing::warn!(error = %e, "policy: cannot remember what it manages");
    }
}

fn forget(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(MANAGED_FILE));
}
