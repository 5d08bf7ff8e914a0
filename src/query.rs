//! Query parameters of a URL — a request's, or the deep link the desktop shell forwards —
//! matched case-insensitively (`callbackUrl` = `CallbackUrl`), as ASP.NET-style clients
//! expect. (Extracting them from a request is in `api::extract`.)

use std::collections::HashMap;

/// Query parameters, matched case-insensitively (`callbackUrl` = `CallbackUrl`).
#[derive(Debug, Clone, Default)]
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    /// Parses a raw query string. A repeated parameter keeps its first value.
    pub fn parse(query: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            map.entry(k.to_lowercase())
                .or_insert_with(|| v.into_owned());
        }
        Self(map)
    }
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_lowercase()).map(String::as_str)
    }
}
