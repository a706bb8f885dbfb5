//! The `muster` command line. Today it explains the protocol timing a profile gives a
//! cluster of a given size; the agent, API and CLI commands arrive with the agent.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use muster::proto::SwimConfig;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Timing { profile, nodes } => match timing(&profile, nodes) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("muster: {e}");
                ExitCode::from(2)
            }
        },
    }
}
