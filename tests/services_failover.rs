//! Services, health checks and failover across regions, in process: three regions with
//! two agents each, a `web` service on every agent whose HTTP health check hits a local
//! server the test turns healthy or not. A caller in `eu` is routed to `eu`; when both
//! `eu` instances fail their checks the route moves, once the rule's timeout has passed,
//! to the nearest other region by measured round-trip time; when they heal, traffic
//! returns after the failback hold; a drained instance leaves the answers while its
//! agent stays alive.
//!
//! Every wait polls with a generous deadline; nothing asserts on elapsed time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use muster::Mesh;
use muster::routing::HealthStatus;
use muster::routing::router::{RouteAnswer, RouteQuery, RuleState};
use muster::routing::rule::FailoverRule;
use muster::routing::services::Services;
use muster::routing::spec::{CheckSpec, ServiceSpec};
use muster::wire::MemberState;
use support::eventually_async;
use support::meshes::{all_alive, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A health endpoint answering 200 while `healthy`, else 500.
async fn health_server(healthy: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let ok = healthy.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/health")
}

/// The `web` service with a fast check and a short rule, so the test runs in seconds.
fn web(check_url: &str) -> ServiceSpec {
    let mut check = CheckSpec::http(check_url);
    check.interval = Duration::from_millis(200);
    check.timeout = Duration::from_millis(150);
    check.success_threshold = 2;
    check.failure_threshold = 2;
    let mut spec = ServiceSpec::new("web", 8080);
    spec.checks = vec![check];
    spec.failover = Some(FailoverRule {
        timeout: Duration::from_secs(1),
        retry: Duration::from_millis(200),
        failback: muster::routing::rule::Failback::After(Duration::from_secs(2)),
        ..FailoverRule::default()
    });
    spec
}

struct Agent {
    mesh: Mesh,
    services: Services,
    healthy: Arc<AtomicBool>,
}

fn regions(answer: &RouteAnswer) -> Vec<String> {
    answer.instances.iter().map(|i| i.region.clone()).collect()
}

fn nodes(answer: &RouteAnswer) -> Vec<String> {
    answer.instances.iter().map(|i| i.node.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_fails_over_to_the_nearest_region_and_back_and_drained_instances_leave() {
    let cluster = "services-failover";
    let places = [
        ("eu-a", "eu", "eu-1"),
        ("eu-b", "eu", "eu-2"),
        ("us-a", "us", "us-1"),
        ("us-b", "us", "us-2"),
        ("ap-a", "ap", "ap-1"),
        ("ap-b", "ap", "ap-2"),
    ];
    let mut agents: Vec<Agent> = Vec::new();
    for (name, region, zone) in places {
        let seeds = agents
            .first()
            .map(|a| vec![a.mesh.local_addr()])
            .unwrap_or_default();
        let mesh = start(cluster, name, (region, zone), &[], seeds).await;
        let healthy = Arc::new(AtomicBool::new(true));
        let url = health_server(healthy.clone()).await;
        let services = Services::start(&mesh, &[web(&url)]).expect("valid service");
        agents.push(Agent {
            mesh,
            services,
            healthy,
        });
    }
    // `ap` answers 40 ms late, so it is measurably farther than `us` (and its name,
    // which sorts first, would win a tie: the RTT order is what is tested).
    for a in &agents[4..] {
        a.mesh.set_input_delay(Duration::from_millis(40));
    }
    let meshes: Vec<&Mesh> = agents.iter().map(|a| &a.mesh).collect();
    all_alive(&meshes).await;

    let caller = agents[0].services.clone();
    let route = || caller.route("web", None, &RouteQuery::default());
    // Every instance known and passing, everywhere.
    eventually_async(
        "eu-a's catalog holds six passing web instances and measures ap farther than us",
        || {
            let c = caller.catalog();
            let passing = c.services.get("web").is_some_and(|v| {
                v.len() == 6 && v.iter().all(|i| i.status == HealthStatus::Passing)
            });
            let farther = matches!(
                (c.region_rtt.get("us"), c.region_rtt.get("ap")),
                (Some(us), Some(ap)) if ap > us
            );
            passing && farther
        },
        || format!("{:?}", caller.catalog()),
    )
    .await;
    let answer = route().expect("web is known");
    assert_eq!(answer.rule.state, RuleState::Normal);
    assert_eq!(regions(&answer), vec!["eu", "eu"], "{answer:?}");
    assert_eq!(
        answer.instances[0].node, "eu-a",
        "same zone first: {answer:?}"
    );

    // Both eu instances start failing their checks.
    for a in &agents[..2] {
        a.healthy.store(false, Ordering::Relaxed);
    }
    eventually_async(
        "the route moves to us, the nearest other region (then ap)",
        || {
            route().is_ok_and(|a| {
                a.rule.state == RuleState::FailedOver && regions(&a) == ["us", "us", "ap", "ap"]
            })
        },
        || format!("{:?}", route()),
    )
    .await;
    let changes: Vec<(RuleState, RuleState)> = caller
        .rule_changes()
        .into_iter()
        .filter(|c| c.service == "web" && c.region == "eu")
        .map(|c| (c.from, c.to))
        .collect();
    assert!(
        changes.ends_with(&[
            (RuleState::Normal, RuleState::Pending),
            (RuleState::Pending, RuleState::FailedOver)
        ]),
        "the rule waited its timeout (pending) before acting: {changes:?}"
    );
    let answer = route().unwrap();
    assert_eq!(answer.rule.regions, vec!["us", "ap"], "{answer:?}");

    // eu heals: traffic returns after the failback hold.
    for a in &agents[..2] {
        a.healthy.store(true, Ordering::Relaxed);
    }
    eventually_async(
        "the route fails back to eu",
        || route().is_ok_and(|a| a.rule.state == RuleState::Normal && regions(&a) == ["eu", "eu"]),
        || format!("{:?}", route()),
    )
    .await;
    let changes: Vec<RuleState> = caller
        .rule_changes()
        .into_iter()
        .filter(|c| c.service == "web" && c.region == "eu")
        .map(|c| c.to)
        .collect();
    assert!(
        changes.ends_with(&[RuleState::FailingBack, RuleState::Normal]),
        "traffic came back only after the hold (failing-back): {changes:?}"
    );

    // Draining eu-b takes it out of the answers; it stays alive.
    agents[1]
        .services
        .drain(Some("web"))
        .expect("eu-b runs web");
    eventually_async(
        "eu-b's drained instance leaves eu-a's answers",
        || route().is_ok_and(|a| nodes(&a) == ["eu-a"]),
        || format!("{:?}", route()),
    )
    .await;
    let me = agents[0].mesh.members();
    let eu_b = me.iter().find(|m| m.name == "eu-b").expect("known");
    assert_eq!(eu_b.state, MemberState::Alive, "draining is not leaving");
    let instance = caller.catalog().services["web"]
        .iter()
        .find(|i| i.node == "eu-b")
        .cloned()
        .expect("still listed");
    assert_eq!(instance.status, HealthStatus::Draining);
    agents[1].services.undrain(None).expect("undrain all");
    eventually_async(
        "eu-b is back in the answers",
        || route().is_ok_and(|a| a.instances.len() == 2),
        || format!("{:?}", route()),
    )
    .await;

    // A failed member takes its instances with it.
    let gone = agents.remove(3);
    gone.services.shutdown();
    gone.mesh.shutdown().await;
    eventually_async(
        "us-b's instance leaves the catalog once it is failed",
        || {
            caller.catalog().services["web"]
                .iter()
                .all(|i| i.node != "us-b")
        },
        || format!("{:?}", caller.catalog().services.get("web")),
    )
    .await;
    for a in agents {
        a.services.shutdown();
        a.mesh.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failover_holds_until_reset_and_manual_failback_waits_for_it() {
    let cluster = "services-manual";
    let mut spec_rule = FailoverRule {
        timeout: Duration::from_millis(500),
        retry: Duration::from_millis(200),
        failback: muster::routing::rule::Failback::Manual,
        ..FailoverRule::default()
    };
    spec_rule.action = muster::routing::rule::Action::Regions(vec!["us".into()]);
    let mut agents = Vec::new();
    for (name, region) in [("eu-a", "eu"), ("us-a", "us")] {
        let seeds = agents
            .first()
            .map(|a: &Agent| vec![a.mesh.local_addr()])
            .unwrap_or_default();
        let mesh = start(cluster, name, (region, &format!("{region}-1")), &[], seeds).await;
        let healthy = Arc::new(AtomicBool::new(true));
        let url = health_server(healthy.clone()).await;
        let mut spec = web(&url);
        spec.failover = Some(spec_rule.clone());
        let services = Services::start(&mesh, &[spec]).expect("valid");
        agents.push(Agent {
            mesh,
            services,
            healthy,
        });
    }
    let caller = &agents[0].services;
    let route = || caller.route("web", None, &RouteQuery::default());
    eventually_async(
        "eu-a routes to itself and knows us-a's instance",
        || {
            route().is_ok_and(|a| nodes(&a) == ["eu-a"])
                && caller.catalog().services["web"]
                    .iter()
                    .any(|i| i.node == "us-a" && i.status == HealthStatus::Passing)
        },
        || format!("{:?}", caller.catalog()),
    )
    .await;
    caller.force("web", "us").expect("us runs web");
    let answer = route().unwrap();
    assert_eq!(answer.rule.state, RuleState::Forced);
    assert_eq!(nodes(&answer), vec!["us-a"]);
    assert!(caller.force("web", "mars").is_err(), "no instance in mars");
    caller.reset("web").unwrap();
    assert_eq!(nodes(&route().unwrap()), vec!["eu-a"]);

    // With manual failback, a healed region waits for an operator.
    agents[0].healthy.store(false, Ordering::Relaxed);
    eventually_async(
        "failed over to us",
        || route().is_ok_and(|a| a.rule.state == RuleState::FailedOver),
        || format!("{:?}", route()),
    )
    .await;
    agents[0].healthy.store(true, Ordering::Relaxed);
    eventually_async(
        "eu-a passes again",
        || {
            caller.catalog().services["web"]
                .iter()
                .any(|i| i.node == "eu-a" && i.status == HealthStatus::Passing)
        },
        || format!("{:?}", caller.catalog()),
    )
    .await;
    let answer = route().unwrap();
    assert_eq!(answer.rule.state, RuleState::FailedOver, "{answer:?}");
    assert!(
        answer.rule.reason.contains("reset"),
        "{}",
        answer.rule.reason
    );
    caller.reset("web").unwrap();
    let answer = route().unwrap();
    assert_eq!(answer.rule.state, RuleState::Normal, "{answer:?}");
    assert_eq!(nodes(&answer), vec!["eu-a"]);
    for a in agents {
        a.services.shutdown();
        a.mesh.shutdown().await;
    }
}
