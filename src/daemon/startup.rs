//! What an agent sets up before it joins: its listening sockets, its API token and node
//! key (from files or the data dir), and warnings about secret files others can read.
//! Every failure here is found before the node announces itself.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, ApiToken};
use crate::daemon::data_dir::{DataDir, DataDirError};
use crate::daemon::node_key;
use crate::daemon::settings::{AgentConfig, ListenAddr};
use crate::dns::DnsSockets;
use crate::proto::{ConfigError, NodeSigner};

/// A data dir that cannot be read or written: a config error (exit 2) naming the field,
/// found before the node announces itself.
pub(super) fn data_dir_error(e: DataDirError) -> anyhow::Error {
    ConfigError {
        field: "data_dir",
        reason: e.to_string(),
    }
    .into()
}

/// Binds the API. An address the operator set that cannot be bound is fatal (exit 1).
/// The default one (`api_addr` unset) that is taken, e.g. by another agent on this
/// host, moves the API to a free port on the same address, logged with the setting
/// that chooses one.
pub(super) async fn bind_api(listen: ListenAddr) -> anyhow::Result<TcpListener> {
    let bound = TcpListener::bind(listen.addr).await;
    match bound {
        Ok(listener) => Ok(listener),
        Err(e) if listen.explicit => Err(anyhow::Error::new(e).context(format!(
            "cannot bind the HTTP API to {} (api_addr)",
            listen.addr
        ))),
        Err(e) => {
            let fallback = SocketAddr::new(listen.addr.ip(), 0);
            let listener = TcpListener::bind(fallback)
                .await
                .with_context(|| format!("cannot bind the HTTP API to {fallback} (api_addr)"))?;
            tracing::warn!(
                default = %listen.addr,
                error = %e,
                now = %listener.local_addr().unwrap_or(fallback),
                "the default API address is taken (another agent on this host?); serving \
                 the API on a free port instead: set api_addr (--api-addr) to choose one"
            );
            Ok(listener)
        }
    }
}

/// Binds the DNS interface. An address the operator set that cannot be bound is fatal
/// (exit 1); the default one that is taken turns DNS off, logged with the setting that
/// chooses another address.
pub(super) async fn bind_dns(listen: ListenAddr) -> anyhow::Result<Option<DnsSockets>> {
    match DnsSockets::bind(listen.addr).await {
        Ok(sockets) => Ok(Some(sockets)),
        Err(e) if listen.explicit => Err(anyhow::Error::new(e).context(format!(
            "cannot bind the DNS interface to {} (dns_addr)",
            listen.addr
        ))),
        Err(e) => {
            tracing::warn!(
                default = %listen.addr,
                error = %e,
                "the default DNS address is taken (another agent on this host?); DNS is \
                 off: set dns_addr (--dns-addr) to another address, or to \"off\""
            );
            Ok(None)
        }
    }
}

/// The API token: `api_token_file`'s, else the data dir's (generated on first start),
/// else none: in `--dev` the API then takes changes without one, elsewhere it refuses
/// them.
pub(super) fn api_token(
    config: &AgentConfig,
    data_dir: Option<&DataDir>,
) -> anyhow::Result<Option<ApiToken>> {
    if let Some(token) = config.api_token()? {
        return Ok(Some(token));
    }
    if config.dev {
        return Ok(None);
    }
    match data_dir {
        Some(dir) => ApiToken::load_or_create(&dir.path().join(api::TOKEN_FILE))
            .map(Some)
            .map_err(|e| {
                ConfigError {
                    field: "data_dir",
                    reason: e.to_string(),
                }
                .into()
            }),
        None => Ok(None),
    }
}

/// The node key: `node_key_file`'s, else the data dir's (generated on first start),
/// else one for this run only; none in PKI mode, where the certificate's key is the node
/// key (the mesh takes it from there). A file that cannot be used is a config error (exit 2).
pub(super) fn node_key(
    config: &AgentConfig,
    data_dir: Option<&DataDir>,
) -> anyhow::Result<Option<NodeSigner>> {
    if config.tls_cert.is_some() {
        return Ok(None);
    }
    let loaded = match (&config.node_key_file, data_dir) {
        (Some(path), _) => node_key::load(path),
        (None, Some(dir)) => node_key::load_or_create(&dir.path().join(node_key::NODE_KEY_FILE)),
        (None, None) => {
            tracing::info!(
                "no data_dir: this node's key lasts for this run only; after a crash the \
                 cluster gives the name to the new key once it declares the old one failed"
            );
            return Ok(Some(NodeSigner::generate().0));
        }
    };
    let signer = loaded.map_err(|e| ConfigError {
        field: "node_key_file",
        reason: e.to_string(),
    })?;
    tracing::info!(key = %signer.key().fingerprint(), "node key");
    Ok(Some(signer))
}

/// Warns about secret files that other users of the host can read: the cluster key,
/// the node's TLS key, the API's TLS key, the token file and the node key.
pub(super) fn warn_if_readable(config: &AgentConfig, data_dir: Option<&DataDir>) {
    use std::os::unix::fs::PermissionsExt;
    let token = config
        .api_token_file
        .clone()
        .or_else(|| data_dir.map(|d| d.path().join(api::TOKEN_FILE)));
    for (field, path) in [
        ("cluster_key_file", config.cluster_key_file.clone()),
        ("tls_key", config.tls_key.clone()),
        ("api_tls_key", config.api_tls_key.clone()),
        ("api_token_file", token),
        (
            "node_key_file",
            config
                .node_key_file
                .clone()
                .or_else(|| data_dir.map(|d| d.path().join(node_key::NODE_KEY_FILE))),
        ),
    ] {
        let Some(path) = path else { continue };
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                field,
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "a secret file is readable by other users of this host: chmod 600 it"
            );
        }
    }
}
