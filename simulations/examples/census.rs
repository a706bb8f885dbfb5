//! Runs a scenario and prints a census of the end state: how many nodes see how many
//! live members, and for each node that sees fewer than the best-informed one, which
//! nodes it is missing. The first thing to look at when a run does not converge.
//!
//! `cargo run --release -p muster-sim --example census -- SCENARIO.toml [NODES] [SEED]`

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path: PathBuf = args
        .next()
        .context("usage: census SCENARIO.toml [NODES] [SEED]")?
        .into();
    let scenario = muster_sim::Scenario::load(&path)?;
    let nodes = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(scenario.nodes);
    let seed = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(scenario.seed);
    let (world, report) = muster_sim::run(scenario, nodes, seed, &AtomicBool::new(false), |_| {})?;
    print!("{}", report.summary());

    let running: Vec<usize> = (0..world.node_count())
        .filter(|&i| world.node(i).is_some())
        .collect();
    let mut census: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for &i in &running {
        let table = world.node(i).expect("filtered to running nodes").members();
        *census.entry((table.live_count(), table.len())).or_default() += 1;
    }
    println!("(live members, records) seen -> running nodes: {census:?}");
    if let Some(t) = world.observer().first_false_failure {
        println!(
            "first false failure at {:.3} s",
            t.since_epoch().as_secs_f64()
        );
    }
    let best = census.keys().map(|k| k.0).max().unwrap_or(0);
    for &i in &running {
        let table = world.node(i).expect("filtered to running nodes").members();
        if table.live_count() < best {
            let live: BTreeSet<&str> = table
                .iter()
                .filter(|m| m.state().is_live())
                .map(|m| m.name().as_str())
                .collect();
            let missing: Vec<&str> = running
                .iter()
                .map(|&j| world.name(j))
                .filter(|n| !live.contains(n))
                .collect();
            println!("{} does not see alive: {missing:?}", world.name(i));
        }
    }
    Ok(())
}
