//! Failover figures on real agents: how long from the last healthy instance of a
//! service in the caller's region failing its health check until the route answer
//! points at another region, and from its recovery until traffic fails back; and how
//! many route answers per second the API serves.
//!
//! Six agents in this process on loopback over real QUIC (`local` timing), two per
//! region (`eu`, `us`, `ap`; `ap`'s input delayed 40 ms so it is measurably farther),
//! each running `web` with an HTTP health check against a server the bench turns
//! healthy or not. The checks use a 1 s interval and the default thresholds (two
//! results in a row); the failover rule is the default one (trigger `none-passing`,
//! action `nearest`, timeout 2 s, failback after 10 s). Each round breaks both `eu`
//! servers at once, polls `eu-a`'s route every 5 ms until it leaves `eu`, heals them,
//! and polls until it is back.
//!
//! Then the primary role: every agent also runs `db` in `primary` mode (priorities so
//! that `eu-b` is primary); each round crashes the primary's agent without leaving and
//! times how long until every other agent names the same new primary, then starts it
//! again (same name, new address) and waits for it to take the role back.
//!
//! ```sh
//! cargo bench --bench failover -- [--rounds 10] [--primary-kills 10] [--duration 10] [--connections 50]
//! ```
//! With `wrk` on the PATH, the route endpoint is also loaded over HTTP for `--duration`.

#[path = "support/mesh.rs"]
mod mesh;
#[path = "support/wrk.rs"]
mod wrk;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use muster::agent::Mesh;
use muster::api::{self, ApiState};
use muster::routing::HealthStatus;
use muster::routing::router::{RouteQuery, RuleState};
use muster::routing::services::Services;
use muster::routing::spec::{CheckSpec, ServiceMode, ServiceSpec};
use muster::wire::MemberState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Failover and failback times, and route answers per second")]
struct Args {
    /// Fail-over / fail-back rounds.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Primary kills.
    #[arg(long, default_value_t = 10)]
    primary_kills: usize,
    /// Seconds of HTTP load on the route endpoint (with wrk).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections for wrk.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const CLUSTER: &str = "bench-failover";

/// A health endpoint answering 200 while `healthy`, else 500.
async fn health_server(healthy: Arc<AtomicBool>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let ok = healthy.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(format!("http://{addr}/health"))
}

struct Agent {
    mesh: Mesh,
    services: Services,
    healthy: Arc<AtomicBool>,
}

/// Where each agent sits, and its `db` priority (`eu-b` highest).
const PLACES: [(&str, &str, &str, u32); 6] = [
    ("eu-a", "eu", "eu-1", 0),
    ("eu-b", "eu", "eu-2", 50),
    ("us-a", "us", "us-1", 40),
    ("us-b", "us", "us-2", 30),
    ("ap-a", "ap", "ap-1", 20),
    ("ap-b", "ap", "ap-2", 10),
];

/// Starts agent `i` of [`PLACES`] with `web` (checked at `url`) and `db`.
async fn start_agent(
    i: usize,
    url: &str,
    healthy: Arc<AtomicBool>,
    seeds: Vec<SocketAddr>,
) -> anyhow::Result<Agent> {
    let (name, region, zone, priority) = PLACES[i];
    let mesh = mesh::start(CLUSTER, name, "127.0.0.1:0".parse()?, (region, zone), seeds).await?;
    let mut check = CheckSpec::http(url);
    check.interval = Duration::from_secs(1);
    check.timeout = Duration::from_millis(500);
    let mut web = ServiceSpec::new("web", 8080);
    web.checks = vec![check];
    let db = ServiceSpec {
        mode: ServiceMode::Primary,
        priority,
        ..ServiceSpec::new("db", 5432)
    };
    let services = Services::start(&mesh, &[web, db]).context("start the services")?;
    Ok(Agent {
        mesh,
        services,
        healthy,
    })
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "{name:<44} p50 {:>6.2} s · p90 {:>6.2} s · max {:>6.2} s (n = {})",
        at(0.5),
        at(0.9),
        v[v.len() - 1],
        v.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut agents: Vec<Agent> = Vec::new();
    let mut urls = Vec::new();
    for i in 0..PLACES.len() {
        let seeds = agents
            .first()
            .map(|a| vec![a.mesh.local_addr()])
            .unwrap_or_default();
        let healthy = Arc::new(AtomicBool::new(true));
        let url = health_server(healthy.clone()).await?;
        agents.push(start_agent(i, &url, healthy, seeds).await?);
        urls.push(url);
    }
    for a in &agents[4..] {
        a.mesh.set_input_delay(Duration::from_millis(40));
    }
    let caller = agents[0].services.clone();
    let route = || caller.route("web", None, &RouteQuery::default());
    let start = Instant::now();
    loop {
        let c = caller.catalog();
        let ready = agents.iter().all(|a| {
            let m = a.mesh.members();
            m.len() == 6 && m.iter().all(|x| x.state == MemberState::Alive)
        }) && c
            .services
            .get("web")
            .is_some_and(|v| v.len() == 6 && v.iter().all(|i| i.status == HealthStatus::Passing))
            && matches!((c.region_rtt.get("us"), c.region_rtt.get("ap")), (Some(u), Some(a)) if a > u)
            && route().is_ok_and(|a| a.rule.state == RuleState::Normal);
        if ready {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "cluster not ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "6 agents, 3 regions, web passing everywhere after {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let poll = Duration::from_millis(5);
    let (mut failover, mut critical_seen, mut failback) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let t0 = Instant::now();
        for a in &agents[..2] {
            a.healthy.store(false, Ordering::Relaxed);
        }
        let mut seen_critical = None;
        loop {
            if seen_critical.is_none()
                && caller.catalog().services["web"]
                    .iter()
                    .filter(|i| i.region == "eu")
                    .all(|i| i.status == HealthStatus::Critical)
            {
                seen_critical = Some(t0.elapsed());
            }
            let answer = route()?;
            if answer.instances.first().is_some_and(|i| i.region != "eu") {
                anyhow::ensure!(
                    answer.instances[0].region == "us",
                    "failed over to {} rather than the nearest region",
                    answer.instances[0].region
                );
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round}: no failover in 60 s"
            );
            tokio::time::sleep(poll).await;
        }
        failover.push(t0.elapsed().as_secs_f64());
        critical_seen.push(seen_critical.unwrap_or_default().as_secs_f64());
        let t1 = Instant::now();
        for a in &agents[..2] {
            a.healthy.store(true, Ordering::Relaxed);
        }
        loop {
            let answer = route()?;
            if answer.rule.state == RuleState::Normal
                && answer.instances.first().is_some_and(|i| i.region == "eu")
            {
                break;
            }
            anyhow::ensure!(
                t1.elapsed() < Duration::from_secs(60),
                "round {round}: no failback in 60 s"
            );
            tokio::time::sleep(poll).await;
        }
        failback.push(t1.elapsed().as_secs_f64());
        println!(
            "round {round}: eu critical at the caller after {:.2} s, failed over after {:.2} s, failed back after {:.2} s",
            critical_seen[round], failover[round], failback[round]
        );
    }
    summary(
        "eu unhealthy → both eu instances critical at the caller",
        critical_seen,
    );
    summary("eu unhealthy → route points at us (default rule)", failover);
    summary("eu healthy again → route back to eu", failback);

    // Primary kills: eu-b holds `db`; crash it, time until every other agent names the
    // same new primary, start it again and wait until it has the role back everywhere.
    let named = |agents: &[Agent]| -> Vec<Option<String>> {
        agents
            .iter()
            .map(|a| a.services.primary("db").ok().map(|p| p.primary.node))
            .collect()
    };
    let mut agreed = Vec::new();
    for round in 0..args.primary_kills {
        let start = Instant::now();
        loop {
            if named(&agents).iter().all(|p| p.as_deref() == Some("eu-b")) {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "eu-b never primary everywhere"
            );
            tokio::time::sleep(poll).await;
        }
        let victim = agents.remove(1);
        let victim_healthy = victim.healthy.clone();
        let t0 = Instant::now();
        victim.services.shutdown();
        victim.mesh.shutdown().await;
        loop {
            let views = named(&agents);
            if views
                .iter()
                .all(|p| p.is_some() && *p == views[0] && p.as_deref() != Some("eu-b"))
            {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round}: no new primary agreed in 60 s"
            );
            tokio::time::sleep(poll).await;
        }
        agreed.push(t0.elapsed().as_secs_f64());
        println!(
            "kill {round}: every other agent names {} primary {:.2} s after eu-b crashed",
            named(&agents)[0].clone().unwrap_or_default(),
            agreed[round]
        );
        let seeds = vec![agents[0].mesh.local_addr()];
        let back = start_agent(1, &urls[1], victim_healthy, seeds).await?;
        agents.insert(1, back);
    }
    if !agreed.is_empty() {
        summary("primary crashed → new primary named by every agent", agreed);
    }

    // Route answers per second: the router alone, then over HTTP.
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(route()?);
    }
    let per_sec = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "in-process route answers: {per_sec:.0}/s on one thread ({:.2} µs each)",
        1e6 / per_sec
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let state = ApiState::with_services(&agents[0].mesh, caller.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, api::router(state)).await;
    });
    let url = format!("http://{addr}/v1/route/web");
    wrk::load(&url, args.connections, Duration::from_secs(args.duration)).await?;
    for a in agents {
        a.services.shutdown();
        a.mesh.shutdown().await;
    }
    Ok(())
}
