//! Certificate warnings for admins: when an admin is signed in, the tray checks the account's
//! SAML certificates — the IdP's (`Certificate`, `NextCertificate` of `get_saml`) and the agent's
//! own SP keys (`/sso/saml/sp_keys`) — and warns once a day at most (the day is kept in
//! `desktop.json`) about any that expires within 30 days. Checked at sign-in and then by a timer
//! a day later, not by polling.

use std::time::Duration;

use amove_agent::sso::cert;
use serde_json::Value;
use tauri::{AppHandle, Manager};

use crate::notify;
use crate::prefs::Prefs;
use crate::state::Shell;

/// Warn about certificates that expire within this many days.
pub const WARN_DAYS: i64 = 30;
const DAY: i64 = 86_400;

/// One certificate: what it is and when it ends (Unix time).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cert {
    what: String,
    not_after: i64,
}

/// The warning lines for the certificates that end within [`WARN_DAYS`] of `now`.
fn expiring(certs: &[Cert], now: i64) -> Vec<String> {
    certs
        .iter()
        .filter(|c| c.not_after - now <= WARN_DAYS * DAY)
        .map(|c| {
            let days = (c.not_after - now).div_euclid(DAY);
            let date = amove_agent::clock::rfc3339(c.not_after);
            let date = date.split('T').next().unwrap_or(&date);
            if days < 0 {
                format!("{} expired on {date}.", c.what)
            } else {
                format!("{} expires on {date} (in {days} days).", c.what)
            }
        })
        .collect()
}

/// Checks in the background now (after an admin's sign-in).
pub fn check_soon(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move { check(&app).await });
}

/// Checks again once a day for as long as the app runs (a no-op unless an admin is signed in).
pub fn follow(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(DAY as u64)).await;
            check(&app).await;
        }
    });
}

async fn check(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let (Some(s), Ok(agent)) = (shell.session(), shell.agent()) else {
        return;
    };
    if !s.is_admin {
        return;
    }
    let now = agent.now();
    let today = now.div_euclid(DAY);
    let prefs = app.state::<Prefs>();
    if prefs.get().cert_warned_day == Some(today) {
        return;
    }
    let certs = match account_certs(&shell, s.token.expose()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot check the account's certificates: {e}");
            return;
        }
    };
    let lines = expiring(&certs, now);
    tracing::info!(
        checked = certs.len(),
        expiring = lines.len(),
        "certificates checked"
    );
    if !lines.is_empty() {
        prefs.update(|v| v.cert_warned_day = Some(today));
        notify::certificates_expiring(app, &lines);
    }
}

async fn get(shell: &Shell, token: &str, path: &str) -> Result<Value, String> {
    let base = shell.base_url()?;
    let r = shell
        .http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("{path}: HTTP {}", r.status()));
    }
    r.json().await.map_err(|e| e.to_string())
}

/// The account's SAML certificates: none when SAML is not configured.
async fn account_certs(shell: &Shell, token: &str) -> Result<Vec<Cert>, String> {
    let saml = get(shell, token, "/sso/get_saml").await?;
    if saml.is_null() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (field, what) in [
        ("Certificate", "The identity provider's SAML certificate"),
        (
            "NextCertificate",
            "The identity provider's next SAML certificate",
        ),
    ] {
        if let Some(pem) = saml.get(field).and_then(Value::as_str)
            && let Ok(c) = cert::parse(field, pem)
        {
            out.push(Cert {
                what: format!("{what} ({})", c.subject),
                not_after: c.not_after,
            });
        }
    }
    let keys = get(shell, token, "/sso/saml/sp_keys").await?;
    for k in keys
        .get("Keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // A retiring key is on its way out: only the active ones must not lapse.
        if k.get("Status").and_then(Value::as_str) != Some("active") {
            continue;
        }
        let Some(pem) = k.get("Certificate").and_then(Value::as_str) else {
            continue;
        };
        if let Ok(c) = cert::parse("Certificate", pem) {
            let usage = k.get("Use").and_then(Value::as_str).unwrap_or("signing");
            out.push(Cert {
                what: format!("The agent's SAML {usage} certificate"),
                not_after: c.not_after,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_within_thirty_days_and_says_when() {
        let now = 1_800_000_000;
        let certs = [
            Cert {
                what: "A".into(),
                not_after: now + 31 * DAY,
            },
            Cert {
                what: "B".into(),
                not_after: now + 30 * DAY,
            },
            Cert {
                what: "C".into(),
                not_after: now + 3 * DAY + 5,
            },
            Cert {
                what: "D".into(),
                not_after: now - 1,
            },
        ];
        let lines = expiring(&certs, now);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("B expires on ") && lines[0].ends_with("(in 30 days)."));
        assert!(lines[1].ends_with("(in 3 days)."));
        assert!(lines[2].starts_with("D expired on "));
    }
}
