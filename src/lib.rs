//! Muster: a gossip-based peer-to-peer membership mesh.
//!
//! Every host runs one agent; agents find each other through seeds, watch each other
//! with SWIM + Lifeguard failure detection, and agree on who is in the cluster without a
//! central monitor. This crate holds the protocol as a sans-IO state machine, usable by
//! any driver: the tokio/QUIC agent, or the deterministic simulator in `simulations/`.
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`proto`] | the sans-IO core: [`proto::Node`], member table, probing, suspicion, gossip, anti-entropy |
//! | [`wire`] | protocol messages and their codec: versioned, size-bounded, panic-free |
//! | [`process_stats`] | this process's resident memory and CPU time, for benchmarks and reports |
//! | [`stable_hash`] | the platform-independent hash behind cluster ids and digests |
//! | [`new_file`] | creating a file that must be new, with its mode from the start (tokens, keys) |
//! | [`transport`] | the QUIC endpoint, mutual-TLS identities (cluster key or PKI), connection cache |
//! | [`agent`] | the tokio driver of a [`proto::Node`] and the library API, [`agent::Mesh`] |
//! | [`api`] | the agent's local HTTP API (axum): members, self, cluster, health |
//! | [`hooks`] | event hooks: commands and webhooks run on membership events, off the protocol path |
//! | [`routing`] | services, health checks, failover rules and region-aware route answers |
//! | [`dns`] | the DNS interface: `SERVICE.service.muster.`, `NODE.node.muster.` from route answers |
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

pub mod agent;
pub mod api;
pub mod dns;
pub mod hooks;
pub mod new_file;
pub mod process_stats;
pub mod proto;
pub mod routing;
pub mod stable_hash;
pub mod transport;
pub mod wire;

pub use agent::Mesh;
