//! Applying a validated policy to the database, in one write transaction: the account (created
//! if missing), the provider configurations it declares (`null`: deleted), the callback
//! allow-list, the access token lifetime and the sign-in settings. A setting already as declared is left untouched,
//! so re-reading an unchanged file writes nothing (and invalidates no pending login).

use crate::admin::signin::{SIGNIN_AUDIT, signin_summary};
use crate::crypto::seal::Sealer;
use crate::domain::Kind;
use crate::error::Result;
use crate::login::idp_config::secret_context;
use crate::policy::parse::idp_key;
use crate::policy::{Declared, IdpPolicy, Policy};
use crate::secret::Secret;
use crate::store::audit::{self, NewEvent};
use crate::store::idp::{self, IdpConfig};
use crate::store::signin_settings;
use crate::store::{Db, accounts, callback_urls};

/// Who the audit trail says acted.
pub const ACTOR: &str = "policy";

/// What applying a policy did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The policy's account, if it has one.
    pub account_id: Option<i64>,
    /// One line per change (empty: everything was already as declared).
    pub changes: Vec<String>,
}

/// Applies `p` at `now`; every change is audited as done by [`ACTOR`]. `publish` runs inside
/// the write transaction, after the writes, with the policy's account: what it publishes (the
/// managed settings) is in force before any other write can run.
pub async fn apply(
    db: &Db,
    sealer: &Sealer,
    p: &Policy,
    now: i64,
    publish: impl FnOnce(Option<i64>) + Send + 'static,
) -> Result<Applied> {
    let p = p.clone();
    let sealer = sealer.clone();
    db.write(move |tx| {
        let Some(account) = &p.account else {
            publish(None);
            return Ok(Applied::default());
        };
        let from = format!("(policy file {})", p.path.display());
        let mut changes = Vec::new();
        let mut audit = |aid: i64, action: &str, detail: String| -> Result<()> {
            audit::record(
                tx,
                &NewEvent::ok(Some(aid), ACTOR, action, format!("{detail} {from}")),
                now,
            )?;
            changes.push(format!("{action}: {detail}"));
            Ok(())
        };
        let name = account.display_name.as_deref();
        let aid = match accounts::by_identifier(tx, &account.identifier)? {
            Some(a) => {
                if let Some(n) = name
                    && n != a.name
                {
                    accounts::set_name(tx, a.id, n)?;
                    audit(a.id, "account.update", format!("DisplayName={n}"))?;
                }
                a.id
            }
            None => {
                let n = name.unwrap_or(&account.identifier);
                let id = accounts::insert(tx, &account.identifier, n, now)?;
                audit(
                    id,
                    "account.create",
                    format!("account '{}' ({n})", account.identifier),
                )?;
                id
            }
        };

        // A provider the policy makes active wins over an admin's active one.
        let managed_active = p
            .idps
            .iter()
            .find(|(_, d)| matches!(d, Declared::Value(c) if c.config.active))
            .map(|(k, _)| *k);
        if let Some(winner) = managed_active
            && let Some(mut other) = idp::active(tx, aid)?
            && other.kind != winner
            && !p
                .idps
                .iter()
                .any(|(k, d)| *k == other.kind && d.is_declared())
        {
            other.active = false;
            idp::update(tx, &other, now)?;
            audit(
                aid,
                &action(other.kind, "update"),
                format!("Active=false (the policy makes {} active)", winner.label()),
            )?;
        }
        for (kind, d) in &p.idps {
            if matches!(d, Declared::Null)
                && let Some(gone) = idp::delete(tx, aid, *kind)?
            {
                audit(
                    aid,
                    &action(*kind, "delete"),
                    format!("Id={} ({}: null, none allowed)", gone.id, idp_key(*kind)),
                )?;
            }
        }
        // Inactive ones first, so that the one to activate finds no other active.
        let mut values: Vec<(Kind, &IdpPolicy)> = p
            .idps
            .iter()
            .filter_map(|(k, d)| match d {
                Declared::Value(v) => Some((*k, v)),
                _ => None,
            })
            .collect();
        values.sort_by_key(|(_, v)| v.config.active);
        for (kind, v) in values {
            let existing = idp::get(tx, aid, kind)?;
            let mut c = v.config.clone();
            c.account_id = aid;
            c.client_secret_enc =
                sealed_secret(&sealer, aid, kind, v.secret.as_ref(), existing.as_ref())?;
            match existing {
                None => {
                    c.id = idp::insert(tx, &c, now)?;
                    audit(aid, &action(kind, "create"), v.summary.clone())?;
                }
                Some(e) if same(&e, &c) => {}
                Some(e) => {
                    c.id = e.id;
                    idp::update(tx, &c, now)?;
                    let mut detail = v.summary.clone();
                    if e.client_secret_enc != c.client_secret_enc {
                        detail.push_str(", ClientSecret changed");
                    }
                    audit(aid, &action(kind, "update"), detail)?;
                }
            }
        }

        let urls = match &p.callback_urls {
            Declared::Absent => None,
            Declared::Null => Some(Vec::new()),
            Declared::Value(u) => Some(u.clone()),
        };
        if let Some(urls) = urls
            && callback_urls::list(tx, aid)? != urls
        {
            callback_urls::replace(tx, aid, &urls)?;
            audit(
                aid,
                "callback_urls.update",
                format!("{} URL(s): {}", urls.len(), urls.join(" ")),
            )?;
        }

        let ttl = match p.access_token_lifetime {
            Declared::Absent => None,
            Declared::Null => Some(None),
            Declared::Value(t) => Some(Some(t)),
        };
        if let Some(ttl) = ttl
            && accounts::by_id(tx, aid)?.and_then(|a| a.access_token_ttl_secs) != ttl
        {
            accounts::set_access_token_ttl(tx, aid, ttl)?;
            let detail = match ttl {
                Some(t) => format!("access tokens now expire after {t} s"),
                None => "access tokens now last until revoked".to_string(),
            };
            audit(aid, "token.policy", detail)?;
        }

        let current = signin_settings::get(tx, aid)?;
        let declared = p.signin.lay_over(current.clone());
        if declared != current {
            signin_settings::save(tx, aid, &declared, now)?;
            audit(aid, SIGNIN_AUDIT, signin_summary(&declared))?;
            if declared.admin_groups != current.admin_groups {
                for email in
                    crate::login::access::recheck_rule_admins(tx, aid, &declared, ACTOR, now)?
                {
                    changes.push(format!("user.role: {email} is now a standard user"));
                }
            }
        }
        publish(Some(aid));
        Ok(Applied {
            account_id: Some(aid),
            changes,
        })
    })
    .await
}

fn action(kind: Kind, verb: &str) -> String {
    format!("idp.{}.{verb}", kind.as_str())
}

/// The sealed client secret to store: the stored one when it is the policy's secret already
/// (sealing again would look like a change), else the policy's sealed afresh.
fn sealed_secret(
    sealer: &Sealer,
    account_id: i64,
    kind: Kind,
    secret: Option<&Secret>,
    existing: Option<&IdpConfig>,
) -> Result<Option<String>> {
    let Some(secret) = secret else {
        return Ok(None);
    };
    let ctx = secret_context(account_id, kind);
    let kept = existing
        .and_then(|e| e.client_secret_enc.as_ref())
        .filter(|enc| sealer.open_secret(enc, &ctx).is_ok_and(|s| &s == secret));
    match kept {
        Some(enc) => Ok(Some(enc.clone())),
        None => sealer.seal_secret(secret, &ctx).map(Some),
    }
}

/// Whether `stored` already is `declared` (ids, versions and times aside).
fn same(stored: &IdpConfig, declared: &IdpConfig) -> bool {
    let normalised = IdpConfig {
        id: declared.id,
        version: declared.version,
        updated_at: declared.updated_at,
        ..stored.clone()
    };
    normalised == *declared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy(v: serde_json::Value) -> Policy {
        crate::policy::parse(
            Path::new("/etc/amove/policy.json"),
            v.to_string().as_bytes(),
            0,
            false,
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn okta(client_id: &str) -> serde_json::Value {
        serde_json::json!({"ClientId": client_id, "Active": true,
            "OpenIdURL": "https://corp.okta.example/.well-known/openid-configuration"})
    }

    /// A database whose account `corp` a policy created, the sealer, and the account's id.
    async fn corp() -> Result<(Db, Sealer, i64)> {
        let db = Db::open_in_memory()?;
        let sealer = Sealer::from_key(&[7; 32]);
        let p = policy(serde_json::json!({"Account": {"Identifier": "corp"}}));
        let aid = apply(&db, &sealer, &p, 10, |_| {})
            .await?
            .account_id
            .unwrap_or_default();
        Ok((db, sealer, aid))
    }

    #[tokio::test]
    async fn an_unchanged_policy_writes_nothing_and_null_deletes() -> Result<()> {
        let db = Db::open_in_memory()?;
        let sealer = Sealer::from_key(&[7; 32]);
        let published = Arc::new(AtomicUsize::new(0));
        let count = |n: &Arc<AtomicUsize>| {
            let n = n.clone();
            move |_| {
                n.fetch_add(1, Ordering::SeqCst);
            }
        };
        let p = policy(serde_json::json!({"Account": {"Identifier": "corp"}, "Okta": okta("a")}));
        let first = apply(&db, &sealer, &p, 10, count(&published)).await?;
        assert_eq!(first.changes.len(), 2, "{:?}", first.changes);
        let aid = first.account_id.unwrap_or_default();
        let v1 = db
            .read(move |c| idp::get(c, aid, Kind::Okta))
            .await?
            .map(|c| c.version);
        let again = apply(&db, &sealer, &p, 20, count(&published)).await?;
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        let v2 = db
            .read(move |c| idp::get(c, aid, Kind::Okta))
            .await?
            .map(|c| c.version);
        assert_eq!(v1, v2, "no version bump: pending sign-ins stay valid");
        assert_eq!(published.load(Ordering::SeqCst), 2);

        let none = policy(serde_json::json!({"Account": {"Identifier": "corp"}, "Okta": null}));
        let gone = apply(&db, &sealer, &none, 30, count(&published)).await?;
        assert!(
            gone.changes
                .iter()
                .any(|c| c.starts_with("idp.okta.delete"))
        );
        assert!(
            db.read(move |c| idp::get(c, aid, Kind::Okta))
                .await?
                .is_none()
        );
        Ok(())
    }

    #[tokio::test]
    async fn sign_in_settings_follow_the_policy_and_keep_what_it_leaves_out() -> Result<()> {
        let (db, sealer, aid) = corp().await?;
        let admins = signin_settings::SigninSettings {
            admin_groups: vec!["Admins".into()],
            ..Default::default()
        };
        let saved = admins.clone();
        db.write(move |tx| signin_settings::save(tx, aid, &saved, 10))
            .await?;
        let p = policy(serde_json::json!({"Account": {"Identifier": "corp"},
            "SessionLifetimeDays": 7, "AutoProvision": null}));
        let r = apply(&db, &sealer, &p, 20, |_| {}).await?;
        assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
        assert!(r.changes[0].starts_with("signin_settings.update"));
        let now = db.read(move |c| signin_settings::get(c, aid)).await?;
        assert_eq!(
            (now.session_lifetime_days, now.admin_groups),
            (7, admins.admin_groups)
        );
        // The same file again changes nothing.
        assert!(
            apply(&db, &sealer, &p, 30, |_| {})
                .await?
                .changes
                .is_empty()
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_policys_active_provider_deactivates_an_admins() -> Result<()> {
        let (db, sealer, aid) = corp().await?;
        // An admin's active SAML configuration (validated as the API would).
        let cert = crate::sso::saml::testing::TestIdp::new()
            .map_err(Error::internal)?
            .cert_pem();
        let saml = policy(
            serde_json::json!({"Account": {"Identifier": "corp"}, "Saml": {
            "Certificate": cert, "SPEntityId": "sp",
            "IdPSSOURL": "https://idp.corp.example/sso", "Active": true}}),
        );
        let mut admins = match saml.idps.into_iter().find(|(k, _)| *k == Kind::Saml) {
            Some((_, Declared::Value(v))) => v.config,
            other => panic!("{other:?}"),
        };
        admins.account_id = aid;
        db.write(move |tx| idp::insert(tx, &admins, 10)).await?;

        let p = policy(serde_json::json!({"Account": {"Identifier": "corp"}, "Okta": okta("a")}));
        let r = apply(&db, &sealer, &p, 20, |_| {}).await?;
        assert!(
            r.changes
                .iter()
                .any(|c| c.starts_with("idp.saml.update: Active=false")),
            "{:?}",
            r.changes
        );
        let active = db.read(move |c| idp::active(c, aid)).await?.map(|c| c.kind);
        assert_eq!(active, Some(Kind::Okta));
        Ok(())
    }
}
