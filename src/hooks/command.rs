//! Command hooks: run a program (not through a shell) with the event as one line of JSON
//! on stdin and as `MUSTER_*` environment variables.
//!
//! Success is exit status 0 within the timeout. The command runs in its own process
//! group; on timeout the whole group is killed (SIGKILL), so a `sh -c '…'` wrapper does
//! not leave its children running. Stdout is discarded; the first
//! [`STDERR_KEPT`] bytes of stderr go into the failure's log line, quoted and escaped.
//!
//! The argv is the configured one, never rewritten: no value of an event (names,
//! regions, tags and state keys come from other members and are untrusted) is ever
//! placed in it. They reach the command only as data, in its environment and on stdin.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::child::{kill_group, read_bounded};
use crate::events::journal::{EventDetail, EventRecord};
use crate::hooks::error::HookError;

/// Bytes of stderr kept for the log line of a failure: enough for an error message,
/// bounded so a chatty command cannot grow the agent.
pub const STDERR_KEPT: usize = 2048;

/// How long stderr may stay open after the command exits (a background child may hold
/// it): the attempt's outcome does not wait for that child.
const STDERR_GRACE: Duration = Duration::from_millis(100);

/// The environment a command hook gets, on top of the agent's.
pub fn environment(record: &EventRecord) -> Vec<(&'static str, String)> {
    let m = &record.member;
    let mut env = vec![
        ("MUSTER_EVENT", record.kind().as_str().to_owned()),
        ("MUSTER_SEQ", record.seq.to_string()),
        ("MUSTER_NODE", record.node.clone()),
        ("MUSTER_TIME_MS", record.time_ms.to_string()),
        ("MUSTER_MEMBER_NAME", m.name.clone()),
        ("MUSTER_MEMBER_ADDR", m.addr.clone()),
        ("MUSTER_MEMBER_STATUS", m.status.as_str().to_owned()),
        ("MUSTER_MEMBER_REGION", m.region.clone()),
        ("MUSTER_MEMBER_ZONE", m.zone.clone()),
        ("MUSTER_MEMBER_INCARNATION", m.incarnation.to_string()),
    ];
    match &record.detail {
        // Which service, and who holds the role now and held it before (empty when
        // nobody does / did), so a hook can promote the new primary.
        EventDetail::PrimaryChanged {
            service,
            primary,
            previous,
        } => {
            env.push(("MUSTER_SERVICE", service.clone()));
            env.push(("MUSTER_PRIMARY", primary.clone().unwrap_or_default()));
            env.push(("MUSTER_PREVIOUS", previous.clone().unwrap_or_default()));
            let is_me = primary.as_deref() == Some(record.node.as_str());
            env.push((
                "MUSTER_IS_PRIMARY",
                if is_me { "1" } else { "0" }.to_owned(),
            ));
        }
        // The keys, comma-separated.
        EventDetail::StateChanged { keys } => env.push(("MUSTER_KEYS", keys.join(","))),
        // Which service's rule, for callers in which region, from and to which state,
        // and why: enough for a hook to move a load balancer's weights.
        EventDetail::FailoverChanged {
            service,
            region,
            from,
            to,
            reason,
        } => {
            env.push(("MUSTER_SERVICE", service.clone()));
            env.push(("MUSTER_REGION", region.clone()));
            env.push(("MUSTER_FROM", from.as_str().to_owned()));
            env.push(("MUSTER_TO", to.as_str().to_owned()));
            env.push(("MUSTER_REASON", reason.clone()));
        }
        _ => {}
    }
    env
}

/// Runs `argv` once for `record` (`json` is its serialized form), within `timeout`.
pub(crate) async fn run(
    argv: &[String],
    record: &EventRecord,
    json: &[u8],
    timeout: Duration,
) -> Result<(), HookError> {
    let (program, args) = argv.split_first().ok_or_else(|| HookError::Spawn {
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(environment(record))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so a timeout can kill everything it started.
        .process_group(0)
        // If the runner goes away mid-attempt, the command goes with it.
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| HookError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = child
        .stderr
        .take()
        .map(|pipe| tokio::spawn(read_bounded(pipe, stderr.clone(), STDERR_KEPT)));
    let mut stdin = child.stdin.take();
    let outcome = tokio::time::timeout(timeout, async {
        if let Some(mut pipe) = stdin.take() {
            // A command that ignores stdin may exit before reading it: not a failure.
            let _ = pipe.write_all(json).await;
            let _ = pipe.write_all(b"\n").await;
            // Dropping the pipe closes it, so `cat` and friends see the end.
        }
        child.wait().await
    })
    .await;
    let status = match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            abort(reader);
            return Err(HookError::Io(e));
        }
        Err(_) => {
            kill_group(&mut child).await;
            abort(reader);
            return Err(HookError::Timeout(timeout));
        }
    };
    if let Some(mut reader) = reader {
        // The command is done and its stderr normally closes with it; if a background
        // child still holds it, keep what was read so far.
        if tokio::time::timeout(STDERR_GRACE, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
    if status.success() {
        return Ok(());
    }
    let bytes = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Err(HookError::Exit {
        status,
        stderr: String::from_utf8_lossy(&bytes).trim().to_owned(),
    })
}

fn abort(reader: Option<tokio::task::JoinHandle<()>>) {
    if let Some(reader) = reader {
        reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::tests::record;

    fn argv(script: &str) -> Vec<String> {
        ["sh", "-c", script].map(String::from).to_vec()
    }

    #[tokio::test]
    async fn a_command_gets_the_event_on_stdin_and_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > '{0}.json' && echo \"$MUSTER_EVENT $MUSTER_SEQ $MUSTER_MEMBER_NAME $MUSTER_MEMBER_STATUS\" > '{0}.env'",
            out.display()
        );
        let record = record(7, "c");
        let json = serde_json::to_vec(&record).unwrap();
        run(&argv(&script), &record, &json, Duration::from_secs(20))
            .await
            .unwrap();
        let stdin = std::fs::read(out.with_extension("json")).unwrap();
        assert_eq!(stdin, [json.as_slice(), b"\n"].concat());
        let env = std::fs::read_to_string(out.with_extension("env")).unwrap();
        assert_eq!(env.trim(), "member-failed 7 c failed");
    }

    #[test]
    fn a_primary_change_names_the_service_and_tells_the_new_primary_it_is_one() {
        let mut r = record(3, "b");
        r.detail = EventDetail::PrimaryChanged {
            service: "db".into(),
            primary: Some("b".into()),
            previous: Some("a".into()),
        };
        r.node = "b".into();
        let env: std::collections::BTreeMap<_, _> = environment(&r).into_iter().collect();
        assert_eq!(env["MUSTER_EVENT"], "primary-changed");
        assert_eq!(env["MUSTER_SERVICE"], "db");
        assert_eq!(env["MUSTER_PRIMARY"], "b");
        assert_eq!(env["MUSTER_PREVIOUS"], "a");
        assert_eq!(
            env["MUSTER_IS_PRIMARY"], "1",
            "the hook runs on the new primary"
        );
        r.node = "c".into();
        let env: std::collections::BTreeMap<_, _> = environment(&r).into_iter().collect();
        assert_eq!(env["MUSTER_IS_PRIMARY"], "0");
        // Membership events carry none of them.
        let plain: std::collections::BTreeMap<_, _> =
            environment(&record(1, "c")).into_iter().collect();
        assert!(!plain.contains_key("MUSTER_SERVICE") && !plain.contains_key("MUSTER_KEYS"));
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_status_and_stderr() {
        let record = record(1, "c");
        let err = run(
            &argv("echo boom >&2; exit 3"),
            &record,
            b"{}",
            Duration::from_secs(20),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("boom"),
            "{text}"
        );
        let err = run(
            &["/nonexistent/hook".to_owned()],
            &record,
            b"{}",
            Duration::from_secs(20),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
    }

    #[tokio::test]
    async fn stderr_is_kept_bounded() {
        let record = record(1, "c");
        let err = run(
            &argv("head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1"),
            &record,
            b"{}",
            Duration::from_secs(20),
        )
        .await
        .unwrap_err();
        match err {
            HookError::Exit { stderr, .. } => assert_eq!(stderr.len(), STDERR_KEPT),
            other => panic!("expected an exit, got {other}"),
        }
    }
}
