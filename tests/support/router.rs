//! Calling an API router without a server (`tower::ServiceExt::oneshot`) and reading
//! its JSON answer.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// Sends one request; returns the status and the body as JSON (every answer of the API
/// but the event stream and the metrics is JSON, errors included: a body that does not
/// parse fails the test).
pub async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let what = format!("{} {}", request.method(), request.uri());
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{what}: {status}"
    );
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a small body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

/// Calls the router once with no body.
pub async fn call(router: &Router, method: Method, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("a valid request");
    send(router, request).await
}

/// `GET uri`.
pub async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    call(router, Method::GET, uri).await
}

/// `method uri` with a JSON body (and a bearer token, if given).
pub async fn send_json(
    router: &Router,
    method: Method,
    uri: &str,
    body: &Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(
        router,
        request
            .body(Body::from(body.to_string()))
            .expect("a valid request"),
    )
    .await
}
