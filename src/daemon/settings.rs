//! The deployment config of a `muster agent`: [`AgentConfig`], as read from TOML, the
//! environment and flags (see [`crate::daemon::overrides`] for the merge), then checked by
//! [`AgentConfig::validate`] (in `settings/validate.rs`) and turned into the library's
//! runtime [`MeshConfig`].
//!
//! Every default lives in [`AgentConfig::default`], each with the reason for it. The TOML
//! form refuses unknown keys. Errors name the field as written in the config file.
//!
//! Invariant: an `AgentConfig` that passed `validate` yields a `MeshConfig` that passes
//! `MeshConfig::validate`, unless a key file cannot be read or parsed, which
//! [`AgentConfig::mesh_config`] reports naming the field.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::seeds::{self, Seed};
use crate::agent::{MeshConfig, TlsSource};
use crate::api::ApiToken;
use crate::backoff::Backoff;
use crate::field_error::FieldError;
use crate::proto::{ConfigError, SwimConfig};
use crate::routing::spec::ServiceSpec;
use crate::transport::{ClusterKey, Identity, IdentityError, peer_cert};
use crate::wire::{Name, Tags};

pub use listen::{Listen, ListenAddr};

/// The API's address outside `--dev` when `api_addr` is not set: loopback only (the API
/// is for the local host unless the operator says so), on memberlist's gossip port + 1.
pub const DEFAULT_API_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7947);

/// The DNS interface's address outside `--dev` when `dns_addr` is not set: loopback,
/// like the API (local programs resolve through it, or a local resolver forwards
/// `muster.` to it), on Consul's DNS port, so habits and resolver configs carry over.
pub const DEFAULT_DNS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8600);

pub mod listen;
mod validate;

use crate::hooks::config::HookConfig;

/// Why a deployment config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for an [`AgentConfig`] (including unknown keys).
    #[error("config file {path}, line {line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text (0 when unknown).
        line: usize,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// A value that cannot work, naming its field.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A value inside an entry of a list of tables (`hooks[0].events`) that cannot
    /// work; the field is built from the entry's index, so it is not a `&'static str`.
    #[error(transparent)]
    InvalidEntry(#[from] FieldError),
    /// Neither a cluster key, nor certificates, nor `--dev`.
    #[error(
        "refusing to start: pass --cluster-key FILE (make one with `muster keygen`), or \
         --tls-ca/--tls-cert/--tls-key, or --dev for a loopback-only trial"
    )]
    NoIdentity,
}

/// How the agent writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for collectors (and the process tests).
    Json,
}

/// The agent's deployment config. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Unique node name; unset means the host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// UDP address the QUIC endpoint binds.
    pub bind: SocketAddr,
    /// Address announced to peers (NAT, containers, or an unspecified `bind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// Seeds as `host:port`; DNS names resolve to all their addresses at join time.
    pub join: Vec<String>,
    /// Region, e.g. `eu-west`.
    pub region: String,
    /// Zone inside the region.
    pub zone: String,
    /// Protocol timing preset: `lan`, `wan` or `local`.
    pub profile: String,
    /// Cluster name, bound into the TLS handshake.
    pub cluster: String,
    /// Local HTTP API address; unset, the default rule ([`AgentConfig::api_listen`]).
    #[serde(skip_serializing_if = "Listen::is_default")]
    pub api_addr: Listen,
    /// The node key file (Ed25519, PKCS#8 PEM) this node signs its own records with;
    /// none means `<data_dir>/node.key`, generated on first start (no data dir: a key
    /// for this run only). See `crate::daemon::node_key`. Not with `tls_cert`: in PKI
    /// mode the certificate's key is the node key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_key_file: Option<PathBuf>,
    /// File holding the bearer token the API's mutating endpoints require; none means
    /// `<data_dir>/api.token`, generated on first start (no data dir and no file: the
    /// API refuses changes; `--dev` on loopback needs no token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    /// Reads need the token too (they always do from another host).
    pub api_read_token: bool,
    /// Host names the API answers to besides its own address (and loopback names when
    /// it listens on loopback): a reverse proxy's or a load balancer's name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_allowed_hosts: Vec<String>,
    /// Services registered through the API may have `exec` checks.
    pub api_allow_exec_checks: bool,
    /// Services registered through the API may have `http`/`tcp` checks of other hosts.
    pub api_allow_remote_checks: bool,
    /// Certificate chain (PEM) the API serves HTTPS with; with `api_tls_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `api_tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_tls_key: Option<PathBuf>,
    /// HTTP API connections served at once (lowered to a quarter of the process's
    /// file-descriptor limit); more are answered 503.
    pub api_max_connections: usize,
    /// Local DNS interface address, UDP and TCP (see [`crate::dns`]), or `"off"`; unset,
    /// the default rule ([`AgentConfig::dns_listen`]).
    #[serde(skip_serializing_if = "Listen::is_default")]
    pub dns_addr: Listen,
    /// TTL of every DNS record, and of negative answers: whole seconds.
    #[serde(with = "crate::duration")]
    pub dns_ttl: Duration,
    /// UDP DNS answers per second to one source address (an IPv6 /64), with bursts of
    /// twice that; `0` turns the limit off (see [`crate::dns::RateLimit`]).
    pub dns_rate_limit: u32,
    /// Most members this agent's table holds (a bound on what peers can make it
    /// remember); alive records of new members past it are refused and counted.
    pub max_members: usize,
    /// CA certificates (PEM) trusted for `https://` checks and webhooks, besides the
    /// Mozilla roots and the system's trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_ca_file: Option<PathBuf>,
    /// Where the agent keeps its state across restarts; none keeps nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter: a level (`info`) or `tracing` directives (`info,muster=debug`).
    pub log_level: String,
    /// File holding the cluster key (from `muster keygen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key_file: Option<PathBuf>,
    /// The operator's CA certificate(s), PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate chain, PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key, PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Loopback-only trial mode with the fixed, insecure development key.
    pub dev: bool,
    /// Operator-defined labels (after the plain keys: TOML writes tables after them).
    pub tags: BTreeMap<String, String>,
    /// Commands and webhooks run on membership events (file only: no flag or variable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookConfig>,
    /// Services this host runs, with their health checks (file only: no flag or
    /// variable; see [`crate::routing::spec`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            // Filled from the host name at load: host names are unique per host, and
            // one agent runs per host.
            name: None,
            // Every interface, on memberlist's and Serf's well-known gossip port.
            bind: SocketAddr::from(([0, 0, 0, 0], 7946)),
            // Derived from `bind` when it is a concrete address.
            advertise: None,
            // No seeds: start a new cluster alone.
            join: Vec::new(),
            region: String::new(),
            zone: String::new(),
            // Most clusters live in one data centre.
            profile: "lan".into(),
            // One cluster per fleet is the common case.
            cluster: "default".into(),
            // See `api_listen`: loopback, the port next to the gossip port.
            api_addr: Listen::Default,
            // `<data_dir>/node.key`, generated on first start.
            node_key_file: None,
            // `<data_dir>/api.token`, generated on first start: changes need a token
            // that only the host's administrators can read.
            api_token_file: None,
            // Reads show what every member gossips anyway; on loopback they stay open,
            // as Consul's and Serf's are.
            api_read_token: false,
            // Only the address itself: a DNS name could be rebound by a web page.
            api_allowed_hosts: Vec::new(),
            // An API registration must not run programs as the agent's user, nor probe
            // the network behind the agent: the config file, which only the host's
            // administrators write, may.
            api_allow_exec_checks: false,
            api_allow_remote_checks: false,
            api_tls_cert: None,
            api_tls_key: None,
            // Far beyond the local tools and scrapers of one host; bounds a flood.
            api_max_connections: crate::api::server::DEFAULT_MAX_CONNECTIONS,
            // See `dns_listen`: loopback, Consul's DNS port (the gossip port + 2 in dev).
            dns_addr: Listen::Default,
            // Short, so a cached answer outlives a failover by at most 5 s; long enough
            // that a busy client asks a few times a minute, not once per request.
            dns_ttl: Duration::from_secs(5),
            dns_rate_limit: crate::dns::limiter::DEFAULT_PER_SECOND,
            max_members: crate::proto::DEFAULT_MAX_MEMBERS,
            https_ca_file: None,
            // Keep nothing on disk unless asked: a restart then rejoins through seeds.
            data_dir: None,
            // Humans read logs more often than collectors parse them.
            log_format: LogFormat::Text,
            // Membership changes and warnings, not per-probe chatter.
            log_level: "info".into(),
            cluster_key_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            // Secure by default: dev mode must be asked for.
            dev: false,
            tags: BTreeMap::new(),
            // Alerting is the operator's choice of tools: none unless configured.
            hooks: Vec::new(),
            // An agent is a membership agent first: it offers services only when told.
            services: Vec::new(),
        }
    }
}

/// What [`AgentConfig::redacted`] puts in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A [`SettingsError::Invalid`] for `field`.
fn invalid(field: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid(ConfigError {
        field,
        reason: reason.into(),
    })
}

impl AgentConfig {
    /// Parses TOML text; `path` only labels errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<AgentConfig, SettingsError> {
        toml::from_str(text).map_err(|e| {
            let before = e.span().and_then(|span| text.get(..span.start));
            let line = before.map_or(0, |before| before.matches('\n').count() + 1);
            // The key on that line, when the error is about a value.
            let key = before
                .and_then(|before| text.lines().nth(before.matches('\n').count()))
                .and_then(|l| l.split_once('='))
                .map(|(key, _)| key.trim())
                .filter(|key| !key.is_empty() && !key.starts_with('['));
            let message = e.message().trim().replace('\n', " ");
            SettingsError::Parse {
                path: path.to_owned(),
                line,
                reason: match key {
                    Some(key) if !message.contains(key) => format!("`{key}`: {message}"),
                    _ => message,
                },
            }
        })
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<AgentConfig, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        AgentConfig::from_toml(&text, path)
    }

    /// Reads and merges config files in order (`--config`, then `--config-dir`'s files
    /// in name order): lists (`services`, `hooks`, `join`, `api_allowed_hosts`) are
    /// concatenated, `tags` merged, and any other key set by a later file replaces an
    /// earlier one. Each file must be a valid config on its own, so an error names the
    /// file and line. No files: the defaults.
    pub fn from_files(paths: &[PathBuf]) -> Result<AgentConfig, SettingsError> {
        let mut merged = toml::Table::new();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.to_owned(),
                source,
            })?;
            AgentConfig::from_toml(&text, path)?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| SettingsError::Parse {
                path: path.to_owned(),
                line: 0,
                reason: e.message().to_owned(),
            })?;
            for (key, value) in table {
                match (merged.get_mut(&key), value) {
                    (Some(toml::Value::Array(earlier)), toml::Value::Array(later)) => {
                        earlier.extend(later);
                    }
                    (Some(toml::Value::Table(earlier)), toml::Value::Table(later)) => {
                        earlier.extend(later);
                    }
                    (_, value) => {
                        merged.insert(key, value);
                    }
                }
            }
        }
        AgentConfig::deserialize(merged).map_err(|e| SettingsError::Parse {
            path: paths.last().cloned().unwrap_or_default(),
            line: 0,
            reason: format!("the files merged: {}", e.message()),
        })
    }

    /// The `*.toml` files directly in `dir`, in name order (a configuration management
    /// tool drops one file per service there).
    pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, SettingsError> {
        let read_error = |source| SettingsError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// This config with its secrets hidden, for printing (`--check-config`): webhook
    /// header values, and webhook URLs' paths and queries (a Slack or Teams webhook URL
    /// is itself the secret), become [`REDACTED`]. Key and token files are named by
    /// path only, so they need nothing.
    pub fn redacted(&self) -> AgentConfig {
        let mut config = self.clone();
        for hook in &mut config.hooks {
            for value in hook.headers.values_mut() {
                *value = REDACTED.into();
            }
            if let Some(url) = &mut hook.webhook {
                let scheme_end = url.find("://").map_or(0, |i| i + 3);
                if let Some(path) = url[scheme_end..].find(['/', '?']) {
                    url.truncate(scheme_end + path);
                    url.push('/');
                    url.push_str(REDACTED);
                }
            }
        }
        config
    }

    /// The effective config as TOML (what `--check-config` prints).
    pub fn to_toml(&self) -> String {
        // `validate` refuses the only values without one: paths that are not UTF-8.
        toml::to_string(self).expect("every validated field has a TOML form")
    }

    /// The API's address: `api_addr` if set, else in `--dev` 127.0.0.1 on the gossip
    /// port + 1 (so agents side by side on one host each get their own, and the first
    /// on 7946 gets the CLI's default, 7947), else [`DEFAULT_API_ADDR`]. `"off"` is
    /// refused by `validate`; here it reads as the default.
    pub fn api_listen(&self) -> ListenAddr {
        match self.api_addr {
            Listen::At(addr) => ListenAddr {
                addr,
                explicit: true,
            },
            Listen::Default | Listen::Off => ListenAddr {
                addr: self.next_to_gossip(1).unwrap_or(DEFAULT_API_ADDR),
                explicit: false,
            },
        }
    }

    /// The DNS interface's address, or `None` when it is off: `dns_addr` if set, else
    /// in `--dev` 127.0.0.1 on the gossip port + 2, else [`DEFAULT_DNS_ADDR`].
    pub fn dns_listen(&self) -> Option<ListenAddr> {
        match self.dns_addr {
            Listen::Off => None,
            Listen::At(addr) => Some(ListenAddr {
                addr,
                explicit: true,
            }),
            Listen::Default => Some(ListenAddr {
                addr: self.next_to_gossip(2).unwrap_or(DEFAULT_DNS_ADDR),
                explicit: false,
            }),
        }
    }

    /// In `--dev`, loopback on the gossip port + `offset` (port 0 when the gossip port
    /// is 0 or too high to add to: any free port); `None` outside `--dev`.
    fn next_to_gossip(&self, offset: u16) -> Option<SocketAddr> {
        self.dev.then(|| {
            let port = match self.bind.port() {
                0 => 0,
                port => port.checked_add(offset).unwrap_or(0),
            };
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        })
    }

    /// The node name (after load, always set; empty if it never was).
    pub fn node_name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The tags, checked against the wire's size bounds.
    pub fn tags(&self) -> Result<Tags, SettingsError> {
        Tags::from_pairs(self.tags.clone()).map_err(|e| invalid("tags", e.to_string()))
    }

    /// The API token from `api_token_file`, if one is set; a file that cannot be read
    /// or holds no usable token is a config error naming the field.
    pub fn api_token(&self) -> Result<Option<ApiToken>, SettingsError> {
        let Some(path) = &self.api_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "api_token_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        ApiToken::new(&text)
            .map(Some)
            .map_err(|e| invalid("api_token_file", format!("{}: {e}", path.display())))
    }

    /// The CA certificates of `https_ca_file`, if set; a file that cannot be read or
    /// holds no certificate is a config error naming the field.
    pub fn https_roots(
        &self,
    ) -> Result<Option<Vec<rustls::pki_types::CertificateDer<'static>>>, SettingsError> {
        self.https_ca_file
            .as_deref()
            .map(|path| {
                crate::transport::identity::read_certificates(path)
                    .map_err(|e| invalid("https_ca_file", e.to_string()))
            })
            .transpose()
    }

    /// Where the TLS identity comes from, reading the cluster key file if there is one,
    /// or reading and parsing the PKI files (and checking the key matches the
    /// certificate), so a bad file is a config error naming its field.
    pub fn tls_source(&self) -> Result<TlsSource, SettingsError> {
        if self.dev {
            return Ok(TlsSource::ClusterKey(ClusterKey::dev()));
        }
        if let Some(path) = &self.cluster_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "cluster_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let key = ClusterKey::parse(&text)
                .map_err(|e| invalid("cluster_key_file", format!("{}: {e}", path.display())))?;
            return Ok(TlsSource::ClusterKey(key));
        }
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                // Parsed now, not only at start, so a bad file is a config error. Read
                // here and parsed in memory, so an error names its field even when two
                // fields name the same file.
                let files = [("tls_ca", ca), ("tls_cert", cert), ("tls_key", key)];
                let mut pem = Vec::with_capacity(3);
                for (field, path) in files {
                    pem.push(std::fs::read(path).map_err(|e| {
                        invalid(field, format!("cannot read {}: {e}", path.display()))
                    })?);
                }
                let identity =
                    Identity::from_pem(&pem[0], &pem[1], &pem[2]).map_err(|e| match e {
                        IdentityError::Pem { path, reason } => {
                            let (field, file) = match path.to_str() {
                                Some("<ca>") => files[0],
                                Some("<key>") => files[2],
                                _ => files[1],
                            };
                            invalid(field, format!("{}: {reason}", file.display()))
                        }
                        e => invalid("tls_cert", e.to_string()),
                    })?;
                check_key_matches(cert, &pem[1], key, &pem[2])?;
                // The node key is the certificate's: it must name this node and be Ed25519.
                peer_cert::node_signer(&identity, self.node_name()).map_err(|e| match e {
                    IdentityError::NotANodeKey(_) => {
                        invalid("tls_key", format!("{}: {e}", key.display()))
                    }
                    e => invalid("tls_cert", format!("{}: {e}", cert.display())),
                })?;
                Ok(TlsSource::Pki {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            _ => Err(SettingsError::NoIdentity),
        }
    }

    /// The runtime config: validates, reads the key file, and takes the resolved seeds
    /// and the incarnation to start from (the data dir's, or 0).
    pub fn mesh_config(
        &self,
        seeds: Vec<SocketAddr>,
        incarnation: u64,
    ) -> Result<MeshConfig, SettingsError> {
        self.validate()?;
        let config = MeshConfig {
            advertise: self.advertise,
            region: Name::from(self.region.as_str()),
            zone: Name::from(self.zone.as_str()),
            tags: self.tags()?,
            cluster: self.cluster.clone(),
            swim: SwimConfig {
                max_members: self.max_members,
                ..SwimConfig::preset(&self.profile)?
            },
            seeds,
            // Names are resolved again at every retry and re-contact; addresses are
            // addresses.
            seed_names: self
                .join
                .iter()
                .filter(|seed| Seed::parse(seed).is_ok_and(|s| s.is_name()))
                .cloned()
                .collect(),
            incarnation,
            ..MeshConfig::new(self.node_name(), self.bind, self.tls_source()?)
        };
        config.validate()?;
        Ok(config)
    }

    /// Resolves the seeds to socket addresses: each DNS name to all its addresses. A
    /// seed that does not resolve is logged and skipped (the others may answer); in dev
    /// mode only loopback addresses are kept.
    pub async fn resolve_join(&self) -> Vec<SocketAddr> {
        self.resolve_seeds(true).await
    }

    /// [`AgentConfig::resolve_join`], logging seeds that do not resolve at debug level
    /// only: for retries, whose streak the caller logs once.
    pub async fn resolve_join_quietly(&self) -> Vec<SocketAddr> {
        self.resolve_seeds(false).await
    }

    async fn resolve_seeds(&self, loud: bool) -> Vec<SocketAddr> {
        let found = seeds::resolve_all(&self.join, |seed, e| {
            if loud {
                tracing::warn!(%seed, error = %e, "seed does not resolve; skipping it");
            } else {
                tracing::debug!(%seed, error = %e, "seed still does not resolve");
            }
        })
        .await;
        if !self.dev {
            return found;
        }
        found
            .into_iter()
            .filter(|addr| {
                let loopback = addr.ip().is_loopback();
                if !loopback {
                    tracing::warn!(%addr, "dev mode: skipping a non-loopback seed address");
                }
                loopback
            })
            .collect()
    }
}

/// Checks that the private key in `key_pem` (already parsed once) can sign and belongs
/// to the first certificate in `cert_pem`, as the TLS handshake will need.
fn check_key_matches(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<(), SettingsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("tls_cert", format!("{}: {e}", cert.display())))?;
    let private = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| invalid("tls_key", format!("{}: {e}", key.display())))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| invalid("tls_key", format!("{}: unusable key: {e}", key.display())))?;
    match rustls::sign::CertifiedKey::new(chain, signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(invalid(
                "tls_key",
                format!(
                    "{}: does not match the certificate in {} (tls_cert)",
                    key.display(),
                    cert.display()
                ),
            ))
        }
        Err(e) => Err(invalid("tls_cert", format!("{}: {e}", cert.display()))),
    }
}

/// Longest `dns_ttl`: past an hour a cached answer would hide a failover (and a
/// failback) for longer than any rule's timeout is likely to be.
pub const MAX_DNS_TTL: Duration = Duration::from_secs(3600);

/// Waits between seed resolution attempts: 1 s, doubling up to 30 s.
pub const RESOLVE_RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(30),
};

/// Resolves the seeds again and again until at least one address comes back, waiting
/// (through `sleep`) as [`RESOLVE_RETRY`] says before each attempt. For an agent whose
/// configured seeds did not resolve at start (DNS not ready yet): it must join once
/// they do, not stay a cluster of one. The resolver and the sleep are parameters so
/// tests need no DNS or clock.
pub async fn resolve_with_backoff<R, RF, S, SF>(mut resolve: R, mut sleep: S) -> Vec<SocketAddr>
where
    R: FnMut() -> RF,
    RF: Future<Output = Vec<SocketAddr>>,
    S: FnMut(Duration) -> SF,
    SF: Future<Output = ()>,
{
    let mut attempt = 1;
    loop {
        sleep(RESOLVE_RETRY.delay(attempt)).await;
        let seeds = resolve().await;
        if !seeds.is_empty() {
            return seeds;
        }
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A self-signed node certificate for `name` on an Ed25519 key, as PKI mode needs.
    pub(super) fn self_signed(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        rcgen::CertifiedKey {
            cert,
            signing_key: key,
        }
    }

    pub(super) fn dev() -> AgentConfig {
        AgentConfig {
            name: Some("a".into()),
            bind: "127.0.0.1:7946".parse().unwrap(),
            dev: true,
            ..AgentConfig::default()
        }
    }

    #[test]
    fn a_full_file_parses_and_round_trips() {
        let text = r#"
            name = "n1"
            bind = "127.0.0.1:7000"
            join = ["127.0.0.1:7001", "localhost:7002"]
            region = "eu"
            zone = "eu-1"
            profile = "local"
            log_format = "json"
            dns_addr = "127.0.0.1:8653"
            dns_ttl = "10s"
            dev = true
            [tags]
            role = "web"
        "#;
        let c = AgentConfig::from_toml(text, Path::new("a.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.tags.get("role").map(String::as_str), Some("web"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.dns_addr, Listen::At("127.0.0.1:8653".parse().unwrap()));
        assert_eq!(c.dns_ttl, Duration::from_secs(10));
        let again = AgentConfig::from_toml(&c.to_toml(), Path::new("b.toml")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn in_dev_the_default_api_and_dns_ports_follow_the_gossip_port() {
        let at = |addr: &str| SocketAddr::from_str(addr).unwrap();
        let mut c = AgentConfig {
            dev: true,
            bind: at("127.0.0.1:7956"),
            ..AgentConfig::default()
        };
        assert_eq!(
            c.api_listen(),
            ListenAddr {
                addr: at("127.0.0.1:7957"),
                explicit: false
            }
        );
        assert_eq!(c.dns_listen().map(|l| l.addr), Some(at("127.0.0.1:7958")));
        c.bind = at("127.0.0.1:65535");
        assert_eq!(c.api_listen().addr, at("127.0.0.1:0"), "no port past 65535");
        c.bind = at("127.0.0.1:0");
        assert_eq!(c.dns_listen().map(|l| l.addr), Some(at("127.0.0.1:0")));
        c.api_addr = Listen::At(at("127.0.0.1:9000"));
        assert_eq!(
            c.api_listen(),
            ListenAddr {
                addr: at("127.0.0.1:9000"),
                explicit: true
            }
        );
        let outside = AgentConfig::default();
        assert_eq!(outside.api_listen().addr, DEFAULT_API_ADDR);
        assert_eq!(outside.dns_listen().map(|l| l.addr), Some(DEFAULT_DNS_ADDR));
        assert!(
            !outside.to_toml().contains("api_addr"),
            "the default is not written"
        );
    }

    #[test]
    fn dns_is_on_by_default_and_off_round_trips() {
        let c = AgentConfig::default();
        assert_eq!(c.dns_listen().map(|l| l.addr), Some(DEFAULT_DNS_ADDR));
        assert_eq!(c.dns_ttl, Duration::from_secs(5));
        let text = "dev = true\nname = \"a\"\nbind = \"127.0.0.1:7000\"\ndns_addr = \"off\"\n";
        let c = AgentConfig::from_toml(text, Path::new("a.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dns_listen(), None);
        assert!(
            c.to_toml().contains("dns_addr = \"off\""),
            "{}",
            c.to_toml()
        );
        let again = AgentConfig::from_toml(&c.to_toml(), Path::new("b.toml")).unwrap();
        assert_eq!(again, c);
        let err = AgentConfig::from_toml("dns_addr = \"nowhere\"\n", Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dns_addr") && err.contains("\"off\""), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_line() {
        let err =
            AgentConfig::from_toml("dev = true\nbindd = \"x\"\n", Path::new("a.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 2") && text.contains("bindd"), "{text}");
        let err = AgentConfig::from_toml("bind = \"nope\"\n", Path::new("a.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 1") && text.contains("`bind`"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        let err = AgentConfig::from_toml(
            "dev = true
[tags]
k = 1
",
            Path::new("a.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn an_unreadable_or_bad_key_file_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        let c = AgentConfig {
            dev: false,
            cluster_key_file: Some(path.clone()),
            ..dev()
        };
        let err = c.mesh_config(Vec::new(), 0).unwrap_err();
        assert!(err.to_string().contains("cluster_key_file"), "{err}");
        std::fs::write(&path, "not a key\n").unwrap();
        let err = c.mesh_config(Vec::new(), 0).unwrap_err();
        assert!(err.to_string().contains("cluster_key_file"), "{err}");
        let key = ClusterKey::generate().unwrap();
        std::fs::write(&path, format!("{key}\n")).unwrap();
        let mesh = c.mesh_config(Vec::new(), 3).unwrap();
        assert_eq!(mesh.incarnation, 3);
        assert!(matches!(mesh.tls, TlsSource::ClusterKey(k) if k == key));
    }

    #[test]
    fn a_pki_file_that_does_not_parse_names_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let made = self_signed("a");
        // Distinct files: an error names the field by the file it is about.
        let ca = write("ca.pem", &made.cert.pem());
        let cert = write("cert.pem", &made.cert.pem());
        let key = write("key.pem", &made.signing_key.serialize_pem());
        let other = self_signed("b");
        let other_key = write("other-key.pem", &other.signing_key.serialize_pem());
        // Chains and matches, but is not this node's: ECDSA, or naming another node.
        let ecdsa = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let ecdsa_cert = write("ecdsa.pem", &ecdsa.cert.pem());
        let ecdsa_key = write("ecdsa-key.pem", &ecdsa.signing_key.serialize_pem());
        let b_cert = write("b.pem", &other.cert.pem());
        let garbage = write("garbage.pem", "-----BEGIN GARBAGE-----\nnot pem\n");
        let missing = dir.path().join("missing.pem");
        let pki = |ca: &Path, cert: &Path, key: &Path| AgentConfig {
            dev: false,
            tls_ca: Some(ca.to_owned()),
            tls_cert: Some(cert.to_owned()),
            tls_key: Some(key.to_owned()),
            ..dev()
        };
        pki(&ca, &cert, &key).mesh_config(Vec::new(), 0).unwrap();
        for (config, expected) in [
            (pki(&garbage, &cert, &key), "tls_ca"),
            (pki(&missing, &cert, &key), "tls_ca"),
            (pki(&ca, &garbage, &key), "tls_cert"),
            (pki(&ca, &missing, &key), "tls_cert"),
            (pki(&ca, &cert, &garbage), "tls_key"),
            (pki(&ca, &cert, &cert), "tls_key"),
            (pki(&ca, &cert, &other_key), "tls_key"),
            (pki(&ecdsa_cert, &ecdsa_cert, &ecdsa_key), "tls_key"),
            (pki(&b_cert, &b_cert, &other_key), "tls_cert"),
        ] {
            match config.mesh_config(Vec::new(), 0) {
                Err(SettingsError::Invalid(e)) => assert_eq!(e.field, expected, "{e}"),
                other => panic!("expected {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn dev_mode_builds_a_mesh_config_with_the_dev_key() {
        let seeds = vec!["127.0.0.1:7001".parse().unwrap()];
        let c = AgentConfig {
            profile: "local".into(),
            region: "r".into(),
            ..dev()
        };
        let mesh = c.mesh_config(seeds.clone(), 0).unwrap();
        assert_eq!(mesh.seeds, seeds);
        assert_eq!(mesh.swim, SwimConfig::local());
        assert_eq!(mesh.region, "r");
        assert!(matches!(mesh.tls, TlsSource::ClusterKey(k) if k == ClusterKey::dev()));
    }

    #[tokio::test]
    async fn unresolved_seeds_are_retried_with_backoff_until_one_resolves() {
        use std::sync::{Arc, Mutex};
        let c = AgentConfig {
            join: vec!["nonexistent.invalid:7946".into()],
            ..dev()
        };
        assert!(c.resolve_join_quietly().await.is_empty());
        let found: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let waits = Arc::new(Mutex::new(Vec::new()));
        let mut attempts = 0;
        let seeds = resolve_with_backoff(
            || {
                attempts += 1;
                let now = attempts;
                let c = c.clone();
                async move {
                    if now < 8 {
                        c.resolve_join_quietly().await
                    } else {
                        vec![found]
                    }
                }
            },
            |d| {
                waits.lock().unwrap().push(d);
                async {}
            },
        )
        .await;
        assert_eq!(seeds, vec![found]);
        assert_eq!(attempts, 8);
        let secs: Vec<u64> = waits
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[tokio::test]
    async fn seeds_resolve_to_all_their_addresses_once_each() {
        let c = AgentConfig {
            join: vec![
                "127.0.0.1:7001".into(),
                "localhost:7001".into(),
                "[::1]:7002".into(),
            ],
            ..dev()
        };
        let seeds = c.resolve_join().await;
        let v4: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let v6: SocketAddr = "[::1]:7002".parse().unwrap();
        assert_eq!(seeds.iter().filter(|s| **s == v4).count(), 1, "{seeds:?}");
        assert!(seeds.contains(&v6), "{seeds:?}");
        assert!(seeds.iter().all(|s| s.ip().is_loopback()), "{seeds:?}");
    }

    #[test]
    fn hooks_parse_with_defaults_and_round_trip() {
        let text = r#"
            dev = true
            name = "a"
            bind = "127.0.0.1:7000"
            [tags]
            role = "web"

            [[hooks]]
            name = "page-oncall"
            events = ["member-failed", "member-left"]
            command = ["/usr/local/bin/page", "--team", "ops"]

            [[hooks]]
            events = ["*"]
            webhook = "https://alerts.example.com/muster?x=1"
            timeout = "500ms"
            retries = 0
            headers = { Authorization = "Bearer x" }
        "#;
        let c = AgentConfig::from_toml(text, Path::new("a.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.hooks.len(), 2);
        let [page, web] = [&c.hooks[0], &c.hooks[1]];
        assert_eq!(page.name_at(0), "page-oncall");
        assert_eq!(page.timeout, crate::hooks::config::DEFAULT_HOOK_TIMEOUT);
        assert_eq!(page.retries, crate::hooks::config::DEFAULT_HOOK_RETRIES);
        assert_eq!(
            page.kinds(0).unwrap(),
            [
                crate::events::journal::EventKind::MemberFailed,
                crate::events::EventKind::MemberLeft
            ]
        );
        assert_eq!(web.name_at(1), "hook-1");
        assert_eq!(web.timeout, Duration::from_millis(500));
        assert_eq!(web.retries, 0);
        assert_eq!(
            web.kinds(1).unwrap(),
            crate::events::journal::EventKind::ALL
        );
        assert_eq!(web.headers["Authorization"], "Bearer x");
        assert_eq!(c.tags["role"], "web");
        let again = AgentConfig::from_toml(&c.to_toml(), Path::new("b.toml")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_hook_keys_and_bad_durations_are_parse_errors() {
        let text = "dev = true\n[[hooks]]\nevents = [\"*\"]\ncommand = [\"x\"]\ncmd = 1\n";
        let err = AgentConfig::from_toml(text, Path::new("a.toml")).unwrap_err();
        assert!(err.to_string().contains("cmd"), "{err}");
        let text = "dev = true\n[[hooks]]\nevents = [\"*\"]\ncommand = [\"x\"]\ntimeout = \"10\"\n";
        let err = AgentConfig::from_toml(text, Path::new("a.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 5") && text.contains("expected a number and a unit"),
            "{text}"
        );
    }
}
