//! Pending browser logins (`login_transactions`): created by `sso_url`, consumed exactly once.
//!
//! Generic over the protocol: OIDC fills `state`, `nonce` and the sealed PKCE verifier; SAML
//! fills `saml_request_id` and, once its ACS accepted a response, `code_hash`. The handle
//! returned to the client as `Identifier` is stored only as its SHA-256 hash.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};
use crate::store::idp::Kind;

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
    /// True when it can no longer be used at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

const COLUMNS: &str = "handle_hash, handle_enc, account_id, purpose, client, provider, \
     idp_config_id, started_by_user_id, login_hint, callback_url, state, nonce, \
     pkce_verifier_enc, saml_request_id, code_hash, code_expires_at, created_at, expires_at, \
     consumed_at, result_enc";

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
    })
}

/// Records a new transaction.
pub fn insert(conn: &Connection, t: &NewTransaction) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO login_transactions (handle_hash, handle_enc, account_id, purpose, client, \
         provider, idp_config_id, started_by_user_id, login_hint, callback_url, state, nonce, \
         pkce_verifier_enc, saml_request_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
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
        t.expires_at
    ])?;
    Ok(())
}

/// Marks the transaction with this handle hash consumed and returns it — only if it was not
/// consumed before. One statement, so two concurrent calls cannot both get it. Expiry and
/// the callback URL are the caller's to check (a mismatch still burns the transaction).
pub fn consume(conn: &Connection, handle_hash: &str, now: i64) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE login_transactions SET consumed_at = ?2 \
         WHERE handle_hash = ?1 AND consumed_at IS NULL RETURNING {COLUMNS}"
    ))?;
    Ok(stmt
        .query_row(params![handle_hash, now], from_row)
        .optional()?)
}

/// The transaction with this handle hash, consumed or not.
pub fn by_handle_hash(conn: &Connection, handle_hash: &str) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_transactions WHERE handle_hash = ?1"
    ))?;
    Ok(stmt.query_row([handle_hash], from_row).optional()?)
}

/// The transaction whose `state` is this (the value is random, 256 bits, so unique).
pub fn by_state(conn: &Connection, state: &str) -> Result<Option<Transaction>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM login_transactions WHERE state = ?1"
    ))?;
    Ok(stmt.query_row([state], from_row).optional()?)
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
    handle_hash: &str,
    code_hash: &str,
    code_expires_at: i64,
    result_enc: Option<&str>,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE login_transactions SET code_hash = ?2, code_expires_at = ?3, result_enc = ?4 \
         WHERE handle_hash = ?1 AND consumed_at IS NULL AND code_hash IS NULL",
        params![handle_hash, code_hash, code_expires_at, result_enc],
    )?;
    if n != 1 {
        return Err(Error::Security(
            "this sign-in was already completed or is unknown".into(),
        ));
    }
    Ok(())
}

/// Deletes every transaction that expired before `now` (consumed ones are kept until then,
/// so a replayed `Identifier` is recognised as used rather than unknown).
pub fn purge_expired(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM login_transactions WHERE expires_at <= ?1")?
        .execute([now])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, accounts};

    fn new_tx(account_id: i64, hash: &str, now: i64) -> NewTransaction {
        NewTransaction {
            handle_hash: hash.into(),
            handle_enc: None,
            account_id,
            purpose: Purpose::Login,
            client: Client::Api,
            provider: Kind::Okta,
            idp_config_id: 1,
            started_by_user_id: None,
            login_hint: "ann@acme.test".into(),
            callback_url: "http://127.0.0.1:5000/cb".into(),
            state: format!("state-{hash}"),
            nonce: Some("n".into()),
            pkce_verifier_enc: Some("sealed".into()),
            saml_request_id: None,
            created_at: now,
            expires_at: now + LOGIN_TTL_SECS,
        }
    }

    #[test]
    fn is_consumed_exactly_once() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            insert(tx, &new_tx(aid, "h1", 100))?;
            let first = consume(tx, "h1", 101)?;
            assert_eq!(first.as_ref().map(|t| t.state.as_str()), Some("state-h1"));
            assert_eq!(first.and_then(|t| t.consumed_at), Some(101));
            assert!(consume(tx, "h1", 102)?.is_none());
            assert!(consume(tx, "nope", 102)?.is_none());
            Ok(())
        })
    }

    #[test]
    fn purges_only_expired_ones() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            insert(tx, &new_tx(aid, "old", 0))?;
            insert(tx, &new_tx(aid, "new", 500))?;
            assert_eq!(purge_expired(tx, LOGIN_TTL_SECS)?, 1);
            assert!(by_handle_hash(tx, "old")?.is_none());
            assert!(by_state(tx, "state-new")?.is_some());
            Ok(())
        })
    }

    #[test]
    fn saml_code_is_set_once() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            insert(tx, &new_tx(aid, "h", 0))?;
            set_code(tx, "h", "codehash", 60, Some("sealed"))?;
            assert!(set_code(tx, "h", "other", 60, None).is_err());
            assert_eq!(
                by_handle_hash(tx, "h")?.and_then(|t| t.code_hash),
                Some("codehash".into())
            );
            Ok(())
        })
    }
}
