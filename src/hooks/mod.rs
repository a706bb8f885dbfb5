//! Event hooks: on chosen membership events, run a command or POST to a webhook (the
//! `[[hooks]]` of the agent config, [`HookConfig`]).
//!
//! # Layout
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`HookRunner`]: the dispatcher task and the per-hook stats |
//! | `queue.rs` | the bounded, drop-oldest queue in front of each hook |
//! | `worker.rs` | one hook's task: attempts, timeout, retries with [`Backoff`], logs, counters |
//! | `command.rs` | running a command with the event on stdin and in `MUSTER_*` variables |
//! | `config.rs` | [`HookConfig`]: a hook as the config file writes it, its defaults and checks |
//! | `error.rs` | [`HookError`]: why one attempt failed |
//!
//! # Invariants
//!
//! Hooks run off the protocol path: the journal offers events on a broadcast channel,
//! one dispatcher task copies each into the queue of every hook that wants it without
//! ever waiting, and each hook has its own task. So a slow or stuck hook delays neither
//! the protocol, nor the journal, nor the other hooks; its own backlog is bounded, the
//! oldest event dropped and counted when full. Delivery is best-effort: each attempt
//! happens at most once, a failed one is retried a bounded number of times, and events
//! from while the agent was down are not replayed.
//!
//! Events reach hooks as data only: a command's argv and a webhook's URL and headers are
//! the configured ones, never templated with an event's values, which arrive in
//! `MUSTER_*` variables and JSON (stdin, or the request body). Values that came from
//! other members are escaped in the hooks' log lines.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::events::journal::EventRecord;
use crate::field_error::FieldError;
use crate::http_client::TlsClient;
use crate::metrics::{Exposition, Kind, MetricsSource};

pub(crate) mod command;
pub mod config;
mod error;
mod queue;
mod worker;

use crate::backoff::Backoff;
pub use command::{STDERR_KEPT, environment};
pub use config::{HookAction, HookConfig};
pub use error::HookError;

pub use crate::http_client::USER_AGENT;

use queue::Queue;
use worker::{Action, Counters, Hook};

/// Events held per hook while it is busy: a burst of failures in a large cluster fits,
/// and a hook down for long cannot grow the agent without bound.
pub const QUEUE_CAPACITY: usize = 256;

/// How a runner paces its hooks; [`Default`] for agents, shorter waits for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerOptions {
    /// Waits between a hook's attempts.
    pub backoff: Backoff,
    /// Events held per hook ([`QUEUE_CAPACITY`]).
    pub queue_capacity: usize,
}

impl Default for RunnerOptions {
    fn default() -> RunnerOptions {
        RunnerOptions {
            backoff: Backoff::default(),
            queue_capacity: QUEUE_CAPACITY,
        }
    }
}

/// One hook's counters since the runner started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookStats {
    /// The hook's name (configured, or `hook-INDEX`).
    pub name: String,
    /// Events delivered (an attempt succeeded).
    pub delivered: u64,
    /// Attempts made, retries included.
    pub runs: u64,
    /// Attempts that failed (timeout, exit status, HTTP status, connection...).
    pub failures: u64,
    /// Events abandoned after every attempt failed.
    pub gave_up: u64,
    /// Events never attempted: dropped from a full queue, or missed because the runner
    /// fell behind the journal (counted for every hook, whatever the event's kind).
    pub dropped: u64,
}

/// The running hooks of one agent. Dropping it stops them (a command in progress is
/// killed); they also stop by themselves once the journal closes and their queues are
/// empty.
#[derive(Debug)]
pub struct HookRunner {
    hooks: Vec<Arc<Hook>>,
    tasks: Vec<JoinHandle<()>>,
}

impl HookRunner {
    /// Starts `configs` (on the current tokio runtime) on the events of `events`, with
    /// the default pacing. Refuses a config that does not validate, naming its field.
    pub fn spawn(
        configs: &[HookConfig],
        events: broadcast::Receiver<Arc<EventRecord>>,
    ) -> Result<HookRunner, FieldError> {
        HookRunner::spawn_with(configs, events, RunnerOptions::default())
    }

    /// [`HookRunner::spawn`] with explicit pacing.
    pub fn spawn_with(
        configs: &[HookConfig],
        events: broadcast::Receiver<Arc<EventRecord>>,
        options: RunnerOptions,
    ) -> Result<HookRunner, FieldError> {
        let mut hooks = Vec::with_capacity(configs.len());
        // One TLS client for every https:// hook, built only if there is one.
        let mut tls = None;
        for (index, config) in configs.iter().enumerate() {
            config.validate(index)?;
            let action = match config.action(index)? {
                HookAction::Command(argv) => Action::Command(argv),
                HookAction::Webhook(url) => Action::Webhook {
                    tls: url
                        .tls
                        .then(|| tls.get_or_insert_with(TlsClient::new).clone()),
                    url,
                    headers: config
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                },
            };
            hooks.push(Arc::new(Hook {
                name: config.name_at(index),
                kinds: config.kinds(index)?,
                action,
                timeout: config.timeout,
                retries: config.retries,
                queue: Queue::new(options.queue_capacity),
                counters: Counters::default(),
            }));
        }
        let mut tasks = Vec::with_capacity(hooks.len() + 1);
        if !hooks.is_empty() {
            for hook in &hooks {
                tasks.push(tokio::spawn(hook.clone().run(options.backoff)));
            }
            tasks.push(tokio::spawn(dispatch(events, hooks.clone())));
        }
        Ok(HookRunner { hooks, tasks })
    }

    /// Every hook's counters, in config order.
    pub fn stats(&self) -> Vec<HookStats> {
        self.hooks
            .iter()
            .map(|h| {
                let c = &h.counters;
                HookStats {
                    name: h.name.clone(),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    runs: c.runs.load(Ordering::Relaxed),
                    failures: c.failures.load(Ordering::Relaxed),
                    gave_up: c.gave_up.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Whether no hook is configured.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

/// A metric family of the hooks: name, help, and the counter it reads.
type Family = (&'static str, &'static str, fn(&HookStats) -> u64);

/// The hooks' counters on `GET /metrics`, one series per hook.
impl MetricsSource for HookRunner {
    fn write_metrics(&self, out: &mut Exposition) {
        let stats = self.stats();
        let families: [Family; 5] = [
            (
                "muster_hook_runs_total",
                "Event hook attempts, retries included.",
                |s| s.runs,
            ),
            (
                "muster_hook_failures_total",
                "Event hook attempts that failed.",
                |s| s.failures,
            ),
            (
                "muster_hook_delivered_total",
                "Events an event hook delivered.",
                |s| s.delivered,
            ),
            (
                "muster_hook_gave_up_total",
                "Events an event hook abandoned after every retry failed.",
                |s| s.gave_up,
            ),
            (
                "muster_hook_dropped_total",
                "Events an event hook never attempted (full queue, or the hooks fell behind).",
                |s| s.dropped,
            ),
        ];
        for (name, help, value) in families {
            out.family(name, Kind::Counter, help);
            for s in &stats {
                out.sample(name, &[("hook", &s.name)], value(s) as f64);
            }
        }
    }
}

impl Drop for HookRunner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Copies each event into the queue of every hook that wants it, never waiting.
async fn dispatch(mut events: broadcast::Receiver<Arc<EventRecord>>, hooks: Vec<Arc<Hook>>) {
    loop {
        match events.recv().await {
            Ok(record) => {
                for hook in hooks.iter().filter(|h| h.wants(record.kind())) {
                    if let Some(old) = hook.queue.push(record.clone()) {
                        hook.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            hook = %hook.name,
                            event = %old.kind(),
                            seq = old.seq,
                            member = %old.member.name.escape_debug(),
                            "hook queue full; dropped its oldest event"
                        );
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                for hook in &hooks {
                    hook.counters.dropped.fetch_add(missed, Ordering::Relaxed);
                }
                tracing::warn!(
                    missed,
                    "event hooks fell behind the journal; those events are dropped"
                );
            }
            Err(RecvError::Closed) => break,
        }
    }
    for hook in &hooks {
        hook.queue.close();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::{MemberView, Status};
    use crate::events::journal::EventDetail;
    use crate::wire::Tags;

    /// A `member-failed` record about `member`.
    pub(crate) fn record(seq: u64, member: &str) -> EventRecord {
        EventRecord {
            seq,
            detail: EventDetail::MemberFailed,
            node: "a".into(),
            time_ms: 1_700_000_000_000,
            member: MemberView {
                name: member.into(),
                addr: "127.0.0.1:7003".into(),
                region: "eu".into(),
                zone: "eu-1".into(),
                status: Status::Failed,
                incarnation: 2,
                tags: Tags::new(),
                status_changed_ms_ago: 0,
                rtt_ms: None,
                node_key: "00".repeat(32),
                availability: None,
            },
        }
    }

    fn fast() -> RunnerOptions {
        RunnerOptions {
            backoff: Backoff {
                base: Duration::from_millis(5),
                max: Duration::from_millis(20),
            },
            queue_capacity: 4,
        }
    }

    async fn until(what: &str, runner: &HookRunner, check: impl Fn(&HookStats) -> bool) {
        let start = tokio::time::Instant::now();
        while !check(&runner.stats()[0]) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what}: {:?}",
                runner.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn events_of_other_kinds_are_not_delivered() {
        let (tx, rx) = broadcast::channel(16);
        let hooks = [HookConfig::command(&["member-left"], &["true"])];
        let runner = HookRunner::spawn_with(&hooks, rx, fast()).unwrap();
        tx.send(Arc::new(record(1, "c"))).unwrap();
        let mut left = record(2, "c");
        left.detail = EventDetail::MemberLeft;
        tx.send(Arc::new(left)).unwrap();
        until("the left event is delivered", &runner, |s| s.delivered == 1).await;
        let s = &runner.stats()[0];
        assert_eq!((s.runs, s.failures, s.gave_up, s.dropped), (1, 0, 0, 0));
    }

    #[tokio::test]
    async fn a_failing_hook_is_retried_then_given_up() {
        let (tx, rx) = broadcast::channel(16);
        let mut hook = HookConfig::command(&["*"], &["false"]);
        hook.retries = 2;
        let runner = HookRunner::spawn_with(&[hook], rx, fast()).unwrap();
        tx.send(Arc::new(record(1, "c"))).unwrap();
        until("the hook gives up", &runner, |s| s.gave_up == 1).await;
        let s = &runner.stats()[0];
        assert_eq!((s.runs, s.failures, s.delivered), (3, 3, 0));
        assert_eq!(s.name, "hook-0");
    }

    #[tokio::test]
    async fn events_missed_by_a_lagging_runner_are_counted_as_dropped() {
        let (tx, rx) = broadcast::channel(2);
        for seq in 1..=5 {
            tx.send(Arc::new(record(seq, "c"))).unwrap();
        }
        let hooks = [HookConfig::command(&["member-failed"], &["true"])];
        let runner = HookRunner::spawn_with(&hooks, rx, fast()).unwrap();
        until("the held events are delivered", &runner, |s| {
            s.delivered == 2
        })
        .await;
        assert_eq!(runner.stats()[0].dropped, 3);
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_events() {
        let (tx, rx) = broadcast::channel(64);
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("open");
        // Blocks until the gate file exists, then records the event's sequence number.
        let script = format!(
            "while [ ! -e '{0}' ]; do sleep 0.02; done; echo $MUSTER_SEQ >> '{0}.seqs'",
            gate.display()
        );
        let hooks = [HookConfig::command(&["*"], &["sh", "-c", &script])];
        let runner = HookRunner::spawn_with(&hooks, rx, fast()).unwrap();
        tx.send(Arc::new(record(1, "c"))).unwrap();
        until("the first event is taken", &runner, |s| s.runs == 1).await;
        // The queue holds 4: of 2..=9, the oldest four go.
        for seq in 2..=9 {
            tx.send(Arc::new(record(seq, "c"))).unwrap();
        }
        until("four are dropped", &runner, |s| s.dropped == 4).await;
        std::fs::write(&gate, "").unwrap();
        until("the rest are delivered", &runner, |s| s.delivered == 5).await;
        let seqs = std::fs::read_to_string(gate.with_extension("seqs")).unwrap();
        assert_eq!(
            seqs.split_whitespace().collect::<Vec<_>>(),
            ["1", "6", "7", "8", "9"]
        );
    }

    #[test]
    fn an_invalid_config_is_refused_by_name() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let (_tx, rx) = broadcast::channel(1);
        let hooks = [HookConfig::command(&["member-exploded"], &["true"])];
        let err = HookRunner::spawn(&hooks, rx).unwrap_err();
        assert!(err.to_string().contains("hooks[0].events"), "{err}");
    }
}
