//! Seeded multi-node checks of the protocol on the simulator: each builds a small world
//! from a shipped scenario (or an inline one), runs it in virtual time and asserts on
//! behaviour. Every failure message carries the seed that reproduces it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use muster_sim::{Report, Scenario, World};

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("shipped scenarios load")
}

fn inline(toml: &str) -> Scenario {
    let s: Scenario = toml::from_str(toml).expect("inline scenario parses");
    s.check().expect("inline scenario is valid");
    s
}

fn run(s: Scenario, nodes: usize, seed: u64) -> (World, Report) {
    muster_sim::run(s, nodes, seed, &AtomicBool::new(false), |_| {}).expect("the run completes")
}

#[test]
fn thirty_two_nodes_join_through_one_seed_and_agree() {
    let seed = 11;
    let s = inline(
        r#"
        name = "join-32"
        nodes = 32
        duration = "30s"
        start = "join"
        join_spread = "2s"
        seeds = 1
        "#,
    );
    let (w, r) = run(s, 32, seed);
    assert!(
        r.join_ms.is_some(),
        "seed {seed}: not every node saw every other within 30 s"
    );
    let digests: Vec<u64> = (0..32)
        .map(|i| w.node(i).expect("all up").digest())
        .collect();
    assert!(
        digests.iter().all(|d| *d == digests[0]),
        "seed {seed}: digests differ: {digests:x?}"
    );
    for i in 0..32 {
        assert_eq!(
            w.node(i).unwrap().members().live_count(),
            32,
            "seed {seed}: node {i} sees too few"
        );
    }
}

#[test]
fn a_crashed_node_is_marked_failed_by_every_other_node() {
    for seed in [1, 2, 3] {
        let (_, r) = run(scenario("crash"), 32, seed);
        assert_eq!(r.detection.crashes.len(), 10, "seed {seed}");
        for c in &r.detection.crashes {
            assert_eq!(
                c.missing_observers, 0,
                "seed {seed}: {} not marked failed by everyone",
                c.node
            );
            assert!(
                c.all_failed_ms.is_some(),
                "seed {seed}: {} never fully detected",
                c.node
            );
        }
        assert_eq!(
            r.false_failures.count, 0,
            "seed {seed}: live nodes marked failed: {:?}",
            r.false_failures
        );
    }
}

#[test]
fn no_live_node_is_marked_failed_at_ten_percent_loss_for_ten_minutes() {
    for (nodes, seed) in [(32, 1), (32, 2), (100, 3)] {
        let (_, r) = run(scenario("lossy"), nodes, seed);
        assert_eq!(r.virtual_secs, 600.0);
        assert_eq!(
            r.false_failures.count, 0,
            "seed {seed}, {nodes} nodes: live nodes marked failed: {:?}",
            r.false_failures
        );
        // The crash in the middle is still found by everyone.
        assert_eq!(
            r.detection.crashes[0].missing_observers, 0,
            "seed {seed}, {nodes} nodes"
        );
    }
}

#[test]
fn a_slow_node_is_never_declared_failed_and_accuses_no_one_into_failure() {
    let seed = 5;
    let (_, r) = run(scenario("slow-node"), 64, seed);
    assert_eq!(
        r.slow_node_failures.count, 0,
        "seed {seed}: the slow node was declared failed"
    );
    assert_eq!(
        r.false_failures.count, 0,
        "seed {seed}: healthy nodes declared failed"
    );
}

#[test]
fn a_node_five_seconds_late_is_failed_at_most_once_and_fails_no_one() {
    // Its first suspicions may outrun its first announcement of poor health (one round:
    // each of the other 63 marks it failed once); after that, never again.
    for seed in [1, 2] {
        let (_, r) = run(scenario("slow-node-5s"), 64, seed);
        assert!(
            r.slow_node_failures.count <= 63,
            "seed {seed}: the slow node was declared failed {} times",
            r.slow_node_failures.count
        );
        assert_eq!(
            r.false_failures.count, 0,
            "seed {seed}: healthy nodes declared failed"
        );
    }
}

#[test]
fn partition_heals_into_one_cluster_with_every_node_alive() {
    for seed in [1, 7] {
        let (w, r) = run(scenario("partition-heal"), 60, seed);
        assert!(
            r.convergence_ms.is_some(),
            "seed {seed}: never converged after the heal"
        );
        for i in 0..60 {
            let n = w.node(i).expect("no node crashes in this scenario");
            assert_eq!(
                n.members().live_count(),
                60,
                "seed {seed}: node {i} does not see everyone alive"
            );
        }
    }
}

#[test]
fn restarted_nodes_rejoin_with_higher_incarnations() {
    let seed = 3;
    let (w, r) = run(scenario("rolling-restart"), 40, seed);
    assert!(
        r.convergence_ms.is_some(),
        "seed {seed}: did not converge after the restarts"
    );
    assert_eq!(
        r.false_failures.count, 0,
        "seed {seed}: {:?}",
        r.false_failures
    );
    let restarted: Vec<&str> = r
        .detection
        .crashes
        .iter()
        .map(|c| c.node.as_str())
        .collect();
    let observer = w.node(0).expect("seeds are never restarted");
    for name in restarted {
        let m = observer.member(name).expect("restarted node is known");
        assert!(
            m.incarnation >= 1,
            "seed {seed}: {name} came back at incarnation {}",
            m.incarnation
        );
        assert_eq!(
            m.state,
            muster::wire::MemberState::Alive,
            "seed {seed}: {name}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_result() {
    let a = run(scenario("churn"), 50, 9).1.deterministic_json();
    let b = run(scenario("churn"), 50, 9).1.deterministic_json();
    assert_eq!(a, b, "seed 9: two runs differ");
    let c = run(scenario("churn"), 50, 10).1.deterministic_json();
    assert_ne!(a, c, "different seeds should give different traces");
}

#[test]
fn every_shipped_scenario_loads_and_runs_small() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(
        names.len() >= 9,
        "expected the shipped scenarios (nine or more), found {}",
        names.len()
    );
    for path in names {
        let mut s = Scenario::load(&path).unwrap();
        s.duration = s.duration.min(std::time::Duration::from_secs(40));
        let (_, r) = run(s, 12, 1);
        assert!(r.steps > 0, "{}", path.display());
    }
}

#[test]
fn after_partitions_loss_and_restarts_every_live_node_holds_every_live_nodes_state() {
    for seed in [1, 5] {
        let (w, r) = run(scenario("state-sync"), 40, seed);
        let st = r.state.expect("the scenario has a state workload");
        assert!(st.writes > 100, "seed {seed}: only {} writes", st.writes);
        assert_eq!(
            st.disagreements, 0,
            "seed {seed}: {} of {} (holder, owner) pairs disagree",
            st.disagreements, st.pairs
        );
        assert!(
            r.convergence_ms.is_some(),
            "seed {seed}: the sync digests never agreed after the last write"
        );
        // Somebody restarted, so some maps are at a later epoch than the first.
        let epochs: std::collections::BTreeSet<u64> = (0..w.node_count())
            .filter_map(|i| w.node(i))
            .filter_map(|n| n.kv(n.name()).map(|m| m.epoch()))
            .collect();
        assert!(epochs.len() > 1, "seed {seed}: no restart changed an epoch");
    }
}

#[test]
fn killed_primaries_are_replaced_and_every_node_agrees_on_the_new_one() {
    let seed = 3;
    let mut s = scenario("primary-kill");
    s.duration = std::time::Duration::from_secs(200);
    s.faults[0].until = Some(std::time::Duration::from_secs(160));
    let (_, r) = run(s, 30, seed);
    let p = r.primaries.expect("the scenario has primaries");
    assert!(
        p.kills.len() >= 6,
        "seed {seed}: only {} kills",
        p.kills.len()
    );
    assert_eq!(
        p.never_agreed, 0,
        "seed {seed}: after some kills the nodes never agreed on a new primary: {:?}",
        p.kills
    );
    // Agreement follows failure detection (seconds), never the push-pull period.
    let worst = p.agreed_after.max.expect("some kills were agreed on");
    assert!(
        worst < 15_000.0,
        "seed {seed}: a kill took {worst} ms to agree on"
    );
}
