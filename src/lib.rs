//! Muster: a gossip-based peer-to-peer membership mesh.
//!
//! Every host runs one agent; agents find each other through seeds, watch each other
//! with SWIM + Lifeguard failure detection, and agree on who is in the cluster without a
//! central monitor. This crate holds the protocol as a sans-IO state machine, usable by
//! any driver: the tokio/QUIC agent, or the deterministic simulator in `simulations/`.
//!
//! # Layout
//!
//! Layers, from the ground up; each module imports only from the rows above its own
//! (and from the leaves).
//!
//! | layer | module | holds |
//! |---|---|---|
//! | leaves | [`duration`] | durations as config files and scenarios write them: `"10s"`, `"1.5s"`; one parser, one printer |
//! | | [`backoff`] | [`backoff::Backoff`]: the one retry schedule (joins, seed resolution, hooks) |
//! | | [`metrics`] | the Prometheus text exposition writer every part with counters uses |
//! | | [`field_error`] | [`field_error::FieldError`]: a config value that cannot work, naming its field |
//! | | [`http_client`] | the HTTP client of webhooks and HTTP checks (hyper, rustls with ring) |
//! | | [`child`] | child processes of exec checks and command hooks: process groups, bounded output |
//! | | [`wall_clock`] | the one reader of the wall clock (event times, state epochs, certificates) |
//! | | [`process_stats`] | this process's resident memory and CPU time, for benchmarks and reports |
//! | | [`stable_hash`] | the platform-independent hash behind cluster ids and digests |
//! | | [`new_file`] | creating a file that must be new, with its mode from the start (tokens, keys) |
//! | wire | [`wire`] | protocol messages and their codec: versioned, size-bounded, panic-free |
//! | core | [`proto`] | the sans-IO core: [`proto::Node`], member table, probing, suspicion, gossip, anti-entropy |
//! | transport | [`transport`] | the QUIC endpoint, mutual-TLS identities (cluster key or PKI), connection cache |
//! | mesh | [`agent`] | the tokio driver of a [`proto::Node`] and the library API, [`agent::Mesh`] |
//! | services | [`routing`] | services, health checks, failover rules and region-aware route answers |
//! | events | [`events`] | the event journal (numbered membership events), member views and availability |
//! | faces | [`api`] | the agent's local HTTP API (axum) and the CLI's client of it |
//! | | [`dns`] | the DNS interface: `SERVICE.service.muster.`, `NODE.node.muster.` from route answers |
//! | | [`hooks`] | event hooks: commands and webhooks run on membership events, off the protocol path |
//! | daemon | [`daemon`] | `muster agent`: its config, overrides, data dir, and [`daemon::run`] |
//!
//! # Features
//!
//! | feature | compiles | for |
//! |---|---|---|
//! | none (`default-features = false`) | the leaves, [`wire`] and [`proto`]: the sans-IO core, no tokio, no network | your own driver, a simulator |
//! | `mesh` | and [`transport`] and [`agent`]: [`Mesh`] on QUIC (quinn, rustls with ring), tokio | a program that embeds the membership |
//! | `agent` (default) | everything: services, events, the HTTP API (axum), DNS (hickory), hooks, the daemon, the `muster` binary (clap) | `muster agent` |
//!
//! # Embedding a mesh
//!
//! [`Mesh`] is the whole membership on the real network: QUIC with mutual TLS, a driver
//! task on the current tokio runtime, snapshots to read and events to follow. Two
//! members on loopback, sharing the development cluster key (a real cluster uses one
//! from `muster keygen`, or its own PKI):
//!
//! ```
//! use muster::agent::{MeshConfig, TlsSource};
//! use muster::proto::SwimConfig;
//! use muster::transport::ClusterKey;
//! use muster::wire::MemberState;
//! use muster::Mesh;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = |name: &str| MeshConfig {
//!     swim: SwimConfig::local(),
//!     cluster: "doc-example".into(),
//!     ..MeshConfig::new(name, "127.0.0.1:0".parse().unwrap(), TlsSource::ClusterKey(ClusterKey::dev()))
//! };
//! let a = Mesh::start(config("a")).await?;
//! let b = Mesh::start(MeshConfig { seeds: vec![a.local_addr()], ..config("b") }).await?;
//! // Membership converges by gossip: wait until `a` sees `b` alive.
//! let mut members = a.watch();
//! while !members.borrow_and_update().iter().any(|m| m.name == "b" && m.state == MemberState::Alive) {
//!     members.changed().await?;
//! }
//! b.leave().await?; // a graceful leave: `a` marks `b` left, not failed
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Driving a node
//!
//! ```
//! use std::sync::Arc;
//!
//! use muster::proto::{Node, NodeOptions, NodeSigner, SwimConfig, Time, Verifier};
//! use muster::wire::{Profile, Tags};
//!
//! let profile = Profile {
//!     name: "a".into(),
//!     addr: "127.0.0.1:7946".parse().unwrap(),
//!     region: "eu".into(),
//!     zone: "eu-1".into(),
//!     tags: Tags::new(),
//! };
//! // The node key it signs its own records with (an agent keeps it in its data dir).
//! let (signer, _pkcs8) = NodeSigner::generate();
//! let options = NodeOptions {
//!     config: SwimConfig::lan(),
//!     profile,
//!     cluster: "demo".into(),
//!     incarnation: 0,
//!     signer: Arc::new(signer),
//!     verifier: Verifier::new(),
//!     seed: 1,
//!     kv_epoch: 1,
//!     proven: false,
//! };
//! let mut node = Node::new(options, Time::ZERO).unwrap();
//! // The driver loop: feed input, run timers, send what the node wants sent.
//! while let Some(at) = node.poll_timeout() {
//!     if at > Time::from_nanos(5_000_000_000) { break; }
//!     node.handle_timeout(at);
//!     while let Some(_transmit) = node.poll_transmit() { /* send it */ }
//!     while let Some(_event) = node.poll_event() { /* report it */ }
//! }
//! assert_eq!(node.members().live_count(), 1);
//! ```

#[cfg(feature = "mesh")]
pub mod agent;
#[cfg(feature = "agent")]
pub mod api;
pub mod backoff;
#[cfg(feature = "agent")]
pub mod child;
#[cfg(feature = "agent")]
pub mod daemon;
#[cfg(feature = "agent")]
pub mod dns;
pub mod duration;
#[cfg(feature = "agent")]
pub mod events;
pub mod field_error;
#[cfg(feature = "agent")]
pub mod hooks;
#[cfg(feature = "agent")]
pub mod http_client;
pub mod metrics;
pub mod new_file;
pub mod process_stats;
pub mod proto;
#[cfg(feature = "agent")]
pub mod routing;
pub mod stable_hash;
#[cfg(feature = "mesh")]
pub mod transport;
pub mod wall_clock;
pub mod wire;

#[cfg(feature = "mesh")]
pub use agent::Mesh;
