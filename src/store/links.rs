//! Links between local users and immutable IdP subjects (`user_idp_links`).
//!
//! Links are the account's: one link per (user, provider kind) and one user per (account,
//! issuer, subject) — another account's admin cannot pre-link this account's IdP identities
//! (migration 0009). The first SSO login
//! of a user creates it; later logins must match it. A user linked through one Entra tenant
//! (or Okta authorization server, or SAML IdP) is never linked again through another.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::Kind;
use crate::error::{Error, Result};
use crate::store::is_unique_violation;

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The account it belongs to (the user's).
    pub account_id: i64,
    /// The local user.
    pub user_id: i64,
    /// The protocol it came through.
    pub provider: Kind,
    /// The IdP's issuer (for Entra ID the tenant's issuer).
    pub issuer: String,
    /// The immutable subject (OIDC `sub`; Entra `tid/oid`; SAML NameID).
    pub subject: String,
    /// When it was made.
    pub linked_at: i64,
}

const COLUMNS: &str = "user_id, provider, issuer, subject, linked_at, account_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Link> {
    let provider: String = r.get(1)?;
    Ok(Link {
        user_id: r.get(0)?,
        // The CHECK constraint guarantees one of the known values.
        provider: Kind::parse(&provider).unwrap_or(Kind::Saml),
        issuer: r.get(2)?,
        subject: r.get(3)?,
        linked_at: r.get(4)?,
        account_id: r.get(5)?,
    })
}

/// The account's link of this IdP subject, if any.
pub fn by_subject(
    conn: &Connection,
    account_id: i64,
    issuer: &str,
    subject: &str,
) -> Result<Option<Link>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM user_idp_links WHERE account_id = ?1 AND issuer = ?2 \
         AND subject = ?3"
    ))?;
    Ok(stmt
        .query_row(params![account_id, issuer, subject], from_row)
        .optional()?)
}

/// A link as an admin sees it: its id and its user's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLink {
    /// Row id (to remove it).
    pub id: i64,
    /// The user's email.
    pub email: String,
    /// The link.
    pub link: Link,
}

/// Every link of the account, by user email.
pub fn list_for_account(conn: &Connection, account_id: i64) -> Result<Vec<ListedLink>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.user_id, l.provider, l.issuer, l.subject, l.linked_at, l.account_id, l.id, \
         u.email FROM user_idp_links l JOIN users u ON u.id = l.user_id \
         WHERE l.account_id = ?1 ORDER BY u.email, l.provider",
    )?;
    let rows = stmt.query_map([account_id], |r| {
        Ok(ListedLink {
            link: from_row(r)?,
            id: r.get(6)?,
            email: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes the account's link `id`; returns what was removed.
pub fn delete(conn: &Connection, account_id: i64, id: i64) -> Result<Option<ListedLink>> {
    let found = list_for_account(conn, account_id)?
        .into_iter()
        .find(|l| l.id == id);
    if found.is_some() {
        conn.execute(
            "DELETE FROM user_idp_links WHERE id = ?1 AND account_id = ?2",
            params![id, account_id],
        )?;
    }
    Ok(found)
}

/// The link of a user through this kind of provider (whatever its issuer), if any.
pub fn for_user(conn: &Connection, user_id: i64, provider: Kind) -> Result<Option<Link>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM user_idp_links WHERE user_id = ?1 AND provider = ?2"
    ))?;
    Ok(stmt
        .query_row(params![user_id, provider.as_str()], from_row)
        .optional()?)
}

/// Every link of a user.
pub fn list_for_user(conn: &Connection, user_id: i64) -> Result<Vec<Link>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM user_idp_links WHERE user_id = ?1 ORDER BY linked_at"
    ))?;
    let rows = stmt.query_map([user_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Creates a link; `SECURITY` when the subject or the user is linked already (a concurrent
/// first login lost the race).
pub fn insert(conn: &Connection, link: &Link) -> Result<()> {
    match conn.execute(
        "INSERT INTO user_idp_links (user_id, provider, issuer, subject, linked_at, account_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            link.user_id,
            link.provider.as_str(),
            link.issuer,
            link.subject,
            link.linked_at,
            link.account_id
        ],
    ) {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::Security(
            "this identity or this user is already linked to another one".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::{NewUser, Role};
    use crate::store::{Db, accounts, users};

    #[test]
    fn one_subject_never_maps_to_two_users() -> Result<()> {
        let db = Db::open_in_memory()?;
        db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let mut ids = Vec::new();
            for email in ["a@acme.test", "b@acme.test"] {
                ids.push(users::insert(
                    tx,
                    &NewUser {
                        account_id: aid,
                        email: email.into(),
                        first_name: String::new(),
                        last_name: String::new(),
                        role: Role::User,
                        password_hash: None,
                    },
                    0,
                )?);
            }
            let link = |user_id, subject: &str| Link {
                account_id: aid,
                user_id,
                provider: Kind::Okta,
                issuer: "https://idp.test".into(),
                subject: subject.into(),
                linked_at: 1,
            };
            insert(tx, &link(ids[0], "sub-a"))?;
            assert!(matches!(
                insert(tx, &link(ids[1], "sub-a")),
                Err(Error::Security(_))
            ));
            assert!(matches!(
                insert(tx, &link(ids[0], "sub-b")),
                Err(Error::Security(_))
            ));
            assert_eq!(
                by_subject(tx, aid, "https://idp.test", "sub-a")?.map(|l| l.user_id),
                Some(ids[0])
            );
            assert!(for_user(tx, ids[1], Kind::Okta)?.is_none());
            // Another issuer of the same kind never links the same user again.
            let mut other_issuer = link(ids[0], "sub-c");
            other_issuer.issuer = "https://other-idp.test".into();
            assert!(matches!(insert(tx, &other_issuer), Err(Error::Security(_))));
            // A different kind does.
            let mut saml = other_issuer.clone();
            saml.provider = Kind::Saml;
            insert(tx, &saml)?;
            assert_eq!(list_for_user(tx, ids[0])?.len(), 2);
            // Another account may link the same issuer and subject to its own user: an
            // account's admin cannot squat another account's IdP identities.
            let other = accounts::insert(tx, "globex", "Globex", 0)?;
            let g = users::insert(
                tx,
                &NewUser {
                    account_id: other,
                    email: "a@globex.test".into(),
                    first_name: String::new(),
                    last_name: String::new(),
                    role: Role::User,
                    password_hash: None,
                },
                0,
            )?;
            let mut theirs = link(g, "sub-a");
            theirs.account_id = other;
            insert(tx, &theirs)?;
            assert_eq!(
                by_subject(tx, other, "https://idp.test", "sub-a")?.map(|l| l.user_id),
                Some(g)
            );
            assert_eq!(list_for_account(tx, aid)?.len(), 2);
            let gone = delete(tx, other, list_for_account(tx, aid)?[0].id)?;
            assert!(gone.is_none(), "an account removes only its own links");
            Ok(())
        })
    }
}
