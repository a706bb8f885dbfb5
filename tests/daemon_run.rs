//! A whole agent in process through `muster::daemon::run`, as the binary starts one:
//! two dev agents on loopback join, answer on their API, and leave on a stop request;
//! a config that cannot work ends the run with the exit status the CLI documents.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use muster::daemon::settings::{AgentConfig, Listen};
use muster::daemon::{Listeners, RunError, Stop};
use tokio::net::TcpListener;

use support::{DEADLINE, POLL};

/// A dev agent's config on loopback, DNS off, `local` timing, joining `join`.
fn config(name: &str, bind: SocketAddr, join: Option<SocketAddr>) -> AgentConfig {
    AgentConfig {
        name: Some(name.into()),
        bind,
        dev: true,
        cluster: "daemon-run".into(),
        profile: "local".into(),
        dns_addr: Listen::Off,
        join: join.iter().map(ToString::to_string).collect(),
        ..AgentConfig::default()
    }
}

/// `GET path` on the agent's API, off the async runtime (the CLI's client blocks).
async fn get(api: SocketAddr, path: &'static str) -> (u16, String) {
    tokio::task::spawn_blocking(move || muster::api::client::get(api, path))
        .await
        .expect("the request task ran")
        .unwrap_or((0, String::new()))
}

/// Polls `GET /v1/members` on `api` until `alive` members are alive.
async fn wait_alive(api: SocketAddr, alive: usize) -> String {
    let start = tokio::time::Instant::now();
    loop {
        let (status, body) = get(api, "/v1/members?status=alive").await;
        if status == 200 {
            let members: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            if members.as_array().map(Vec::len) == Some(alive) {
                return body;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{alive} alive members not seen at {api}; last: {status} {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_run_in_process_join_and_leave_on_a_stop_request() {
    let free = |_| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (bind_a, bind_b) = (free(0), free(1));
    let api_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b) = (api_a.local_addr().unwrap(), api_b.local_addr().unwrap());
    let (stop_a, stop_rx_a) = Stop::channel();
    let (stop_b, stop_rx_b) = Stop::channel();
    let listeners = |api| Listeners {
        api: Some(api),
        dns: None,
    };
    let a = tokio::spawn(muster::daemon::run(
        config("a", bind_a, None),
        listeners(api_a),
        stop_rx_a,
    ));
    let b = tokio::spawn(muster::daemon::run(
        config("b", bind_b, Some(bind_a)),
        listeners(api_b),
        stop_rx_b,
    ));
    let seen = wait_alive(addr_a, 2).await;
    assert!(seen.contains("\"b\""), "{seen}");
    wait_alive(addr_b, 2).await;

    // A stop request: b leaves gracefully, its run ends without error, and a sees it
    // leave (not fail).
    stop_b.send("test").await.unwrap();
    let ended = tokio::time::timeout(DEADLINE, b)
        .await
        .expect("b's run ends");
    ended.expect("b's task ran").expect("b left without error");
    let start = tokio::time::Instant::now();
    loop {
        let (_, body) = get(addr_a, "/v1/members/b").await;
        if body.contains("\"left\"") {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "a never saw b leave: {body}");
        tokio::time::sleep(POLL).await;
    }
    stop_a.send("test").await.unwrap();
    tokio::time::timeout(DEADLINE, a)
        .await
        .expect("a's run ends")
        .expect("a's task ran")
        .expect("a left without error");
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_used_ends_the_run_as_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let bind = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = AgentConfig {
        data_dir: Some(file),
        ..config("c", bind, None)
    };
    let (_stop, stop) = Stop::channel();
    let ended = tokio::time::timeout(
        Duration::from_secs(60),
        muster::daemon::run(config, Listeners::default(), stop),
    )
    .await
    .expect("the run ends by itself");
    match ended {
        Err(e @ RunError::Start(_)) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains("data_dir"), "{e}");
        }
        other => panic!("expected a start error naming data_dir, got {other:?}"),
    }
}
