//! The replicated-state, services, drain, route and failover endpoints over real meshes
//! on loopback, the router called without a server: every endpoint's answer and every
//! way each one refuses a request (status, `{"error", "field"}`), the token on the
//! mutating ones, and the `state-changed` event on the journal and the event stream.
//!
//! Every wait polls with a generous deadline; nothing asserts on a fixed sleep.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures_util::StreamExt;
use muster::Mesh;
use muster::api::{self, Access, ApiState, ApiToken};
use muster::events::journal::{EventDetail, EventKind};
use muster::routing::router::RuleState;
use muster::wire::MemberState;
use serde_json::{Value, json};
use support::meshes::{describe, start, three};
use support::router::{call, get, send, send_json};
use support::{DEADLINE, POLL, eventually_async};
use tower::ServiceExt;

/// Two meshes: `a` (eu/eu-1) starts the cluster, `b` (us/us-1) joins it. Returns once
/// both see two alive members.
async fn two(cluster: &str) -> (Mesh, Mesh) {
    let a = start(cluster, "a", ("eu", "eu-1"), &[], vec![]).await;
    let b = start(cluster, "b", ("us", "us-1"), &[], vec![a.local_addr()]).await;
    let both = [&a, &b];
    eventually_async(
        "two meshes see two alive members",
        || {
            both.iter().all(|m| {
                let members = m.members();
                members.len() == 2 && members.iter().all(|x| x.state == MemberState::Alive)
            })
        },
        || describe(&both),
    )
    .await;
    (a, b)
}

/// Polls `GET uri` until `check` holds for its 200 answer; returns that answer, or
/// panics with `what` and the last answer after [`DEADLINE`].
async fn eventually_get(
    router: &Router,
    uri: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = tokio::time::Instant::now();
    loop {
        let (status, body) = get(router, uri).await;
        if status == StatusCode::OK && check(&body) {
            return body;
        }
        if start.elapsed() > DEADLINE {
            panic!("{what}: not within {DEADLINE:?}; GET {uri} last answered {status}: {body}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `method uri` with a raw body (no content type) and the token, if given.
async fn send_raw(
    router: &Router,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(router, request.body(body.into()).expect("a valid request")).await
}

/// `PUT /v1/self/state/{key}` (`key` as it goes in the path) with `value` as the body.
async fn put_state(router: &Router, key: &str, value: impl Into<Body>) -> (StatusCode, Value) {
    let uri = format!("/v1/self/state/{key}");
    send_raw(router, Method::PUT, &uri, value, None).await
}

/// Asserts an error answer: `status`, a non-empty one-line `error`, and `field`.
#[track_caller]
fn assert_error(what: &str, got: (StatusCode, Value), status: StatusCode, field: Option<&str>) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{what}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        !error.is_empty() && !error.contains('\n'),
        "{what}: one line of error: {body}"
    );
    assert_eq!(body["field"].as_str(), field, "{what}: {body}");
    let keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let expected = if field.is_some() { 2 } else { 1 };
    assert_eq!(keys.len(), expected, "{what}: only error and field: {body}");
}

/// The node names of a route or service answer's instances, in order.
fn nodes(answer: &Value) -> Vec<String> {
    answer["instances"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|i| i["node"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `name`'s instance in a `GET /v1/services/{name}` answer's list.
fn instance<'a>(detail: &'a Value, node: &str) -> Option<&'a Value> {
    detail["instances"]
        .as_array()?
        .iter()
        .find(|i| i["node"] == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_written_read_back_at_once_and_spreads_to_other_members() {
    let (a, b) = two("api-state").await;
    let ra = api::router(ApiState::new(&a));
    let rb = api::router(ApiState::new(&b));

    let (status, own) = get(&ra, "/v1/self/state").await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["node"], "a", "{own}");
    assert_eq!(own["entries"], json!({}), "{own}");

    // The value is the raw body, whatever its content type; the answer says the version.
    let (status, first) = put_state(&ra, "color", "blue").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["key"], "color");
    assert_eq!(first["set"], true);
    let v1 = first["version"].as_u64().expect("a version");
    // Read your write: the snapshot is up to date when the write answers.
    let (_, own) = get(&ra, "/v1/self/state").await;
    assert_eq!(own["entries"]["color"]["value"], "blue", "{own}");
    assert_eq!(own["entries"]["color"]["version"], v1, "{own}");
    assert_eq!(own["version"], v1, "{own}");
    let (_, mine) = get(&ra, "/v1/members/a/state").await;
    assert_eq!(mine["entries"]["color"]["value"], "blue", "{mine}");

    // A key with a slash travels percent-encoded; JSON text is kept as it is.
    let doc = r#"{"build": 42, "note": "ünïcode"}"#;
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/v1/self/state/app%2Fconfig")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(doc))
        .expect("a valid request");
    let (status, second) = send(&ra, request).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["key"], "app/config");
    let v2 = second["version"].as_u64().expect("a version");
    assert!(v2 > v1, "versions grow: {v1} then {v2}");
    // Writing the same value again changes nothing.
    let (status, again) = put_state(&ra, "color", "blue").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["version"], v2, "{again}");
    // An empty value is a value.
    let (status, empty) = put_state(&ra, "flag", "").await;
    assert_eq!(status, StatusCode::OK, "{empty}");

    let spread = eventually_get(&rb, "/v1/members/a/state", "b mirrors a's state", |s| {
        s["entries"]["color"]["value"] == "blue"
            && s["entries"]["app/config"]["value"] == doc
            && s["entries"]["flag"]["value"] == ""
    })
    .await;
    assert_eq!(spread["node"], "a", "{spread}");
    assert_eq!(spread["epoch"], own["epoch"], "{spread}");
    // b's own state is its own.
    let (_, b_own) = get(&rb, "/v1/self/state").await;
    assert_eq!(b_own["node"], "b");
    assert_eq!(b_own["entries"], json!({}), "{b_own}");

    // Deleting answers set: false; deleting an absent key is not an error.
    let (status, deleted) = send_raw(
        &ra,
        Method::DELETE,
        "/v1/self/state/color",
        Body::empty(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["key"], "color");
    assert_eq!(deleted["set"], false);
    assert!(deleted["version"].as_u64() > Some(v2), "{deleted}");
    let (_, own) = get(&ra, "/v1/self/state").await;
    assert!(own["entries"].get("color").is_none(), "{own}");
    let (status, absent) = send_raw(
        &ra,
        Method::DELETE,
        "/v1/self/state/never-set",
        Body::empty(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{absent}");
    assert_eq!(absent["set"], false);
    eventually_get(&rb, "/v1/members/a/state", "the delete spreads to b", |s| {
        s["entries"].get("color").is_none() && s["entries"]["app/config"]["value"] == doc
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_writes_are_refused_whole_naming_the_field() {
    let a = start("api-state-bad", "a", ("eu", "eu-1"), &[], vec![]).await;
    let ra = api::router(ApiState::new(&a));

    // Muster's own keys (service records) are not writable through the API.
    for uri_key in ["muster%2Fsvc%2Fweb", "muster%2F"] {
        assert_error(
            &format!("reserved key {uri_key}"),
            put_state(&ra, uri_key, "x").await,
            StatusCode::BAD_REQUEST,
            Some("key"),
        );
        let uri = format!("/v1/self/state/{uri_key}");
        assert_error(
            &format!("delete of reserved key {uri_key}"),
            send_raw(&ra, Method::DELETE, &uri, Body::empty(), None).await,
            StatusCode::BAD_REQUEST,
            Some("key"),
        );
    }
    // Unencoded, a slash makes another path, which no route matches.
    assert_error(
        "an unencoded slash",
        put_state(&ra, "muster/svc/web", "x").await,
        StatusCode::NOT_FOUND,
        None,
    );
    // An empty key cannot be named: the path without it is no endpoint.
    assert_error(
        "an empty key",
        put_state(&ra, "", "x").await,
        StatusCode::NOT_FOUND,
        None,
    );
    // A key holding a control character (here a newline and an escape) would be
    // refused by every peer, so the agent refuses it here, naming the key.
    for uri_key in ["bad%0Akey", "bad%1B%5B2Jkey"] {
        assert_error(
            &format!("control character in {uri_key}"),
            put_state(&ra, uri_key, "x").await,
            StatusCode::BAD_REQUEST,
            Some("key"),
        );
    }
    // Keys are at most 256 bytes.
    let (status, body) = put_state(&ra, &"k".repeat(256), "x").await;
    assert_eq!(status, StatusCode::OK, "a 256-byte key: {body}");
    assert_error(
        "a 257-byte key",
        put_state(&ra, &"k".repeat(257), "x").await,
        StatusCode::BAD_REQUEST,
        Some("key"),
    );
    assert_error(
        "delete of a 257-byte key",
        send_raw(
            &ra,
            Method::DELETE,
            &format!("/v1/self/state/{}", "k".repeat(257)),
            Body::empty(),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("key"),
    );
    // Values are UTF-8 text.
    assert_error(
        "a non-UTF-8 value",
        put_state(&ra, "bin", vec![0xff, 0xfe, 0x00, 0x41]).await,
        StatusCode::BAD_REQUEST,
        Some("value"),
    );

    // The whole map is bounded (kv_max_bytes, 64 KiB of keys and values): a value that
    // fits the request body limit but not the map is refused naming the value...
    let max_bytes = 64 * 1024;
    let (status, body) = put_state(&ra, "big", "x".repeat(max_bytes)).await;
    assert_error(
        "a value past the state bound",
        (status, body.clone()),
        StatusCode::BAD_REQUEST,
        Some("value"),
    );
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("65536")),
        "the error says the limit: {body}"
    );
    // ...as is one that only the sum of the map's values takes past it...
    let (status, body) = put_state(&ra, "half", "y".repeat(40 * 1024)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        "a second value past the state bound",
        put_state(&ra, "other-half", "z".repeat(40 * 1024)).await,
        StatusCode::BAD_REQUEST,
        Some("value"),
    );
    // ...while replacing a value counts only the new one.
    let (status, body) = put_state(&ra, "half", "w".repeat(60 * 1024)).await;
    assert_eq!(status, StatusCode::OK, "replacing a value: {body}");
    // A body past the API's body limit is refused before it is read: 413, in JSON.
    let (status, body) = put_state(&ra, "huge", "x".repeat(max_bytes + 1)).await;
    assert_error(
        "a body past the API's limit",
        (status, body.clone()),
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    );
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("65536")),
        "the error says the limit: {body}"
    );
    // Nothing refused was written.
    let (_, own) = get(&ra, "/v1/self/state").await;
    let keys: Vec<&String> = own["entries"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, [&"half".to_owned(), &"k".repeat(256)], "{own}");

    // Another member's state: unknown names are 404.
    for name in ["nobody", &"n".repeat(300)] {
        assert_error(
            &format!("state of {name:.10}"),
            get(&ra, &format!("/v1/members/{name}/state")).await,
            StatusCode::NOT_FOUND,
            None,
        );
    }
    // Reading with the wrong method.
    assert_error(
        "POST to a state key",
        send_raw(&ra, Method::POST, "/v1/self/state/k", "v", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_are_journaled_and_streamed_as_state_changed_events() {
    let (a, b) = two("api-state-events").await;
    let state_a = ApiState::new(&a);
    let state_b = ApiState::new(&b);
    let ra = api::router(state_a.clone());
    let mut journal_a = state_a.journal().subscribe();
    let mut journal_b = state_b.journal().subscribe();

    let (status, body) = put_state(&ra, "color", "blue").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Both agents journal the change to a's state, naming the key.
    for (who, journal) in [("a", &mut journal_a), ("b", &mut journal_b)] {
        let record = tokio::time::timeout(DEADLINE, async {
            loop {
                let record = journal.recv().await.expect("the journal runs");
                if record.kind() == EventKind::StateChanged && record.member.name == "a" {
                    return record;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{who} journals no state-changed event about a"));
        assert_eq!(
            record.detail,
            EventDetail::StateChanged {
                keys: vec!["color".to_owned()]
            }
        );
        assert_eq!(record.node, who);
    }

    // The event stream (filtered to state changes, replayed from the start) sends it.
    let request = Request::builder()
        .uri("/v1/events?after=0&event=state-changed")
        .body(Body::empty())
        .expect("a valid request");
    let response = ra.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.into_body().into_data_stream();
    let mut text = String::new();
    let record = tokio::time::timeout(DEADLINE, async {
        loop {
            // One event is `id:`, `event:` and `data:` lines, then a blank line.
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                assert!(event.contains("event: state-changed"), "{event}");
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("a data line");
                let record: Value = serde_json::from_str(data).expect("the data is JSON");
                if record["member"]["name"] == "a" {
                    return record;
                }
            }
            let chunk = stream
                .next()
                .await
                .expect("the stream stays open")
                .expect("a chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("a state-changed event about a on the stream");
    assert_eq!(record["event"], "state-changed", "{record}");
    assert_eq!(record["member"]["name"], "a", "{record}");
    assert_eq!(record["keys"], json!(["color"]), "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_registered_listed_replaced_and_removed() {
    let (a, b) = two("api-services").await;
    // This agent lets the API register exec checks (`api_allow_exec_checks`).
    let ra = api::router(ApiState::new(&a).with_access(Access {
        allow_exec_checks: true,
        ..Access::default()
    }));
    let rb = api::router(ApiState::new(&b));
    let (status, none) = get(&ra, "/v1/services").await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["services"], json!({}), "{none}");

    // A listener the tcp check connects to, held open for the whole test.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let check_addr = listener.local_addr().expect("bound").to_string();
    let spec = json!({
        "port": 8080,
        "weight": 3,
        "tags": {"version": "2"},
        "checks": [{"tcp": check_addr, "interval": "200ms", "timeout": "100ms",
                    "success_threshold": 1}],
    });
    let (status, registered) = send_json(&ra, Method::PUT, "/v1/services/web", &spec, None).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert_eq!(registered["service"], "web");
    assert_eq!(registered["spec"]["name"], "web", "the path names it");
    assert_eq!(registered["spec"]["port"], 8080);
    assert_eq!(registered["spec"]["weight"], 3);
    assert_eq!(registered["spec"]["checks"][0]["interval"], "200ms");
    // A body may name the service too, when it is the path's name; an exec check.
    let job = json!({"name": "job", "port": 9090,
                     "checks": [{"exec": ["/bin/true"], "interval": "200ms", "timeout": "200ms"}]});
    let (status, body) = send_json(&ra, Method::PUT, "/v1/services/job", &job, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let list = eventually_get(&ra, "/v1/services", "a lists web and job passing", |v| {
        v["services"]["web"]["passing"] == 1 && v["services"]["job"]["passing"] == 1
    })
    .await;
    let web = &list["services"]["web"];
    assert_eq!(web["instances"], 1, "{list}");
    assert_eq!(web["local"], true, "{list}");
    assert_eq!(web["regions"]["eu"]["passing"], 1, "{list}");
    assert!(list["index"].as_u64() > Some(0), "{list}");

    let detail = eventually_get(&ra, "/v1/services/web", "a's web detail", |d| {
        d["local"]["status"] == "passing"
    })
    .await;
    assert_eq!(detail["service"], "web");
    assert_eq!(nodes(&detail), ["a"], "{detail}");
    let mine = instance(&detail, "a").expect("a's instance");
    assert_eq!(
        (
            &mine["port"],
            &mine["weight"],
            &mine["region"],
            &mine["zone"]
        ),
        (&json!(8080), &json!(3), &json!("eu"), &json!("eu-1")),
        "{detail}"
    );
    assert_eq!(mine["address"], "127.0.0.1", "{detail}");
    assert_eq!(detail["local"]["spec"]["tags"]["version"], "2", "{detail}");
    assert_eq!(detail["local"]["draining"], false, "{detail}");
    assert_eq!(detail["rule"]["state"], "normal", "{detail}");

    // b runs nothing, yet knows a's services and routes to them.
    let b_list = eventually_get(&rb, "/v1/services", "b lists a's web", |v| {
        v["services"]["web"]["passing"] == 1
    })
    .await;
    assert_eq!(b_list["services"]["web"]["local"], false, "{b_list}");
    let (status, b_detail) = get(&rb, "/v1/services/web").await;
    assert_eq!(status, StatusCode::OK, "{b_detail}");
    assert!(b_detail["local"].is_null(), "{b_detail}");
    let route = eventually_get(&rb, "/v1/route/web", "b routes web to a", |r| {
        nodes(r) == ["a"]
    })
    .await;
    assert_eq!(
        route["rule"]["state"], "remote",
        "b's region has none: {route}"
    );

    // Registering again replaces the definition.
    let (status, body) = send_json(
        &ra,
        Method::PUT,
        "/v1/services/web",
        &json!({"port": 8081}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually_get(&rb, "/v1/route/web", "b sees the new port", |r| {
        r["instances"][0]["port"] == 8081 && r["instances"][0]["weight"] == 1
    })
    .await;

    // A service whose check fails is listed, critical, and routed to nowhere.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("bound").to_string()
    };
    let down = json!({"port": 7000,
                      "checks": [{"tcp": closed, "interval": "200ms", "timeout": "100ms"}]});
    let (status, body) = send_json(&ra, Method::PUT, "/v1/services/down", &down, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = eventually_get(&ra, "/v1/services", "down is listed critical", |v| {
        v["services"]["down"]["critical"] == 1
    })
    .await;
    assert_eq!(list["services"]["down"]["passing"], 0, "{list}");
    let (status, route) = get(&ra, "/v1/route/down").await;
    assert_eq!(status, StatusCode::OK, "{route}");
    assert_eq!(nodes(&route), Vec::<String>::new(), "{route}");
    assert!(
        route["rule"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no healthy instance")),
        "{route}"
    );

    // Removing a service withdraws its instance everywhere.
    let (status, body) = call(&ra, Method::DELETE, "/v1/services/web").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"services": ["web"]}));
    for router in [&ra, &rb] {
        let start = tokio::time::Instant::now();
        loop {
            let (status, body) = get(router, "/v1/services/web").await;
            if status == StatusCode::NOT_FOUND {
                assert_error("removed web", (status, body), StatusCode::NOT_FOUND, None);
                break;
            }
            assert!(start.elapsed() < DEADLINE, "web is still listed: {body}");
            tokio::time::sleep(POLL).await;
        }
        eventually_get(router, "/v1/services", "web leaves the list", |v| {
            v["services"].get("web").is_none() && v["services"]["job"]["instances"] == 1
        })
        .await;
    }
    assert_error(
        "route of a removed service",
        get(&ra, "/v1/route/web").await,
        StatusCode::NOT_FOUND,
        None,
    );
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_service_requests_are_refused_naming_the_field() {
    let (a, b) = two("api-services-bad").await;
    let ra = api::router(ApiState::new(&a));
    let rb = api::router(ApiState::new(&b));
    let put = |uri: &'static str, body: Value| {
        let ra = ra.clone();
        async move { send_json(&ra, Method::PUT, uri, &body, None).await }
    };
    let tcp = "127.0.0.1:9";
    for (body, field) in [
        // Checked by the service's own validation.
        (json!({"port": 0}), "port"),
        (json!({"port": 1, "weight": 0}), "weight"),
        (json!({"port": 1, "weight": 1001}), "weight"),
        (json!({"port": 1, "priority": 2}), "priority"),
        (json!({"port": 1, "tags": {"": "x"}}), "tags"),
        (
            json!({"port": 1, "checks": [{"tcp": tcp, "interval": "1s", "timeout": "2s"}]}),
            "checks[0].timeout",
        ),
        (
            json!({"port": 1, "checks": [{"tcp": tcp}, {"tcp": tcp, "interval": "50ms", "timeout": "10ms"}]}),
            "checks[1].interval",
        ),
        (
            json!({"port": 1, "checks": [{"tcp": tcp, "failure_threshold": 0}]}),
            "checks[0].failure_threshold",
        ),
        (json!({"port": 1, "checks": [{}]}), "checks[0]"),
        (
            json!({"port": 1, "checks": [{"http": "http://127.0.0.1:1/", "tcp": tcp}]}),
            "checks[0].tcp",
        ),
        (
            json!({"port": 1, "checks": [{"tcp": "nowhere"}]}),
            "checks[0].tcp",
        ),
        (
            json!({"port": 1, "checks": [{"exec": []}]}),
            "checks[0].exec",
        ),
        (
            json!({"port": 1, "checks": [{"http": "ftp://127.0.0.1/"}]}),
            "checks[0].http",
        ),
        (
            json!({"port": 1, "failover": {"retry": "0ms"}}),
            "failover.retry",
        ),
        // The path names the service; a body that names another is refused.
        (json!({"name": "api", "port": 1}), "name"),
        (json!({"name": 5, "port": 1}), "name"),
        // Refused by the JSON shape itself: the field is named all the same.
        (json!({"port": "x"}), "port"),
        (json!({"port": 70000}), "port"),
        (json!({"port": 1, "colour": "red"}), "colour"),
        (json!({"port": 1, "mode": "active"}), "mode"),
        (
            json!({"port": 1, "checks": [{"tcp": tcp, "interval": "soon"}]}),
            "checks[0].interval",
        ),
        (json!({"weight": 1}), "body"),
        (json!([1, 2]), "body"),
        (json!("web"), "body"),
    ] {
        assert_error(
            &format!("PUT /v1/services/web {body}"),
            put("/v1/services/web", body.clone()).await,
            StatusCode::BAD_REQUEST,
            Some(field),
        );
    }
    // The reason is serde's, without a position (it would point into the body as
    // re-read, not as sent).
    let (_, body) = put(
        "/v1/services/web",
        json!({"port": 1, "checks": [{"tcp": tcp, "interval": "soon"}]}),
    )
    .await;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("\"soon\"") && !error.contains(" at line "),
        "{body}"
    );
    // A path name that is no service name.
    assert_error(
        "a bad name in the path",
        put("/v1/services/no%20spaces", json!({"port": 1})).await,
        StatusCode::BAD_REQUEST,
        Some("name"),
    );
    // Not JSON, not declared JSON.
    assert_error(
        "a body that is not JSON",
        send(
            &ra,
            Request::builder()
                .method(Method::PUT)
                .uri("/v1/services/web")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{oops"))
                .expect("a valid request"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("body"),
    );
    assert_error(
        "a body not declared JSON",
        send_raw(&ra, Method::PUT, "/v1/services/web", r#"{"port": 1}"#, None).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    );
    // Nothing was registered.
    let (_, list) = get(&ra, "/v1/services").await;
    assert_eq!(list["services"], json!({}), "{list}");

    // Unknown services: 404 everywhere, including a service b runs but a does not.
    let (status, body) = send_json(
        &rb,
        Method::PUT,
        "/v1/services/remote",
        &json!({"port": 1}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually_get(&ra, "/v1/services", "a knows b's service", |v| {
        v["services"]["remote"]["instances"] == 1
    })
    .await;
    for (method, uri) in [
        (Method::GET, "/v1/services/nope"),
        (Method::DELETE, "/v1/services/nope"),
        (Method::DELETE, "/v1/services/remote"),
        (Method::PUT, "/v1/services/nope/drain"),
        (Method::DELETE, "/v1/services/nope/drain"),
        (Method::PUT, "/v1/services/remote/drain"),
        (Method::GET, "/v1/route/nope"),
        (Method::DELETE, "/v1/failover/nope"),
    ] {
        let what = format!("{method} {uri}");
        let (status, body) = call(&ra, method, uri).await;
        assert_error(&what, (status, body.clone()), StatusCode::NOT_FOUND, None);
        let service = uri.split('/').nth(3).expect("a service in the path");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("{service:?}"))),
            "{what}: the error names the service: {body}"
        );
    }
    assert_error(
        "failover of an unknown service",
        send_json(
            &ra,
            Method::POST,
            "/v1/failover/nope",
            &json!({"to": "us"}),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
    // With no local service, draining everything drains nothing.
    let (status, body) = call(&ra, Method::PUT, "/v1/drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"services": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_services_stay_listed_but_leave_route_answers() {
    let (a, b) = two("api-drain").await;
    let ra = api::router(ApiState::new(&a));
    let rb = api::router(ApiState::new(&b));
    for name in ["web", "api"] {
        let uri = format!("/v1/services/{name}");
        let (status, body) = send_json(&ra, Method::PUT, &uri, &json!({"port": 80}), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    eventually_get(&rb, "/v1/route/web", "b routes web to a", |r| {
        nodes(r) == ["a"]
    })
    .await;

    // One service.
    let (status, body) = call(&ra, Method::PUT, "/v1/services/web/drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"services": ["web"]}));
    let (_, detail) = get(&ra, "/v1/services/web").await;
    assert_eq!(detail["local"]["draining"], true, "{detail}");
    assert_eq!(detail["local"]["status"], "draining", "{detail}");
    let detail = eventually_get(&rb, "/v1/services/web", "b sees web draining", |d| {
        instance(d, "a").is_some_and(|i| i["status"] == "draining")
    })
    .await;
    assert!(detail["local"].is_null(), "{detail}");
    let route = eventually_get(&rb, "/v1/route/web", "b's route drops a", |r| {
        nodes(r).is_empty()
    })
    .await;
    assert!(
        route["rule"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no healthy instance")),
        "{route}"
    );
    let (_, list) = get(&ra, "/v1/services").await;
    assert_eq!(list["services"]["web"]["draining"], 1, "{list}");
    assert_eq!(list["services"]["api"]["draining"], 0, "{list}");
    let (_, api_detail) = get(&ra, "/v1/services/api").await;
    assert_eq!(api_detail["local"]["draining"], false, "{api_detail}");
    let (status, body) = call(&ra, Method::DELETE, "/v1/services/web/drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"services": ["web"]}));
    let (_, detail) = get(&ra, "/v1/services/web").await;
    assert_eq!(detail["local"]["draining"], false, "{detail}");
    eventually_get(&rb, "/v1/route/web", "a is back in b's route", |r| {
        nodes(r) == ["a"]
    })
    .await;

    // Every service.
    let (status, body) = call(&ra, Method::PUT, "/v1/drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"services": ["api", "web"]}));
    for name in ["web", "api"] {
        let uri = format!("/v1/services/{name}");
        eventually_get(&rb, &uri, &format!("b sees {name} draining"), |d| {
            instance(d, "a").is_some_and(|i| i["status"] == "draining")
        })
        .await;
    }
    let (status, body) = call(&ra, Method::DELETE, "/v1/drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"services": ["api", "web"]}));
    eventually_get(&rb, "/v1/services", "b sees both passing again", |v| {
        v["services"]["web"]["passing"] == 1 && v["services"]["api"]["passing"] == 1
    })
    .await;
    // Draining the same twice is fine.
    for _ in 0..2 {
        let (status, body) = call(&ra, Method::PUT, "/v1/services/api/drain").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_answers_follow_the_callers_place_and_the_query() {
    let (a, b, c) = three("api-route").await;
    let routers: Vec<Router> = [&a, &b, &c]
        .iter()
        .map(|m| api::router(ApiState::new(m)))
        .collect();
    for r in &routers {
        let (status, body) = send_json(
            r,
            Method::PUT,
            "/v1/services/web",
            &json!({"port": 80}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let ra = &routers[0];
    let all = eventually_get(ra, "/v1/services", "a knows three web instances", |v| {
        v["services"]["web"]["passing"] == 3
    })
    .await;
    assert_eq!(
        all["services"]["web"]["regions"]["eu"]["passing"], 2,
        "{all}"
    );
    assert_eq!(
        all["services"]["web"]["regions"]["us"]["passing"], 1,
        "{all}"
    );

    // This agent's place by default: its region only, its zone first.
    let (status, route) = get(ra, "/v1/route/web").await;
    assert_eq!(status, StatusCode::OK, "{route}");
    assert_eq!(route["service"], "web");
    assert_eq!(nodes(&route), ["a", "b"], "{route}");
    assert_eq!(route["rule"]["state"], "normal", "{route}");
    assert_eq!(route["rule"]["regions"], json!(["eu"]), "{route}");
    assert_eq!(route["instances"][0]["status"], "passing", "{route}");
    assert_eq!(route["instances"][0]["member"], "alive", "{route}");
    assert!(route["index"].as_u64() > Some(0), "{route}");

    for (query, expected) in [
        ("zone=eu-2", vec!["b", "a"]),
        ("region=us", vec!["c"]),
        ("region=us&zone=us-1", vec!["c"]),
        ("limit=1", vec!["a"]),
        ("limit=1000", vec!["a", "b"]),
        ("only_region=us", vec!["c"]),
        ("only_region=mars", vec![]),
        ("warning=true", vec!["a", "b"]),
        ("warning=false&key=anyone", vec!["a", "b"]),
        ("region=eu&zone=eu-2&limit=1", vec!["b"]),
    ] {
        let uri = format!("/v1/route/web?{query}");
        let (status, route) = get(ra, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {route}");
        assert_eq!(nodes(&route), expected, "{uri}: {route}");
    }
    let (_, restricted) = get(ra, "/v1/route/web?only_region=us").await;
    assert!(
        restricted["rule"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("restricted to region us")),
        "{restricted}"
    );
    // A caller region with no instance goes elsewhere at once.
    let (_, remote) = get(ra, "/v1/route/web?region=ap").await;
    assert_eq!(remote["rule"]["state"], "remote", "{remote}");
    assert_eq!(nodes(&remote).len(), 3, "{remote}");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=5000", "limit"),
        ("limit=x", "limit"),
        ("limit=-1", "limit"),
        ("limit=1&limit=2", "limit"),
        ("warning=maybe", "warning"),
        ("region=", "region"),
        ("zone=", "zone"),
        ("only_region=", "only_region"),
        ("colour=red", "colour"),
        ("regions=eu", "regions"),
    ] {
        let uri = format!("/v1/route/web?{query}");
        assert_error(
            &uri,
            get(ra, &uri).await,
            StatusCode::BAD_REQUEST,
            Some(field),
        );
    }
    let (_, body) = get(ra, "/v1/route/web?colour=red").await;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("unknown field `colour`") && error.contains("`only_region`"),
        "the reason lists the known parameters: {body}"
    );
    // The service is checked after the query.
    assert_error(
        "an unknown service",
        get(ra, "/v1/route/nope").await,
        StatusCode::NOT_FOUND,
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failover_sends_traffic_to_the_region_until_reset() {
    let (a, b, c) = three("api-failover").await;
    let states: Vec<ApiState> = [&a, &b, &c].iter().map(|m| ApiState::new(m)).collect();
    let routers: Vec<Router> = states.iter().map(|s| api::router(s.clone())).collect();
    let mut journal_a = states[0].journal().subscribe();
    for r in &routers {
        let (status, body) = send_json(
            r,
            Method::PUT,
            "/v1/services/web",
            &json!({"port": 80}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let ra = &routers[0];
    // Every agent, not only a: b's own route answer is read below.
    for r in &routers {
        eventually_get(
            r,
            "/v1/services",
            "every agent knows three web instances",
            |v| v["services"]["web"]["passing"] == 3,
        )
        .await;
    }

    let (status, forced) = send_json(
        ra,
        Method::POST,
        "/v1/failover/web",
        &json!({"to": "us"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_eq!(forced["service"], "web");
    assert_eq!(forced["rule"]["state"], "forced", "{forced}");
    assert_eq!(forced["rule"]["regions"], json!(["us"]), "{forced}");
    // The change is an event too (for the stream and the hooks), about a itself.
    let record = tokio::time::timeout(DEADLINE, async {
        loop {
            let record = journal_a.recv().await.expect("the journal runs");
            if record.kind() == EventKind::FailoverChanged {
                return record;
            }
        }
    })
    .await
    .expect("a journals a failover-changed event");
    match &record.detail {
        EventDetail::FailoverChanged {
            service,
            region,
            to,
            ..
        } => {
            assert_eq!((service.as_str(), region.as_str()), ("web", "eu"));
            assert_eq!(*to, RuleState::Forced);
        }
        other => panic!("not a failover change: {other:?}"),
    }
    assert_eq!(record.member.name, "a");
    let json = serde_json::to_value(&*record).expect("serializes");
    assert_eq!(json["event"], "failover-changed", "{json}");
    assert_eq!(json["to"], "forced", "{json}");
    let (_, route) = get(ra, "/v1/route/web").await;
    assert_eq!(route["rule"]["state"], "forced", "{route}");
    assert_eq!(nodes(&route), ["c"], "{route}");
    let (_, detail) = get(ra, "/v1/services/web").await;
    assert_eq!(detail["rule"]["state"], "forced", "{detail}");
    // Every caller region goes there; restricting to a region still answers for it.
    let (_, other) = get(ra, "/v1/route/web?region=us").await;
    assert_eq!(nodes(&other), ["c"], "{other}");
    let (_, only) = get(ra, "/v1/route/web?only_region=eu").await;
    assert_eq!(nodes(&only), ["a", "b"], "{only}");
    // Forcing is this agent's decision: b still routes by the rule.
    let (_, b_route) = get(&routers[1], "/v1/route/web").await;
    assert_eq!(b_route["rule"]["state"], "normal", "{b_route}");
    // Forcing to the same region again is fine; to another moves it.
    let (status, again) = send_json(
        ra,
        Method::POST,
        "/v1/failover/web",
        &json!({"to": "us"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let (status, back) = send_json(
        ra,
        Method::POST,
        "/v1/failover/web",
        &json!({"to": "eu"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["rule"]["regions"], json!(["eu"]), "{back}");

    for (body, field) in [
        (json!({"to": "mars"}), "to"),
        (json!({"to": ""}), "to"),
        (json!({"to": 5}), "to"),
        (json!({"to": "us", "for": "1h"}), "for"),
        (json!({"region": "us"}), "region"),
        (json!({}), "body"),
        (json!("us"), "body"),
    ] {
        assert_error(
            &format!("POST /v1/failover/web {body}"),
            send_json(ra, Method::POST, "/v1/failover/web", &body, None).await,
            StatusCode::BAD_REQUEST,
            Some(field),
        );
    }
    assert_error(
        "failover with no JSON body",
        call(ra, Method::POST, "/v1/failover/web").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    );
    // The refused requests left the force as it was.
    let (_, route) = get(ra, "/v1/route/web").await;
    assert_eq!(route["rule"]["state"], "forced", "{route}");

    let (status, reset) = call(ra, Method::DELETE, "/v1/failover/web").await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_eq!(reset["service"], "web");
    assert_eq!(reset["rule"]["state"], "normal", "{reset}");
    let (_, route) = get(ra, "/v1/route/web").await;
    assert_eq!(nodes(&route), ["a", "b"], "{route}");
    // A reset with nothing to reset is fine.
    let (status, body) = call(ra, Method::DELETE, "/v1/failover/web").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_service_changes_need_the_token_when_one_is_set() {
    let (a, b) = two("api-services-token").await;
    let token = ApiToken::new("0123456789abcdef").expect("a valid token");
    let ra = api::router(ApiState::new(&a).with_token(token.clone()));
    let rb = api::router(ApiState::new(&b));
    let (status, body) = send_json(
        &rb,
        Method::PUT,
        "/v1/services/web",
        &json!({"port": 1}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually_get(&ra, "/v1/route/web", "a routes web to b", |r| {
        nodes(r) == ["b"]
    })
    .await;

    let spec = json!({"port": 80});
    let failover = json!({"to": "us"});
    let requests: Vec<(Method, &str, Option<&Value>)> = vec![
        (Method::PUT, "/v1/self/state/color", None),
        (Method::DELETE, "/v1/self/state/color", None),
        (Method::PUT, "/v1/services/web", Some(&spec)),
        (Method::PUT, "/v1/services/web/drain", None),
        (Method::DELETE, "/v1/services/web/drain", None),
        (Method::PUT, "/v1/drain", None),
        (Method::DELETE, "/v1/drain", None),
        (Method::POST, "/v1/failover/web", Some(&failover)),
        (Method::DELETE, "/v1/failover/web", None),
        (Method::DELETE, "/v1/services/web", None),
    ];
    for (method, uri, json) in &requests {
        let what = format!("{method} {uri}");
        for wrong in [None, Some("0123456789abcdeX")] {
            let request = Request::builder()
                .method(method.clone())
                .uri(*uri)
                .header(header::CONTENT_TYPE, "application/json");
            let request = match wrong {
                Some(t) => request.header(header::AUTHORIZATION, format!("Bearer {t}")),
                None => request,
            };
            let body = json.map_or(String::new(), Value::to_string);
            let response = ra
                .clone()
                .oneshot(request.body(Body::from(body)).expect("a valid request"))
                .await
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE),
                Some(&header::HeaderValue::from_static("Bearer")),
                "{what}"
            );
        }
    }
    // Nothing changed.
    let (_, own) = get(&ra, "/v1/self/state").await;
    assert_eq!(own["entries"], json!({}), "{own}");
    let (_, list) = get(&ra, "/v1/services").await;
    assert_eq!(list["services"]["web"]["local"], false, "{list}");

    // With the token, each goes through, in order.
    for (method, uri, json) in &requests {
        let what = format!("{method} {uri}");
        let (status, body) = match json {
            Some(json) => send_json(&ra, method.clone(), uri, json, Some(token.as_str())).await,
            None => send_raw(&ra, method.clone(), uri, "blue", Some(token.as_str())).await,
        };
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        if *uri == "/v1/self/state/color" && *method == Method::PUT {
            let (_, own) = get(&ra, "/v1/self/state").await;
            assert_eq!(own["entries"]["color"]["value"], "blue", "{own}");
        }
    }
    // Reads stay open.
    for uri in [
        "/v1/self/state",
        "/v1/members/b/state",
        "/v1/services",
        "/v1/services/web",
        "/v1/route/web",
    ] {
        let (status, body) = get(&ra, uri).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_exec_checks_and_checks_of_other_hosts_by_default() {
    let (a, _b) = two("api-check-policy").await;
    let ra = api::router(ApiState::new(&a));
    for (check, field) in [
        (json!({"exec": ["/usr/bin/id"]}), "checks[0].exec"),
        (
            json!({"http": "http://169.254.169.254/latest/meta-data/"}),
            "checks[0].http",
        ),
        (
            json!({"http": "http://metadata.internal/"}),
            "checks[0].http",
        ),
        (json!({"tcp": "10.1.2.3:22"}), "checks[0].tcp"),
    ] {
        let spec = json!({"port": 1, "checks": [check]});
        let (status, body) = send_json(&ra, Method::PUT, "/v1/services/pwn", &spec, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["field"], field, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("api_allow_"), "{body}");
    }
    let (status, body) = get(&ra, "/v1/services/pwn").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing was registered: {body}"
    );
    // Checks of this host are still taken (the positive control).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound").to_string();
    let spec = json!({"port": 1, "checks": [
        {"tcp": addr},
        {"http": "http://localhost:1/health"},
    ]});
    let (status, body) = send_json(&ra, Method::PUT, "/v1/services/ok", &spec, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
