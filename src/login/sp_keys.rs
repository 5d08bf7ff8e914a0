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
    Ok(not_retired(keys, now))
}

/// [`in_force`] when the keys are opened and cached (`None`: they must be read, or made),
/// for callers that must not wait.
pub fn cached_in_force(state: &AppState, account_id: i64, key_use: KeyUse) -> Option<Keys> {
    let keys = state.login_cache.sp_keys.get((account_id, key_use))?;
    Some(not_retired(keys, state.now()))
}

/// `keys` without those retired at `now`: a retiring key passes its date between writes, so
/// they are filtered by the time, not the epoch.
fn not_retired(keys: Keys, now: i64) -> Keys {
    if keys.iter().all(|k| k.retire_at.is_none_or(|t| t > now)) {
        return keys;
    }
    Arc::new(
        keys.iter()
            .filter(|k| k.retire_at.is_none_or(|t| t > now))
            .cloned()
            .collect(),
    )
}

/// The account's signing key in use (generated on first use; see [`signing_in_use`]).
pub async fn signing_key(state: &AppState, account_id: i64) -> Result<Arc<SpKey>> {
    let keys = in_force(state, account_id, KeyUse::Signing).await?;
    signing_in_use(&keys)
        .cloned()
        .ok_or_else(|| Error::internal("no SP signing key"))
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
    let k = new_key(state, account_id, &account.identifier, key_use, now).await?;
    let detail = format!(
        "SP {} key generated (RSA {}, certificate valid until {})",
        key_use.as_str(),
        protocol::SP_KEY_BITS,
        crate::clock::rfc3339(k.not_after)
    );
    let written = state
        .db
        .write(move |tx| {
            if k.store(tx, account_id, now)? {
                let ev = NewEvent::ok(Some(account_id), "agent", "saml.sp_key", detail);
                audit::record(tx, &ev, now)?;
            }
            Ok(())
        })
        .await;
    state.login_cache.sp_keys.forget(account_id);
    written
}

/// The key that signs AuthnRequests now: during a rotation the retiring one (the IdP knows
/// it; the new certificate is published beside it until the rotation ends), else the active
/// one.
fn signing_in_use(keys: &[Arc<SpKey>]) -> Option<&Arc<SpKey>> {
    keys.iter()
        .find(|k| k.retire_at.is_some())
        .or_else(|| keys.iter().find(|k| k.retire_at.is_none()))
}

/// Grace periods an admin may choose for a rotation, in days.
pub const GRACE_DAYS: std::ops::RangeInclusive<i64> = 1..=365;
/// The grace period when none is given.
pub const DEFAULT_GRACE_DAYS: i64 = 30;

/// Starts a rotation of both of the account's SP key pairs: new ones are generated and
/// published next to the old ones, which keep working (the old signing key still signs; both
/// encryption keys decrypt) until `grace_days` have passed or [`finish_rotation`]. Refused
/// while a rotation is under way.
pub async fn rotate(state: &AppState, account_id: i64, actor: &str, grace_days: i64) -> Result<()> {
    if !GRACE_DAYS.contains(&grace_days) {
        return Err(Error::invalid(format!(
            "GraceDays must be between {} and {}",
            GRACE_DAYS.start(),
            GRACE_DAYS.end()
        )));
    }
    let now = state.now();
    let retire_at = now.saturating_add(grace_days.saturating_mul(86_400));
    // The keys exist (a rotation of keys never made would publish nothing to rotate from).
    for key_use in [KeyUse::Signing, KeyUse::Encryption] {
        let keys = in_force(state, account_id, key_use).await?;
        if let Some(k) = keys.iter().find(|k| k.retire_at.is_some()) {
            return Err(Error::invalid(format!(
                "a rotation is under way: the previous keys retire on {}; finish it first \
                 (POST /sso/saml/sp_keys/finish_rotation)",
                crate::clock::rfc3339(k.retire_at.unwrap_or(now))
            )));
        }
    }
    let account = state
        .db
        .read(move |c| accounts::by_id(c, account_id))
        .await?
        .ok_or_else(|| Error::NotFound("no such account".into()))?;
    let mut fresh = Vec::new();
    for key_use in [KeyUse::Signing, KeyUse::Encryption] {
        fresh.push(new_key(state, account_id, &account.identifier, key_use, now).await?);
    }
    let (actor, detail) = (
        actor.to_string(),
        format!(
            "SP keys rotated: new signing and encryption certificates published; the previous \
             ones retire on {}",
            crate::clock::rfc3339(retire_at)
        ),
    );
    let written = state
        .db
        .write(move |tx| {
            sp_keys::start_retiring(tx, account_id, retire_at)?;
            for k in &fresh {
                k.store(tx, account_id, now)?;
            }
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &actor, "saml.sp_keys.rotate", detail),
                now,
            )
        })
        .await;
    state.login_cache.sp_keys.forget(account_id);
    written
}

/// Ends a rotation now: the previous keys stop being published, signing and decrypting.
pub async fn finish_rotation(state: &AppState, account_id: i64, actor: &str) -> Result<()> {
    let (actor, now) = (actor.to_string(), state.now());
    let written = state
        .db
        .write(move |tx| {
            let n = sp_keys::delete_retiring(tx, account_id)?;
            if n == 0 {
                return Err(Error::invalid(
                    "no rotation is under way (POST /sso/saml/sp_keys/rotate starts one)",
                ));
            }
            audit::record(
                tx,
                &NewEvent::ok(
                    Some(account_id),
                    &actor,
                    "saml.sp_keys.finish_rotation",
                    format!("the previous SP keys are retired ({n} key pairs)"),
                ),
                now,
            )
        })
        .await;
    state.login_cache.sp_keys.forget(account_id);
    written
}

/// A generated key pair, sealed for its row.
struct NewKey {
    key_use: KeyUse,
    sealed: String,
    certificate: String,
    not_after: i64,
}

impl NewKey {
    /// Stores it as the account's active key of its use; false when there is one already.
    fn store(&self, tx: &rusqlite::Connection, account_id: i64, now: i64) -> Result<bool> {
        sp_keys::insert_active(
            tx,
            account_id,
            self.key_use.as_str(),
            &self.sealed,
            &self.certificate,
            self.not_after,
            now,
        )
    }
}

async fn new_key(
    state: &AppState,
    account_id: i64,
    identifier: &str,
    key_use: KeyUse,
    now: i64,
) -> Result<NewKey> {
    let subject = format!("Amove agent SP {identifier}");
    let generated = tokio::task::spawn_blocking(move || protocol::generate(&subject, now))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)?;
    let certificate = generated.certificate_pem;
    let sealed = state.sealer.seal(
        &generated.private_pkcs8,
        &seal_context(account_id, key_use, &certificate),
    )?;
    Ok(NewKey {
        key_use,
        sealed,
        certificate,
        not_after: generated.not_after,
    })
}

/// What an admin sees of a key pair.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Row id.
    pub id: i64,
    /// What it is for.
    pub key_use: KeyUse,
    /// The certificate (PEM, public).
    pub certificate_pem: String,
    /// End of the certificate's validity.
    pub not_after: i64,
    /// `None` while active; when a rotated-out key retires.
    pub retire_at: Option<i64>,
    /// For a signing key: whether it is the one signing now.
    pub signs: bool,
}

/// The account's key pairs in force, both uses (generated on first use).
pub async fn list(state: &AppState, account_id: i64) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for key_use in [KeyUse::Signing, KeyUse::Encryption] {
        let keys = in_force(state, account_id, key_use).await?;
        let signing = signing_in_use(&keys).map(|k| k.id);
        out.extend(keys.iter().map(|k| KeyInfo {
            id: k.id,
            key_use,
            certificate_pem: k.certificate_pem.clone(),
            not_after: k.not_after,
            retire_at: k.retire_at,
            signs: key_use == KeyUse::Signing && Some(k.id) == signing,
        }));
    }
    Ok(out)
}
