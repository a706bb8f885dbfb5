//! TLS identities: the cluster key, the cluster CA derived from it, node certificates,
//! and operator-supplied PKI files.
//!
//! Two ways to get an [`Identity`] (the trusted CA plus this node's certificate chain and
//! private key):
//!
//! - **Cluster key** ([`ClusterKey`], 32 secret bytes, text form `muster-key-v1:<hex>`):
//!   HKDF-SHA256 turns the key into the seed of an Ed25519 CA key pair, and a self-signed
//!   CA certificate with fixed parameters is built on it. Every agent holding the key
//!   derives the *same* CA (same key, same certificate bytes: Ed25519 signatures are
//!   deterministic), then issues itself a node certificate signed by that CA with a fresh
//!   key pair. Peers trust exactly that CA, so the key is the cluster's one shared secret.
//! - **PKI files** ([`Identity::from_pem_files`]): the operator's own CA certificate(s),
//!   this node's certificate chain and its private key, in PEM.
//!
//! Invariants: every node certificate carries the DNS name [`CLUSTER_SERVER_NAME`] (the
//! name dialers verify) and both server-auth and client-auth extended key usage, because
//! every agent both accepts and dials. Certificates from PKI files must do the same.
//! Node certificates are valid over a fixed, very wide window, so issuing one never reads
//! the wall clock; revoking a cluster key means rotating it.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use ring::rand::SecureRandom;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The DNS name every node certificate carries and every dialer verifies. Peers are
/// addressed by socket address, not by name, so one fixed name serves the whole cluster.
pub const CLUSTER_SERVER_NAME: &str = "muster.cluster";

/// Prefix of a cluster key's text form; the version lets the format change later.
pub const CLUSTER_KEY_PREFIX: &str = "muster-key-v1:";

/// HKDF info string for the CA seed: changing it changes every derived CA.
const CA_KDF_INFO: &[u8] = b"muster cluster CA v1";

/// HKDF salt: fixed, since the key is already uniformly random.
const CA_KDF_SALT: &[u8] = b"muster cluster key v1";

/// The phrase whose SHA-256 is the development key.
const DEV_KEY_PHRASE: &[u8] = b"muster insecure development cluster key v1";

/// PKCS#8 v1 (RFC 8410) wrapping of an Ed25519 private key: `SEQUENCE { INTEGER 0,
/// SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }`, to which the
/// 32-byte seed is appended.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why an identity could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Cluster key text that cannot be parsed.
    #[error("invalid cluster key: {reason}")]
    KeyFormat {
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system's random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// Building a key or certificate failed.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A PKI file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate validity out of range.
    #[error("a certificate must be valid for 1 to {max} days, not {days}")]
    Validity {
        /// The days asked for.
        days: u32,
        /// The most allowed.
        max: u32,
    },
    /// A PKI file is not the PEM expected.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// In PKI mode, the certificate cannot be this node's: it does not name the node.
    #[error("{0}")]
    NodeCertificate(String),
    /// In PKI mode, the certificate's key cannot sign the node's records (not Ed25519).
    #[error("{0}")]
    NotANodeKey(String),
}

/// The cluster's shared secret: 32 random bytes from which every agent derives the same
/// cluster CA. Its `Debug` form never shows the secret; its `Display` form is the text
/// form, for writing a key file.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl ClusterKey {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Result<ClusterKey, IdentityError> {
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| IdentityError::Random)?;
        Ok(ClusterKey(bytes))
    }

    /// A key from 32 bytes the caller generated.
    pub fn from_bytes(bytes: [u8; 32]) -> ClusterKey {
        ClusterKey(bytes)
    }

    /// The fixed, publicly known development key: **insecure**. Anyone can derive its CA
    /// and join a cluster that uses it; it exists for `--dev` on loopback and for tests.
    pub fn dev() -> ClusterKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, DEV_KEY_PHRASE);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        ClusterKey(bytes)
    }

    /// Parses the text form `muster-key-v1:<64 hex digits>`; surrounding whitespace (a
    /// key file's trailing newline) is ignored.
    pub fn parse(text: &str) -> Result<ClusterKey, IdentityError> {
        let bad = |reason: String| IdentityError::KeyFormat { reason };
        let text = text.trim();
        let hex = text.strip_prefix(CLUSTER_KEY_PREFIX).ok_or_else(|| {
            bad(format!(
                "expected it to start with {CLUSTER_KEY_PREFIX:?} (make one with `muster keygen`)"
            ))
        })?;
        if hex.len() != 64 {
            return Err(bad(format!(
                "expected 64 hex digits after the prefix, found {} characters",
                hex.len()
            )));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let digit = |c: u8| {
                (c as char)
                    .to_digit(16)
                    .ok_or_else(|| bad(format!("{:?} is not a hex digit", c as char)))
            };
            bytes[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(ClusterKey(bytes))
    }

    /// The raw secret.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32-byte seed of the cluster CA's Ed25519 key: HKDF-SHA256 of the key.
    fn ca_seed(&self) -> [u8; 32] {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, CA_KDF_SALT);
        let prk = salt.extract(&self.0);
        let info = [CA_KDF_INFO];
        let okm = prk
            .expand(&info, ring::hkdf::HKDF_SHA256)
            .expect("32 bytes is within HKDF-SHA256's output limit");
        let mut seed = [0u8; 32];
        okm.fill(&mut seed)
            .expect("the output length matches the HKDF algorithm's");
        seed
    }
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CLUSTER_KEY_PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<secret>)")
    }
}

/// The cluster CA derived from a [`ClusterKey`]: its certificate and the means to issue
/// node certificates.
pub struct ClusterCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Derives the CA: the same key always gives the same CA key pair and certificate.
    pub fn derive(key: &ClusterKey) -> Result<ClusterCa, IdentityError> {
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
        der.extend_from_slice(&key.ca_seed());
        let ca_key = KeyPair::try_from(der.as_slice())?;
        let params = ca_params();
        let cert = params.self_signed(&ca_key)?.der().clone();
        Ok(ClusterCa {
            cert,
            issuer: Issuer::new(params, ca_key),
        })
    }

    /// The CA certificate (DER), identical for every holder of the key.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA's raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        self.issuer.key().public_key_raw()
    }

    /// Issues a node certificate for `node_name` with a fresh key pair, and returns the
    /// identity built on it, named as [`node_cert_params`] says.
    pub fn issue(&self, node_name: &str) -> Result<Identity, IdentityError> {
        let node_key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = node_cert_params(node_name)?;
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(9999, 12, 31);
        let cert = params.signed_by(&node_key, &self.issuer)?;
        Ok(Identity {
            ca_certs: vec![self.cert.clone()],
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node_key.serialize_der())),
        })
    }
}

/// What every node certificate holds, whoever issues it: [`CLUSTER_SERVER_NAME`] as a
/// DNS name; the node name as a DNS name when it is one (letters, digits, `-`, `_`, `.`),
/// else as the URI `urn:muster:node:NAME` (percent-encoded), which is where peers read it
/// ([`crate::transport::peer_cert`]); the node name as the common name too, for people;
/// digital-signature key usage, server- and client-auth extended key usage, and the
/// issuer's key identifier. The validity is the caller's.
pub(super) fn node_cert_params(node_name: &str) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_string()])?;
    let dns_like = !node_name.is_empty()
        && node_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if dns_like && node_name != CLUSTER_SERVER_NAME {
        params
            .subject_alt_names
            .push(SanType::DnsName(rcgen::string::Ia5String::try_from(
                node_name,
            )?));
    } else {
        let uri = super::peer_cert::node_uri(node_name);
        params
            .subject_alt_names
            .push(SanType::URI(rcgen::string::Ia5String::try_from(uri)?));
    }
    params
        .distinguished_name
        .push(DnType::CommonName, node_name.to_string());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The fixed parameters of the derived CA certificate: anything that varied here would
/// make two holders of the same key derive different CAs.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "muster cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    params.serial_number = Some(rcgen::SerialNumber::from(vec![1]));
    params
}

/// What a node presents and trusts: CA certificates, its own chain (leaf first) and the
/// leaf's private key.
#[derive(Debug)]
pub struct Identity {
    /// Certificates of the CAs peers must chain to.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// This node's certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            ca_certs: self.ca_certs.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Derives the cluster CA from `key` and issues a node certificate for `node_name`.
    pub fn from_cluster_key(key: &ClusterKey, node_name: &str) -> Result<Identity, IdentityError> {
        ClusterCa::derive(key)?.issue(node_name)
    }

    /// Loads PKI files: the CA certificate(s), this node's certificate chain (leaf first)
    /// and its private key, all PEM.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Identity, IdentityError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| IdentityError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        Identity::parse_pem((ca, &read(ca)?), (cert, &read(cert)?), (key, &read(key)?))
    }

    /// Parses PEM given in memory; errors name the parts `<ca>`, `<cert>` and `<key>`.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Identity, IdentityError> {
        Identity::parse_pem(
            (Path::new("<ca>"), ca),
            (Path::new("<cert>"), cert),
            (Path::new("<key>"), key),
        )
    }

    fn parse_pem(
        ca: (&Path, &[u8]),
        cert: (&Path, &[u8]),
        key: (&Path, &[u8]),
    ) -> Result<Identity, IdentityError> {
        let pem_err = |path: &Path, reason: String| IdentityError::Pem {
            path: path.to_path_buf(),
            reason,
        };
        let ca_certs = parse_certificates(ca.0, ca.1)?;
        let chain = parse_certificates(cert.0, cert.1)?;
        let private = PrivateKeyDer::from_pem_slice(key.1).map_err(|e| {
            pem_err(
                key.0,
                match e {
                    rustls::pki_types::pem::Error::NoItemsFound => {
                        "no PRIVATE KEY section found".into()
                    }
                    e => e.to_string(),
                },
            )
        })?;
        Ok(Identity {
            ca_certs,
            chain,
            key: private,
        })
    }
}

/// The certificates of PEM `bytes` (at least one); `path` names them in errors.
pub fn parse_certificates(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IdentityError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(IdentityError::Pem {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE section found".into(),
        });
    }
    Ok(certs)
}

/// The certificates of the PEM file at `path` (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let bytes = std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_certificates(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_key_text_round_trips() {
        let key = ClusterKey::generate().unwrap();
        let text = key.to_string();
        assert!(text.starts_with(CLUSTER_KEY_PREFIX));
        assert_eq!(text.len(), CLUSTER_KEY_PREFIX.len() + 64);
        assert_eq!(ClusterKey::parse(&text).unwrap(), key);
        assert_eq!(ClusterKey::parse(&format!("  {text}\n")).unwrap(), key);
        assert_ne!(ClusterKey::generate().unwrap(), key);
        assert_eq!(
            ClusterKey::parse(&ClusterKey::dev().to_string()).unwrap(),
            ClusterKey::dev()
        );
    }

    #[test]
    fn bad_cluster_key_text_says_why() {
        let msg = |t: &str| ClusterKey::parse(t).unwrap_err().to_string();
        assert!(msg("hello").contains("muster-key-v1:"), "{}", msg("hello"));
        assert!(msg("muster-key-v1:abcd").contains("64 hex digits"));
        let bad_digit = format!("muster-key-v1:{}", "zz".repeat(32));
        assert!(msg(&bad_digit).contains("not a hex digit"));
        // Multi-byte characters are not a panic on a char boundary.
        let unicode = format!("muster-key-v1:{}", "é".repeat(32));
        assert!(msg(&unicode).contains("not a hex digit"));
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let key = ClusterKey::dev();
        assert!(!format!("{key:?}").contains(&key.to_string()[CLUSTER_KEY_PREFIX.len()..]));
    }

    #[test]
    fn the_same_key_derives_the_same_ca() {
        let key = ClusterKey::generate().unwrap();
        let a = ClusterCa::derive(&key).unwrap();
        let b = ClusterCa::derive(&ClusterKey::parse(&key.to_string()).unwrap()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.cert(), b.cert());
        let other = ClusterCa::derive(&ClusterKey::generate().unwrap()).unwrap();
        assert_ne!(a.public_key(), other.public_key());
    }

    #[test]
    fn node_identities_chain_to_the_derived_ca() {
        let ca = ClusterCa::derive(&ClusterKey::dev()).unwrap();
        let a = ca.issue("node-a").unwrap();
        let b = ca.issue("node b, not a dns name").unwrap();
        assert_eq!(a.ca_certs, vec![ca.cert().clone()]);
        assert_eq!(a.chain.len(), 1);
        assert_ne!(a.chain, b.chain);
    }

    #[test]
    fn pem_identities_load_and_bad_pem_is_named() {
        // An operator's CA and node certificate, made the way `openssl` would.
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ca_cert = ca_params().self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params(), ca_key);
        let node_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let node_cert = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_string()])
            .unwrap()
            .signed_by(&node_key, &issuer)
            .unwrap();
        let (ca_pem, chain_pem, key_pem) =
            (ca_cert.pem(), node_cert.pem(), node_key.serialize_pem());
        let loaded =
            Identity::from_pem(ca_pem.as_bytes(), chain_pem.as_bytes(), key_pem.as_bytes())
                .unwrap();
        assert_eq!(loaded.ca_certs, vec![ca_cert.der().clone()]);
        assert_eq!(loaded.chain, vec![node_cert.der().clone()]);
        assert_eq!(loaded.key.secret_der(), node_key.serialized_der());

        let err = Identity::from_pem(b"nothing", chain_pem.as_bytes(), key_pem.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("<ca>") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let err = Identity::from_pem(ca_pem.as_bytes(), chain_pem.as_bytes(), b"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PRIVATE KEY"), "{err}");
        let err = Identity::from_pem_files(
            Path::new("/nonexistent/ca.pem"),
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
