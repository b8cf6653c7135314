//! The OpenAPI document the hub serves is a valid OpenAPI 3.1 document that describes
//! exactly what it serves: it parses as OpenAPI 3.1 (`oas3`); every operation has its
//! own operationId; every path parameter is declared, and nothing else claims to be
//! one; authentication schemes are defined, and every operation either requires one or
//! says it is open; and every documented operation is answered by a route (the
//! document is generated with the routes themselves, `http::router`, so a route
//! without a description cannot be registered; this checks the other direction).

mod support;
use support::*;

use serde_json::Value;
use std::collections::HashSet;
use threshold_store::testing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_valid_and_matches_the_routes() {
    let dir = testing::TempDir::new("openapi").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let (s, doc) = call("GET", format!("{base}/api/v1/openapi.json"), None, None).await;
    assert_eq!(s, 200);

    let parsed: oas3::OpenApiV3Spec = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not an OpenAPI 3.1 document: {e}"));
    assert!(parsed.openapi.starts_with("3.1"), "{}", parsed.openapi);

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert!(doc["security"].as_array().is_some_and(|s| !s.is_empty()));

    let methods = ["get", "put", "post", "delete", "patch"];
    let mut ids = HashSet::new();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let template: HashSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        for m in methods {
            let Some(op) = item.get(m) else { continue };
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(!id.is_empty(), "{m} {path}: no operationId");
            assert!(
                ids.insert(id.clone()),
                "operationId {id} repeats ({m} {path})"
            );
            let params: Vec<&Value> = item["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten()
                .collect();
            let in_path: HashSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            assert_eq!(in_path, template, "{m} {path}: path parameters");
            // Open operations say so with an empty requirement; the rest inherit the
            // document's.
            if let Some(sec) = op["security"].as_array() {
                assert!(
                    sec.iter().all(|r| r
                        .as_object()
                        .is_some_and(|o| o.keys().all(|k| schemes.get(k).is_some()))),
                    "{m} {path}: unknown security scheme in {sec:?}"
                );
            }
            operations.push((m, path.clone()));
        }
    }
    assert!(operations.len() > 50, "{} operations", operations.len());
    for needed in [
        ("get", "/api/v1/events"),
        ("post", "/api/v1/push/subscriptions"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/api/v1/openapi.json"),
        ("post", "/api/v1/devices/{id}/credentials/challenge"),
        ("post", "/api/v1/devices/{id}/credentials"),
    ] {
        assert!(
            operations
                .iter()
                .any(|(m, p)| *m == needed.0 && p == needed.1),
            "{needed:?} undocumented"
        );
    }

    // A device renews its broker credentials with its key, not a session: both steps
    // are open operations, and the answer's body is described.
    for path in [
        "/api/v1/devices/{id}/credentials/challenge",
        "/api/v1/devices/{id}/credentials",
    ] {
        let op = &doc["paths"][path]["post"];
        assert_eq!(op["security"], serde_json::json!([{}]), "{path}");
    }
    assert!(doc["paths"]["/api/v1/devices/{id}/credentials"]["post"]["requestBody"].is_object());

    // Every documented operation is served: never the fallback's "no such route" nor
    // "method not allowed" (ids are placeholders; a 404 for the thing is fine).
    for (m, path) in &operations {
        let url = format!("{base}{}", path.replace('{', "x").replace('}', ""));
        let (_, body, _) = call_raw(&m.to_uppercase(), url.clone(), None, None).await;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            code != "method_not_allowed" && !(code == "not_found" && message.contains("route")),
            "{m} {url}: {body}"
        );
    }
    hub.stop().await;
}
