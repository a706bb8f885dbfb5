//! The agent re-contacts its seeds while it sees fewer members than it once did. Here
//! the seed crashes, is declared failed and then forgotten (its tombstone reaped), and
//! comes back fresh at the same address knowing nobody: the core has no failed member
//! left to reconnect to and the seed no one to call, so only the seed re-contact (every
//! 30 s) brings the cluster back together. It also needs the connection to the crashed
//! seed dropped when it was declared failed, or the re-contact would go down a
//! connection the new seed does not know.

use std::time::Duration;

use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::proto::SwimConfig;
use muster::transport::ClusterKey;
use muster::wire::MemberState;
use tokio::time::Instant;

/// Above one seed re-contact period (30 s) plus detection, reaping and a join.
const DEADLINE: Duration = Duration::from_secs(90);

fn swim() -> SwimConfig {
    SwimConfig {
        // Forget failed members quickly, so nothing is left to reconnect to.
        dead_retention: Duration::from_secs(2),
        left_retention: Duration::from_secs(2),
        ..SwimConfig::local()
    }
}

async fn start(name: &str, bind: &str, seeds: Vec<std::net::SocketAddr>) -> Mesh {
    let config = MeshConfig {
        swim: swim(),
        cluster: "rejoin".into(),
        seeds,
        ..MeshConfig::new(
            name,
            bind.parse().expect("valid"),
            TlsSource::ClusterKey(ClusterKey::dev()),
        )
    };
    Mesh::start(config)
        .await
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"))
}

fn alive(mesh: &Mesh) -> usize {
    mesh.members()
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count()
}

fn known(mesh: &Mesh) -> usize {
    mesh.members().len()
}

async fn eventually(what: &str, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_forgot_everyone_rejoins_through_its_seeds() {
    let seed = start("seed", "127.0.0.1:0", vec![]).await;
    let seed_addr = seed.local_addr();
    let b = start("b", "127.0.0.1:0", vec![seed_addr]).await;
    eventually("seed and b see each other", || {
        alive(&seed) == 2 && alive(&b) == 2
    })
    .await;

    seed.shutdown().await;
    let took = eventually("b fails and then forgets the seed", || known(&b) == 1).await;
    println!("b forgot the crashed seed after {took:?}");

    let seed = start("seed", &seed_addr.to_string(), vec![]).await;
    let took = eventually("b rejoins the restarted seed", || {
        alive(&seed) == 2 && alive(&b) == 2
    })
    .await;
    println!("b rejoined the restarted seed {took:?} after it came back");
    seed.shutdown().await;
    b.shutdown().await;
}
