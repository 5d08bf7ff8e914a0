//! The HTML pages of sign-in: the agent's callback page (signed in, or the code to copy
//! back), and the failure pages of the callback and the SAML ACS. Small self-contained pages
//! with a strict CSP: no scripts, nothing external, the one inline style allowed by its hash.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::error::Error;
use crate::login::callback::CallbackOutcome;

const PAGE_STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2330;\
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}\
main{background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:2rem 2.5rem;\
max-width:36rem}h1{font-size:1.3rem;margin:0 0 1rem}.ok{color:#17753b}.err{color:#b3261e}\
code{display:block;background:#eef0f4;border-radius:6px;padding:.6rem .8rem;margin:.3rem 0 1rem;\
word-break:break-all;font:14px ui-monospace,monospace;user-select:all}p{margin:.5rem 0}";

pub fn esc(s: &str) -> String {
    html_escape::encode_safe(s).into_owned()
}

/// A small self-contained page with a strict CSP (no scripts, no external anything; the
/// one inline style is allowed by its hash).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{PAGE_STYLE}</style></head><body><main>{body}</main></body></html>",
        esc(title)
    );
    let style_hash = base64::engine::general_purpose::STANDARD.encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(PAGE_STYLE),
    ));
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1 class=\"err\">{}</h1><p>{}</p><p>You can close this window and try \
             again.</p>",
            esc(title),
            esc(message)
        ),
    )
}

/// A sign-in (or sign-out) page's failure: the one place where an [`Error`] becomes a
/// failure page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    /// A failure of the agent's callback page: 400, or 500 for an internal fault.
    pub fn callback(e: &Error) -> Self {
        let status = match e {
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            title: "Sign-in failed",
            message: e.user_text(),
        }
    }

    /// A failure of the signed-out page or the SAML SLO endpoint: 400 for a malformed or
    /// refused message, 500 for an internal fault.
    pub fn sign_out(e: &Error) -> Self {
        let status = match e {
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            title: "Sign-out not confirmed",
            message: e.user_text(),
        }
    }

    /// A refused SAML response: 400 for a malformed post, 502 when the IdP failed, 500 for an
    /// internal fault, 403 for every other refusal.
    pub fn acs(e: &Error) -> Self {
        let status = match e {
            Error::Invalid(_) | Error::Fields(_) => StatusCode::BAD_REQUEST,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Sso(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::FORBIDDEN,
        };
        Self {
            status,
            title: "Sign-in failed",
            message: format!("The SAML response was refused: {}.", e.user_text()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.status, self.title, &self.message)
    }
}

/// The page the IdP sends the browser to once it ended its session too.
pub fn signed_out_page() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1 class=\"ok\">You are signed out</h1><p>You are signed out of Amove and of your \
         identity provider.</p><p>You can close this window.</p>",
    )
}

/// The callback page of a handled redirect.
pub fn callback_page(outcome: &CallbackOutcome) -> Response {
    match outcome {
        CallbackOutcome::SignedIn(s) => page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "<h1 class=\"ok\">You are signed in</h1><p>Signed in to Amove as \
                 <b>{}</b> ({}).</p><p>You can close this window.</p>",
                esc(&s.display_name),
                esc(&s.username)
            ),
        ),
        CallbackOutcome::CopyCode { code, identifier } => {
            let identifier_html = match identifier {
                Some(i) => format!(
                    "<p>Identifier</p><code id=\"identifier\">{}</code>",
                    esc(i.expose())
                ),
                None => String::new(),
            };
            page(
                StatusCode::OK,
                "Almost signed in",
                &format!(
                    "<h1 class=\"ok\">Almost done</h1><p>Copy the authorization code into the \
                     application that started this sign-in (it calls <b>/sso/authenticate</b>). \
                     It works once, within 10 minutes.</p><p>Authorization code</p>\
                     <code id=\"code\">{}</code>{identifier_html}",
                    esc(code.expose())
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_everything_and_carry_a_strict_csp() {
        let resp =
            PageError::callback(&Error::invalid("<script>alert(1)</script>")).into_response();
        let csp = resp
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!csp.contains("unsafe"));
        assert_eq!(resp.headers()[header::REFERRER_POLICY], "no-referrer");
    }

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(esc("<b>&"), "&lt;b&gt;&amp;");
        assert!(!esc("\"'").contains(['"', '\'']));
    }
}
