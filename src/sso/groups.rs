//! What a sign-in says about the user's groups: Okta's `groups` claim (group names), Entra
//! ID's (group object ids, or an overage marker when there are too many to carry), a SAML
//! attribute (the configured one, else the usual names). Plain values in, plain values out.

use serde_json::{Map, Value};

use crate::domain::Kind;
use crate::error::{Error, Result};

/// SAML attributes that carry a user's groups, in order of preference, when the
/// configuration names none.
pub const SAML_GROUP_ATTRIBUTES: &[&str] = &[
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
];

/// Groups one sign-in may carry at most (Entra switches to the overage marker at 200 in a
/// JWT and 150 in SAML; Okta's claim filter tops out far below this).
pub const MAX_GROUPS: usize = 10_000;
/// Characters one group name or id may have at most.
pub const MAX_GROUP_LEN: usize = 1024;

/// The groups a sign-in asserts.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SignInGroups {
    /// Nothing was said about groups (no claim, no attribute): memberships stay as they are.
    #[default]
    NotSent,
    /// Group names (Okta's `groups` claim).
    Names(Vec<String>),
    /// Group ids: Entra ID's object ids; SAML attribute values (which are the ids its import
    /// gives groups as well).
    Ids(Vec<String>),
    /// Entra ID's groups overage: the token says the user has groups but carries none
    /// (`_claim_names.groups` or `hasgroups`); they are to be read from Microsoft Graph.
    Overage,
}

/// The groups claim of validated ID token `claims`. A claim that is neither a string nor
/// an array of strings, or is too large, refuses the sign-in: a token the agent cannot
/// read fully is not half-used.
pub fn from_oidc_claims(kind: Kind, claims: &Map<String, Value>) -> Result<SignInGroups> {
    let values = match claims.get("groups") {
        None | Some(Value::Null) => None,
        Some(v) => Some(string_list(v).ok_or_else(|| {
            Error::Sso(format!(
                "the ID token's groups claim is not a list of at most {MAX_GROUPS} strings of \
                 at most {MAX_GROUP_LEN} characters"
            ))
        })?),
    };
    if kind == Kind::Entra {
        let overage = claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|n| n.contains_key("groups"))
            || claims.get("hasgroups") == Some(&Value::Bool(true));
        // The overage marker wins: a token carrying both is not trusted to be complete.
        if overage {
            return Ok(SignInGroups::Overage);
        }
        return Ok(values.map_or(SignInGroups::NotSent, SignInGroups::Ids));
    }
    Ok(values.map_or(SignInGroups::NotSent, SignInGroups::Names))
}

/// The groups of a SAML assertion's `attributes`: those of the configured attribute
/// (`configured`), else of the first present of [`SAML_GROUP_ATTRIBUTES`]. Attribute names
/// compare case-insensitively; blank and oversized values are dropped.
pub fn from_saml_attributes(
    attributes: &[(String, Vec<String>)],
    configured: Option<&str>,
) -> SignInGroups {
    let find = |name: &str| {
        attributes
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name.trim()))
            .map(|(_, v)| v)
    };
    let values = match configured {
        Some(name) => find(name),
        None => SAML_GROUP_ATTRIBUTES.iter().find_map(|n| find(n)),
    };
    match values {
        None => SignInGroups::NotSent,
        Some(v) => SignInGroups::Ids(clean(v.iter().map(String::as_str))),
    }
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    let items: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) if a.len() <= MAX_GROUPS => {
            a.iter().map(Value::as_str).collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    if items.iter().any(|s| s.chars().count() > MAX_GROUP_LEN) {
        return None;
    }
    Some(clean(items.into_iter()))
}

/// Trimmed, without blanks, oversized values or duplicates, in first-seen order, at most
/// [`MAX_GROUPS`].
fn clean<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_GROUP_LEN)
        .filter(|s| seen.insert(s.to_string()))
        .take(MAX_GROUPS)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn okta_groups_are_names_and_absent_means_not_sent() -> Result<()> {
        let c = claims(json!({"groups": ["Everyone", " eng ", "", "eng"]}));
        assert_eq!(
            from_oidc_claims(Kind::Okta, &c)?,
            SignInGroups::Names(vec!["Everyone".into(), "eng".into()])
        );
        assert_eq!(
            from_oidc_claims(Kind::Okta, &claims(json!({})))?,
            SignInGroups::NotSent
        );
        assert_eq!(
            from_oidc_claims(Kind::Okta, &claims(json!({"groups": []})))?,
            SignInGroups::Names(vec![])
        );
        assert_eq!(
            from_oidc_claims(Kind::Okta, &claims(json!({"groups": "solo"})))?,
            SignInGroups::Names(vec!["solo".into()])
        );
        Ok(())
    }

    #[test]
    fn entra_groups_are_ids_and_the_overage_marker_wins() -> Result<()> {
        let ids = claims(json!({"groups": ["a1", "b2"]}));
        assert_eq!(
            from_oidc_claims(Kind::Entra, &ids)?,
            SignInGroups::Ids(vec!["a1".into(), "b2".into()])
        );
        let overage = claims(json!({"_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://evil.example/steal"}}}));
        assert_eq!(
            from_oidc_claims(Kind::Entra, &overage)?,
            SignInGroups::Overage
        );
        let both = claims(json!({"hasgroups": true, "groups": ["a1"]}));
        assert_eq!(from_oidc_claims(Kind::Entra, &both)?, SignInGroups::Overage);
        // Okta has no overage: the marker is not Okta's.
        assert_eq!(
            from_oidc_claims(Kind::Okta, &claims(json!({"hasgroups": true})))?,
            SignInGroups::NotSent
        );
        Ok(())
    }

    #[test]
    fn malformed_or_oversized_claims_refuse_the_sign_in() {
        let too_many: Vec<String> = (0..=MAX_GROUPS).map(|i| format!("g{i}")).collect();
        for bad in [
            json!({"groups": 5}),
            json!({"groups": {"a": 1}}),
            json!({"groups": ["ok", 7]}),
            json!({"groups": too_many}),
            json!({"groups": ["x".repeat(MAX_GROUP_LEN + 1)]}),
        ] {
            let e = from_oidc_claims(Kind::Okta, &claims(bad.clone()))
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|m| m.contains("groups claim")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn saml_takes_the_configured_attribute_else_the_defaults() {
        let attrs = vec![
            ("memberOf".to_string(), vec!["cn=ops".to_string()]),
            (
                "Department Groups".to_string(),
                vec!["eng".to_string(), " ".to_string()],
            ),
        ];
        assert_eq!(
            from_saml_attributes(&attrs, None),
            SignInGroups::Ids(vec!["cn=ops".into()])
        );
        assert_eq!(
            from_saml_attributes(&attrs, Some("department groups")),
            SignInGroups::Ids(vec!["eng".into()])
        );
        // A configured attribute that is absent means nothing was said — not "no groups".
        assert_eq!(
            from_saml_attributes(&attrs, Some("groups")),
            SignInGroups::NotSent
        );
        let ms = vec![(
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups".to_string(),
            vec!["0b1c".to_string()],
        )];
        assert_eq!(
            from_saml_attributes(&ms, None),
            SignInGroups::Ids(vec!["0b1c".into()])
        );
    }
}
