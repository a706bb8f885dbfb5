//! The `muster` command line: thin, it parses arguments and calls the library.
//!
//! - `muster agent`: runs an agent (config from a file, `MUSTER_*` variables and flags,
//!   merged and validated by [`muster::daemon::overrides`]); see `agent_run.rs`;
//! - `muster members`, `info`, `monitor`: what the local agent knows (`cli_query.rs`,
//!   `cli_monitor.rs`);
//! - `muster join`, `leave`, `force-leave`, `tags`: changes through the local agent's API
//!   (`cli_change.rs`);
//! - `muster route`, `services`, `drain`, `failover`, `state`: services, routing,
//!   failover and replicated state through the local agent's API
//!   (`cli_services.rs`);
//! - `muster keygen`: prints a new cluster key (or writes it to a 0600 file);
//! - `muster tls ca create`, `muster tls cert create`: your own PKI's files
//!   (`cli_tls.rs`);
//! - `muster completions SHELL`, `muster man`: generated from this definition;
//! - `muster demo`: a local cluster of dev agents in this process, crashing and
//!   restarting nodes while it shows what they see; see `demo.rs`;
//! - `muster timing`: the protocol timing a profile gives a cluster of a given size.
//!
//! A bad config or bad arguments exit with code 2 and one line naming the field.

mod agent_run;
mod cli_change;
mod cli_monitor;
mod cli_query;
mod cli_services;
mod cli_tls;
mod demo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use muster::daemon::overrides::{self, Environment, Overrides};
use muster::daemon::settings::{AgentConfig, Listen, LogFormat};
use muster::proto::SwimConfig;
use muster::transport::ClusterKey;

/// Exit code for a config the agent refuses (as clap uses for bad arguments).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "muster",
    version,
    about = "Muster: a gossip-based peer-to-peer membership mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an agent: join the cluster through the seeds and keep the membership.
    Agent(Box<AgentArgs>),
    /// Print a new cluster key, one line, or write it to a new file with `--out`
    /// (mode 0600).
    Keygen {
        /// Write the key to this file (created with mode 0600; an existing file is
        /// not overwritten) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make the files of your own PKI: a CA, and node certificates issued by it.
    #[command(subcommand)]
    Tls(cli_tls::TlsCmd),
    /// List the members the local agent knows, with the API's filters.
    Members(cli_query::MembersArgs),
    /// Show this agent and the cluster as it sees it.
    Info(cli_query::ApiArgs),
    /// Follow the local agent's membership events, one line each.
    Monitor(cli_monitor::MonitorArgs),
    /// Ask the local agent to join a cluster through these seeds.
    Join(cli_change::JoinArgs),
    /// Ask the local agent to leave the cluster gracefully (it then exits).
    Leave(cli_query::ApiArgs),
    /// Mark a failed member as left, so the cluster stops re-contacting it.
    ForceLeave(cli_change::ForceLeaveArgs),
    /// Set or delete the local agent's tags; the change spreads to the cluster.
    #[command(subcommand)]
    Tags(cli_change::TagsCmd),
    /// Where to send traffic for a service: healthy instances, best first.
    Route(cli_services::RouteArgs),
    /// The services in the cluster, or one service's instances.
    Services(cli_services::ServicesArgs),
    /// Take this agent's services (or one) out of rotation while it stays alive.
    Drain(cli_services::DrainArgs),
    /// Force a service's traffic to a region (`--to`), or `reset` to the rule's judgement.
    Failover(cli_services::FailoverArgs),
    /// Read or change replicated member state.
    #[command(subcommand)]
    State(cli_services::StateCmd),
    /// A local cluster of dev agents in this process: watch them detect a crashed node
    /// and take it back, with each node's API to poke at.
    Demo(demo::DemoArgs),
    /// Print a shell completion script: `muster completions bash > /etc/bash_completion.d/muster`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `muster man | man -l -`.
    Man,
    /// Show the protocol timing a profile gives a cluster of N members: probe and
    /// suspicion timeouts, retransmissions, push-pull interval.
    Timing {
        /// Protocol profile: lan, wan or local.
        #[arg(long, default_value = "lan")]
        profile: String,
        /// Cluster size.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
    },
}

/// `muster agent` flags; each overrides the config file and the environment.
#[derive(Args)]
struct AgentArgs {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A directory of TOML config files, read after --config in name order (lists such
    /// as services are combined; a later file's other keys win).
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Unique node name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// UDP address to bind [default: 0.0.0.0:7946].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Address announced to peers.
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Seeds, host:port; repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// Region.
    #[arg(long)]
    region: Option<String>,
    /// Zone.
    #[arg(long)]
    zone: Option<String>,
    /// A tag, key=value; repeatable.
    #[arg(long = "tag", value_name = "K=V", value_parser = overrides::parse_tag)]
    tags: Vec<(String, String)>,
    /// Protocol timing: lan, wan or local [default: lan].
    #[arg(long)]
    profile: Option<String>,
    /// Cluster name [default: default].
    #[arg(long)]
    cluster: Option<String>,
    /// Cluster key file (from `muster keygen`).
    #[arg(long, value_name = "FILE")]
    cluster_key: Option<PathBuf>,
    /// CA certificate(s), PEM.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// This node's certificate chain, PEM.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// This node's private key, PEM.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Loopback-only trial with the fixed, insecure development key.
    #[arg(long)]
    dev: bool,
    /// Directory for the state kept across restarts.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Local HTTP API address [default: 127.0.0.1:7947; in --dev, the --bind port + 1].
    #[arg(long)]
    api_addr: Option<SocketAddr>,
    /// File holding the bearer token the API's mutating endpoints require.
    #[arg(long, value_name = "FILE")]
    api_token_file: Option<PathBuf>,
    /// DNS interface address (UDP and TCP), or `off` [default: 127.0.0.1:8600; in --dev,
    /// the --bind port + 2].
    #[arg(long, value_name = "ADDR|off", value_parser = parse_dns_addr)]
    dns_addr: Option<Listen>,
    /// Log format: text or json [default: text].
    #[arg(long, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. info or info,muster=debug [default: info].
    #[arg(long)]
    log_level: Option<String>,
    /// Validate the config, print the effective config as TOML, and exit.
    #[arg(long)]
    check_config: bool,
}

impl AgentArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            name: self.name.clone(),
            bind: self.bind,
            advertise: self.advertise,
            join: self
                .join
                .iter()
                .flat_map(|j| overrides::split_list(j))
                .collect(),
            region: self.region.clone(),
            zone: self.zone.clone(),
            tags: self.tags.clone(),
            profile: self.profile.clone(),
            cluster: self.cluster.clone(),
            cluster_key_file: self.cluster_key.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            dev: self.dev,
            data_dir: self.data_dir.clone(),
            api_addr: self.api_addr,
            api_token_file: self.api_token_file.clone(),
            dns_addr: self.dns_addr,
            log_format: self.log_format,
            log_level: self.log_level.clone(),
        }
    }
}

/// `--dns-addr`: an address, or `off`.
fn parse_dns_addr(text: &str) -> Result<Listen, String> {
    Listen::parse(text)
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("expected text or json, found {other:?}")),
    }
}

/// `muster agent`: loads and checks the config, then prints it or runs the agent.
fn agent(args: &AgentArgs) -> ExitCode {
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("muster: {e}");
        ExitCode::from(EXIT_CONFIG)
    };
    let env = Environment::from_process();
    let mut files: Vec<PathBuf> = args.config.iter().cloned().collect();
    if let Some(dir) = &args.config_dir {
        match AgentConfig::files_in(dir) {
            Ok(found) => files.extend(found),
            Err(e) => return refuse(&e),
        }
    }
    let config = match overrides::load_files(&files, &env, args.overrides()) {
        Ok(config) => config,
        Err(e) => return refuse(&e),
    };
    // Reads the key and token files too, so a bad one is refused before anything starts.
    if let Err(e) = config.mesh_config(Vec::new(), 0) {
        return refuse(&e);
    }
    if let Err(e) = config.api_token() {
        return refuse(&e);
    }
    if let Err(e) = config.https_roots() {
        return refuse(&e);
    }
    if args.check_config {
        // Secrets (webhook headers and URLs) are hidden: this output ends up in
        // tickets and chat.
        for var in overrides::unknown_vars(&env) {
            eprintln!("muster: warning: {var} is not a setting's variable; it is ignored");
        }
        print!("{}", config.redacted().to_toml());
        return ExitCode::SUCCESS;
    }
    agent_run::run(config, &overrides::unknown_vars(&env))
}

/// `muster keygen`: a new cluster key, printed or written to a new private file.
fn keygen(out: Option<&std::path::Path>) -> ExitCode {
    let key = match ClusterKey::generate() {
        Ok(key) => key,
        Err(e) => {
            eprintln!("muster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(path) = out else {
        println!("{key}");
        return ExitCode::SUCCESS;
    };
    match cli_tls::write_new(path, &format!("{key}\n"), 0o600) {
        Ok(()) => {
            eprintln!(
                "muster: wrote a new cluster key to {} (mode 0600)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("muster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn timing(profile: &str, n: usize) -> Result<String, muster::proto::ConfigError> {
    let c = SwimConfig::preset(profile)?;
    let min = c.suspicion_min(n);
    let max = c.suspicion_max(n);
    let rows = [
        ("probe interval", secs(c.probe_interval)),
        ("probe timeout (direct)", secs(c.probe_timeout)),
        (
            "probe deadline (direct + indirect)",
            secs(c.probe_timeout * muster::proto::config::PROBE_DEADLINE_TIMEOUTS),
        ),
        ("indirect probes", c.indirect_checks.to_string()),
        ("suspicion timeout, all confirmations in", secs(min)),
        ("suspicion timeout, unconfirmed", secs(max)),
        (
            "confirmations that reach the minimum",
            c.expected_confirmations.to_string(),
        ),
        (
            "gossip",
            format!(
                "every {} to {} members",
                secs(c.gossip_interval),
                c.gossip_fanout
            ),
        ),
        (
            "transmissions per update",
            c.retransmit_limit(n).to_string(),
        ),
        ("push-pull interval", secs(c.push_pull_interval_for(n))),
        (
            "failed member re-contact interval",
            secs(c.reconnect_interval),
        ),
        ("failed members remembered for", secs(c.dead_retention)),
        ("datagram budget", format!("{} bytes", c.datagram_budget)),
    ];
    let mut out = format!("profile {profile}, {n} members\n");
    for (k, v) in rows {
        out.push_str(&format!("  {k:<40} {v}\n"));
    }
    Ok(out)
}

/// `muster --version`: the crate's version, the wire protocol's, and the commit.
fn version() -> String {
    format!(
        "{} (protocol v{}, commit {})",
        env!("CARGO_PKG_VERSION"),
        muster::wire::PROTOCOL_VERSION,
        env!("MUSTER_COMMIT")
    )
}

/// The whole command line definition, with the version filled in.
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().version(version())
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `muster man` to stdout.
fn man_page() -> ExitCode {
    let mut out = Vec::new();
    match clap_mangen::Man::new(cli_command()).render(&mut out) {
        Ok(()) => print_bytes(&out),
        Err(e) => {
            eprintln!("muster: cannot render the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&cli_command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Cmd::Completions { shell } => {
            // Into a buffer first: the generator panics on a closed pipe (`| head`).
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "muster", &mut out);
            print_bytes(&out)
        }
        Cmd::Man => man_page(),
        Cmd::Agent(args) => agent(&args),
        Cmd::Members(args) => cli_query::members(&args),
        Cmd::Info(args) => cli_query::info(&args),
        Cmd::Monitor(args) => cli_monitor::monitor(&args),
        Cmd::Join(args) => cli_change::join(&args),
        Cmd::Leave(args) => cli_change::leave(&args),
        Cmd::ForceLeave(args) => cli_change::force_leave(&args),
        Cmd::Tags(cmd) => cli_change::tags(&cmd),
        Cmd::Route(args) => cli_services::route(&args),
        Cmd::Services(args) => cli_services::services(&args),
        Cmd::Drain(args) => cli_services::drain(&args),
        Cmd::Failover(args) => cli_services::failover(&args),
        Cmd::State(cmd) => cli_services::state(&cmd),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Keygen { out } => keygen(out.as_deref()),
        Cmd::Tls(cmd) => cli_tls::run(&cmd),
        Cmd::Timing { profile, nodes } => match timing(&profile, nodes) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("muster: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}
