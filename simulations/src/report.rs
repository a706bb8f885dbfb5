//! The result of a run: a JSON-serialisable [`Report`] and its human summary.

use std::fmt::Write as _;
use std::time::Duration;

use muster::proto::Time;
use serde::Serialize;

use crate::world::World;

/// p50 / p99 / max of a set of milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spread {
    /// Values measured.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile (nearest rank).
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Spread {
    /// Summarises values (any order).
    pub fn of(mut v: Vec<f64>) -> Spread {
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            v.get(((q * v.len() as f64).ceil() as usize).saturating_sub(1))
                .copied()
        };
        Spread {
            count: v.len(),
            p50: rank(0.5),
            p99: rank(0.99),
            max: v.last().copied(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn since(t: Option<Time>, from: Time) -> Option<f64> {
    t.map(|t| ms(t - from))
}

/// Detection of one crashed node.
#[derive(Debug, Clone, Serialize)]
pub struct CrashDetection {
    /// Crashed node.
    pub node: String,
    /// Virtual ms at the crash.
    pub crashed_at_ms: f64,
    /// Crash → first suspicion by anyone.
    pub first_suspicion_ms: Option<f64>,
    /// Crash → first failure declaration.
    pub first_failure_ms: Option<f64>,
    /// Crash → every live node has marked it failed (absent if some never did, or the
    /// node was restarted first).
    pub all_failed_ms: Option<f64>,
    /// Live observers that never marked it failed by the end.
    pub missing_observers: usize,
}

/// Detection figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Every crash.
    pub crashes: Vec<CrashDetection>,
    /// Across crashes: crash → first suspicion.
    pub first_suspicion: Spread,
    /// Across crashes: crash → first failure.
    pub first_failure: Spread,
    /// Across crashes: crash → all live nodes know.
    pub all_failed: Spread,
    /// Across (crash, observer) pairs: crash → this observer marks it failed.
    pub per_observer: Spread,
}

/// False alarms about running nodes.
#[derive(Debug, Clone, Serialize)]
pub struct FalseFailures {
    /// Failure declarations about running nodes.
    pub count: usize,
    /// Distinct running nodes declared failed.
    pub nodes: usize,
    /// Each such node with how many observers declared it.
    pub subjects: Vec<(String, usize)>,
}

/// Mean and max over nodes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerNode {
    /// Mean over nodes.
    pub mean: f64,
    /// Largest node.
    pub max: f64,
}

/// Everything a run reports. Every field but `wall_secs` and `peak_rss_bytes` is fixed
/// by scenario, node count and seed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Initial node count.
    pub nodes: usize,
    /// World seed.
    pub seed: u64,
    /// Virtual seconds simulated.
    pub virtual_secs: f64,
    /// Wall-clock seconds taken.
    pub wall_secs: f64,
    /// Whether the run was cut short by an interrupt.
    pub interrupted: bool,
    /// Actions processed by the event loop.
    pub steps: u64,
    /// Crash detection.
    pub detection: Detection,
    /// Suspicions of running (not slow) nodes.
    pub false_suspicions: u64,
    /// Failure declarations about running (not slow) nodes.
    pub false_failures: FalseFailures,
    /// Suspicions and failure declarations across a partition in force (expected, not false).
    pub partitioned_alarms: u64,
    /// Suspicions of the scenario's slow nodes (running, but answering late).
    pub slow_node_suspicions: u64,
    /// Failure declarations about the scenario's slow nodes.
    pub slow_node_failures: FalseFailures,
    /// After the last fault: ms until every running node had one digest and saw every
    /// other running node alive (absent if never).
    pub convergence_ms: Option<f64>,
    /// With `start = "join"`: ms until every node saw every other.
    pub join_ms: Option<f64>,
    /// Wire bytes sent per node per second of its uptime (QUIC overhead and acks included).
    pub bytes_per_node_per_sec: PerNode,
    /// Datagrams and stream messages sent per node per second of uptime.
    pub msgs_per_node_per_sec: PerNode,
    /// Protocol messages sent by running nodes at the end, by kind: (count, payload bytes);
    /// headers and QUIC overhead excluded.
    pub messages_by_kind: Vec<(String, u64, u64)>,
    /// Peak resident memory of the simulator process.
    pub peak_rss_bytes: u64,
    /// Hash of the whole event trace; equal seeds give equal hashes.
    pub trace_hash: String,
    /// The replicated-state workload, if the scenario has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateAgreement>,
    /// Primary roles, if the scenario has a `[primaries]` section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primaries: Option<PrimaryFigures>,
}

/// How primary roles fared: how long each service went without an agreed primary after
/// its primary was killed, and how long running nodes disagreed outside partitions.
#[derive(Debug, Clone, Serialize)]
pub struct PrimaryFigures {
    /// Every kill.
    pub kills: Vec<crate::primaries::PrimaryKill>,
    /// Across kills: kill → every running node names the same live primary.
    pub agreed_after: Spread,
    /// Kills after which the nodes never agreed by the end.
    pub never_agreed: usize,
    /// Total time two running nodes named different primaries outside partitions, ms.
    pub disagreement_ms: f64,
    /// Longest such stretch, ms.
    pub longest_disagreement_ms: f64,
    /// Checks made (one per service per check interval).
    pub checks: u64,
}

/// Whether every running node holds every other running node's replicated state as
/// that node holds it itself, at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct StateAgreement {
    /// Writes made by the workload.
    pub writes: u64,
    /// (holder, owner) pairs of running nodes.
    pub pairs: usize,
    /// Pairs where the holder's copy differs from the owner's map.
    pub disagreements: usize,
}

fn false_failures(w: &World, map: &std::collections::BTreeMap<usize, Vec<usize>>) -> FalseFailures {
    FalseFailures {
        count: map.values().map(Vec::len).sum(),
        nodes: map.len(),
        subjects: map
            .iter()
            .map(|(s, obs)| (w.name(*s).to_string(), obs.len()))
            .collect(),
    }
}

fn messages_by_kind(w: &World) -> Vec<(String, u64, u64)> {
    muster::wire::MessageKind::ALL
        .iter()
        .map(|k| {
            let (mut count, mut bytes) = (0, 0);
            for n in (0..w.node_count()).filter_map(|i| w.node(i)) {
                count += n.stats().sent.messages_of(*k);
                bytes += n.stats().sent.bytes_of(*k);
            }
            (k.as_str().to_string(), count, bytes)
        })
        .collect()
}

impl Report {
    /// Builds the report of a finished (or interrupted) run.
    pub fn from_world(
        w: &World,
        nodes: usize,
        seed: u64,
        wall: Duration,
        interrupted: bool,
    ) -> Report {
        let obs = w.observer();
        let up = |i: usize| w.is_up(i);
        let crashes: Vec<CrashDetection> = obs
            .crashes
            .iter()
            .map(|c| CrashDetection {
                node: w.name(c.subject).to_string(),
                crashed_at_ms: ms(c.at.since_epoch()),
                first_suspicion_ms: since(c.first_suspicion, c.at),
                first_failure_ms: since(c.first_failure(), c.at),
                all_failed_ms: since(c.all_failed(up), c.at),
                missing_observers: c.missing(up),
            })
            .collect();
        let per_observer: Vec<f64> = obs
            .crashes
            .iter()
            .flat_map(|c| c.failed_at.values().map(move |t| ms(*t - c.at)))
            .collect();
        let detection = Detection {
            first_suspicion: Spread::of(
                crashes
                    .iter()
                    .filter_map(|c| c.first_suspicion_ms)
                    .collect(),
            ),
            first_failure: Spread::of(crashes.iter().filter_map(|c| c.first_failure_ms).collect()),
            all_failed: Spread::of(crashes.iter().filter_map(|c| c.all_failed_ms).collect()),
            per_observer: Spread::of(per_observer),
            crashes,
        };
        let mut bytes = Vec::new();
        let mut msgs = Vec::new();
        for i in 0..w.node_count() {
            let (b, m, up) = w.traffic(i);
            if up >= Duration::from_secs(1) {
                bytes.push(b as f64 / up.as_secs_f64());
                msgs.push(m as f64 / up.as_secs_f64());
            }
        }
        let per_node = |v: &[f64]| PerNode {
            mean: if v.is_empty() {
                0.0
            } else {
                (v.iter().sum::<f64>() / v.len() as f64 * 10.0).round() / 10.0
            },
            max: (v.iter().copied().fold(0.0, f64::max) * 10.0).round() / 10.0,
        };
        Report {
            scenario: w.scenario().name.clone(),
            nodes,
            seed,
            virtual_secs: w.now().since_epoch().as_secs_f64(),
            wall_secs: (wall.as_secs_f64() * 100.0).round() / 100.0,
            interrupted,
            steps: w.steps(),
            detection,
            false_suspicions: obs.false_suspicions,
            false_failures: false_failures(w, &obs.false_failures),
            partitioned_alarms: obs.partitioned,
            slow_node_suspicions: obs.slow_suspicions,
            slow_node_failures: false_failures(w, &obs.slow_failures),
            convergence_ms: since(w.converged_at(), w.last_fault()),
            join_ms: w
                .joined_at()
                .filter(|_| w.scenario().start == crate::scenario::Start::Join)
                .map(|t| ms(t.since_epoch())),
            bytes_per_node_per_sec: per_node(&bytes),
            msgs_per_node_per_sec: per_node(&msgs),
            messages_by_kind: messages_by_kind(w),
            peak_rss_bytes: muster::process_stats::peak_rss_bytes(),
            trace_hash: format!("{:016x}", obs.trace_hash()),
            primaries: w.scenario().primaries.as_ref().map(|_| {
                let watch = w.primary_watch();
                PrimaryFigures {
                    agreed_after: Spread::of(
                        watch
                            .kills
                            .iter()
                            .filter_map(|k| k.agreed_after_ms)
                            .collect(),
                    ),
                    never_agreed: watch
                        .kills
                        .iter()
                        .filter(|k| k.agreed_after_ms.is_none())
                        .count(),
                    disagreement_ms: ms(watch.disagreement),
                    longest_disagreement_ms: ms(watch.longest_disagreement),
                    checks: watch.checks,
                    kills: watch.kills.clone(),
                }
            }),
            state: w.scenario().state.as_ref().map(|_| {
                let (disagreements, pairs) = w.state_disagreements();
                StateAgreement {
                    writes: w.state_writes(),
                    pairs,
                    disagreements,
                }
            }),
        }
    }

    /// The report as JSON with the wall-clock fields removed: equal for equal seeds.
    pub fn deterministic_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a report always serialises");
        if let Some(o) = v.as_object_mut() {
            o.remove("wall_secs");
            o.remove("peak_rss_bytes");
        }
        v.to_string()
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0} ms", v));
        let spread = |s: &Spread| {
            format!(
                "p50 {} · p99 {} · max {}",
                opt(s.p50),
                opt(s.p99),
                opt(s.max)
            )
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {} · {} nodes · seed {}",
            self.scenario, self.nodes, self.seed
        );
        let _ = writeln!(
            out,
            "  ran {:.0} virtual s in {:.1} wall s ({} steps){}",
            self.virtual_secs,
            self.wall_secs,
            self.steps,
            if self.interrupted {
                " — INTERRUPTED"
            } else {
                ""
            }
        );
        if !self.detection.crashes.is_empty() {
            let d = &self.detection;
            let _ = writeln!(out, "  crashes           {}", d.crashes.len());
            let _ = writeln!(out, "  first suspicion   {}", spread(&d.first_suspicion));
            let _ = writeln!(out, "  first failure     {}", spread(&d.first_failure));
            let _ = writeln!(out, "  all live know     {}", spread(&d.all_failed));
            let _ = writeln!(out, "  each observer     {}", spread(&d.per_observer));
            let missing: usize = d.crashes.iter().map(|c| c.missing_observers).sum();
            if missing > 0 {
                let _ = writeln!(
                    out,
                    "  observers that never marked a crash failed: {missing}"
                );
            }
        }
        let _ = writeln!(
            out,
            "  false suspicions  {} · false failures {} ({} nodes)",
            self.false_suspicions, self.false_failures.count, self.false_failures.nodes
        );
        if self.partitioned_alarms > 0 {
            let _ = writeln!(
                out,
                "  across partitions {} suspicions and failures (expected)",
                self.partitioned_alarms
            );
        }
        if self.slow_node_suspicions > 0 || self.slow_node_failures.count > 0 {
            let _ = writeln!(
                out,
                "  slow nodes        suspected {} times · declared failed {} times",
                self.slow_node_suspicions, self.slow_node_failures.count
            );
        }
        let _ = writeln!(
            out,
            "  convergence       {} after the last fault",
            opt(self.convergence_ms)
        );
        if let Some(j) = self.join_ms {
            let _ = writeln!(
                out,
                "  join              {j:.0} ms until every node saw every other"
            );
        }
        if let Some(p) = &self.primaries {
            let _ = writeln!(
                out,
                "  primary kills     {} · new primary agreed by every node {} · never {}",
                p.kills.len(),
                spread(&p.agreed_after),
                p.never_agreed
            );
            let _ = writeln!(
                out,
                "  disagreement      {:.0} ms in all outside partitions (longest {:.0} ms, {} checks)",
                p.disagreement_ms, p.longest_disagreement_ms, p.checks
            );
        }
        if let Some(st) = &self.state {
            let _ = writeln!(
                out,
                "  replicated state  {} writes · {} of {} (holder, owner) pairs disagree at the end",
                st.writes, st.disagreements, st.pairs
            );
        }
        let _ = writeln!(
            out,
            "  traffic per node  {:.1} B/s mean ({:.1} max) · {:.2} msgs/s mean",
            self.bytes_per_node_per_sec.mean,
            self.bytes_per_node_per_sec.max,
            self.msgs_per_node_per_sec.mean
        );
        let kinds: Vec<String> = self
            .messages_by_kind
            .iter()
            .filter(|k| k.1 > 0)
            .map(|(k, c, b)| format!("{k} {c} ({b} B)"))
            .collect();
        let _ = writeln!(out, "  messages sent     {}", kinds.join(" · "));
        let _ = writeln!(
            out,
            "  peak memory       {:.1} MiB",
            self.peak_rss_bytes as f64 / (1 << 20) as f64
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_nearest_rank() {
        let s = Spread::of((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max), (Some(50.0), Some(99.0), Some(100.0)));
        let one = Spread::of(vec![7.0]);
        assert_eq!(
            (one.p50, one.p99, one.max),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert_eq!(Spread::of(vec![]).p50, None);
    }
}
