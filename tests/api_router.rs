//! The local HTTP API: the router called without a server (`tower::ServiceExt::oneshot`)
//! over real meshes on loopback, for every endpoint, filter and error; then `muster
//! agent` as a process, asked over a real socket with a hand-written HTTP/1.1 GET.
//!
//! Every wait polls with a generous deadline (the machine may be loaded); nothing
//! asserts on a fixed sleep.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::{Method, StatusCode};
use muster::agent::Mesh;
use muster::api::{self, ApiState};
use muster::transport::ClusterKey;
use muster::wire::MemberState;
use serde_json::{Value, json};
use support::meshes::{describe, start, three};
use support::router::{call, get};
use support::{DEADLINE, POLL, command, eventually, eventually_async, free_port, start_dev_api};
use tokio::time::Instant;

fn router(mesh: &Mesh) -> Router {
    api::router(ApiState::new(mesh))
}

/// The names in a `GET /v1/members` answer, in order.
async fn names(router: &Router, uri: &str) -> Vec<String> {
    let (status, body) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body.as_array()
        .unwrap_or_else(|| panic!("{uri}: an array: {body}"))
        .iter()
        .map(|m| m["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_lists_every_member_sorted_by_name_with_its_record() {
    let (a, b, c) = three("api-members").await;
    let router = router(&a);
    let (status, body) = get(&router, "/v1/members").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body.as_array().expect("an array");
    assert_eq!(list.len(), 3, "{body}");
    let expected = [
        (&a, "eu", "eu-1", json!({"role": "db"})),
        (&b, "eu", "eu-2", json!({"role": "web", "tier": "front"})),
        (&c, "us", "us-1", json!({"role": "web"})),
    ];
    for (member, (mesh, region, zone, tags)) in list.iter().zip(expected) {
        let name = mesh.name().as_str();
        assert_eq!(member["name"], name, "{body}");
        assert_eq!(member["addr"], mesh.advertise_addr().to_string(), "{name}");
        assert_eq!(member["region"], region, "{name}");
        assert_eq!(member["zone"], zone, "{name}");
        assert_eq!(member["status"], "alive", "{name}");
        assert_eq!(member["tags"], tags, "{name}");
        assert!(member["incarnation"].is_u64(), "{name}: {member}");
        let ago = member["status_changed_ms_ago"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: a number of ms: {member}"));
        assert!(
            ago < DEADLINE.as_millis() as u64 * 2,
            "{name}: {ago} ms ago"
        );
        // Unmeasured until a probe answers; a number of ms once measured.
        assert!(
            member["rtt_ms"].is_null() || member["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{name}: {member}"
        );
        let keys: Vec<&str> = member
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            11,
            "{name}: name, addr, region, zone, status, incarnation, tags, \
             status_changed_ms_ago, rtt_ms, node_key, availability: {keys:?}"
        );
        // The key its name is bound to: 32 bytes in hex, a different one per member.
        let key = member["node_key"].as_str().expect("a node key");
        assert!(
            key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: {member}"
        );
        let availability = &member["availability"];
        assert_eq!(availability["flaps"], 0, "{name}: {member}");
        assert!(
            availability["last_flap_ms_ago"].is_null(),
            "{name}: {member}"
        );
        for share in ["alive_share_1h", "alive_share_24h"] {
            let v = availability[share].as_f64().expect("a share");
            assert!((0.0..=1.0).contains(&v), "{name}: {share} {member}");
        }
        assert!(availability["observed_ms"].is_u64(), "{name}: {member}");
    }
    assert!(list[0]["rtt_ms"].is_null(), "no rtt to itself: {}", list[0]);

    // The age grows with the mesh's clock while the status stays put.
    let first = list[1]["status_changed_ms_ago"].as_u64().expect("a number");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (_, again) = get(&router, "/v1/members/b").await;
    if again["status"] == "alive" && again["incarnation"] == list[1]["incarnation"] {
        assert!(
            again["status_changed_ms_ago"].as_u64().expect("a number") >= first + 30,
            "{first} then {again}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_filters_by_status_region_zone_tags_and_name_glob() {
    let (a, _b, _c) = three("api-filters").await;
    let router = router(&a);
    for (uri, expected) in [
        ("/v1/members?status=alive", vec!["a", "b", "c"]),
        ("/v1/members?status=suspect", vec![]),
        ("/v1/members?status=failed", vec![]),
        ("/v1/members?status=left", vec![]),
        ("/v1/members?status=left&status=alive", vec!["a", "b", "c"]),
        ("/v1/members?region=eu", vec!["a", "b"]),
        ("/v1/members?region=us", vec!["c"]),
        ("/v1/members?region=asia", vec![]),
        ("/v1/members?region=eu&region=us", vec!["a", "b", "c"]),
        ("/v1/members?zone=eu-2", vec!["b"]),
        ("/v1/members?zone=eu-1&zone=us-1", vec!["a", "c"]),
        ("/v1/members?region=eu&zone=us-1", vec![]),
        ("/v1/members?tag=role:web", vec!["b", "c"]),
        ("/v1/members?tag=role:db", vec!["a"]),
        ("/v1/members?tag=role:web&tag=tier:front", vec!["b"]),
        ("/v1/members?tag=role:web&tag=tier:back", vec![]),
        ("/v1/members?tag=tier:", vec![]),
        ("/v1/members?tag=nope:web", vec![]),
        ("/v1/members?name=*", vec!["a", "b", "c"]),
        ("/v1/members?name=b", vec!["b"]),
        ("/v1/members?name=%3F", vec!["a", "b", "c"]),
        ("/v1/members?name=%3F%3F", vec![]),
        ("/v1/members?name=[ab]", vec![]),
        ("/v1/members?name=c*", vec!["c"]),
        (
            "/v1/members?status=alive&region=eu&tag=role:web&name=*",
            vec!["b"],
        ),
    ] {
        assert_eq!(names(&router, uri).await, expected, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_left_members_show_as_failed_and_left() {
    let (a, b, c) = three("api-statuses").await;
    c.shutdown().await;
    b.leave().await.expect("b leaves");
    eventually_async(
        "a sees c failed and b left",
        || {
            let members = a.members();
            let state = |n: &str| members.iter().find(|m| m.name == n).map(|m| m.state);
            state("b") == Some(MemberState::Left) && state("c") == Some(MemberState::Dead)
        },
        || describe(&[&a]),
    )
    .await;
    let router = router(&a);
    assert_eq!(names(&router, "/v1/members?status=failed").await, ["c"]);
    assert_eq!(names(&router, "/v1/members?status=left").await, ["b"]);
    assert_eq!(names(&router, "/v1/members?status=alive").await, ["a"]);
    let (_, c_view) = get(&router, "/v1/members/c").await;
    assert_eq!(c_view["status"], "failed", "{c_view}");
    let (_, cluster) = get(&router, "/v1/cluster").await;
    assert_eq!(cluster["members"], 3, "{cluster}");
    assert_eq!(cluster["live"], 1, "{cluster}");
    assert_eq!(
        cluster["by_status"],
        json!({"alive": 1, "suspect": 0, "failed": 1, "left": 1})
    );
    // A lone survivor of a cluster it started is still healthy.
    let (status, health) = get(&router, "/v1/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_self_and_unknown_member() {
    let (a, b, _c) = three("api-one").await;
    let router = router(&a);
    let (status, body) = get(&router, "/v1/members/b").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "b");
    assert_eq!(body["addr"], b.advertise_addr().to_string());
    assert_eq!(body["tags"], json!({"role": "web", "tier": "front"}));

    let (status, me) = get(&router, "/v1/self").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "a");
    assert_eq!(me["addr"], a.advertise_addr().to_string());
    assert_eq!(me["status"], "alive");
    assert!(me["rtt_ms"].is_null(), "{me}");

    let (status, body) = get(&router, "/v1/members/zed").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, json!({"error": "no member named \"zed\""}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_counts_by_status_and_region_and_digests_agree() {
    let (a, b, c) = three("api-cluster").await;
    let (ra, rb) = (router(&a), router(&b));
    let (status, body) = get(&ra, "/v1/cluster").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "a");
    assert_eq!(body["members"], 3);
    assert_eq!(body["live"], 3);
    assert_eq!(
        body["by_status"],
        json!({"alive": 3, "suspect": 0, "failed": 0, "left": 0})
    );
    assert_eq!(
        body["by_region"],
        json!({
            "eu": {"alive": 2, "suspect": 0, "failed": 0, "left": 0},
            "us": {"alive": 1, "suspect": 0, "failed": 0, "left": 0},
        })
    );
    // A healthy agent on an idle loopback cluster: score 0 (it is a number either way).
    assert!(body["health_score"].is_u64(), "{body}");
    let digest = body["digest"].as_str().expect("a hex string");
    assert_eq!(digest.len(), 16, "{digest}");
    assert!(digest.chars().all(|ch| ch.is_ascii_hexdigit()), "{digest}");

    // Agents that agree on the membership show the same digest; an agent that sees a
    // change shows another.
    let before = digest.to_owned();
    let mut matched = false;
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        let (_, x) = get(&ra, "/v1/cluster").await;
        let (_, y) = get(&rb, "/v1/cluster").await;
        if x["digest"] == y["digest"] {
            matched = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(matched, "a and b never showed the same digest");
    c.shutdown().await;
    eventually_async(
        "a sees c failed",
        || {
            a.members()
                .iter()
                .any(|m| m.name == "c" && m.state == MemberState::Dead)
        },
        || describe(&[&a]),
    )
    .await;
    let (_, after) = get(&ra, "/v1/cluster").await;
    assert_ne!(after["digest"], before.as_str(), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_ok_when_joined_and_503_when_not_joined_or_leaving() {
    // The first member of a new cluster, with no seeds: healthy on its own.
    let solo = start("api-health-solo", "solo", ("eu", "eu-1"), &[], vec![]).await;
    let (status, body) = get(&router(&solo), "/v1/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert!(body.get("reason").is_none(), "{body}");
    assert!(body["health_score"].is_u64(), "{body}");
    // The same, but meant to join a cluster whose seed names did not resolve yet: alone
    // is not healthy.
    let waiting = ApiState::new(&solo);
    waiting.expect_peers();
    let (status, body) = get(&api::router(waiting), "/v1/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Seeds that never answer: not joined.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let nowhere = silent.local_addr().expect("an address");
    let lonely = start(
        "api-health-lonely",
        "lonely",
        ("eu", "eu-1"),
        &[],
        vec![nowhere],
    )
    .await;
    let (status, body) = get(&router(&lonely), "/v1/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not joined")),
        "{body}"
    );

    // Joined through a seed: healthy once it sees another live member.
    let seed = start("api-health", "seed", ("eu", "eu-1"), &[], vec![]).await;
    let joiner = start(
        "api-health",
        "joiner",
        ("eu", "eu-1"),
        &[],
        vec![seed.local_addr()],
    )
    .await;
    let state = ApiState::new(&joiner);
    let router = api::router(state.clone());
    eventually_async(
        "joiner sees seed",
        || joiner.members().iter().any(|m| m.name == "seed"),
        || describe(&[&joiner]),
    )
    .await;
    let (status, body) = get(&router, "/v1/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Leaving: 503 from the moment the agent says so, while the mesh still runs.
    state.set_leaving();
    let (status, body) = get(&router, "/v1/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "leaving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_naming_the_field() {
    let mesh = start("api-errors", "a", ("eu", "eu-1"), &[], vec![]).await;
    let router = router(&mesh);
    for (uri, field, fragment) in [
        (
            "/v1/members?status=dead",
            "status",
            "unknown status \"dead\"",
        ),
        ("/v1/members?status=", "status", "unknown status"),
        ("/v1/members?tag=role", "tag", "expected key:value"),
        ("/v1/members?tag=:web", "tag", "expected key:value"),
        ("/v1/members?name=a&name=b", "name", "only once"),
        (
            "/v1/members?colour=red",
            "colour",
            "unknown query parameter",
        ),
        // A name that does not decode to UTF-8.
        ("/v1/members/%FF", "path", "bad path segment"),
        ("/v1/members/%FF/state", "path", "bad path segment"),
    ] {
        let (status, body) = get(&router, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["field"], field, "{uri}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(fragment)),
            "{uri}: {body}"
        );
        assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{uri}: {body}");
    }

    for uri in ["/v1/nothing", "/", "/v2/members", "/v1/members/a/extra"] {
        let (status, body) = get(&router, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(
            body,
            json!({"error": format!("no such endpoint: {uri}")}),
            "{uri}"
        );
    }

    for (method, uri) in [
        (Method::POST, "/v1/members"),
        (Method::DELETE, "/v1/members/a"),
        (Method::PUT, "/v1/self"),
        (Method::POST, "/v1/health"),
        (Method::PATCH, "/v1/cluster"),
    ] {
        let (status, body) = call(&router, method.clone(), uri).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {body}"
        );
        assert_eq!(
            body,
            json!({"error": format!("method {method} is not allowed here")}),
            "{method} {uri}"
        );
    }
}

/// A minimal HTTP/1.1 GET over a plain socket: returns the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).context("a UTF-8 answer")?;
    let (head, body) = text.split_once("\r\n\r\n").context("a header block")?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("a status line: {head}"))?;
    if head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"))
    {
        bail!("unexpected chunked body: {head}");
    }
    Ok((status, body.to_owned()))
}

#[test]
fn the_agent_serves_members_over_a_real_socket_and_stops_it_on_leave() -> Result<()> {
    let (a, api) = start_dev_api("a", None, &[])?;
    let (b, _) = start_dev_api("b", Some(a.port), &[])?;
    let list = || -> Result<Vec<Value>> {
        let (status, body) = http_get(api, "/v1/members")?;
        if status != 200 {
            bail!("status {status}: {body}");
        }
        let value: Value = serde_json::from_str(&body).context("members JSON")?;
        value.as_array().cloned().context("an array")
    };
    eventually("a's API lists a and b alive", &[&a, &b], || {
        list().is_ok_and(|members| {
            members.len() == 2
                && members[0]["name"] == "a"
                && members[1]["name"] == "b"
                && members.iter().all(|m| m["status"] == "alive")
        })
    })?;
    let (status, body) = http_get(api, "/v1/health")?;
    let health: Value = serde_json::from_str(&body).context("health JSON")?;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{body}");
    let (status, body) = http_get(api, "/v1/members?status=bogus")?;
    assert_eq!(status, 400, "{body}");

    // A graceful stop: the agent leaves, then its API closes, then it exits 0.
    let mut a = a;
    a.terminate()?;
    assert!(a.wait_exit()?.success(), "a exits 0\n{}", a.tail());
    assert!(
        a.first_field("HTTP API stopped", "message").is_some(),
        "{}",
        a.tail()
    );
    assert!(
        TcpStream::connect(api).is_err(),
        "nothing listens on the API address after exit"
    );
    Ok(())
}

#[test]
fn a_taken_api_port_is_a_clear_startup_error() -> Result<()> {
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let port = free_port().to_string();
    let out = command()
        .args(["agent", "--dev", "--profile", "local", "--name", "a"])
        .args(["--bind", &format!("127.0.0.1:{port}"), "--api-addr", &addr])
        .stdin(std::process::Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind the HTTP API to {addr}")),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_non_loopback_api_address_without_tls_is_refused_at_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, format!("{}\n", ClusterKey::generate()?))?;
    let port = free_port();
    let out = command()
        .args(["agent", "--profile", "local"])
        .args(["--name", "a", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--cluster-key", &key.display().to_string()])
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--api-addr", "0.0.0.0:0", "--dns-addr", "off"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`api_addr`"), "{stderr}");
    assert!(stderr.contains("api_tls_cert"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_the_limit_are_answered_503_until_one_ends() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let solo = start("api-streams", "solo", ("eu", "eu-1"), &[], Vec::new()).await;
    let router = api::router(ApiState::new(&solo).with_stream_limit(2));
    let open = |router: Router| async move {
        let request = Request::get("/v1/events")
            .body(Body::empty())
            .expect("a valid request");
        router.oneshot(request).await.expect("infallible")
    };
    let first = open(router.clone()).await;
    let second = open(router.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let (status, body) = get(&router, "/v1/events").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("event streams")),
        "{body}"
    );
    // A stream that ends gives its place back.
    drop(first);
    let third = open(router.clone()).await;
    assert_eq!(third.status(), StatusCode::OK);
    drop((second, third));
    solo.shutdown().await;
}
