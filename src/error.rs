//! The one error type and its mapping to the Click API's error model (499 / 401 / 500).
//!
//! Handlers return [`Error`]; [`IntoResponse`] turns it into the problem body
//! `{"type": CODE, "status": N, "errors": {CODE: [message]}}` plus an `error-code` header.
//! Internal detail goes to the log only: a 500 has no body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The non-standard status the Click API uses for application-level problems.
pub const APP_ERROR: u16 = 499;

/// Everything that can go wrong in the agent, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed or invalid input (code `DEFAULT`): the message names the field and why.
    #[error("{0}")]
    Invalid(String),
    /// Several invalid fields at once (code `DEFAULT`), one message per field.
    #[error("{}", .0.join("; "))]
    Fields(Vec<String>),
    /// Failed authentication (401 `AUTH`).
    #[error("{0}")]
    Auth(String),
    /// Missing, malformed, expired or revoked token (401 `TOKEN`).
    #[error("{0}")]
    Token(String),
    /// Authenticated but not allowed (`ACCESS`).
    #[error("{0}")]
    Access(String),
    /// The thing named does not exist (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// The thing already exists (`DUPLICATE`).
    #[error("{0}")]
    Duplicate(String),
    /// A security policy refused the request (`SECURITY`).
    #[error("{0}")]
    Security(String),
    /// The identity provider failed or answered something invalid (`SSO`).
    #[error("{0}")]
    Sso(String),
    /// An unexpected fault (500, no body). The text goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
    /// Shorthand for [`Error::Internal`].
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Self::Internal(msg.to_string())
    }

    /// The error code of the problem body and the `error-code` header.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) | Error::Fields(_) => "DEFAULT",
            Error::Auth(_) => "AUTH",
            Error::Token(_) => "TOKEN",
            Error::Access(_) => "ACCESS",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Duplicate(_) => "DUPLICATE",
            Error::Security(_) => "SECURITY",
            Error::Sso(_) => "SSO",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Auth(_) | Error::Token(_) => StatusCode::UNAUTHORIZED,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => app_error_status(),
        }
    }

    /// The messages a caller may see (none for `Internal`).
    pub fn public_messages(&self) -> Option<Vec<&str>> {
        match self {
            Error::Internal(_) => None,
            Error::Fields(ms) => Some(ms.iter().map(String::as_str).collect()),
            Error::Invalid(m)
            | Error::Auth(m)
            | Error::Token(m)
            | Error::Access(m)
            | Error::NotFound(m)
            | Error::Duplicate(m)
            | Error::Security(m)
            | Error::Sso(m) => Some(vec![m.as_str()]),
        }
    }
}

impl Error {
    /// What a person is told — on a sign-in page, in the tray, in the audit trail: the
    /// messages joined by "; ", or, for an internal fault (whose detail is only in the log),
    /// that something went wrong.
    pub fn user_text(&self) -> String {
        self.public_messages()
            .map(|m| m.join("; "))
            .unwrap_or_else(|| INTERNAL_USER_TEXT.to_string())
    }
}

/// What [`Error::user_text`] says of an internal fault.
pub const INTERNAL_USER_TEXT: &str = "Something went wrong in the agent; see its log.";

/// 499, which `http` accepts as a valid (if unregistered) status code.
pub fn app_error_status() -> StatusCode {
    StatusCode::from_u16(APP_ERROR).unwrap_or(StatusCode::BAD_REQUEST)
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("io: {e}"))
    }
}

/// The problem body of the error model: `{"type": CODE, "status": N, "errors": {CODE: [..]}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// The error code: `DEFAULT`, `AUTH`, `TOKEN`, `ACCESS`, `NOT_FOUND`, `DUPLICATE`,
    /// `SECURITY` or `SSO` (also in the `error-code` header).
    #[serde(rename = "type")]
    #[schema(
        example = "DEFAULT",
        pattern = "^(DEFAULT|AUTH|TOKEN|ACCESS|NOT_FOUND|DUPLICATE|SECURITY|SSO)$"
    )]
    pub code: &'a str,
    /// The HTTP status of the answer (499, 401, 404, 405 or 408).
    #[schema(example = 499)]
    pub status: u16,
    /// One entry, whose key is the code: the human-readable messages.
    #[schema(value_type = std::collections::BTreeMap<String, Vec<String>>)]
    pub errors: std::collections::BTreeMap<&'a str, &'a [&'a str]>,
}

/// A problem answer: `status`, the [`Problem`] body (naming the same status) and the
/// `error-code` header.
pub fn problem(status: StatusCode, code: &'static str, messages: &[&str]) -> Response {
    let body = Problem {
        code,
        status: status.as_u16(),
        errors: std::collections::BTreeMap::from([(code, messages)]),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert("error-code", HeaderValue::from_static(code));
    resp
}

impl Error {
    /// The answer to this error with another HTTP status than [`Error::status`] (405, 408),
    /// named by the body too.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let Some(messages) = self.public_messages() else {
            tracing::error!(error = %self, "request failed");
            return status.into_response();
        };
        problem(status, self.code(), &messages)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        self.into_response_with(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    #[tokio::test]
    async fn maps_each_kind_to_its_status_code_and_header() {
        let cases = [
            (Error::invalid("x"), 499, "DEFAULT"),
            (Error::Auth("x".into()), 401, "AUTH"),
            (Error::Token("x".into()), 401, "TOKEN"),
            (Error::Access("x".into()), 499, "ACCESS"),
            (Error::NotFound("x".into()), 499, "NOT_FOUND"),
            (Error::Duplicate("x".into()), 499, "DUPLICATE"),
            (Error::Security("x".into()), 499, "SECURITY"),
            (Error::Sso("x".into()), 499, "SSO"),
        ];
        for (err, status, code) in cases {
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()["error-code"], code);
            let body = body_of(resp).await;
            assert_eq!(body["type"], code);
            assert_eq!(body["status"], status);
            assert_eq!(body["errors"][code][0], "x");
        }
    }

    #[tokio::test]
    async fn field_errors_list_every_message_under_default() {
        let resp = Error::Fields(vec!["A is required".into(), "B must be a string".into()])
            .into_response();
        assert_eq!(resp.status().as_u16(), 499);
        let body = body_of(resp).await;
        assert_eq!(body["errors"]["DEFAULT"][1], "B must be a string");
    }

    #[tokio::test]
    async fn internal_errors_have_no_body_and_leak_nothing() {
        let resp = Error::internal("database: secret path /x").into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(resp.headers().get("error-code").is_none());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        assert!(bytes.is_empty());
    }
}
