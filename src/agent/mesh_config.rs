//! What a [`crate::agent::Mesh`] needs to start: [`MeshConfig`] and where its TLS
//! identity comes from, [`TlsSource`].
//!
//! Protocol timing stays in [`SwimConfig`]; this holds the deployment side (names,
//! addresses, TLS, seeds). `validate` names the offending field, like `SwimConfig`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::proto::{ConfigError, NodeSigner, SwimConfig};
use crate::transport::ClusterKey;
use crate::transport::tls::ALPN_PREFIX;
use crate::wire::{Name, Tags};

/// Longest cluster name: it must fit the 255-byte ALPN protocol id after its prefix.
pub const MAX_CLUSTER_NAME_LEN: usize = 255 - ALPN_PREFIX.len();

/// Where the agent's TLS identity comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Derive the cluster CA from a shared key and issue a node certificate from it.
    ClusterKey(ClusterKey),
    /// The operator's own PKI: PEM files. Node certificates must carry the DNS name
    /// [`crate::transport::CLUSTER_SERVER_NAME`] and both server- and client-auth usage.
    Pki {
        /// CA certificate(s) peers must chain to.
        ca: PathBuf,
        /// This node's certificate chain, leaf first.
        cert: PathBuf,
        /// This node's private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// Everything a mesh needs to start.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Unique node name.
    pub name: Name,
    /// UDP address the QUIC endpoint binds; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Address announced to peers, when it differs from the bound one (NAT, containers,
    /// or binding an unspecified address such as `0.0.0.0`).
    pub advertise: Option<SocketAddr>,
    /// Region, e.g. `eu-west`; empty when unspecified.
    pub region: Name,
    /// Zone inside the region; empty when unspecified.
    pub zone: Name,
    /// Operator-defined labels.
    pub tags: Tags,
    /// Cluster name: members of different clusters refuse each other's handshakes even
    /// when they share a CA.
    pub cluster: String,
    /// Protocol timing.
    pub swim: SwimConfig,
    /// TLS identity.
    pub tls: TlsSource,
    /// Addresses to join through; empty starts a new cluster.
    pub seeds: Vec<SocketAddr>,
    /// Seeds as `host:port` names, resolved again before every join retry and every
    /// seed re-contact, so a seed whose DNS record (or `/etc/hosts` line) changes is
    /// followed; their addresses then replace `seeds` (when they resolve to any).
    pub seed_names: Vec<String>,
    /// Incarnation to start at: above any this node announced before a restart (kept
    /// in the agent's data dir), so its old records cannot out-bid it.
    pub incarnation: u64,
    /// The node key this node signs its records with (docs/protocol.md §17); `None`
    /// makes one for this run only (a restart is then a new key, see
    /// [`crate::daemon::node_key`]).
    pub node_key: Option<Arc<NodeSigner>>,
}

impl MeshConfig {
    /// A config with the given name, bind address and TLS source; everything else at its
    /// default: cluster `default`, LAN timing, no region, zone, tags or seeds,
    /// incarnation 0.
    pub fn new(name: impl Into<Name>, bind: SocketAddr, tls: TlsSource) -> MeshConfig {
        MeshConfig {
            name: name.into(),
            bind,
            advertise: None,
            region: Name::default(),
            zone: Name::default(),
            tags: Tags::new(),
            cluster: "default".into(),
            swim: SwimConfig::default(),
            tls,
            seeds: Vec::new(),
            seed_names: Vec::new(),
            incarnation: 0,
            node_key: None,
        }
    }

    /// Checks every field that can be checked before binding, naming the first that
    /// cannot work. (Name, region, zone and tag sizes are checked by the node.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.into(),
            })
        };
        self.swim.validate()?;
        if self.name.is_empty() {
            return err("name", "must not be empty");
        }
        if self.cluster.is_empty() {
            return err("cluster", "must not be empty");
        }
        if self.cluster.len() > MAX_CLUSTER_NAME_LEN {
            return Err(ConfigError {
                field: "cluster",
                reason: format!("must be at most {MAX_CLUSTER_NAME_LEN} bytes"),
            });
        }
        match self.advertise {
            Some(a) if a.ip().is_unspecified() || a.port() == 0 => err(
                "advertise",
                "must be a concrete address and port peers can reach",
            ),
            None if self.bind.ip().is_unspecified() => err(
                "advertise",
                "is required when bind is an unspecified address such as 0.0.0.0",
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MeshConfig {
        MeshConfig::new(
            "a",
            "127.0.0.1:0".parse().unwrap(),
            TlsSource::ClusterKey(ClusterKey::dev()),
        )
    }

    #[test]
    fn defaults_validate() {
        config().validate().unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |c: MeshConfig| c.validate().unwrap_err().field;
        assert_eq!(
            field(MeshConfig {
                name: "".into(),
                ..config()
            }),
            "name"
        );
        assert_eq!(
            field(MeshConfig {
                cluster: "".into(),
                ..config()
            }),
            "cluster"
        );
        assert_eq!(
            field(MeshConfig {
                cluster: "c".repeat(300),
                ..config()
            }),
            "cluster"
        );
        let any = "0.0.0.0:7946".parse().unwrap();
        assert_eq!(
            field(MeshConfig {
                bind: any,
                ..config()
            }),
            "advertise"
        );
        let advertise = Some("10.0.0.1:7946".parse().unwrap());
        MeshConfig {
            bind: any,
            advertise,
            ..config()
        }
        .validate()
        .unwrap();
        let mut swim = SwimConfig::local();
        swim.gossip_fanout = 0;
        assert_eq!(field(MeshConfig { swim, ..config() }), "gossip_fanout");
    }
}
