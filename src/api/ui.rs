//! The web UI (`ui/` in the repository), embedded at compile time and served at `/ui/`
//! for admins who prefer a browser to the desktop app's windows.

use crate::api::routing::Routes;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The UI's files: name, content type, bytes. A fixed list, so nothing outside `ui/` can be
/// served and a missing file fails the build. The scripts are ES modules (`app.js` imports
/// the others): module scripts are refused unless served with a JavaScript content type.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/dom.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/admin.js"),
    ),
    (
        "signin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/signin.js"),
    ),
    (
        "providers.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/providers.js"),
    ),
    (
        "import.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/import.js"),
    ),
    (
        "callbacks.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/callbacks.js"),
    ),
    (
        "access.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/access.js"),
    ),
    (
        "network.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/network.js"),
    ),
    (
        "tokens.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/tokens.js"),
    ),
    (
        "managed.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/managed.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/style.css"),
    ),
    ("icon.png", "image/png", include_bytes!("../../ui/icon.png")),
];

/// Scripts and styles only from the agent itself, no inline script, no framing, no
/// plugins; requests only to the agent.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/ui", get_ui_root)
        .get("/ui/", get_ui_index)
        .get("/ui/{name}", get_file)
}

#[utoipa::path(get, path = "/ui", tag = "ui",
    responses((status = 308, description = "To `/ui/`.", headers(("location" = String, description = "`/ui/`")))))]
async fn get_ui_root() -> Redirect {
    Redirect::permanent("/ui/")
}

#[utoipa::path(get, path = "/ui/", tag = "ui",
    responses((status = 200, description = "The web UI's page.", body = String, content_type = "text/html")))]
async fn get_ui_index() -> Response {
    file("index.html")
}

#[utoipa::path(get, path = "/ui/{name}", tag = "ui", params(("name" = String, Path, example = "app.js", description = "A file of the web UI (`app.js`, `style.css`, …).")),
    responses(
        (status = 200, description = "The file.", content(("text/html"), ("text/javascript"), ("text/css"), ("image/png"))),
        (status = 404, description = "No such file.", body = String, content_type = "text/plain")
    ))]
async fn get_file(Path(name): Path<String>) -> Response {
    file(&name)
}

fn file(name: &str) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut resp = (StatusCode::OK, *bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The SSO return carries a code in the URL: never send it on as a Referer.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_known_files_with_strict_headers() {
        let r = file("app.js");
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(file("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(file("nope.js").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn index_has_no_inline_script() {
        let html = String::from_utf8_lossy(FILES[0].2);
        assert!(html.contains("<script type=\"module\" src=\"app.js\""));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn every_file_of_ui_is_served_with_its_content_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("ui/ is readable")
            .map(|e| {
                e.expect("ui/ entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert!(names.len() >= 4, "ui/ has {names:?}");
        for name in &names {
            let r = file(name);
            assert_eq!(r.status(), StatusCode::OK, "{name} is not in FILES");
            let ct = r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap_or_default();
            let want = match name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => "text/javascript; charset=utf-8",
                Some("html") => "text/html; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("png") => "image/png",
                other => panic!("{name}: no content type for {other:?}"),
            };
            assert_eq!(ct, want, "{name}");
        }
    }
}
