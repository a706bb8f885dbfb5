//! The health-check runner: [`HealthRunner`] runs every check of every local service on
//! its own interval and publishes a [`HealthReport`] (service name → [`ServiceHealth`])
//! on a `watch` channel.
//!
//! # Layout
//!
//! | file | holds |
//! |---|---|
//! | `check.rs` | [`HealthRunner`], the report types, one task per check |
//! | `check/probe.rs` | one run of an `http`, `tcp` or `exec` check, within its timeout |
//! | `check/threshold.rs` | how results become a check's status: first result direct, then thresholds |
//!
//! # Invariants
//!
//! Checks run off the protocol path, each in its own tokio task: the first run at once,
//! then one every `interval` (a run that overruns delays only its own next run), so a
//! slow or stuck check delays no other. A check's status is critical until its first
//! result (`last_run_ms` is `None` then); a service's status is the worst of its
//! checks' ([`HealthStatus::worst`]), passing with no checks. The runner never sets
//! `Draining`.
//!
//! Receivers of [`HealthRunner::subscribe`] are woken when a status changes (a check's
//! or a service's) and when a service is added or removed, not on every run; each
//! run's output, time and streaks are in the value all the same, for whoever reads it.
//! Status changes are logged at info; runs are not logged.
//!
//! Dropping the runner (or [`HealthRunner::stop`]) stops every check; a program an
//! `exec` check is running is killed with its process group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::field_error::FieldError;
use crate::http_client::TlsClient;
use crate::routing::HealthStatus;
use crate::routing::spec::{CheckSpec, CheckTarget, ServiceSpec, validate_services};

mod probe;
mod threshold;

pub use probe::OUTPUT_KEPT;

use probe::{Probed, probe};
use threshold::Threshold;

/// The output of a check that has not run yet.
pub const NOT_RUN_YET: &str = "not run yet";

/// The health of every service of the runner, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HealthReport {
    /// Each service's health, by service name.
    pub services: BTreeMap<String, ServiceHealth>,
}

impl HealthReport {
    /// One service's health.
    pub fn get(&self, service: &str) -> Option<&ServiceHealth> {
        self.services.get(service)
    }

    /// One service's status.
    pub fn status(&self, service: &str) -> Option<HealthStatus> {
        self.get(service).map(|s| s.status)
    }
}

/// One service's health: the worst of its checks'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    /// The worst of the checks' statuses; `Passing` with no checks.
    pub status: HealthStatus,
    /// Each check, in config order.
    pub checks: Vec<CheckState>,
}

/// One check's state after its latest run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    /// What it checks, as configured: `http http://…`, `tcp host:port`, `exec prog args`.
    pub target: String,
    /// Its status after the thresholds; `Critical` until the first result.
    pub status: HealthStatus,
    /// What the latest run said: a summary line (`HTTP 200`, `exit status: 1`, an
    /// error), then up to [`OUTPUT_KEPT`] bytes of body or program output.
    pub output: String,
    /// When the latest run ended, in milliseconds since the Unix epoch; `None` before
    /// the first.
    pub last_run_ms: Option<u64>,
    /// Passing results in a row, up to the latest.
    pub consecutive_passes: u32,
    /// Warning or critical results in a row, up to the latest.
    pub consecutive_failures: u32,
}

impl CheckState {
    fn pending(spec: &CheckSpec) -> CheckState {
        CheckState {
            target: spec.describe(),
            status: HealthStatus::Critical,
            output: NOT_RUN_YET.into(),
            last_run_ms: None,
            consecutive_passes: 0,
            consecutive_failures: 0,
        }
    }
}

impl ServiceHealth {
    fn pending(spec: &ServiceSpec) -> ServiceHealth {
        let checks: Vec<CheckState> = spec.checks.iter().map(CheckState::pending).collect();
        ServiceHealth {
            status: worst(&checks),
            checks,
        }
    }
}

/// The worst status of `checks`, `Passing` if there are none.
fn worst(checks: &[CheckState]) -> HealthStatus {
    checks
        .iter()
        .map(|c| c.status)
        .fold(HealthStatus::Passing, HealthStatus::worst)
}

/// The running health checks of one agent's services. See the module docs.
#[derive(Debug)]
pub struct HealthRunner {
    shared: Arc<Shared>,
}

/// What the runner and its check tasks share.
#[derive(Debug)]
struct Shared {
    registry: Mutex<Registry>,
    report: watch::Sender<HealthReport>,
    /// One TLS client for every `https://` check, built at the first.
    tls: OnceLock<TlsClient>,
}

/// The registered services. Locked before the report is changed, so a task of a
/// removed (or replaced) service can tell and stop instead of writing its result.
#[derive(Debug, Default)]
struct Registry {
    services: BTreeMap<String, Registered>,
    /// Tells a replaced service's tasks from its successor's.
    next_generation: u64,
}

#[derive(Debug)]
struct Registered {
    spec: ServiceSpec,
    generation: u64,
    tasks: Vec<JoinHandle<()>>,
}

impl Registered {
    fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl HealthRunner {
    /// Starts the checks of `services` (on the current tokio runtime). Refuses a list
    /// that does not validate, naming the field as `services[INDEX].KEY`.
    pub fn spawn(services: &[ServiceSpec]) -> Result<HealthRunner, FieldError> {
        validate_services(services)?;
        let runner = HealthRunner {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
                report: watch::Sender::new(HealthReport::default()),
                tls: OnceLock::new(),
            }),
        };
        for spec in services {
            runner
                .add(spec.clone())
                .expect("validate_services checked every spec");
        }
        Ok(runner)
    }

    /// Registers `spec` and starts its checks (on the current tokio runtime), or
    /// replaces the service of the same name.
    /// A replacement with the same checks keeps them running, with their state; other
    /// checks start over (critical until their first result). Refuses a spec that does
    /// not validate, as [`ServiceSpec::validate`] does.
    pub fn add(&self, spec: ServiceSpec) -> Result<(), FieldError> {
        spec.validate()?;
        let mut registry = self.shared.lock();
        if let Some(existing) = registry.services.get_mut(&spec.name) {
            if existing.spec.checks == spec.checks {
                existing.spec = spec;
                return Ok(());
            }
            existing.stop();
        }
        let generation = registry.next_generation;
        registry.next_generation += 1;
        let name = spec.name.clone();
        self.shared.report.send_modify(|report| {
            report
                .services
                .insert(name.clone(), ServiceHealth::pending(&spec));
        });
        let tasks = spec
            .checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let task = CheckTask {
                    shared: self.shared.clone(),
                    service: name.clone(),
                    generation,
                    index,
                    target: check.target().expect("validate checked every target"),
                    spec: check.clone(),
                };
                tokio::spawn(task.run())
            })
            .collect();
        tracing::debug!(service = %name, checks = spec.checks.len(), "health checks started");
        registry.services.insert(
            name,
            Registered {
                spec,
                generation,
                tasks,
            },
        );
        Ok(())
    }

    /// Stops the checks of service `name` and drops it from the report; `false` if
    /// there is no such service.
    pub fn remove(&self, name: &str) -> bool {
        let mut registry = self.shared.lock();
        let Some(removed) = registry.services.remove(name) else {
            return false;
        };
        removed.stop();
        self.shared.report.send_modify(|report| {
            report.services.remove(name);
        });
        tracing::debug!(service = %name, "health checks stopped");
        true
    }

    /// The registered services, by name.
    pub fn services(&self) -> Vec<ServiceSpec> {
        let registry = self.shared.lock();
        registry.services.values().map(|r| r.spec.clone()).collect()
    }

    /// The latest report. See the module docs for when it changes.
    pub fn subscribe(&self) -> watch::Receiver<HealthReport> {
        self.shared.report.subscribe()
    }

    /// A copy of the current report.
    pub fn report(&self) -> HealthReport {
        self.shared.report.borrow().clone()
    }

    /// Stops every check and drops every service, as removing each would (for a
    /// runner shared behind an `Arc`). The channel stays open, with an empty report;
    /// services added later run as usual.
    pub fn stop(&self) {
        let mut registry = self.shared.lock();
        for service in registry.services.values() {
            service.stop();
        }
        registry.services.clear();
        self.shared.report.send_if_modified(|report| {
            let had_services = !report.services.is_empty();
            report.services.clear();
            had_services
        });
        tracing::debug!("health checks stopped");
    }
}

impl Drop for HealthRunner {
    /// Stops every check; receivers see the channel close once the tasks are gone.
    fn drop(&mut self) {
        let registry = self.shared.lock();
        for service in registry.services.values() {
            service.stop();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock but a bug; the map stays consistent.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One check of one service, run by its own task.
struct CheckTask {
    shared: Arc<Shared>,
    service: String,
    generation: u64,
    /// The check's place in its service's list.
    index: usize,
    target: CheckTarget,
    spec: CheckSpec,
}

impl CheckTask {
    /// Runs the check every interval, until its service is removed or replaced (or the
    /// task aborted).
    async fn run(self) {
        let tls = match &self.target {
            CheckTarget::Http(url) if url.tls => {
                Some(self.shared.tls.get_or_init(TlsClient::new).clone())
            }
            _ => None,
        };
        let mut threshold =
            Threshold::new(self.spec.success_threshold, self.spec.failure_threshold);
        let mut ticks = tokio::time::interval(self.spec.interval);
        // A run that overruns (an exec check being killed) pushes the next one back,
        // rather than starting a burst of catch-up runs.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let probed = probe(&self.target, self.spec.timeout, tls.as_ref()).await;
            let before = threshold.status();
            threshold.record(probed.status);
            if !self.publish(before, &threshold, probed) {
                return;
            }
        }
    }

    /// Writes the run's result into the report, waking receivers if a status changed;
    /// `false` if the service is gone (removed, or replaced by another generation).
    fn publish(&self, before: Option<HealthStatus>, threshold: &Threshold, probed: Probed) -> bool {
        let registry = self.shared.lock();
        let current = registry.services.get(&self.service);
        if current.is_none_or(|r| r.generation != self.generation) {
            return false;
        }
        let status = threshold.status().unwrap_or(HealthStatus::Critical);
        let state = CheckState {
            target: self.spec.describe(),
            status,
            output: probed.output,
            last_run_ms: Some(crate::wall_clock::unix_millis()),
            consecutive_passes: threshold.passes(),
            consecutive_failures: threshold.failures(),
        };
        self.shared.report.send_if_modified(|report| {
            let Some(health) = report.services.get_mut(&self.service) else {
                return false;
            };
            let Some(slot) = health.checks.get_mut(self.index) else {
                return false;
            };
            *slot = state;
            let service_before = health.status;
            health.status = worst(&health.checks);
            let changed = before != Some(status);
            if changed {
                let slot = &health.checks[self.index];
                tracing::info!(
                    service = %self.service,
                    check = %slot.target,
                    from = before.map_or("pending", HealthStatus::as_str),
                    to = %status,
                    service_status = %health.status,
                    output = %slot.output,
                    "health check status changed"
                );
            }
            changed || health.status != service_before
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn exec(script: &str) -> CheckSpec {
        CheckSpec {
            // Generous: a loaded machine may take a while to start a shell.
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 1,
            ..CheckSpec::exec(&["/bin/sh", "-c", script])
        }
    }

    fn service(name: &str, checks: Vec<CheckSpec>) -> ServiceSpec {
        ServiceSpec {
            checks,
            ..ServiceSpec::new(name, 8080)
        }
    }

    async fn until(
        rx: &mut watch::Receiver<HealthReport>,
        what: &str,
        done: impl FnMut(&HealthReport) -> bool,
    ) {
        let waited = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(done))
            .await
            .map(|seen| seen.is_ok());
        match waited {
            Ok(alive) => assert!(alive, "{what}: the runner is gone"),
            Err(_) => panic!("{what}: {:?}", *rx.borrow()),
        }
    }

    #[test]
    fn a_service_is_critical_until_its_checks_run_and_passing_without_checks() {
        let none = ServiceHealth::pending(&service("a", vec![]));
        assert_eq!(none.status, HealthStatus::Passing);
        let two = ServiceHealth::pending(&service("a", vec![exec("true"), exec("false")]));
        assert_eq!(two.status, HealthStatus::Critical);
        assert_eq!(two.checks[1].target, "exec /bin/sh -c false");
        assert_eq!(two.checks[1].output, NOT_RUN_YET);
        assert_eq!(two.checks[1].last_run_ms, None);
    }

    #[test]
    fn the_report_serialises_as_a_map_of_services() {
        let mut report = HealthReport::default();
        report.services.insert(
            "web".into(),
            ServiceHealth::pending(&service("web", vec![CheckSpec::tcp("127.0.0.1:80")])),
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"web": {"status": "critical", "checks": [{
                "target": "tcp 127.0.0.1:80", "status": "critical", "output": "not run yet",
                "last_run_ms": null, "consecutive_passes": 0, "consecutive_failures": 0
            }]}})
        );
        let again: HealthReport = serde_json::from_value(json).unwrap();
        assert_eq!(again, report);
    }

    #[tokio::test]
    async fn a_service_is_the_worst_of_its_checks() {
        let runner =
            HealthRunner::spawn(&[service("a", vec![exec("exit 0"), exec("exit 1")])]).unwrap();
        let mut rx = runner.subscribe();
        until(&mut rx, "both checks ran", |r| {
            r.get("a")
                .unwrap()
                .checks
                .iter()
                .all(|c| c.last_run_ms.is_some())
        })
        .await;
        let report = runner.report();
        let a = report.get("a").unwrap();
        assert_eq!(a.checks[0].status, HealthStatus::Passing);
        assert_eq!(a.checks[1].status, HealthStatus::Warning);
        assert_eq!(a.status, HealthStatus::Warning);
    }

    #[tokio::test]
    async fn replacing_a_service_with_the_same_checks_keeps_their_state() {
        let spec = service("a", vec![exec("exit 1")]);
        let runner = HealthRunner::spawn(std::slice::from_ref(&spec)).unwrap();
        let mut rx = runner.subscribe();
        until(&mut rx, "the check warns", |r| {
            r.status("a") == Some(HealthStatus::Warning)
        })
        .await;
        runner
            .add(ServiceSpec {
                weight: 7,
                ..spec.clone()
            })
            .unwrap();
        assert_eq!(runner.report().status("a"), Some(HealthStatus::Warning));
        assert_eq!(runner.services()[0].weight, 7);
        // Other checks start over.
        runner.add(service("a", vec![exec("exit 0")])).unwrap();
        assert_eq!(
            runner.report().get("a").unwrap().checks[0].output,
            NOT_RUN_YET
        );
        until(&mut rx, "the new check passes", |r| {
            r.status("a") == Some(HealthStatus::Passing)
        })
        .await;
    }

    #[tokio::test]
    async fn an_invalid_spec_is_refused_by_field() {
        let mut bad = service("a", vec![exec("true")]);
        bad.checks[0].timeout = Duration::from_secs(3);
        let err = HealthRunner::spawn(std::slice::from_ref(&bad)).unwrap_err();
        assert!(
            err.to_string().contains("services[0].checks[0].timeout"),
            "{err}"
        );
        let runner = HealthRunner::spawn(&[]).unwrap();
        let field = runner.add(bad).unwrap_err().field;
        assert_eq!(field, "checks[0].timeout");
        assert!(runner.report().services.is_empty());
        assert!(!runner.remove("a"));
    }
}
