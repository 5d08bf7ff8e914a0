//! Request-side inputs: JSON fields with case-insensitive keys, the token exchange's body in
//! both encodings, `amove://` deep links, Identifier/state handles, directory pages and their
//! `Link` headers, certificates, query strings.

use axum::http::{HeaderMap, HeaderValue, header::LINK};
use proptest::prelude::*;
use serde_json::json;

use super::{config, json};
use crate::api::extract::Fields;
use crate::api::ttapi::parse_params;
use crate::error::Error;
use crate::login::desktop::parse_deep_link;
use crate::query::QueryParams;
use crate::sso::{cert, directory};
use crate::store::transactions::{Key, handle};

/// `name` with each ASCII letter's case chosen by `mask`.
fn recased(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_bodies_never_panic_and_errors_are_default(bytes in prop::collection::vec(any::<u8>(), 0..512), v in json()) {
        for body in [bytes, v.to_string().into_bytes()] {
            if let Err(e) = Fields::parse(&body) {
                prop_assert!(matches!(e, Error::Invalid(_)), "{e:?}");
            }
        }
    }

    #[test]
    fn json_keys_match_whatever_their_case(
        name in prop::sample::select(vec!["CallbackUrl", "Username", "ClientId", "OpenIdURL", "SPEntityId"]),
        mask in any::<u64>(),
        value in ".{0,40}",
    ) {
        let sent = recased(name, mask);
        let f = Fields::parse(json!({ sent: value }).to_string().as_bytes()).expect("an object");
        prop_assert_eq!(f.opt_str(name).expect("a string"), Some(value));
    }

    #[test]
    fn the_token_body_never_panics_and_errors_are_invalid_request(bytes in prop::collection::vec(any::<u8>(), 0..512), v in json()) {
        for body in [bytes, v.to_string().into_bytes()] {
            if let Err(e) = parse_params(&body) {
                prop_assert_eq!(e.code(), "invalid_request");
            }
        }
    }

    #[test]
    fn the_token_body_means_the_same_in_both_encodings(
        grant in "[a-z:_]{1,40}", user in "[^\r\n]{0,40}", password in "[^\r\n]{0,40}",
        scope in "[A-Z]{0,8}", mask in any::<u64>(),
    ) {
        let names = ["grant_type", "username", "password", "scope"].map(|n| recased(n, mask));
        let values = [&grant, &user, &password, &scope];
        let pairs: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(values.iter().map(|v| v.as_str())).collect();
        let as_json: serde_json::Map<String, serde_json::Value> =
            pairs.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        let a = parse_params(form(&pairs).as_bytes()).expect("form");
        let b = parse_params(serde_json::Value::Object(as_json).to_string().as_bytes()).expect("json");
        prop_assert_eq!(&a.grant_type, &b.grant_type);
        prop_assert_eq!(&a.username, &b.username);
        prop_assert_eq!(&a.scope, &b.scope);
        prop_assert_eq!(a.password.as_ref().map(|p| p.expose().to_string()), Some(password.clone()));
        prop_assert_eq!(b.password.as_ref().map(|p| p.expose().to_string()), Some(password));
    }

    #[test]
    fn deep_links_never_panic_and_only_amove_urls_with_a_state_pass(
        raw in ".{0,200}",
        query in prop::collection::vec((prop::sample::select(vec!["code", "state", "error", "error_description", "x"]), ".{0,20}"), 0..5),
    ) {
        let link = format!("amove://sso/callback?{}", form(&query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()));
        for l in [raw.as_str(), link.as_str()] {
            match parse_deep_link(l) {
                Ok((state, _)) => {
                    prop_assert!(l.trim().to_ascii_lowercase().starts_with("amove:"));
                    prop_assert!(!state.is_empty());
                }
                Err(e) => prop_assert!(matches!(e, Error::Invalid(_)), "{e:?}"),
            }
        }
    }

    #[test]
    fn handles_decode_only_our_own(raw in ".{0,80}", id in 1i64..i64::MAX) {
        if let Some(n) = handle::id(&raw) {
            prop_assert!(n > 0 && raw.len() == handle::LEN);
        }
        let _ = Key::from_identifier(&raw);
        let ours = handle::new(id).expect("random bytes");
        prop_assert_eq!(handle::id(&ours), Some(id));
        prop_assert_eq!(Key::from_identifier(&format!(" {ours} ")).map(|k| k.id), Some(id));
    }

    #[test]
    fn directory_pages_never_panic(body in json(), link in ".{0,120}", okta in any::<bool>()) {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.insert(LINK, v);
        }
        if let Err(e) = directory::page("Okta", &body, &h, okta) {
            prop_assert!(!e.0.is_empty());
        }
        let graph = json!({"value": [body.clone()], "@odata.nextLink": link});
        let (items, _) = directory::page("Graph", &graph, &HeaderMap::new(), false).expect("a Graph page");
        prop_assert_eq!(items.len(), 1);
    }

    #[test]
    fn the_next_link_is_found_among_others(path in "[a-z]{1,10}", after in "[a-z0-9]{1,10}", others in 0usize..3) {
        let next = format!("https://corp.okta.com/api/v1/{path}?after={after}");
        let mut parts: Vec<String> = (0..others).map(|i| format!("<https://corp.okta.com/p{i}>; rel=\"self\"")).collect();
        parts.push(format!("<{next}>; rel=\"next\""));
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(&parts.join(", ")).expect("header"));
        prop_assert_eq!(directory::next_link(&h).map(|u| u.to_string()), Some(next));
    }

    #[test]
    fn certificates_of_arbitrary_text_are_refused(text in ".{0,400}", der in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(cert::parse("Certificate", &text).is_err());
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        prop_assert!(cert::parse("Certificate", &b64).is_err());
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        prop_assert!(cert::parse("Certificate", &pem).is_err());
    }

    #[test]
    fn query_strings_never_panic(raw in ".{0,200}") {
        let q = QueryParams::parse(Some(&raw));
        let _ = q.get("token");
    }
}
