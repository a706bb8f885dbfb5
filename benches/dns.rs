//! DNS queries per second an agent answers on this machine, and their latency.
//!
//! Four agents in this process on loopback over real QUIC (`local` timing), on their own
//! addresses (127.0.0.2 to 127.0.0.5): `eu-a` and `eu-b` in `eu`, `us-a`, `ap-a`, each
//! running `web` (no health checks). `eu-a` serves DNS on 127.0.0.1. A load generator in
//! its own threads (`--sockets` UDP sockets, each keeping `--inflight` queries
//! outstanding, like a resolver with that many clients waiting) sends for `--duration`
//! seconds a mix of names: `web.service.muster.` A (two addresses) and SRV (two records
//! and two additional addresses), `web.service.us.muster.` A, `us-a.node.muster.` A,
//! and `nope.service.muster.` A (NXDOMAIN with the SOA). `--names a` sends only the
//! first. Every answer is checked for its id and response code; a query without an
//! answer after a second counts as lost and is replaced.
//!
//! The generator shares the machine's two cores with the agents: the figure is what
//! this machine answers to a client on the same machine, not the server's alone. The
//! per-source rate limit is off (every generator socket is one source, 127.0.0.1): the
//! figure is the server's capacity, not the limit's.
//!
//! ```sh
//! cargo bench --bench dns -- [--duration 10] [--sockets 2] [--inflight 32] [--names mix|a]
//! ```

#[path = "support/mesh.rs"]
mod mesh;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use muster::agent::Mesh;
use muster::dns::{DnsServer, DnsSockets, RateLimit};
use muster::routing::services::Services;
use muster::routing::spec::ServiceSpec;
use muster::wire::MemberState;

#[derive(Parser, Debug)]
#[command(about = "DNS queries per second answered by an agent, with latency")]
struct Args {
    /// Seconds of load (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// UDP sockets (one generator thread each).
    #[arg(long, default_value_t = 2)]
    sockets: usize,
    /// Queries kept outstanding per socket.
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    /// `mix` (five names, see the bench's docs) or `a` (`web.service.muster.` A only).
    #[arg(long, default_value = "mix")]
    names: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const CLUSTER: &str = "bench-dns";

/// One kind of query: its bytes (id 0) and the response code expected.
#[derive(Clone)]
struct Kind {
    bytes: Vec<u8>,
    rcode: ResponseCode,
}

fn kind(name: &str, rtype: RecordType, rcode: ResponseCode) -> anyhow::Result<Kind> {
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, rtype));
    Ok(Kind {
        bytes: m.to_vec()?,
        rcode,
    })
}

/// What one generator thread saw.
#[derive(Default)]
struct Tally {
    answered: u64,
    wrong: u64,
    lost: u64,
    latencies_us: Vec<u32>,
}

/// The wall clock, for a load generator's latencies (not protocol time).
#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// One socket: keeps `inflight` queries outstanding until `stop`, then waits for the
/// stragglers (up to the loss timeout). Latencies are recorded once `measure` is set.
fn generate(
    server: SocketAddr,
    kinds: &[Kind],
    inflight: usize,
    measure: &AtomicBool,
    stop: &AtomicBool,
) -> anyhow::Result<Tally> {
    const LOST_AFTER: Duration = Duration::from_secs(1);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    // Outstanding queries by id: (sent at, expected code); ids cycle, so a slot is
    // reused only 65,536 queries later, long after it was answered or lost.
    let mut outstanding: Vec<Option<(std::time::Instant, ResponseCode)>> = vec![None; 1 << 16];
    let mut open = 0usize;
    let mut next_id: u16 = 0;
    let mut next_kind = 0usize;
    let mut tally = Tally::default();
    let mut buf = [0u8; 2048];
    let mut send = |socket: &UdpSocket,
                    outstanding: &mut Vec<Option<(std::time::Instant, ResponseCode)>>,
                    open: &mut usize|
     -> anyhow::Result<()> {
        let k = &kinds[next_kind % kinds.len()];
        next_kind += 1;
        let mut bytes = k.bytes.clone();
        bytes[..2].copy_from_slice(&next_id.to_be_bytes());
        outstanding[usize::from(next_id)] = Some((now(), k.rcode));
        next_id = next_id.wrapping_add(1);
        *open += 1;
        socket.send(&bytes)?;
        Ok(())
    };
    let mut last_sweep = now();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping && open < inflight {
            send(&socket, &mut outstanding, &mut open)?;
        }
        if stopping && open == 0 {
            return Ok(tally);
        }
        match socket.recv(&mut buf) {
            Ok(n) if n >= 4 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                if let Some((sent, expected)) = outstanding[usize::from(id)].take() {
                    open -= 1;
                    let rcode = ResponseCode::from(0, buf[3] & 0x0f);
                    if rcode != expected {
                        tally.wrong += 1;
                    }
                    if measure.load(Ordering::Relaxed) {
                        tally.answered += 1;
                        let us = sent.elapsed().as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
            }
            Ok(_) => tally.wrong += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        if last_sweep.elapsed() >= Duration::from_millis(200) {
            last_sweep = now();
            for slot in outstanding.iter_mut() {
                if slot.is_some_and(|(sent, _)| sent.elapsed() > LOST_AFTER) {
                    *slot = None;
                    open -= 1;
                    tally.lost += 1;
                }
            }
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.sockets >= 1 && args.inflight >= 1,
        "--sockets and --inflight must be at least 1"
    );
    let places = [
        ("eu-a", "127.0.0.2", "eu", "eu-1", 1),
        ("eu-b", "127.0.0.3", "eu", "eu-2", 3),
        ("us-a", "127.0.0.4", "us", "us-1", 1),
        ("ap-a", "127.0.0.5", "ap", "ap-1", 2),
    ];
    let mut agents: Vec<(Mesh, Services)> = Vec::new();
    for (i, (name, ip, region, zone, weight)) in places.into_iter().enumerate() {
        let seeds = agents
            .first()
            .map(|(m, _)| vec![m.local_addr()])
            .unwrap_or_default();
        let bind = SocketAddr::new(ip.parse()?, 0);
        let mesh = mesh::start(CLUSTER, name, bind, (region, zone), seeds).await?;
        let mut web = ServiceSpec::new("web", 8080 + i as u16);
        web.weight = weight;
        let services = Services::start(&mesh, &[web])?;
        agents.push((mesh, services));
    }
    let (mesh, services) = &agents[0];
    let started = tokio::time::Instant::now();
    loop {
        let members = mesh.members();
        let all_alive = members.len() == 4 && members.iter().all(|m| m.state == MemberState::Alive);
        let catalog = services.catalog();
        if all_alive && catalog.services.get("web").is_some_and(|v| v.len() == 4) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the cluster did not settle: {} members, catalog {catalog:?}",
            members.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sockets = DnsSockets::bind("127.0.0.1:0".parse()?).await?;
    let dns = DnsServer::start(
        sockets,
        &mesh.view(),
        services.clone(),
        Duration::from_secs(5),
    )?
    .with_rate_limit(RateLimit::OFF);
    let server = dns.local_addr();

    let mut kinds = vec![kind(
        "web.service.muster.",
        RecordType::A,
        ResponseCode::NoError,
    )?];
    match args.names.as_str() {
        "a" => {}
        "mix" => kinds.extend([
            kind(
                "web.service.muster.",
                RecordType::SRV,
                ResponseCode::NoError,
            )?,
            kind(
                "web.service.us.muster.",
                RecordType::A,
                ResponseCode::NoError,
            )?,
            kind("us-a.node.muster.", RecordType::A, ResponseCode::NoError)?,
            kind(
                "nope.service.muster.",
                RecordType::A,
                ResponseCode::NXDomain,
            )?,
        ]),
        other => anyhow::bail!("--names must be mix or a, not {other:?}"),
    }
    let kinds = Arc::new(kinds);
    let measure = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..args.sockets)
        .map(|_| {
            let (kinds, measure, stop) = (kinds.clone(), measure.clone(), stop.clone());
            let inflight = args.inflight;
            std::thread::spawn(move || generate(server, &kinds, inflight, &measure, &stop))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = muster::process_stats::cpu_seconds();
    let window = now();
    measure.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    measure.store(false, Ordering::Relaxed);
    let elapsed = window.elapsed();
    let cpu = muster::process_stats::cpu_seconds() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for t in threads {
        let tally = t
            .join()
            .map_err(|_| anyhow::anyhow!("a generator panicked"))??;
        all.answered += tally.answered;
        all.wrong += tally.wrong;
        all.lost += tally.lost;
        all.latencies_us.extend(tally.latencies_us);
    }
    all.latencies_us.sort_unstable();
    let stats = dns.stats();
    let qps = all.answered as f64 / elapsed.as_secs_f64();
    println!(
        "dns bench: {} names, {} sockets x {} in flight, {:.1} s measured",
        kinds.len(),
        args.sockets,
        args.inflight,
        elapsed.as_secs_f64()
    );
    println!(
        "  answered           {:>10} ({qps:.0} queries/s)",
        all.answered
    );
    println!(
        "  latency ms         p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        percentile(&all.latencies_us, 0.50),
        percentile(&all.latencies_us, 0.99),
        percentile(&all.latencies_us, 0.999),
        percentile(&all.latencies_us, 1.0)
    );
    println!("  lost (>1 s)        {:>10}", all.lost);
    println!("  wrong code or id   {:>10}", all.wrong);
    println!(
        "  server: NOERROR {}  NXDOMAIN {}  other {}  truncated {}",
        stats.responses_with("NOERROR"),
        stats.responses_with("NXDOMAIN"),
        stats.responses() - stats.responses_with("NOERROR") - stats.responses_with("NXDOMAIN"),
        stats.truncated()
    );
    println!(
        "  process CPU        {:.2} s in the window ({:.0}% of 2 cores), agents and generator together",
        cpu,
        100.0 * cpu / elapsed.as_secs_f64() / 2.0
    );
    dns.shutdown().await;
    for (mesh, services) in agents {
        services.shutdown();
        mesh.shutdown().await;
    }
    Ok(())
}
