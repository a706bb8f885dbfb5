//! One run of one check: [`probe`] turns a [`CheckTarget`] into a [`Probed`] result,
//! within the check's timeout, never failing (every error is a `Critical` result whose
//! output says why).
//!
//! - `http`: GET with the agent's HTTP client ([`crate::http_client`]); 2xx passes, 429
//!   warns, any other status, no connection or no status line in time fails. Output:
//!   `HTTP <status>`, then the first [`OUTPUT_KEPT`] bytes of the body.
//! - `tcp`: a connection within the timeout passes, anything else fails.
//! - `exec`: the program runs in its own process group, without a shell, stdin closed;
//!   exit 0 passes, 1 warns, anything else (another code, a signal, a spawn error, the
//!   timeout) fails. On timeout, or when the run is abandoned (the check removed), the
//!   whole group is killed. Output: the exit status, then the first [`OUTPUT_KEPT`]
//!   bytes of stdout and stderr together.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::Command;

use crate::child::{kill_group, read_bounded};
use crate::duration::format_duration;
use crate::http_client::{self, TlsClient};
use crate::routing::HealthStatus;
use crate::routing::spec::CheckTarget;

/// Bytes of a check's output kept (body or program output): enough for a status page or
/// an error message, bounded so a chatty endpoint cannot grow the agent.
pub const OUTPUT_KEPT: usize = 4096;

/// How long output pipes may stay open after the program exits (a background child
/// may hold them): the result does not wait for that child.
const OUTPUT_GRACE: Duration = Duration::from_millis(100);

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probed {
    /// `Passing`, `Warning` or `Critical`.
    pub(crate) status: HealthStatus,
    /// What happened: a summary line, then any captured output.
    pub(crate) output: String,
}

impl Probed {
    fn critical(output: impl Into<String>) -> Probed {
        Probed {
            status: HealthStatus::Critical,
            output: output.into(),
        }
    }
}

/// Runs `target` once within `timeout`; `tls` serves `https://` URLs.
pub(crate) async fn probe(
    target: &CheckTarget,
    timeout: Duration,
    tls: Option<&TlsClient>,
) -> Probed {
    match target {
        CheckTarget::Http(url) => match http_client::get(url, tls, timeout, OUTPUT_KEPT).await {
            Ok(answer) => Probed {
                status: match answer.status {
                    200..=299 => HealthStatus::Passing,
                    429 => HealthStatus::Warning,
                    _ => HealthStatus::Critical,
                },
                output: with_output(format!("HTTP {}", answer.status), &answer.body),
            },
            Err(e) => Probed::critical(e.to_string()),
        },
        CheckTarget::Tcp { host, port } => {
            let connect = TcpStream::connect((host.as_str(), *port));
            match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(_)) => Probed {
                    status: HealthStatus::Passing,
                    output: format!("connected to {host}:{port}"),
                },
                Ok(Err(e)) => Probed::critical(format!("cannot connect to {host}:{port}: {e}")),
                Err(_) => Probed::critical(timed_out(timeout)),
            }
        }
        CheckTarget::Exec(argv) => exec(argv, timeout).await,
    }
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", format_duration(timeout))
}

/// `summary`, then `output` (lossy UTF-8, trailing whitespace trimmed) on the next line
/// if there is any. Control characters other than newline and tab become `\u{FFFD}`:
/// the output travels to every member and is shown by the API, the CLI and logs, where
/// escape sequences or carriage returns could disguise it.
fn with_output(summary: String, output: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(output)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect();
    let text = text.trim_end();
    if text.is_empty() {
        summary
    } else {
        format!("{summary}\n{text}")
    }
}

/// Runs `argv` (no shell) within `timeout`.
async fn exec(argv: &[String], timeout: Duration) -> Probed {
    let Some((program, args)) = argv.split_first() else {
        return Probed::critical("empty command");
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout can kill everything it started.
        .process_group(0)
        // If the run is abandoned, the program goes with it (and `GroupGuard` takes
        // the rest of its group).
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Probed::critical(format!("cannot start {program:?}: {e}")),
    };
    let mut guard = GroupGuard(child.id());
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::with_capacity(2);
    if let Some(pipe) = child.stdout.take() {
        readers.push(tokio::spawn(read_bounded(
            pipe,
            output.clone(),
            OUTPUT_KEPT,
        )));
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(tokio::spawn(read_bounded(
            pipe,
            output.clone(),
            OUTPUT_KEPT,
        )));
    }
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    if waited.is_err() {
        kill_group(&mut child).await;
    }
    guard.0 = None;
    // The program is done and its pipes normally close with it; if a background child
    // still holds them, keep what was read so far.
    for mut reader in readers {
        if tokio::time::timeout(OUTPUT_GRACE, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
    let kept = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match waited {
        Ok(Ok(status)) => Probed {
            status: match status.code() {
                Some(0) => HealthStatus::Passing,
                Some(1) => HealthStatus::Warning,
                _ => HealthStatus::Critical,
            },
            output: with_output(status.to_string(), &kept),
        },
        Ok(Err(e)) => Probed::critical(format!("cannot wait for {program:?}: {e}")),
        Err(_) => Probed::critical(with_output(
            format!("{}; killed", timed_out(timeout)),
            &kept,
        )),
    }
}

/// Kills the process group of a program whose run is abandoned mid-way (its check
/// removed, the runner dropped): `kill_on_drop` only reaches the program itself, not
/// what it started. Disarmed (`None`) once the run ends normally.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Synchronous in a drop, so it cannot be cancelled in turn: one short
            // `kill(1)` (no `libc`: unsafe is forbidden), as in `hooks::command`.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CheckTarget {
        CheckTarget::Exec(["/bin/sh", "-c", script].map(String::from).to_vec())
    }

    async fn run(target: &CheckTarget) -> Probed {
        probe(target, Duration::from_secs(20), None).await
    }

    #[test]
    fn output_keeps_lines_and_tabs_but_no_other_control_characters() {
        assert_eq!(
            with_output(
                "exit status: 0".into(),
                b"ok\tfine\r\x1b[2Jgone\0\nnext\n\n"
            ),
            "exit status: 0\nok\tfine\u{FFFD}\u{FFFD}[2Jgone\u{FFFD}\nnext"
        );
        assert_eq!(with_output("HTTP 200".into(), b" \n"), "HTTP 200");
    }

    #[tokio::test]
    async fn exit_codes_map_to_statuses_with_their_output() {
        let p = run(&sh("echo fine")).await;
        assert_eq!(p.status, HealthStatus::Passing);
        assert_eq!(p.output, "exit status: 0\nfine");
        let p = run(&sh("echo disk 91% full >&2; exit 1")).await;
        assert_eq!(p.status, HealthStatus::Warning);
        assert_eq!(p.output, "exit status: 1\ndisk 91% full");
        let p = run(&sh("exit 2")).await;
        assert_eq!(
            (p.status, p.output.as_str()),
            (HealthStatus::Critical, "exit status: 2")
        );
        let p = run(&sh("kill -9 $$")).await;
        assert_eq!(p.status, HealthStatus::Critical);
        assert!(p.output.contains("signal: 9"), "{}", p.output);
        let p = run(&CheckTarget::Exec(vec!["/nonexistent/check".into()])).await;
        assert_eq!(p.status, HealthStatus::Critical);
        assert!(
            p.output.starts_with("cannot start \"/nonexistent/check\""),
            "{}",
            p.output
        );
    }

    #[tokio::test]
    async fn program_output_is_kept_bounded() {
        let p = run(&sh("head -c 100000 /dev/zero | tr '\\0' x; exit 1")).await;
        assert_eq!(p.status, HealthStatus::Warning);
        assert_eq!(
            p.output,
            format!("exit status: 1\n{}", "x".repeat(OUTPUT_KEPT))
        );
    }

    /// Whether process `pid` still runs (a zombie counts as gone).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    async fn until_gone(pid: &str) {
        let start = tokio::time::Instant::now();
        while alive(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{pid} still runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!(
            "echo started; sleep 60 & echo $! > '{}'; wait",
            pid_file.display()
        );
        // Long enough for the shell to start its child and write the pid down.
        let p = probe(&sh(&script), Duration::from_secs(3), None).await;
        assert_eq!(p.status, HealthStatus::Critical);
        assert_eq!(p.output, "timed out after 3s; killed\nstarted");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        until_gone(pid.trim()).await;
    }

    #[tokio::test]
    async fn an_abandoned_run_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > '{}'; wait", pid_file.display());
        let target = sh(&script);
        let run = tokio::spawn(async move { probe(&target, Duration::from_secs(60), None).await });
        let start = tokio::time::Instant::now();
        let pid = loop {
            match std::fs::read_to_string(&pid_file) {
                Ok(pid) if pid.ends_with('\n') => break pid,
                _ => {
                    assert!(start.elapsed() < Duration::from_secs(30), "no pid file");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        assert!(alive(pid.trim()));
        run.abort();
        until_gone(pid.trim()).await;
    }

    #[tokio::test]
    async fn tcp_passes_on_a_connection_and_fails_without_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = CheckTarget::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let p = run(&target).await;
        assert_eq!(p.status, HealthStatus::Passing);
        assert_eq!(p.output, format!("connected to 127.0.0.1:{port}"));
        drop(listener);
        let p = run(&target).await;
        assert_eq!(p.status, HealthStatus::Critical);
        assert!(
            p.output
                .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{}",
            p.output
        );
    }
}
