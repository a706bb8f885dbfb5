//! Scripted router tests: fixed times, fixed catalogs, assertions on answers and changes.

use std::net::Ipv4Addr;

use super::*;
use crate::routing::rule::{Action, Failback, Trigger};

const WEB: &str = "web";

fn at(ms: u64) -> Time {
    Time::from_duration(Duration::from_millis(ms))
}

/// A passing, alive instance of weight 1; the address comes from the node's number.
fn inst(node: &str, region: &str, zone: &str) -> Instance {
    let n: u8 = node
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    Instance {
        node: node.into(),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
        port: 8080,
        region: region.into(),
        zone: zone.into(),
        member: MemberState::Alive,
        status: HealthStatus::Passing,
        weight: 1,
    }
}

fn with_status(mut i: Instance, status: HealthStatus) -> Instance {
    i.status = status;
    i
}

/// `web` with these instances, RTTs us 80ms, ap 150ms, sa unmeasured.
fn catalog(instances: Vec<Instance>) -> Catalog {
    Catalog {
        services: BTreeMap::from([(WEB.to_string(), instances)]),
        rules: BTreeMap::new(),
        region_rtt: BTreeMap::from([
            ("eu".to_string(), Duration::from_millis(2)),
            ("us".to_string(), Duration::from_millis(80)),
            ("ap".to_string(), Duration::from_millis(150)),
        ]),
    }
}

fn with_rule(mut catalog: Catalog, rule: FailoverRule) -> Catalog {
    catalog.rules.insert(WEB.into(), rule);
    catalog
}

/// Two in eu (zones a and b), two in us, one in ap, one in sa.
fn world() -> Vec<Instance> {
    vec![
        inst("eu1", "eu", "eu-a"),
        inst("eu2", "eu", "eu-b"),
        inst("us1", "us", "us-a"),
        inst("us2", "us", "us-a"),
        inst("ap1", "ap", "ap-a"),
        inst("sa1", "sa", "sa-a"),
    ]
}

/// `world()` with eu's instances critical.
fn eu_down() -> Vec<Instance> {
    world()
        .into_iter()
        .map(|i| {
            if i.region == "eu" {
                with_status(i, HealthStatus::Critical)
            } else {
                i
            }
        })
        .collect()
}

fn caller(region: &str, zone: &str, key: &str) -> Caller {
    Caller {
        region: region.into(),
        zone: zone.into(),
        key: key.into(),
    }
}

fn eu_caller() -> Caller {
    caller("eu", "eu-a", "agent-eu-1")
}

fn route(router: &mut Router, now: Time) -> RouteAnswer {
    router
        .route(now, WEB, &eu_caller(), &RouteQuery::default())
        .expect("web exists")
}

fn nodes(answer: &RouteAnswer) -> Vec<&str> {
    answer.instances.iter().map(|i| i.node.as_str()).collect()
}

fn regions_of(answer: &RouteAnswer) -> Vec<&str> {
    answer.instances.iter().map(|i| i.region.as_str()).collect()
}

fn changes(router: &mut Router) -> Vec<(String, RuleState, RuleState)> {
    std::iter::from_fn(|| router.poll_change())
        .map(|c| (c.region, c.from, c.to))
        .collect()
}

fn eu(from: RuleState, to: RuleState) -> (String, RuleState, RuleState) {
    ("eu".into(), from, to)
}

fn router_with(now: Time, catalog: Catalog) -> Router {
    let mut router = Router::new("eu");
    router.update(now, catalog);
    router
}

use RuleState::{FailedOver, FailingBack, Forced, Normal, Pending, Remote};

#[test]
fn same_zone_instances_come_first_then_the_rest_of_the_region() {
    let mut instances = world();
    instances.extend([
        inst("eu3", "eu", "eu-a"),
        inst("eu4", "eu", "eu-b"),
        inst("eu5", "eu", "eu-c"),
    ]);
    let mut router = router_with(at(0), catalog(instances));
    for key in ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"] {
        let answer = router
            .route(
                at(0),
                WEB,
                &caller("eu", "eu-a", key),
                &RouteQuery::default(),
            )
            .unwrap();
        let zones: Vec<&str> = answer.instances.iter().map(|i| i.zone.as_str()).collect();
        assert_eq!(&zones[..2], ["eu-a", "eu-a"], "key {key}: {zones:?}");
        assert_eq!(zones.len(), 5, "only the caller's region: {zones:?}");
        assert!(regions_of(&answer).iter().all(|r| *r == "eu"));
        assert_eq!(answer.rule.state, Normal);
        assert_eq!(answer.rule.regions, ["eu"]);
    }
}

#[test]
fn weighted_rendezvous_spreads_first_choices_by_weight_and_is_stable_per_key() {
    let mut light = inst("eu1", "eu", "eu-a");
    light.weight = 1;
    let mut heavy = inst("eu2", "eu", "eu-a");
    heavy.weight = 3;
    let mut router = router_with(at(0), catalog(vec![light, heavy]));
    let keys = 10_000;
    let mut heavy_first = 0;
    for k in 0..keys {
        let who = caller("eu", "eu-a", &format!("client-{k}"));
        let answer = router
            .route(at(0), WEB, &who, &RouteQuery::default())
            .unwrap();
        if answer.instances[0].node == "eu2" {
            heavy_first += 1;
        }
    }
    let share = f64::from(heavy_first) / f64::from(keys);
    // Expected 0.75; the standard error over 10,000 keys is 0.0043.
    assert!((share - 0.75).abs() < 0.02, "heavy first for {share}");

    let who = caller("eu", "eu-a", "client-42");
    let first = router
        .route(at(0), WEB, &who, &RouteQuery::default())
        .unwrap();
    for t in 1..20 {
        let again = router
            .route(at(t * 1000), WEB, &who, &RouteQuery::default())
            .unwrap();
        assert_eq!(nodes(&again), nodes(&first), "same key, same order");
    }
}

#[test]
fn removing_an_instance_moves_only_the_callers_that_had_it_first() {
    let three = vec![
        inst("eu1", "eu", "eu-a"),
        inst("eu2", "eu", "eu-a"),
        inst("eu3", "eu", "eu-a"),
    ];
    let mut router = router_with(at(0), catalog(three.clone()));
    let firsts = |router: &mut Router| -> Vec<String> {
        (0..500)
            .map(|k| {
                let who = caller("eu", "eu-a", &format!("c{k}"));
                let answer = router
                    .route(at(0), WEB, &who, &RouteQuery::default())
                    .unwrap();
                answer.instances[0].node.clone()
            })
            .collect()
    };
    let before = firsts(&mut router);
    router.update(at(0), catalog(three[..2].to_vec()));
    let after = firsts(&mut router);
    for (b, a) in before.iter().zip(&after) {
        if b != "eu3" {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn draining_and_critical_are_excluded_and_warning_only_with_warning_ok() {
    let instances = vec![
        inst("eu1", "eu", "eu-a"),
        with_status(inst("eu2", "eu", "eu-a"), HealthStatus::Warning),
        with_status(inst("eu3", "eu", "eu-a"), HealthStatus::Critical),
        with_status(inst("eu4", "eu", "eu-a"), HealthStatus::Draining),
    ];
    let mut router = router_with(at(0), catalog(instances));
    assert_eq!(nodes(&route(&mut router, at(0))), ["eu1"]);
    let warning_ok = RouteQuery {
        warning_ok: true,
        ..RouteQuery::default()
    };
    let answer = router.route(at(0), WEB, &eu_caller(), &warning_ok).unwrap();
    let mut got = nodes(&answer);
    got.sort();
    assert_eq!(got, ["eu1", "eu2"]);
}

#[test]
fn suspect_members_come_after_alive_ones_of_the_same_tier() {
    let mut suspect_a = inst("eu1", "eu", "eu-a");
    suspect_a.member = MemberState::Suspect;
    let mut suspect_b = inst("eu4", "eu", "eu-b");
    suspect_b.member = MemberState::Suspect;
    let mut dead = inst("eu5", "eu", "eu-a");
    dead.member = MemberState::Dead;
    let instances = vec![
        suspect_a,
        inst("eu2", "eu", "eu-a"),
        inst("eu3", "eu", "eu-b"),
        suspect_b,
        dead,
    ];
    let mut router = router_with(at(0), catalog(instances));
    for key in ["a", "b", "c", "d", "e"] {
        let answer = router
            .route(
                at(0),
                WEB,
                &caller("eu", "eu-a", key),
                &RouteQuery::default(),
            )
            .unwrap();
        // Zone first, then alive before suspect inside it; the dead member never shows.
        assert_eq!(nodes(&answer), ["eu2", "eu1", "eu3", "eu4"], "key {key}");
    }
}

#[test]
fn full_cycle_fails_over_to_the_nearest_region_and_back() {
    let mut router = router_with(at(0), catalog(world()));
    assert_eq!(route(&mut router, at(0)).rule.state, Normal);
    assert_eq!(changes(&mut router), []);

    // All of eu goes critical at 1s: pending, traffic still in eu (nothing healthy).
    router.update(at(1_000), catalog(eu_down()));
    assert_eq!(changes(&mut router), [eu(Normal, Pending)]);
    let answer = route(&mut router, at(2_500));
    assert_eq!(answer.rule.state, Pending);
    assert_eq!(answer.rule.regions, ["eu"]);
    assert!(answer.instances.is_empty());
    assert_eq!(answer.rule.since_ms, 1_500);
    assert!(
        answer.rule.reason.contains("failing over in 0.5s"),
        "{}",
        answer.rule.reason
    );
    assert_eq!(router.poll_timeout(), Some(at(3_000)));

    // The timeout (2s) passes: the next call acts on it.
    router.tick(at(2_999));
    assert_eq!(changes(&mut router), []);
    router.tick(at(3_100));
    assert_eq!(changes(&mut router), [eu(Pending, FailedOver)]);
    let answer = route(&mut router, at(3_100));
    assert_eq!(answer.rule.state, FailedOver);
    assert_eq!(answer.rule.regions, ["us", "ap", "sa"]);
    assert_eq!(regions_of(&answer), ["us", "us", "ap", "sa"]);
    assert_eq!(
        answer.rule.reason,
        "region eu has 0 passing instances (fewer than 1) for 2.1s: failed over to us, ap, sa"
    );
    assert_eq!(router.poll_timeout(), None);

    // eu heals at 10s: failing back, traffic stays away, eu's instances come last.
    router.update(at(10_000), catalog(world()));
    assert_eq!(changes(&mut router), [eu(FailedOver, FailingBack)]);
    let answer = route(&mut router, at(12_000));
    assert_eq!(answer.rule.state, FailingBack);
    assert_eq!(answer.rule.regions, ["us", "ap", "sa", "eu"]);
    assert_eq!(regions_of(&answer), ["us", "us", "ap", "sa", "eu", "eu"]);
    assert_eq!(router.poll_timeout(), Some(at(20_000)));

    // After the failback hold (10s): normal.
    router.tick(at(19_999));
    assert_eq!(changes(&mut router), []);
    let answer = route(&mut router, at(20_000));
    assert_eq!(changes(&mut router), [eu(FailingBack, Normal)]);
    assert_eq!(answer.rule.state, Normal);
    assert_eq!(answer.rule.since_ms, 0);
    assert_eq!(regions_of(&answer), ["eu", "eu"]);
}

#[test]
fn a_flap_during_pending_does_not_fail_over() {
    let mut router = router_with(at(0), catalog(world()));
    router.update(at(1_000), catalog(eu_down()));
    router.update(at(2_000), catalog(world()));
    router.update(at(2_500), catalog(eu_down()));
    router.tick(at(3_500));
    assert_eq!(route(&mut router, at(4_000)).rule.state, Pending);
    assert_eq!(
        changes(&mut router),
        [
            eu(Normal, Pending),
            eu(Pending, Normal),
            eu(Normal, Pending)
        ]
    );
    // The timeout counts from 2.5s.
    assert_eq!(router.poll_timeout(), Some(at(4_500)));
    assert_eq!(route(&mut router, at(4_500)).rule.state, FailedOver);
}

#[test]
fn a_relapse_while_failing_back_fails_over_again_without_a_new_timeout() {
    let mut router = router_with(at(0), catalog(eu_down()));
    router.tick(at(2_000));
    router.update(at(5_000), catalog(world()));
    router.update(at(6_000), catalog(eu_down()));
    assert_eq!(
        changes(&mut router),
        [
            eu(Normal, Pending),
            eu(Pending, FailedOver),
            eu(FailedOver, FailingBack),
            eu(FailingBack, FailedOver),
        ]
    );
    assert_eq!(route(&mut router, at(6_000)).rule.state, FailedOver);
}

#[test]
fn an_update_acts_on_a_due_timeout_under_the_old_catalog_first() {
    let mut router = router_with(at(0), catalog(world()));
    router.update(at(1_000), catalog(eu_down()));
    // Nobody ticked; eu heals at 5s, after the 3s deadline.
    router.update(at(5_000), catalog(world()));
    assert_eq!(
        changes(&mut router),
        [
            eu(Normal, Pending),
            eu(Pending, FailedOver),
            eu(FailedOver, FailingBack)
        ]
    );
}

#[test]
fn fewer_than_trigger_keeps_the_remaining_local_instances_after_the_failover_regions() {
    let rule = FailoverRule {
        trigger: Trigger { fewer_than: 2 },
        ..FailoverRule::default()
    };
    let mut instances = world();
    instances[1].status = HealthStatus::Critical; // eu2
    let mut router = router_with(at(0), with_rule(catalog(instances), rule));
    assert_eq!(route(&mut router, at(0)).rule.state, Pending);
    let answer = route(&mut router, at(2_000));
    assert_eq!(answer.rule.state, FailedOver);
    assert_eq!(answer.rule.regions, ["us", "ap", "sa", "eu"]);
    assert_eq!(regions_of(&answer), ["us", "us", "ap", "sa", "eu"]);
    assert_eq!(answer.instances.last().unwrap().node, "eu1");
    assert!(
        answer
            .rule
            .reason
            .starts_with("region eu has 1 passing instance (fewer than 2) for 2.0s"),
        "{}",
        answer.rule.reason
    );
}

#[test]
fn listed_regions_apply_in_list_order_skipping_ones_without_a_healthy_instance() {
    let rule = FailoverRule {
        action: Action::Regions(vec!["ap".into(), "mars".into(), "us".into()]),
        timeout: Duration::from_secs(1),
        ..FailoverRule::default()
    };
    let mut router = router_with(at(0), with_rule(catalog(eu_down()), rule));
    let answer = route(&mut router, at(1_000));
    assert_eq!(answer.rule.state, FailedOver);
    assert_eq!(answer.rule.action, "ap, mars, us");
    assert_eq!(answer.rule.regions, ["ap", "us"]);
    assert_eq!(regions_of(&answer), ["ap", "us", "us"]);
    assert_eq!(answer.rule.timeout_ms, 1_000);
}

#[test]
fn manual_failback_waits_for_a_reset() {
    let rule = FailoverRule {
        failback: Failback::Manual,
        ..FailoverRule::default()
    };
    let mut router = router_with(at(0), with_rule(catalog(eu_down()), rule.clone()));
    router.tick(at(2_000));
    router.update(at(3_000), with_rule(catalog(world()), rule.clone()));
    let answer = route(&mut router, at(60_000));
    assert_eq!(answer.rule.state, FailedOver);
    assert_eq!(answer.rule.failback, "manual");
    assert_eq!(regions_of(&answer), ["us", "us", "ap", "sa", "eu", "eu"]);
    assert!(
        answer
            .rule
            .reason
            .contains("failback is manual: failed over to us, ap, sa, then eu until `muster failover reset web`"),
        "{}",
        answer.rule.reason
    );
    assert_eq!(router.poll_timeout(), None);
    assert_eq!(
        changes(&mut router),
        [eu(Normal, Pending), eu(Pending, FailedOver)]
    );

    router.reset(at(61_000), WEB).unwrap();
    let change = router.poll_change().unwrap();
    assert_eq!((change.from, change.to), (FailedOver, Normal));
    assert!(
        change
            .reason
            .starts_with("reset by an operator: region eu has 2"),
        "{}",
        change.reason
    );
    assert_eq!(regions_of(&route(&mut router, at(61_000))), ["eu", "eu"]);
}

#[test]
fn force_sends_every_caller_to_one_region_until_reset() {
    let mut router = router_with(at(0), catalog(world()));
    assert_eq!(
        router.force(at(1_000), "nope", "ap"),
        Err(RouteError::UnknownService {
            service: "nope".into()
        })
    );
    assert_eq!(
        router.force(at(1_000), WEB, "mars"),
        Err(RouteError::NoInstancesInRegion {
            service: WEB.into(),
            region: "mars".into()
        })
    );
    router.force(at(1_000), WEB, "ap").unwrap();
    assert_eq!(changes(&mut router), [eu(Normal, Forced)]);
    let answer = route(&mut router, at(4_000));
    assert_eq!(answer.rule.state, Forced);
    assert_eq!(answer.rule.regions, ["ap"]);
    assert_eq!(nodes(&answer), ["ap1"]);
    assert_eq!(answer.rule.since_ms, 3_000);
    // A caller from another region is forced too.
    let from_us = router
        .route(
            at(4_000),
            WEB,
            &caller("us", "us-a", "x"),
            &RouteQuery::default(),
        )
        .unwrap();
    assert_eq!(nodes(&from_us), ["ap1"]);
    // Forcing elsewhere restarts the clock.
    router.force(at(5_000), WEB, "sa").unwrap();
    let answer = route(&mut router, at(5_000));
    assert_eq!((nodes(&answer), answer.rule.since_ms), (vec!["sa1"], 0));

    router.reset(at(6_000), WEB).unwrap();
    let answer = route(&mut router, at(6_000));
    assert_eq!(answer.rule.state, Normal);
    assert_eq!(regions_of(&answer), ["eu", "eu"]);
    assert_eq!(
        changes(&mut router),
        [
            eu(Forced, Forced),
            ("us".into(), Forced, Forced),
            eu(Forced, Normal),
            ("us".into(), Forced, Normal),
        ]
    );
}

#[test]
fn a_reset_during_a_long_outage_fails_over_at_once() {
    let mut router = router_with(at(0), catalog(world()));
    router.force(at(0), WEB, "ap").unwrap();
    router.update(at(1_000), catalog(eu_down()));
    let _ = changes(&mut router);
    router.reset(at(30_000), WEB).unwrap();
    assert_eq!(
        changes(&mut router),
        [eu(Forced, Pending), eu(Pending, FailedOver)]
    );
}

#[test]
fn a_region_without_any_instance_is_remote_at_once() {
    let mut router = router_with(at(0), catalog(world()));
    let from_me = caller("me", "me-a", "x");
    // "me" is not in the catalog at all: answered afresh, nothing stored.
    let answer = router
        .route(at(5_000), WEB, &from_me, &RouteQuery::default())
        .unwrap();
    assert_eq!(answer.rule.state, Remote);
    assert_eq!(answer.rule.regions, ["eu", "us", "ap", "sa"]);
    assert_eq!(
        answer.rule.reason,
        "region me has no instance of web: sent to eu, us, ap, sa"
    );
    assert_eq!(router.tracks.len(), 1, "only (web, eu)");

    // eu with only critical instances is not remote: it waits out the timeout.
    let mut router = router_with(at(0), catalog(eu_down()));
    assert_eq!(route(&mut router, at(0)).rule.state, Pending);
    // eu's instances leave entirely: remote, no timeout.
    let gone: Vec<Instance> = world().into_iter().filter(|i| i.region != "eu").collect();
    router.update(at(500), catalog(gone));
    let answer = route(&mut router, at(500));
    assert_eq!(answer.rule.state, Remote);
    assert_eq!(regions_of(&answer), ["us", "us", "ap", "sa"]);
    // They come back healthy: normal.
    router.update(at(900), catalog(world()));
    assert_eq!(route(&mut router, at(900)).rule.state, Normal);
    assert_eq!(
        changes(&mut router),
        [eu(Normal, Pending), eu(Pending, Remote), eu(Remote, Normal)]
    );
}

#[test]
fn a_region_restriction_gives_that_region_only_without_failover() {
    let mut router = router_with(at(0), catalog(eu_down()));
    router.tick(at(2_000));
    let only_eu = RouteQuery {
        region: Some("eu".into()),
        ..RouteQuery::default()
    };
    let answer = router
        .route(at(2_000), WEB, &eu_caller(), &only_eu)
        .unwrap();
    assert_eq!(answer.rule.state, FailedOver);
    assert_eq!(answer.rule.regions, ["eu"]);
    assert!(answer.instances.is_empty());
    assert_eq!(
        answer.rule.reason,
        "restricted to region eu by the query: the rule for eu (failed-over) does not apply; \
         no healthy instance to send traffic to"
    );
    let only_us = RouteQuery {
        region: Some("us".into()),
        ..RouteQuery::default()
    };
    let answer = router
        .route(at(2_000), WEB, &eu_caller(), &only_us)
        .unwrap();
    assert_eq!(regions_of(&answer), ["us", "us"]);
}

#[test]
fn a_limit_keeps_the_first_instances() {
    let mut router = router_with(at(0), catalog(eu_down()));
    router.tick(at(2_000));
    let all = route(&mut router, at(2_000));
    for limit in [0, 1, 3, 100] {
        let query = RouteQuery {
            limit: Some(limit),
            ..RouteQuery::default()
        };
        let answer = router.route(at(2_000), WEB, &eu_caller(), &query).unwrap();
        let n = limit.min(all.instances.len());
        assert_eq!(answer.instances, all.instances[..n]);
    }
}

#[test]
fn the_index_counts_only_updates_that_change_the_catalog() {
    let mut router = Router::new("eu");
    assert_eq!(router.index(), 0);
    router.update(at(0), catalog(world()));
    router.update(at(1), catalog(world()));
    assert_eq!(router.index(), 1);
    router.update(at(2), catalog(eu_down()));
    assert_eq!(router.index(), 2);
    router.update(at(3), catalog(eu_down()));
    router.tick(at(4));
    assert_eq!(route(&mut router, at(5)).index, 2);
    let mut moved = catalog(eu_down());
    moved
        .region_rtt
        .insert("us".into(), Duration::from_millis(81));
    router.update(at(6), moved);
    assert_eq!(router.index(), 3);
}

#[test]
fn an_unknown_service_is_an_error_and_a_service_with_nothing_healthy_is_an_empty_answer() {
    let mut router = router_with(at(0), catalog(world()));
    let err = router
        .route(at(0), "nope", &eu_caller(), &RouteQuery::default())
        .unwrap_err();
    assert_eq!(
        err,
        RouteError::UnknownService {
            service: "nope".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "no instance of service \"nope\" is registered"
    );
    assert!(router.reset(at(0), "nope").is_err());

    let everywhere_down: Vec<Instance> = world()
        .into_iter()
        .map(|i| with_status(i, HealthStatus::Critical))
        .collect();
    router.update(at(0), catalog(everywhere_down));
    let answer = route(&mut router, at(5_000));
    assert_eq!(answer.rule.state, FailedOver);
    assert!(answer.instances.is_empty());
    assert_eq!(
        answer.rule.reason,
        "region eu has 0 passing instances (fewer than 1) for 5.0s: failed over, but no other \
         region has a healthy instance; no healthy instance to send traffic to"
    );

    // A member that failed takes its instances out of the catalog's count.
    let mut dead = inst("eu1", "eu", "eu-a");
    dead.member = MemberState::Dead;
    router.update(at(6_000), catalog(vec![dead]));
    assert!(
        router
            .route(at(6_000), WEB, &eu_caller(), &RouteQuery::default())
            .is_err()
    );
}

#[test]
fn answers_serialize_with_the_documented_keys() {
    let mut router = router_with(at(0), catalog(vec![inst("eu1", "eu", "eu-a")]));
    let json = serde_json::to_value(route(&mut router, at(1_234))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "service": "web",
            "index": 1,
            "rule": {
                "state": "normal",
                "trigger": "none-passing",
                "action": "nearest",
                "regions": ["eu"],
                "reason": "region eu has 1 passing instance (not fewer than 1): traffic stays in eu",
                "since_ms": 1234,
                "timeout_ms": 2000,
                "failback": "10s",
            },
            "instances": [{
                "node": "eu1",
                "address": "10.0.0.1",
                "port": 8080,
                "region": "eu",
                "zone": "eu-a",
                "status": "passing",
                "weight": 1,
                "member": "alive",
            }],
        })
    );
    let change = RuleChange {
        service: WEB.into(),
        region: "eu".into(),
        from: FailingBack,
        to: FailedOver,
        reason: "why".into(),
    };
    assert_eq!(
        serde_json::to_value(change).unwrap(),
        serde_json::json!({"service": "web", "region": "eu", "from": "failing-back", "to": "failed-over", "reason": "why"})
    );
}

#[test]
fn states_of_vanished_services_and_regions_are_dropped() {
    let mut router = router_with(at(0), catalog(world()));
    route(&mut router, at(0));
    router
        .route(
            at(0),
            WEB,
            &caller("us", "us-a", "k"),
            &RouteQuery::default(),
        )
        .unwrap();
    assert_eq!(router.tracks.len(), 2);
    let mut only_api = Catalog::default();
    only_api
        .services
        .insert("api".into(), vec![inst("eu1", "eu", "eu-a")]);
    router.update(at(1), only_api);
    let kept: Vec<_> = router.tracks.keys().cloned().collect();
    assert_eq!(kept, [("api".to_string(), "eu".to_string())]);
}
