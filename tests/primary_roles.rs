//! Primary roles over real agents: six agents in three regions run `db` in `primary`
//! mode. Killing the primary makes another instance primary on every agent, with the
//! same answer everywhere; when the old primary comes back it takes the role back with
//! `failback = true`, and does not with `failback = false`. Every change is announced
//! as a `primary-changed` event.
//!
//! Every wait polls with a generous deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;

use muster::Mesh;
use muster::routing::services::{PrimaryChange, Services};
use muster::routing::spec::{ServiceMode, ServiceSpec};
use muster::wire::MemberState;
use support::eventually_async;
use support::meshes::{all_alive, describe, start};

struct Agent {
    mesh: Mesh,
    services: Services,
}

/// `db` in primary mode with this priority.
fn db(priority: u32, failback: bool) -> ServiceSpec {
    ServiceSpec {
        mode: ServiceMode::Primary,
        priority,
        failback,
        ..ServiceSpec::new("db", 5432)
    }
}

const PLACES: [(&str, &str, &str, u32); 6] = [
    ("eu-a", "eu", "eu-1", 60),
    ("eu-b", "eu", "eu-2", 50),
    ("us-a", "us", "us-1", 40),
    ("us-b", "us", "us-2", 30),
    ("ap-a", "ap", "ap-1", 20),
    ("ap-b", "ap", "ap-2", 10),
];

async fn agent(cluster: &str, i: usize, failback: bool, seeds: Vec<SocketAddr>) -> Agent {
    let (name, region, zone, priority) = PLACES[i];
    let mesh = start(cluster, name, (region, zone), &[], seeds).await;
    let services = Services::start(&mesh, &[db(priority, failback)]).expect("valid service");
    Agent { mesh, services }
}

/// Each agent's answer for `db`'s primary (`None`: it names none).
fn primaries(agents: &[&Agent]) -> Vec<Option<String>> {
    agents
        .iter()
        .map(|a| a.services.primary("db").ok().map(|p| p.primary.node))
        .collect()
}

async fn all_agree_on(agents: &[&Agent], node: &str, what: &str) {
    eventually_async(
        what,
        || primaries(agents).iter().all(|p| p.as_deref() == Some(node)),
        || format!("{:?}", primaries(agents)),
    )
    .await;
}

async fn kill_the_primary_and_bring_it_back(cluster: &str, failback: bool) {
    let mut agents = Vec::new();
    for i in 0..PLACES.len() {
        let seeds = agents
            .first()
            .map(|a: &Agent| vec![a.mesh.local_addr()])
            .unwrap_or_default();
        agents.push(agent(cluster, i, failback, seeds).await);
    }
    let seed = agents[1].mesh.local_addr();
    let meshes: Vec<&Mesh> = agents.iter().map(|a| &a.mesh).collect();
    all_alive(&meshes).await;
    let all: Vec<&Agent> = agents.iter().collect();
    all_agree_on(
        &all,
        "eu-a",
        "every agent names eu-a (highest priority) primary",
    )
    .await;
    let mut changes = agents[2].services.subscribe_primaries();

    // Kill the primary without leaving.
    let old = agents.remove(0);
    old.services.shutdown();
    old.mesh.shutdown().await;
    let rest: Vec<&Agent> = agents.iter().collect();
    all_agree_on(&rest, "eu-b", "every survivor names eu-b primary").await;
    let change: PrimaryChange = loop {
        let c = changes.recv().await.expect("changes are announced");
        if c.primary.as_deref() == Some("eu-b") {
            break c;
        }
    };
    assert_eq!(change.service, "db");
    assert_eq!(change.previous.as_deref(), Some("eu-a"), "{change:?}");
    if !failback {
        let rest: Vec<&Agent> = agents.iter().collect();
        eventually_async(
            "without failback the new primary's claim reaches every agent",
            || {
                rest.iter().all(|a| {
                    a.services
                        .primary("db")
                        .is_ok_and(|p| p.primary.node == "eu-b" && p.claim > 0)
                })
            },
            || format!("{:?}", agents[1].services.primary("db")),
        )
        .await;
    }

    // The old primary comes back (a new process: same name, new address).
    let back = agent(cluster, 0, failback, vec![seed]).await;
    agents.insert(0, back);
    let all: Vec<&Agent> = agents.iter().collect();
    let meshes: Vec<&Mesh> = agents.iter().map(|a| &a.mesh).collect();
    eventually_async(
        "eu-a is back and alive everywhere, with its instance passing",
        || {
            meshes.iter().all(|m| {
                m.members()
                    .iter()
                    .filter(|x| x.name == "eu-a")
                    .all(|x| x.state == MemberState::Alive)
            }) && agents.iter().all(|a| {
                a.services
                    .catalog()
                    .services
                    .get("db")
                    .is_some_and(|v| v.iter().any(|i| i.node == "eu-a"))
            })
        },
        || describe(&meshes),
    )
    .await;
    if failback {
        all_agree_on(
            &all,
            "eu-a",
            "with failback, eu-a takes the role back everywhere",
        )
        .await;
    } else {
        // Give the cluster time to (wrongly) move the role: every agent has eu-a's
        // instance in its catalog, so an election that would move it already has.
        all_agree_on(&all, "eu-b", "without failback, eu-b keeps the role").await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(
            primaries(&all).iter().all(|p| p.as_deref() == Some("eu-b")),
            "eu-b still primary everywhere: {:?}",
            primaries(&all)
        );
    }
    for a in agents {
        a.services.shutdown();
        a.mesh.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_everywhere_and_takes_the_role_back_with_failback() {
    kill_the_primary_and_bring_it_back("primary-failback", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_failback_the_replacement_keeps_the_role_when_the_old_primary_returns() {
    kill_the_primary_and_bring_it_back("primary-no-failback", false).await;
}
