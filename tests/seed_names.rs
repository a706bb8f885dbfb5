//! Seeds given as host names are resolved again at every join retry (and seed
//! re-contact), so an agent follows a name whose address changes: in two namespace
//! hosts, `seed` first names an address where no agent runs, so the second agent's join
//! fails and retries; once host2's `/etc/hosts` points `seed` at the first agent, a
//! following retry joins it, with no restart and no command.
//!
//! Needs root and `ip`; without root it skips with a message.

mod support;

use anyhow::{Result, ensure};
use support::netns::{self, is_root};
use support::{Agent, BIN, POLL, now};

/// Join retries back off up to 30 s: a generous bound for the one after the change.
const JOIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

/// Polls until `check` holds, or fails after [`JOIN_DEADLINE`] with `agents`' logs.
fn wait(what: &str, agents: &[&Agent], check: impl Fn() -> bool) -> Result<std::time::Duration> {
    let started = now();
    while !check() {
        if started.elapsed() > JOIN_DEADLINE {
            let tails: String = agents.iter().map(|a| a.tail()).collect();
            anyhow::bail!("{what}: not within {JOIN_DEADLINE:?}\n{tails}");
        }
        std::thread::sleep(POLL);
    }
    Ok(started.elapsed())
}

#[test]
fn a_seed_name_that_moves_is_followed_at_the_next_join_retry() -> Result<()> {
    if !is_root() {
        eprintln!("SKIPPED: the seed-name test needs root (ip netns)");
        return Ok(());
    }
    let net = netns::Lab::build("sn", &["10.205.0.1", "10.205.0.2"])?;
    // Nothing answers at 10.205.0.9.
    net.set_hosts(1, &[("10.205.0.9", "seed")])?;
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("cluster.key");
    let generated = std::process::Command::new(BIN)
        .args(["keygen", "--out", &key.display().to_string()])
        .output()?;
    ensure!(generated.status.success(), "keygen");
    let start = |i: usize, name: &str, join: Option<&str>| -> Result<Agent> {
        let mut command = net.exec(i, BIN);
        command
            .arg("agent")
            .args(["--name", name, "--cluster-key", &key.display().to_string()])
            .args(["--bind", &format!("{}:7946", net.addr(i))])
            .args(["--profile", "local", "--log-format", "json"]);
        if let Some(seed) = join {
            command.args(["--join", seed]);
        }
        Agent::spawn(name, 7946, command)
    };
    let first = start(0, "first", None)?;
    let second = start(1, "second", Some("seed:7946"))?;
    wait(
        "the join through the dead address fails",
        &[&second],
        || second.said("join failed: no seed answered; retrying with backoff"),
    )?;
    ensure!(!second.saw("member joined", "first"), "{}", second.tail());
    // The name moves to the first agent.
    net.set_hosts(1, &[("10.205.0.1", "seed")])?;
    let took = wait(
        "the second agent follows the seed name",
        &[&second, &first],
        || second.saw("member joined", "first"),
    )?;
    eprintln!("joined {took:?} after the name moved");
    ensure!(
        second.said("seed names resolve to other addresses now; using them"),
        "{}",
        second.tail()
    );
    drop((first, second));
    Ok(())
}
