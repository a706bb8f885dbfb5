//! Event hooks over real meshes on loopback: a command hook and a webhook hook both
//! receive the `member-failed` event of a crashed member (the webhook after a first
//! answer of 500, so its retry is exercised); and a command that outlives its timeout is
//! killed, counted, retried, and does not hold up another hook; and a member whose name
//! is a shell injection reaches command and webhook hooks as data, never as code.
//!
//! Every wait polls with a generous deadline (the machine may be loaded); nothing
//! asserts on a fixed sleep.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use muster::agent::Mesh;
use muster::api::{MemberView, Status};
use muster::backoff::Backoff;
use muster::events::journal::{EventDetail, EventRecord, Journal};
use muster::hooks::HookConfig;
use muster::hooks::{HookRunner, HookStats, RunnerOptions, USER_AGENT};
use muster::wire::{MAX_NAME_LEN, MemberState, Tags};
use serde_json::Value;
use support::{eventually_async, meshes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// Short waits between attempts, so retries happen within the test's patience.
fn fast() -> RunnerOptions {
    RunnerOptions {
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        ..RunnerOptions::default()
    }
}

async fn start(name: &str, zone: &str, seeds: Vec<SocketAddr>) -> Mesh {
    meshes::start("hooks", name, ("eu", zone), &[], seeds).await
}

/// A request the test webhook server received.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server: records each request, answers 500 to the first `fail_first`
/// of them and 200 afterwards.
async fn webhook_server(fail_first: usize) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        let mut answered = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut bytes = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            let (head, length) = loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    break (String::new(), 0);
                };
                if n == 0 {
                    break (String::new(), 0);
                }
                bytes.extend_from_slice(&buf[..n]);
                if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    bytes.drain(..end + 4);
                    break (head, length);
                }
            };
            while bytes.len() < length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                }
            }
            sink.lock()
                .expect("no panics holding it")
                .push(Received { head, body: bytes });
            let answer: &[u8] = if answered < fail_first {
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            answered += 1;
            let _ = stream.write_all(answer).await;
            let _ = stream.shutdown().await;
        }
    });
    (addr, received)
}

/// A command hook that writes each event's stdin to `DIR/SEQ.json` and its `MUSTER_*`
/// environment to `DIR/SEQ.env` (the JSON last, renamed into place, so a reader never
/// sees half a file).
fn recording_hook(dir: &Path, events: &[&str]) -> HookConfig {
    let script = r#"env | grep '^MUSTER_' > "$1/$MUSTER_SEQ.env" && cat > "$1/$MUSTER_SEQ.tmp" && mv "$1/$MUSTER_SEQ.tmp" "$1/$MUSTER_SEQ.json""#;
    let dir = dir.to_str().expect("a UTF-8 temp dir");
    HookConfig::command(events, &["sh", "-c", script, "sh", dir])
}

/// The recorded command-hook events in `dir`: (stdin JSON, environment) by seq.
fn recorded(dir: &Path) -> Vec<(Value, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("the temp dir exists")
        .flatten()
    {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let (Ok(json), Ok(env)) = (
            std::fs::read_to_string(&path),
            std::fs::read_to_string(path.with_extension("env")),
        ) else {
            continue;
        };
        if let Ok(value) = serde_json::from_str(&json) {
            found.push((value, env));
        }
    }
    found
}

fn is_failed_event_about(json: &Value, member: &str) -> bool {
    json["event"] == "member-failed" && json["member"]["name"] == member
}

fn env_var<'a>(env: &'a str, key: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_and_webhook_hooks_receive_a_crashed_members_failure() {
    let a = start("a", "eu-1", vec![]).await;
    let b = start("b", "eu-2", vec![a.local_addr()]).await;
    let c = start("c", "eu-3", vec![a.local_addr()]).await;
    let c_addr = c.local_addr();
    eventually_async(
        "three meshes see three alive members",
        || {
            [&a, &b, &c].iter().all(|m| {
                let members = m.members();
                members.len() == 3 && members.iter().all(|x| x.state == MemberState::Alive)
            })
        },
        || {
            format!(
                "a sees {:?}",
                a.members()
                    .iter()
                    .map(|m| m.name.to_string())
                    .collect::<Vec<_>>()
            )
        },
    )
    .await;

    let journal = Journal::start(&a);
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, received) = webhook_server(1).await;
    let mut webhook = HookConfig::webhook(
        &["member-failed"],
        &format!("http://{server}/alerts?src=muster"),
    );
    webhook.name = Some("alerts".into());
    webhook.headers.insert("X-Team".into(), "ops".into());
    let mut command = recording_hook(dir.path(), &["member-failed"]);
    command.name = Some("page-oncall".into());
    let runner = HookRunner::spawn_with(&[command, webhook], journal.subscribe(), fast())
        .expect("valid hooks");

    c.shutdown().await;

    let stats = |runner: &HookRunner| format!("{:?}", runner.stats());
    eventually_async(
        "the command hook records member-failed about c",
        || {
            recorded(dir.path())
                .iter()
                .any(|(json, _)| is_failed_event_about(json, "c"))
        },
        || stats(&runner),
    )
    .await;
    let (json, env) = recorded(dir.path())
        .into_iter()
        .find(|(json, _)| is_failed_event_about(json, "c"))
        .expect("found above");
    assert_eq!(json["node"], "a");
    assert_eq!(json["member"]["addr"], c_addr.to_string());
    assert_eq!(json["member"]["status"], "failed");
    assert_eq!(json["member"]["zone"], "eu-3");
    assert!(json["seq"].as_u64().is_some_and(|s| s >= 1), "{json}");
    assert!(json["time_ms"].as_u64().is_some_and(|t| t > 0), "{json}");
    let seq = json["seq"].to_string();
    for (key, expected) in [
        ("MUSTER_EVENT", "member-failed"),
        ("MUSTER_SEQ", seq.as_str()),
        ("MUSTER_NODE", "a"),
        ("MUSTER_MEMBER_NAME", "c"),
        ("MUSTER_MEMBER_ADDR", &c_addr.to_string()),
        ("MUSTER_MEMBER_STATUS", "failed"),
        ("MUSTER_MEMBER_REGION", "eu"),
        ("MUSTER_MEMBER_ZONE", "eu-3"),
    ] {
        assert_eq!(env_var(&env, key), Some(expected), "{key} in {env}");
    }
    assert!(
        env_var(&env, "MUSTER_MEMBER_INCARNATION").is_some(),
        "{env}"
    );

    // The webhook: the first POST is answered 500, the retry 200.
    let delivered = |received: &Mutex<Vec<Received>>| {
        received
            .lock()
            .expect("no panics holding it")
            .iter()
            .filter(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .is_ok_and(|json| is_failed_event_about(&json, "c"))
            })
            .count()
    };
    eventually_async(
        "the webhook receives member-failed about c twice (500, then 200)",
        || delivered(&received) >= 2,
        || stats(&runner),
    )
    .await;
    eventually_async(
        "the webhook hook counts one failure and one delivery",
        || {
            let s = &runner.stats()[1];
            s.delivered >= 1 && s.failures >= 1
        },
        || stats(&runner),
    )
    .await;
    let requests = received.lock().expect("no panics holding it").clone();
    let first = &requests[0];
    let head = first.head.to_ascii_lowercase();
    assert!(
        first
            .head
            .starts_with("POST /alerts?src=muster HTTP/1.1\r\n"),
        "{}",
        first.head
    );
    assert!(
        head.contains("content-type: application/json"),
        "{}",
        first.head
    );
    assert!(
        head.contains(&format!("user-agent: {}", USER_AGENT.to_ascii_lowercase())),
        "{}",
        first.head
    );
    assert!(head.contains("x-team: ops"), "{}", first.head);
    let body: Value = serde_json::from_slice(&first.body).expect("the body is JSON");
    assert_eq!(body["member"]["addr"], c_addr.to_string());
    assert_eq!(body["node"], "a");

    let [page, alerts]: [HookStats; 2] = runner.stats().try_into().expect("two hooks");
    assert_eq!(page.name, "page-oncall");
    assert_eq!(alerts.name, "alerts");
    assert_eq!((page.gave_up, alerts.gave_up), (0, 0));
    drop(runner);
    a.shutdown().await;
    b.shutdown().await;
}

/// A member name that runs three commands if a shell ever evaluates it (after `;`, in
/// `$(…)` and in backticks, with `${IFS}` for a space), each creating a marker file in
/// `dir`; a comment then hides quotes, pipes and redirections. Only characters the name
/// rules allow.
fn injection_name(dir: &Path) -> (String, [std::path::PathBuf; 3]) {
    let d = dir.display();
    let name = format!("x;touch${{IFS}}{d}/m1;$(touch {d}/m2)`touch {d}/m3` #'\"|>&<*");
    assert!(
        name.len() <= MAX_NAME_LEN,
        "{name:?} is over the name limit; use a shorter temp dir"
    );
    (name, ["m1", "m2", "m3"].map(|m| dir.join(m)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_name_with_shell_metacharacters_reaches_hooks_as_data_not_code() {
    // Under /tmp, so the marker paths leave the name room.
    let markers_dir = tempfile::Builder::new()
        .tempdir_in("/tmp")
        .expect("a temp dir");
    let (name, markers) = injection_name(markers_dir.path());
    let dir = tempfile::tempdir().expect("a temp dir");
    let records = dir.path().join("records");
    std::fs::create_dir(&records).expect("create");
    let names = dir.path().join("names");

    let cluster = "hooks-names";
    let a = meshes::start(cluster, "a", ("eu", "eu-1"), &[], vec![]).await;
    let journal = Journal::start(&a);
    // The recommended forms (docs/operations.md §6.5): the event on stdin and in the
    // environment, the variable quoted, never spliced into the script.
    let recording = recording_hook(&records, &["member-joined"]);
    let names_str = names.to_str().expect("a UTF-8 temp dir");
    let quoted = HookConfig::command(
        &["member-joined"],
        &[
            "/bin/sh",
            "-c",
            r#"printf '%s\n' "$MUSTER_MEMBER_NAME" >> "$1""#,
            "sh",
            names_str,
        ],
    );
    let (server, received) = webhook_server(0).await;
    let webhook = HookConfig::webhook(&["member-joined"], &format!("http://{server}/alerts"));
    let runner = HookRunner::spawn_with(&[recording, quoted, webhook], journal.subscribe(), fast())
        .expect("valid hooks");

    let x = meshes::start(cluster, &name, ("eu", "eu-2"), &[], vec![a.local_addr()]).await;
    meshes::all_alive(&[&a, &x]).await;
    let stats = |runner: &HookRunner| format!("{:?}", runner.stats());
    eventually_async(
        "every hook delivers x's member-joined",
        || runner.stats().iter().all(|s| s.delivered >= 1),
        || stats(&runner),
    )
    .await;

    // Each hook ran and got exactly the name.
    let (json, env) = recorded(&records)
        .into_iter()
        .find(|(json, _)| json["member"]["name"] != "a")
        .expect("the recording hook delivered");
    assert_eq!(json["event"], "member-joined");
    assert_eq!(json["member"]["name"], name.as_str());
    assert_eq!(env_var(&env, "MUSTER_MEMBER_NAME"), Some(name.as_str()));
    let written = std::fs::read_to_string(&names).expect("the quoted hook wrote");
    assert!(written.lines().any(|l| l == name), "{written:?}");
    let requests = received.lock().expect("no panics holding it").clone();
    for r in &requests {
        assert!(
            r.head.starts_with("POST /alerts HTTP/1.1\r\n"),
            "the URL is the configured one: {}",
            r.head
        );
    }
    assert!(
        requests.iter().any(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|body| body["member"]["name"] == name.as_str())
        }),
        "{requests:?}"
    );
    assert!(
        runner.stats().iter().all(|s| s.gave_up == 0),
        "{}",
        stats(&runner)
    );

    // …and none of them ran it.
    for m in &markers {
        assert!(!m.exists(), "{} exists: the name ran as code", m.display());
    }
    // Positive control: evaluated by a shell, the same name does create all three.
    // (`x` is not a command, so its status is a failure, after the injections ran.)
    std::process::Command::new("/bin/sh")
        .args(["-c", r#"eval "$1""#, "sh", &name])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh runs");
    for m in &markers {
        assert!(m.exists(), "the control did not create {}", m.display());
    }

    drop(runner);
    x.shutdown().await;
    a.shutdown().await;
}

/// A `member-failed` record about `member`, for feeding a runner by hand.
fn record(seq: u64, member: &str) -> Arc<EventRecord> {
    Arc::new(EventRecord {
        seq,
        detail: EventDetail::MemberFailed,
        node: "a".into(),
        time_ms: 1,
        member: MemberView {
            name: member.into(),
            addr: "127.0.0.1:7003".into(),
            region: "eu".into(),
            zone: "eu-1".into(),
            status: Status::Failed,
            incarnation: 0,
            tags: Tags::new(),
            status_changed_ms_ago: 0,
            rtt_ms: None,
            node_key: "00".repeat(32),
            availability: None,
        },
    })
}

fn process_gone(pid: u32) -> bool {
    // Gone, or a zombie no one has reaped yet: either way no longer running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_past_its_timeout_is_killed_retried_and_does_not_delay_others() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pids = dir.path().join("pids");
    let fast_dir = dir.path().join("fast");
    std::fs::create_dir(&fast_dir).expect("create");
    // Each attempt notes its pid, then sleeps far past the timeout (via a child, so the
    // process-group kill is what stops it).
    let script = format!("echo $$ >> '{}'; sleep 60; true", pids.display());
    let mut slow = HookConfig::command(&["member-failed"], &["sh", "-c", &script]);
    slow.name = Some("slow".into());
    slow.timeout = Duration::from_secs(3);
    slow.retries = 2;
    let quick = recording_hook(&fast_dir, &["*"]);
    let (tx, rx) = broadcast::channel(16);
    let runner = HookRunner::spawn_with(&[slow, quick], rx, fast()).expect("valid hooks");
    tx.send(record(1, "c")).expect("the runner listens");

    let stats = |runner: &HookRunner| format!("{:?}", runner.stats());
    eventually_async(
        "the quick hook delivers",
        || runner.stats()[1].delivered == 1,
        || stats(&runner),
    )
    .await;
    // The slow hook is still inside its first attempt: it did not hold up the quick one.
    assert_eq!(runner.stats()[0].failures, 0, "{}", stats(&runner));
    assert_eq!(recorded(&fast_dir).len(), 1);

    eventually_async(
        "the slow hook gives up after 3 timed-out attempts",
        || runner.stats()[0].gave_up == 1,
        || stats(&runner),
    )
    .await;
    let s = &runner.stats()[0];
    assert_eq!((s.runs, s.failures, s.delivered), (3, 3, 0), "{s:?}");
    let started: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("the slow hook wrote its pids")
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(started.len(), 3, "{started:?}");
    eventually_async(
        "every attempt of the slow hook was killed",
        || started.iter().all(|pid| process_gone(*pid)),
        || format!("{started:?}"),
    )
    .await;
}

/// `muster agent` as a process with a `[[hooks]]` command in its config file: a crashed
/// member's `member-failed` reaches the command, and `/metrics` counts the run.
#[test]
fn the_agent_runs_its_configured_hooks_and_counts_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("events.jsonl");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[[hooks]]\nname = \"record\"\nevents = [\"member-failed\"]\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\ntimeout = \"5s\"\n",
            out.display()
        ),
    )?;
    let config = config.display().to_string();
    let (a, api) = support::start_dev_api("a", None, &["--config", &config])?;
    let (mut b, _) = support::start_dev_api("b", Some(a.port), &[])?;
    support::eventually("a sees b", &[&a, &b], || a.saw("member joined", "b"))?;
    b.child.kill()?;
    support::eventually("the hook wrote b's failure", &[&a], || {
        std::fs::read_to_string(&out).is_ok_and(|t| {
            t.lines().any(|l| {
                serde_json::from_str::<Value>(l)
                    .is_ok_and(|v| v["event"] == "member-failed" && v["member"]["name"] == "b")
            })
        })
    })?;
    let (status, metrics) = muster::api::client::get(api, "/metrics")?;
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("muster_hook_runs_total{hook=\"record\"} ") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    Ok(())
}
