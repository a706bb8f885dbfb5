//! `muster-sim`: thousands of Muster protocol nodes in one process, on a modelled
//! multi-region network, in virtual time, replayable from one seed.
//!
//! It drives `muster::proto::Node` through its public API only, which keeps that API
//! complete. A run is described by a [`scenario::Scenario`] (TOML), executed by a
//! [`world::World`], measured by an [`observe::Observer`] and summarised in a
//! [`report::Report`].
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`scenario`] | the scenario file format |
//! | [`world`] | the next-event loop, nodes and faults |
//! | [`network`] | placement, latency, loss, partitions, wire-cost model |
//! | [`observe`] | detection times, false alarms, event-trace hash |
//! | [`primaries`] | primary roles: each node's election, agreement and kill figures |
//! | [`report`] | the JSON report and its summary |
//! | [`chart`] | SVG charts |
//! | [`sim_rng`] | seed derivation |

pub mod chart;
pub mod network;
pub mod observe;
pub mod primaries;
pub mod report;
pub mod scenario;
pub mod sim_rng;
pub mod world;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub use report::Report;
pub use scenario::Scenario;
pub use world::World;

/// Runs `scenario` with `nodes` nodes and `seed`, returning the finished world and its report.
pub fn run(
    scenario: Scenario,
    nodes: usize,
    seed: u64,
    stop: &AtomicBool,
    tick: impl FnMut(muster::proto::Time),
) -> anyhow::Result<(World, Report)> {
    #[allow(clippy::disallowed_methods)] // wall time of the run, reported, never fed to the core
    let started = Instant::now();
    let mut world = World::new(scenario, nodes, seed)?;
    world.run(stop, tick)?;
    let interrupted = stop.load(std::sync::atomic::Ordering::Relaxed);
    let report = Report::from_world(&world, nodes, seed, started.elapsed(), interrupted);
    Ok((world, report))
}
