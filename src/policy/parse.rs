//! The policy file's format: one JSON object with the API's keys (matched case-insensitively,
//! as the API matches them), each value validated by the same function the API uses.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::admin;
use crate::admin::signin;
use crate::domain::Kind;
use crate::error::Error;
use crate::fields::{Fields, check_text, json_type};
use crate::policy::{AccountPolicy, Declared, IdpPolicy, NetworkPolicy, Policy, SigninPolicy};
use crate::sso::net::ProxyUrl;

/// The top-level keys a policy may hold (keys starting with `_`, such as `_comment`, are
/// ignored).
pub const KEYS: [&str; 11] = [
    "Account",
    "Okta",
    "EntraId",
    "Saml",
    "CallbackUrls",
    "AccessTokenLifetimeSeconds",
    signin::AUTO_PROVISION,
    signin::AUTO_PROVISION_DOMAINS,
    signin::ADMIN_GROUPS,
    signin::SESSION_LIFETIME,
    "Network",
];

/// The file key of each provider kind.
pub fn idp_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Okta => "Okta",
        Kind::Entra => "EntraId",
        Kind::Saml => "Saml",
    }
}

const MAX_DISPLAY_NAME: usize = 200;

/// Parses and validates a policy file's bytes. `now` is the time certificates are checked at;
/// `loopback_graph` the agent's test setting for `GraphURL`. On failure, every problem found,
/// each naming its key (`"Okta: OpenIdURL must be …"`).
pub fn parse(
    path: &Path,
    bytes: &[u8],
    now: i64,
    loopback_graph: bool,
) -> Result<Policy, Vec<String>> {
    // Windows PowerShell writes UTF-8 with a byte-order mark; JSON has none.
    let json = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| vec![format!("the file is not valid JSON: {e}")])?;
    let Value::Object(obj) = value else {
        return Err(vec![format!(
            "the file must hold one JSON object, not {}",
            json_type(&value)
        )]);
    };
    let f = Fields::from_object(obj).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let mut unknown: Vec<&str> = f
        .keys()
        .filter(|k| !k.starts_with('_') && !KEYS.iter().any(|n| n.eq_ignore_ascii_case(k)))
        .collect();
    unknown.sort_unstable();
    for k in unknown {
        problems.push(format!(
            "{k}: unknown key (a policy holds {})",
            KEYS.join(", ")
        ));
    }

    let account = account(&f, &mut problems);
    let mut idps = Vec::new();
    for kind in Kind::ALL {
        let key = idp_key(kind);
        let d = match f.declared(key) {
            None => Declared::Absent,
            Some(Value::Null) => Declared::Null,
            Some(Value::Object(o)) => {
                match Fields::from_object(o.clone())
                    .and_then(|p| admin::idp::validate(kind, &p, 0, now, false, loopback_graph))
                {
                    Ok(v) => Declared::Value(IdpPolicy {
                        config: v.config,
                        secret: match v.secret {
                            admin::idp::SecretChange::Set(s) => Some(s),
                            // No secret: a public client.
                            admin::idp::SecretChange::Keep | admin::idp::SecretChange::Remove => {
                                None
                            }
                        },
                        summary: v.summary,
                    }),
                    Err(e) => {
                        problems.extend(messages(&e).into_iter().map(|m| named(key, &m)));
                        Declared::Absent
                    }
                }
            }
            Some(v) => {
                problems.push(format!(
                    "{key} must be an object (the API's fields) or null (none allowed), not {}",
                    json_type(v)
                ));
                Declared::Absent
            }
        };
        idps.push((kind, d));
    }
    let active: Vec<&str> = idps
        .iter()
        .filter(|(_, d)| matches!(d, Declared::Value(p) if p.config.active))
        .map(|(k, _)| idp_key(*k))
        .collect();
    if active.len() > 1 {
        problems.push(format!(
            "{}: at most one provider may be Active",
            active.join(", ")
        ));
    }

    let callback_urls = match f.declared("CallbackUrls") {
        None => Declared::Absent,
        Some(Value::Null) => Declared::Null,
        Some(_) => match f
            .opt_str_list("CallbackUrls")
            .and_then(|raw| admin::callback_urls(&raw.unwrap_or_default()))
        {
            Ok(urls) => Declared::Value(urls),
            Err(e) => {
                problems.push(named("CallbackUrls", &e.to_string()));
                Declared::Absent
            }
        },
    };
    let access_token_lifetime = match f.declared("AccessTokenLifetimeSeconds") {
        None => Declared::Absent,
        Some(Value::Null) => Declared::Null,
        Some(_) => match f
            .opt_i64("AccessTokenLifetimeSeconds")
            .and_then(admin::access_token_lifetime)
        {
            Ok(Some(t)) => Declared::Value(t),
            Ok(None) => Declared::Null,
            Err(e) => {
                problems.push(named("AccessTokenLifetimeSeconds", &e.to_string()));
                Declared::Absent
            }
        },
    };
    let network = network(&f, &mut problems);
    let signin = signin_settings(&f, &mut problems);

    // Everything but the account itself and the machine's network belongs to an account.
    let scoped: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| *k != "Account" && *k != "Network" && f.declared(k).is_some())
        .collect();
    if account.is_none() && f.declared("Account").is_none() && !scoped.is_empty() {
        problems.push(format!(
            "Account is required when the policy manages {} (they belong to an account): \
             {{\"Account\": {{\"Identifier\": \"…\", \"DisplayName\": \"…\"}}}}",
            scoped.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Policy {
        path: path.to_path_buf(),
        digest: crate::crypto::sha256_hex_bytes(bytes),
        account,
        idps,
        callback_urls,
        access_token_lifetime,
        network,
        signin,
    })
}

/// `AutoProvision`, `AutoProvisionDomains`, `AdminGroups`, `SessionLifetimeDays`: each absent,
/// `null`, or a value the API's own check accepts.
fn signin_settings(f: &Fields, problems: &mut Vec<String>) -> SigninPolicy {
    // The API reads one key of a body; a body of that key alone is what the policy hands it.
    let one = |key: &str| -> Option<Fields> {
        let v = f.declared(key)?.clone();
        let mut o = serde_json::Map::new();
        o.insert(key.to_string(), v);
        Fields::from_object(o).ok()
    };
    let mut p = SigninPolicy::default();
    let mut take =
        |key: &str, pick: &dyn Fn(admin::signin::SigninChange, &mut SigninPolicy)| match f
            .declared(key)
        {
            None => {}
            Some(Value::Null) => pick(admin::signin::SigninChange::default(), &mut p),
            Some(_) => match one(key).map(|o| admin::signin::change(&o)) {
                Some(Ok(c)) => pick(c, &mut p),
                Some(Err(e)) => problems.push(named(key, &e.to_string())),
                None => {}
            },
        };
    // A change of `null` (nothing given) is the setting's none.
    fn declared<T>(v: Option<T>) -> Declared<T> {
        v.map_or(Declared::Null, Declared::Value)
    }
    take(signin::AUTO_PROVISION, &|c, p| {
        p.auto_provision = declared(c.auto_provision)
    });
    take(signin::AUTO_PROVISION_DOMAINS, &|c, p| {
        p.auto_provision_domains = declared(c.auto_provision_domains)
    });
    take(signin::ADMIN_GROUPS, &|c, p| {
        p.admin_groups = declared(c.admin_groups)
    });
    take(signin::SESSION_LIFETIME, &|c, p| {
        p.session_lifetime_days = declared(c.session_lifetime_days)
    });
    p
}

/// The messages of an error, one per problem.
fn messages(e: &Error) -> Vec<String> {
    e.public_messages()
        .map(|ms| ms.into_iter().map(str::to_string).collect())
        .unwrap_or_else(|| vec![e.to_string()])
}

/// `msg` as the problem of `key`: the API's messages name the field within the object
/// ("OpenIdURL must be …"), the file's readers need the object too ("Okta: OpenIdURL …").
fn named(key: &str, msg: &str) -> String {
    if msg.starts_with(key) {
        msg.to_string()
    } else {
        format!("{key}: {msg}")
    }
}

fn object(f: &Fields, key: &str, what: &str, problems: &mut Vec<String>) -> Option<Fields> {
    match f.declared(key)? {
        Value::Object(o) => match Fields::from_object(o.clone()) {
            Ok(f) => Some(f),
            Err(e) => {
                problems.push(named(key, &e.to_string()));
                None
            }
        },
        v => {
            problems.push(format!(
                "{key} must be an object {what}, not {}",
                json_type(v)
            ));
            None
        }
    }
}

fn unknown_keys(key: &str, f: &Fields, known: &[&str], problems: &mut Vec<String>) {
    let mut extra: Vec<&str> = f
        .keys()
        .filter(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
        .collect();
    extra.sort_unstable();
    for k in extra {
        problems.push(format!(
            "{key}.{k}: unknown key ({key} holds {})",
            known.join(", ")
        ));
    }
}

fn account(f: &Fields, problems: &mut Vec<String>) -> Option<AccountPolicy> {
    let a = object(f, "Account", "{Identifier, DisplayName}", problems)?;
    unknown_keys("Account", &a, &["Identifier", "DisplayName"], problems);
    let identifier = match a.req_str("Identifier", 63).and_then(|s| {
        crate::bootstrap::validate_identifier(&s)
            .map_err(|e| Error::invalid(format!("Identifier: {e}")))
    }) {
        Ok(i) => Some(i),
        Err(e) => {
            problems.push(named("Account", &e.to_string()));
            None
        }
    };
    let display_name = match a.opt_str("DisplayName") {
        Ok(Some(n)) => match check_text("DisplayName", &n, MAX_DISPLAY_NAME) {
            Ok(()) => Some(n.trim().to_string()),
            Err(e) => {
                problems.push(named("Account", &e.to_string()));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            problems.push(named("Account", &e.to_string()));
            None
        }
    };
    Some(AccountPolicy {
        identifier: identifier?,
        display_name,
    })
}

fn network(f: &Fields, problems: &mut Vec<String>) -> NetworkPolicy {
    if matches!(f.declared("Network"), Some(Value::Null)) {
        return NetworkPolicy {
            proxy_url: Declared::Null,
            ca_file: Declared::Null,
        };
    }
    let Some(n) = object(f, "Network", "{ProxyURL, CaFile}", problems) else {
        return NetworkPolicy::default();
    };
    unknown_keys("Network", &n, &["ProxyURL", "CaFile"], problems);
    let proxy_url = network_value(&n, "ProxyURL", problems, |u| ProxyUrl::parse(&u));
    let ca_file = network_value(&n, "CaFile", problems, |p| {
        check_ca_file(Path::new(&p)).map(|()| PathBuf::from(p))
    });
    NetworkPolicy { proxy_url, ca_file }
}

/// `Network.NAME`: absent, `null`, or a non-empty string that `check` accepts (its message
/// follows the key).
fn network_value<T>(
    n: &Fields,
    name: &str,
    problems: &mut Vec<String>,
    check: impl FnOnce(String) -> Result<T, String>,
) -> Declared<T> {
    let problem = match n.declared(name) {
        None => return Declared::Absent,
        Some(Value::Null) => return Declared::Null,
        Some(Value::String(s)) if !s.trim().is_empty() => match check(s.trim().to_string()) {
            Ok(v) => return Declared::Value(v),
            Err(m) => m,
        },
        Some(Value::String(_)) => {
            "a non-empty string or null is required, not a blank string".into()
        }
        Some(v) => format!(
            "a non-empty string or null is required, not {}",
            json_type(v)
        ),
    };
    problems.push(format!("Network.{name}: {problem}"));
    Declared::Absent
}

/// `Network.CaFile`: an absolute path to a CA bundle the network settings can read.
fn check_ca_file(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("must be an absolute path, not {}", path.display()));
    }
    crate::sso::net::read_ca_bundle(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: serde_json::Value) -> Result<Policy, Vec<String>> {
        parse(
            Path::new("/etc/amove/policy.json"),
            v.to_string().as_bytes(),
            0,
            false,
        )
    }

    fn okta(active: bool) -> serde_json::Value {
        serde_json::json!({"ClientId": "c", "ClientSecret": "s", "Active": active,
            "OpenIdURL": "https://corp.okta.example/.well-known/openid-configuration"})
    }

    #[test]
    fn tells_absent_from_null_and_matches_keys_like_the_api() {
        let p = parsed(serde_json::json!({
            "account": {"identifier": "Corp"}, "OKTA": okta(true), "Saml": null,
            "_comment": "pushed by Intune"
        }))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            p.account.as_ref().map(|a| a.identifier.as_str()),
            Some("corp")
        );
        assert!(matches!(&p.idps[0], (Kind::Okta, Declared::Value(c)) if c.config.active));
        assert!(matches!(p.idps[1], (Kind::Entra, Declared::Absent)));
        assert!(matches!(p.idps[2], (Kind::Saml, Declared::Null)));
        let labels: Vec<&str> = p.managed_keys().iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["Account", "Okta", "Saml"]);
        assert!(
            format!("{p:?}").contains("Secret(********)"),
            "no secret in Debug"
        );
    }

    #[test]
    fn refuses_two_active_providers_and_settings_without_an_account() {
        let e = parsed(serde_json::json!({"Account": {"Identifier": "corp"},
            "Okta": okta(true), "EntraId": {"ClientId": "e", "ClientSecret": "s", "Active": true,
            "OpenIdURL": "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"}}))
        .err()
        .unwrap_or_default();
        assert_eq!(e, ["Okta, EntraId: at most one provider may be Active"]);
        let e = parsed(serde_json::json!({"CallbackUrls": []}))
            .err()
            .unwrap_or_default();
        assert!(e[0].starts_with("Account is required when the policy manages CallbackUrls"));
        // Network alone belongs to the machine, not to an account.
        let p = parsed(serde_json::json!({"Network": null})).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.network.proxy_url, Declared::Null);
        assert_eq!(p.network.ca_file, Declared::Null);
    }

    #[test]
    fn names_the_key_of_every_problem() {
        let e = parsed(serde_json::json!({
            "Account": {"Identifier": "-bad", "Name": "x"},
            "Okta": "yes",
            "AccessTokenLifetimeSeconds": "soon",
            "Network": {"ProxyURL": "", "CaFile": 5, "Pac": "x"}
        }))
        .err()
        .unwrap_or_default();
        for needle in [
            "Account.Name: unknown key",
            "Account: Identifier: account identifier '-bad'",
            "Okta must be an object (the API's fields) or null (none allowed), not a string",
            "AccessTokenLifetimeSeconds must be an integer",
            "Network.ProxyURL: a non-empty string or null is required, not a blank string",
            "Network.CaFile: a non-empty string or null is required, not a number",
            "Network.Pac: unknown key",
        ] {
            assert!(
                e.iter().any(|m| m.starts_with(needle)),
                "no {needle:?} in {e:?}"
            );
        }
    }

    #[test]
    fn sign_in_settings_are_checked_like_the_apis_and_managed_one_by_one() {
        let p = parsed(serde_json::json!({
            "Account": {"Identifier": "corp"}, "autoprovision": true,
            "AutoProvisionDomains": ["Corp.Example"], "AdminGroups": null
        }))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.signin.auto_provision, Declared::Value(true));
        assert_eq!(
            p.signin.auto_provision_domains,
            Declared::Value(vec!["corp.example".to_string()])
        );
        assert_eq!(p.signin.admin_groups, Declared::Null);
        assert_eq!(p.signin.session_lifetime_days, Declared::Absent);
        let labels: Vec<&str> = p.managed_keys().iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            [
                "Account",
                "AutoProvision",
                "AutoProvisionDomains",
                "AdminGroups"
            ]
        );
        let e = parsed(serde_json::json!({
            "Account": {"Identifier": "corp"}, "AutoProvision": "yes",
            "AutoProvisionDomains": ["*.corp.example"], "AdminGroups": ["a", "A"],
            "SessionLifetimeDays": 366
        }))
        .err()
        .unwrap_or_default();
        for needle in [
            "AutoProvision must be true or false",
            "AutoProvisionDomains: '*.corp.example' is a wildcard",
            "AdminGroups names 'A' twice",
            "SessionLifetimeDays must be from 1 to 365",
        ] {
            assert!(
                e.iter().any(|m| m.starts_with(needle)),
                "no {needle:?} in {e:?}"
            );
        }
        let e = parsed(serde_json::json!({"SessionLifetimeDays": 7}))
            .err()
            .unwrap_or_default();
        assert!(
            e[0].starts_with("Account is required when the policy manages SessionLifetimeDays")
        );
    }

    #[test]
    fn accepts_the_byte_order_mark_windows_powershell_writes() {
        let with_bom = b"\xEF\xBB\xBF{\"Account\": {\"Identifier\": \"corp\"}}";
        let p = parse(Path::new("policy.json"), with_bom, 0, false);
        assert!(p.is_ok_and(|p| p.account.is_some_and(|a| a.identifier == "corp")));
    }

    #[test]
    fn checks_the_ca_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate")?;
        assert!(check_ca_file(&p).is_err_and(|e| e.contains("holds no PEM certificate")));
        assert!(check_ca_file(Path::new("ca.pem")).is_err_and(|e| e.contains("absolute path")));
        let missing = check_ca_file(&dir.path().join("missing.pem"));
        assert!(
            missing
                .as_ref()
                .is_err_and(|e| e.contains("missing.pem: No such file")),
            "{missing:?}"
        );
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".into()])
            .map_err(std::io::Error::other)?;
        std::fs::write(&p, cert.cert.pem())?;
        assert_eq!(check_ca_file(&p), Ok(()));
        Ok(())
    }
}
