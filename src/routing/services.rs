//! [`Services`]: the agent's services at run time. It runs their health checks,
//! publishes each instance's record into this member's replicated state whenever its
//! health or drain state changes, and keeps the [`Router`] fed with the catalog of every
//! live member's instances — rebuilt once per burst of membership or state changes
//! (debounced), not once per gossip message — so route answers are cheap reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::agent::{AgentError, Mesh, MeshControl, MeshView};
use crate::field_error::FieldError;
use crate::routing::HealthStatus;
use crate::routing::catalog;
use crate::routing::check::{HealthReport, HealthRunner, ServiceHealth};
use crate::routing::primary::Election;
use crate::routing::record::{self, ServiceRecord};
use crate::routing::router::{
    Caller, Catalog, RouteAnswer, RouteError, RouteQuery, Router, RuleChange,
};
use crate::routing::rule::FailoverRule;
use crate::routing::spec::ServiceSpec;

/// A burst of changes is over once nothing has changed for this long...
pub const DEBOUNCE_QUIET: Duration = Duration::from_millis(100);
/// ...or this long after its first change, whichever comes first: a steady trickle of
/// changes still reaches route answers twice a second.
pub const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

/// How long this agent's instance must have been primary before the agent publishes a
/// claim to the role (services without failback): long enough for a freshly started
/// agent to have pulled everyone's records, so it never claims on a partial view.
pub const CLAIM_SETTLE: Duration = Duration::from_secs(2);

/// Something that changes now and then: the snapshots [`settle`] debounces.
pub trait Changes {
    /// Waits for the next change; `false` once the source has closed.
    fn next_change(&mut self) -> impl std::future::Future<Output = bool> + Send;
}

impl<T: Send + Sync> Changes for tokio::sync::watch::Receiver<T> {
    async fn next_change(&mut self) -> bool {
        self.changed().await.is_ok()
    }
}

impl<A: Send + Sync, B: Send + Sync> Changes
    for (
        tokio::sync::watch::Receiver<A>,
        tokio::sync::watch::Receiver<B>,
    )
{
    async fn next_change(&mut self) -> bool {
        tokio::select! {
            r = self.0.changed() => r.is_ok(),
            r = self.1.changed() => r.is_ok(),
        }
    }
}

/// Lets a burst of changes finish: returns once nothing has changed for
/// [`DEBOUNCE_QUIET`], or [`DEBOUNCE_MAX`] after it was called, whichever comes first;
/// `false` if the source closed meanwhile. Route answers and DNS answers both change
/// once per burst this way, not once per gossip message.
pub async fn settle(changes: &mut impl Changes) -> bool {
    let started = tokio::time::Instant::now();
    loop {
        let left = DEBOUNCE_MAX.saturating_sub(started.elapsed());
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            open = changes.next_change() => if !open { return false },
            () = tokio::time::sleep(DEBOUNCE_QUIET.min(left)) => return true,
        }
    }
}

/// Longest wait between two looks at the rules' clocks when no deadline is due (a rule's
/// `retry` shortens it: rules are re-checked at least that often).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Why a service request was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The services of the agent config are invalid (names `services[INDEX].KEY`).
    #[error(transparent)]
    Config(#[from] FieldError),
    /// The service definition is invalid (the field names the key, e.g.
    /// `checks[0].timeout`).
    #[error("invalid service `{}`: {}", .0.field, .0.reason)]
    Invalid(FieldError),
    /// This agent runs no service of that name.
    #[error("this agent runs no service named {0:?}")]
    NotLocal(String),
    /// The router refused (unknown service, region without instances).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The mesh refused or has stopped.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// One local service as `GET /v1/services/{name}` shows its local side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalService {
    /// Its definition.
    pub spec: ServiceSpec,
    /// Its checks' health (before draining).
    pub health: Option<ServiceHealth>,
    /// Whether it is drained.
    pub draining: bool,
    /// The status published to the cluster.
    pub status: HealthStatus,
}

struct Inner {
    view: MeshView,
    control: MeshControl,
    runner: HealthRunner,
    router: Mutex<Router>,
    drained: Mutex<BTreeSet<String>>,
    /// Wakes the publisher after a registration or a drain.
    republish: Notify,
    /// The caller this agent answers for by default.
    home: Caller,
    /// Rule changes seen, newest last (bounded), for the API and logs.
    changes: Mutex<Vec<RuleChange>>,
    /// Rule changes counted by service, for metrics.
    change_counts: Mutex<BTreeMap<String, u64>>,
    /// Rule changes as they happen, for the event journal.
    rule_events: broadcast::Sender<RuleChange>,
    /// Primary-role elections as of the last catalog update.
    primaries: Mutex<Primaries>,
    /// Claims this agent publishes for its primary-mode services, by service.
    claims: Mutex<BTreeMap<String, u64>>,
    /// Primary changes, for the journal (events and hooks).
    primary_events: broadcast::Sender<PrimaryChange>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A change of a `primary`-mode service's primary, as this agent computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrimaryChange {
    /// The service.
    pub service: String,
    /// The node holding the role now (`None`: no instance is eligible).
    pub primary: Option<String>,
    /// The node that held it before.
    pub previous: Option<String>,
}

/// A service's primary as `GET /v1/services/{name}/primary` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrimaryView {
    /// The service.
    pub service: String,
    /// The primary instance.
    pub primary: crate::routing::router::InstanceView,
    /// Its priority.
    pub priority: u32,
    /// Its claim term (0 with failback, where no claims are made).
    pub claim: u64,
    /// Whether a recovered higher-priority instance takes the role back.
    pub failback: bool,
    /// How long it has held the role as this agent saw it, in milliseconds.
    pub since_ms: u64,
}

/// Why a service has no primary to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrimaryError {
    /// No live member runs the service.
    #[error("no service named {0:?}")]
    UnknownService(String),
    /// The service is not in `primary` mode.
    #[error("service {0:?} is not in primary mode")]
    NotPrimaryMode(String),
    /// No instance is eligible (none is passing on a live member).
    #[error("service {0:?} has no primary: no instance is passing")]
    NoPrimary(String),
}

/// Primary changes buffered per subscriber.
const PRIMARY_EVENTS: usize = 256;

/// Rule changes buffered for a slow event journal: a region failing over changes one
/// rule per service, so a burst is the service count.
const RULE_EVENTS: usize = 1024;

/// The current primary of each `primary`-mode service, with when this agent first saw it.
#[derive(Debug, Default)]
struct Primaries {
    elections: BTreeMap<String, Election>,
    current: BTreeMap<String, (Option<String>, crate::proto::Time)>,
}

/// Rule changes kept for `GET /v1/services` readers.
const KEPT_CHANGES: usize = 64;

/// The agent's services; cheap to clone (clones share everything). Dropping the last
/// clone does not stop the tasks: call [`Services::shutdown`].
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("home", &self.inner.home.region)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps and sets: still usable after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Services {
    /// Starts the checks of `specs` and the publisher and router tasks for `mesh` (on
    /// the current tokio runtime).
    pub fn start(mesh: &Mesh, specs: &[ServiceSpec]) -> Result<Services, ServicesError> {
        let runner = HealthRunner::spawn(specs)?;
        let view = mesh.view();
        let me = view
            .members()
            .iter()
            .find(|m| m.name == *view.name())
            .cloned()
            .expect("a mesh always lists itself");
        let home = Caller {
            region: me.region.to_string(),
            zone: me.zone.to_string(),
            key: me.name.to_string(),
        };
        let inner = Arc::new(Inner {
            router: Mutex::new(Router::new(home.region.clone())),
            view,
            control: mesh.control(),
            runner,
            drained: Mutex::new(BTreeSet::new()),
            republish: Notify::new(),
            home,
            changes: Mutex::new(Vec::new()),
            change_counts: Mutex::new(BTreeMap::new()),
            rule_events: broadcast::channel(RULE_EVENTS).0,
            primaries: Mutex::new(Primaries::default()),
            claims: Mutex::new(BTreeMap::new()),
            primary_events: broadcast::channel(PRIMARY_EVENTS).0,
            tasks: Mutex::new(Vec::new()),
        });
        let publisher = tokio::spawn(publish(inner.clone()));
        let feeder = tokio::spawn(feed_router(inner.clone()));
        lock(&inner.tasks).extend([publisher, feeder]);
        Ok(Services { inner })
    }

    /// Registers (or replaces) a local service: its checks start and its instance is
    /// published.
    pub fn register(&self, spec: ServiceSpec) -> Result<(), ServicesError> {
        spec.validate().map_err(ServicesError::Invalid)?;
        // `add` replaces a service of the same name in place (identical checks keep
        // running with their state).
        self.inner
            .runner
            .add(spec)
            .map_err(ServicesError::Invalid)?;
        self.inner.republish.notify_one();
        Ok(())
    }

    /// Removes a local service: its checks stop and its instance is withdrawn.
    pub fn deregister(&self, name: &str) -> Result<(), ServicesError> {
        if !self.inner.runner.remove(name) {
            return Err(ServicesError::NotLocal(name.to_owned()));
        }
        lock(&self.inner.drained).remove(name);
        self.inner.republish.notify_one();
        Ok(())
    }

    /// Marks one local service (or, with `None`, all of them) draining: no new traffic,
    /// still alive. Returns the services drained.
    pub fn drain(&self, name: Option<&str>) -> Result<Vec<String>, ServicesError> {
        self.set_draining(name, true)
    }

    /// Ends draining of one local service (or all); returns the services affected.
    pub fn undrain(&self, name: Option<&str>) -> Result<Vec<String>, ServicesError> {
        self.set_draining(name, false)
    }

    fn set_draining(&self, name: Option<&str>, on: bool) -> Result<Vec<String>, ServicesError> {
        let local: Vec<String> = self
            .inner
            .runner
            .services()
            .into_iter()
            .map(|s| s.name)
            .collect();
        let targets = match name {
            Some(n) if local.iter().any(|l| l == n) => vec![n.to_owned()],
            Some(n) => return Err(ServicesError::NotLocal(n.to_owned())),
            None => local,
        };
        {
            let mut drained = lock(&self.inner.drained);
            for t in &targets {
                if on {
                    drained.insert(t.clone());
                } else {
                    drained.remove(t);
                }
            }
        }
        tracing::info!(services = ?targets, draining = on, "drain changed");
        self.inner.republish.notify_one();
        Ok(targets)
    }

    /// Where to send traffic for `service`: for this agent's region and zone unless
    /// `caller` says otherwise.
    pub fn route(
        &self,
        service: &str,
        caller: Option<Caller>,
        query: &RouteQuery,
    ) -> Result<RouteAnswer, RouteError> {
        let caller = caller.unwrap_or_else(|| self.inner.home.clone());
        let now = self.inner.view.now();
        let answer = lock(&self.inner.router).route(now, service, &caller, query);
        self.collect_changes();
        answer
    }

    /// The caller this agent answers for by default.
    pub fn home(&self) -> &Caller {
        &self.inner.home
    }

    /// Sends `service`'s traffic to `region` until [`Services::reset`].
    pub fn force(&self, service: &str, region: &str) -> Result<(), ServicesError> {
        let now = self.inner.view.now();
        lock(&self.inner.router).force(now, service, region)?;
        tracing::warn!(service, region, "manual failover");
        self.collect_changes();
        Ok(())
    }

    /// Ends a manual failover of `service`, and a failback waiting for an operator.
    pub fn reset(&self, service: &str) -> Result<(), ServicesError> {
        let now = self.inner.view.now();
        lock(&self.inner.router).reset(now, service)?;
        tracing::info!(service, "failover reset");
        self.collect_changes();
        Ok(())
    }

    /// The local services, their health and drain state, by name.
    pub fn local(&self) -> BTreeMap<String, LocalService> {
        let report = self.inner.runner.report();
        let drained = lock(&self.inner.drained).clone();
        self.inner
            .runner
            .services()
            .into_iter()
            .map(|spec| {
                let draining = drained.contains(&spec.name);
                let health = report.get(&spec.name).cloned();
                let status = published_status(&report, &spec.name, draining);
                (
                    spec.name.clone(),
                    LocalService {
                        spec,
                        health,
                        draining,
                        status,
                    },
                )
            })
            .collect()
    }

    /// The catalog route answers are computed from (as of the last debounced update).
    pub fn catalog(&self) -> Catalog {
        lock(&self.inner.router).catalog().clone()
    }

    /// The catalog generation: it moves once per burst of changes that changed it.
    pub fn index(&self) -> u64 {
        lock(&self.inner.router).index()
    }

    /// Recent failover rule changes, oldest first.
    pub fn rule_changes(&self) -> Vec<RuleChange> {
        self.collect_changes();
        lock(&self.inner.changes).clone()
    }

    /// Failover rule changes from now on (for the event journal).
    pub fn subscribe_rule_changes(&self) -> broadcast::Receiver<RuleChange> {
        self.inner.rule_events.subscribe()
    }

    /// Primary changes from now on (for the event journal).
    pub fn subscribe_primaries(&self) -> broadcast::Receiver<PrimaryChange> {
        self.inner.primary_events.subscribe()
    }

    /// The primary of `service`, as of the last catalog update.
    pub fn primary(&self, service: &str) -> Result<PrimaryView, PrimaryError> {
        // This service's instances only, not the whole catalog: the DNS interface asks
        // this per query of `primary.SERVICE.service.muster.`.
        let Some(instances) = lock(&self.inner.router)
            .catalog()
            .services
            .get(service)
            .cloned()
        else {
            return Err(PrimaryError::UnknownService(service.to_owned()));
        };
        let primaries = lock(&self.inner.primaries);
        let Some(election) = primaries.elections.get(service) else {
            return Err(PrimaryError::NotPrimaryMode(service.to_owned()));
        };
        let (holder, instance) = election
            .primary()
            .and_then(|p| instances.iter().find(|i| i.node == p.node).map(|i| (p, i)))
            .ok_or_else(|| PrimaryError::NoPrimary(service.to_owned()))?;
        let since = primaries
            .current
            .get(service)
            .map_or(crate::proto::Time::ZERO, |(_, t)| *t);
        Ok(PrimaryView {
            service: service.to_owned(),
            primary: instance.into(),
            priority: holder.priority,
            claim: holder.claim,
            failback: election.failback,
            since_ms: self.inner.view.now().saturating_since(since).as_millis() as u64,
        })
    }

    /// The health of the local services, as the checks report it.
    pub fn health(&self) -> HealthReport {
        self.inner.runner.report()
    }

    /// Stops the checks and the tasks.
    pub fn shutdown(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        self.inner.runner.stop();
    }

    fn collect_changes(&self) {
        collect_changes(&self.inner);
    }
}

/// Moves the router's pending rule changes into the kept list, logging each.
fn collect_changes(inner: &Inner) {
    let mut router = lock(&inner.router);
    let mut kept = lock(&inner.changes);
    let mut counts = lock(&inner.change_counts);
    while let Some(c) = router.poll_change() {
        *counts.entry(c.service.clone()).or_default() += 1;
        tracing::info!(
            service = %c.service,
            region = %c.region,
            from = %c.from,
            to = %c.to,
            reason = %c.reason,
            "failover rule changed"
        );
        let _ = inner.rule_events.send(c.clone());
        kept.push(c);
    }
    let excess = kept.len().saturating_sub(KEPT_CHANGES);
    kept.drain(..excess);
}

/// The status a local service is published with.
fn published_status(report: &HealthReport, name: &str, draining: bool) -> HealthStatus {
    if draining {
        HealthStatus::Draining
    } else {
        report.status(name).unwrap_or(HealthStatus::Critical)
    }
}

/// Keeps this member's replicated state in line with its services: one record per
/// service, rewritten when its health or drain state changes, deleted when removed.
async fn publish(inner: Arc<Inner>) {
    let mut health = inner.runner.subscribe();
    let mut published: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let report = health.borrow_and_update().clone();
        let drained = lock(&inner.drained).clone();
        let claims = lock(&inner.claims).clone();
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for spec in inner.runner.services() {
            let status = published_status(&report, &spec.name, drained.contains(&spec.name));
            let mut rec = ServiceRecord::of(&spec, status);
            rec.claim = claims.get(&spec.name).copied().unwrap_or(0);
            wanted.insert(record::key(&spec.name), rec.encode());
        }
        for (key, value) in &wanted {
            if published.get(key) != Some(value) {
                match inner.control.set_kv(key.clone(), Some(value.clone())).await {
                    Ok(()) => {
                        published.insert(key.clone(), value.clone());
                    }
                    Err(AgentError::Stopped) => return,
                    Err(e) => tracing::warn!(%key, error = %e, "service record not published"),
                }
            }
        }
        let gone: Vec<String> = published
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            match inner.control.set_kv(key.clone(), None).await {
                Ok(()) => {
                    published.remove(&key);
                }
                Err(AgentError::Stopped) => return,
                Err(e) => tracing::warn!(%key, error = %e, "service record not withdrawn"),
            }
        }
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            () = inner.republish.notified() => {}
        }
    }
}

/// Takes new elections: reports every primary that changed, and adjusts the claims this
/// agent publishes for its own instances (without failback, the primary holds a claim).
fn elect(inner: &Inner, elections: BTreeMap<String, Election>) {
    let now = inner.view.now();
    let me = inner.home.key.as_str();
    let mut changes = Vec::new();
    {
        let mut primaries = lock(&inner.primaries);
        for (service, election) in &elections {
            let node = election.primary().map(|p| p.node.clone());
            let previous = primaries.current.get(service).map(|(n, _)| n.clone());
            if previous.as_ref() != Some(&node) {
                if previous.is_some() || node.is_some() {
                    changes.push(PrimaryChange {
                        service: service.clone(),
                        primary: node.clone(),
                        previous: previous.flatten(),
                    });
                }
                primaries.current.insert(service.clone(), (node, now));
            }
        }
        // A service whose last instance went with its member: nobody holds the role.
        let gone: Vec<String> = primaries
            .current
            .keys()
            .filter(|s| !elections.contains_key(*s))
            .cloned()
            .collect();
        for service in gone {
            if let Some((Some(previous), _)) = primaries.current.remove(&service) {
                changes.push(PrimaryChange {
                    service,
                    primary: None,
                    previous: Some(previous),
                });
            }
        }
        primaries.elections = elections;
    }
    for c in changes {
        tracing::info!(
            service = %c.service,
            primary = c.primary.as_deref().unwrap_or("none"),
            previous = c.previous.as_deref().unwrap_or("none"),
            "primary changed"
        );
        let _ = inner.primary_events.send(c);
    }
    // Claims for this agent's own primary-mode instances: only once it has been
    // primary for CLAIM_SETTLE (a claim already made is kept while it stands).
    let held = lock(&inner.claims).clone();
    let wanted: BTreeMap<String, u64> = {
        let primaries = lock(&inner.primaries);
        inner
            .runner
            .services()
            .into_iter()
            .filter_map(|s| {
                let claim = primaries.elections.get(&s.name)?.claim_for(me);
                let settled = primaries.current.get(&s.name).is_some_and(|(node, since)| {
                    node.as_deref() == Some(me) && now.saturating_since(*since) >= CLAIM_SETTLE
                });
                (claim > 0 && (settled || held.get(&s.name) == Some(&claim)))
                    .then_some((s.name, claim))
            })
            .collect()
    };
    let mut claims = lock(&inner.claims);
    if *claims != wanted {
        tracing::debug!(?wanted, "primary claims changed");
        *claims = wanted;
        inner.republish.notify_one();
    }
}

/// How often the rules are re-checked: the shortest `retry` of any rule in the
/// catalog, at most [`IDLE_TICK`].
fn retry_interval(inner: &Inner) -> Duration {
    lock(&inner.router)
        .catalog()
        .rules
        .values()
        .map(|r| r.retry)
        .min()
        .unwrap_or(IDLE_TICK)
        .clamp(Duration::from_millis(10), IDLE_TICK)
}

/// The local services' own failover rules (they win over rules instances carry).
fn local_rules(inner: &Inner) -> BTreeMap<String, FailoverRule> {
    inner
        .runner
        .services()
        .into_iter()
        .filter_map(|s| s.failover.map(|r| (s.name, r)))
        .collect()
}

/// Rebuilds the router's catalog once per burst of membership or state changes, and
/// moves its rules' clocks at their deadlines.
async fn feed_router(inner: Arc<Inner>) {
    let mut snapshots = (inner.view.watch(), inner.view.watch_kv());
    loop {
        let (m, k) = (
            snapshots.0.borrow_and_update().clone(),
            snapshots.1.borrow_and_update().clone(),
        );
        let (catalog, elections) = catalog::read(&m, &k, &local_rules(&inner));
        lock(&inner.router).update(inner.view.now(), catalog);
        collect_changes(&inner);
        elect(&inner, elections);
        // Wait for the next change, ticking the rules at their deadlines meanwhile.
        loop {
            let now = inner.view.now();
            // Two statements: the router's lock must be released before
            // `retry_interval` takes it again.
            let deadline = lock(&inner.router).poll_timeout();
            let wait = deadline
                .map_or(IDLE_TICK, |at| at.saturating_since(now))
                .min(retry_interval(&inner));
            tokio::select! {
                open = snapshots.next_change() => { if !open { return } break }
                () = tokio::time::sleep(wait) => {
                    lock(&inner.router).tick(inner.view.now());
                    collect_changes(&inner);
                    // A claim waits for its settle time, which passes without a change:
                    // the same elections again, with a later clock.
                    let elections = lock(&inner.primaries).elections.clone();
                    elect(&inner, elections);
                }
            }
        }
        if !settle(&mut snapshots).await {
            return;
        }
    }
}

impl crate::metrics::MetricsSource for Services {
    fn write_metrics(&self, out: &mut crate::metrics::Exposition) {
        use crate::metrics::Kind;
        let catalog = self.catalog();
        out.family(
            "muster_service_instances",
            Kind::Gauge,
            "Service instances on live members as this agent's router sees them, by service, region and status.",
        );
        for (service, instances) in &catalog.services {
            let mut counts: BTreeMap<(&str, HealthStatus), u64> = BTreeMap::new();
            for i in instances {
                *counts.entry((i.region.as_str(), i.status)).or_default() += 1;
            }
            for ((region, status), n) in counts {
                out.sample(
                    "muster_service_instances",
                    &[
                        ("service", service),
                        ("region", region),
                        ("status", status.as_str()),
                    ],
                    n as f64,
                );
            }
        }
        out.family(
            "muster_service_local_status",
            Kind::Gauge,
            "This agent's own service instances: 1 for the status it publishes.",
        );
        for (name, local) in self.local() {
            out.sample(
                "muster_service_local_status",
                &[("service", &name), ("status", local.status.as_str())],
                1.0,
            );
        }
        out.family(
            "muster_failover_state",
            Kind::Gauge,
            "The failover rule state for this agent's region: 1 for the state in force, by service.",
        );
        let home = self.inner.home.clone();
        for service in catalog.services.keys() {
            let now = self.inner.view.now();
            let answer =
                lock(&self.inner.router).route(now, service, &home, &RouteQuery::default());
            if let Ok(a) = answer {
                out.sample(
                    "muster_failover_state",
                    &[("service", service), ("state", a.rule.state.as_str())],
                    1.0,
                );
            }
        }
        self.collect_changes();
        out.family(
            "muster_failover_changes_total",
            Kind::Counter,
            "Failover rule state changes this agent's router made, by service.",
        );
        for (service, n) in lock(&self.inner.change_counts).iter() {
            out.sample(
                "muster_failover_changes_total",
                &[("service", service)],
                *n as f64,
            );
        }
        out.single(
            "muster_route_catalog_index",
            Kind::Gauge,
            "Generation of the catalog route answers come from (moves once per burst of changes).",
            self.index() as f64,
        );
    }
}
