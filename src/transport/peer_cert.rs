//! What a peer's certificate says about who it is: the node names it was issued for and
//! its key, for the core's name binding in PKI mode ([`crate::proto::certified`]).
//!
//! Node names are read from the subject alternative names: every DNS name but
//! [`CLUSTER_SERVER_NAME`], and every URI `urn:muster:node:NAME` (NAME percent-encoded,
//! for node names that are not DNS names). The common name is not read: a CA's policy
//! governs SANs, and name checks everywhere else ignore the common name too. The key is
//! the certificate's subject public key when it is an Ed25519 key (the only kind a node
//! signs its records with). The certificate has already been verified against the CA by
//! rustls when this runs; this only reads it.

use percent_encoding::percent_decode_str;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::proto::{NodeSigner, PeerCertificate};
use crate::transport::{CLUSTER_SERVER_NAME, Identity, IdentityError};
use crate::wire::{self, Name, NodeKey};

/// The URI prefix of a node name that is not a DNS name.
pub const NODE_URI_PREFIX: &str = "urn:muster:node:";

/// Most node names read from one certificate: a node has one name; a few spare for CAs
/// that add aliases, and a bound on what a certificate can make the core remember.
pub const MAX_CERT_NAMES: usize = 8;

/// Reads the node names and key of a (verified) certificate; `None` if it does not parse.
/// Names that could not be a node's (too long, control characters) are skipped.
pub fn read(der: &CertificateDer<'_>) -> Option<PeerCertificate> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            let name = match general {
                GeneralName::DNSName(dns) if *dns != CLUSTER_SERVER_NAME => (*dns).to_owned(),
                GeneralName::URI(uri) => match uri.strip_prefix(NODE_URI_PREFIX) {
                    Some(encoded) => match percent_decode_str(encoded).decode_utf8() {
                        Ok(decoded) => decoded.into_owned(),
                        Err(_) => continue,
                    },
                    None => continue,
                },
                _ => continue,
            };
            let usable = !name.is_empty()
                && name.len() <= wire::MAX_NAME_LEN
                && !wire::has_control_char(&name);
            if usable && names.len() < MAX_CERT_NAMES && !names.iter().any(|n| *n == name) {
                names.push(Name::from(name));
            }
        }
    }
    let spki = cert.public_key();
    let key = (spki.algorithm.algorithm == OID_SIG_ED25519)
        .then(|| <[u8; 32]>::try_from(spki.subject_public_key.data.as_ref()).ok())
        .flatten()
        .map(NodeKey);
    Some(PeerCertificate { names, key })
}

/// In PKI mode, the node key of the node named `node_name` whose TLS identity is
/// `identity`: the certificate's own key, which must be an Ed25519 key in PKCS#8 form,
/// and the certificate must name the node (so peers holding the certificate bind the name
/// to that key).
pub fn node_signer(identity: &Identity, node_name: &str) -> Result<NodeSigner, IdentityError> {
    let bad = |reason: String| IdentityError::NodeCertificate(reason);
    let not_a_node_key = |reason: &str| IdentityError::NotANodeKey(reason.into());
    let PrivateKeyDer::Pkcs8(pkcs8) = &identity.key else {
        return Err(not_a_node_key(
            "the private key is not an Ed25519 PKCS#8 key: in PKI mode a node signs its \
             records with its certificate's key, which must be Ed25519 \
             (`muster tls cert create` makes one)",
        ));
    };
    let signer = NodeSigner::from_pkcs8(pkcs8.secret_pkcs8_der()).map_err(|_| {
        not_a_node_key(
            "the private key is not an Ed25519 key: in PKI mode a node signs its records \
             with its certificate's key, which must be Ed25519 (`muster tls cert create` \
             makes one)",
        )
    })?;
    let leaf = identity
        .chain
        .first()
        .and_then(read)
        .ok_or_else(|| bad("the certificate does not parse".into()))?;
    if !leaf.vouches(node_name, &signer.key()) {
        return Err(bad(format!(
            "the certificate does not name this node ({node_name:?}) with its key: peers \
             bind a node name to the key of the certificate naming it (a DNS name, or a \
             URI {NODE_URI_PREFIX}NAME); it names {:?}",
            leaf.names
        )));
    }
    Ok(signer)
}

/// The URI subject alternative name that carries `node_name`.
pub fn node_uri(node_name: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    format!(
        "{NODE_URI_PREFIX}{}",
        utf8_percent_encode(node_name, NON_ALPHANUMERIC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_with(
        sans: Vec<SanType>,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_string()]).unwrap();
        params.subject_alt_names.extend(sans);
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn names_come_from_dns_and_node_uris_and_the_key_from_ed25519() {
        let (der, key) = cert_with(
            vec![
                SanType::DnsName("web-1".try_into().unwrap()),
                SanType::URI(node_uri("db primary/2").as_str().try_into().unwrap()),
                SanType::URI("https://example.test/x".try_into().unwrap()),
                SanType::DnsName("web-1".try_into().unwrap()),
            ],
            &rcgen::PKCS_ED25519,
        );
        let read = read(&CertificateDer::from(der)).unwrap();
        assert_eq!(
            read.names,
            vec![Name::from("web-1"), Name::from("db primary/2")]
        );
        assert_eq!(read.key.unwrap().0.as_slice(), key.public_key_raw());
    }

    #[test]
    fn an_ecdsa_certificate_names_nodes_but_has_no_node_key() {
        let (der, _) = cert_with(
            vec![SanType::DnsName("a".try_into().unwrap())],
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let read = read(&CertificateDer::from(der)).unwrap();
        assert_eq!(read.names, vec![Name::from("a")]);
        assert_eq!(read.key, None);
    }

    #[test]
    fn garbage_is_no_certificate_and_names_are_bounded() {
        assert!(read(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_none());
        let many = (0..20)
            .map(|i| SanType::DnsName(format!("n{i}").try_into().unwrap()))
            .collect();
        let (der, _) = cert_with(many, &rcgen::PKCS_ED25519);
        assert_eq!(
            read(&CertificateDer::from(der)).unwrap().names.len(),
            MAX_CERT_NAMES
        );
    }
}
