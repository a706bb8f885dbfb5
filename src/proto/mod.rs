//! The sans-IO protocol core: SWIM failure detection with the Lifeguard extensions,
//! gossip dissemination and push-pull anti-entropy, as one deterministic state machine.
//!
//! Nothing here reads a clock, opens a socket or spawns a task: time comes in as a
//! [`Time`] argument, randomness from the seeded generator in [`NodeOptions`], and all
//! output is polled. The agent and the simulator drive the same [`Node`].
//!
//! | file | holds |
//! |---|---|
//! | `node` | [`Node`], its inputs and outputs, dispatch and send helpers |
//! | `probe` | probe rounds, indirect probes, nacks, confirmation checks |
//! | `update` | applying alive / suspect / dead / leave, refutation |
//! | `sync` | join, push-pull, reconnect, reaping, gossip rounds, leave |
//! | `kv_sync` | spreading replicated key-value state: writes, gossip, pulls and pushes |
//! | `kv` | one member's replicated map ([`kv::KvMap`]) and how maps merge |
//! | `member` | the compact member table and the membership digest |
//! | `suspicion` | Lifeguard suspicion timeouts |
//! | `awareness` | Lifeguard local health score |
//! | `broadcast` | the retransmit-limited update queue |
//! | `timer` | the timer queue |
//! | `config` | [`SwimConfig`] and its presets |
//! | `identity` | node keys: signing this node's records, verifying others' ([`NodeSigner`], [`Verifier`]) |
//! | `event` | [`Event`], [`Command`], [`Transmit`] |
//! | `stats` | [`Stats`] counters |
//! | `time`, `rng` | the injected clock and randomness |

pub mod awareness;
pub mod broadcast;
pub mod certified;
pub mod config;
pub mod event;
pub mod identity;
pub mod kv;
mod kv_sync;
pub mod member;
mod node;
mod probe;
pub mod rng;
pub mod stats;
pub mod suspicion;
mod sync;
pub mod time;
pub mod timer;
mod update;

pub use certified::PeerCertificate;
pub use config::{ConfigError, DEFAULT_MAX_MEMBERS, SwimConfig};
pub use event::KvError;
pub use event::{Channel, Command, CommandError, Event, Transmit};
pub use identity::{KeyError, NodeSigner, Verifier};
pub use kv::KvMap;
pub use member::{Member, MemberInfo, MemberTable};
pub use node::{Node, NodeOptions};
pub use probe::MAX_RELAYS;
pub use stats::{KindCounters, RTT_BUCKETS_MICROS, Refusal, RefusalCounters, RttHistogram, Stats};
pub use time::Time;
