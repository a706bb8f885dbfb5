//! The local API under load: `GET /v1/members` of an agent that knows `--members`
//! members, hit by a load tool from Debian (`wrk`) with 100 concurrent connections.
//!
//! One real agent (QUIC, mutual TLS, the `lan` profile) serves its API; a second,
//! bare transport joins it with a table of phantom members (loopback addresses where
//! nothing listens), so the agent holds `--members` records without this machine
//! running that many agents (a thousand real agents in one process do not fit two
//! cores; see docs/performance.md). The phantoms go suspect and then failed as the agent
//! probes them; the answer's size and the work to build it are the same whatever their
//! status. With `wrk` on the PATH the bench runs it and prints its latency report;
//! otherwise it serves until `--duration` ends, for any other tool.
//!
//! ```sh
//! apt-get install wrk
//! cargo bench --bench api_load -- --members 1000 [--connections 100] [--duration 30]
//! ```

#[path = "support/wrk.rs"]
mod wrk;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::api::{self, ApiState};
use muster::proto::{NodeSigner, SwimConfig};
use muster::transport::{ClusterKey, Identity, Transport, TransportOptions};
use muster::wire::{ClusterId, MemberRecord, Message, Profile, Tags, encode_stream};
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "GET /v1/members of an agent with many members, under wrk")]
struct Args {
    /// Members the agent holds (itself and the joining transport included).
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Concurrent connections for wrk.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Where to serve the API.
    #[arg(long, default_value = "127.0.0.1:0")]
    api_addr: SocketAddr,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const CLUSTER: &str = "bench-api";

/// A phantom member: a name, a region and zone, two tags, a loopback address where
/// nothing listens (127.0.1.x / 127.0.2.x ... port 7946), alive at incarnation 1.
fn phantom(i: usize) -> MemberRecord {
    let addr = SocketAddr::from(([127, 1 + (i / 250) as u8, (i % 250) as u8 + 1, 9], 7946));
    let signer = NodeSigner::from_seed([(i % 251) as u8; 32]);
    signer.record(
        ClusterId::from_name(CLUSTER),
        Profile {
            name: format!("phantom-{i:05}").into(),
            addr,
            region: if i.is_multiple_of(2) {
                "eu-west"
            } else {
                "us-east"
            }
            .into(),
            zone: format!("zone-{}", i % 3).into(),
            tags: Tags::from_pairs([("role", "web"), ("build", "2026.11")]).expect("small"),
        },
        1,
        0,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.members >= 3, "--members must be at least 3");
    let key = ClusterKey::dev();
    let agent = Mesh::start(MeshConfig {
        swim: SwimConfig::lan(),
        cluster: CLUSTER.into(),
        ..MeshConfig::new(
            "agent",
            "127.0.0.1:0".parse().expect("valid"),
            TlsSource::ClusterKey(key.clone()),
        )
    })
    .await
    .context("starting the agent")?;

    // The injector: a bare transport that sends one join carrying the phantoms.
    let identity = Identity::from_cluster_key(&key, "injector")?;
    let (injector, _incoming) = Transport::bind(
        "127.0.0.1:0".parse().expect("valid"),
        &identity,
        CLUSTER,
        TransportOptions::default(),
    )?;
    let mut members = vec![NodeSigner::from_seed([255; 32]).record(
        ClusterId::from_name(CLUSTER),
        Profile {
            name: "injector".into(),
            addr: injector.local_addr(),
            region: "eu-west".into(),
            zone: "zone-0".into(),
            tags: Tags::new(),
        },
        1,
        0,
    )];
    members.extend((0..args.members - 2).map(phantom));
    let join = encode_stream(&Message::Join { members }, ClusterId::from_name(CLUSTER))?;
    injector
        .send_stream(agent.local_addr(), join)
        .await
        .context("sending the join")?;
    let started = Instant::now();
    while agent.members().len() < args.members {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the agent holds {} members, not {}",
            agent.members().len(),
            args.members
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let listener = tokio::net::TcpListener::bind(args.api_addr).await?;
    let addr = listener.local_addr()?;
    let router = api::router(ApiState::new(&agent));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}/v1/members");
    let (status, body) =
        tokio::task::spawn_blocking(move || api::client::get(addr, "/v1/members")).await??;
    anyhow::ensure!(status == 200, "GET /v1/members answered {status}");
    println!(
        "agent holds {} members; GET {url} answers {} bytes",
        args.members,
        body.len()
    );

    let duration = Duration::from_secs(args.duration);
    if !wrk::load(&url, args.connections, duration).await? {
        println!("serving {url} for {} s", args.duration);
        tokio::time::sleep(duration).await;
    }
    let counts = agent.members().iter().fold([0usize; 4], |mut c, m| {
        c[m.state as usize] += 1;
        c
    });
    println!("member states at the end (alive, suspect, failed, left): {counts:?}");
    agent.shutdown().await;
    Ok(())
}
