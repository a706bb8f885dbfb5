//! `GET /v1/events`: the membership events as a Server-Sent Events stream.
//!
//! Each event goes out as `id: <run>-<seq>` (the journal's run, then the event's number),
//! `event: <kind>` (e.g. `member-failed`) and one `data:` line holding the
//! [`EventRecord`] as JSON. A client that reconnects with `Last-Event-ID` (or `?after=`
//! with a bare number of this run) first gets every held event after that id, then the
//! live ones. When some cannot be given (too old, or the id is from another run of the
//! agent, before it restarted, or the client fell more than
//! [`SUBSCRIBER_BUFFER`](crate::events::journal::SUBSCRIBER_BUFFER) events behind), it gets
//! a `reset` event instead, and should re-read `GET /v1/members`. Filters: `?event=`
//! (repeatable or comma-separated kinds). Comment lines keep idle connections open
//! through proxies. Streams end when the agent stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::api::{ApiError, ApiState};
use crate::events::journal::{EventKind, EventRecord, Gap};

/// Interval of the keep-alive comments on an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a stream sends besides events: why the client must resync.
#[derive(Debug, Serialize)]
struct Reset {
    /// `gap` (the ids asked for are no longer held), `restarted` (the id is from another
    /// run of the agent) or `lagged` (the client read too slowly and events were dropped).
    reason: &'static str,
    /// For `gap`: the id asked for, the oldest held and the latest.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    gap: Option<Gap>,
    /// For `lagged`: how many events were dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
}

/// The parsed query.
#[derive(Debug, Default)]
struct EventQuery {
    kinds: Option<Vec<EventKind>>,
    after: Option<u64>,
}

fn parse_query(pairs: &[(String, String)]) -> Result<EventQuery, ApiError> {
    let mut q = EventQuery::default();
    for (key, value) in pairs {
        match key.as_str() {
            "event" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    let kind = EventKind::parse(name).ok_or_else(|| {
                        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        ApiError::bad_query(
                            "event",
                            format!("unknown event {name:?}; known: {}", known.join(", ")),
                        )
                    })?;
                    q.kinds.get_or_insert_with(Vec::new).push(kind);
                }
            }
            "after" => {
                let id = value.parse().map_err(|_| {
                    ApiError::bad_query("after", format!("{value:?} is not an event id"))
                })?;
                q.after = Some(id);
            }
            other => {
                return Err(ApiError::bad_query(
                    other,
                    format!("unknown parameter {other:?}; known: event, after"),
                ));
            }
        }
    }
    Ok(q)
}

/// The stream's state between items.
struct Cursor {
    run: Arc<str>,
    reset: Option<Reset>,
    backlog: VecDeque<Arc<EventRecord>>,
    live: broadcast::Receiver<Arc<EventRecord>>,
    closing: watch::Receiver<bool>,
    kinds: Option<Vec<EventKind>>,
    /// This stream's place among the open ones (see [`ApiState::with_stream_limit`]),
    /// given back when the stream ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Cursor {
    fn wants(&self, record: &EventRecord) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|k| k.contains(&record.kind()))
    }

    /// The next item, or `None` when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(reset) = self.reset.take() {
            return Some(reset_event(&reset));
        }
        while let Some(record) = self.backlog.pop_front() {
            if self.wants(&record) {
                return Some(record_event(&self.run, &record));
            }
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(record) if self.wants(&record) => return Some(record_event(&self.run, &record)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Some(reset_event(&Reset { reason: "lagged", gap: None, missed: Some(missed) }));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = self.closing.changed() => if changed.is_err() {
                    return None;
                },
            }
        }
    }
}

fn record_event(run: &str, record: &EventRecord) -> SseEvent {
    let data = serde_json::to_string(record).expect("an event record serializes");
    SseEvent::default()
        .id(format!("{run}-{}", record.seq))
        .event(record.kind().as_str())
        .data(data)
}

fn reset_event(reset: &Reset) -> SseEvent {
    let data = serde_json::to_string(reset).expect("a reset serializes");
    SseEvent::default().event("reset").data(data)
}

/// A `Last-Event-ID` as understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventId {
    /// An event of this run: resume after it.
    ThisRun(u64),
    /// An event of another run of the agent: its numbers mean nothing now.
    OtherRun,
}

/// Parses `run-seq` (or a bare `seq`, taken as this run's); `None` if it is neither.
fn parse_event_id(text: &str, run: &str) -> Option<EventId> {
    match text.split_once('-') {
        Some((r, seq)) => {
            let seq = seq.parse::<u64>().ok()?;
            Some(if r == run {
                EventId::ThisRun(seq)
            } else {
                EventId::OtherRun
            })
        }
        None => text.parse::<u64>().ok().map(EventId::ThisRun),
    }
}

/// `GET /v1/events`. See the module docs.
pub(super) async fn events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::bad_query("query", format!("bad query string: {e}")))?;
    let q = parse_query(&pairs)?;
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::Unavailable("too many event streams open on this agent; try again later".into())
    })?;
    let header_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| parse_event_id(s.trim(), state.journal.run()))
                .ok_or_else(|| {
                    ApiError::bad_query("Last-Event-ID", "the header is not an event id")
                })?,
        ),
    };
    // The header (set by a reconnecting browser or client) wins over the query.
    let (after, restarted) = match header_id {
        Some(EventId::ThisRun(seq)) => (Some(seq), false),
        Some(EventId::OtherRun) => (None, true),
        None => (q.after, false),
    };
    let resume = state.journal.resume(after);
    let reset = if restarted {
        Some(Reset {
            reason: "restarted",
            gap: None,
            missed: None,
        })
    } else {
        resume.gap.map(|gap| Reset {
            reason: "gap",
            gap: Some(gap),
            missed: None,
        })
    };
    let cursor = Cursor {
        run: state.journal.run().into(),
        reset,
        backlog: resume.backlog.into(),
        live: resume.live,
        closing: state.closing.subscribe(),
        kinds: q.kinds,
        _permit: permit,
    };
    let stream = stream::unfold(cursor, |mut cursor| async move {
        cursor.next().await.map(|item| (Ok(item), cursor))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn event_ids_name_their_run() {
        assert_eq!(
            parse_event_id("0badc0de-7", "0badc0de"),
            Some(EventId::ThisRun(7))
        );
        assert_eq!(
            parse_event_id("12345678-7", "0badc0de"),
            Some(EventId::OtherRun)
        );
        assert_eq!(parse_event_id("7", "0badc0de"), Some(EventId::ThisRun(7)));
        assert_eq!(parse_event_id("0badc0de-x", "0badc0de"), None);
        assert_eq!(parse_event_id("seven", "0badc0de"), None);
    }

    #[test]
    fn the_query_takes_event_kinds_and_an_id() {
        let q = parse_query(&pairs(&[
            ("event", "member-failed,member-left"),
            ("after", "7"),
        ]))
        .expect("valid");
        assert_eq!(
            q.kinds,
            Some(vec![EventKind::MemberFailed, EventKind::MemberLeft])
        );
        assert_eq!(q.after, Some(7));
        let bad = parse_query(&pairs(&[("event", "member-exploded")])).expect_err("bad kind");
        assert!(matches!(bad, ApiError::BadQuery { ref field, .. } if field == "event"));
        let bad = parse_query(&pairs(&[("after", "x")])).expect_err("bad id");
        assert!(matches!(bad, ApiError::BadQuery { ref field, .. } if field == "after"));
        let bad = parse_query(&pairs(&[("since", "1")])).expect_err("unknown");
        assert!(matches!(bad, ApiError::BadQuery { ref field, .. } if field == "since"));
    }
}
