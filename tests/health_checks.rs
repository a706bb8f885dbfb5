//! The health-check runner against real endpoints on loopback, started by each test: an
//! HTTP server whose answer the test switches (200, 500, 429, or no answer at all), a
//! TCP listener that is then closed, and programs with chosen exit codes or that outlive
//! their timeout. Also: services added and removed at runtime, a slow check that holds
//! up no other, and a stopped or dropped runner that stops its checks.
//!
//! Every wait polls the report with a generous deadline (the machine may be loaded);
//! nothing asserts on a fixed sleep or on how long something took.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use muster::routing::HealthStatus;
use muster::routing::check::{CheckState, HealthReport, HealthRunner};
use muster::routing::spec::{CheckSpec, ServiceSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The answer meaning "accept, read the request, never answer".
const SILENT: u16 = 0;

/// An HTTP server on loopback answering every request with the status the test set,
/// and a body naming it.
struct HttpServer {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
}

impl HttpServer {
    async fn start(status: u16) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let answer = status.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let status = answer.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
                    if status == SILENT {
                        // Hold the connection open without a word.
                        std::future::pending::<()>().await;
                    }
                    let body = format!("status {status}");
                    let answer = format!(
                        "HTTP/1.1 {status} Set By Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        HttpServer { addr, status }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// `check` every 500ms with a 500ms timeout, acting on every result.
fn quick(check: CheckSpec) -> CheckSpec {
    CheckSpec {
        interval: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
        success_threshold: 1,
        failure_threshold: 1,
        ..check
    }
}

fn service(name: &str, checks: Vec<CheckSpec>) -> ServiceSpec {
    ServiceSpec {
        checks,
        ..ServiceSpec::new(name, 8080)
    }
}

fn sh(script: &str) -> CheckSpec {
    quick(CheckSpec::exec(&["/bin/sh", "-c", script]))
}

/// Polls the report until `done` holds, and returns that report. Wakes on every
/// status change, and every 50ms besides: outputs and streaks change without a wake-up.
async fn until(
    rx: &mut watch::Receiver<HealthReport>,
    what: &str,
    mut done: impl FnMut(&HealthReport) -> bool,
) -> HealthReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = rx.borrow_and_update().clone();
        if done(&report) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {report:#?}"
        );
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await {
            panic!("{what}: the runner is gone");
        }
    }
}

/// The first check of `service`, if the service is there.
fn first<'a>(report: &'a HealthReport, service: &str) -> Option<&'a CheckState> {
    report.get(service).and_then(|s| s.checks.first())
}

/// Whether the first check of `service` has run and has `status`, with output starting
/// with `output`.
fn is(report: &HealthReport, service: &str, status: HealthStatus, output: &str) -> bool {
    first(report, service).is_some_and(|c| {
        c.last_run_ms.is_some() && c.status == status && c.output.starts_with(output)
    }) && report.status(service) == Some(status)
}

#[tokio::test]
async fn an_http_check_passes_on_2xx_fails_on_500_and_passes_again_after_its_thresholds() {
    let server = HttpServer::start(200).await;
    let check = CheckSpec {
        success_threshold: 2,
        failure_threshold: 2,
        ..quick(CheckSpec::http(&server.url()))
    };
    let runner = HealthRunner::spawn(&[service("web", vec![check])]).unwrap();
    let mut rx = runner.subscribe();
    let report = until(&mut rx, "web passes", |r| {
        is(r, "web", HealthStatus::Passing, "HTTP 200\nstatus 200")
    })
    .await;
    let check = first(&report, "web").unwrap();
    assert_eq!(check.target, format!("http {}", server.url()));

    server.set(500);
    let report = until(&mut rx, "web fails", |r| {
        is(r, "web", HealthStatus::Critical, "HTTP 500\nstatus 500")
    })
    .await;
    assert!(first(&report, "web").unwrap().consecutive_failures >= 2);

    server.set(204);
    let report = until(&mut rx, "web passes again", |r| {
        is(r, "web", HealthStatus::Passing, "HTTP 204")
    })
    .await;
    assert!(first(&report, "web").unwrap().consecutive_passes >= 2);
}

#[tokio::test]
async fn an_http_429_is_a_warning() {
    let server = HttpServer::start(429).await;
    let runner =
        HealthRunner::spawn(&[service("busy", vec![quick(CheckSpec::http(&server.url()))])])
            .unwrap();
    let mut rx = runner.subscribe();
    until(&mut rx, "busy warns", |r| {
        is(r, "busy", HealthStatus::Warning, "HTTP 429\nstatus 429")
    })
    .await;
}

#[tokio::test]
async fn an_http_server_that_stops_answering_times_out_to_critical() {
    let server = HttpServer::start(200).await;
    let check = CheckSpec {
        timeout: Duration::from_millis(200),
        ..quick(CheckSpec::http(&server.url()))
    };
    let runner = HealthRunner::spawn(&[service("web", vec![check])]).unwrap();
    let mut rx = runner.subscribe();
    until(&mut rx, "web passes", |r| {
        is(r, "web", HealthStatus::Passing, "HTTP 200")
    })
    .await;
    server.set(SILENT);
    until(&mut rx, "web times out", |r| {
        is(r, "web", HealthStatus::Critical, "timed out after 200ms")
    })
    .await;
}

#[tokio::test]
async fn a_tcp_check_fails_once_its_listener_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let check = quick(CheckSpec::tcp(&addr.to_string()));
    let runner = HealthRunner::spawn(&[service("db", vec![check])]).unwrap();
    let mut rx = runner.subscribe();
    until(&mut rx, "db passes", |r| {
        is(
            r,
            "db",
            HealthStatus::Passing,
            &format!("connected to {addr}"),
        )
    })
    .await;
    drop(listener);
    until(&mut rx, "db fails", |r| {
        is(
            r,
            "db",
            HealthStatus::Critical,
            &format!("cannot connect to {addr}"),
        )
    })
    .await;
}

#[tokio::test]
async fn exec_checks_pass_on_0_warn_on_1_and_fail_otherwise() {
    let runner = HealthRunner::spawn(&[
        service("ok", vec![sh("echo fine")]),
        service("degraded", vec![sh("echo disk 91% full; exit 1")]),
        service("down", vec![sh("echo gone >&2; exit 2")]),
        service(
            "missing",
            vec![quick(CheckSpec::exec(&["/nonexistent/check"]))],
        ),
        // A service is the worst of its checks.
        service("mixed", vec![sh("exit 0"), sh("exit 1")]),
    ])
    .unwrap();
    let mut rx = runner.subscribe();
    let report = until(&mut rx, "every exec check ran", |r| {
        is(r, "ok", HealthStatus::Passing, "exit status: 0\nfine")
            && is(
                r,
                "degraded",
                HealthStatus::Warning,
                "exit status: 1\ndisk 91% full",
            )
            && is(r, "down", HealthStatus::Critical, "exit status: 2\ngone")
            && is(r, "missing", HealthStatus::Critical, "cannot start")
            && r.status("mixed") == Some(HealthStatus::Warning)
    })
    .await;
    let mixed = report.get("mixed").unwrap();
    assert_eq!(mixed.checks[0].status, HealthStatus::Passing);
    assert_eq!(mixed.checks[1].status, HealthStatus::Warning);
}

#[tokio::test]
async fn an_exec_check_that_outlives_its_timeout_is_killed_and_critical() {
    let check = CheckSpec {
        timeout: Duration::from_millis(200),
        ..quick(CheckSpec::exec(&["sleep", "5"]))
    };
    let runner = HealthRunner::spawn(&[service("slow", vec![check])]).unwrap();
    let mut rx = runner.subscribe();
    until(&mut rx, "slow times out", |r| {
        is(
            r,
            "slow",
            HealthStatus::Critical,
            "timed out after 200ms; killed",
        )
    })
    .await;
}

#[tokio::test]
async fn services_added_and_removed_at_runtime_come_and_go_from_the_report() {
    let runner = HealthRunner::spawn(&[]).unwrap();
    let mut rx = runner.subscribe();
    assert!(runner.report().services.is_empty());

    // No checks: passing at once.
    runner.add(ServiceSpec::new("plain", 80)).unwrap();
    assert_eq!(runner.report().status("plain"), Some(HealthStatus::Passing));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    runner
        .add(service("db", vec![quick(CheckSpec::tcp(&addr))]))
        .unwrap();
    until(&mut rx, "db passes", |r| {
        is(r, "db", HealthStatus::Passing, "connected")
    })
    .await;
    let names: Vec<String> = runner.services().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["db", "plain"]);

    assert!(runner.remove("db"));
    until(&mut rx, "db is gone", |r| r.get("db").is_none()).await;
    assert!(!runner.remove("db"));
    assert_eq!(runner.report().status("plain"), Some(HealthStatus::Passing));

    let muster::field_error::FieldError { field, reason } =
        runner.add(service("bad name", vec![])).unwrap_err();
    assert_eq!(field, "name", "{reason}");
}

#[tokio::test]
async fn a_slow_check_holds_up_no_other() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let slow = CheckSpec {
        interval: Duration::from_secs(600),
        timeout: Duration::from_secs(600),
        ..CheckSpec::exec(&["sleep", "600"])
    };
    let fast = CheckSpec {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        ..quick(CheckSpec::tcp(&addr))
    };
    // Same service and another service: neither waits for the slow check.
    let runner = HealthRunner::spawn(&[
        service("mixed", vec![slow, fast.clone()]),
        service("fast", vec![fast]),
    ])
    .unwrap();
    let mut rx = runner.subscribe();
    let report = until(&mut rx, "the fast checks run three times", |r| {
        let mixed_fast = &r.get("mixed").unwrap().checks[1];
        let fast = first(r, "fast").unwrap();
        mixed_fast.consecutive_passes >= 3 && fast.consecutive_passes >= 3
    })
    .await;
    let mixed = report.get("mixed").unwrap();
    assert_eq!(mixed.checks[0].last_run_ms, None, "{mixed:?}");
    // Not run yet counts as critical.
    assert_eq!(mixed.status, HealthStatus::Critical);
    assert_eq!(report.status("fast"), Some(HealthStatus::Passing));
}

#[tokio::test]
async fn dropping_the_runner_stops_its_checks_and_closes_the_report() {
    let runner = HealthRunner::spawn(&[service("ok", vec![sh("exit 0")])]).unwrap();
    let mut rx = runner.subscribe();
    until(&mut rx, "ok passes", |r| {
        is(r, "ok", HealthStatus::Passing, "exit status: 0")
    })
    .await;
    drop(runner);
    // The channel closes once every check task is gone.
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        while rx.changed().await.is_ok() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the checks still run after the runner was dropped"
    );
}

/// Whether process `pid` still runs (a zombie, killed but not yet reaped, counts as
/// gone).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}

#[tokio::test]
async fn stopping_the_runner_kills_a_running_check_and_empties_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // Writes its pid, then becomes a long sleep with that pid.
    let script = format!(
        "echo $$ > '{}.tmp' && mv '{0}.tmp' '{0}' && exec sleep 600",
        pid_file.display()
    );
    let slow = CheckSpec {
        interval: Duration::from_secs(600),
        timeout: Duration::from_secs(600),
        ..CheckSpec::exec(&["/bin/sh", "-c", &script])
    };
    let runner = HealthRunner::spawn(&[service("slow", vec![slow])]).unwrap();
    let mut rx = runner.subscribe();
    let start = tokio::time::Instant::now();
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            break pid.trim().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the check never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(alive(&pid));
    runner.stop();
    assert!(runner.report().services.is_empty());
    assert!(runner.services().is_empty());
    until(&mut rx, "the report is empty", |r| r.services.is_empty()).await;
    while alive(&pid) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the check still runs after stop()"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The runner still takes services.
    runner.add(ServiceSpec::new("plain", 80)).unwrap();
    assert_eq!(runner.report().status("plain"), Some(HealthStatus::Passing));
}
