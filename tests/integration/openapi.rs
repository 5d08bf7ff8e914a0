//! `GET /openapi.json` on the real agent: served without a token, and every operation it names
//! is answered by a route of the running server (not by the 404/405 fallbacks).

use crate::common::*;

/// True when the answer is one of the router's fallbacks: no route has this path, or none
/// takes this method.
fn is_fallback(a: &Answer) -> bool {
    let msg = a.json()["errors"].to_string();
    (a.status.as_u16() == 404 && msg.contains("no endpoint"))
        || (a.status.as_u16() == 405 && msg.contains("does not accept"))
}

async fn probe(agent: &Agent, method: &str, path: &str) -> Answer {
    let concrete = path.replace("{id}", "1").replace("{name}", "app.js");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    agent
        .send(agent.http.request(method, agent.url(&concrete)))
        .await
}

#[tokio::test]
async fn openapi_json_is_served_without_a_token_and_names_only_real_routes() {
    let agent = Agent::start().await;
    let a = agent.get("/openapi.json", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.headers["content-type"], "application/json");
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut operations = 0;
    for (path, item) in &paths {
        for method in item
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let answer = probe(&agent, &method, path).await;
            assert!(
                !is_fallback(&answer),
                "{method} {path} is documented but not served: {}",
                answer.text
            );
            operations += 1;
        }
    }
    assert!(operations >= 40, "{operations} operations");
    // The probe does tell a missing route: an undocumented path and method meet the fallbacks.
    assert!(is_fallback(
        &probe(&agent, "get", "/sso/not_an_endpoint").await
    ));
    assert!(is_fallback(&probe(&agent, "patch", "/sso/sso_url").await));
    assert_eq!(
        a.json(),
        agent.get("/openapi.json", None).await.json(),
        "built once, the same"
    );
}
