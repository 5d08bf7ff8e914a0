//! The sign-in caches: what every `sso_url` reads (the account of a username, the account's
//! active configuration and callback allow-list), exact for the database's epoch, and the ids
//! of new login transactions.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::Result;
use crate::state::AppState;
use crate::store::cache::GenCache;
use crate::store::idp::{self, IdpConfig};
use crate::store::{signin_settings, transactions, users};

/// An account's active configuration and callback allow-list, as [`LoginCache`] keeps them.
pub(crate) type AccountLogin = (Option<Arc<IdpConfig>>, Arc<Vec<String>>);

/// What every `sso_url` reads — the account of a username, and the account's active
/// configuration and callback allow-list — cached exactly for [`Db::epoch`]: only this
/// process writes configurations and allow-lists, and a user's account never changes.
/// Unknown usernames are not cached (the CLI may add them at any time); one the account
/// auto-provisions ([`signin_settings::account_auto_provisioning`]) is routed to it.
///
/// [`Db::epoch`]: crate::store::Db::epoch
#[derive(Default)]
pub struct LoginCache {
    accounts_of: GenCache<String, i64>,
    accounts: GenCache<i64, AccountLogin>,
    last_purge: AtomicI64,
    /// Ids of new login transactions.
    pub(crate) ids: transactions::IdAllocator,
    /// The agent's opened SAML keys.
    pub(crate) sp_keys: crate::login::sp_keys::SpKeyCache,
    /// Parsed IdP certificates (SAML).
    pub(crate) certificates: crate::login::idp_config::CertCache,
    /// When each SAML configuration's metadata was last read.
    pub(crate) metadata_reads: crate::login::idp_metadata::RefreshTimes,
}

impl LoginCache {
    /// A cache whose login transaction ids start after `last_id` (the table's highest).
    pub fn starting_after(last_id: i64) -> Self {
        Self {
            ids: transactions::IdAllocator::after(last_id),
            ..Self::default()
        }
    }

    /// Whether expired login transactions are due to be purged (true at most once a minute).
    pub(crate) fn purge_due(&self, now: i64) -> bool {
        let last = self.last_purge.load(Ordering::Relaxed);
        now - last >= 60
            && self
                .last_purge
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

/// The account of `username` (lowercased) — its user's, else the one account auto-provisioning
/// its domain — with the account's active configuration and allow-list.
pub(crate) async fn login_context(
    state: &AppState,
    username: &str,
) -> Result<Option<(i64, AccountLogin)>> {
    // Taken before reading: a read racing a write is tagged with the epoch the write ends.
    let epoch = i64::try_from(state.db.epoch()).unwrap_or(i64::MAX);
    let cache = &state.login_cache;
    let account_id = match cache.accounts_of.get(username, epoch) {
        Some(a) => a,
        None => {
            let lookup = username.to_string();
            let found = state
                .db
                .read(move |c| {
                    if let Some(user) = users::by_email(c, &lookup)? {
                        return Ok(Some((user.account_id, true)));
                    }
                    // No such user: the one account that auto-provisions its domain, if any.
                    let Some(domain) = crate::admin::signin::email_domain(&lookup) else {
                        return Ok(None);
                    };
                    Ok(signin_settings::account_auto_provisioning(c, &domain)?.map(|a| (a, false)))
                })
                .await?;
            let Some((account_id, is_user)) = found else {
                return Ok(None);
            };
            if is_user {
                cache
                    .accounts_of
                    .put(username.to_string(), epoch, account_id);
            }
            account_id
        }
    };
    Ok(Some((
        account_id,
        account_login(state, account_id, epoch).await?,
    )))
}

/// The active configuration of account `account_id` (the ACS: the one a SAML sign-in
/// started with must still be it), from the same cache as [`login_context`].
pub(crate) async fn active_config(
    state: &AppState,
    account_id: i64,
) -> Result<Option<Arc<IdpConfig>>> {
    let epoch = i64::try_from(state.db.epoch()).unwrap_or(i64::MAX);
    Ok(account_login(state, account_id, epoch).await?.0)
}

/// [`active_config`] when the cache holds it for the current epoch (`None`: not cached), for
/// callers that must not wait.
pub(crate) fn cached_active_config(
    state: &AppState,
    account_id: i64,
) -> Option<Option<Arc<IdpConfig>>> {
    let epoch = i64::try_from(state.db.epoch()).unwrap_or(i64::MAX);
    state
        .login_cache
        .accounts
        .get(&account_id, epoch)
        .map(|(config, _)| config)
}

/// The account's active configuration and allow-list, exact for `epoch` (taken before).
async fn account_login(state: &AppState, account_id: i64, epoch: i64) -> Result<AccountLogin> {
    let cache = &state.login_cache;
    if let Some(found) = cache.accounts.get(&account_id, epoch) {
        return Ok(found);
    }
    let (config, allowed) = state
        .db
        .read(move |c| {
            Ok((
                idp::active(c, account_id)?.map(Arc::new),
                Arc::new(crate::store::callback_urls::list(c, account_id)?),
            ))
        })
        .await?;
    cache
        .accounts
        .put(account_id, epoch, (config.clone(), allowed.clone()));
    Ok((config, allowed))
}
