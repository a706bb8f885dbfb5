//! The CLI as processes against a real agent whose config file declares services:
//! `muster services`, `route`, `drain`, `failover` and `state` (tables and `--json`),
//! and the one-line error (exit 1) of each refused request.
//!
//! Every wait polls with a generous deadline; nothing asserts on a fixed sleep.

mod support;

use std::net::TcpListener;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use support::{eventually, muster, start_dev_api};

/// A TCP endpoint for a `tcp` check: accepts and drops connections until the test ends,
/// so the accept queue never fills however many checks run.
fn tcp_endpoint() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    Ok(addr)
}

/// The agent config: in eu/eu-1, `web` with a tcp check of `tcp` and `job` with an exec
/// check, both run every 200 ms so they pass within a second.
fn write_config(dir: &Path, tcp: &str) -> Result<String> {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"region = "eu"
zone = "eu-1"

[[services]]
name = "web"
port = 8080
weight = 2

[[services.checks]]
tcp = "{tcp}"
interval = "200ms"
timeout = "150ms"

[[services]]
name = "job"
port = 9090

[[services.checks]]
exec = ["/bin/true"]
interval = "200ms"
timeout = "200ms"
"#
        ),
    )?;
    Ok(path.display().to_string())
}

/// `args` for a failure message, long ones cut short.
fn shown(args: &[&str]) -> String {
    let short: Vec<String> = args
        .iter()
        .map(|a| match a.char_indices().nth(40) {
            Some((i, _)) => format!("{}… ({} bytes)", &a[..i], a.len()),
            None => (*a).to_owned(),
        })
        .collect();
    format!("muster {}", short.join(" "))
}

/// Runs `muster ARGS --api-addr API --json`; its stdout as JSON, or an error saying why.
fn json(api: &str, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["--api-addr", api, "--json"]);
    let out = muster(&all)?;
    ensure!(
        out.status.success(),
        "{}: {}",
        shown(args),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("{} --json parses", shown(args)))
}

/// Runs `muster ARGS --api-addr API`, which must succeed; its stdout.
fn ok(api: &str, args: &[&str]) -> Result<String> {
    let mut all = args.to_vec();
    all.extend(["--api-addr", api]);
    let out = muster(&all)?;
    ensure!(
        out.status.success(),
        "{}: {}",
        shown(args),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `muster ARGS --api-addr API`, which must fail with exit 1 and one line on
/// stderr and nothing on stdout; returns the line.
fn fails(api: &str, args: &[&str]) -> Result<String> {
    let mut all = args.to_vec();
    all.extend(["--api-addr", api]);
    let out = muster(&all)?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        out.status.code() == Some(1),
        "{}: exit {:?}: {err}",
        shown(args),
        out.status.code()
    );
    ensure!(err.lines().count() == 1, "{}: {err}", shown(args));
    ensure!(err.starts_with("muster: "), "{}: {err}", shown(args));
    ensure!(
        out.stdout.is_empty(),
        "{}: {}",
        shown(args),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(err.trim_end().to_owned())
}

/// The node names of a route or service answer's instances, in order.
fn nodes(answer: &Value) -> Vec<&str> {
    answer["instances"]
        .as_array()
        .map(|list| list.iter().filter_map(|i| i["node"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn services_from_the_config_are_listed_routed_drained_and_failed_over() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &tcp_endpoint()?)?;
    let (a, api) = start_dev_api("svc-a", None, &["--config", &config])?;
    let api = api.to_string();

    // Both services' checks pass.
    eventually("muster services lists web and job passing", &[&a], || {
        json(&api, &["services"]).is_ok_and(|v| {
            v["services"]["web"]["passing"] == 1 && v["services"]["job"]["passing"] == 1
        })
    })?;
    let list = json(&api, &["services"])?;
    assert_eq!(list["services"]["web"]["local"], true, "{list}");
    assert_eq!(list["services"]["web"]["regions"]["eu"]["instances"], 1);
    let table = ok(&api, &["services"])?;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SERVICE") && lines[0].contains("PASSING"),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web ") && l.contains(" eu ") && l.ends_with("yes")),
        "{table}"
    );

    // Route answers.
    let route = json(&api, &["route", "web"])?;
    assert_eq!(route["service"], "web");
    assert_eq!(nodes(&route), ["svc-a"], "{route}");
    let only = &route["instances"][0];
    assert_eq!(
        (
            &only["port"],
            &only["weight"],
            &only["region"],
            &only["zone"]
        ),
        (
            &Value::from(8080),
            &Value::from(2),
            &Value::from("eu"),
            &Value::from("eu-1")
        ),
        "{route}"
    );
    assert_eq!(route["rule"]["state"], "normal", "{route}");
    let table = ok(&api, &["route", "web"])?;
    assert!(
        table.starts_with("web: rule normal · regions eu · "),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("svc-a ") && l.contains("127.0.0.1:8080")),
        "{table}"
    );
    // The flags become the query.
    let flagged = json(
        &api,
        &[
            "route",
            "web",
            "--region",
            "eu",
            "--zone",
            "eu-2",
            "--limit",
            "1",
            "--warning",
        ],
    )?;
    assert_eq!(nodes(&flagged), ["svc-a"], "{flagged}");
    let elsewhere = json(&api, &["route", "web", "--only-region", "us"])?;
    assert_eq!(nodes(&elsewhere), Vec::<&str>::new(), "{elsewhere}");
    let remote = json(&api, &["route", "web", "--region", "ap"])?;
    assert_eq!(remote["rule"]["state"], "remote", "{remote}");
    assert_eq!(nodes(&remote), ["svc-a"], "{remote}");
    let err = fails(&api, &["route", "web", "--limit", "0"])?;
    assert!(err.contains("(field `limit`)"), "{err}");

    // Draining one service: still listed, out of the route answers.
    let said = ok(&api, &["drain", "web"])?;
    assert_eq!(said.trim(), "draining: web (alive, no new traffic)");
    let detail = json(&api, &["services", "web"])?;
    assert_eq!(detail["local"]["draining"], true, "{detail}");
    assert_eq!(detail["local"]["status"], "draining", "{detail}");
    eventually("web's instance is published draining", &[&a], || {
        json(&api, &["services", "web"]).is_ok_and(|d| d["instances"][0]["status"] == "draining")
    })?;
    let route = json(&api, &["route", "web"])?;
    assert_eq!(nodes(&route), Vec::<&str>::new(), "{route}");
    let table = ok(&api, &["route", "web"])?;
    assert!(
        table.contains("no healthy instance to send traffic to"),
        "{table}"
    );
    let table = ok(&api, &["services", "web"])?;
    assert!(
        table.contains("this agent runs it: draining (draining)"),
        "{table}"
    );
    let job = json(&api, &["services", "job"])?;
    assert_eq!(job["local"]["draining"], false, "only web: {job}");
    // Ending every drain.
    let said = ok(&api, &["drain", "--off"])?;
    assert_eq!(said.trim(), "no longer draining: job, web");
    let detail = json(&api, &["services", "web"])?;
    assert_eq!(detail["local"]["draining"], false, "{detail}");
    eventually("web is routed to again", &[&a], || {
        json(&api, &["route", "web"]).is_ok_and(|r| nodes(&r) == ["svc-a"])
    })?;
    // Draining everything, as JSON.
    let all = json(&api, &["drain"])?;
    assert_eq!(all, serde_json::json!({"services": ["job", "web"]}));
    ok(&api, &["drain", "--off"])?;

    // A forced failover to the agent's own region, then a reset.
    let said = ok(&api, &["failover", "web", "--to", "eu"])?;
    assert!(said.starts_with("web: rule forced · "), "{said}");
    let route = json(&api, &["route", "web"])?;
    assert_eq!(route["rule"]["state"], "forced", "{route}");
    assert_eq!(
        route["rule"]["regions"],
        serde_json::json!(["eu"]),
        "{route}"
    );
    let said = ok(&api, &["failover", "reset", "web"])?;
    assert!(said.starts_with("web: rule normal · "), "{said}");
    let reset = json(&api, &["failover", "reset", "web"])?;
    assert_eq!(reset["rule"]["state"], "normal", "{reset}");

    // Refused requests: one line, exit 1.
    let err = fails(&api, &["route", "nope"])?;
    assert_eq!(err, "muster: no service named \"nope\"");
    let err = fails(&api, &["services", "nope"])?;
    assert_eq!(err, "muster: no service named \"nope\"");
    let err = fails(&api, &["drain", "nope"])?;
    assert_eq!(err, "muster: this agent runs no service named \"nope\"");
    let err = fails(&api, &["drain", "nope", "--off"])?;
    assert!(err.contains("\"nope\""), "{err}");
    for args in [
        vec!["failover", "web"],
        vec!["failover", "reset"],
        vec!["failover", "reset", "web", "--to", "eu"],
        vec!["failover", "web", "extra", "--to", "eu"],
    ] {
        let err = fails(&api, &args)?;
        assert!(
            err.contains("muster failover SERVICE --to REGION"),
            "{args:?}: {err}"
        );
    }
    let err = fails(&api, &["failover", "web", "--to", "mars"])?;
    assert!(
        err.contains("\"mars\"") && err.ends_with("(field `to`)"),
        "{err}"
    );
    let err = fails(&api, &["failover", "nope", "--to", "eu"])?;
    assert_eq!(err, "muster: no service named \"nope\"");
    let err = fails(&api, &["failover", "reset", "nope"])?;
    assert_eq!(err, "muster: no service named \"nope\"");
    Ok(())
}

#[test]
fn state_is_set_read_and_deleted_through_the_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &tcp_endpoint()?)?;
    let (a, api) = start_dev_api("state-a", None, &["--config", &config])?;
    let (b, b_api) = start_dev_api("state-b", Some(a.port), &[])?;
    let (api, b_api) = (api.to_string(), b_api.to_string());

    let said = ok(&api, &["state", "set", "color", "blue"])?;
    let version = said
        .trim()
        .strip_prefix("color set (state version ")
        .and_then(|v| v.strip_suffix(')'))
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("a version in {said:?}"))?;
    let own = json(&api, &["state", "get"])?;
    assert_eq!(own["node"], "state-a", "{own}");
    assert_eq!(own["entries"]["color"]["value"], "blue", "{own}");
    assert_eq!(own["entries"]["color"]["version"], version, "{own}");
    // The agent's own service records live in the same map, under `muster/`.
    let keys: Vec<&String> = own["entries"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert!(keys.iter().any(|k| k.as_str() == "muster/svc/web"), "{own}");
    let table = ok(&api, &["state", "get"])?;
    assert!(table.starts_with("KEY"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("color ") && l.ends_with(" blue")),
        "{table}"
    );
    // Keys and values that need encoding travel as they are.
    ok(&api, &["state", "set", "app/motd", "hello, world & more"])?;
    let own = json(&api, &["state", "get", "state-a"])?;
    assert_eq!(
        own["entries"]["app/motd"]["value"], "hello, world & more",
        "{own}"
    );

    // Another agent mirrors it.
    eventually("b mirrors a's state", &[&a, &b], || {
        json(&b_api, &["state", "get", "state-a"])
            .is_ok_and(|s| s["entries"]["color"]["value"] == "blue")
    })?;
    let b_own = ok(&b_api, &["state", "get"])?;
    assert_eq!(b_own.trim(), "state-b: no state");

    let said = ok(&api, &["state", "delete", "color"])?;
    assert!(said.starts_with("color deleted (state version "), "{said}");
    let own = json(&api, &["state", "get"])?;
    assert!(own["entries"].get("color").is_none(), "{own}");
    eventually("the delete reaches b", &[&a, &b], || {
        json(&b_api, &["state", "get", "state-a"])
            .is_ok_and(|s| s["entries"].get("color").is_none())
    })?;

    // Refused: one line, naming the field where one is to blame.
    let err = fails(&api, &["state", "set", "muster/svc/web", "x"])?;
    assert!(err.ends_with("(field `key`)"), "{err}");
    let err = fails(&api, &["state", "delete", "muster/svc/web"])?;
    assert!(err.ends_with("(field `key`)"), "{err}");
    let long = "k".repeat(300);
    let err = fails(&api, &["state", "set", &long, "x"])?;
    assert!(err.ends_with("(field `key`)"), "{err}");
    // Past the state bound (64 KiB of keys and values, the service records included)...
    let big = "x".repeat(65_500);
    let err = fails(&api, &["state", "set", "big", &big])?;
    assert!(err.ends_with("(field `value`)"), "{err}");
    // ...and past the API's body limit.
    let huge = "x".repeat(70_000);
    let err = fails(&api, &["state", "set", "huge", &huge])?;
    assert_eq!(
        err,
        "muster: request body too large: the limit is 65536 bytes"
    );
    let err = fails(&api, &["state", "get", "nobody"])?;
    assert_eq!(err, "muster: no member named \"nobody\"");
    Ok(())
}

#[test]
fn a_bad_service_in_the_config_file_is_refused_naming_its_field() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[services]]\nname = \"web\"\nport = 8080\n\n[[services.checks]]\n\
         tcp = \"127.0.0.1:8080\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
    )?;
    let path = path.display().to_string();
    let out = muster(&["agent", "--dev", "--config", &path, "--check-config"])?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("services[0].checks[0].timeout"), "{err}");
    Ok(())
}
