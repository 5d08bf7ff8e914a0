//! Imports: directory reads kept until persisted, and the persisting itself — users, groups
//! and memberships created or updated in one transaction, each user linked to its IdP subject.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::Kind;
use crate::error::Result;
use crate::store::groups::{self as group_store, GroupRef};
use crate::store::users::{NewUser, Role};
use crate::store::{links, users};

/// A directory user to import, with the IdP subject its sign-ins will carry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportUser {
    /// The IdP's id (`ExternalId`).
    pub external_id: String,
    /// The subject sign-ins carry (Okta user id, Entra `tid/oid`, SAML NameID).
    pub subject: String,
    /// Email (the username).
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// External ids of its groups.
    pub groups: Vec<String>,
}

/// A directory group to import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportGroup {
    /// The IdP's id.
    pub external_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// What a directory read found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectoryRead {
    /// Users.
    pub users: Vec<ImportUser>,
    /// Groups.
    pub groups: Vec<ImportGroup>,
}

/// What persisting did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Users created.
    pub created: Vec<String>,
    /// Users that existed and were updated.
    pub updated: Vec<String>,
    /// Users not imported, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Groups created or updated.
    pub groups: usize,
    /// Users of the account linked to this issuer whom the directory no longer lists
    /// (reported, not deleted).
    pub removed_at_idp: Vec<String>,
}

/// Stores a read (sealed by the caller) and returns its id.
#[allow(clippy::too_many_arguments)]
pub fn insert_read(
    conn: &Connection,
    account_id: i64,
    started_by: i64,
    provider: Kind,
    issuer: &str,
    relations_enc: &str,
    now: i64,
    expires_at: i64,
) -> Result<i64> {
    conn.execute("DELETE FROM directory_reads WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "INSERT INTO directory_reads (account_id, started_by_user_id, provider, issuer, relations_enc, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![account_id, started_by, provider.as_str(), issuer, relations_enc, now, expires_at],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A stored read of the account: (provider, issuer, sealed relations, expires_at).
pub fn read(
    conn: &Connection,
    account_id: i64,
    id: i64,
) -> Result<Option<(Kind, String, String, i64)>> {
    Ok(conn
        .query_row(
            "SELECT provider, issuer, relations_enc, expires_at FROM directory_reads \
             WHERE id = ?1 AND account_id = ?2",
            params![id, account_id],
            |r| {
                let p: String = r.get(0)?;
                Ok((
                    Kind::parse(&p).unwrap_or(Kind::Saml),
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            },
        )
        .optional()?)
}

/// Persists `selected` users of `read` (with their groups) for `account_id`, linking each
/// to `(issuer, subject)`. Run inside one transaction by the caller: all or nothing.
pub fn persist(
    conn: &Connection,
    account_id: i64,
    provider: Kind,
    issuer: &str,
    read: &DirectoryRead,
    selected: Option<&HashSet<String>>,
    now: i64,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let groups: HashMap<&str, &ImportGroup> = read
        .groups
        .iter()
        .map(|g| (g.external_id.as_str(), g))
        .collect();
    let mut group_ids: HashMap<String, i64> = HashMap::new();
    for u in read
        .users
        .iter()
        .filter(|u| selected.is_none_or(|s| s.contains(&u.external_id)))
    {
        // The caller validated the emails (`login::import`); the store only normalises.
        let email = u.email.trim().to_lowercase();
        let linked = links::by_subject(conn, account_id, issuer, &u.subject)?;
        let user = match &linked {
            Some(l) => users::by_id(conn, l.user_id)?.filter(|x| x.account_id == account_id),
            None => users::by_email(conn, &email)?,
        };
        let user_id = match user {
            Some(x) if x.account_id != account_id => {
                out.skipped
                    .push((email, "a user of another account has this email".into()));
                continue;
            }
            Some(x) => {
                conn.prepare_cached("UPDATE users SET first_name = ?2, last_name = ?3, updated_at = ?4 WHERE id = ?1")?
                    .execute(params![x.id, u.first_name, u.last_name, now])?;
                // The user's name here: found through its link, it may differ from the IdP's.
                out.updated.push(x.email.clone());
                x.id
            }
            None if linked.is_some() => {
                out.skipped.push((
                    email,
                    "its IdP identity is linked to a user of another account".into(),
                ));
                continue;
            }
            None => {
                let id = users::insert(
                    conn,
                    &NewUser {
                        account_id,
                        email: email.clone(),
                        first_name: u.first_name.clone(),
                        last_name: u.last_name.clone(),
                        role: Role::User,
                        password_hash: None,
                    },
                    now,
                )?;
                out.created.push(email.clone());
                id
            }
        };
        if links::for_user(conn, user_id, provider)?.is_none()
            && links::by_subject(conn, account_id, issuer, &u.subject)?.is_none()
        {
            links::insert(
                conn,
                &links::Link {
                    account_id,
                    user_id,
                    provider,
                    issuer: issuer.to_string(),
                    subject: u.subject.clone(),
                    linked_at: now,
                },
            )?;
        }
        // The user's IdP groups become exactly the directory's; local groups stay.
        let mut ids = Vec::with_capacity(u.groups.len());
        for gid in &u.groups {
            let Some(g) = groups.get(gid.as_str()) else {
                continue;
            };
            let id = match group_ids.get(gid) {
                Some(id) => *id,
                None => {
                    let r = GroupRef::Id {
                        external_id: g.external_id.clone(),
                        name: Some(g.name.clone()),
                        description: Some(g.description.clone()),
                    };
                    let Some(id) = group_store::resolve(conn, account_id, &r, now)? else {
                        continue;
                    };
                    group_ids.insert(gid.clone(), id);
                    id
                }
            };
            ids.push(id);
        }
        group_store::set_idp_memberships(conn, account_id, user_id, &ids)?;
    }
    out.groups = group_ids.len();
    let listed: HashSet<&str> = read.users.iter().map(|u| u.subject.as_str()).collect();
    let mut stmt = conn.prepare_cached(
        "SELECT u.email, l.subject FROM user_idp_links l JOIN users u ON u.id = l.user_id \
         WHERE u.account_id = ?1 AND l.issuer = ?2 ORDER BY u.email",
    )?;
    let rows = stmt.query_map(params![account_id, issuer], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (email, subject) = row?;
        if !listed.contains(subject.as_str()) {
            out.removed_at_idp.push(email);
        }
    }
    Ok(out)
}
