//! `muster-sim`: run a scenario, or sweep one setting across values.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use muster_sim::{Report, Scenario, chart};

#[derive(Parser)]
#[command(
    name = "muster-sim",
    about = "Deterministic many-node simulator for the Muster protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and print its figures.
    Run {
        /// Scenario file (see simulations/scenarios/).
        scenario: PathBuf,
        /// Number of nodes (default: the scenario's).
        #[arg(long)]
        nodes: Option<usize>,
        /// World seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw detection and bandwidth charts here (SVG).
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Run one scenario for several values of a protocol setting and print the
    /// detection-time versus false-alarm trade-off.
    Sweep {
        /// Scenario file.
        scenario: PathBuf,
        /// Setting to vary, e.g. suspicion_mult, probe_interval, confirm_probes.
        #[arg(long)]
        param: String,
        /// Comma-separated values, e.g. 1,2,4 or 500ms,1s.
        #[arg(long, value_delimiter = ',')]
        values: Vec<String>,
        /// Number of nodes.
        #[arg(long)]
        nodes: Option<usize>,
        /// World seed.
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn progress(total: Duration) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_secs());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} virtual s  {msg}",
        )
        .expect("template is valid"),
    );
    bar
}

fn run_one(
    scenario: Scenario,
    nodes: usize,
    seed: u64,
    stop: &AtomicBool,
) -> anyhow::Result<(muster_sim::World, Report)> {
    let bar = progress(scenario.duration);
    let out = muster_sim::run(scenario, nodes, seed, stop, |t| {
        bar.set_position(t.since_epoch().as_secs())
    })?;
    bar.finish_and_clear();
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .context("installing the Ctrl-C handler")?;
    }
    match cli.command {
        Cmd::Run {
            scenario,
            nodes,
            seed,
            json,
            chart: chart_path,
        } => {
            let sc = Scenario::load(&scenario)?;
            let nodes = nodes.unwrap_or(sc.nodes);
            let seed = seed.unwrap_or(sc.seed);
            eprintln!(
                "muster-sim: scenario {} · {} nodes · seed {}",
                sc.name, nodes, seed
            );
            let (world, report) = run_one(sc, nodes, seed, &stop)?;
            print!("{}", report.summary());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = chart_path {
                chart::draw(&world, &path)?;
            }
            if report.interrupted {
                eprintln!("muster-sim: interrupted; figures cover the virtual time reached");
            }
        }
        Cmd::Sweep {
            scenario,
            param,
            values,
            nodes,
            seed,
        } => {
            let base = Scenario::load(&scenario)?;
            let nodes = nodes.unwrap_or(base.nodes);
            let seed = seed.unwrap_or(base.seed);
            eprintln!(
                "muster-sim: sweeping {param} over {values:?} · {} · {} nodes · seed {}",
                base.name, nodes, seed
            );
            println!(
                "{:>12} | {:>12} {:>12} | {:>12} {:>12} | {:>9} {:>9} | {:>9}",
                param,
                "1st susp p50",
                "p99",
                "all-know p50",
                "p99",
                "false sus",
                "false fail",
                "B/node/s"
            );
            for v in &values {
                let mut sc = base.clone();
                sc.config.set(&param, v)?;
                sc.check()?;
                let (_, r) = run_one(sc, nodes, seed, &stop)?;
                let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:.0} ms", x));
                println!(
                    "{:>12} | {:>12} {:>12} | {:>12} {:>12} | {:>9} {:>9} {:>9} | {:>9.1}",
                    v,
                    f(r.detection.first_suspicion.p50),
                    f(r.detection.first_suspicion.p99),
                    f(r.detection.all_failed.p50),
                    f(r.detection.all_failed.p99),
                    r.false_suspicions,
                    r.false_failures.count,
                    r.slow_node_failures.count,
                    r.bytes_per_node_per_sec.mean
                );
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    Ok(())
}
