//! Importing users and groups from the identity provider (admin): an import starts a sign-in
//! asking for directory scopes; its code is redeemed for the directory (Okta's Users and
//! Groups API, Microsoft Graph) or, for SAML, the asserted user and its groups attribute; the
//! read is kept sealed for the admin who made it, and persisting it creates and links the
//! users, groups and memberships in one transaction.

use std::collections::HashSet;

use tracing::instrument;
use url::Url;

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::login::complete::{oidc_exchange, saml_result};
use crate::login::idp_config;
use crate::login::start::{StartRequest, Started, start_login};
use crate::secret::Secret;
use crate::sso::directory::{self, DirGroup, DirUser, Relation};
use crate::sso::groups::{self, SignInGroups};
use crate::sso::saml::SamlIdentity;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::idp::{self, Kind};
use crate::store::imports::{self, DirectoryRead, ImportGroup, ImportUser, Outcome};
use crate::store::transactions::{self, Client, Purpose};
use crate::store::users;

/// Scopes an Okta import asks for besides the sign-in's.
pub const OKTA_SCOPES: &[&str] = &["email", "profile", "okta.users.read", "okta.groups.read"];
/// Scopes an Entra ID import asks for besides the sign-in's.
pub const ENTRA_SCOPES: &[&str] = &[
    "email",
    "profile",
    "https://graph.microsoft.com/User.Read.All",
    "https://graph.microsoft.com/GroupMember.Read.All",
];

/// Maps a directory user's id to the subject its sign-ins carry.
type SubjectOf = Box<dyn Fn(&str) -> String + Send>;

/// How long a directory read can be imported from.
pub const READ_TTL_SECS: i64 = 3600;

/// Starts an import for the admin `p`: a sign-in of `username` (default: the admin), who must
/// be a user of the admin's own account, at the account's active provider, asking for the
/// directory scopes. The browser comes back to `callback_url`.
pub async fn start_import(
    state: &AppState,
    p: &Principal,
    callback_url: &str,
    username: Option<String>,
) -> Result<Started> {
    let username = match username {
        Some(u) if !u.trim().is_empty() => u.trim().to_lowercase(),
        _ => p.user.email.clone(),
    };
    let (aid, u) = (p.account_id(), username.clone());
    let (user, active) = state
        .db
        .read(move |c| Ok((users::by_email(c, &u)?, idp::active(c, aid)?)))
        .await?;
    if user.is_none_or(|u| u.account_id != aid) {
        return Err(Error::Access(format!(
            "Username must be a user of your own account '{}'",
            p.account_identifier
        )));
    }
    let kind = active
        .ok_or_else(|| {
            Error::NotFound("this account has no active identity provider to import from".into())
        })?
        .kind;
    let scopes: &[&str] = match kind {
        Kind::Okta => OKTA_SCOPES,
        Kind::Entra => ENTRA_SCOPES,
        Kind::Saml => &[],
    };
    start_login(
        state,
        StartRequest {
            username: &username,
            callback_url,
            purpose: Purpose::Import,
            client: Client::Api,
            started_by_user_id: Some(p.user.id),
            scopes,
            force_authn: false,
        },
    )
    .await
}

/// A directory read: its id (the `Import-Id` to persist it with) and what was read.
#[derive(Debug)]
pub struct Read {
    /// The id to persist it with.
    pub import_id: i64,
    /// The IdP's users with their groups.
    pub relations: Vec<Relation>,
}

/// Redeems an import's `code` (the transaction named by `identifier`, or the admin's latest
/// pending import with `callback`) and reads the directory with it. The transaction is
/// consumed before anything else.
#[instrument(skip_all)]
pub async fn read_directory(
    state: &AppState,
    p: &Principal,
    code: &Secret,
    callback: String,
    identifier: Option<&str>,
) -> Result<Read> {
    let now = state.now();
    let (admin_id, aid) = (p.user.id, p.account_id());
    let key = match identifier.filter(|i| !i.trim().is_empty()) {
        // A value that cannot be one of our handles names no transaction.
        Some(i) => transactions::Key::from_identifier(i).ok_or_else(|| {
            Error::Security("this import was already completed or is unknown; start again".into())
        })?,
        None => {
            let cb = callback.clone();
            state
                .db
                .read(move |c| transactions::latest_pending_import(c, admin_id, &cb, now))
                .await?
                .map(|t| t.key())
                .ok_or_else(|| {
                    Error::NotFound(
                        "you have no pending import with this callbackUrl; start one with \
                         /sso/sso_url_import_user"
                            .into(),
                    )
                })?
        }
    };
    // Consumed before anything else: a code works once, even if this call fails later.
    let t = state
        .db
        .write(move |tx| transactions::consume(tx, &key, now))
        .await?
        .ok_or_else(|| {
            Error::Security("this import was already completed or is unknown; start again".into())
        })?;
    if t.purpose != Purpose::Import || t.account_id != aid || t.started_by_user_id != Some(admin_id)
    {
        return Err(Error::Security(
            "this Identifier does not name an import you started".into(),
        ));
    }
    if t.is_expired(now) {
        return Err(Error::Security(
            "this import has expired; start again".into(),
        ));
    }
    if t.callback_url != callback {
        return Err(Error::Security(
            "callbackUrl is not the one this import was started with".into(),
        ));
    }
    let kind = t.provider;
    let config = state
        .db
        .read(move |c| idp::get(c, aid, kind))
        .await?
        .filter(|c| t.started_with(c))
        .ok_or_else(|| {
            Error::Sso(
                "the identity provider configuration changed since the import started".into(),
            )
        })?;
    // Each user's IdP subject comes from the IdP itself: what its sign-ins will carry.
    let (relations, issuer, subject_of): (Vec<Relation>, String, SubjectOf) = match kind {
        Kind::Saml => {
            let r = saml_result(state, &t, code, now)?;
            let issuer = r.issuer.clone();
            (
                vec![saml_relation(r, config.groups_attribute.as_deref())],
                issuer,
                Box::new(|id: &str| id.to_string()),
            )
        }
        Kind::Okta | Kind::Entra => {
            let signed_in = oidc_exchange(state, &t, &config, code, now).await?;
            let http = state.oidc.http();
            let fetched = if kind == Kind::Okta {
                // Okta's management API lives on the org's origin, whatever the issuer path.
                let openid = config.openid_url.as_deref().unwrap_or_default();
                let origin = Url::parse(openid)
                    .ok()
                    .and_then(|u| Url::parse(&u.origin().ascii_serialization()).ok())
                    .ok_or_else(|| Error::internal("OpenIdURL is not a URL"))?;
                directory::okta(&http, &origin, &signed_in.access_token, now).await
            } else {
                let graph = idp_config::graph_url(state, &config).map_err(Error::Sso)?;
                directory::graph(&http, &graph, &signed_in.access_token, now).await
            };
            let relations =
                fetched.map_err(|e| Error::Sso(format!("reading the directory failed: {e}")))?;
            let issuer = signed_in.identity.issuer.clone();
            let subject: SubjectOf = if kind == Kind::Entra {
                // Entra subjects are `tid/oid`; the directory read is of the signed-in tenant.
                let tid = signed_in
                    .identity
                    .subject
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Box::new(move |oid: &str| format!("{tid}/{oid}"))
            } else {
                Box::new(|id: &str| id.to_string())
            };
            (relations, issuer, subject)
        }
    };
    let read = to_read(&relations, subject_of.as_ref());
    let sealed = state.sealer.seal(
        &serde_json::to_vec(&read).map_err(Error::internal)?,
        &format!("directory_reads:{aid}:{admin_id}"),
    )?;
    let iss = issuer.clone();
    let import_id = state
        .db
        .write(move |tx| {
            imports::insert_read(
                tx,
                aid,
                admin_id,
                kind,
                &iss,
                &sealed,
                now,
                now + READ_TTL_SECS,
            )
        })
        .await?;
    let (actor, n) = (p.user.email.clone(), relations.len());
    let ev = NewEvent::ok(
        Some(aid),
        &actor,
        "import.read",
        format!("{n} users read from {}", kind.label()),
    );
    state
        .db
        .write(move |tx| audit::record(tx, &ev, now))
        .await?;
    Ok(Read {
        import_id,
        relations,
    })
}

fn to_read(relations: &[Relation], subject_of: &(dyn Fn(&str) -> String + Send)) -> DirectoryRead {
    let mut groups: Vec<ImportGroup> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let users = relations
        .iter()
        .map(|r| {
            for g in &r.groups {
                if seen.insert(g.external_id.clone()) {
                    groups.push(ImportGroup {
                        external_id: g.external_id.clone(),
                        name: g.name.clone(),
                        description: g.description.clone(),
                    });
                }
            }
            ImportUser {
                external_id: r.user.external_id.clone(),
                subject: subject_of(&r.user.external_id),
                email: r.user.email.clone(),
                first_name: r.user.firstname.clone(),
                last_name: r.user.lastname.clone(),
                groups: r.groups.iter().map(|g| g.external_id.clone()).collect(),
            }
        })
        .collect();
    DirectoryRead { users, groups }
}

/// Persists the users of directory read `import_id` (all, or those `selected` by external id)
/// with their groups, in one transaction, for the admin who made the read.
#[instrument(skip_all)]
pub async fn persist(
    state: &AppState,
    p: &Principal,
    import_id: i64,
    selected: Option<HashSet<String>>,
) -> Result<Outcome> {
    let (aid, admin_id, actor, now) =
        (p.account_id(), p.user.id, p.user.email.clone(), state.now());
    let (kind, issuer, sealed, expires) = state
        .db
        .read(move |c| imports::read(c, aid, import_id))
        .await?
        .ok_or_else(|| Error::NotFound(format!("no directory read {import_id} in this account")))?;
    if expires <= now {
        return Err(Error::NotFound(format!(
            "directory read {import_id} has expired; read the directory again"
        )));
    }
    // Sealed for the admin who read it: another admin's read does not open.
    let bytes = state
        .sealer
        .open(&sealed, &format!("directory_reads:{aid}:{admin_id}"))
        .map_err(|_| Error::NotFound(format!("no directory read {import_id} of yours")))?;
    let read: DirectoryRead = serde_json::from_slice(&bytes).map_err(Error::internal)?;
    // Validated here, at the boundary: the store sees only users it can create.
    let (usable, mut skipped) = usable_users(&read, selected.as_ref());
    let out = state
        .db
        .write(move |tx| {
            let mut out = imports::persist(tx, aid, kind, &issuer, &read, Some(&usable), now)?;
            skipped.append(&mut out.skipped);
            out.skipped = skipped;
            let detail = format!(
                "from {}: {} created, {} updated, {} skipped, {} groups; {} no longer at the IdP",
                kind.label(),
                out.created.len(),
                out.updated.len(),
                out.skipped.len(),
                out.groups,
                out.removed_at_idp.len()
            );
            audit::record(
                tx,
                &NewEvent::ok(Some(aid), &actor, "import.persist", detail),
                now,
            )?;
            Ok(out)
        })
        .await?;
    Ok(out)
}

/// The external ids of the `selected` users of `read` whose email is usable, and the others
/// as (email, reason) skips.
fn usable_users(
    read: &DirectoryRead,
    selected: Option<&HashSet<String>>,
) -> (HashSet<String>, Vec<(String, String)>) {
    let mut usable = HashSet::new();
    let mut skipped = Vec::new();
    for u in read
        .users
        .iter()
        .filter(|u| selected.is_none_or(|s| s.contains(&u.external_id)))
    {
        let email = u.email.trim().to_lowercase();
        if crate::bootstrap::validate_email(&email).is_err() {
            skipped.push((
                u.external_id.clone(),
                format!("'{}' is not a usable email address", u.email),
            ));
        } else {
            usable.insert(u.external_id.clone());
        }
    }
    (usable, skipped)
}

/// The one user a SAML assertion speaks of, with the groups of its group attribute.
fn saml_relation(id: SamlIdentity, groups_attribute: Option<&str>) -> Relation {
    let attr = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .find_map(|n| {
                id.attributes
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default()
    };
    let first = |names: &[&str]| attr(names).into_iter().next().unwrap_or_default();
    // The asserted email only (an emailAddress NameID, or an email attribute): a persistent
    // NameID is no email, and an import without one skips the user.
    let email = id.email.clone().unwrap_or_default();
    let groups = match groups::from_saml_attributes(&id.attributes, groups_attribute) {
        SignInGroups::Ids(v) | SignInGroups::Names(v) => v,
        SignInGroups::NotSent | SignInGroups::Overage => Vec::new(),
    };
    let groups = groups
        .into_iter()
        .map(|g| DirGroup {
            external_id: g.clone(),
            name: g,
            description: String::new(),
        })
        .collect();
    Relation {
        user: DirUser {
            external_id: id.name_id.clone(),
            username: email.clone(),
            email,
            firstname: first(&[
                "givenName",
                "firstName",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
            ]),
            lastname: first(&[
                "sn",
                "surname",
                "lastName",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
            ]),
        },
        groups,
    }
}
