//! Pending browser logins (`login_transactions`): created by `sso_url`, consumed exactly once.
//!
//! Generic over the protocol: OIDC fills `state`, `nonce` and the sealed PKCE verifier; SAML
//! fills `saml_request_id` and, once its ACS accepted a response, `code_hash`.
//!
//! A transaction's two handles — the `Identifier` returned to the client and the `state` sent
//! through the browser — are split tokens: each is its row's integer id followed by 256 random
//! bits, base64url-encoded ([`handle`]). The id finds the row with one primary-key seek; the
//! whole value must then match (the `Identifier` is stored only as its SHA-256 hash). Ids grow
//! with time ([`IdAllocator`]), so starting a login appends to the table instead of touching
//! random index pages, and expired transactions are a prefix of the table.

use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::crypto::{random_bytes, sha256_hex};
use crate::domain::Kind;
use crate::error::{Error, Result};

/// Ids per second of creation time (see [`IdAllocator`]).
const IDS_PER_SECOND: i64 = 1 << 20;

/// Hands out transaction ids: the creation second × 2^20 plus a counter, always above the
/// last one handed out (a clock going back, or more than 2^20 logins in a second, only borrow
/// ids from the following seconds). An id says when its transaction started, which its
/// holder knows anyway, and nothing about other transactions.
#[derive(Debug, Default)]
pub struct IdAllocator(AtomicI64);

impl IdAllocator {
    /// An allocator whose ids all exceed `last` (the highest id in the table).
    pub fn after(last: i64) -> Self {
        Self(AtomicI64::new(last))
    }

    /// The next id for a transaction created at `now` (Unix seconds).
    pub fn next(&self, now: i64) -> i64 {
        let floor = now.max(1).saturating_mul(IDS_PER_SECOND);
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = floor.max(current.saturating_add(1));
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }
}

/// The highest transaction id in the table (0 when empty): where an [`IdAllocator`] starts.
pub fn max_id(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT coalesce(max(id), 0) FROM login_transactions",
        [],
        |r| r.get(0),
    )?)
}

/// Split-token handles: `base64url(id as 8 bytes, big-endian ‖ 32 random bytes)`.
pub mod handle {
    use super::*;

    /// Encoded length: 40 bytes in base64url without padding.
    pub const LEN: usize = 54;

    /// A new handle for the transaction `id`.
    pub fn new(id: i64) -> Result<String> {
        let mut b = [0u8; 40];
        b[..8].copy_from_slice(&id.to_be_bytes());
        b[8..].copy_from_slice(&random_bytes::<32>()?);
        Ok(URL_SAFE_NO_PAD.encode(b))
    }

    /// The transaction id a handle names, if it is one of ours at all (anything else —
    /// wrong length, not base64url, non-canonical, a non-positive id — is `None`).
    pub fn id(h: &str) -> Option<i64> {
        if h.len() != LEN {
            return None;
        }
        let b = URL_SAFE_NO_PAD.decode(h).ok()?;
        let id = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        (b.len() == 40 && id > 0).then_some(id)
    }
}

/// What finds a transaction from its `Identifier`: the id and the hash of the whole handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The row.
    pub id: i64,
    /// SHA-256 of the `Identifier`.
    pub handle_hash: String,
}

impl Key {
    /// The key of a presented `Identifier`; `None` if it cannot be one of ours.
    pub fn from_identifier(identifier: &str) -> Option<Self> {
        let identifier = identifier.trim();
        Some(Self {
            id: handle::id(identifier)?,
            handle_hash: sha256_hex(identifier),
        })
    }
}

/// How long a login transaction stays usable.
pub const LOGIN_TTL_SECS: i64 = 10 * 60;

/// What the transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A user signs in.
    Login,
    /// An admin reads the IdP's directory.
    Import,
}

impl Purpose {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Import => "import",
        }
    }
    fn parse(s: &str) -> Self {
        if s == "import" {
            Purpose::Import
        } else {
            Purpose::Login
        }
    }
}

/// Who will complete the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A script or app that calls `/sso/authenticate` itself.
    Api,
    /// The agent's own desktop shell; `/sso/callback` (or the deep link) completes it.
    Desktop,
}

impl Client {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Api => "api",
            Client::Desktop => "desktop",
        }
    }
    fn parse(s: &str) -> Self {
        if s == "desktop" {
            Client::Desktop
        } else {
            Client::Api
        }
    }
}

/// A transaction to record.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    /// From [`IdAllocator::next`]; the handles carry it.
    pub id: i64,
    /// SHA-256 of the handle (`Identifier`).
    pub handle_hash: String,
    /// The handle sealed with the data key (shown on the callback page), if kept.
    pub handle_enc: Option<String>,
    /// The account signing in.
    pub account_id: i64,
    /// Login or import.
    pub purpose: Purpose,
    /// Who completes it.
    pub client: Client,
    /// The protocol of the configuration used.
    pub provider: Kind,
    /// The configuration used (a later change of configuration is detected).
    pub idp_config_id: i64,
    /// The configuration's version (see `IdpConfig::version`).
    pub idp_config_version: i64,
    /// The admin who started an import.
    pub started_by_user_id: Option<i64>,
    /// The username typed into `sso_url` (a routing hint only).
    pub login_hint: String,
    /// The redirect URI, exactly as given.
    pub callback_url: String,
    /// OAuth `state` (OIDC) or `RelayState` (SAML).
    pub state: String,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// The PKCE verifier, sealed.
    pub pkce_verifier_enc: Option<String>,
    /// The SAML AuthnRequest ID.
    pub saml_request_id: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// A recorded transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The row id (inside both handles).
    pub id: i64,
    /// SHA-256 of the handle.
    pub handle_hash: String,
    /// The handle, sealed.
    pub handle_enc: Option<String>,
    /// The account.
    pub account_id: i64,
    /// Login or import.
    pub purpose: Purpose,
    /// Who completes it.
    pub client: Client,
    /// Protocol.
    pub provider: Kind,
    /// Configuration row.
    pub idp_config_id: i64,
    /// The configuration's version when the login started.
    pub idp_config_version: Option<i64>,
    /// The admin who started an import.
    pub started_by_user_id: Option<i64>,
    /// Username hint.
    pub login_hint: String,
    /// Redirect URI.
    pub callback_url: String,
    /// `state` / `RelayState`.
    pub state: String,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// Sealed PKCE verifier.
    pub pkce_verifier_enc: Option<String>,
    /// SAML AuthnRequest ID.
    pub saml_request_id: Option<String>,
    /// SHA-256 of the one-time code the SAML ACS issued.
    pub code_hash: Option<String>,
    /// Expiry of that code.
    pub code_expires_at: Option<i64>,
    /// What the SAML ACS verified (the asserted identity), sealed; redeemed with the code.
    pub result_enc: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Expires.
    pub expires_at: i64,
    /// When it was consumed, if it was.
    pub consumed_at: Option<i64>,
}

impl Transaction {
    /// Whether `config` is the very configuration (row and version) this login started with.
    pub fn started_with(&self, config: &crate::store::idp::IdpConfig) -> bool {
        config.id == self.idp_config_id
            && self.idp_config_version.is_none_or(|v| v == config.version)
    }

    /// True when it can no longer be used at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }

    /// What finds it again.
    pub fn key(&self) -> Key {
        Key {
            id: self.id,
            handle_hash: self.handle_hash.clone(),
        }
    }
}

const COLUMNS: &str = "handle_hash, handle_enc, account_id, purpose, client, provider, \
     idp_config_id, started_by_user_id, login_hint, callback_url, state, nonce, \
     pkce_verifier_enc, saml_request_id, code_hash, code_expires_at, created_at, expires_at, \
     consumed_at, result_enc, id, idp_config_version";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Transaction> {
    let purpose: String = r.get(3)?;
    let client: String = r.get(4)?;
    let provider: String = r.get(5)?;
    Ok(Transaction {
        handle_hash: r.get(0)?,
        handle_enc: r.get(1)?,
        account_id: r.get(2)?,
        purpose: Purpose::parse(&purpose),
        client: Client::parse(&client),
        // The CHECK constraint guarantees one of the known values.
        provider: Kind::parse(&provider).unwrap_or(Kind::Saml),
        idp_config_id: r.get(6)?,
        started_by_user_id: r.get(7)?,
        login_hint: r.get(8)?,
        callback_url: r.get(9)?,
        state: r.get(10)?,
        nonce: r.get(11)?,
        pkce_verifier_enc: r.get(12)?,
        saml_request_id: r.get(13)?,
        code_hash: r.get(14)?,
        code_expires_at: r.get(15)?,
        created_at: r.get(16)?,
        expires_at: r.get(17)?,
        consumed_at: r.get(18)?,
        result_enc: r.get(19)?,
        id: r.get(20)?,
        idp_config_version: r.get(21)?,
    })
}

/// Records a new transaction.
pub fn insert(conn: &Connection, t: &NewTransaction) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO login_transactions (handle_hash, handle_enc, account_id, purpose, client, \
         provider, idp_config_id, started_by_user_id, login_hint, callback_url, state, nonce, \
         pkce_verifier_enc, saml_request_id, created_at, expires_at, id, idp_config_version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        t.handle_hash,
        t.handle_enc,
        t.account_id,
        t.purpose.as_str(),
        t.client.as_str(),
        t.provider.as_str(),
        t.idp_config_id,
        t.started_by_user_id,
        t.login_hint,
        t.callback_url,
        t.state,
        t.nonce,
        t.pkce_verifier_enc,
        t.saml_request_id,
        t.created_at,
        t.expires_at,
        t.id,
        t.idp_config_version
    ])?;
    Ok(())
}

/// Marks the transaction with this key consumed and returns it — only if it was not
/// consumed before. One statement, so two concurrent calls cannot both get it. Expiry and
/// the callback URL are the caller's to check (a mismatch still burns the transaction).
pub fn consume(conn: &Connection, key: &Key, now: i64) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE login_transactions SET consumed_at = ?3 \
         WHERE id = ?1 AND handle_hash = ?2 AND consumed_at IS NULL RETURNING {COLUMNS}"
    ))?;
    Ok(stmt
        .query_row(params![key.id, key.handle_hash, now], from_row)
        .optional()?)
}

/// The transaction with this id, consumed or not (for a bound `Identifier`, whose MAC the
/// caller checks before using it).
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_transactions WHERE id = ?1"
    ))?;
    Ok(stmt.query_row(params![id], from_row).optional()?)
}

/// The transaction with this key, consumed or not.
pub fn by_key(conn: &Connection, key: &Key) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_transactions WHERE id = ?1 AND handle_hash = ?2"
    ))?;
    Ok(stmt
        .query_row(params![key.id, key.handle_hash], from_row)
        .optional()?)
}

/// The transaction whose `state` is this (compared whole: its random part is 256 bits).
pub fn by_state(conn: &Connection, state: &str) -> Result<Option<Transaction>> {
    let Some(id) = handle::id(state) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_transactions WHERE id = ?1 AND state = ?2"
    ))?;
    Ok(stmt.query_row(params![id, state], from_row).optional()?)
}

/// The newest pending, unexpired import transaction an admin started with this callback URL.
pub fn latest_pending_import(
    conn: &Connection,
    started_by_user_id: i64,
    callback_url: &str,
    now: i64,
) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_transactions WHERE purpose = 'import' \
         AND started_by_user_id = ?1 AND callback_url = ?2 AND consumed_at IS NULL \
         AND expires_at > ?3 ORDER BY created_at DESC, rowid DESC LIMIT 1"
    ))?;
    Ok(stmt
        .query_row(params![started_by_user_id, callback_url, now], from_row)
        .optional()?)
}

/// Stores the hash of the one-time code a SAML ACS issued for a pending transaction, with
/// the sealed result it redeems for. Only once per transaction.
pub fn set_code(
    conn: &Connection,
    key: &Key,
    code_hash: &str,
    code_expires_at: i64,
    result_enc: Option<&str>,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE login_transactions SET code_hash = ?3, code_expires_at = ?4, result_enc = ?5 \
         WHERE id = ?1 AND handle_hash = ?2 AND consumed_at IS NULL AND code_hash IS NULL",
        )?
        .execute(params![
            key.id,
            key.handle_hash,
            code_hash,
            code_expires_at,
            result_enc
        ])?;
    if n != 1 {
        return Err(Error::Security(
            "this sign-in was already completed or is unknown".into(),
        ));
    }
    Ok(())
}

/// Deletes the transactions that expired by `now` (consumed ones are kept until then, so a
/// replayed `Identifier` is recognised as used rather than unknown). Ids below the first id
/// of the second `now - LOGIN_TTL_SECS` belong to transactions created before it, all
/// expired: a range of the primary key, no index needed. The few whose ids were borrowed
/// from later seconds go with a later purge.
pub fn purge_expired(conn: &Connection, now: i64) -> Result<usize> {
    let below = now
        .saturating_sub(LOGIN_TTL_SECS)
        .max(0)
        .saturating_mul(IDS_PER_SECOND);
    Ok(conn
        .prepare_cached("DELETE FROM login_transactions WHERE id < ?1 AND expires_at <= ?2")?
        .execute(params![below, now])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, accounts};

    /// A transaction created at `now` with the handle `identifier` (ids from `ids`).
    fn new_tx(ids: &IdAllocator, account_id: i64, now: i64) -> Result<(NewTransaction, String)> {
        let id = ids.next(now);
        let identifier = handle::new(id)?;
        let t = NewTransaction {
            id,
            handle_hash: sha256_hex(&identifier),
            handle_enc: None,
            account_id,
            purpose: Purpose::Login,
            client: Client::Api,
            provider: Kind::Okta,
            idp_config_id: 1,
            idp_config_version: 1,
            started_by_user_id: None,
            login_hint: "ann@acme.test".into(),
            callback_url: "http://127.0.0.1:5000/cb".into(),
            state: handle::new(id)?,
            nonce: Some("n".into()),
            pkce_verifier_enc: Some("sealed".into()),
            saml_request_id: None,
            created_at: now,
            expires_at: now + LOGIN_TTL_SECS,
        };
        Ok((t, identifier))
    }

    fn key(identifier: &str) -> Key {
        Key::from_identifier(identifier).expect("one of ours")
    }

    #[test]
    fn is_consumed_exactly_once() -> Result<()> {
        let db = Db::open_in_memory()?;
        let ids = IdAllocator::default();
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let (t, h1) = new_tx(&ids, aid, 100)?;
            insert(tx, &t)?;
            let first = consume(tx, &key(&h1), 101)?;
            assert_eq!(first.as_ref().map(|f| &f.state), Some(&t.state));
            assert_eq!(first.and_then(|t| t.consumed_at), Some(101));
            assert!(consume(tx, &key(&h1), 102)?.is_none());
            Ok(())
        })
    }

    #[test]
    fn a_handle_must_match_whole_not_only_its_id() -> Result<()> {
        let db = Db::open_in_memory()?;
        let ids = IdAllocator::default();
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let (t, h) = new_tx(&ids, aid, 100)?;
            insert(tx, &t)?;
            // Same id, other random part: the id alone finds nothing.
            let forged = handle::new(t.id)?;
            assert_eq!(handle::id(&forged), Some(t.id));
            assert!(by_key(tx, &key(&forged))?.is_none());
            assert!(consume(tx, &key(&forged), 101)?.is_none());
            assert!(by_state(tx, &forged)?.is_none());
            // The state is not the Identifier, and neither is the other.
            assert!(by_key(tx, &key(&t.state))?.is_none());
            assert!(by_state(tx, &h)?.is_none());
            assert!(by_state(tx, &t.state)?.is_some());
            assert!(consume(tx, &key(&h), 101)?.is_some());
            Ok(())
        })
    }

    #[test]
    fn handles_that_are_not_ours_name_nothing() {
        let ok = handle::new(42).expect("random");
        assert_eq!(ok.len(), handle::LEN);
        assert_eq!(handle::id(&ok), Some(42));
        // The same 40 bytes with one of the last character's four unused bits set.
        let non_canonical = {
            const ALPHABET: &str =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let last = ok.chars().last().unwrap_or('A');
            let i = ALPHABET.find(last).unwrap_or(0) ^ 1;
            format!("{}{}", &ok[..handle::LEN - 1], &ALPHABET[i..=i])
        };
        let zero = URL_SAFE_NO_PAD.encode([0u8; 40]);
        let negative = URL_SAFE_NO_PAD.encode([0xffu8; 40]);
        for bad in [
            "",
            "abc",
            &ok[..handle::LEN - 1],
            &format!("{ok}A"),
            &ok.replace(|c: char| c.is_ascii_alphabetic(), "+"),
            zero.as_str(),
            negative.as_str(),
            non_canonical.as_str(),
            "../../../../../../../../../../../../../etc/passwd/../xxxxx",
        ] {
            assert_eq!(handle::id(bad), None, "{bad}");
            assert_eq!(Key::from_identifier(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_grow_with_time_and_never_repeat() {
        let ids = IdAllocator::default();
        let a = ids.next(100);
        let b = ids.next(100);
        assert_eq!(a, 100 * IDS_PER_SECOND);
        assert_eq!(b, a + 1);
        assert_eq!(ids.next(101), 101 * IDS_PER_SECOND);
        // A clock going back never reuses an id.
        assert_eq!(ids.next(50), 101 * IDS_PER_SECOND + 1);
        // Seeded from the table after a restart.
        let seeded = IdAllocator::after(500 * IDS_PER_SECOND);
        assert_eq!(seeded.next(100), 500 * IDS_PER_SECOND + 1);
        // Concurrent callers get distinct ids.
        let shared = std::sync::Arc::new(IdAllocator::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = shared.clone();
                std::thread::spawn(move || (0..1000).map(|_| s.next(7)).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4000);
    }

    #[test]
    fn purges_only_expired_ones() -> Result<()> {
        let db = Db::open_in_memory()?;
        let ids = IdAllocator::default();
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let (old, h_old) = new_tx(&ids, aid, 10)?;
            let (new, _) = new_tx(&ids, aid, 500)?;
            insert(tx, &old)?;
            insert(tx, &new)?;
            assert_eq!(purge_expired(tx, 10 + LOGIN_TTL_SECS - 1)?, 0);
            assert_eq!(purge_expired(tx, 10 + LOGIN_TTL_SECS + 1)?, 1);
            assert!(by_key(tx, &key(&h_old))?.is_none());
            assert!(by_state(tx, &new.state)?.is_some());
            assert_eq!(max_id(tx)?, new.id);
            Ok(())
        })
    }

    #[test]
    fn saml_code_is_set_once() -> Result<()> {
        let db = Db::open_in_memory()?;
        let ids = IdAllocator::default();
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let (t, h) = new_tx(&ids, aid, 0)?;
            insert(tx, &t)?;
            set_code(tx, &key(&h), "codehash", 60, Some("sealed"))?;
            assert!(set_code(tx, &key(&h), "other", 60, None).is_err());
            assert_eq!(
                by_key(tx, &key(&h))?.and_then(|t| t.code_hash),
                Some("codehash".into())
            );
            Ok(())
        })
    }
}
