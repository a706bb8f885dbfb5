//! Four agents on four hosts: network namespaces joined by a bridge (iproute2), faults
//! cut with nftables inside a host's namespace. A host cut off both ways is marked failed
//! by the others, and once the rule is removed the cluster reconverges with all four
//! alive, without any command; a one-way cut (the host hears nothing) likewise.
//!
//! Needs root, `ip` and `nft` (`.ci/run` installs iproute2 and nftables). Without root it
//! skips with a message; with root but without the tools it fails. Every namespace and
//! process is removed when the lab is dropped, whatever way the test ends.

mod support;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use support::{Agent, BIN, eventually};

const HOSTS: usize = 4;
/// The lab's subnet lives only inside namespaces this test creates.
const SUBNET: &str = "10.203.0";

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespaces, the bridge and the agents; torn down on drop.
struct Lab {
    prefix: String,
    agents: Vec<Agent>,
    key_file: PathBuf,
}

impl Lab {
    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    fn host(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    fn addr(i: usize) -> String {
        format!("{SUBNET}.{i}")
    }

    /// Builds a hub namespace with a bridge, and `HOSTS` host namespaces each with one
    /// veth into the bridge.
    fn build() -> Result<Lab> {
        let prefix = format!("mu{}", std::process::id() % 100_000);
        let key_file = std::env::temp_dir().join(format!("{prefix}-cluster.key"));
        let lab = Lab {
            prefix,
            agents: Vec::new(),
            key_file,
        };
        let hub = lab.hub();
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=HOSTS {
            let host = lab.host(i);
            let port = format!("p{i}");
            run("ip", &["netns", "add", &host])?;
            run("ip", &["-n", &host, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &host, "type", "veth", "peer", "name", &port,
                    "netns", &hub,
                ],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    &host,
                    "addr",
                    "add",
                    &format!("{}/24", Lab::addr(i)),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &host, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "up"])?;
        }
        let key = Command::new(BIN)
            .arg("keygen")
            .output()
            .context("muster keygen")?;
        std::fs::write(&lab.key_file, &key.stdout).context("write the cluster key")?;
        Ok(lab)
    }

    /// Starts the agent of host `i`, joining through host 1.
    fn start_agent(&mut self, i: usize) -> Result<()> {
        let mut command = Command::new("ip");
        let bind = format!("{}:7946", Lab::addr(i));
        let seed = format!("{}:7946", Lab::addr(1));
        command
            .args(["netns", "exec", &self.host(i), BIN, "agent"])
            .args(["--name", &format!("h{i}"), "--bind", &bind, "--join", &seed])
            .args(["--cluster-key", &self.key_file.to_string_lossy()])
            .args(["--profile", "local", "--log-format", "json"]);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("MUSTER_") {
                command.env_remove(var);
            }
        }
        command.env_remove("RUST_LOG");
        self.agents
            .push(Agent::spawn(&format!("h{i}"), 7946, command)?);
        Ok(())
    }

    /// Drops host `i`'s traffic on its interface: both ways, or only what comes in.
    fn cut(&self, i: usize, inbound_only: bool) -> Result<()> {
        let host = self.host(i);
        let nft = |rule: &str| run("ip", &["netns", "exec", &host, "nft", rule]);
        nft("add table inet cut")?;
        nft("add chain inet cut in { type filter hook input priority 0; policy accept; }")?;
        nft("add rule inet cut in iifname eth0 drop")?;
        if !inbound_only {
            nft("add chain inet cut out { type filter hook output priority 0; policy accept; }")?;
            nft("add rule inet cut out oifname eth0 drop")?;
        }
        Ok(())
    }

    fn heal(&self, i: usize) -> Result<()> {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.host(i),
                "nft",
                "delete table inet cut",
            ],
        )
    }

    fn agents(&self) -> Vec<&Agent> {
        self.agents.iter().collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.agents.clear(); // kills every agent first
        for i in 1..=HOSTS {
            let _ = run("ip", &["netns", "del", &self.host(i)]);
        }
        let _ = run("ip", &["netns", "del", &self.hub()]);
        let _ = std::fs::remove_file(&self.key_file);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(String::from))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// How many times each agent but the cut host has logged `message` about it so far.
fn counts(lab: &Lab, cut: &str, message: &str) -> Vec<usize> {
    lab.agents
        .iter()
        .filter(|a| a.name != cut)
        .map(|a| a.count(message, cut))
        .collect()
}

/// Waits until every agent but the cut host logs `message` about it once more than in
/// `before` (from [`counts`]).
fn wait_all(lab: &Lab, what: &str, cut: &str, message: &str, before: &[usize]) -> Result<()> {
    let took = eventually(what, &lab.agents(), || {
        counts(lab, cut, message)
            .iter()
            .zip(before)
            .all(|(now, then)| now > then)
    })?;
    eprintln!("{what}: {took:?}");
    Ok(())
}

#[test]
fn a_cut_host_is_marked_failed_and_rejoins_by_itself_when_the_cut_heals() -> Result<()> {
    if !is_root() {
        eprintln!("SKIPPED: network-namespace tests need root (ip netns, nftables)");
        return Ok(());
    }
    let mut lab = Lab::build()?;
    for i in 1..=HOSTS {
        lab.start_agent(i)?;
    }
    let took = eventually("four hosts see each other", &lab.agents(), || {
        lab.agents.iter().all(|a| {
            (1..=HOSTS)
                .filter(|j| format!("h{j}") != a.name)
                .all(|j| a.saw("member joined", &format!("h{j}")))
        })
    })?;
    eprintln!("four hosts joined: {took:?}");

    // Both ways, then one way (h4 hears nothing; its packets still go out).
    for (inbound_only, how) in [(false, "both ways"), (true, "inbound only")] {
        let failed = counts(&lab, "h4", "member failed");
        lab.cut(4, inbound_only)?;
        wait_all(
            &lab,
            &format!("h4 cut {how} is marked failed"),
            "h4",
            "member failed",
            &failed,
        )?;
        let alive = counts(&lab, "h4", "member alive");
        lab.heal(4)?;
        wait_all(
            &lab,
            &format!("h4 is alive everywhere after the {how} cut heals"),
            "h4",
            "member alive",
            &alive,
        )?;
    }
    Ok(())
}
