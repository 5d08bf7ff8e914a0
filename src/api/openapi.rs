//! The OpenAPI 3.1 document of the whole API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request/response types, served at `GET /openapi.json` (no auth).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, RefOr, Response as DocResponse,
    ResponseBuilder,
};
use utoipa::{Modify, OpenApi};

use crate::api::routing::Routes;
use crate::api::{
    audit, callback_urls, health, idp, idp_view, import, links, login, network, policy, saml,
    session, tokens, ttapi, ui,
};
use crate::error::Problem;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new().get("/openapi.json", get_openapi)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Amove desktop agent",
        description = "The agent's local SSO API on http://localhost:29123. JSON keys are \
PascalCase in responses; request keys are matched case-insensitively. Application errors \
answer 499 with a problem body and an `error-code` header; 500 has no body.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://localhost:29123", description = "The agent's default address")),
    paths(
        health::get_health, get_openapi,
        ui::get_ui_root, ui::get_ui_index, ui::get_file,
        idp::setup_okta, idp::get_okta, idp::update_okta, idp::delete_okta,
        idp::setup_entra_id, idp::get_entra_id, idp::update_entra_id, idp::delete_entra_id,
        idp::setup_saml, idp::get_saml, idp::update_saml, idp::delete_saml,
        ttapi::post_authn, ttapi::post_session,
        tokens::get_tokens, tokens::delete_token, tokens::get_policy, tokens::put_policy,
        session::get_whoami, session::post_refresh, session::post_logout, session::get_signed_out,
        audit::get_audit, audit::get_audit_policy, audit::put_audit_policy,
        login::post_sso_url, login::post_authenticate, login::get_callback,
        login::post_test_connection,
        callback_urls::get_callback_urls, callback_urls::put_callback_urls,
        saml::post_acs, saml::get_metadata, saml::get_slo, saml::refresh_metadata,
        saml::get_sp_keys, saml::rotate_sp_keys, saml::finish_sp_key_rotation,
        network::get_network, network::put_network,
        policy::get_policy,
        import::post_sso_url_import_user, import::get_user_usergroups, import::post_import_users,
        links::get_links, links::delete_link,
    ),
    components(schemas(Problem, idp_view::OktaView, idp_view::EntraView, idp_view::SamlView)),
    modifiers(&CommonAnswers),
)]
struct ApiDoc;

/// The document, built once on first use.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string(&document()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document could not be serialized");
        String::new()
    })
});

/// The OpenAPI document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/openapi.json", tag = "agent",
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = Object)))]
async fn get_openapi() -> Response {
    let mut r = DOCUMENT.as_str().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The answers every operation shares, added to each instead of repeated on each handler:
/// the two security schemes, 499 (problem body, `error-code` header), 401 where a token is
/// required, 405 and 408 (the router's and the timeout's), 404 where a path parameter may name
/// nothing, and 500 (no body).
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A session JWT (`/sso/authenticate`) or an access token (the token exchange).",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.responses.insert(
            "Problem".into(),
            RefOr::T(problem("An application-level problem: bad input, not found, duplicate, policy refusal, upstream IdP failure.")),
        );
        let shared = [
            (
                "401",
                "Problem401",
                "Missing, invalid, expired or revoked token (`TOKEN`), or failed authentication (`AUTH`).",
            ),
            (
                "404",
                "Problem404",
                "No endpoint at this path (`NOT_FOUND`).",
            ),
            (
                "405",
                "Problem405",
                "The path does not accept this method (`DEFAULT`).",
            ),
            (
                "408",
                "Problem408",
                "The request took longer than 30 s (`DEFAULT`).",
            ),
        ];
        for (_, name, what) in shared {
            components
                .responses
                .insert(name.into(), RefOr::T(problem(what)));
        }
        components.responses.insert(
            "Internal".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("An unexpected fault: no body (details only in the agent's log).")
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_param = path.contains('{');
            for op in operations(item) {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                add(op, "499", "Problem");
                if secured {
                    add(op, "401", "Problem401");
                }
                if has_param {
                    add(op, "404", "Problem404");
                }
                add(op, "405", "Problem405");
                add(op, "408", "Problem408");
                add(op, "500", "Internal");
            }
        }
    }
}

/// A problem-body response with the `error-code` header.
fn problem(description: &str) -> DocResponse {
    ResponseBuilder::new()
        .description(description)
        .header(
            "error-code",
            HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String),
                )
                .description(Some("The problem's code, as the body's `type`."))
                .build(),
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The response `status` of `op` refers to the shared response `name`, unless the handler's
/// own attribute already documents that status.
fn add(op: &mut Operation, status: &str, name: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The operations of the document and of a route table that the other lacks:
/// `(served but undocumented, documented but not served)`, each as `METHOD path`.
pub fn drift(table: &[(axum::http::Method, &str)], doc: &Document) -> (Vec<String>, Vec<String>) {
    use std::collections::BTreeSet;
    let served: BTreeSet<String> = table.iter().map(|(m, p)| format!("{m} {p}")).collect();
    let mut documented = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
            ("HEAD", item.head.is_some()),
            ("OPTIONS", item.options.is_some()),
            ("TRACE", item.trace.is_some()),
        ];
        for (m, present) in methods {
            if present {
                documented.insert(format!("{m} {path}"));
            }
        }
    }
    (
        served.difference(&documented).cloned().collect(),
        documented.difference(&served).cloned().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn json() -> serde_json::Value {
        serde_json::from_str(&DOCUMENT).unwrap_or_default()
    }

    #[test]
    fn documents_exactly_the_routes_the_router_serves() {
        let routes = crate::api::routes();
        let (undocumented, not_served) = drift(routes.table(), &document());
        assert!(
            undocumented.is_empty(),
            "served but not documented: {undocumented:?}"
        );
        assert!(
            not_served.is_empty(),
            "documented but not served: {not_served:?}"
        );
        assert!(
            routes.table().len() >= 40,
            "{} routes",
            routes.table().len()
        );
    }

    #[test]
    fn drift_sees_a_route_missing_either_way() {
        let routes = crate::api::routes();
        let mut table = routes.table().to_vec();
        table.push((Method::PATCH, "/sso/undocumented"));
        let gone = table.remove(0);
        let (undocumented, not_served) = drift(&table, &document());
        assert_eq!(undocumented, ["PATCH /sso/undocumented"]);
        assert_eq!(not_served, [format!("{} {}", gone.0, gone.1)]);
    }

    #[test]
    fn is_openapi_3_1_with_both_security_schemes() {
        let doc = json();
        assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["token"]["in"], "query");
        assert_eq!(schemes["token"]["name"], "token");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
    }

    #[test]
    fn every_operation_documents_the_error_model() {
        let doc = json();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(!paths.is_empty());
        for (path, item) in paths {
            for (method, op) in item.as_object().cloned().unwrap_or_default() {
                let r = &op["responses"];
                let at = format!("{method} {path}");
                for status in ["200", "499", "405", "408", "500"] {
                    let ok = r[status].is_object()
                        || (status == "200" && (r["303"].is_object() || r["308"].is_object()));
                    assert!(ok, "{at} lacks {status}");
                }
                let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
                let signs_in = ["/sso/session", "/sso/authenticate"].contains(&path.as_str());
                assert_eq!(r["401"].is_object(), secured || signs_in, "{at}: 401");
            }
        }
        let problem = &doc["components"]["responses"]["Problem"];
        assert!(problem["headers"]["error-code"].is_object());
        assert_eq!(
            problem["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        let internal = &doc["components"]["responses"]["Internal"];
        assert!(internal.get("content").is_none(), "500 has no body");
    }

    #[test]
    fn admin_endpoints_take_either_credential_and_login_needs_none() {
        let doc = json();
        let sec = &doc["paths"]["/sso/setup_okta"]["post"]["security"];
        assert_eq!(sec[0]["token"], serde_json::json!([]));
        assert_eq!(sec[1]["bearer"], serde_json::json!([]));
        assert!(
            doc["paths"]["/sso/sso_url"]["post"]
                .get("security")
                .is_none()
        );
        assert!(doc["paths"]["/health"]["get"].get("security").is_none());
    }

    #[test]
    fn token_exchange_documents_its_oauth_error_and_cookie() {
        let doc = json();
        let op = &doc["paths"]["/sso/ttapi/2.0/authz/0/authn"]["post"];
        let bad = &op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(bad, "#/components/schemas/OAuthErrorBody");
        assert!(
            op["responses"]["200"]["headers"]["set-cookie"]["description"]
                .as_str()
                .unwrap_or("")
                .contains("SSOCTT")
        );
        let body = &op["requestBody"]["content"];
        assert!(body["application/x-www-form-urlencoded"].is_object());
        assert!(body["application/json"].is_object());
        let oauth = &doc["components"]["schemas"]["OAuthErrorBody"]["properties"];
        assert!(oauth["error"].is_object() && oauth["error_description"].is_object());
    }

    #[test]
    fn request_and_response_keys_are_the_seeds_pascal_case() {
        let doc = json();
        let s = &doc["components"]["schemas"];
        for key in ["ClientId", "ClientSecret", "OpenIdURL", "Active"] {
            assert!(
                s["OktaSetup"]["properties"][key].is_object(),
                "OktaSetup.{key}"
            );
        }
        for key in ["Certificate", "SPEntityId", "IdPSSOURL"] {
            assert!(
                s["SamlSetup"]["properties"][key].is_object(),
                "SamlSetup.{key}"
            );
        }
        assert!(s["SsoUrlAnswer"]["properties"]["Identifier"].is_object());
        assert!(s["SsoUrlAnswer"]["properties"]["Url"].is_object());
        assert!(s["Problem"]["properties"]["type"].is_object());
    }
}
