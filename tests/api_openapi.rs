//! The API's OpenAPI description, `docs/openapi.yaml`: the agent serves it as it is at
//! `GET /v1/openapi.yaml`, it parses as OpenAPI 3, and its paths and methods are exactly
//! the routes `api::router` registers (read from `src/api/mod.rs`), so an endpoint added
//! without its description, or described without existing, fails here. Whether the
//! answers match the schemas is checked against a live agent by `.ci/schemathesis.sh`.

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use muster::api::{self, ApiState};
use support::meshes::start;
use tower::ServiceExt;
use yaml_rust2::{Yaml, YamlLoader};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
const ROUTER_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs");

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The description, parsed.
fn description() -> Yaml {
    let text = read(DOC_PATH);
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{DOC_PATH}: {e}"));
    assert_eq!(docs.len(), 1, "{DOC_PATH}: one YAML document");
    docs.remove(0)
}

/// Every `(METHOD, path)` the description has.
fn described_operations(doc: &Yaml) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_hash().expect("`paths` is a mapping");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("a path is a string");
        let item = item
            .as_hash()
            .unwrap_or_else(|| panic!("{path}: a mapping"));
        for key in item.keys() {
            let key = key.as_str().expect("a key is a string");
            if matches!(key, "get" | "put" | "post" | "delete" | "patch" | "head") {
                operations.insert((key.to_uppercase(), path.to_owned()));
            }
        }
    }
    operations
}

/// Every `(METHOD, path)` that `router()` registers: each `.route("path", get(..).put(..))`
/// call in the router's source, however it is wrapped over lines. Both axum and OpenAPI
/// write path parameters as `{name}`, so paths compare as they are.
fn routed_operations(source: &str) -> BTreeSet<(String, String)> {
    let body = source
        .split_once("pub fn router(")
        .expect("src/api/mod.rs defines router()")
        .1;
    let body = &body[..body.find("\n}\n").expect("router() ends")];
    let mut operations = BTreeSet::new();
    for call in body.split(".route(").skip(1) {
        let mut quoted = call.split('"');
        let path = quoted.nth(1).expect("a route's path is a string literal");
        // The method router: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })
            .expect("a closed .route( call");
        let methods = &call[..end];
        let before_path = methods.find(path).expect("the path is in the call") + path.len();
        let mut found = 0;
        for method in ["get", "put", "post", "delete", "patch", "head"] {
            let called = format!("{method}(");
            for (at, _) in methods[before_path..].match_indices(&called) {
                let preceding = methods[before_path..][..at].chars().next_back();
                if preceding.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                    operations.insert((method.to_uppercase(), path.to_owned()));
                    found += 1;
                }
            }
        }
        assert!(found > 0, "no method found in .route({path:?}, ...)");
    }
    operations
}

#[test]
fn the_description_parses_as_openapi_3_with_a_bearer_scheme_on_every_mutation() {
    let doc = description();
    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3."), "openapi: {version}");
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"].as_str(), Some("http"));
    assert_eq!(scheme["scheme"].as_str(), Some("bearer"));
    for (method, path) in described_operations(&doc) {
        let operation = &doc["paths"][path.as_str()][method.to_lowercase().as_str()];
        let responses = operation["responses"]
            .as_hash()
            .unwrap_or_else(|| panic!("{method} {path}: responses"));
        let has = |status: &str| responses.contains_key(&Yaml::String(status.into()));
        assert!(has("200") && has("421"), "{method} {path}: 200 and 421");
        let security = &operation["security"];
        if method == "GET" {
            assert!(has("401") != (path == "/v1/health"), "{method} {path}: 401");
            continue;
        }
        assert_eq!(
            security[0]["bearerAuth"].as_vec().map(Vec::len),
            Some(0),
            "{method} {path}: needs bearerAuth"
        );
        assert!(
            security[1].is_badvalue(),
            "{method} {path}: only bearerAuth"
        );
        for status in ["401", "403", "413", "415"] {
            assert!(has(status), "{method} {path}: {status}");
        }
    }
    assert_eq!(
        doc["paths"]["/v1/health"]["get"]["security"][0]
            .as_hash()
            .map(|h| h.len()),
        Some(0),
        "GET /v1/health is open"
    );
}

#[test]
fn the_description_has_exactly_the_routes_of_the_router() {
    let routed = routed_operations(&read(ROUTER_SOURCE));
    // A positive control for the source reading: routes of every shape are found.
    for expected in [
        ("GET", "/v1/members"),
        ("PUT", "/v1/self/state/{key}"),
        ("DELETE", "/v1/self/state/{key}"),
        ("DELETE", "/v1/services/{name}"),
        ("POST", "/v1/failover/{service}"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.yaml"),
    ] {
        assert!(
            routed.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not read from the router: {routed:?}"
        );
    }
    let described = described_operations(&description());
    let undescribed: Vec<_> = routed.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&routed).collect();
    assert!(
        undescribed.is_empty() && unrouted.is_empty(),
        "routed but not in docs/openapi.yaml: {undescribed:?}; described but not routed: {unrouted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_its_description_as_yaml() {
    let mesh = start("api-openapi", "solo", ("eu", "eu-1"), &[], Vec::new()).await;
    let router = api::router(ApiState::new(&mesh));
    let request = Request::get("/v1/openapi.yaml")
        .body(Body::empty())
        .expect("a valid request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/yaml")
    );
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a small body");
    assert_eq!(
        String::from_utf8(bytes.to_vec()).expect("UTF-8"),
        read(DOC_PATH),
        "the served description is docs/openapi.yaml as it is"
    );
    assert_eq!(api::OPENAPI_YAML, read(DOC_PATH));
    mesh.shutdown().await;
}
