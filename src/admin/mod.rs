//! The admin configuration service: what an account's settings may be (IdP configurations,
//! the callback allow-list, the access token lifetime). The API's handlers and the policy file
//! validate through the same functions, so both accept and refuse exactly the same input.

pub mod idp;
pub mod signin;

use crate::error::{Error, Result};
use crate::login::callback_url::{MAX_URLS, validate_allowed};

/// Longest access token lifetime an account may set: ten years.
pub const MAX_ACCESS_TOKEN_LIFETIME: i64 = 10 * 366 * 86_400;

/// Checks `AccessTokenLifetimeSeconds`: 1 s to [`MAX_ACCESS_TOKEN_LIFETIME`], or `None` for
/// tokens valid until revoked.
pub fn access_token_lifetime(ttl: Option<i64>) -> Result<Option<i64>> {
    match ttl {
        Some(t) if !(1..=MAX_ACCESS_TOKEN_LIFETIME).contains(&t) => Err(Error::invalid(format!(
            "AccessTokenLifetimeSeconds must be from 1 to {MAX_ACCESS_TOKEN_LIFETIME}, or null for \
             tokens valid until revoked"
        ))),
        other => Ok(other),
    }
}

/// Checks and normalises `CallbackUrls`: at most [`MAX_URLS`] https URLs, sorted, without
/// duplicates.
pub fn callback_urls(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > MAX_URLS {
        return Err(Error::invalid(format!(
            "CallbackUrls may hold at most {MAX_URLS} URLs"
        )));
    }
    let mut urls = raw
        .iter()
        .map(|u| validate_allowed(u))
        .collect::<Result<Vec<_>>>()?;
    urls.sort();
    urls.dedup();
    Ok(urls)
}
