//! Who signs in (SPEC "Who signs in"): the local user of an IdP identity, found through its
//! link or — on the first sign-in — by a verified email within the account and then linked;
//! one link per user and provider kind; inactive users refused; an unknown identity created
//! when the account auto-provisions its verified email's domain; IdP group memberships and the
//! AdminGroups rule brought up to date in the same write transaction, which the audit trail
//! records.

use crate::error::{Error, Result};
use crate::login::AUDIT_SIGNIN;
use crate::login::access;
use crate::login::groups::GroupUpdate;
use crate::sso::oidc::IdpIdentity;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::groups as group_store;
use crate::store::signin_settings::{self, SigninSettings};
use crate::store::users::{Status, User};
use crate::store::{links, users};

/// Finds the local user of an IdP identity: through its link, or — on the first login
/// through this issuer — by email within the account (or, when the account auto-provisions the
/// email's domain, a new standard user), then links them; then brings their IdP group
/// memberships and their AdminGroups role up to date. One write transaction, recorded in the
/// audit trail.
pub(crate) async fn link_user(
    state: &AppState,
    account_id: i64,
    who: IdpIdentity,
    groups: GroupUpdate,
    now: i64,
) -> Result<User> {
    state
        .db
        .write(move |tx| {
            let settings = signin_settings::get(tx, account_id)?;
            let (user, mut detail) = find_or_link(tx, account_id, &who, &settings, now)?;
            if let Some(refs) = &groups.groups {
                let mut ids = Vec::with_capacity(refs.len());
                for r in refs {
                    if let Some(id) = group_store::resolve(tx, account_id, r, now)? {
                        ids.push(id);
                    }
                }
                let change = group_store::set_idp_memberships(tx, account_id, user.id, &ids)?;
                detail.push_str(&format!("; groups: {}", change.summary()));
            }
            if let Some(note) = &groups.note {
                detail.push_str(&format!("; {note}"));
            }
            let via = who.provider.label();
            let user = access::apply_admin_groups(tx, &settings, user, &groups, via, now)?;
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &user.email, AUDIT_SIGNIN, detail),
                now,
            )?;
            Ok(user)
        })
        .await
}

/// The local user of `who` and the audit detail of their sign-in (see [`link_user`]).
fn find_or_link(
    tx: &rusqlite::Connection,
    account_id: i64,
    who: &IdpIdentity,
    settings: &SigninSettings,
    now: i64,
) -> Result<(User, String)> {
    let label = who.provider.label();
    let ask = "ask an admin of your account";
    if let Some(link) = links::by_subject(tx, account_id, &who.issuer, &who.subject)? {
        let user = users::by_id(tx, link.user_id)?
            .filter(|u| u.account_id == account_id)
            .ok_or_else(|| {
                Error::Auth(format!(
                    "your {label} identity ({}) is linked to a user of another account; {ask}",
                    who.label
                ))
            })?;
        check_active(&user)?;
        return Ok((user, format!("via {label} as {}", who.label)));
    }
    let email = who.email.as_deref().ok_or_else(|| {
        Error::Auth(format!(
            "{label} did not provide a verified email address for {}, so no user of this \
             account can be matched; {ask}",
            who.label
        ))
    })?;
    let user = match users::by_email(tx, email)? {
        Some(u) if u.account_id == account_id => u,
        Some(_) => {
            return Err(Error::Auth(format!(
                "{email} signed in at {label} but is not a user of this account; {ask} to add you"
            )));
        }
        // No user of the agent has it: one only AutoProvision may create.
        None => access::provision(tx, account_id, settings, who, email, now)?,
    };
    // One link per user and provider kind: an identity of another tenant, authorization
    // server or IdP never links a user who is linked already, whatever email it carries.
    if let Some(existing) = links::for_user(tx, user.id, who.provider)?
        && (existing.issuer != who.issuer || existing.subject != who.subject)
    {
        return Err(Error::Auth(format!(
            "{email} is already linked to a different {label} identity; {ask}"
        )));
    }
    check_active(&user)?;
    links::insert(
        tx,
        &links::Link {
            account_id,
            user_id: user.id,
            provider: who.provider,
            issuer: who.issuer.clone(),
            subject: who.subject.clone(),
            linked_at: now,
        },
    )?;
    let detail = format!(
        "via {label}; first sign-in: linked to subject {} of {}",
        who.subject, who.issuer
    );
    Ok((user, detail))
}

fn check_active(user: &User) -> Result<()> {
    if user.status != Status::Active {
        return Err(Error::Auth(format!(
            "the user {} is inactive; ask an admin of your account",
            user.email
        )));
    }
    Ok(())
}
