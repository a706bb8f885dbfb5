//! The API's mutating endpoints, token, body limits, event stream and metrics, over
//! real meshes on loopback: the router called without a server, and the event stream
//! over a real socket with the CLI's client.
//!
//! Every wait polls with a generous deadline; nothing asserts on a fixed sleep.

mod support;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use muster::Mesh;
use muster::api::client::{self, Call, SseMessage, StreamOutcome};
use muster::api::{self, ApiState, ApiToken};
use muster::wire::{MemberState, Tags};
use serde_json::{Value, json};
use support::eventually_async;
use support::meshes::{describe, start, three};
use support::router::{call, get, send, send_json};
use tower::ServiceExt;

/// Waits until every mesh holds `name` in `state`.
async fn all_see(meshes: &[&Mesh], name: &str, state: MemberState) {
    eventually_async(
        &format!("every mesh marks {name} {}", state.as_str()),
        || state_of(meshes, name).iter().all(|s| *s == Some(state)),
        || describe(meshes),
    )
    .await;
}

fn state_of(meshes: &[&Mesh], name: &str) -> Vec<Option<MemberState>> {
    meshes
        .iter()
        .map(|m| m.members().iter().find(|x| x.name == name).map(|x| x.state))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_set_and_deleted_and_spread_to_the_cluster() {
    let (a, b, c) = three("api-tags").await;
    let rb = api::router(ApiState::new(&b));
    let put_tags = |body: Value| {
        let rb = rb.clone();
        async move { send_json(&rb, Method::PUT, "/v1/self/tags", &body, None).await }
    };
    let change = json!({"set": {"env": "prod"}, "delete": ["tier", "absent"]});
    let (status, body) = put_tags(change.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"tags": {"env": "prod", "role": "web"}}));
    eventually_async(
        "a and c see b's new tags",
        || {
            [&a, &c].iter().all(|m| {
                m.members().iter().any(|x| {
                    x.name == "b"
                        && x.tags.get("env") == Some("prod")
                        && x.tags.get("tier").is_none()
                })
            })
        },
        || describe(&[&a, &c]),
    )
    .await;
    // The same change again changes nothing, so nothing is announced.
    let incarnation = |m: &Mesh| {
        m.members()
            .iter()
            .find(|x| x.name == "b")
            .map(|x| x.incarnation)
    };
    let before = incarnation(&b);
    let (status, body) = put_tags(change).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(incarnation(&b), before);

    // Bad changes are refused whole, naming the field; the tags stay as they were.
    for (body, field) in [
        (json!({"set": {"": "x"}}), "set"),
        (json!({"set": {"k": "x".repeat(600)}}), "set"),
        (json!({"set": {"k": "v"}, "delete": ["k"]}), "delete"),
        (json!({"set": {"k": 1}}), "set.k"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (status, answer) = put_tags(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let (_, me) = get(&rb, "/v1/self").await;
    assert_eq!(me["tags"], json!({"env": "prod", "role": "web"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_leave_marks_a_failed_member_left_and_refuses_others() {
    let (a, b, c) = three("api-force-leave").await;
    let ra = api::router(ApiState::new(&a));
    let (status, body) = call(&ra, Method::POST, "/v1/force-leave/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(&ra, Method::POST, "/v1/force-leave/b").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not failed")),
        "{body}"
    );

    c.shutdown().await;
    all_see(&[&a, &b], "c", MemberState::Dead).await;
    let (status, body) = call(&ra, Method::POST, "/v1/force-leave/c").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"name": "c", "status": "left"}));
    all_see(&[&a, &b], "c", MemberState::Left).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_answers_once_a_seed_answers_and_bad_bodies_name_their_field() {
    let seed = start("api-join", "seed", ("eu", "eu-1"), &[], vec![]).await;
    let newcomer = start("api-join", "newcomer", ("eu", "eu-1"), &[], vec![]).await;
    let router = api::router(ApiState::new(&newcomer));
    let (status, body) = send_json(
        &router,
        Method::POST,
        "/v1/join",
        &json!({"addresses": [seed.local_addr().to_string()]}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["joined"], true, "{body}");
    assert_eq!(body["via"], seed.local_addr().to_string(), "{body}");
    assert!(body["members"].as_u64().is_some_and(|n| n >= 1), "{body}");
    eventually_async(
        "the seed sees the newcomer",
        || state_of(&[&seed], "newcomer") == [Some(MemberState::Alive)],
        || describe(&[&seed]),
    )
    .await;

    for (body, status, field) in [
        (
            json!({"addresses": []}),
            StatusCode::BAD_REQUEST,
            Some("addresses"),
        ),
        (
            json!({"addresses": ["nowhere"]}),
            StatusCode::BAD_REQUEST,
            Some("addresses[0]"),
        ),
        (
            json!({"addresses": ["127.0.0.1:1", 5]}),
            StatusCode::BAD_REQUEST,
            Some("addresses[1]"),
        ),
        (
            json!({"seeds": ["127.0.0.1:1"]}),
            StatusCode::BAD_REQUEST,
            Some("seeds"),
        ),
        (json!([1, 2]), StatusCode::BAD_REQUEST, Some("body")),
    ] {
        let (got, answer) = send_json(&router, Method::POST, "/v1/join", &body, None).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["field"].as_str(), field, "{body}: {answer}");
    }
    // Not JSON at all, not declared JSON, and too large.
    let raw = |content_type: Option<&str>, body: Vec<u8>| {
        let mut r = Request::builder().method(Method::POST).uri("/v1/join");
        if let Some(ct) = content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body)).expect("a valid request")
    };
    let (status, body) = send(&router, raw(Some("application/json"), b"{oops".to_vec())).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body")),
        "{body}"
    );
    let (status, body) = send(&router, raw(None, b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let big = format!("{{\"addresses\": [\"{}\"]}}", "x".repeat(100_000));
    let (status, body) = send(&router, raw(Some("application/json"), big.into_bytes())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("65536")),
        "{body}"
    );
    // Nothing was lost: the newcomer is still in the cluster.
    assert_eq!(state_of(&[&seed], "newcomer"), [Some(MemberState::Alive)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_no_seed_answers_is_a_504_at_the_join_timeout_and_leaves_the_agent_unhealthy() {
    let lone = start("api-join-silent", "lone", ("eu", "eu-1"), &[], vec![]).await;
    let router = api::router(ApiState::new(&lone));
    // The first member of a new cluster, alone: healthy.
    let (status, body) = get(&router, "/v1/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let nowhere = silent.local_addr().expect("an address").to_string();
    let (status, body) = send_json(
        &router,
        Method::POST,
        "/v1/join",
        &json!({"addresses": [nowhere]}),
        None,
    )
    .await;
    // `local` timing gives up on an attempt after 2 s, well before the 10 s wait.
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no seed answered") && e.contains(&nowhere)),
        "{body}"
    );
    // Told to be in a cluster it has not reached: no longer healthy alone.
    let (status, body) = get(&router, "/v1/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not joined")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_through_the_api_is_graceful_and_happens_once() {
    let (a, b, c) = three("api-leave").await;
    let rc = api::router(ApiState::new(&c));
    // A body over the limit is refused before the handler, even where none is read.
    let huge = Request::builder()
        .method(Method::POST)
        .uri("/v1/leave")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, 1_000_000)
        .body(Body::from(vec![b' '; 1_000_000]))
        .expect("a valid request");
    let (status, body) = send(&rc, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(state_of(&[&a], "c"), [Some(MemberState::Alive)]);
    let (status, body) = call(&rc, Method::POST, "/v1/leave").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"left": true}));
    all_see(&[&a, &b], "c", MemberState::Left).await;
    let (status, body) = get(&rc, "/v1/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = call(&rc, Method::POST, "/v1/leave").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_changes_but_not_reads() {
    let mesh = start("api-token", "a", ("eu", "eu-1"), &[], vec![]).await;
    let token = "0123456789abcdef-secret";
    let router = api::router(ApiState::new(&mesh).with_token(ApiToken::new(token).expect("valid")));
    let change = json!({"set": {"k": "v"}});
    for given in [None, Some("wrong-token-0123456789")] {
        let request = {
            let mut r = Request::builder()
                .method(Method::PUT)
                .uri("/v1/self/tags")
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(t) = given {
                r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            r.body(Body::from(change.to_string()))
                .expect("a valid request")
        };
        let response = router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{given:?}");
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }
    let (status, _) = call(&router, Method::POST, "/v1/leave").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "leave needs the token too"
    );
    let (status, body) =
        send_json(&router, Method::PUT, "/v1/self/tags", &change, Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get(&router, "/v1/members").await;
    assert_eq!(status, StatusCode::OK, "reads stay open: {body}");
}

/// The `/metrics` text of a router.
async fn metrics_text(router: &axum::Router) -> String {
    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some(muster::metrics::CONTENT_TYPE)
    );
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("a body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_the_cluster() {
    let (a, b, c) = three("api-metrics").await;
    // With a hook, so its families are in the exposition too.
    let state = ApiState::new(&a);
    let hook = muster::hooks::HookConfig::command(&["member-failed"], &["true"]);
    let runner = std::sync::Arc::new(
        muster::hooks::HookRunner::spawn(&[hook], state.journal().subscribe()).expect("a hook"),
    );
    let router = api::router(state.with_metrics(runner.clone()));
    c.shutdown().await;
    eventually_async(
        "a marks c failed and its hook ran",
        || state_of(&[&a], "c") == [Some(MemberState::Dead)] && runner.stats()[0].delivered >= 1,
        || describe(&[&a, &b]),
    )
    .await;
    let text = metrics_text(&router).await;
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    assert_eq!(
        sample(
            &scrape,
            "muster_members",
            &[("status", "alive"), ("region", "eu")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &scrape,
            "muster_members",
            &[("status", "failed"), ("region", "us")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&scrape, "muster_probes_total", &[]).is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        sample(
            &scrape,
            "muster_messages_total",
            &[("direction", "out"), ("type", "ping")]
        )
        .is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        sample(&scrape, "muster_udp_bytes_total", &[("direction", "out")]).is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        sample(
            &scrape,
            "muster_quic_handshakes_total",
            &[("outcome", "ok")]
        )
        .is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        sample(
            &scrape,
            "muster_events_total",
            &[("event", "member-failed")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &scrape,
            "muster_dropped_input_total",
            &[("reason", "malformed")]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        sample(&scrape, "muster_hook_runs_total", &[("hook", "hook-0")]).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&scrape, "muster_hook_failures_total", &[("hook", "hook-0")]),
        Some(0.0),
        "{text}"
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "muster_probe_rtt_seconds")
        .expect("the rtt histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.iter().any(|b| b.count > 0.0), "{text}");
            assert!(
                buckets.windows(2).all(|w| w[0].count <= w[1].count),
                "cumulative: {text}"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // promtool, when Debian's `prometheus` package is installed, checks it too.
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    if let Err(e) = &promtool {
        eprintln!("promtool check metrics skipped: promtool not runnable ({e})");
    }
    if let Ok(mut child) = promtool {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Serves `router` on a loopback port; returns its address.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Reads events from the stream until `stop` holds for one (or `max` arrive).
async fn read_events(
    addr: SocketAddr,
    path: &str,
    last_id: Option<String>,
    stop: fn(&SseMessage) -> bool,
) -> Vec<SseMessage> {
    let path = path.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let outcome = client::follow_events(addr, Call::get(&path), last_id.as_deref(), |m| {
            let done = stop(&m);
            got.push(m);
            if done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("the stream opens");
        assert!(matches!(outcome, StreamOutcome::Ended), "{outcome:?}");
        got
    });
    tokio::time::timeout(support::DEADLINE, read)
        .await
        .expect("the awaited event arrives in time")
        .expect("the reader did not panic")
}

/// A dev-key mesh in `cluster` whose members that left are reaped after 2 s.
async fn quick_reaping(
    cluster: &str,
    name: &str,
    bind: SocketAddr,
    seeds: Vec<SocketAddr>,
) -> Mesh {
    use muster::agent::{MeshConfig, TlsSource};
    use muster::proto::SwimConfig;
    use muster::transport::ClusterKey;
    let config = MeshConfig {
        swim: SwimConfig {
            left_retention: Duration::from_secs(2),
            ..SwimConfig::local()
        },
        cluster: cluster.into(),
        seeds,
        ..MeshConfig::new(name, bind, TlsSource::ClusterKey(ClusterKey::dev()))
    };
    Mesh::start(config).await.expect("a mesh on loopback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_membership_event_kind_reaches_the_stream() {
    let any = support::meshes::loopback();
    let a = quick_reaping("api-kinds", "a", any, vec![]).await;
    let state = ApiState::new(&a);
    let addr = serve(api::router(state.clone())).await;
    let seeds = vec![a.local_addr()];
    // Every event from the start of the journal, until c is alive again after failing.
    let kinds = |events: &[SseMessage], member: &str| -> Vec<String> {
        let name = format!("\"name\":\"{member}\"");
        events
            .iter()
            .filter(|m| m.event.starts_with("member-") && m.data.contains(&name))
            .map(|m| m.event.clone())
            .collect()
    };

    let b = quick_reaping("api-kinds", "b", any, seeds.clone()).await;
    let c = quick_reaping("api-kinds", "c", any, seeds.clone()).await;
    all_see(&[&a], "b", MemberState::Alive).await;
    all_see(&[&a], "c", MemberState::Alive).await;
    b.set_tags(Tags::from_pairs([("role", "web")]).expect("small tags"))
        .await
        .expect("tags set");
    // c crashes, and comes back at the same address: suspected, failed, alive.
    let c_addr = c.local_addr();
    c.shutdown().await;
    all_see(&[&a], "c", MemberState::Dead).await;
    let c = quick_reaping("api-kinds", "c", c_addr, seeds.clone()).await;
    // b leaves, and is reaped 2 s later.
    b.leave().await.expect("b leaves");
    let reaped = |m: &SseMessage| m.event == "member-reaped" && m.data.contains("\"name\":\"b\"");
    let events = read_events(addr, "/v1/events?after=0", None, reaped).await;
    let b_kinds = kinds(&events, "b");
    assert_eq!(
        b_kinds,
        [
            "member-joined",
            "member-updated",
            "member-left",
            "member-reaped"
        ],
        "{events:?}"
    );
    let c_kinds = kinds(&events, "c");
    assert_eq!(
        c_kinds.first().map(String::as_str),
        Some("member-joined"),
        "{c_kinds:?}"
    );
    for kind in ["member-suspected", "member-failed", "member-alive"] {
        assert!(c_kinds.iter().any(|k| k == kind), "{kind} in {c_kinds:?}");
    }
    let position = |kind: &str| c_kinds.iter().position(|k| k == kind);
    assert!(
        position("member-suspected") < position("member-failed"),
        "{c_kinds:?}"
    );
    assert!(
        position("member-failed") < position("member-alive"),
        "{c_kinds:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_shows_a_failure_and_resumes_from_last_event_id() {
    let (a, _b, c) = three("api-events").await;
    let c_addr = c.local_addr().to_string();
    let state = ApiState::new(&a);
    let addr = serve(api::router(state.clone())).await;
    let is_c_failed =
        |m: &SseMessage| m.event == "member-failed" && m.data.contains("\"name\":\"c\"");
    let reader = tokio::spawn(read_events(addr, "/v1/events", None, is_c_failed));
    // The stream is open once the server counts a subscriber; the kill comes after.
    eventually_async(
        "the stream is subscribed",
        || state.journal().subscribers() > 0,
        String::new,
    )
    .await;
    let killed = tokio::time::Instant::now();
    c.shutdown().await;
    let events = reader.await.expect("reader");
    let took = killed.elapsed();
    eprintln!("kill to member-failed on the stream: {took:?}");
    let failed = events.last().expect("an event");
    assert!(is_c_failed(failed), "{events:?}");
    let record: Value = serde_json::from_str(&failed.data).expect("JSON data");
    assert_eq!(record["event"], "member-failed");
    assert_eq!(record["node"], "a");
    assert_eq!(record["member"]["status"], "failed");
    assert_eq!(record["member"]["addr"], c_addr);
    // The id is `run-seq`: the journal's run, then the event's number.
    let full_id = failed.id.clone().expect("an id");
    let (run, seq) = full_id.split_once('-').expect("run-seq");
    assert_eq!(run, state.journal().run());
    let id: u64 = seq.parse().expect("a numeric seq");
    assert_eq!(record["seq"], id);

    // Resuming just before it replays it first.
    let before = format!("{run}-{}", id - 1);
    let replay = read_events(addr, "/v1/events", Some(before), |_| true).await;
    assert_eq!(
        replay[0].id.as_deref(),
        Some(full_id.as_str()),
        "{replay:?}"
    );
    // The same with ?after= and a filter that only lets failures through.
    let filtered = read_events(addr, "/v1/events?after=0&event=member-failed", None, |_| {
        true
    })
    .await;
    assert_eq!(filtered[0].event, "member-failed", "{filtered:?}");
    // An id past anything this run numbered: told to resync.
    let reset = read_events(addr, "/v1/events", Some("999999".into()), |_| true).await;
    assert_eq!(reset[0].event, "reset", "{reset:?}");
    let gap: Value = serde_json::from_str(&reset[0].data).expect("JSON");
    assert_eq!(gap["reason"], "gap");
    assert_eq!(gap["after"], 999_999);
    // An id from another run of the agent (before a restart), even a small one: the
    // same, since its numbers mean nothing to this run.
    let reset = read_events(addr, "/v1/events", Some("zz-1".into()), |_| true).await;
    assert_eq!(reset[0].event, "reset", "{reset:?}");
    let restarted: Value = serde_json::from_str(&reset[0].data).expect("JSON");
    assert_eq!(restarted["reason"], "restarted");

    // A bad filter is a JSON 400 before any stream starts.
    let refused = tokio::task::spawn_blocking(move || {
        client::follow_events(
            addr,
            Call::get("/v1/events?event=member-exploded"),
            None,
            |_| ControlFlow::Break(()),
        )
    })
    .await
    .expect("joins")
    .expect("answers");
    match refused {
        StreamOutcome::Refused(400, body) => {
            assert!(body.contains("\"field\":\"event\""), "{body}")
        }
        other => panic!("{other:?}"),
    }
    // Closing the streams ends them (what the agent does before it stops its server).
    let open = tokio::spawn(read_events(addr, "/v1/events", None, |_| false));
    eventually_async(
        "the stream is subscribed",
        || state.journal().subscribers() > 0,
        String::new,
    )
    .await;
    state.close_streams();
    let nothing = tokio::time::timeout(Duration::from_secs(30), open)
        .await
        .expect("ends")
        .expect("reader");
    assert!(nothing.is_empty(), "{nothing:?}");
}
