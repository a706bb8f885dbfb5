//! Starts a dev-key agent with `local` timing for the benches that need a small cluster
//! of real meshes (DNS, failover).

use std::net::SocketAddr;

use anyhow::Context;
use muster::agent::{Mesh, MeshConfig, TlsSource};
use muster::proto::SwimConfig;
use muster::transport::ClusterKey;

/// A dev-key mesh named `name`, bound to `bind`, in `cluster` at `region`/`zone`,
/// joining through `seeds`.
pub async fn start(
    cluster: &str,
    name: &str,
    bind: SocketAddr,
    (region, zone): (&str, &str),
    seeds: Vec<SocketAddr>,
) -> anyhow::Result<Mesh> {
    let config = MeshConfig {
        swim: SwimConfig::local(),
        cluster: cluster.into(),
        seeds,
        region: region.into(),
        zone: zone.into(),
        ..MeshConfig::new(name, bind, TlsSource::ClusterKey(ClusterKey::dev()))
    };
    Mesh::start(config)
        .await
        .with_context(|| format!("starting {name}"))
}
