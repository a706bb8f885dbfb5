//! `muster demo`: a local cluster of dev agents in one process, so a newcomer sees Muster
//! work in ten seconds without a second host.
//!
//! It starts N meshes on 127.0.0.1 with the development key (all joining through
//! `demo-1`, each serving the HTTP API on its own port), then crashes a random node on a
//! schedule or on a key press (`Mesh::shutdown`: no leave, as a crash), measures how long
//! the survivors take to mark it suspect and failed, brings it back at the same address
//! with a higher incarnation, and measures how long until every node agrees it is alive.
//! "Every survivor knows" is computed from each surviving mesh's own `members()`
//! snapshot, so the figures are what the nodes believe, not what the demo did.
//!
//! `demo-1` is the observer: it is never crashed, so the members table shows one
//! consistent view. On a terminal the screen is redrawn in place (about four times a
//! second and on every membership change); otherwise only the intro and one line per
//! event are printed, so a piped run reads as a log.

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use clap::Args;
use muster::Mesh;
use muster::agent::{Members, MeshConfig, TlsSource};
use muster::api::{self, ApiState, Status};
use muster::proto::{SwimConfig, rng};
use muster::transport::ClusterKey;
use muster::wire::MemberState;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::cli_query::table;

mod observe;
mod screen;
mod terminal;

use terminal::{Key, SingleKeys, read_keys};

/// How often the screen is redrawn and the schedule checked even when nothing changed:
/// often enough that the "down for" and "since" columns tick smoothly.
const REFRESH: Duration = Duration::from_millis(250);

/// Events kept on screen: enough for one crash-detect-restart cycle and the one before.
const LOG_LINES: usize = 8;

/// The demo's cluster name: its nodes refuse handshakes with a `--dev` agent of the
/// default cluster that may be running on the same machine.
const CLUSTER: &str = "muster-demo";

/// Index of the observer, `demo-1`: the seed everyone joins through, never crashed.
const OBSERVER: usize = 0;

/// How long a restart waits for its old address before taking a new port: a crashed
/// mesh's socket normally outlives it by well under a second (closed connections
/// draining), but has been seen held far longer in one process.
const HELD_LIMIT: Duration = Duration::from_secs(5);

/// Longest quiet spell after a recovery before the next scheduled crash (shorter when
/// `--crash-every` is): long enough to read the last cycle's lines.
const QUIET_AFTER_RECOVERY: Duration = Duration::from_secs(5);

/// How long stopping all nodes may take before the demo exits anyway.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Regions the nodes alternate between, so the table shows more than one.
const REGIONS: [&str; 2] = ["eu-west", "us-east"];

/// `muster demo` flags.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Number of agents, 2 to 64.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: u16,
    /// Crash a random node (never demo-1) every SECS seconds; 0 crashes only on a key
    /// press.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    crash_every: u64,
    /// Bring a crashed node back after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    down_for: u64,
    /// Stop after SECS seconds [default: run until q or Ctrl-C].
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Protocol timing: lan, or local (faster detection).
    #[arg(long, default_value = "lan", value_parser = ["lan", "local"])]
    profile: String,
    /// Node i's mesh binds UDP port P+2(i-1) and its API TCP port P+2(i-1)+1
    /// [default: free ports].
    #[arg(long, value_name = "P")]
    base_port: Option<u16>,
}

/// `muster demo`: quiet logging (the screen is the output), then the demo until it is
/// told to stop.
pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    // Only warnings unless RUST_LOG asks for more: log lines would scroll the screen.
    // The driver's "member failed" warnings are what the demo shows anyway.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,muster::agent::driver=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::cli_query::colour_on(std::io::stderr().is_terminal()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("muster: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(demo(args));
    // Whatever is still closing (crashed meshes draining) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The API router over a mesh. The one place the demo builds an [`ApiState`], so a
/// change to its constructor is a one-line change here.
fn api_router(mesh: &Mesh) -> Router {
    api::router(ApiState::new(mesh))
}

/// One demo node: its fixed identity and addresses, and the running mesh when up.
struct Node {
    name: String,
    region: &'static str,
    zone: String,
    /// The mesh's address: chosen at first start, reused on restart so the node comes
    /// back where its peers knew it.
    addr: SocketAddr,
    /// The HTTP API's address, likewise kept across restarts.
    api_addr: SocketAddr,
    /// The incarnation to start at next: above any the node announced before a crash,
    /// as the agent's data dir would give it.
    incarnation: u64,
    live: Option<Live>,
    down_since: Option<Instant>,
    /// Since when a restart has found its address still held.
    held_since: Option<Instant>,
}

/// A running node: the mesh, its API server and the task that forwards its membership
/// changes to the redraw.
struct Live {
    mesh: Mesh,
    api: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl Live {
    fn members(&self) -> Members {
        self.mesh.members()
    }
}

/// A crash being followed, from the crash until every node agrees the node is alive
/// again.
struct Outage {
    node: usize,
    crashed_at: Instant,
    suspected: bool,
    first_failed: bool,
    all_failed: bool,
    /// When it came back, and at which incarnation.
    restarted: Option<(Instant, u64)>,
    /// The restarted node sees every running node alive again.
    rejoined: bool,
    /// Every running node sees it alive at its new incarnation.
    agreed: bool,
}

/// The whole demo: nodes, schedule, followed outages and the event log.
struct Demo {
    nodes: Vec<Node>,
    swim: SwimConfig,
    profile: String,
    crash_every: Option<Duration>,
    down_for: Duration,
    start: Instant,
    next_crash: Option<Instant>,
    joined: bool,
    outages: Vec<Outage>,
    log: Vec<String>,
    /// Redraw in place (stdout is a terminal) or print event lines only.
    screen: bool,
    /// The intro is out: event lines may be printed as they happen.
    introduced: bool,
    /// Woken by every node's membership change.
    changed: Arc<Notify>,
    rng: rng::NodeRng,
    /// Keys arrive one by one (a terminal in single-key mode), not as lines.
    single_keys: bool,
}

/// Runs the demo until `--duration`, `q` or Ctrl-C.
async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let mut demo = Demo::new(args)?;
    demo.start_all().await?;
    // Watched before the terminal changes mode, so every way to stop the demo from
    // outside ends the loop below and restores the terminal.
    let mut stops = [
        (SignalKind::interrupt(), "Ctrl-C"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
    ]
    .into_iter()
    .map(|(kind, name)| Ok((signal(kind).context("cannot watch signals")?, name)))
    .collect::<anyhow::Result<Vec<_>>>()?;
    let stopped = async {
        let waits = stops
            .iter_mut()
            .map(|(s, name)| Box::pin(async move { s.recv().await.map(|_| *name) }));
        futures_util::future::select_all(waits)
            .await
            .0
            .unwrap_or("signals closed")
    };
    tokio::pin!(stopped);
    // Restores the terminal when the demo ends, however it ends.
    let single_keys = SingleKeys::enter();
    demo.single_keys = single_keys.active();
    demo.intro();
    let (keys_tx, keys_rx) = mpsc::unbounded_channel();
    read_keys(keys_tx, single_keys.active());
    let mut keys = Some(keys_rx);
    let deadline = args
        .duration
        .map(|secs| demo.start + Duration::from_secs(secs));
    let until_deadline = async move {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let mut tick = tokio::time::interval(REFRESH);
    let changed = demo.changed.clone();
    let reason = loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = changed.notified() => {}
            key = async { keys.as_mut()?.recv().await }, if keys.is_some() => match key {
                Some(Key::Crash) => demo.crash_random(" on a key press"),
                Some(Key::Restart) => demo.restart_down(true).await,
                Some(Key::Quit) => break "q pressed",
                Some(Key::Unknown(text)) => demo.event(format!(
                    "unknown key {text:?}: {}", demo.keys_help()
                )),
                // Stdin closed (not a terminal, or end of input): keys no longer matter.
                None => keys = None,
            },
            name = &mut stopped => break name,
            () = &mut until_deadline => break "the duration is over",
        }
        demo.step().await;
    };
    demo.event(format!("stopping: {reason}"));
    demo.stop().await;
    Ok(())
}

impl Demo {
    /// Lays out the nodes (names, regions, zones, ports); nothing is started yet.
    fn new(args: &DemoArgs) -> anyhow::Result<Demo> {
        let swim = SwimConfig::preset(&args.profile)?;
        let n = usize::from(args.nodes);
        let port = |i: usize, offset: usize| -> anyhow::Result<u16> {
            let Some(base) = args.base_port else {
                return Ok(0);
            };
            u16::try_from(usize::from(base) + 2 * i + offset)
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("--base-port {base} leaves no room for {n} nodes"))
        };
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let region = REGIONS[i % REGIONS.len()];
            nodes.push(Node {
                name: format!("demo-{}", i + 1),
                region,
                zone: format!("{region}-{}", ["a", "b"][(i / REGIONS.len()) % 2]),
                addr: loopback(port(i, 0)?),
                api_addr: loopback(port(i, 1)?),
                incarnation: 0,
                live: None,
                down_since: None,
                held_since: None,
            });
        }
        let start = Instant::now();
        let crash_every = (args.crash_every > 0).then(|| Duration::from_secs(args.crash_every));
        Ok(Demo {
            nodes,
            swim,
            profile: args.profile.clone(),
            crash_every,
            down_for: Duration::from_secs(args.down_for),
            start,
            next_crash: crash_every.map(|every| start + every),
            joined: false,
            outages: Vec::new(),
            log: Vec::new(),
            screen: std::io::stdout().is_terminal(),
            introduced: false,
            changed: Arc::new(Notify::new()),
            rng: rng::node_rng(muster::daemon::random_seed()),
            single_keys: false,
        })
    }

    /// Starts every node, `demo-1` first so the others can join through it.
    async fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.start_node(i, false).await?;
        }
        self.start = Instant::now();
        if let Some(every) = self.crash_every {
            self.next_crash = Some(self.start + every);
        }
        self.event(format!(
            "started {} nodes, all joining through {}",
            self.nodes.len(),
            self.nodes[OBSERVER].name
        ));
        Ok(())
    }

    /// Starts node `i`'s mesh and API at its addresses, joining through the observer.
    /// `Ok(false)` when an address is still in use (a crashed life still holds it) and
    /// `wait` says to try again later rather than fail.
    async fn start_node(&mut self, i: usize, wait: bool) -> anyhow::Result<bool> {
        let seeds = if i == OBSERVER {
            Vec::new()
        } else {
            vec![self.nodes[OBSERVER].addr]
        };
        let node = &self.nodes[i];
        let config = MeshConfig {
            region: node.region.into(),
            zone: node.zone.as_str().into(),
            cluster: CLUSTER.into(),
            swim: self.swim.clone(),
            seeds,
            incarnation: node.incarnation,
            ..MeshConfig::new(
                node.name.as_str(),
                node.addr,
                TlsSource::ClusterKey(ClusterKey::dev()),
            )
        };
        // The API first: binding it cannot announce anything, so giving it back when the
        // mesh's port is still held costs nothing.
        let listener = match TcpListener::bind(node.api_addr).await {
            Ok(listener) => listener,
            Err(e) if wait && e.kind() == std::io::ErrorKind::AddrInUse => return Ok(false),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot bind {}'s HTTP API to {}", node.name, node.api_addr)
                });
            }
        };
        let mesh = match Mesh::start(config).await {
            Ok(mesh) => mesh,
            Err(e) if wait && e.to_string().contains("in use") => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("cannot start {}", node.name)),
        };
        let api_addr = listener
            .local_addr()
            .context("cannot read the HTTP API's bound address")?;
        let router = api_router(&mesh);
        let name = node.name.clone();
        let api = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(node = %name, error = %e, "HTTP API stopped");
            }
        });
        let mut members = mesh.watch();
        let changed = self.changed.clone();
        let watcher = tokio::spawn(async move {
            while members.changed().await.is_ok() {
                changed.notify_one();
            }
        });
        let node = &mut self.nodes[i];
        node.addr = mesh.local_addr();
        node.api_addr = api_addr;
        node.live = Some(Live { mesh, api, watcher });
        node.down_since = None;
        node.held_since = None;
        Ok(true)
    }

    /// Time since the demo started, as the event log shows it.
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Adds a line to the event log, printing it at once when not redrawing.
    fn event(&mut self, text: String) {
        let line = format!("+{:.1}s {text}", self.elapsed().as_secs_f64());
        if !self.screen && self.introduced {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
        self.log.push(line);
        let excess = self.log.len().saturating_sub(LOG_LINES);
        self.log.drain(..excess);
    }

    /// One turn: due restarts and crashes, then what the nodes now believe, then the
    /// screen.
    async fn step(&mut self) {
        self.restart_down(false).await;
        if let Some(due) = self.next_crash {
            // One outage at a time on the schedule, so each cycle reads on its own:
            // wait for the last one to be over before the next crash.
            let settled = self.joined && self.outages.is_empty();
            if Instant::now() >= due && settled {
                self.crash_random("");
            }
        }
        self.observe();
        if self.screen {
            self.draw();
        }
    }

    /// Crashes a random node other than the observer that is up.
    fn crash_random(&mut self, why: &str) {
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != OBSERVER && self.nodes[i].live.is_some())
            .collect();
        if candidates.is_empty() {
            self.event(format!(
                "no node to crash: all are down but {}, which stays up to watch",
                self.nodes[OBSERVER].name
            ));
            return;
        }
        let pick = candidates[rng::below(&mut self.rng, candidates.len())];
        self.crash(pick, why);
    }

    /// Stops node `i` without leaving, as a crash would, and starts following how the
    /// others find out.
    fn crash(&mut self, i: usize, why: &str) {
        let now = Instant::now();
        let node = &mut self.nodes[i];
        let Some(live) = node.live.take() else {
            return;
        };
        live.api.abort();
        live.watcher.abort();
        let announced = live
            .members()
            .iter()
            .find(|m| m.name == node.name)
            .map_or(node.incarnation, |m| m.incarnation);
        node.incarnation = announced + 1;
        node.down_since = Some(now);
        // Closing takes up to a second (connections drain); the screen should not wait.
        tokio::spawn(live.mesh.shutdown());
        let name = node.name.clone();
        self.outages.retain(|o| o.node != i);
        self.outages.push(Outage {
            node: i,
            crashed_at: now,
            suspected: false,
            first_failed: false,
            all_failed: false,
            restarted: None,
            rejoined: false,
            agreed: false,
        });
        if let Some(every) = self.crash_every {
            self.next_crash = Some(now + every);
        }
        self.event(format!("crashed {name} (no leave{why})"));
    }

    /// Restarts the crashed nodes whose time is up, or all of them (`now`).
    async fn restart_down(&mut self, now: bool) {
        let at = Instant::now();
        for i in 0..self.nodes.len() {
            let Some(since) = self.nodes[i].down_since else {
                continue;
            };
            if !now && at < since + self.down_for {
                continue;
            }
            let incarnation = self.nodes[i].incarnation;
            let name = self.nodes[i].name.clone();
            let held_since = self.nodes[i].held_since;
            match self.start_node(i, true).await {
                Ok(true) => {
                    let mut early = false;
                    for o in self.outages.iter_mut().filter(|o| o.node == i) {
                        early = !o.all_failed;
                        o.restarted = Some((Instant::now(), incarnation));
                    }
                    let mut note = String::new();
                    if let Some(held) = held_since {
                        let held = held.elapsed().as_secs_f64();
                        note.push_str(&format!(", {held:.1} s late (address held)"));
                    }
                    if early {
                        note.push_str(", before every survivor marked it failed");
                    }
                    self.event(format!(
                        "{name} restarted at incarnation {incarnation}{note}"
                    ));
                }
                Ok(false) => {
                    // The crashed mesh's socket outlives it while its closed connections
                    // drain (longer when a peer was itself dead); try again next turn.
                    let node = &mut self.nodes[i];
                    let addr = node.addr;
                    match node.held_since {
                        None => {
                            node.held_since = Some(at);
                            self.event(format!(
                                "{name}'s address {addr} is still held by its crashed life; \
                                 retrying"
                            ));
                        }
                        Some(held) if at >= held + HELD_LIMIT => {
                            // Coming back elsewhere is a restart too (the protocol takes
                            // the new address with the higher incarnation); better than
                            // leaving the node down.
                            node.addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                            self.event(format!(
                                "{name}'s address {addr} is still held after {} s; \
                                 restarting it on a new port",
                                HELD_LIMIT.as_secs()
                            ));
                        }
                        Some(_) => {}
                    }
                }
                Err(e) => {
                    // Try again after another down period rather than end the demo.
                    self.nodes[i].down_since = Some(Instant::now());
                    self.event(format!("{e:#}"));
                }
            }
        }
    }

    /// Stops every node at once, without leaving (the whole cluster goes, so there is
    /// no one to tell), bounded by [`STOP_WAIT`].
    async fn stop(&mut self) {
        if self.screen {
            self.draw();
        } else if let Some(live) = &self.nodes[OBSERVER].live {
            let rows: Vec<Vec<String>> = live
                .members()
                .iter()
                .map(|m| {
                    vec![
                        m.name.to_string(),
                        Status::of(m.state).as_str().to_owned(),
                        m.incarnation.to_string(),
                    ]
                })
                .collect();
            println!(
                "members as {} sees them at the end:",
                self.nodes[OBSERVER].name
            );
            print!("{}", table(&["NAME", "STATUS", "INC"], &rows, None));
        }
        let mut stopping = JoinSet::new();
        for node in &mut self.nodes {
            if let Some(live) = node.live.take() {
                live.api.abort();
                live.watcher.abort();
                stopping.spawn(live.mesh.shutdown());
            }
        }
        if tokio::time::timeout(STOP_WAIT, stopping.join_all())
            .await
            .is_err()
        {
            tracing::warn!("some nodes were still closing when the demo exited");
        }
        let _ = std::io::stdout().flush();
    }
}
