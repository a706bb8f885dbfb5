//! rustls and quinn configuration: TLS 1.3 only, mutual authentication against the
//! cluster CA, and ALPN `muster/1/<cluster name>` on both sides, so two clusters that
//! share a CA still refuse each other at the handshake.
//!
//! Only the ring crypto provider is used, always passed explicitly
//! (`builder_with_provider`): if another provider is ever compiled in, rustls's implicit
//! default would panic at run time.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::transport::TransportError;
use crate::transport::identity::{CLUSTER_SERVER_NAME, Identity};

/// Prefix of the ALPN protocol id; the cluster name follows it.
pub const ALPN_PREFIX: &str = "muster/1/";

/// Longest ALPN protocol id TLS carries.
const MAX_ALPN_LEN: usize = 255;

/// Keep-alive interval: inside the idle timeout, so an idle but healthy connection in the
/// cache is not timed out (a handshake costs kilobytes; a keep-alive ~70 bytes). Long,
/// because every keep-alive is a packet and its acknowledgement on every cached
/// connection: at 5 s they were most of an 8-agent cluster's traffic, and at 240 s they
/// still fired on the connections of a 256-agent cluster, where each pair exchanges
/// probes only every N seconds or so (126 B/s per agent there against 107 at 128).
/// Probing round-robin keeps a pair's silence under 2N seconds, so below ~270 members
/// a live pair's connection never needs one.
pub const KEEP_ALIVE: Duration = Duration::from_secs(540);

/// A connection with no packets for this long is dead. Failure detection is the core's
/// job (probes every second or so), not QUIC's; this only reclaims connections to
/// vanished peers, so it can be long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Concurrent unidirectional streams a peer may open to us: join and push-pull are rare,
/// so 8 leaves room for bursts while bounding what one peer can hold open.
const MAX_UNI_STREAMS: u32 = 8;

/// Bytes a peer may have in flight to us on one connection, all streams together: room
/// for a 10,000-member table, without letting one peer make us buffer gigabytes.
const CONNECTION_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;

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

/// Checks a client certificate as a server certificate is checked: it must chain to the
/// CA (rustls' WebPKI verifier) **and** be issued for [`CLUSTER_SERVER_NAME`]. With an
/// operator's CA, chaining alone would admit any certificate that CA ever issued (a VPN
/// client's, another service's); the cluster-key CA only ever issues muster nodes'.
#[derive(Debug)]
struct ClusterClientVerifier {
    chain_check: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ClusterClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain_check.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chain_check
            .verify_client_cert(end_entity, intermediates, now)?;
        let name = ServerName::try_from(CLUSTER_SERVER_NAME)
            .map_err(|_| rustls::Error::General("invalid cluster server name".into()))?;
        webpki::EndEntityCert::try_from(end_entity)
            .and_then(|cert| cert.verify_is_valid_for_subject_name(&name))
            .map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain_check.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain_check.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain_check.supported_verify_schemes()
    }
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
    let chain_check =
        WebPkiClientVerifier::builder_with_provider(roots(identity)?, provider.clone()).build()?;
    let verifier = Arc::new(ClusterClientVerifier { chain_check });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![alpn(cluster)?];
    // Every peer shares one server name, so a ticket from one peer is useless with the
    // next: issuing and caching them would only cost bytes in every handshake.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
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
    config.resumption = rustls::client::Resumption::disabled();
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
        .receive_window(quinn::VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
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
