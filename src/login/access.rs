//! Who may get in (issue 18): AutoProvision (an unknown identity whose verified email is in one
//! of the account's domains becomes a standard user at its first sign-in), AdminGroups (the
//! members of the listed IdP groups are admins, for as long as each sign-in shows it), and the
//! account's absolute session lifetime. The sign-in's write transaction calls these.

use rusqlite::Connection;

use crate::admin::signin::{email_domain, same_group};
use crate::error::{Error, Result};
use crate::login::groups::GroupUpdate;
use crate::sso::oidc::IdpIdentity;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::groups::GroupRef;
use crate::store::signin_settings::{self, SigninSettings};
use crate::store::users::{self, NewUser, Role, User};

/// The audit action of a user created by AutoProvision.
pub const AUDIT_AUTOPROVISION: &str = "user.autoprovision";
/// The audit action of a role changed by the AdminGroups rule.
pub const AUDIT_ROLE: &str = "user.role";

/// The absolute lifetime of the account's signed-in sessions, in seconds (the admin's
/// `SessionLifetimeDays`, 30 days by default): renewals of a session end this long after the
/// sign-in that started it.
pub async fn session_lifetime_secs(state: &AppState, account_id: i64) -> Result<i64> {
    state
        .db
        .read(move |c| signin_settings::session_lifetime_secs(c, account_id))
        .await
}

/// Creates the user of `who`, whose verified `email` no user of the agent has, when the
/// account auto-provisions its domain: a standard user, active, audited. Otherwise the refusal
/// a sign-in of an unknown user gets (401 `AUTH`), saying why.
pub(crate) fn provision(
    tx: &Connection,
    account_id: i64,
    settings: &SigninSettings,
    who: &IdpIdentity,
    email: &str,
    now: i64,
) -> Result<User> {
    let label = who.provider.label();
    let not_a_user = || {
        Error::Auth(format!(
            "{email} signed in at {label} but is not a user of this account; ask an admin of \
             your account to add you"
        ))
    };
    if !settings.auto_provision {
        return Err(not_a_user());
    }
    let Some(domain) = email_domain(email).filter(|d| settings.auto_provision_domains.contains(d))
    else {
        return Err(Error::Auth(format!(
            "{email} signed in at {label} but is not a user of this account, and its domain is \
             not one the account adds users of automatically; ask an admin of your account to \
             add you"
        )));
    };
    // The username is the email with its domain in the form that matched, and must be one a
    // user could be added with (as an import checks the emails it creates).
    let local = email.rsplit_once('@').map_or(email, |(l, _)| l);
    let username =
        crate::bootstrap::validate_email(&format!("{local}@{domain}")).map_err(|_| {
            Error::Auth(format!(
                "{email} signed in at {label}, but it cannot be a username of this agent; ask an \
             admin of your account to add you"
            ))
        })?;
    let id = users::insert(
        tx,
        &NewUser {
            account_id,
            email: username.clone(),
            first_name: String::new(),
            last_name: String::new(),
            role: Role::User,
            password_hash: None,
        },
        now,
    )?;
    audit::record(
        tx,
        &NewEvent::ok(
            Some(account_id),
            &username,
            AUDIT_AUTOPROVISION,
            format!(
                "{username} created as a standard user at the first sign-in via {label} \
                 (verified email in the auto-provisioned domain {domain})"
            ),
        ),
        now,
    )?;
    users::by_id(tx, id)?.ok_or_else(|| Error::internal("user vanished"))
}

/// Applies the AdminGroups rule to `user` at a sign-in whose groups are `groups`: a member of
/// one of the account's AdminGroups becomes an admin (recorded as the rule's doing); an admin
/// the rule made whose sign-in shows no AdminGroup any more (or no groups at all) is a standard
/// user again. Admins made by hand and the owner are never changed. Audited; returns the user
/// as they are now.
pub(crate) fn apply_admin_groups(
    tx: &Connection,
    settings: &SigninSettings,
    user: User,
    groups: &GroupUpdate,
    via: &str,
    now: i64,
) -> Result<User> {
    // Only a standard user is promoted, and only the rule's own admins demoted: the owner and
    // admins made by hand fall through both arms below.
    let member_of = groups
        .groups
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|g| {
            let sent = match g {
                GroupRef::Name(n) => n,
                // The id as the IdP sends it (Entra object id, SAML attribute value), never a
                // display name read beside it: Entra names are not unique.
                GroupRef::Id { external_id, .. } => external_id,
            };
            settings.admin_groups.iter().find(|a| same_group(a, sent))
        });
    let (role, reason) = match (user.role, member_of) {
        (Role::User, Some(group)) => (
            Role::Admin,
            format!("admin: member of the AdminGroup '{group}' at {via}"),
        ),
        (Role::Admin, None) if users::role_by_rule(tx, user.id)? => {
            let why = match (&groups.groups, &groups.note) {
                (Some(_), _) => "its groups at the IdP include no AdminGroup any more".to_string(),
                (None, Some(note)) => format!("its groups could not be read ({note})"),
                (None, None) => "the sign-in carried no groups".to_string(),
            };
            (
                Role::User,
                format!("standard user: was admin by AdminGroups, and at {via} {why}"),
            )
        }
        _ => return Ok(user),
    };
    users::set_role(tx, user.id, role, role == Role::Admin, now)?;
    audit::record(
        tx,
        &NewEvent::ok(
            Some(user.account_id),
            &user.email,
            AUDIT_ROLE,
            format!("{} is now {reason}", user.email),
        ),
        now,
    )?;
    Ok(User { role, ..user })
}

/// After the account's AdminGroups changed (an admin's save, a policy): each admin the rule made
/// whose IdP group memberships — as their last sign-in or import left them — include none of
/// the new AdminGroups is a standard user again at once, rather than at their next sign-in.
/// Memberships are compared as a sign-in compares them: by the group's IdP id, and for Okta
/// (whose sign-ins carry names) by name too. Audited as done by `actor`; returns who changed.
pub fn recheck_rule_admins(
    tx: &Connection,
    account_id: i64,
    settings: &SigninSettings,
    actor: &str,
    now: i64,
) -> Result<Vec<String>> {
    let okta = crate::store::idp::active(tx, account_id)?
        .is_some_and(|c| c.kind == crate::domain::Kind::Okta);
    let admins: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT id, email FROM users WHERE account_id = ?1 AND role = 'admin' \
             AND role_source = 'admin_groups' ORDER BY email",
        )?
        .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut memberships = tx.prepare_cached(
        "SELECT g.name, g.external_id FROM group_members m JOIN groups g ON g.id = m.group_id \
         WHERE m.user_id = ?1 AND g.external_id IS NOT NULL",
    )?;
    let mut demoted = Vec::new();
    for (id, email) in admins {
        let groups: Vec<(String, String)> = memberships
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let listed = |g: &str| settings.admin_groups.iter().any(|a| same_group(a, g));
        if groups
            .iter()
            .any(|(name, external)| listed(external) || (okta && listed(name)))
        {
            continue;
        }
        users::set_role(tx, id, Role::User, false, now)?;
        audit::record(
            tx,
            &NewEvent::ok(
                Some(account_id),
                actor,
                AUDIT_ROLE,
                format!(
                    "{email} is now standard user: was admin by AdminGroups, and AdminGroups \
                     changed to list none of its IdP groups"
                ),
            ),
            now,
        )?;
        demoted.push(email);
    }
    Ok(demoted)
}
