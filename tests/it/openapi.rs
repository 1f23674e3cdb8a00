//! `/openapi.json` documents every route the server registers, and nothing else.

use std::collections::BTreeSet;

use crate::common::*;

/// Every path `src/` registers: the literal of each `resource("...")` and `get("...")`.
fn registered() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("openapi.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for opener in ["resource(\"", "get(\""] {
                for piece in text.split(opener).skip(1) {
                    if let Some(route) = piece.split('"').next().filter(|r| r.starts_with('/')) {
                        found.insert(route.to_owned());
                    }
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn every_route_is_documented() {
    let s = TestServer::start();
    let (status, doc) = s.http("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routes = registered();
    assert!(routes.len() > 20, "the scan found the routes: {routes:?}");
    let missing: Vec<&String> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let extra: Vec<&String> = documented.difference(&routes).collect();
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert!(error.is_object(), "the error shape is documented");
    assert!(doc["components"]["securitySchemes"]["admin"].is_object());
}

/// Every JSON answer names its schema (a type the handler serializes), so schemathesis checks
/// the fields; only the document itself is free-form.
#[tokio::test]
async fn every_json_answer_has_a_named_schema() {
    let s = TestServer::start();
    let (_, doc) = s.http("GET", "/openapi.json", None).await;
    let mut free_form = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            for (status, answer) in op["responses"].as_object().unwrap() {
                let schema = &answer["content"]["application/json"]["schema"];
                if !schema.is_null() && schema["$ref"].is_null() && path != "/openapi.json" {
                    free_form.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(
        free_form.is_empty(),
        "answers without a named schema: {free_form:?}"
    );
}
