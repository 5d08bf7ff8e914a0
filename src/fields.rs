//! JSON objects whose keys are matched case-insensitively, as ASP.NET clients expect, and
//! the checks of their fields: what a request body and the policy file are both read as.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A JSON object body whose keys are matched case-insensitively, as ASP.NET clients expect.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// Lower-cased key → (the key as sent, value).
    map: HashMap<String, (String, Value)>,
}

impl Fields {
    /// Parses a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid(
                "request body is empty; expected a JSON object",
            ));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("request body is not valid JSON: {e}")))?;
        match value {
            Value::Object(obj) => Self::from_object(obj),
            other => Err(Error::invalid(format!(
                "request body must be a JSON object, not {}",
                json_type(&other)
            ))),
        }
    }

    /// From an already parsed object.
    pub fn from_object(obj: Map<String, Value>) -> Result<Self> {
        let mut map: HashMap<String, (String, Value)> = HashMap::with_capacity(obj.len());
        for (k, v) in obj {
            match map.entry(k.to_lowercase()) {
                Entry::Occupied(prev) => {
                    return Err(Error::invalid(format!(
                        "{} and {k} name the same field",
                        prev.get().0
                    )));
                }
                Entry::Vacant(e) => {
                    e.insert((k, v));
                }
            }
        }
        Ok(Self { map })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        // Field names are short ASCII constants: lower-cased on the stack, not the heap.
        let mut buf = [0u8; 32];
        let found = match buf.get_mut(..name.len()) {
            Some(b) if name.is_ascii() => {
                b.copy_from_slice(name.as_bytes());
                b.make_ascii_lowercase();
                std::str::from_utf8(b).ok().and_then(|k| self.map.get(k))
            }
            _ => self.map.get(&name.to_lowercase()),
        };
        found.map(|(_, v)| v).filter(|v| !v.is_null())
    }

    /// The field as given, `null` included (`None`: absent). The policy file tells "absent"
    /// (not managed) from `null` (managed: none).
    pub fn declared(&self, name: &str) -> Option<&Value> {
        self.map.get(&name.to_lowercase()).map(|(_, v)| v)
    }

    /// Sets `name` to `value` unless the body gives it (not null, not blank): values read from IdP
    /// metadata fill what the admin left out, and what the admin sent wins.
    pub fn fill(&mut self, name: &str, value: Value) {
        let blank = matches!(self.get(name), Some(Value::String(s)) if s.trim().is_empty());
        if !self.has(name) || blank {
            self.map
                .insert(name.to_lowercase(), (name.to_string(), value));
        }
    }

    /// The keys as given.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.values().map(|(k, _)| k.as_str())
    }

    /// True when the field is present and not null.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An optional string (null or absent is `None`).
    pub fn opt_str(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Error::invalid(format!(
                "{name} must be a string, not {}",
                json_type(v)
            ))),
        }
    }

    /// A required, non-blank string of at most `max` characters without control characters.
    pub fn req_str(&self, name: &str, max: usize) -> Result<String> {
        let s = self
            .opt_str(name)?
            .ok_or_else(|| Error::invalid(format!("{name} is required")))?;
        check_text(name, &s, max)?;
        Ok(s.trim().to_string())
    }

    /// An optional boolean.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Error::invalid(format!(
                "{name} must be true or false, not {}",
                json_type(v)
            ))),
        }
    }

    /// An optional integer (a JSON number, or a string of digits as some clients send ids).
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("{name} must be an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::invalid(format!("{name} must be an integer"))),
            Some(v) => Err(Error::invalid(format!(
                "{name} must be an integer, not {}",
                json_type(v)
            ))),
        }
    }

    /// An optional array of strings.
    pub fn opt_str_list(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(Error::invalid(format!(
                        "{name} must be a list of strings, found {}",
                        json_type(other)
                    ))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(Error::invalid(format!(
                "{name} must be a list of strings, not {}",
                json_type(v)
            ))),
        }
    }
}

/// Checks a text field: non-blank, at most `max` characters, no control characters.
pub fn check_text(name: &str, s: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::invalid(format!("{name} must not be blank")));
    }
    if s.chars().count() > max {
        return Err(Error::invalid(format!(
            "{name} must be at most {max} characters"
        )));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Error::invalid(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(())
}

/// How a JSON value is named in messages ("a string", "an array" …).
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_case_insensitively() -> Result<()> {
        let f = Fields::parse(br#"{"clientid": "a", "OPENIDURL": "b", "Active": true}"#)?;
        assert_eq!(f.req_str("ClientId", 10)?, "a");
        assert_eq!(f.opt_str("OpenIdURL")?.as_deref(), Some("b"));
        assert_eq!(f.opt_bool("active")?, Some(true));
        // Names longer than the stack buffer, or not ASCII, are lower-cased the same way.
        let long = "AVeryLongFieldNameOfMoreThanThirtyTwoBytes";
        let f = Fields::parse(
            "{\"averylongfieldnameofmorethanthirtytwobytes\": 1, \"\u{c4}rger\": 2}".as_bytes(),
        )?;
        assert!(f.has(long) && f.has(&long.to_uppercase()));
        assert!(f.has("\u{e4}RGER") && f.has("\u{c4}rger") && !f.has("Arger"));
        let dup = Fields::parse(br#"{"Username": "a", "USERNAME": "b"}"#).err();
        assert!(dup.is_some_and(|e| e.to_string().ends_with("name the same field")));
        Ok(())
    }

    #[test]
    fn names_the_field_and_the_problem() {
        let msg = |r: Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
        let f = Fields::parse(br#"{"ClientId": 5, "Active": "yes", "Blank": "  "}"#)
            .unwrap_or_default();
        assert_eq!(
            msg(f.req_str("ClientId", 9).map(|_| ())),
            "ClientId must be a string, not a number"
        );
        assert_eq!(
            msg(f.opt_bool("Active").map(|_| ())),
            "Active must be true or false, not a string"
        );
        assert_eq!(
            msg(f.req_str("Blank", 9).map(|_| ())),
            "Blank must not be blank"
        );
        assert_eq!(
            msg(f.req_str("Missing", 9).map(|_| ())),
            "Missing is required"
        );
    }

    #[test]
    fn refuses_non_objects_and_duplicate_keys() {
        for bad in [&b""[..], b"[]", b"\"x\"", b"{", b"{\"a\":1,\"A\":2}"] {
            assert!(Fields::parse(bad).is_err());
        }
    }
}
