//! `muster agent` processes answering `dig` (Debian's `dnsutils`): what an operator types
//! at a shell. Two dev agents on 127.0.0.1, `a` in `eu` and `b` in `us`, each running a
//! `web` service from its config file; `a`'s DNS interface is asked over UDP and TCP,
//! then `a` is stopped with SIGTERM and its DNS interface stops with it.
//!
//! Skipped, with a message, where `dig` is not installed (`.ci/run` installs it).

mod support;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use support::{Agent, eventually, free_port, start_dev};

fn dig_installed() -> bool {
    Command::new("dig")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `dig @127.0.0.1 -p PORT ARGS`, one try with a short timeout; returns stdout.
fn dig(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .context("run dig")?;
    let stdout = String::from_utf8(out.stdout)?;
    if !out.status.success() {
        bail!(
            "dig {args:?} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The `status:` of dig's full output (`NOERROR`, `NXDOMAIN`, ...).
fn status(output: &str) -> Option<&str> {
    let (_, rest) = output.split_once("status: ")?;
    rest.split(',').next()
}

/// `+short` lines.
fn short(port: u16, args: &[&str]) -> Result<Vec<String>> {
    let mut all = args.to_vec();
    all.push("+short");
    Ok(dig(port, &all)?.lines().map(str::to_owned).collect())
}

fn write_config(dir: &Path, name: &str, port: u16) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[[services]]\nname = \"web\"\nport = {port}\nweight = 2\n"),
    )?;
    Ok(path.display().to_string())
}

/// The DNS port an agent logged in "DNS interface listening".
fn dns_port(agent: &Agent) -> Result<u16> {
    eventually("the agent logs its DNS address", &[agent], || {
        agent
            .first_field("DNS interface listening", "dns")
            .is_some()
    })?;
    let addr: std::net::SocketAddr = agent
        .first_field("DNS interface listening", "dns")
        .and_then(|v| v.as_str()?.parse().ok())
        .context("the DNS address parses")?;
    Ok(addr.port())
}

#[test]
fn dig_asks_a_running_agent_for_services_nodes_and_names_it_does_not_know() -> Result<()> {
    if !dig_installed() {
        eprintln!("skipped: dig is not installed (apt-get install dnsutils)");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let a_config = write_config(dir.path(), "a.toml", 8080)?;
    let b_config = write_config(dir.path(), "b.toml", 8081)?;
    let a_port = free_port();
    let mut a = start_dev(
        "a",
        a_port,
        None,
        &["--config", &a_config, "--region", "eu", "--zone", "eu-1"],
    )?;
    let b = start_dev(
        "b",
        free_port(),
        Some(a_port),
        &["--config", &b_config, "--region", "us", "--zone", "us-1"],
    )?;
    let port = dns_port(&a)?;
    eventually("a's DNS answers b's web instance in us", &[&a, &b], || {
        short(port, &["web.service.us.muster", "SRV"])
            .is_ok_and(|lines| lines == ["1 2 8081 b.node.muster."])
    })?;

    // A caller in eu gets eu's instance; SRV carries port and weight.
    assert_eq!(
        short(port, &["web.service.muster", "SRV"])?,
        ["1 2 8080 a.node.muster."]
    );
    assert_eq!(short(port, &["web.service.muster", "A"])?, ["127.0.0.1"]);
    assert_eq!(
        short(port, &["WEB.Service.EU.muster", "A", "+tcp"])?,
        ["127.0.0.1"],
        "over TCP, any case, region-scoped"
    );
    assert_eq!(short(port, &["b.node.muster", "A"])?, ["127.0.0.1"]);

    // The additional section holds the SRV target's address.
    let full = dig(port, &["web.service.muster", "SRV"])?;
    assert_eq!(status(&full), Some("NOERROR"), "{full}");
    assert!(full.contains("flags: qr aa"), "authoritative: {full}");
    assert!(
        full.lines()
            .any(|l| l.starts_with("a.node.muster.") && l.ends_with("127.0.0.1")),
        "{full}"
    );

    // No AAAA for an IPv4-only service: NOERROR, no answer, the SOA for negative caching.
    let full = dig(port, &["web.service.muster", "AAAA"])?;
    assert_eq!(status(&full), Some("NOERROR"), "{full}");
    assert!(full.contains("ANSWER: 0,"), "{full}");
    assert!(
        full.contains("IN\tSOA\ta.node.muster. hostmaster.muster."),
        "{full}"
    );

    for name in [
        "nope.service.muster",
        "nobody.node.muster",
        "web.service.mars.muster",
    ] {
        let full = dig(port, &[name, "A"])?;
        assert_eq!(status(&full), Some("NXDOMAIN"), "{name}: {full}");
    }
    let full = dig(port, &["example.com", "A"])?;
    assert_eq!(status(&full), Some("REFUSED"), "{full}");

    // SIGTERM: the agent leaves, stops its DNS interface, and exits 0.
    a.terminate()?;
    let exit = a.wait_exit()?;
    assert!(exit.success(), "{exit}\n{}", a.tail());
    assert!(a.tail().contains("DNS interface stopped"), "{}", a.tail());
    Ok(())
}
