//! One hook's task: take events from its queue one at a time and deliver each, retrying
//! failed attempts with exponential backoff, logging and counting every outcome.
//!
//! Events are delivered in journal order; while one is retried, later ones wait in the
//! queue (bounded, dropping the oldest), so one hook's trouble stays its own.
//!
//! Log lines show what came from other members (the member's name) and from the command
//! (its stderr, in [`HookError`]) escaped, so neither can forge a log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::events::journal::{EventKind, EventRecord};
use crate::hooks::command;
use crate::hooks::error::HookError;
use crate::hooks::queue::Queue;
use crate::http_client::{self, HttpUrl, TlsClient};

/// What a hook does, ready to run.
#[derive(Debug)]
pub(crate) enum Action {
    /// Run a program.
    Command(Vec<String>),
    /// POST to a URL.
    Webhook {
        url: HttpUrl,
        headers: Vec<(String, String)>,
        tls: Option<TlsClient>,
    },
}

impl Action {
    /// `command` or `webhook`, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Action::Command(_) => "command",
            Action::Webhook { .. } => "webhook",
        }
    }

    async fn attempt(
        &self,
        record: &EventRecord,
        json: &[u8],
        timeout: Duration,
    ) -> Result<(), HookError> {
        match self {
            Action::Command(argv) => command::run(argv, record, json, timeout).await,
            Action::Webhook { url, headers, tls } => {
                http_client::post(url, headers, json, tls.as_ref(), timeout)
                    .await
                    .map_err(HookError::from)
            }
        }
    }
}

/// A hook's counters, shared between its task, the dispatcher and [`super::HookRunner::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) delivered: AtomicU64,
    pub(crate) runs: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) gave_up: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One configured hook.
#[derive(Debug)]
pub(crate) struct Hook {
    pub(crate) name: String,
    pub(crate) kinds: Vec<EventKind>,
    pub(crate) action: Action,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) queue: Queue<Arc<EventRecord>>,
    pub(crate) counters: Counters,
}

impl Hook {
    /// Whether this hook runs on `kind`.
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// The hook's task: until the queue closes and empties.
    pub(crate) async fn run(self: Arc<Self>, backoff: Backoff) {
        while let Some(record) = self.queue.pop().await {
            self.deliver(&record, backoff).await;
        }
        tracing::debug!(hook = %self.name, "hook stopped: no more events");
    }

    /// Delivers one event: up to `retries + 1` attempts.
    async fn deliver(&self, record: &EventRecord, backoff: Backoff) {
        let json = match serde_json::to_vec(record) {
            Ok(json) => json,
            Err(e) => {
                // Plain strings and numbers always serialize; counted should it happen.
                bump(&self.counters.gave_up);
                tracing::error!(hook = %self.name, seq = record.seq, error = %e, "cannot serialize event for hook");
                return;
            }
        };
        let attempts = self.retries.saturating_add(1);
        for attempt in 1..=attempts {
            bump(&self.counters.runs);
            match self.action.attempt(record, &json, self.timeout).await {
                Ok(()) => {
                    bump(&self.counters.delivered);
                    tracing::debug!(
                        hook = %self.name,
                        event = %record.kind(),
                        seq = record.seq,
                        member = %record.member.name.escape_debug(),
                        attempt,
                        "hook ran"
                    );
                    return;
                }
                Err(error) => {
                    bump(&self.counters.failures);
                    let retry_in = (attempt < attempts).then(|| backoff.delay(attempt));
                    tracing::warn!(
                        hook = %self.name,
                        kind = self.action.kind(),
                        event = %record.kind(),
                        seq = record.seq,
                        member = %record.member.name.escape_debug(),
                        attempt,
                        attempts,
                        retry_in = ?retry_in,
                        reason = %error,
                        "hook failed"
                    );
                    if let Some(delay) = retry_in {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        bump(&self.counters.gave_up);
        tracing::error!(
            hook = %self.name,
            kind = self.action.kind(),
            event = %record.kind(),
            seq = record.seq,
            member = %record.member.name.escape_debug(),
            attempts,
            "hook gave up on an event after every attempt failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::hooks::tests::record;

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn control_characters_from_members_and_commands_are_escaped_in_logs() {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let hook = Hook {
            name: "page".into(),
            kinds: EventKind::ALL.to_vec(),
            action: Action::Command(
                [
                    "sh",
                    "-c",
                    "printf 'boom\\nERROR forged by stderr' >&2; exit 1",
                ]
                .map(String::from)
                .to_vec(),
            ),
            timeout: Duration::from_secs(20),
            retries: 0,
            queue: Queue::new(1),
            counters: Counters::default(),
        };
        // The wire refuses such a name (`wire::has_control_char`); the log does not
        // count on it.
        let event = record(1, "c\nERROR forged by a member");
        hook.deliver(&event, Backoff::default()).await;
        assert_eq!(hook.counters.gave_up.load(Ordering::Relaxed), 1);
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one failure, one give-up: {text}");
        assert!(
            lines
                .iter()
                .all(|l| !l.trim_start().starts_with("ERROR forged")),
            "{text}"
        );
        assert!(
            lines[0].contains("hook failed")
                && lines[0].contains(r"member=c\nERROR forged by a member")
                && lines[0].contains(r"boom\nERROR forged by stderr"),
            "{text}"
        );
        assert!(
            lines[1].contains(r"member=c\nERROR forged by a member"),
            "{text}"
        );
    }
}
