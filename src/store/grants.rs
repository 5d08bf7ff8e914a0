//! What a signed-in session keeps of its sign-in at the IdP (`session_grants`): the sealed
//! refresh token and ID token of an OIDC sign-in, the sealed NameID and SessionIndex of a SAML
//! one; bound to the session JWT it currently backs (`jti`), and the sign-outs sent to the IdP
//! and not yet back (`pending_logouts`).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::Kind;
use crate::error::Result;

/// A session's grant as stored (sealed values stay sealed): what it was recorded with, and
/// what renewals and the sealed secrets add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id (the seal context of its secrets names it).
    pub id: i64,
    /// What it was recorded with (the JWT fields follow renewals).
    pub of: NewGrant,
    /// The last refresh.
    pub refreshed_at: Option<i64>,
    /// The refresh token, sealed; `None` when the IdP gave none (or it was dropped).
    pub refresh_token_enc: Option<String>,
    /// The last ID token, sealed (RP-initiated logout's `id_token_hint`).
    pub id_token_enc: Option<String>,
    /// SAML: the NameID and SessionIndex (JSON), sealed.
    pub saml_logout_enc: Option<String>,
}

impl std::ops::Deref for Grant {
    type Target = NewGrant;
    fn deref(&self) -> &NewGrant {
        &self.of
    }
}

/// A grant to store (its id is assigned), and the recorded part of a stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    /// The session JWT it backs.
    pub jti: String,
    /// That JWT's expiry.
    pub jwt_expires_at: i64,
    /// The account.
    pub account_id: i64,
    /// The user.
    pub user_id: i64,
    /// Okta, Entra ID or SAML.
    pub provider: Kind,
    /// The IdP configuration signed in through.
    pub idp_config_id: i64,
    /// The IdP's issuer (as the link names it).
    pub issuer: String,
    /// The IdP subject (as the link names it).
    pub subject: String,
    /// The sign-in: the absolute lifetime counts from here.
    pub started_at: i64,
    /// SAML: SHA-256 of the SessionIndex.
    pub saml_session_hash: Option<String>,
}

const COLUMNS: &str = "id, jti, jwt_expires_at, account_id, user_id, provider, idp_config_id, \
                       issuer, subject, started_at, refreshed_at, refresh_token_enc, \
                       id_token_enc, saml_logout_enc, saml_session_hash";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    let provider: String = r.get(5)?;
    Ok(Grant {
        id: r.get(0)?,
        of: NewGrant {
            jti: r.get(1)?,
            jwt_expires_at: r.get(2)?,
            account_id: r.get(3)?,
            user_id: r.get(4)?,
            // The CHECK constraint guarantees one of the known values.
            provider: Kind::parse(&provider).unwrap_or(Kind::Saml),
            idp_config_id: r.get(6)?,
            issuer: r.get(7)?,
            subject: r.get(8)?,
            started_at: r.get(9)?,
            saml_session_hash: r.get(14)?,
        },
        refreshed_at: r.get(10)?,
        refresh_token_enc: r.get(11)?,
        id_token_enc: r.get(12)?,
        saml_logout_enc: r.get(13)?,
    })
}

/// Stores a grant and returns its id; its secrets are set with [`set_secrets`] (their seal
/// context names the id).
pub fn insert(conn: &Connection, g: &NewGrant) -> Result<i64> {
    conn.execute(
        "INSERT INTO session_grants (jti, jwt_expires_at, account_id, user_id, provider, \
         idp_config_id, issuer, subject, started_at, saml_session_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            g.jti,
            g.jwt_expires_at,
            g.account_id,
            g.user_id,
            g.provider.as_str(),
            g.idp_config_id,
            g.issuer,
            g.subject,
            g.started_at,
            g.saml_session_hash,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The sealed secrets of a grant.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// The refresh token.
    pub refresh_token_enc: Option<String>,
    /// The ID token.
    pub id_token_enc: Option<String>,
    /// The SAML NameID and SessionIndex.
    pub saml_logout_enc: Option<String>,
}

/// Sets the sealed secrets of grant `id`.
pub fn set_secrets(conn: &Connection, id: i64, s: &Secrets) -> Result<()> {
    conn.execute(
        "UPDATE session_grants SET refresh_token_enc = ?2, id_token_enc = ?3, \
         saml_logout_enc = ?4 WHERE id = ?1",
        params![id, s.refresh_token_enc, s.id_token_enc, s.saml_logout_enc],
    )?;
    Ok(())
}

/// The grant backing session `jti`, if any.
pub fn by_jti(conn: &Connection, jti: &str) -> Result<Option<Grant>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM session_grants WHERE jti = ?1"
    ))?;
    Ok(stmt.query_row([jti], from_row).optional()?)
}

/// A refresh: the grant now backs the new JWT, with the IdP's new tokens (sealed). Only when
/// it still backs `old_jti` (a concurrent refresh or sign-out wins); returns whether it did.
pub fn renew(
    conn: &Connection,
    id: i64,
    old_jti: &str,
    (new_jti, new_exp): (&str, i64),
    refresh_token_enc: Option<&str>,
    id_token_enc: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE session_grants SET jti = ?3, jwt_expires_at = ?4, refreshed_at = ?5, \
         refresh_token_enc = COALESCE(?6, refresh_token_enc), \
         id_token_enc = COALESCE(?7, id_token_enc) WHERE id = ?1 AND jti = ?2",
        params![
            id,
            old_jti,
            new_jti,
            new_exp,
            now,
            refresh_token_enc,
            id_token_enc
        ],
    )?;
    Ok(n == 1)
}

/// Forgets the refresh token of a grant (the IdP refused it, or renewal is over); what
/// sign-out needs stays.
pub fn drop_refresh_token(conn: &Connection, id: i64) -> Result<()> {
    conn.execute(
        "UPDATE session_grants SET refresh_token_enc = NULL WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// Deletes the grant of session `jti` (sign-out) and returns it.
pub fn take_by_jti(conn: &Connection, jti: &str) -> Result<Option<Grant>> {
    let g = by_jti(conn, jti)?;
    if let Some(g) = &g {
        conn.execute("DELETE FROM session_grants WHERE id = ?1", [g.id])?;
    }
    Ok(g)
}

/// Deletes and returns the account's grants of an IdP subject (a SAML IdP's LogoutRequest):
/// every one, or only the one of `session_hash` when the request names a SessionIndex.
pub fn take_by_subject(
    conn: &Connection,
    account_id: i64,
    issuer: &str,
    subject: &str,
    session_hash: Option<&str>,
) -> Result<Vec<Grant>> {
    let mut stmt = conn.prepare_cached(&format!(
        "DELETE FROM session_grants WHERE account_id = ?1 AND issuer = ?2 AND subject = ?3 \
         AND (?4 IS NULL OR saml_session_hash = ?4) RETURNING {COLUMNS}"
    ))?;
    let rows = stmt.query_map(params![account_id, issuer, subject, session_hash], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes grants whose JWT expired by `now` and that can no longer be renewed: without a
/// refresh token, or (in account `account_id`) started before `started_before`, beyond the
/// absolute lifetime. Nothing can use them any more.
pub fn purge(conn: &Connection, now: i64, account_id: i64, started_before: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM session_grants WHERE jwt_expires_at <= ?1 AND (refresh_token_enc IS NULL \
         OR (account_id = ?2 AND started_at <= ?3))",
        params![now, account_id, started_before],
    )?)
}

/// A sign-out sent to the IdP and not yet back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogout {
    /// SHA-256 of its `state` / RelayState.
    pub state_hash: String,
    /// The account.
    pub account_id: i64,
    /// Okta, Entra ID or SAML.
    pub provider: Kind,
    /// The configuration it went to.
    pub idp_config_id: i64,
    /// SAML: the LogoutRequest's ID.
    pub request_id: Option<String>,
    /// When it expires.
    pub expires_at: i64,
}

/// How long the IdP has to send the browser back.
pub const LOGOUT_TTL_SECS: i64 = 10 * 60;

/// Records a pending sign-out (and forgets the expired ones).
pub fn insert_logout(conn: &Connection, p: &PendingLogout, now: i64) -> Result<()> {
    conn.execute("DELETE FROM pending_logouts WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "INSERT INTO pending_logouts (state_hash, account_id, provider, idp_config_id, \
         request_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.state_hash,
            p.account_id,
            p.provider.as_str(),
            p.idp_config_id,
            p.request_id,
            now,
            p.expires_at
        ],
    )?;
    Ok(())
}

const LOGOUT_COLUMNS: &str = "state_hash, account_id, provider, idp_config_id, request_id, \
                              expires_at";

fn logout_from_row(r: &Row<'_>) -> rusqlite::Result<PendingLogout> {
    let provider: String = r.get(2)?;
    Ok(PendingLogout {
        state_hash: r.get(0)?,
        account_id: r.get(1)?,
        provider: Kind::parse(&provider).unwrap_or(Kind::Saml),
        idp_config_id: r.get(3)?,
        request_id: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

/// Takes (deletes and returns) the unexpired pending sign-out of `state_hash`.
pub fn take_logout(conn: &Connection, state_hash: &str, now: i64) -> Result<Option<PendingLogout>> {
    let mut stmt = conn.prepare_cached(&format!(
        "DELETE FROM pending_logouts WHERE state_hash = ?1 RETURNING {LOGOUT_COLUMNS}"
    ))?;
    let p = stmt.query_row([state_hash], logout_from_row).optional()?;
    Ok(p.filter(|p| p.expires_at > now))
}

/// The unexpired pending SAML sign-out whose LogoutRequest had ID `request_id`.
pub fn logout_by_request(
    conn: &Connection,
    request_id: &str,
    now: i64,
) -> Result<Option<PendingLogout>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {LOGOUT_COLUMNS} FROM pending_logouts WHERE request_id = ?1 AND expires_at > ?2"
    ))?;
    Ok(stmt
        .query_row(params![request_id, now], logout_from_row)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;
    use crate::store::accounts;
    use crate::store::users::{self, NewUser, Role};

    fn grant(aid: i64, uid: i64, jti: &str, session: Option<&str>) -> NewGrant {
        NewGrant {
            jti: jti.into(),
            jwt_expires_at: 100,
            account_id: aid,
            user_id: uid,
            provider: Kind::Saml,
            idp_config_id: 1,
            issuer: "https://idp".into(),
            subject: "ann".into(),
            started_at: 10,
            saml_session_hash: session.map(str::to_string),
        }
    }

    #[test]
    fn a_grant_follows_its_session_and_a_stale_renewal_loses() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let uid = users::insert(
                tx,
                &NewUser {
                    account_id: aid,
                    email: "ann@acme.test".into(),
                    first_name: String::new(),
                    last_name: String::new(),
                    role: Role::User,
                    password_hash: None,
                },
                0,
            )?;
            let id = insert(tx, &grant(aid, uid, "j1", Some("h1")))?;
            insert(tx, &grant(aid, uid, "j2", Some("h2")))?;
            assert!(renew(tx, id, "j1", ("j3", 200), Some("rt"), None, 50)?);
            // The old session no longer names it: a second renewal from it changes nothing.
            assert!(!renew(tx, id, "j1", ("j4", 300), Some("rt2"), None, 60)?);
            let g = by_jti(tx, "j3")?.ok_or_else(|| crate::error::Error::internal("gone"))?;
            assert_eq!(g.refresh_token_enc.as_deref(), Some("rt"));
            assert!(by_jti(tx, "j1")?.is_none());
            // A LogoutRequest with a SessionIndex ends only that session.
            let ended = take_by_subject(tx, aid, "https://idp", "ann", Some("h2"))?;
            assert_eq!(ended.len(), 1);
            assert_eq!(ended[0].jti, "j2");
            assert_eq!(
                take_by_subject(tx, aid, "https://idp", "ann", None)?.len(),
                1
            );
            // Expired and beyond renewal (no refresh token, or started too long ago): purged.
            let a = insert(tx, &grant(aid, uid, "j5", None))?;
            let b = insert(tx, &grant(aid, uid, "j6", None))?;
            for id in [a, b] {
                let rt = Secrets {
                    refresh_token_enc: Some("rt".into()),
                    ..Secrets::default()
                };
                set_secrets(tx, id, &rt)?;
            }
            tx.execute(
                "UPDATE session_grants SET started_at = 90 WHERE id = ?1",
                [b],
            )?;
            assert_eq!(purge(tx, 100, aid, 5)?, 0);
            assert_eq!(purge(tx, 100, aid, 50)?, 1);
            assert!(by_jti(tx, "j5")?.is_none() && by_jti(tx, "j6")?.is_some());
            Ok(())
        })
    }
}
