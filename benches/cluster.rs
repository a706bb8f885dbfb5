//! The cluster benchmark: N real agents in one process on 127.0.0.1, over QUIC with mutual
//! TLS and the default (`lan`) profile, joined through the first. It measures what users
//! compare membership systems by:
//!
//! - join: time until every agent lists N alive members, and until every agent lists N
//!   live members (alive or suspect, as memberlist's `NumMembers` counts them: with a
//!   slow node, some agent holds it suspect at almost every moment);
//! - false alarms over a steady window: suspicions or failures of live agents;
//! - join cost: UDP bytes each agent sent, on average, from its start until the join
//!   completed;
//! - cost in that window: UDP bytes and packets sent per agent per second (whole QUIC
//!   packets, as a packet capture sees them), process CPU seconds per agent per second,
//!   resident memory per agent;
//! - detection: one agent is dropped without leaving; for every other agent, when it
//!   marks it failed (first, median, p99, all).
//!
//! `--loss PERCENT` drops that share of every agent's outgoing UDP packets (the metered
//! socket's injected loss). `--slow-node DELAY` makes agent-1 handle all its input that
//! late, from its start (a CPU-starved or paused host): any suspicion of it is a false
//! alarm. Its own view is that late too, so the join and detection figures are those of
//! the other agents, and the slow agent's own times are reported apart. `--warmup SECS` waits after the join before the steady window, so first
//! contacts (a TLS handshake to each peer) are not counted as steady-state cost. `--api-addr ADDR` serves the first agent's HTTP API there
//! (for a load tool such as `wrk` during the steady window) and also measures the time
//! from the crash to the `member-failed` event on that agent's SSE stream
//! (`GET /v1/events`). Prints a table; `--json FILE` writes the same figures.
//!
//! ```sh
//! cargo bench --bench cluster -- --nodes 64 [--loss 10] [--slow-node 5s] [--warmup 70] [--duration 30] [--api-addr 127.0.0.1:7947] [--json out.json]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::process_stats::{cpu_seconds, rss_bytes};
use muster::proto::{Event, SwimConfig};
use muster::transport::ClusterKey;
use muster::wire::MemberState;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Real agents on loopback: join, false alarms, cost, detection")]
struct Args {
    /// Agents to start.
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// Percent of outgoing UDP packets dropped at every agent.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Agent-1 handles all its input this late (e.g. 1s, 5s).
    #[arg(long, value_parser = muster::duration::parse_duration)]
    slow_node: Option<Duration>,
    /// Seconds between the join and the steady window [default: nodes + 5, at most 70].
    #[arg(long)]
    warmup: Option<u64>,
    /// Seconds of steady state measured between the join and the crash.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Protocol profile.
    #[arg(long, default_value = "lan")]
    profile: String,
    /// Serve the first agent's HTTP API here (it is never the one crashed).
    #[arg(long)]
    api_addr: Option<std::net::SocketAddr>,
    /// Seconds the cluster may take to form before the run is abandoned.
    #[arg(long, default_value_t = 120)]
    join_patience: u64,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// How long after every agent lists N live members the benchmark still waits for every
/// agent to list N alive.
const JOIN_ALIVE_PATIENCE: Duration = Duration::from_secs(20);

/// Upper bound of every wait but the join's (`--join-patience`).
const PATIENCE: Duration = Duration::from_secs(120);

fn spread(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        v.get(((q * v.len() as f64).ceil() as usize).saturating_sub(1))
            .copied()
    };
    serde_json::json!({ "count": v.len(), "first": v.first(), "p50": rank(0.5), "p99": rank(0.99), "all": v.last() })
}

fn secs(v: &serde_json::Value, key: &str) -> String {
    v[key].as_f64().map_or("-".into(), |s| format!("{s:.2} s"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.nodes >= 3, "--nodes must be at least 3");
    let swim = SwimConfig::preset(&args.profile)?;
    let key = ClusterKey::dev();
    let config = |name: String, seeds| MeshConfig {
        swim: swim.clone(),
        cluster: "bench".into(),
        seeds,
        ..MeshConfig::new(
            &name,
            "127.0.0.1:0".parse().expect("valid"),
            TlsSource::ClusterKey(key.clone()),
        )
    };
    let rss_before = rss_bytes();
    // Every agent is alive until the crash: any suspicion or failure before it is false.
    // Suspicions (refuted later: they cost a refutation) and failures (a live agent
    // declared dead: the alarm that matters) are counted apart.
    let suspicions = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut listeners = Vec::new();
    let listen = |m: &Mesh, listeners: &mut Vec<tokio::task::JoinHandle<()>>| {
        let mut events = m.subscribe();
        let (suspicions, failures) = (suspicions.clone(), failures.clone());
        listeners.push(tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                match e {
                    Event::MemberSuspected(_) => suspicions.fetch_add(1, Ordering::Relaxed),
                    Event::MemberFailed(_) => failures.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        }));
    };

    // Join.
    let first = Mesh::start(config("agent-0".into(), vec![]))
        .await
        .context("starting agent-0")?;
    listen(&first, &mut listeners);
    let seed = first.local_addr();
    let join_started = Instant::now();
    let mut meshes = vec![first];
    for i in 1..args.nodes {
        let mesh = Mesh::start(config(format!("agent-{i}"), vec![seed]))
            .await
            .with_context(|| format!("starting agent-{i}"))?;
        if i == 1
            && let Some(delay) = args.slow_node
        {
            mesh.set_input_delay(delay);
        }
        listen(&mesh, &mut listeners);
        meshes.push(mesh);
    }
    // Starting an agent (its key, its certificate, its endpoint) is part of the join
    // time, as it is for a real cluster coming up; reported apart.
    let started_all = join_started.elapsed().as_secs_f64();
    let n = args.nodes;
    // With a slow node, its own view lags by its delay: the join is the others'.
    let slow_index = args.slow_node.map(|_| 1);
    let sees_all = |m: &Mesh, counts: fn(MemberState) -> bool| {
        m.members().iter().filter(|x| counts(x.state)).count() == n
    };
    let all_see_all = |meshes: &[Mesh], counts: fn(MemberState) -> bool| {
        meshes
            .iter()
            .enumerate()
            .all(|(i, m)| Some(i) == slow_index || sees_all(m, counts))
    };
    let alive = |s: MemberState| s == MemberState::Alive;
    let live = |s: MemberState| matches!(s, MemberState::Alive | MemberState::Suspect);
    // Every agent lists N live members (required, within --join-patience), then N alive
    // (for at most JOIN_ALIVE_PATIENCE more: a node kept suspect may never allow it).
    let (mut join_live, mut join_alive) = (None, None);
    while join_alive.is_none() {
        let elapsed = join_started.elapsed();
        if join_live.is_none() && all_see_all(&meshes, live) {
            join_live = Some(elapsed.as_secs_f64());
        }
        if all_see_all(&meshes, alive) {
            join_alive = Some(elapsed.as_secs_f64());
            join_live.get_or_insert(elapsed.as_secs_f64());
            break;
        }
        match join_live {
            None => anyhow::ensure!(
                elapsed < Duration::from_secs(args.join_patience),
                "the cluster did not form within {} s (--join-patience)",
                args.join_patience
            ),
            Some(t) if elapsed.as_secs_f64() > t + JOIN_ALIVE_PATIENCE.as_secs_f64() => break,
            Some(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let join_live = join_live.expect("the loop ends with the cluster formed");
    // What the join cost: UDP bytes every agent sent from its start until every agent
    // listed every other live (handshakes, join streams, the news of each join).
    let join_bytes_per_agent = meshes
        .iter()
        .map(|m| m.transport_stats().udp_bytes_out)
        .sum::<u64>() as f64
        / n as f64;
    // The slow agent's own view of the join: N live members, however late.
    let slow_join = match slow_index {
        Some(i) => {
            while !sees_all(&meshes[i], live) {
                anyhow::ensure!(
                    join_started.elapsed() < Duration::from_secs(args.join_patience),
                    "the slow agent did not list every agent within {} s (--join-patience)",
                    args.join_patience
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Some(join_started.elapsed().as_secs_f64())
        }
        None => None,
    };
    let show = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.2} s"));
    eprintln!(
        "{n} agents joined: all live after {join_live:.2} s, all alive after {}",
        show(join_alive)
    );
    let api = match args.api_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the API to {addr}"))?;
            let addr = listener.local_addr()?;
            let state = muster::api::ApiState::new(&meshes[0]);
            let router = muster::api::router(state.clone());
            tokio::spawn(async move { axum::serve(listener, router).await });
            eprintln!(
                "agent-0's API at http://{addr}/v1/members for the next {} s",
                args.duration
            );
            Some((addr, state))
        }
        None => None,
    };

    // Warm-up (first contacts), then the steady window: false alarms and cost.
    for m in &meshes {
        m.set_loss(args.loss / 100.0);
    }
    let warmup = args.warmup.unwrap_or((n as u64 + 5).min(70));
    eprintln!("warming up for {warmup} s");
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let udp = |meshes: &[Mesh]| {
        meshes.iter().fold((0u64, 0u64, 0u64), |(b, p, h), m| {
            let s = m.transport_stats();
            (
                b + s.udp_bytes_out,
                p + s.udp_packets_out,
                h + s.handshakes_ok,
            )
        })
    };
    let (bytes0, packets0, handshakes0) = udp(&meshes);
    let cpu0 = cpu_seconds();
    let window_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let window = window_started.elapsed().as_secs_f64();
    let false_suspicions = suspicions.load(Ordering::Relaxed);
    let false_failures = failures.load(Ordering::Relaxed);
    listeners.iter().for_each(|l| l.abort());
    let (bytes1, packets1, handshakes1) = udp(&meshes);
    let handshakes_per_agent = (handshakes1 - handshakes0) as f64 / n as f64;
    let cpu = cpu_seconds() - cpu0;
    let rss = rss_bytes();
    let per_agent_s = (n as f64) * window;
    let bytes_per_agent_s = (bytes1 - bytes0) as f64 / per_agent_s;
    let packets_per_agent_s = (packets1 - packets0) as f64 / per_agent_s;
    let cpu_per_agent_s = cpu / per_agent_s;
    let rss_per_agent = rss.saturating_sub(rss_before) as f64 / n as f64;

    // Crash: the last agent stops without leaving.
    let victim = meshes.pop().expect("at least three agents");
    let victim_name = victim.name().to_string();
    let mut waits = Vec::new();
    for m in &meshes {
        let mut events = m.subscribe();
        let name = victim_name.clone();
        waits.push(tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let Event::MemberFailed(info) = e
                    && info.name == name
                {
                    return Some(Instant::now());
                }
            }
            None
        }));
    }
    // The same crash as seen on agent-0's event stream, over HTTP: the stream is open
    // (subscribed) before the crash, and notes when the event arrives.
    let sse = match &api {
        Some((addr, state)) => {
            let (addr, name) = (*addr, victim_name.clone());
            let before = state.journal().subscribers();
            let task = tokio::task::spawn_blocking(move || {
                let mut seen = None;
                let _ = muster::api::client::follow_events(
                    addr,
                    muster::api::client::Call::get("/v1/events?event=member-failed"),
                    None,
                    |m| {
                        if m.data.contains(&format!("\"name\":\"{name}\"")) {
                            seen = Some(Instant::now());
                            std::ops::ControlFlow::Break(())
                        } else {
                            std::ops::ControlFlow::Continue(())
                        }
                    },
                );
                seen
            });
            while state.journal().subscribers() <= before {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some(task)
        }
        None => None,
    };
    let crashed_at = Instant::now();
    victim.shutdown().await;
    let (mut detected, mut slow_detected, mut missing) = (Vec::new(), None, 0);
    for (i, w) in waits.into_iter().enumerate() {
        match tokio::time::timeout(PATIENCE, w).await {
            Ok(Ok(Some(at))) if Some(i) == slow_index => {
                slow_detected = Some((at - crashed_at).as_secs_f64())
            }
            Ok(Ok(Some(at))) => detected.push((at - crashed_at).as_secs_f64()),
            _ => missing += 1,
        }
    }
    let sse_secs = match sse {
        Some(task) => match tokio::time::timeout(PATIENCE, task).await {
            Ok(Ok(Some(at))) => Some((at - crashed_at).as_secs_f64()),
            _ => None,
        },
        None => None,
    };
    // All at once: each may wait up to a second for its closing connections.
    let stopping: Vec<_> = meshes
        .into_iter()
        .map(|m| tokio::spawn(m.shutdown()))
        .collect();
    for s in stopping {
        let _ = s.await;
    }

    let detection = spread(detected);
    let report = serde_json::json!({
        "nodes": n,
        "profile": args.profile,
        "loss_percent": args.loss,
        "slow_node_secs": args.slow_node.map(|d| d.as_secs_f64()),
        "warmup_secs": warmup,
        "handshakes_per_agent_in_window": handshakes_per_agent,
        "join_secs": join_alive,
        "join_live_secs": join_live,
        "slow_agent_join_live_secs": slow_join,
        "slow_agent_detection_secs": slow_detected,
        "agents_started_secs": started_all,
        "steady_window_secs": window,
        "false_suspicions": false_suspicions,
        "false_failures": false_failures,
        "udp_bytes_per_agent_per_sec": bytes_per_agent_s,
        "join_udp_bytes_per_agent": join_bytes_per_agent,
        "udp_packets_per_agent_per_sec": packets_per_agent_s,
        "cpu_secs_per_agent_per_sec": cpu_per_agent_s,
        "rss_bytes_per_agent": rss_per_agent,
        "detection_secs": detection,
        "detection_missing": missing,
        "sse_member_failed_secs": sse_secs,
    });
    println!(
        "cluster benchmark · {n} agents · profile {} · loss {}% · slow node {}",
        args.profile,
        args.loss,
        args.slow_node
            .map_or("none".into(), |d| format!("agent-1, input {:?} late", d))
    );
    let who = if slow_join.is_some() {
        "every other agent"
    } else {
        "every agent"
    };
    println!(
        "  join ({who} lists {n} alive)   {} (the last agent started at {started_all:.2} s)",
        show(join_alive)
    );
    println!("  join ({who} lists {n} live)    {join_live:.2} s (alive or suspect)");
    println!(
        "  join cost                            {:.1} KiB sent per agent until all live (UDP, whole QUIC packets)",
        join_bytes_per_agent / 1024.0
    );
    if let Some(t) = slow_join {
        println!(
            "  (the slow agent, whose input is late, listed {n} live after {t:.2} s and marked the crash after {})",
            show(slow_detected)
        );
    }
    println!(
        "  crash -> marked failed               first {} · p50 {} · p99 {} · all {} ({} never)",
        secs(&detection, "first"),
        secs(&detection, "p50"),
        secs(&detection, "p99"),
        secs(&detection, "all"),
        missing
    );
    if let Some(t) = sse_secs {
        println!("  crash -> member-failed on agent-0's SSE stream   {t:.2} s");
    }
    println!(
        "  false alarms (join, warm-up, {window:.0} s window)   {false_failures} live agents marked failed · {false_suspicions} suspicions (refuted)"
    );
    println!(
        "  per agent                            {bytes_per_agent_s:.0} B/s · {packets_per_agent_s:.1} packets/s (UDP, whole QUIC packets) · {handshakes_per_agent:.1} handshakes in the window"
    );
    println!(
        "  per agent                            {:.4} CPU s/s · {:.1} MiB resident",
        cpu_per_agent_s,
        rss_per_agent / (1 << 20) as f64
    );
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
