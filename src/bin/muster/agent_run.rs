//! Running `muster agent` once its config is loaded and valid: logging, the mesh, the
//! local HTTP API on `api_addr`, the DNS interface on `dns_addr` (unless off), the data dir (restored at start, saved every
//! [`SAVE_INTERVAL`] when changed and before leaving), and shutdown on SIGINT or SIGTERM
//! (a graceful leave, bounded by [`leave_bound`], during which `/v1/health` answers 503
//! and DNS still answers; then DNS and the API stop; a second signal exits at once).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use muster::Mesh;
use muster::agent::data_dir::{self, DataDir, DataDirError, SavedState};
use muster::agent::settings::{self, AgentConfig, ListenAddr, LogFormat};
use muster::agent::{DriverEnd, node_key};
use muster::api::server::{ServerLimits, ServerStats};
use muster::api::{self, Access, ApiState, ApiToken, LeaveRequest};
use muster::dns::{DnsServer, DnsSockets, RateLimit};
use muster::proto::NodeSigner;
use muster::proto::{ConfigError, SwimConfig, rng};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

/// Shortest bound on a graceful leave: `local` and `lan` leaves finish well within it.
const LEAVE_BOUND_MIN: Duration = Duration::from_secs(10);

/// Longest a graceful leave may take before the agent exits anyway: [`LEAVE_BOUND_MIN`],
/// or longer when the profile's leave timeout needs it (`wan`), with a second to spare
/// beyond the mesh's own wait. After that the peers' failure detector covers the rest.
fn leave_bound(swim: &SwimConfig) -> Duration {
    (swim.leave_timeout * 2 + Duration::from_secs(2)).max(LEAVE_BOUND_MIN)
}

/// Exit code when a second signal cuts the leave short (128 + SIGINT, by shell custom).
const EXIT_INTERRUPTED: i32 = 130;

/// Exit code when the mesh driver or the API server stopped by itself (a bug): the
/// agent stops rather than answer from a membership that no longer moves, and the
/// service manager restarts it (BSD's EX_SOFTWARE).
const EXIT_INTERNAL: i32 = 70;

/// How often the data dir's state is saved when it changed: a restart after a crash
/// rejoins through members at most this stale.
const SAVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long the API may take to finish requests in flight once the agent has left: its
/// answers are small snapshots, so anything slower is a stuck client.
const API_DRAIN: Duration = Duration::from_secs(5);

/// Sets up logging and runs the agent until a signal; reports a failure to start.
/// `unknown_vars` are `MUSTER_*` variables no setting reads, warned about once.
pub(crate) fn run(config: AgentConfig, unknown_vars: &[String]) -> ExitCode {
    init_logging(&config);
    for var in unknown_vars {
        tracing::warn!(
            var,
            "not a setting's variable (MUSTER_ and the setting's key in capitals); ignored"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("muster: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(crate::EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A data dir that cannot be read or written: a config error (exit 2) naming the field,
/// found before the node announces itself.
fn data_dir_error(e: DataDirError) -> anyhow::Error {
    ConfigError {
        field: "data_dir",
        reason: e.to_string(),
    }
    .into()
}

/// A seed for random choices (the join sample, the demo's crashes): different on every
/// start (`RandomState` is keyed from the system's random source).
pub(crate) fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// Logs to stderr in the configured format, filtered by the configured level (already
/// validated, so the filter parses).
fn init_logging(config: &AgentConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Saves the new incarnation (write-ahead), starts the mesh, then saves its state now
/// and then until a signal (joining late if the seeds did not resolve at start), then
/// leaves.
async fn serve(config: AgentConfig) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    // SIGHUP's default action would end the agent without a leave (peers would see a
    // failure, e.g. after a log rotation script's `kill -HUP`): caught, logged, ignored.
    let mut sighup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let name = config.node_name().to_owned();
    let data_dir = config.data_dir.as_ref().map(DataDir::new);
    let saved = match &data_dir {
        Some(dir) => dir.load(&name).map_err(data_dir_error)?,
        None => None,
    };
    let incarnation = saved.as_ref().map_or(0, SavedState::next_incarnation);
    let configured = config.resolve_join().await;
    let remembered: Vec<SocketAddr> = saved.iter().flat_map(|s| s.members.clone()).collect();
    // The seeds plus a sample of the remembered members, not all of them: each gets a
    // full-state join, and the driver re-contacts its seeds.
    let seeds = data_dir::join_seeds(&configured, &remembered, &mut rng::node_rng(random_seed()));
    let mut mesh_config = config.mesh_config(seeds.clone(), incarnation)?;
    mesh_config.node_key = node_key(&config, data_dir.as_ref())?.map(std::sync::Arc::new);
    let bound = leave_bound(&mesh_config.swim);
    // Before any socket: the connection limits are sized from it.
    let fd_limit = api::server::raise_fd_limit();
    warn_if_readable(&config, data_dir.as_ref());
    let api_tls = match (&config.api_tls_cert, &config.api_tls_key) {
        (Some(cert), Some(key)) => Some(api::server::tls_acceptor(cert, key).map_err(|e| {
            anyhow::Error::from(ConfigError {
                field: e.field,
                reason: e.reason,
            })
        })?),
        _ => None,
    };
    // Bound before the mesh starts, so a taken port the operator chose stops the agent
    // before it joins (a default one that is taken is not fatal: see `bind_api`).
    let api_listener = bind_api(config.api_listen()).await?;
    let api_addr = api_listener
        .local_addr()
        .context("cannot read the HTTP API's bound address")?;
    let dns_sockets = match config.dns_listen() {
        Some(listen) => bind_dns(listen).await?,
        None => None,
    };
    // Write-ahead: record the new incarnation before announcing it, so an unwritable
    // data dir stops the agent before it joins, and a crash before the first periodic
    // save cannot lead the next start to announce it again.
    let mut last_saved = SavedState {
        name: name.clone(),
        incarnation,
        members: remembered,
    };
    if let Some(dir) = &data_dir {
        dir.save(&last_saved).map_err(data_dir_error)?;
    }
    let mut mesh = Mesh::start(mesh_config)
        .await
        .context("cannot start the mesh")?;
    let (leave_tx, mut leave_rx) = mpsc::channel::<LeaveRequest>(4);
    // Health checks and route answers: the services in the config, plus any the API
    // registers later.
    if let Some(roots) = config.https_roots()? {
        tracing::info!(
            file = %config.https_ca_file.as_deref().unwrap_or_else(|| std::path::Path::new("")).display(),
            certificates = roots.len(),
            "https:// checks and webhooks also trust these CAs"
        );
        muster::hooks::webhook::trust_also(roots);
    }
    let services = muster::routing::services::Services::start(&mesh, &config.services)
        .context("cannot start the services")?;
    if !config.services.is_empty() {
        tracing::info!(
            services = config.services.len(),
            "services and health checks running"
        );
    }
    let mut api_state = ApiState::with_services(&mesh, services.clone()).leave_via(leave_tx);
    let dns = match dns_sockets {
        Some(sockets) => {
            let server = DnsServer::start(sockets, &mesh.view(), services.clone(), config.dns_ttl)
                .context("cannot start the DNS interface")?
                .with_rate_limit(RateLimit::per_second(config.dns_rate_limit));
            api_state = api_state.with_metrics(server.stats());
            Some(server)
        }
        None => None,
    };
    let token = api_token(&config, data_dir.as_ref())?;
    let access = Access {
        closed_without_token: !config.dev,
        token: token.clone(),
        read_token: config.api_read_token,
        allowed_hosts: config
            .api_allowed_hosts
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        allow_exec_checks: config.api_allow_exec_checks,
        allow_remote_checks: config.api_allow_remote_checks,
        own_addrs: [mesh.local_addr().ip(), mesh.advertise_addr().ip()]
            .into_iter()
            .filter(|ip| !ip.is_unspecified())
            .collect(),
    };
    match &token {
        Some(_) if config.api_token_file.is_none() => tracing::info!(
            file = %data_dir.as_ref().map(|d| d.path().join(api::TOKEN_FILE).display().to_string()).unwrap_or_default(),
            "API changes need the token in the data dir (the CLI on this host finds it there)"
        ),
        Some(_) => {}
        None if config.dev => {
            tracing::warn!("dev mode: API changes need no token (the API listens on loopback only)")
        }
        None => tracing::warn!(
            "the API refuses changes: no token (set data_dir, where one is generated, or \
             api_token_file)"
        ),
    }
    let limits = ServerLimits {
        max_connections: config.api_max_connections,
        ..ServerLimits::default()
    }
    .fitted(fd_limit);
    let server_stats = std::sync::Arc::new(ServerStats::default());
    server_stats.set_fd_limit(fd_limit);
    api_state = api_state
        .with_access(access)
        .with_stream_limit((limits.max_connections / 2).min(api::DEFAULT_MAX_STREAMS))
        .with_metrics(server_stats.clone());
    // Hooks follow the journal off the protocol path; dropping the runner stops them.
    let hooks = std::sync::Arc::new(
        muster::hooks::HookRunner::spawn(&config.hooks, api_state.journal().subscribe())
            .context("cannot start the event hooks")?,
    );
    if !hooks.is_empty() {
        tracing::info!(hooks = config.hooks.len(), "event hooks running");
        api_state = api_state.with_metrics(hooks.clone());
    }
    if !config.join.is_empty() {
        // Seeds were configured, whether or not they resolved: alone is not healthy.
        api_state.expect_peers();
    }
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let api_server = api::server::serve(
        api_listener,
        api::router(api_state.clone()),
        limits,
        api_tls,
        server_stats,
        async {
            // Sent, or the sender dropped: either way the agent is stopping.
            let _ = api_stopped.await;
        },
    );
    let api_server = tokio::spawn(api_server);
    tracing::info!(
        api = %api_addr,
        tls = config.api_tls_cert.is_some(),
        max_connections = limits.max_connections,
        fd_limit,
        "HTTP API listening"
    );
    match &dns {
        Some(dns) => {
            let addr = dns.local_addr();
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    dns = %addr,
                    "THE DNS INTERFACE IS BOUND TO A NON-LOOPBACK ADDRESS: anyone who can \
                     reach it can list this cluster's services, their instances' addresses \
                     and its node names, and can use it to reflect UDP traffic (answers are \
                     larger than queries). Bind dns_addr to 127.0.0.1 and let a local \
                     resolver forward muster. to it, or firewall it"
                );
            }
            tracing::info!(dns = %addr, ttl = ?config.dns_ttl, "DNS interface listening");
        }
        None => tracing::info!("DNS interface off (dns_addr = \"off\")"),
    }
    tracing::info!(
        name = %mesh.name(),
        listen = %mesh.local_addr(),
        advertise = %mesh.advertise_addr(),
        cluster = %config.cluster,
        profile = %config.profile,
        dev = config.dev,
        incarnation,
        ?seeds,
        remembered = last_saved.members.len(),
        "agent listening"
    );
    // Seeds were configured but none resolves (DNS not ready?): keep resolving, with
    // backoff, and join once one does, rather than stay a cluster of one.
    let mut resolving = (!config.join.is_empty() && configured.is_empty()).then(|| {
        tracing::warn!(
            join = ?config.join,
            "no seed resolves; retrying with backoff and joining once one does"
        );
        let config = config.clone();
        tokio::spawn(async move {
            let config = &config;
            settings::resolve_with_backoff(
                move || config.resolve_join_quietly(),
                tokio::time::sleep,
            )
            .await
        })
    });
    let mut save_timer = tokio::time::interval(SAVE_INTERVAL);
    #[cfg(debug_assertions)]
    if std::env::var_os("MUSTER_TEST_CRASH_DRIVER").is_some() {
        tracing::warn!("MUSTER_TEST_CRASH_DRIVER is set (debug build): crashing the mesh driver");
        mesh.control().crash_driver().await?;
    }
    let mut api_server = api_server;
    // Who asked to leave: a signal, or `POST /v1/leave` (answered once the leave is done).
    let (which, api_leave) = loop {
        tokio::select! {
            _ = sighup.recv() => {
                tracing::warn!(
                    "SIGHUP: the config is not reloaded (not supported yet); \
                     restart the agent (SIGTERM leaves gracefully) to apply changes"
                );
            }
            why = mesh.driver_ended() => match why {
                DriverEnd::NameTaken(why) => {
                    eprintln!("error: {why}");
                    std::process::exit(1);
                }
                DriverEnd::Failed(why) => {
                    tracing::error!(why, "the mesh driver stopped; exiting");
                    std::process::exit(EXIT_INTERNAL);
                }
            },
            ended = &mut api_server => {
                tracing::error!(outcome = ?ended, "the HTTP API server stopped; exiting");
                std::process::exit(EXIT_INTERNAL);
            }
            which = next_signal(&mut sigint, &mut sigterm) => break (which, None),
            Some(reply) = leave_rx.recv() => break ("POST /v1/leave", Some(reply)),
            resolved = async { resolving.as_mut().expect("guarded by is_some").await },
                if resolving.is_some() => {
                resolving = None;
                match resolved {
                    Ok(seeds) => {
                        tracing::info!(?seeds, "seeds resolve now; joining through them");
                        if let Err(e) = mesh.join(seeds).await {
                            tracing::warn!(error = %e, "cannot join through the resolved seeds");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "seed resolution task failed"),
                }
            }
            _ = save_timer.tick() => {
                let Some(dir) = &data_dir else { continue };
                let now = SavedState::of(&name, &mesh.members());
                if now != last_saved {
                    match dir.save(&now) {
                        Ok(()) => last_saved = now,
                        Err(e) => tracing::warn!(error = %e, "cannot save the data dir; will retry"),
                    }
                }
            }
        }
    };
    tracing::info!(
        by = which,
        ?bound,
        "leaving the cluster; a second signal exits at once"
    );
    api_state.set_leaving();
    if let Some(resolving) = resolving.take() {
        resolving.abort();
    }
    if let Some(dir) = &data_dir
        && let Err(e) = dir.save(&SavedState::of(&name, &mesh.members()).leaving())
    {
        tracing::warn!(error = %e, "cannot save the data dir before leaving");
    }
    tokio::select! {
        outcome = tokio::time::timeout(bound, mesh.leave()) => {
            let outcome = match outcome {
                Ok(Ok(())) => {
                    tracing::info!("left the cluster; exiting");
                    Ok(())
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "leave incomplete; exiting");
                    Err(e)
                }
                Err(_) => {
                    tracing::warn!(?bound, "leave did not finish in time; exiting");
                    Err(muster::agent::AgentError::LeaveTimeout(bound))
                }
            };
            if let Some(reply) = api_leave {
                // The client may have gone; the agent exits either way.
                let _ = reply.send(outcome);
            }
        }
        which = next_signal(&mut sigint, &mut sigterm) => {
            tracing::warn!(signal = which, "second signal: exiting at once");
            std::process::exit(EXIT_INTERRUPTED);
        }
    }
    services.shutdown();
    if let Some(dns) = dns {
        dns.shutdown().await;
        tracing::info!("DNS interface stopped");
    }
    // Event streams never end by themselves: end them so the server can drain.
    api_state.close_streams();
    // Receiver gone means the server already ended; its outcome is read below.
    let _ = stop_api.send(());
    match tokio::time::timeout(API_DRAIN, api_server).await {
        Ok(Ok(())) => tracing::info!("HTTP API stopped"),
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP API task failed"),
        Err(_) => tracing::warn!(?API_DRAIN, "HTTP API requests still open; exiting anyway"),
    }
    Ok(())
}

/// Binds the API. An address the operator set that cannot be bound is fatal (exit 1).
/// The default one (`api_addr` unset) that is taken, e.g. by another agent on this
/// host, moves the API to a free port on the same address, logged with the setting
/// that chooses one.
async fn bind_api(listen: ListenAddr) -> anyhow::Result<TcpListener> {
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
async fn bind_dns(listen: ListenAddr) -> anyhow::Result<Option<DnsSockets>> {
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
fn api_token(config: &AgentConfig, data_dir: Option<&DataDir>) -> anyhow::Result<Option<ApiToken>> {
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
fn node_key(
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
fn warn_if_readable(config: &AgentConfig, data_dir: Option<&DataDir>) {
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

/// Waits for SIGINT or SIGTERM; returns its name.
async fn next_signal(sigint: &mut Signal, sigterm: &mut Signal) -> &'static str {
    tokio::select! {
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leave_bound_covers_the_profiles_leave_timeout() {
        for (profile, secs) in [("local", 10), ("lan", 10), ("wan", 22)] {
            let swim = SwimConfig::preset(profile).expect("a known profile");
            assert_eq!(leave_bound(&swim), Duration::from_secs(secs), "{profile}");
        }
    }
}
