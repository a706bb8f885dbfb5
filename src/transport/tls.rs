//! rustls and quinn configuration: TLS 1.3 only, mutual authentication against the
//! cluster CA, and ALPN `muster/1/<cluster name>` on both sides, so two clusters that
//! share a CA still refuse each other at the handshake.
//!
//! Only the ring crypto provider is used, always passed explicitly
//! (`builder_with_provider`): if another provider is ever compiled in, rustls's implicit
//! default would panic at run time.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;

use crate::transport::TransportError;
use crate::transport::identity::Identity;

/// Prefix of the ALPN protocol id; the cluster name follows it.
pub const ALPN_PREFIX: &str = "muster/1/";

/// Longest ALPN protocol id TLS carries.
const MAX_ALPN_LEN: usize = 255;

/// Keep-alive interval: inside the idle timeout, so an idle but healthy connection in the
/// cache is not timed out (a handshake costs kilobytes; a keep-alive ~70 bytes). Long,
/// because every keep-alive is a packet and its acknowledgement on every cached
/// connection: at 5 s they were most of an 8-agent cluster's traffic.
pub const KEEP_ALIVE: Duration = Duration::from_secs(240);

/// A connection with no packets for this long is dead. Failure detection is the core's
/// job (probes every second or so), not QUIC's; this only reclaims connections to
/// vanished peers, so it can be long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Concurrent unidirectional streams a peer may open to us: join and push-pull are rare,
/// so 64 leaves room for bursts while bounding what one peer can hold open.
const MAX_UNI_STREAMS: u32 = 64;

/// Datagrams buffered per connection before the oldest are dropped (about 1 MiB).
const DATAGRAM_RECEIVE_BUFFER: usize = 1024 * 1024;

/// The ALPN protocol id for a cluster name.
pub fn alpn(cluster: &str) -> Result<Vec<u8>, TransportError> {
    let id = format!("{ALPN_PREFIX}{cluster}").into_bytes();
    if id.len() > MAX_ALPN_LEN {
        return Err(TransportError::ClusterNameTooLong {
            len: cluster.len(),
            max: MAX_ALPN_LEN - ALPN_PREFIX.len(),
        });
    }
    Ok(id)
}

/// The provider behind every config: ring.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(identity: &Identity) -> Result<Arc<RootCertStore>, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in &identity.ca_certs {
        roots.add(cert.clone())?;
    }
    Ok(Arc::new(roots))
}

/// The rustls server side: requires a client certificate chaining to the CA.
pub fn server_crypto(
    identity: &Identity,
    cluster: &str,
) -> Result<rustls::ServerConfig, TransportError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(identity)?, provider.clone()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![alpn(cluster)?];
    Ok(config)
}

/// The rustls client side: verifies the server against the CA under
/// [`crate::transport::CLUSTER_SERVER_NAME`] and presents this node's certificate.
pub fn client_crypto(
    identity: &Identity,
    cluster: &str,
) -> Result<rustls::ClientConfig, TransportError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(identity)?)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![alpn(cluster)?];
    Ok(config)
}

/// QUIC transport parameters shared by both sides.
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("600 s is a valid idle timeout"),
        ))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(MAX_UNI_STREAMS))
        // Peers never open bidirectional streams.
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        // Protocol datagrams are budgeted to fit the 1,200-byte minimum QUIC path: path
        // MTU probes (padded packets of up to 1,452 bytes, on every new connection)
        // would buy nothing and cost more than the probes and gossip themselves.
        .mtu_discovery_config(None);
    t
}

/// The quinn server and client configs for an endpoint.
pub fn quic_configs(
    identity: &Identity,
    cluster: &str,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), TransportError> {
    let transport = Arc::new(transport_config());
    let server_crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto(identity, cluster)?)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server
        .transport_config(transport.clone())
        // The remote address of a connection must stay the peer's listening address
        // (see the module docs of `transport`).
        .migration(false);
    let client_crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto(identity, cluster)?)?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);
    Ok((server, client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ClusterKey;

    #[test]
    fn alpn_carries_the_cluster_name_and_is_bounded() {
        assert_eq!(alpn("prod").unwrap(), b"muster/1/prod");
        assert!(alpn(&"x".repeat(246)).is_ok());
        let err = alpn(&"x".repeat(247)).unwrap_err().to_string();
        assert!(err.contains("at most 246"), "{err}");
    }

    #[test]
    fn configs_build_from_a_cluster_identity() {
        let identity = Identity::from_cluster_key(&ClusterKey::dev(), "n1").unwrap();
        quic_configs(&identity, "test").unwrap();
    }
}
