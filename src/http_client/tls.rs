//! The TLS side of the client: rustls with the ring provider (never aws-lc: two
//! providers in one process make rustls's default builders panic), trusting the Mozilla
//! roots from `webpki-roots`, the host's trust store and the CAs of `https_ca_file`.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;

/// The TLS client shared by every `https://` hook and check of a runner.
#[derive(Clone)]
pub struct TlsClient(pub(super) tokio_rustls::TlsConnector);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

/// CA certificates trusted besides the Mozilla roots and the system's, for every
/// `https://` hook and check of this process (`https_ca_file`); set once at start.
static EXTRA_ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Trusts `certs` too for `https://` hooks and checks; only the first call counts
/// (false for a later one). Call it before starting hooks and services.
pub fn trust_also(certs: Vec<CertificateDer<'static>>) -> bool {
    EXTRA_ROOTS.set(certs).is_ok()
}

/// The system's trusted certificates (`/etc/ssl/certs` and the like), read once; none
/// where there are none (a `FROM scratch` container).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "a system trust store file could not be read");
        }
        found.certs
    })
}

impl TlsClient {
    /// Ring provider, safe default protocol versions; trusts the Mozilla roots, the
    /// system's trust store and whatever [`trust_also`] added.
    pub fn new() -> TlsClient {
        TlsClient::trusting(EXTRA_ROOTS.get().map_or(&[], Vec::as_slice))
    }

    /// [`TlsClient::new`] with `extra` as the added CAs.
    pub fn trusting(extra: &[CertificateDer<'static>]) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // A certificate the parser cannot take is skipped (counted by rustls), as
        // browsers skip them: one bad file in a system store must not stop hooks.
        roots.add_parsable_certificates(system_roots().iter().cloned());
        roots.add_parsable_certificates(extra.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsClient(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

impl Default for TlsClient {
    fn default() -> TlsClient {
        TlsClient::new()
    }
}
