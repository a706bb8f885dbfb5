//! The agent re-contacts its seeds while it sees fewer members than it once did. Here
//! the seed crashes, is declared failed and then forgotten (its tombstone reaped), and
//! comes back fresh at the same address knowing nobody: the core has no failed member
//! left to reconnect to and the seed no one to call, so only the seed re-contact (every
//! 30 s) brings the cluster back together. It also needs the connection to the crashed
//! seed dropped when it was declared failed, or the re-contact would go down a
//! connection the new seed does not know.

mod support;

use std::time::Duration;

use muster::agent::{Mesh, MeshConfig};
use muster::proto::SwimConfig;
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

/// Starts an agent in `cluster` (one per test: tests run side by side). Retries while
/// the address is still held by a mesh that has just stopped in this process (its
/// connections drain before the socket is released).
async fn start(cluster: &str, name: &str, bind: &str, seeds: Vec<std::net::SocketAddr>) -> Mesh {
    let started = Instant::now();
    loop {
        let config = MeshConfig {
            swim: swim(),
            bind: bind.parse().expect("valid"),
            seeds: seeds.clone(),
            ..support::meshes::dev_config(cluster, name)
        };
        match Mesh::start(config).await {
            Ok(mesh) => return mesh,
            Err(e) if started.elapsed() < DEADLINE && e.to_string().contains("in use") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{name} did not start: {e}"),
        }
    }
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

/// Waits for `check`, within this file's [`DEADLINE`].
async fn eventually(what: &str, check: impl Fn() -> bool) -> Duration {
    support::eventually_within(DEADLINE, what, check, String::new).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_forgot_everyone_rejoins_through_its_seeds() {
    let seed = start("forgot", "seed", "127.0.0.1:0", vec![]).await;
    let seed_addr = seed.local_addr();
    let b = start("forgot", "b", "127.0.0.1:0", vec![seed_addr]).await;
    eventually("seed and b see each other", || {
        alive(&seed) == 2 && alive(&b) == 2
    })
    .await;

    seed.shutdown().await;
    let took = eventually("b fails and then forgets the seed", || known(&b) == 1).await;
    println!("b forgot the crashed seed after {took:?}");

    let seed = start("forgot", "seed", &seed_addr.to_string(), vec![]).await;
    let took = eventually("b rejoins the restarted seed", || {
        alive(&seed) == 2 && alive(&b) == 2
    })
    .await;
    println!("b rejoined the restarted seed {took:?} after it came back");
    seed.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_seed_is_down_keeps_retrying_and_joins_when_it_comes_up() {
    // A free port for the seed, which is not running yet.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let seed_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid");
    let b = start("down", "b", "127.0.0.1:0", vec![seed_addr]).await;
    // Let a few join attempts fail (the first retry comes after ~1 s, then 2 s, ...).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alive(&b), 1, "nobody to join yet");
    let seed = start("down", "seed", &seed_addr.to_string(), vec![]).await;
    let took = eventually("b joins once the seed is up", || {
        alive(&seed) == 2 && alive(&b) == 2
    })
    .await;
    println!("b joined {took:?} after the seed came up");
    seed.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_left_and_restarts_comes_back_alive_everywhere() {
    let seed = start("restart", "seed", "127.0.0.1:0", vec![]).await;
    let b = start("restart", "b", "127.0.0.1:0", vec![seed.local_addr()]).await;
    let c = start("restart", "c", "127.0.0.1:0", vec![seed.local_addr()]).await;
    eventually("three agree", || {
        [&seed, &b, &c].iter().all(|m| alive(m) == 3)
    })
    .await;
    let c_addr = c.local_addr();
    c.leave().await.expect("c leaves");
    let state_of_c = |m: &Mesh| {
        m.members()
            .iter()
            .find(|x| x.name == "c")
            .map(|x| (x.state, x.key))
    };
    eventually("c is left everywhere", || {
        [&seed, &b]
            .iter()
            .all(|m| state_of_c(m).is_some_and(|(s, _)| s == MemberState::Left))
    })
    .await;
    let old_key = state_of_c(&seed).expect("known").1;
    // Same name, same address, fresh state and (no data dir) a new node key: a name that
    // left is free, so the new key takes it at whatever incarnation it starts from.
    let c = start("restart", "c", &c_addr.to_string(), vec![seed.local_addr()]).await;
    let took = eventually("c is alive everywhere again", || {
        [&seed, &b].iter().all(|m| {
            state_of_c(m).is_some_and(|(s, key)| s == MemberState::Alive && key != old_key)
        }) && alive(&c) == 3
    })
    .await;
    println!("c came back alive {took:?} after restarting");
    for m in [seed, b, c] {
        m.shutdown().await;
    }
}
