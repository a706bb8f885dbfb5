//! `muster monitor`: follows the local agent's event stream (`GET /v1/events`), one line
//! per event (or the event's JSON with `--json`), until the agent stops or Ctrl-C.

use std::ops::ControlFlow;
use std::process::ExitCode;

use clap::Args;
use muster::api::client::{self, Call, StreamOutcome};
use serde_json::Value;

use crate::cli_query::{ApiArgs, paint};

/// `muster monitor` flags.
#[derive(Args, Debug)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Only these events (repeatable or comma-separated), e.g. member-failed.
    #[arg(long = "event", value_name = "EVENT")]
    pub(crate) events: Vec<String>,
    /// Start with the held events after this id, then follow.
    #[arg(long, value_name = "ID")]
    pub(crate) after: Option<u64>,
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// One event as a line: time, event, member, address, status, place, incarnation.
fn line(event: &str, v: &Value, colour: bool) -> String {
    let m = &v["member"];
    let text = |x: &Value| {
        x.as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("-")
            .to_owned()
    };
    let place = format!("{}/{}", text(&m["region"]), text(&m["zone"]));
    format!(
        "{}  {:<17} {:<20} {:<21} {} {:<12} inc {}",
        utc(v["time_ms"].as_u64().unwrap_or(0)),
        event,
        text(&m["name"]),
        text(&m["addr"]),
        paint(&text(&m["status"]), 7, colour),
        place,
        m["incarnation"]
    )
}

/// A `reset` as one JSON line like the events' (`{"event": "reset", "reason": ...}`), so
/// `--json` output stays one JSON object per line.
fn reset_json(data: &str) -> String {
    let mut v = match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::from_iter([("detail".to_owned(), Value::from(data))]),
    };
    v.insert("event".to_owned(), Value::from("reset"));
    Value::Object(v).to_string()
}

/// `muster monitor`.
pub(crate) fn monitor(args: &MonitorArgs) -> ExitCode {
    use std::io::Write;
    let mut query = Vec::new();
    for e in &args.events {
        query.push(format!("event={}", client::encode(e)));
    }
    if let Some(after) = args.after {
        query.push(format!("after={after}"));
    }
    let path = if query.is_empty() {
        "/v1/events".to_owned()
    } else {
        format!("/v1/events?{}", query.join("&"))
    };
    let colour = crate::cli_query::colour_wanted();
    let json = args.api.json;
    let token = match args.api.read_token() {
        Ok(token) => token,
        Err(code) => return code,
    };
    let call = Call {
        token: token.as_deref(),
        ..Call::get(&path)
    };
    let outcome = client::follow_events(args.api.api_addr, call, None, |message| {
        let out = match message.event.as_str() {
            "reset" if json => reset_json(&message.data),
            "reset" => format!(
                "-- some events were missed ({}); `muster members` shows the current state",
                message.data
            ),
            _ if json => message.data.clone(),
            event => match serde_json::from_str::<Value>(&message.data) {
                Ok(v) => line(event, &v, colour),
                Err(_) => format!("{event} {}", message.data),
            },
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`muster monitor | head`) ends the command.
        if writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match outcome {
        Ok(StreamOutcome::Ended) => {
            eprintln!("muster: the agent closed the event stream (it stopped or left)");
            ExitCode::FAILURE
        }
        Ok(StreamOutcome::Refused(status, body)) => {
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            let error = v["error"].as_str().unwrap_or("request refused");
            eprintln!("muster: the agent answered {status}: {error}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("muster: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_is_one_json_object_in_json_mode() {
        let v: Value =
            serde_json::from_str(&reset_json(r#"{"reason":"lagged","missed":6}"#)).expect("JSON");
        assert_eq!(
            v,
            serde_json::json!({"event": "reset", "reason": "lagged", "missed": 6})
        );
        let v: Value = serde_json::from_str(&reset_json("not json")).expect("JSON");
        assert_eq!(
            v,
            serde_json::json!({"event": "reset", "detail": "not json"})
        );
    }

    #[test]
    fn unix_milliseconds_format_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }
}
