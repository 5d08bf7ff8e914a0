//! Groups from the identity provider and users' memberships in them, as imports and
//! sign-ins write them.
//!
//! A group with an `external_id` is the IdP's: imports and sign-ins manage its memberships.
//! A group without one is local: only admins change it. The external id is the IdP's group
//! id (Okta `00g…`, Entra object id, SAML attribute value); a group first seen by name only
//! (Okta's `groups` claim carries names) gets its name as external id until an import
//! names its real id.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// How a sign-in or an import names a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// By the IdP's id, with its name and description when known.
    Id {
        /// The IdP's group id.
        external_id: String,
        /// Display name, when known (a bare Entra id has none).
        name: Option<String>,
        /// Description, when known.
        description: Option<String>,
    },
    /// By name only (Okta's `groups` claim).
    Name(String),
}

fn find(conn: &Connection, sql: &str, account_id: i64, key: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![account_id, key], |r| r.get(0))
        .optional()?)
}

fn name_taken(conn: &Connection, account_id: i64, name: &str, except: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM groups WHERE account_id = ?1 AND name = ?2 AND id <> ?3")?
        .query_row(params![account_id, name, except], |_| Ok(()))
        .optional()?
        .is_some())
}

fn insert(
    conn: &Connection,
    account_id: i64,
    name: &str,
    description: &str,
    external_id: &str,
    now: i64,
) -> Result<Option<i64>> {
    // The name may belong to another group already (another IdP's, or one renamed since):
    // then the id disambiguates it; failing that the group is left out rather than the
    // sign-in or import failing.
    for candidate in [name.to_string(), format!("{name} ({external_id})")] {
        if !name_taken(conn, account_id, &candidate, 0)? {
            conn.prepare_cached(
                "INSERT INTO groups (account_id, name, description, external_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                account_id,
                candidate,
                description,
                external_id,
                now
            ])?;
            return Ok(Some(conn.last_insert_rowid()));
        }
    }
    Ok(None)
}

/// The id of the account's group `r` names, created when there is none (a local group of
/// the same name adopts the IdP's id). Known names and descriptions are updated. `None`
/// when no name is free for it.
pub fn resolve(conn: &Connection, account_id: i64, r: &GroupRef, now: i64) -> Result<Option<i64>> {
    match r {
        GroupRef::Id {
            external_id,
            name,
            description,
        } => {
            let by_id = find(
                conn,
                "SELECT id FROM groups WHERE account_id = ?1 AND external_id = ?2",
                account_id,
                external_id,
            )?;
            if let Some(id) = by_id {
                if let Some(n) = name.as_deref().filter(|n| !n.is_empty())
                    && !name_taken(conn, account_id, n, id)?
                {
                    conn.prepare_cached("UPDATE groups SET name = ?2 WHERE id = ?1")?
                        .execute(params![id, n])?;
                }
                if let Some(d) = description {
                    conn.prepare_cached("UPDATE groups SET description = ?2 WHERE id = ?1")?
                        .execute(params![id, d])?;
                }
                return Ok(Some(id));
            }
            let name = name
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(external_id);
            // A local group of that name, or one known by its name only so far, takes the id.
            let adopt = find(
                conn,
                "SELECT id FROM groups WHERE account_id = ?1 AND name = ?2 \
                 AND (external_id IS NULL OR external_id = name)",
                account_id,
                name,
            )?;
            if let Some(id) = adopt {
                conn.prepare_cached("UPDATE groups SET external_id = ?2 WHERE id = ?1")?
                    .execute(params![id, external_id])?;
                if let Some(d) = description {
                    conn.prepare_cached("UPDATE groups SET description = ?2 WHERE id = ?1")?
                        .execute(params![id, d])?;
                }
                return Ok(Some(id));
            }
            insert(
                conn,
                account_id,
                name,
                description.as_deref().unwrap_or(""),
                external_id,
                now,
            )
        }
        GroupRef::Name(name) => {
            for sql in [
                "SELECT id FROM groups WHERE account_id = ?1 AND name = ?2 AND external_id IS NOT NULL",
                "SELECT id FROM groups WHERE account_id = ?1 AND external_id = ?2",
            ] {
                if let Some(id) = find(conn, sql, account_id, name)? {
                    return Ok(Some(id));
                }
            }
            if let Some(id) = find(
                conn,
                "SELECT id FROM groups WHERE account_id = ?1 AND name = ?2 AND external_id IS NULL",
                account_id,
                name,
            )? {
                conn.prepare_cached("UPDATE groups SET external_id = name WHERE id = ?1")?
                    .execute([id])?;
                return Ok(Some(id));
            }
            insert(conn, account_id, name, "", name, now)
        }
    }
}

/// What [`set_idp_memberships`] changed, by group name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    /// Groups the user joined.
    pub added: Vec<String>,
    /// Groups the user left.
    pub removed: Vec<String>,
}

impl Change {
    /// "+a, +b, -c", or "unchanged".
    pub fn summary(&self) -> String {
        if self.added.is_empty() && self.removed.is_empty() {
            return "unchanged".into();
        }
        let mut parts: Vec<String> = self.added.iter().map(|n| format!("+{n}")).collect();
        parts.extend(self.removed.iter().map(|n| format!("-{n}")));
        parts.join(", ")
    }
}

/// Makes the user's memberships in the account's IdP groups exactly `group_ids`; local
/// groups are left alone.
pub fn set_idp_memberships(
    conn: &Connection,
    account_id: i64,
    user_id: i64,
    group_ids: &[i64],
) -> Result<Change> {
    let wanted: HashSet<i64> = group_ids.iter().copied().collect();
    let current: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT g.id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.user_id = ?1 AND g.account_id = ?2 AND g.external_id IS NOT NULL",
        )?
        .query_map(params![user_id, account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let have: HashSet<i64> = current.iter().map(|(id, _)| *id).collect();
    let mut change = Change::default();
    for (id, name) in &current {
        if !wanted.contains(id) {
            conn.prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2")?
                .execute(params![id, user_id])?;
            change.removed.push(name.clone());
        }
    }
    for id in group_ids {
        if have.contains(id) {
            continue;
        }
        let n = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
            )?
            .execute(params![id, user_id])?;
        if n == 1 {
            let name: String = conn
                .prepare_cached("SELECT name FROM groups WHERE id = ?1")?
                .query_row([id], |r| r.get(0))?;
            change.added.push(name);
        }
    }
    change.added.sort();
    change.removed.sort();
    Ok(change)
}

/// The names of the user's groups (IdP and local), sorted.
pub fn names_of(conn: &Connection, user_id: i64) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.user_id = ?1 ORDER BY g.name",
        )?
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Result<Connection> {
        let mut c = Connection::open_in_memory()?;
        crate::store::migrations::apply(&mut c)?;
        c.execute_batch(
            "INSERT INTO accounts (id, identifier, name, created_at) VALUES (1, 'acme', 'Acme', 0);
             INSERT INTO users (id, account_id, email, role, status, created_at, updated_at)
               VALUES (1, 1, 'u@acme.test', 'user', 'active', 0, 0);",
        )?;
        Ok(c)
    }

    fn id(e: &str, n: Option<&str>) -> GroupRef {
        GroupRef::Id {
            external_id: e.into(),
            name: n.map(str::to_string),
            description: None,
        }
    }

    #[test]
    fn names_then_ids_end_in_one_group() -> Result<()> {
        let c = db()?;
        // Okta sign-in first (a name), then the Okta import (id and name).
        let a = resolve(&c, 1, &GroupRef::Name("eng".into()), 0)?;
        let b = resolve(&c, 1, &id("00g-eng", Some("eng")), 0)?;
        assert_eq!(a, b);
        // Later sign-ins by name find the imported group.
        assert_eq!(resolve(&c, 1, &GroupRef::Name("eng".into()), 0)?, a);
        let n: i64 = c.query_row("SELECT COUNT(*) FROM groups", [], |r| r.get(0))?;
        assert_eq!(n, 1);
        Ok(())
    }

    #[test]
    fn a_bare_id_is_named_by_its_id_until_its_name_is_known() -> Result<()> {
        let c = db()?;
        let a = resolve(&c, 1, &id("0b1c", None), 0)?.unwrap_or_default();
        let b = resolve(&c, 1, &id("0b1c", Some("Finance")), 0)?.unwrap_or_default();
        assert_eq!(a, b);
        let name: String =
            c.query_row("SELECT name FROM groups WHERE id = ?1", [a], |r| r.get(0))?;
        assert_eq!(name, "Finance");
        Ok(())
    }

    #[test]
    fn a_taken_name_is_disambiguated_not_failed() -> Result<()> {
        let c = db()?;
        let a = resolve(&c, 1, &id("00g-1", Some("eng")), 0)?;
        let b = resolve(&c, 1, &id("other-idp-eng", Some("eng")), 0)?;
        assert!(a.is_some() && b.is_some() && a != b);
        let names: Vec<String> = c
            .prepare("SELECT name FROM groups ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(names, ["eng", "eng (other-idp-eng)"]);
        Ok(())
    }

    #[test]
    fn memberships_follow_the_idp_and_leave_local_groups_alone() -> Result<()> {
        let c = db()?;
        c.execute(
            "INSERT INTO groups (id, account_id, name, created_at) VALUES (100, 1, 'local', 0)",
            [],
        )?;
        c.execute(
            "INSERT INTO group_members (group_id, user_id) VALUES (100, 1)",
            [],
        )?;
        let eng = resolve(&c, 1, &GroupRef::Name("eng".into()), 0)?.unwrap_or_default();
        let ops = resolve(&c, 1, &GroupRef::Name("ops".into()), 0)?.unwrap_or_default();
        let ch = set_idp_memberships(&c, 1, 1, &[eng, ops])?;
        assert_eq!(ch.summary(), "+eng, +ops");
        let ch = set_idp_memberships(&c, 1, 1, &[ops])?;
        assert_eq!(ch.summary(), "-eng");
        assert_eq!(
            set_idp_memberships(&c, 1, 1, &[ops])?.summary(),
            "unchanged"
        );
        assert_eq!(names_of(&c, 1)?, ["local", "ops"]);
        set_idp_memberships(&c, 1, 1, &[])?;
        assert_eq!(names_of(&c, 1)?, ["local"]);
        Ok(())
    }
}
