//! `muster members` and `muster info` as processes, against real agents' local API: the
//! table, `--json`, the filters, and the one-line error when no agent is running.

mod support;

use anyhow::{Context, Result};
use serde_json::Value;
use support::{eventually, free_port, muster, start_dev_api};

#[test]
fn members_and_info_show_what_the_local_agent_knows() -> Result<()> {
    let (a, api) = start_dev_api("a", None)?;
    let (b, _) = start_dev_api("b", Some(a.port))?;
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
