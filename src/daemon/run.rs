//! [`run`]: one agent's life once its config is loaded and valid. The mesh, the local
//! HTTP API on `api_addr`, the DNS interface on `dns_addr` (unless off), the services and
//! their checks, the hooks, and the data dir (restored at start, saved every
//! [`SAVE_INTERVAL`] when changed and before leaving); then, on the first [`Stop`]
//! request or `POST /v1/leave`, a graceful leave bounded by [`leave_bound`], during which
//! `/v1/health` answers 503 and DNS still answers; then DNS and the API stop. A second
//! stop request during the leave ends the run at once.
//!
//! Logging and signals are the caller's: the binary installs a subscriber and turns
//! SIGINT and SIGTERM into stop requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::agent::{AgentError, DriverEnd, Mesh};
use crate::api::server::{ServerLimits, ServerStats};
use crate::api::{self, Access, ApiState, LeaveRequest};
use crate::daemon::data_dir::{self, DataDir, SavedState};
use crate::daemon::settings::{self, AgentConfig};
use crate::daemon::startup::{
    api_token, bind_api, bind_dns, data_dir_error, node_key, warn_if_readable,
};
use crate::dns::{DnsServer, DnsSockets, RateLimit};
use crate::proto::{ConfigError, SwimConfig, rng};

/// Shortest bound on a graceful leave: `local` and `lan` leaves finish well within it.
const LEAVE_BOUND_MIN: Duration = Duration::from_secs(10);

/// Longest a graceful leave may take before the agent exits anyway: [`LEAVE_BOUND_MIN`],
/// or longer when the profile's leave timeout needs it (`wan`), with a second to spare
/// beyond the mesh's own wait. After that the peers' failure detector covers the rest.
pub fn leave_bound(swim: &SwimConfig) -> Duration {
    (swim.leave_timeout * 2 + Duration::from_secs(2)).max(LEAVE_BOUND_MIN)
}

/// How often the data dir's state is saved when it changed: a restart after a crash
/// rejoins through members at most this stale.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long the API may take to finish requests in flight once the agent has left: its
/// answers are small snapshots, so anything slower is a stuck client.
const API_DRAIN: Duration = Duration::from_secs(5);

/// Sockets bound before [`run`] (by a test that wants to know the ports first, or a
/// service manager's socket activation); `None` binds what the config says.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The HTTP API's listener, instead of binding `api_addr`.
    pub api: Option<TcpListener>,
    /// The DNS interface's sockets, instead of binding `dns_addr` (ignored when it is
    /// `"off"`).
    pub dns: Option<DnsSockets>,
}

/// Requests to stop, each naming who asked (`"SIGTERM"`): the first starts a graceful
/// leave, a second one during the leave ends the run at once.
#[derive(Debug)]
pub struct Stop(mpsc::Receiver<&'static str>);

impl Stop {
    /// A sender of stop requests and the [`Stop`] that [`run`] takes. Dropping every
    /// sender is not a request: an agent whose caller went away keeps running.
    pub fn channel() -> (mpsc::Sender<&'static str>, Stop) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Stop(rx))
    }

    /// The next request; pending for ever once every sender is gone.
    async fn next(&mut self) -> &'static str {
        match self.0.recv().await {
            Some(by) => by,
            None => std::future::pending().await,
        }
    }
}

/// Why a run ended other than by a leave (a leave that did not complete in time is
/// logged, and still a normal end).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent could not start: a setting that cannot work ([`ConfigError`] inside,
    /// exit status 2), or a port that cannot be bound, a mesh or service that cannot
    /// start (exit status 1). Found before the node announced itself.
    #[error("{0:#}")]
    Start(#[from] anyhow::Error),
    /// Another live member holds this agent's name (its key signed it first); the
    /// message names the member and its address.
    #[error("{0}")]
    NameTaken(String),
    /// The mesh driver or the HTTP API server stopped by itself (a bug): the agent
    /// stops rather than answer from a membership that no longer moves.
    #[error("{0}")]
    Internal(String),
    /// A second stop request (named) cut the leave short.
    #[error("{0} during the leave: stopped at once")]
    Interrupted(&'static str),
}

impl RunError {
    /// The process exit status for this end, by the conventions the CLI documents:
    /// 2 for a config error, 1 for any other failure to start or a taken name, 70
    /// (BSD's EX_SOFTWARE) for an internal failure, 130 (128 + SIGINT) when a second
    /// request interrupted the leave.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Start(e) if e.downcast_ref::<ConfigError>().is_some() => 2,
            RunError::Start(_) | RunError::NameTaken(_) => 1,
            RunError::Internal(_) => 70,
            RunError::Interrupted(_) => 130,
        }
    }
}

/// Runs one agent: saves the new incarnation (write-ahead), starts the mesh and what
/// serves on it, then saves its state now and then until a stop request or
/// `POST /v1/leave` (joining late if the seeds did not resolve at start), then leaves.
pub async fn run(
    config: AgentConfig,
    listeners: Listeners,
    mut stop: Stop,
) -> Result<(), RunError> {
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
    let mut mesh_config = config
        .mesh_config(seeds.clone(), incarnation)
        .map_err(anyhow::Error::from)?;
    mesh_config.node_key = node_key(&config, data_dir.as_ref())?.map(Arc::new);
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
    let api_listener = match listeners.api {
        Some(listener) => listener,
        None => bind_api(config.api_listen()).await?,
    };
    let api_addr = api_listener
        .local_addr()
        .context("cannot read the HTTP API's bound address")?;
    let dns_sockets = match (config.dns_listen(), listeners.dns) {
        (None, _) => None,
        (Some(_), Some(sockets)) => Some(sockets),
        (Some(listen), None) => bind_dns(listen).await?,
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
    if let Some(roots) = config.https_roots().map_err(anyhow::Error::from)? {
        tracing::info!(
            file = %config.https_ca_file.as_deref().unwrap_or_else(|| std::path::Path::new("")).display(),
            certificates = roots.len(),
            "https:// checks and webhooks also trust these CAs"
        );
        crate::http_client::trust_also(roots);
    }
    let services = crate::routing::services::Services::start(&mesh, &config.services)
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
    let server_stats = Arc::new(ServerStats::default());
    server_stats.set_fd_limit(fd_limit);
    api_state = api_state
        .with_access(access)
        .with_stream_limit((limits.max_connections / 2).min(api::DEFAULT_MAX_STREAMS))
        .with_metrics(server_stats.clone());
    // Hooks follow the journal off the protocol path; dropping the runner stops them.
    let hooks = Arc::new(
        crate::hooks::HookRunner::spawn(&config.hooks, api_state.journal().subscribe())
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
    let mut api_server = tokio::spawn(api_server);
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
        mesh.control()
            .crash_driver()
            .await
            .map_err(anyhow::Error::from)?;
    }
    // Who asked to leave: a stop request, or `POST /v1/leave` (answered once the leave
    // is done).
    let (which, api_leave) = loop {
        tokio::select! {
            why = mesh.driver_ended() => match why {
                DriverEnd::NameTaken(why) => return Err(RunError::NameTaken(why)),
                DriverEnd::Failed(why) => {
                    tracing::error!(why, "the mesh driver stopped; exiting");
                    return Err(RunError::Internal(format!("the mesh driver stopped: {why}")));
                }
            },
            ended = &mut api_server => {
                tracing::error!(outcome = ?ended, "the HTTP API server stopped; exiting");
                return Err(RunError::Internal(format!(
                    "the HTTP API server stopped: {ended:?}"
                )));
            }
            which = stop.next() => break (which, None),
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
                    Err(AgentError::LeaveTimeout(bound))
                }
            };
            if let Some(reply) = api_leave {
                // The client may have gone; the agent exits either way.
                let _ = reply.send(outcome);
            }
        }
        which = stop.next() => {
            tracing::warn!(signal = which, "second signal: exiting at once");
            return Err(RunError::Interrupted(which));
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

/// A seed for random choices (the join sample, the demo's crashes): different on every
/// start (`RandomState` is keyed from the system's random source).
pub fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
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
