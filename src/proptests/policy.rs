//! The policy file (`policy::parse`): arbitrary bytes, arbitrary JSON and policy-shaped JSON
//! with arbitrary values never panic; a refusal lists problems that each name their key (or
//! the file), and never shows a secret the file holds (a client secret, a proxy password).

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{config, json};
use crate::policy::parse::{KEYS, parse};

/// A secret no generated value contains by chance (the generators make shorter strings).
const CLIENT_SECRET: &str = "policy-client-secret-7f3a9c1e5b2d4086";
const PROXY_PASSWORD: &str = "proxy-password-0c8e2a6f4b1d3957";

/// The keys inside a policy's objects.
const INNER: &[&str] = &[
    "Identifier",
    "DisplayName",
    "ClientId",
    "ClientSecret",
    "OpenIdURL",
    "GraphURL",
    "AllowedTenants",
    "Active",
    "Certificate",
    "SPEntityId",
    "IdPSSOURL",
    "IdPEntityId",
    "IdPMetadataURL",
    "SignAuthnRequests",
    "ProxyURL",
    "CaFile",
];

/// What a problem may begin with: a top-level key (`Okta: …`, `Network.ProxyURL: …`,
/// `Okta, EntraId: …`), a comment-free unknown key, or the file itself.
fn names_its_key(problem: &str) -> bool {
    problem.starts_with("the file ")
        || problem.starts_with("Account is required")
        || KEYS.iter().any(|k| {
            problem
                .get(..k.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(k))
        })
        || problem.contains(": unknown key")
}

/// A value for the inner key `key`: the secrets where they belong (a client secret, proxy
/// URLs with a password, valid or not), plausible values, or anything.
fn inner_value(key: &'static str) -> BoxedStrategy<Value> {
    let s = |v: String| Just(Value::String(v));
    match key {
        "ClientSecret" => prop_oneof![3 => s(CLIENT_SECRET.into()), 1 => json()].boxed(),
        "ProxyURL" => prop_oneof![
            s(format!(
                "http://fleet:{PROXY_PASSWORD}@proxy.corp.example:3128"
            )),
            s(format!("ftp://fleet:{PROXY_PASSWORD}@proxy.corp.example")),
            s(format!(
                "http://fleet:{PROXY_PASSWORD}@proxy.corp.example:3128/path?q"
            )),
            s(format!("http://fleet:{PROXY_PASSWORD}@")),
            s(format!("fleet:{PROXY_PASSWORD}@proxy.corp.example")),
            json(),
        ]
        .boxed(),
        _ => prop_oneof![
            s("https://corp.okta.example/.well-known/openid-configuration".into()),
            s("corp".into()),
            Just(Value::Bool(true)),
            json(),
        ]
        .boxed(),
    }
}

fn object_of(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        prop::sample::select(keys).prop_flat_map(|k| (Just(k), inner_value(k))),
        0..6,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A policy's shape: its top-level keys (in any case), each with an object of inner keys, null
/// or anything.
fn policy_shaped() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        4 => object_of(INNER),
        1 => Just(Value::Null),
        1 => json(),
    ];
    prop::collection::vec(
        (prop::sample::select(&KEYS[..]), any::<bool>(), value),
        0..7,
    )
    .prop_map(|kv| {
        let mut m = Map::new();
        for (k, lower, v) in kv {
            let k = if lower {
                k.to_lowercase()
            } else {
                k.to_string()
            };
            m.insert(k, v);
        }
        Value::Object(m)
    })
}

fn check(bytes: &[u8]) -> Result<(), String> {
    match parse(Path::new("/etc/amove/policy.json"), bytes, 0, false) {
        Ok(_) => Ok(()),
        Err(problems) if problems.is_empty() => Err("refused without a problem".into()),
        Err(problems) => {
            for p in &problems {
                if !names_its_key(p) {
                    return Err(format!("{p:?} names no key"));
                }
                if p.contains(CLIENT_SECRET) || p.contains(PROXY_PASSWORD) {
                    return Err(format!("{p:?} shows a secret"));
                }
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn arbitrary_bytes_are_refused_naming_the_file(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        prop_assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn arbitrary_json_never_panics_and_every_problem_names_its_key(v in json()) {
        prop_assert_eq!(check(v.to_string().as_bytes()), Ok(()));
    }

    #[test]
    fn a_policy_shaped_file_never_shows_its_secrets(v in policy_shaped()) {
        let text = v.to_string();
        prop_assert_eq!(check(text.as_bytes()), Ok(()), "{}", text);
    }
}
