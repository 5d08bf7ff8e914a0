//! The token exchange API (SSOCircle style): a password or a session JWT in, a long-lived
//! access token out (listing and revoking them: `api::tokens`).
//!
//! `POST /sso/ttapi/2.0/authz/0/authn` keeps its own OAuth-style error format
//! (`400 {"error", "error_description"}`), as its seed says.

use crate::api::routing::Routes;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::api::extract::{Fields, read_body};
use crate::auth::{self, password};
use crate::error::{Error, Problem, Result};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::audit::{self, NewEvent};
use crate::store::users::{Status, User};
use crate::store::{accounts, tokens, users};

/// The password grant.
pub const GRANT_PASSWORD: &str = "password";
/// The session-token grant.
pub const GRANT_SESSION_TOKEN: &str = "urn:ssocircle:api:sessiontoken";
/// Largest token exchange body.
const BODY_LIMIT: usize = 16 * 1024;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/sso/ttapi/2.0/authz/0/authn", post_authn)
        .post("/sso/session", post_session)
}

/// An OAuth-style error of the token exchange.
#[derive(Debug)]
pub struct OAuthError {
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
            retry_after: None,
        }
    }
    /// The OAuth error code (`invalid_request`, …).
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.error
    }
    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
}

/// The token exchange's OAuth-style error body (RFC 6749 §5.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody<'a> {
    /// `invalid_request`, `unsupported_grant_type` or `invalid_grant`.
    pub error: &'a str,
    /// What was wrong.
    pub error_description: &'a str,
}

/// The token exchange's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessTokenAnswer<'a> {
    /// The long-lived access token (also set as the `SSOCTT` cookie).
    pub access_token: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error,
            error_description: &self.description,
        };
        let mut r = (StatusCode::BAD_REQUEST, Json(body)).into_response();
        let h = r.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            h.insert(RETRY_AFTER, v);
        }
        r
    }
}

/// The parameters of a token request, from a form body (even when labelled JSON, as the
/// seed's sample sends it) or a JSON object. Names are matched case-insensitively.
#[derive(Debug, Default)]
pub(crate) struct AuthnParams {
    pub(crate) grant_type: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) scope: Option<String>,
}

pub(crate) fn parse_params(body: &[u8]) -> Result<AuthnParams, OAuthError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the request body is not UTF-8 text"))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if text.trim_start().starts_with('{') {
        let obj: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            OAuthError::invalid_request(format!("the request body is not a valid JSON object: {e}"))
        })?;
        for (k, v) in obj {
            match v {
                Value::String(s) => pairs.push((k, s)),
                Value::Null => {}
                _ => {
                    return Err(OAuthError::invalid_request(format!("{k} must be a string")));
                }
            }
        }
    } else {
        // Sample clients wrap long tokens across lines; a line break is never part of one.
        for (k, v) in form_urlencoded::parse(text.trim().as_bytes()) {
            pairs.push((k.into_owned(), v.into_owned()));
        }
    }
    let mut p = AuthnParams::default();
    for (k, v) in pairs {
        let slot = match k.to_lowercase().as_str() {
            "grant_type" => &mut p.grant_type,
            "username" => &mut p.username,
            "scope" => &mut p.scope,
            "password" => {
                if p.password.is_some() {
                    return Err(OAuthError::invalid_request(
                        "password is given more than once",
                    ));
                }
                let cleaned: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
                p.password = Some(Secret::new(cleaned));
                continue;
            }
            // Unknown parameters are ignored (RFC 6749 §3.2).
            _ => continue,
        };
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!(
                "{k} is given more than once"
            )));
        }
        *slot = Some(v.trim().to_string());
    }
    Ok(p)
}

fn check_scope(scope: &str) -> Result<(), OAuthError> {
    if scope.len() > 256 {
        return Err(OAuthError::invalid_request(
            "scope is too long (at most 256 characters)",
        ));
    }
    // RFC 6749 §3.3: scope tokens are %x21 / %x23-5B / %x5D-7E, separated by spaces.
    if !scope
        .chars()
        .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\'))
    {
        return Err(OAuthError::invalid_request(
            "scope contains characters that are not allowed",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/sso/ttapi/2.0/authz/0/authn", tag = "token exchange",
    request_body(description = "The parameters, form-encoded (even when labelled application/json, as the seed's sample sends them) or as a JSON object; names are matched case-insensitively.",
        content((TokenRequest = "application/x-www-form-urlencoded"), (TokenRequest = "application/json"))),
    responses(
        (status = 200, description = "A long-lived access token, also set as the `SSOCTT` cookie.", body = AccessTokenAnswer,
            headers(("set-cookie" = String, description = "`SSOCTT=<access token>; HttpOnly; SameSite=Strict; Path=/`"))),
        (status = 400, description = "OAuth-style error (RFC 6749 §5.2): `invalid_request`, `unsupported_grant_type` or `invalid_grant`.", body = OAuthErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait, when repeated failures are being slowed down.")))
    ))]
async fn post_authn(State(state): State<AppState>, req: Request) -> Response {
    let body = match read_body(req, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return OAuthError::invalid_request(e.to_string()).into_response(),
    };
    match authn(&state, &body).await {
        Ok(resp) => resp,
        Err(AuthnFailure::OAuth(e)) => e.into_response(),
        Err(AuthnFailure::Internal(e)) => e.into_response(),
    }
}

/// `POST /sso/session` `{Username, Password}` → a session JWT (a JSON string, like
/// `/sso/authenticate`): a local password sign-in for the web UI, which must not hold a
/// long-lived access token. The same checks and throttle as the password grant; refusals are
/// 401 `AUTH`. The session ends at its lifetime or at `POST /sso/logout`.
#[utoipa::path(post, path = "/sso/session", tag = "session", request_body = PasswordSignIn,
    responses((status = 200, description = "A session JWT, as a JSON string.", body = String, content_type = "application/json"),
        (status = 401, description = "Failed authentication (`AUTH`): wrong username or password, or an inactive user.", body = Problem, headers(("error-code" = String, description = "`AUTH`")))))]
async fn post_session(State(state): State<AppState>, f: Fields) -> Result<Json<String>> {
    let username = f.req_str("Username", 320)?;
    let password = f
        .opt_str("Password")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::invalid("Password is required"))?;
    let params = AuthnParams {
        grant_type: None,
        username: Some(username),
        password: Some(Secret::new(password)),
        scope: None,
    };
    let user = match password_grant(&state, params).await {
        Ok(u) => u,
        Err(AuthnFailure::OAuth(e)) => return Err(Error::Auth(e.description)),
        Err(AuthnFailure::Internal(e)) => return Err(e),
    };
    let (aid, now) = (user.account_id, state.now());
    let account = state
        .db
        .read(move |c| accounts::by_id(c, aid))
        .await?
        .ok_or_else(|| Error::internal("account vanished"))?;
    let (token, _) = state
        .auth
        .mint_session(&user, &account.identifier, "password")?;
    let ev = NewEvent::ok(
        Some(aid),
        &user.email,
        crate::login::AUDIT_SIGNIN,
        "with a local password (a session)",
    );
    state
        .db
        .write(move |tx| audit::record(tx, &ev, now))
        .await?;
    Ok(Json(token))
}

enum AuthnFailure {
    OAuth(OAuthError),
    Internal(Error),
}

impl From<OAuthError> for AuthnFailure {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<Error> for AuthnFailure {
    fn from(e: Error) -> Self {
        Self::Internal(e)
    }
}

async fn authn(state: &AppState, body: &[u8]) -> Result<Response, AuthnFailure> {
    let p = parse_params(body)?;
    let grant = p
        .grant_type
        .clone()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let scope = p.scope.clone().unwrap_or_default();
    check_scope(&scope)?;
    let (user, session) = match grant.as_str() {
        GRANT_PASSWORD => (password_grant(state, p).await?, None),
        GRANT_SESSION_TOKEN => {
            let (user, session) = session_token_grant(state, p).await?;
            (user, Some(session))
        }
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type '{shown}' is not supported; use 'password' or '{GRANT_SESSION_TOKEN}'"),
            )
            .into());
        }
    };
    let (token, id, expires_at) = issue(state, &user, &grant, &scope, session).await?;
    tracing::info!(user = %user.email, token_id = id, grant = %grant, "access token issued");
    let mut r = (
        StatusCode::OK,
        Json(AccessTokenAnswer {
            access_token: &token,
        }),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    // The cookie lives exactly as long as the token (a session cookie when it never expires).
    let max_age = expires_at
        .map(|e| format!("; Max-Age={}", (e - state.now()).max(0)))
        .unwrap_or_default();
    let cookie = format!("SSOCTT={token}; Path=/; HttpOnly; SameSite=Strict{max_age}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(SET_COOKIE, v);
    }
    Ok(r)
}

/// Resolves `userid@account` or a full email to a user.
fn resolve_username(c: &rusqlite::Connection, username: &str) -> Result<Option<User>, Error> {
    if let Some((local, ident)) = username.rsplit_once('@')
        && let Some(account) = accounts::by_identifier(c, ident)?
    {
        let mut found = users::by_local_part(c, account.id, local)?;
        match found.len() {
            1 => return Ok(found.pop()),
            0 => {}
            _ => return Err(Error::invalid("ambiguous")),
        }
    }
    users::by_email(c, username)
}

async fn password_grant(state: &AppState, p: AuthnParams) -> Result<User, AuthnFailure> {
    let username = p.username.filter(|u| !u.is_empty()).ok_or_else(|| {
        OAuthError::invalid_request("username is required for the password grant")
    })?;
    if username.len() > 320 {
        return Err(OAuthError::invalid_request("username is too long").into());
    }
    let pw = p
        .password
        .filter(|s| !s.expose().is_empty())
        .ok_or_else(|| OAuthError::invalid_request("password is required"))?;
    let now = state.now();
    let name = username.clone();
    let resolved = state.db.read(move |c| resolve_username(c, &name)).await;
    let user = match resolved {
        Ok(u) => u,
        Err(Error::Invalid(_)) => {
            return Err(OAuthError::invalid_grant(
                "the username matches several users of the account; use the full email address",
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    // The budget is the user's, however the username is spelled (`max@corp`,
    // `max@corp.com`); a username that names nobody has none to spend.
    let user_key = user.as_ref().map(|u| format!("user:{}", u.id));
    if let Some(key) = &user_key
        && let Err(secs) = state.auth.throttle.check(key, now)
    {
        let mut e = OAuthError::invalid_grant(format!(
            "too many failed sign-in attempts; try again in {secs} seconds"
        ));
        e.retry_after = Some(secs);
        return Err(e.into());
    }
    // Hash verification is CPU-bound (tens of ms): keep it off the async workers, two at a time.
    let permit = state
        .auth
        .hash_gate
        .clone()
        .acquire_owned()
        .await
        .map_err(Error::internal)?;
    let memory = state.auth.hash_memory.clone();
    let (user, ok) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let ok = match user.as_ref().and_then(|u| u.password_hash.as_deref()) {
            Some(phc) => password::verify(&pw, phc, &memory),
            None => {
                password::verify_dummy(&pw, &memory);
                false
            }
        };
        (user, ok)
    })
    .await
    .map_err(|e| Error::internal(format!("password task: {e}")))?;
    let refusal = match (&user, ok) {
        (None, _) => Some("unknown user"),
        (Some(u), _) if u.password_hash.is_none() => Some("user has no local password (SSO only)"),
        (Some(_), false) => Some("wrong password"),
        (Some(u), true) if u.status != Status::Active => Some("user is inactive"),
        _ => None,
    };
    if let Some(reason) = refusal {
        // An inactive user's right password counts like a wrong one, and is answered the
        // same: the grant is no oracle for the passwords of disabled accounts.
        if let Some(key) = &user_key {
            state.auth.throttle.fail(key, now);
        }
        let account_id = user.as_ref().map(|u| u.account_id);
        let detail = format!(
            "password grant for '{}' refused: {reason}",
            crate::api::extract::truncate(&username, 100)
        );
        let ev = NewEvent::refused(account_id, &username, "token.issue", detail);
        state
            .db
            .write(move |tx| audit::record(tx, &ev, now))
            .await?;
        return Err(OAuthError::invalid_grant("invalid username or password").into());
    }
    if let Some(key) = &user_key {
        state.auth.throttle.succeed(key);
    }
    user.ok_or_else(|| Error::internal("user vanished").into())
}

/// The session a session-token grant was made from: its id and expiry.
struct FromSession {
    jti: String,
    exp: i64,
}

async fn session_token_grant(
    state: &AppState,
    p: AuthnParams,
) -> Result<(User, FromSession), AuthnFailure> {
    let token = p
        .password
        .filter(|s| !s.expose().trim().is_empty())
        .ok_or_else(|| OAuthError::invalid_request("password (the session token) is required"))?;
    let principal = match state.auth.authenticate(token.expose().trim()).await {
        Ok(pr) if matches!(pr.credential, auth::Credential::Session { .. }) => pr,
        Ok(_) => {
            return Err(OAuthError::invalid_grant(
                "password must be a session token from /sso/authenticate, not an access token",
            )
            .into());
        }
        Err(Error::Internal(m)) => return Err(Error::Internal(m).into()),
        Err(e) => return Err(OAuthError::invalid_grant(e.to_string()).into()),
    };
    if let Some(u) = p.username.filter(|u| !u.is_empty())
        && !u.eq_ignore_ascii_case(&principal.user.email)
        && !u.eq_ignore_ascii_case(&format!(
            "{}@{}",
            principal.user.email.split('@').next().unwrap_or(""),
            principal.account_identifier
        ))
    {
        return Err(OAuthError::invalid_grant("username does not match the session token").into());
    }
    let auth::Credential::Session { jti, exp } = principal.credential else {
        return Err(Error::internal("a session principal without a session").into());
    };
    Ok((principal.user, FromSession { jti, exp }))
}

/// Issues an access token: `(token, id, expires_at)`. Its lifetime is the account's policy;
/// with no policy, a token minted from a session lives as long as that session (and is
/// revoked with it at sign-out), one from a password until revoked.
async fn issue(
    state: &AppState,
    user: &User,
    grant: &str,
    scope: &str,
    session: Option<FromSession>,
) -> Result<(String, i64, Option<i64>)> {
    let (token, hash) = auth::new_access_token()?;
    let now = state.now();
    let (account_id, user_id, email) = (user.account_id, user.id, user.email.clone());
    let (grant, scope) = (grant.to_string(), scope.to_string());
    let (id, expires_at) = state
        .db
        .write(move |tx| {
            let ttl = accounts::by_id(tx, account_id)?.and_then(|a| a.access_token_ttl_secs);
            let expires_at = match (ttl, &session) {
                (Some(t), _) => Some(now.saturating_add(t)),
                (None, Some(s)) => Some(s.exp),
                (None, None) => None,
            };
            let id = tokens::insert(
                tx,
                &tokens::NewAccessToken {
                    account_id,
                    user_id,
                    token_hash: &hash,
                    grant_type: &grant,
                    scope: &scope,
                    expires_at,
                    session_jti: session.as_ref().map(|s| s.jti.as_str()),
                },
                now,
            )?;
            let detail = format!("access token {id} issued (grant {grant}, scope '{scope}')");
            audit::record(
                tx,
                &NewEvent::ok(Some(account_id), &email, "token.issue", detail),
                now,
            )?;
            Ok((id, expires_at))
        })
        .await?;
    Ok((token, id, expires_at))
}

/// The token request's parameters (OpenAPI schema; [`parse_params`] reads them).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// `password` or `urn:ssocircle:api:sessiontoken`.
    #[schema(example = "password")]
    pub grant_type: String,
    /// `userid@account` or the full email (password grant).
    pub username: Option<String>,
    /// The local password, or the session JWT (session-token grant).
    pub password: String,
    /// The scope asked for (e.g. `SAML`).
    pub scope: Option<String>,
}

/// The body of `POST /sso/session` (OpenAPI schema).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PasswordSignIn {
    /// The user's username (email).
    #[schema(max_length = 320)]
    pub username: String,
    /// The user's local password.
    pub password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seeds_form_body_labelled_json() -> Result<(), String> {
        let body = b"grant_type=urn:ssocircle:api:sessiontoken&scope=SAML&password=\nAQIC5wM2LY4Sfcy3.*AAJTSQ\nACMDIA.*";
        let p = parse_params(body).map_err(|e| e.description)?;
        assert_eq!(p.grant_type.as_deref(), Some(GRANT_SESSION_TOKEN));
        assert_eq!(p.scope.as_deref(), Some("SAML"));
        assert_eq!(
            p.password.map(|s| s.expose().to_string()).as_deref(),
            Some("AQIC5wM2LY4Sfcy3.*AAJTSQACMDIA.*")
        );
        Ok(())
    }

    #[test]
    fn parses_json_objects_and_refuses_repeats() {
        let p = parse_params(br#"{"Grant_Type":"password","username":"a@b","password":"x"}"#);
        assert!(p.is_ok_and(|p| p.grant_type.as_deref() == Some("password")));
        assert!(parse_params(b"grant_type=password&grant_type=password").is_err());
        assert!(parse_params(br#"{"grant_type": 5}"#).is_err());
    }
}
