//! The agent's own SAML keys, per account: generated on first use (RSA-2048, self-signed),
//! the private key sealed at rest ([`crate::crypto::seal`], bound to the account, the use and
//! the certificate), opened once per process and cached.
//!
//! The signing key signs AuthnRequests when the configuration asks for it; every key in force
//! is published in the SP metadata.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openssl::pkey::{PKey, Private};

use crate::error::{Error, Result};
use crate::sso::saml::sp_keys::{self as protocol, KeyUse};
use crate::state::AppState;
use crate::store::accounts;
use crate::store::audit::{self, NewEvent};
use crate::store::sp_keys::{self, SpKeyRow};

/// A key pair in force.
pub struct SpKey {
    /// Row id.
    pub id: i64,
    /// What it is for.
    pub key_use: KeyUse,
    /// The certificate (PEM) the SP metadata publishes.
    pub certificate_pem: String,
    /// End of the certificate's validity.
    pub not_after: i64,
    /// `None` while active; when a rotated-out key retires.
    pub retire_at: Option<i64>,
    /// The private key.
    pub private: PKey<Private>,
}

impl std::fmt::Debug for SpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKey")
            .field("id", &self.id)
            .field("key_use", &self.key_use)
            .field("not_after", &self.not_after)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// The opened keys of an account and use. Only this module writes keys, and it forgets an
/// account's entries when it does; a retiring key's date is checked at every read.
#[derive(Default)]
pub struct SpKeyCache(Mutex<HashMap<(i64, KeyUse), Keys>>);

/// An account's keys of one use, the active one first.
pub type Keys = Arc<Vec<Arc<SpKey>>>;

impl SpKeyCache {
    fn get(&self, key: (i64, KeyUse)) -> Option<Keys> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }
    fn put(&self, key: (i64, KeyUse), keys: Keys) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, keys);
    }
    /// Forgets the account's keys (after a write).
    fn forget(&self, account_id: i64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(a, _), _| *a != account_id);
    }
}

/// The seal context of a private key: a sealed key copied to another account, use or
/// certificate does not open.
fn seal_context(account_id: i64, key_use: KeyUse, certificate_pem: &str) -> String {
    format!(
        "sp_keys:{account_id}:{}:{}",
        key_use.as_str(),
        crate::crypto::sha256_hex(certificate_pem)
    )
}

/// The account's keys of `key_use` in force now, the active one first; generates the first
/// one when there is none.
pub async fn in_force(state: &AppState, account_id: i64, key_use: KeyUse) -> Result<Keys> {
    let now = state.now();
    let cache = &state.login_cache.sp_keys;
    let keys = match cache.get((account_id, key_use)) {
        Some(keys) => keys,
        None => {
            let mut rows = read(state, account_id, key_use, now).await?;
            if rows.is_empty() {
                create(state, account_id, key_use, now).await?;
                rows = read(state, account_id, key_use, now).await?;
            }
            let opened = rows
                .into_iter()
                .map(|r| open(state, account_id, key_use, r).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            let keys = Arc::new(opened);
            cache.put((account_id, key_use), keys.clone());
            keys
        }
    };
    // A retiring key passes its date between writes: filter by the time, not the epoch.
    if keys.iter().all(|k| k.retire_at.is_none_or(|t| t > now)) {
        return Ok(keys);
    }
    Ok(Arc::new(
        keys.iter()
            .filter(|k| k.retire_at.is_none_or(|t| t > now))
            .cloned()
            .collect(),
    ))
}

/// The account's active signing key (generated on first use).
pub async fn signing_key(state: &AppState, account_id: i64) -> Result<Arc<SpKey>> {
    in_force(state, account_id, KeyUse::Signing)
        .await?
        .iter()
        .find(|k| k.retire_at.is_none())
        .cloned()
        .ok_or_else(|| Error::internal("no active SP signing key"))
}

async fn read(
    state: &AppState,
    account_id: i64,
    key_use: KeyUse,
    now: i64,
) -> Result<Vec<SpKeyRow>> {
    state
        .db
        .read(move |c| sp_keys::in_force(c, account_id, key_use.as_str(), now))
        .await
}

fn open(state: &AppState, account_id: i64, key_use: KeyUse, row: SpKeyRow) -> Result<SpKey> {
    let pkcs8 = state.sealer.open(
        &row.private_key_enc,
        &seal_context(account_id, key_use, &row.certificate),
    )?;
    let private = protocol::private_key(&pkcs8).map_err(Error::internal)?;
    Ok(SpKey {
        id: row.id,
        key_use,
        certificate_pem: row.certificate,
        not_after: row.not_after,
        retire_at: row.retire_at,
        private,
    })
}

/// Generates and stores the account's first key of `key_use` (audited). A concurrent first
/// use may store its key first; then this one is dropped unused.
async fn create(state: &AppState, account_id: i64, key_use: KeyUse, now: i64) -> Result<()> {
    let account = state
        .db
        .read(move |c| accounts::by_id(c, account_id))
        .await?
        .ok_or_else(|| Error::NotFound("no such account".into()))?;
    let subject = format!("Amove agent SP {}", account.identifier);
    let generated = tokio::task::spawn_blocking(move || protocol::generate(&subject, now))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)?;
    let certificate = generated.certificate_pem;
    let sealed = state.sealer.seal(
        &generated.private_pkcs8,
        &seal_context(account_id, key_use, &certificate),
    )?;
    let not_after = generated.not_after;
    let detail = format!(
        "SP {} key generated (RSA {}, certificate valid until {})",
        key_use.as_str(),
        protocol::SP_KEY_BITS,
        crate::clock::rfc3339(not_after)
    );
    let written = state
        .db
        .write(move |tx| {
            if sp_keys::insert_active(
                tx,
                account_id,
                key_use.as_str(),
                &sealed,
                &certificate,
                not_after,
                now,
            )? {
                let ev = NewEvent::ok(Some(account_id), "agent", "saml.sp_key", detail);
                audit::record(tx, &ev, now)?;
            }
            Ok(())
        })
        .await;
    state.login_cache.sp_keys.forget(account_id);
    written
}
