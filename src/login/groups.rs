//! Group memberships from a sign-in: what the ID token or the assertion says about the
//! user's groups becomes their memberships in the account's IdP groups (local groups are
//! left alone). Entra ID's groups overage — a token that says "too many groups to carry" —
//! is resolved through Microsoft Graph with the sign-in's own access token, as Microsoft
//! documents; the `_claim_sources` endpoint inside the token is never called.

use std::collections::{HashMap, HashSet};

use crate::login::idp_config;
use crate::secret::Secret;
use crate::sso::directory::{self, DirGroup};
use crate::sso::groups::SignInGroups;
use crate::state::AppState;
use crate::store::groups::GroupRef;
use crate::store::idp::{IdpConfig, Kind};

/// What a sign-in does to the user's IdP group memberships.
#[derive(Debug, Default)]
pub struct GroupUpdate {
    /// The groups the user is in at the IdP; `None`: leave the memberships as they are.
    pub groups: Option<Vec<GroupRef>>,
    /// Why the memberships could not be updated (for the audit trail).
    pub note: Option<String>,
}

/// Resolves what the sign-in says about groups. Never fails the sign-in: if Graph cannot
/// be read, memberships are left as they are and the audit trail says why (the groups do
/// not grant roles in the agent; the next sign-in or import brings them up to date).
pub async fn resolve(
    state: &AppState,
    config: &IdpConfig,
    said: &SignInGroups,
    access_token: Option<&Secret>,
) -> GroupUpdate {
    match said {
        SignInGroups::NotSent => GroupUpdate::default(),
        SignInGroups::Names(names) => GroupUpdate {
            groups: Some(names.iter().cloned().map(GroupRef::Name).collect()),
            note: None,
        },
        SignInGroups::Ids(ids) if config.kind == Kind::Entra => {
            // Ids the account has no group for yet are named through Graph, once.
            let aid = config.account_id;
            let wanted = ids.clone();
            let known = state
                .db
                .read(move |c| known_external_ids(c, aid, &wanted))
                .await
                .unwrap_or_default();
            let mut note = None;
            let mut names = HashMap::new();
            if ids.iter().any(|i| !known.contains(i))
                && let Some(token) = access_token
            {
                match my_groups(state, config, token).await {
                    Ok(gs) => names = gs.into_iter().map(|g| (g.external_id.clone(), g)).collect(),
                    Err(e) => note = Some(format!("group names could not be read: {e}")),
                }
            }
            let groups = ids
                .iter()
                .map(|id| {
                    let g: Option<&DirGroup> = names.get(id);
                    GroupRef::Id {
                        external_id: id.clone(),
                        name: g.map(|g| g.name.clone()),
                        description: g.map(|g| g.description.clone()),
                    }
                })
                .collect();
            GroupUpdate {
                groups: Some(groups),
                note,
            }
        }
        SignInGroups::Ids(ids) => GroupUpdate {
            // SAML attribute values: the group's id, and its name when it is new (as the
            // SAML import names them).
            groups: Some(
                ids.iter()
                    .map(|id| GroupRef::Id {
                        external_id: id.clone(),
                        name: None,
                        description: None,
                    })
                    .collect(),
            ),
            note: None,
        },
        SignInGroups::Overage => {
            let Some(token) = access_token else {
                return GroupUpdate {
                    groups: None,
                    note: Some(
                        "group memberships not updated: the groups overage needs an access token"
                            .into(),
                    ),
                };
            };
            match my_groups(state, config, token).await {
                Ok(gs) => GroupUpdate {
                    groups: Some(
                        gs.into_iter()
                            .map(|g| GroupRef::Id {
                                external_id: g.external_id,
                                name: Some(g.name),
                                description: Some(g.description),
                            })
                            .collect(),
                    ),
                    note: None,
                },
                Err(e) => GroupUpdate {
                    groups: None,
                    note: Some(format!(
                        "group memberships not updated (the token carried the groups overage \
                         marker): {e}"
                    )),
                },
            }
        }
    }
}

async fn my_groups(
    state: &AppState,
    config: &IdpConfig,
    token: &Secret,
) -> Result<Vec<DirGroup>, directory::DirError> {
    let graph = idp_config::graph_url(state, config).map_err(directory::DirError)?;
    directory::graph_my_groups(&state.oidc.http(), &graph, token, state.now()).await
}

fn known_external_ids(
    c: &rusqlite::Connection,
    account_id: i64,
    ids: &[String],
) -> crate::error::Result<HashSet<String>> {
    let mut stmt =
        c.prepare_cached("SELECT 1 FROM groups WHERE account_id = ?1 AND external_id = ?2")?;
    let mut known = HashSet::new();
    for id in ids {
        if stmt.exists(rusqlite::params![account_id, id])? {
            known.insert(id.clone());
        }
    }
    Ok(known)
}
