//! The agent: a tokio driver that puts one [`crate::proto::Node`] on the QUIC transport,
//! and the library API over it, [`Mesh`].
//!
//! One driver task owns the node. It wakes for a message from a peer, the node's next
//! timer deadline, a join retry, or a request from the [`Mesh`] handle; after each step it
//! sends what the node wants sent (sends that must dial run on their own tasks, so a
//! slow peer never holds up the loop), broadcasts the node's events, and republishes an
//! immutable snapshot of the membership when it changed. Readers never lock the node.
//!
//! | file | holds |
//! |---|---|
//! | `mesh_config` | [`MeshConfig`] and [`TlsSource`] |
//! | `mesh` | [`Mesh`]: start, read the membership, subscribe, join, set tags, leave; [`MeshView`], a read-only handle for the HTTP API |
//! | `driver` | the driver task and the requests it serves |
//! | `join` | join retry with exponential backoff and jitter |
//! | `seeds` | what a seed may be (`ip:port`, `host:port`, a name with SRV records) and its addresses now |
//! | `kv_view` | read-only snapshots of every member's replicated key-value state |
//! | `clock` | the one place the agent reads the clock: `tokio::time::Instant` ↔ [`crate::proto::Time`] |

mod clock;
mod driver;
mod join;
pub mod kv_view;
mod mesh;
mod mesh_config;
pub mod seeds;

pub use driver::Members;
pub use kv_view::{KvMaps, KvValue, MemberKv};
pub use mesh::{DriverEnd, Mesh, MeshControl, MeshView};
pub use mesh_config::{MAX_CLUSTER_NAME_LEN, MeshConfig, TlsSource};

use std::time::Duration;

use crate::proto::{CommandError, ConfigError};
use crate::transport::{IdentityError, TransportError};

/// Why the agent could not start or could not carry out a request.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A configuration value cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS identity could not be built or loaded.
    #[error("tls identity: {0}")]
    Identity(#[from] IdentityError),
    /// The transport could not be set up.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The node refused the command; nothing changed.
    #[error("command refused: {0}")]
    Command(#[from] CommandError),
    /// The driver task is gone (the mesh was shut down, or it panicked).
    #[error("the mesh has stopped")]
    Stopped,
    /// A graceful leave did not complete in time; the mesh was closed anyway.
    #[error("leave did not complete within {0:?}")]
    LeaveTimeout(Duration),
}
