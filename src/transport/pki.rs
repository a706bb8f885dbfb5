//! Files for running your own PKI (`tls_ca`, `tls_cert`, `tls_key`) without OpenSSL:
//! a CA, and node certificates issued by it that hold what the agent checks
//! ([`node_cert_params`]: `muster.cluster`, the node name, both extended key usages).
//! `muster tls ca create` and `muster tls cert create` are the command-line form.
//!
//! The CA's key is ECDSA P-256, which every TLS stack and secret store takes. A node's
//! key is Ed25519: in PKI mode it is also the node key that signs the node's membership
//! records, and peers bind the node's name to it through the certificate. Certificates
//! are valid from a few minutes before now (for clocks slightly behind) for the days
//! asked.

use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::transport::identity::{IdentityError, node_cert_params};

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct PemPair {
    /// The certificate (PEM).
    pub cert: String,
    /// Its private key (PKCS#8 PEM).
    pub key: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// How long before now a new certificate becomes valid: peers whose clocks are a little
/// behind accept it at once.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Longest validity asked for: past this the date arithmetic is no longer meaningful.
pub const MAX_DAYS: u32 = 100 * 365;

/// A new CA: a self-signed certificate named `common_name`, valid from `now` for `days`, that may
/// sign certificates but not other CAs (path length 0).
pub fn create_ca(common_name: &str, now: SystemTime, days: u32) -> Result<PemPair, IdentityError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name.to_owned());
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, now, days)?;
    let cert = params.self_signed(&key)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A node certificate for `node_name` issued by the CA in `ca` (its certificate and key,
/// PEM, as [`create_ca`] writes them or any other CA's), valid from `now` for `days`, with a fresh
/// Ed25519 key (the node key in PKI mode). The certificate file it goes in holds the leaf only: add intermediates after it
/// when `ca` is one.
pub fn issue_node(
    ca: &PemPair,
    node_name: &str,
    now: SystemTime,
    days: u32,
) -> Result<PemPair, IdentityError> {
    let pem_error = |reason: String| IdentityError::Pem {
        path: "the CA".into(),
        reason,
    };
    let ca_key = KeyPair::from_pem(&ca.key)
        .map_err(|e| pem_error(format!("the CA key does not parse: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)
        .map_err(|e| pem_error(format!("the CA certificate does not parse: {e}")))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut params = node_cert_params(node_name)?;
    set_validity(&mut params, now, days)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn set_validity(
    params: &mut CertificateParams,
    now: SystemTime,
    days: u32,
) -> Result<(), IdentityError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(IdentityError::Validity {
            days,
            max: MAX_DAYS,
        });
    }
    let from = now.checked_sub(BACKDATE).unwrap_or(now);
    let until = now + Duration::from_secs(u64::from(days) * 86_400);
    params.not_before = from.into();
    params.not_after = until.into();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Identity;

    /// 2026-12-01T00:00:00Z.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200)
    }

    #[test]
    fn a_created_ca_issues_node_certificates_the_agent_accepts() {
        let ca = create_ca("test CA", now(), 30).unwrap();
        let node = issue_node(&ca, "node-1", now(), 10).unwrap();
        assert!(ca.cert.contains("BEGIN CERTIFICATE") && ca.key.contains("BEGIN PRIVATE KEY"));
        // What the agent loads from tls_ca / tls_cert / tls_key, key match included.
        let identity = Identity::from_pem(
            ca.cert.as_bytes(),
            node.cert.as_bytes(),
            node.key.as_bytes(),
        )
        .unwrap();
        assert_eq!(identity.chain.len(), 1);
        assert_eq!(identity.ca_certs.len(), 1);
    }

    #[test]
    fn validity_must_be_at_least_a_day_and_bounded() {
        assert!(matches!(
            create_ca("x", now(), 0),
            Err(IdentityError::Validity { days: 0, .. })
        ));
        assert!(create_ca("x", now(), MAX_DAYS + 1).is_err());
        let ca = create_ca("x", now(), 1).unwrap();
        let err = issue_node(
            &PemPair {
                cert: "not pem".into(),
                key: ca.key.clone(),
            },
            "n",
            now(),
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("CA certificate"), "{err}");
    }
}
