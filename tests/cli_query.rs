//! The CLI as processes against real agents' local API: `members` and `info` (the table,
//! `--json`, the filters), `monitor`, `tags`, `force-leave`, `join` and `leave` (with the
//! API token), and the one-line error when no agent is running.

mod support;

use anyhow::{Context, Result};
use serde_json::Value;
use support::{eventually, free_port, muster, start_dev_api};

#[test]
fn members_and_info_show_what_the_local_agent_knows() -> Result<()> {
    let (a, api) = start_dev_api("a", None, &[])?;
    let (b, _) = start_dev_api("b", Some(a.port), &[])?;
    let api = api.to_string();
    let members_json = || -> Result<Vec<Value>> {
        let out = muster(&["members", "--api-addr", &api, "--json"])?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).context("members --json parses")?;
        v.as_array().cloned().context("an array")
    };
    eventually("muster members lists a and b", &[&a, &b], || {
        members_json().is_ok_and(|m| m.len() == 2 && m.iter().all(|x| x["status"] == "alive"))
    })?;

    let out = muster(&["members", "--api-addr", &api])?;
    let table = String::from_utf8(out.stdout)?;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATUS"),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("a ") && l.contains("alive")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("b ") && l.contains("alive")),
        "{table}"
    );

    let out = muster(&[
        "members",
        "--api-addr",
        &api,
        "--status",
        "failed",
        "--json",
    ])?;
    let none: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(none, Value::Array(vec![]));
    let out = muster(&["members", "--api-addr", &api, "--name", "b*", "--json"])?;
    let only_b: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(only_b.as_array().map(Vec::len), Some(1), "{only_b}");

    // A bad filter: one line naming the field, exit 1.
    let out = muster(&["members", "--api-addr", &api, "--status", "sleepy"])?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("status"), "{err}");

    // MUSTER_API_ADDR selects the agent when --api-addr is not given.
    let out = support::command()
        .args(["members", "--json"])
        .env("MUSTER_API_ADDR", &api)
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let via_env: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(via_env.as_array().map(Vec::len), Some(2), "{via_env}");

    let out = muster(&["info", "--api-addr", &api])?;
    let info = String::from_utf8(out.stdout)?;
    assert!(info.contains("agent     a at"), "{info}");
    assert!(info.contains("2 known: 2 alive"), "{info}");
    let out = muster(&["info", "--api-addr", &api, "--json"])?;
    let both: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(both["self"]["name"], "a");
    assert_eq!(both["cluster"]["live"], 2);
    Ok(())
}

#[test]
fn without_a_running_agent_the_cli_says_so_in_one_line() -> Result<()> {
    let nowhere = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["members", "--api-addr", &nowhere],
        vec!["info", "--api-addr", &nowhere],
        vec!["monitor", "--api-addr", &nowhere],
        vec!["leave", "--api-addr", &nowhere],
        vec!["join", "--api-addr", &nowhere, "127.0.0.1:1"],
        vec!["force-leave", "--api-addr", &nowhere, "x"],
        vec!["tags", "set", "--api-addr", &nowhere, "k=v"],
    ] {
        let out = muster(&args)?;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("no agent answers") && err.contains("muster agent"),
            "{err}"
        );
    }
    Ok(())
}

/// Runs `muster monitor` in the background, collecting its stdout lines.
struct Monitor {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Monitor {
    fn start(api: &str) -> Result<Monitor> {
        use std::io::BufRead;
        let mut child = support::command()
            .args(["monitor", "--api-addr", api])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
            {
                sink.lock().expect("lock").push(line);
            }
        });
        Ok(Monitor { child, lines })
    }

    fn saw(&self, fragments: &[&str]) -> bool {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .any(|l| fragments.iter().all(|f| l.contains(f)))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn changes_through_the_cli_need_the_token_and_leave_stops_the_agent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, "cli-test-token-0123456789\n")?;
    let token_path = token_file.display().to_string();
    let guarded = ["--api-token-file", token_path.as_str()];
    let (mut a, api) = start_dev_api("a", None, &guarded)?;
    let (b, b_api) = start_dev_api("b", Some(a.port), &[])?;
    let (mut c, _) = start_dev_api("c", Some(a.port), &[])?;
    let api = api.to_string();
    let b_api = b_api.to_string();
    eventually("a sees b and c", &[&a, &b, &c], || {
        a.saw("member joined", "b") && a.saw("member joined", "c")
    })?;
    let monitor = Monitor::start(&api)?;

    // Without the token: refused, one line, nothing changed.
    let out = muster(&["tags", "set", "--api-addr", &api, "env=prod"])?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("API token"), "{err}");
    // With it.
    let out = muster(&[
        "tags",
        "set",
        "--api-addr",
        &api,
        "--api-token-file",
        &token_path,
        "env=prod",
        "role=db",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout)?.trim(),
        "tags now: env=prod, role=db"
    );
    let out = muster(&[
        "tags",
        "delete",
        "--api-addr",
        &api,
        "--api-token-file",
        &token_path,
        "role",
        "--json",
    ])?;
    let answer: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(answer, serde_json::json!({"tags": {"env": "prod"}}));
    // b (no token set) sees a's tags through gossip, and b's own change shows on a's monitor.
    let out = muster(&["tags", "set", "--api-addr", &b_api, "zone=z9"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("a's monitor shows b updated", &[&a, &b], || {
        monitor.saw(&["member-updated", " b "])
    })?;

    // c crashes: the monitor shows it failed; force-leave makes it left.
    c.child.kill()?;
    eventually("a's monitor shows c failed", &[&a, &b], || {
        monitor.saw(&["member-failed", " c ", "failed"])
    })?;
    let out = muster(&["force-leave", "--api-addr", &api, "c"])?;
    assert_eq!(out.status.code(), Some(1), "the token is needed");
    let out = muster(&[
        "force-leave",
        "--api-addr",
        &api,
        "--api-token-file",
        &token_path,
        "c",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("a's monitor shows c left", &[&a], || {
        monitor.saw(&["member-left", " c "])
    })?;
    let out = muster(&[
        "force-leave",
        "--api-addr",
        &api,
        "--api-token-file",
        &token_path,
        "b",
    ])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not failed"));

    // join: b joins through a again (already a member: the seed answers).
    let out = muster(&[
        "join",
        "--api-addr",
        &b_api,
        &format!("127.0.0.1:{}", a.port),
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)?.starts_with("joined through 127.0.0.1:"));

    // leave: a leaves gracefully and exits 0; b sees it left, not failed.
    let out = muster(&["leave", "--api-addr", &api, "--api-token-file", &token_path])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = a.wait_exit()?;
    assert!(status.success(), "{status:?}\n{}", a.tail());
    eventually("b sees a left", &[&b], || b.saw("member left", "a"))?;
    assert!(!b.saw("member failed", "a"), "{}", b.tail());
    drop(monitor);
    Ok(())
}
