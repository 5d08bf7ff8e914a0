//! Provisioning from the command line (and the desktop app's first-run screen): create the
//! account and its owner, add and list users. Plain functions over a [`Db`].

use crate::auth::password;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::store::audit::{self, NewEvent};
use crate::store::users::{NewUser, Role, Status, User};
use crate::store::{Db, accounts, users};

/// Checks an account identifier: 2–63 of `a-z 0-9 -`, starting with a letter or digit.
pub fn validate_identifier(s: &str) -> Result<String> {
    let s = s.trim().to_lowercase();
    let ok = (2..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-');
    if !ok {
        return Err(Error::invalid(format!(
            "account identifier '{s}' must be 2-63 characters of a-z, 0-9 and '-', not starting with '-'"
        )));
    }
    Ok(s)
}

/// Checks and normalises (lower-cases) an email used as a username.
pub fn validate_email(s: &str) -> Result<String> {
    let s = s.trim().to_lowercase();
    let valid = s.len() <= 254
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c));
    if !valid {
        return Err(Error::invalid(format!(
            "'{s}' is not a valid email address"
        )));
    }
    Ok(s)
}

/// Splits "First Last" into given and family name (everything after the first word).
pub fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (name.to_string(), String::new()),
    }
}

/// Creates the account `identifier` and its owner `admin_email` with a local password.
pub fn init_account(
    db: &Db,
    identifier: &str,
    display_name: Option<&str>,
    admin_email: &str,
    admin_name: Option<&str>,
    pw: &Secret,
    now: i64,
) -> Result<(i64, User)> {
    let identifier = validate_identifier(identifier)?;
    let email = validate_email(admin_email)?;
    password::check_policy(pw)?;
    let hash = password::hash(pw)?;
    let (first_name, last_name) = split_name(admin_name.unwrap_or(""));
    let name = display_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(&identifier)
        .to_string();
    db.write_blocking(|tx| {
        let account_id = accounts::insert(tx, &identifier, &name, now)?;
        let id = users::insert(
            tx,
            &NewUser {
                account_id,
                email: email.clone(),
                first_name,
                last_name,
                role: Role::Owner,
                password_hash: Some(hash),
            },
            now,
        )?;
        audit::record(
            tx,
            &NewEvent::ok(
                Some(account_id),
                "system",
                "account.create",
                format!("account '{identifier}' with owner {email}"),
            ),
            now,
        )?;
        let user = users::by_id(tx, id)?.ok_or_else(|| Error::internal("user vanished"))?;
        Ok((account_id, user))
    })
}

/// Fails with `DUPLICATE` when the account or the email exists already (checked before the
/// CLI prompts for a password; `init_account` checks again inside its transaction).
pub fn check_new_account(db: &Db, identifier: &str, email: &str) -> Result<()> {
    db.read_blocking(|c| {
        if accounts::by_identifier(c, identifier)?.is_some() {
            return Err(Error::Duplicate(format!(
                "an account with identifier '{identifier}' already exists"
            )));
        }
        if users::by_email(c, email)?.is_some() {
            return Err(Error::Duplicate(format!(
                "a user with email '{email}' already exists"
            )));
        }
        Ok(())
    })
}

/// Adds a user to an account. `pw` is optional: SSO users need none.
pub fn add_user(
    db: &Db,
    identifier: &str,
    email: &str,
    admin: bool,
    name: Option<&str>,
    pw: Option<&Secret>,
    now: i64,
) -> Result<User> {
    let identifier = validate_identifier(identifier)?;
    let email = validate_email(email)?;
    let hash = match pw {
        Some(pw) => {
            password::check_policy(pw)?;
            Some(password::hash(pw)?)
        }
        None => None,
    };
    let (first_name, last_name) = split_name(name.unwrap_or(""));
    db.write_blocking(|tx| {
        let account = accounts::by_identifier(tx, &identifier)?
            .ok_or_else(|| Error::NotFound(format!("there is no account '{identifier}'")))?;
        let role = if admin { Role::Admin } else { Role::User };
        let id = users::insert(
            tx,
            &NewUser {
                account_id: account.id,
                email: email.clone(),
                first_name,
                last_name,
                role,
                password_hash: hash,
            },
            now,
        )?;
        audit::record(
            tx,
            &NewEvent::ok(
                Some(account.id),
                "system",
                "user.create",
                format!("{email} ({})", role.as_str()),
            ),
            now,
        )?;
        users::by_id(tx, id)?.ok_or_else(|| Error::internal("user vanished"))
    })
}

/// Activates or deactivates a user (an inactive user is refused everywhere).
pub fn set_user_status(
    db: &Db,
    identifier: &str,
    email: &str,
    status: Status,
    now: i64,
) -> Result<()> {
    let identifier = validate_identifier(identifier)?;
    let email = validate_email(email)?;
    db.write_blocking(|tx| {
        let account = accounts::by_identifier(tx, &identifier)?
            .ok_or_else(|| Error::NotFound(format!("there is no account '{identifier}'")))?;
        let user = users::by_email(tx, &email)?
            .filter(|u| u.account_id == account.id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "there is no user {email} in account '{identifier}'"
                ))
            })?;
        users::set_status(tx, user.id, status, now)?;
        audit::record(
            tx,
            &NewEvent::ok(
                Some(account.id),
                "system",
                "user.status",
                format!("{email} is now {}", status.as_str()),
            ),
            now,
        )
    })
}

/// Every user of an account.
pub fn list_users(db: &Db, identifier: &str) -> Result<Vec<User>> {
    let identifier = validate_identifier(identifier)?;
    db.read_blocking(|c| {
        let account = accounts::by_identifier(c, &identifier)?
            .ok_or_else(|| Error::NotFound(format!("there is no account '{identifier}'")))?;
        users::list(c, account.id)
    })
}

/// True when no account exists yet (the desktop app then shows its first-run screen).
pub fn needs_setup(db: &Db) -> Result<bool> {
    Ok(db.read_blocking(accounts::count)? == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_identifiers_and_emails() {
        assert_eq!(
            validate_identifier(" MyCompany ").ok().as_deref(),
            Some("mycompany")
        );
        for bad in ["a", "-x", "has space", "ü-corp", &"x".repeat(64)] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_email("Max@Corp.Test").ok().as_deref(),
            Some("max@corp.test")
        );
        for bad in [
            "",
            "max",
            "@corp.test",
            "max@",
            "a b@c.d",
            "a@b@c",
            "a@.b",
            "<a>@b.c",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn init_refuses_duplicates_and_weak_passwords() -> Result<()> {
        let db = Db::open_in_memory()?;
        let pw = Secret::new("a long enough password");
        init_account(
            &db,
            "acme",
            None,
            "owner@acme.test",
            Some("Ann Owner"),
            &pw,
            0,
        )?;
        assert!(matches!(
            init_account(&db, "acme", None, "x@acme.test", None, &pw, 0),
            Err(Error::Duplicate(_))
        ));
        assert!(matches!(
            init_account(&db, "other", None, "owner@acme.test", None, &pw, 0),
            Err(Error::Duplicate(_))
        ));
        // The failed second init left no half-created account behind.
        assert!(list_users(&db, "other").is_err());
        assert!(
            init_account(
                &db,
                "third",
                None,
                "t@acme.test",
                None,
                &Secret::new("short"),
                0
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn adds_sso_users_without_password() -> Result<()> {
        let db = Db::open_in_memory()?;
        init_account(
            &db,
            "acme",
            None,
            "owner@acme.test",
            None,
            &Secret::new("a long enough password"),
            0,
        )?;
        let u = add_user(
            &db,
            "acme",
            "Bob@Acme.test",
            false,
            Some("Bob Builder"),
            None,
            0,
        )?;
        assert_eq!(
            (
                u.email.as_str(),
                u.first_name.as_str(),
                u.password_hash.is_none()
            ),
            ("bob@acme.test", "Bob", true)
        );
        assert_eq!(list_users(&db, "acme")?.len(), 2);
        Ok(())
    }
}
