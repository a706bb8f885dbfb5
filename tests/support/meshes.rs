//! In-process meshes on loopback for the API tests: dev key, `local` timing, a cluster
//! name per test so parallel tests never meet.

use std::net::SocketAddr;

use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::proto::SwimConfig;
use muster::transport::ClusterKey;
use muster::wire::{MemberState, Tags};

use super::eventually_async;

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("a valid address")
}

/// A dev-key mesh on loopback in `cluster`, in `region`/`zone`, with `tags`.
pub async fn start(
    cluster: &str,
    name: &str,
    place: (&str, &str),
    tags: &[(&str, &str)],
    seeds: Vec<SocketAddr>,
) -> Mesh {
    start_at(cluster, name, loopback(), place, tags, seeds).await
}

/// What every test mesh starts from: `name` in `cluster` (one per test, so tests running
/// side by side never meet) on loopback port 0, `local` timing, the identity `tls`.
/// Tests change the fields they need.
pub fn config(cluster: &str, name: &str, tls: TlsSource) -> MeshConfig {
    MeshConfig {
        swim: SwimConfig::local(),
        cluster: cluster.into(),
        ..MeshConfig::new(name, loopback(), tls)
    }
}

/// [`config`] with the development cluster key.
pub fn dev_config(cluster: &str, name: &str) -> MeshConfig {
    config(cluster, name, TlsSource::ClusterKey(ClusterKey::dev()))
}

/// Starts `config`; a mesh that cannot start fails the test, naming it.
pub async fn start_config(config: MeshConfig) -> Mesh {
    let (name, bind) = (config.name.clone(), config.bind);
    Mesh::start(config)
        .await
        .unwrap_or_else(|e| panic!("{name} did not start on {bind}: {e}"))
}

/// A dev-key mesh bound to `bind` in `cluster`, in `region`/`zone`, with `tags`.
pub async fn start_at(
    cluster: &str,
    name: &str,
    bind: SocketAddr,
    place: (&str, &str),
    tags: &[(&str, &str)],
    seeds: Vec<SocketAddr>,
) -> Mesh {
    start_config(MeshConfig {
        bind,
        seeds,
        region: place.0.into(),
        zone: place.1.into(),
        tags: Tags::from_pairs(tags.iter().copied()).expect("small tags"),
        ..dev_config(cluster, name)
    })
    .await
}

/// Three meshes: `a` (eu/eu-1, role=db) starts the cluster, `b` (eu/eu-2, role=web,
/// tier=front) and `c` (us/us-1, role=web) join through it. Returns once all three see
/// three alive members.
pub async fn three(cluster: &str) -> (Mesh, Mesh, Mesh) {
    let a = start(cluster, "a", ("eu", "eu-1"), &[("role", "db")], vec![]).await;
    let seeds = vec![a.local_addr()];
    let b = start(
        cluster,
        "b",
        ("eu", "eu-2"),
        &[("role", "web"), ("tier", "front")],
        seeds.clone(),
    )
    .await;
    let c = start(cluster, "c", ("us", "us-1"), &[("role", "web")], seeds).await;
    all_alive(&[&a, &b, &c]).await;
    (a, b, c)
}

/// Waits until every mesh sees exactly these meshes' count of members, all alive.
pub async fn all_alive(meshes: &[&Mesh]) {
    let n = meshes.len();
    eventually_async(
        &format!("{n} meshes see {n} alive members"),
        || {
            meshes.iter().all(|m| {
                let members = m.members();
                members.len() == n && members.iter().all(|x| x.state == MemberState::Alive)
            })
        },
        || describe(meshes),
    )
    .await;
}

pub fn describe(meshes: &[&Mesh]) -> String {
    meshes
        .iter()
        .map(|m| {
            let seen: Vec<_> = m
                .members()
                .iter()
                .map(|x| format!("{}:{}", x.name, x.state.as_str()))
                .collect();
            format!("\n  {} sees {seen:?}", m.name())
        })
        .collect()
}
