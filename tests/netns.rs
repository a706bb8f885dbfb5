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

use anyhow::{Context, Result};
use support::netns::{self, is_root};
use support::{Agent, BIN, eventually};

const HOSTS: usize = 4;

/// The namespaces (addresses in a subnet that lives only inside them), the agents and
/// the key file; torn down on drop, agents first.
struct Lab {
    agents: Vec<Agent>,
    key_file: PathBuf,
    net: netns::Lab,
}

impl Lab {
    fn build() -> Result<Lab> {
        let addrs: Vec<String> = (1..=HOSTS).map(|i| format!("10.203.0.{i}")).collect();
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let net = netns::Lab::build("mu", &refs)?;
        let key_file = std::env::temp_dir().join(format!("{}-cluster.key", net.ns(0)));
        let key = std::process::Command::new(BIN)
            .arg("keygen")
            .output()
            .context("muster keygen")?;
        std::fs::write(&key_file, &key.stdout).context("write the cluster key")?;
        Ok(Lab {
            agents: Vec::new(),
            key_file,
            net,
        })
    }

    /// Starts the agent of host `i` (1-based), joining through host 1.
    fn start_agent(&mut self, i: usize) -> Result<()> {
        let bind = format!("{}:7946", self.net.addr(i - 1));
        let seed = format!("{}:7946", self.net.addr(0));
        let mut command = self.net.exec(i - 1, BIN);
        command
            .arg("agent")
            .args(["--name", &format!("h{i}"), "--bind", &bind, "--join", &seed])
            .args(["--cluster-key", &self.key_file.to_string_lossy()])
            .args(["--profile", "local", "--log-format", "json"]);
        let agent = Agent::spawn(&format!("h{i}"), 7946, command)?;
        self.agents.push(agent);
        Ok(())
    }

    /// Drops host `i`'s traffic on its interface: both ways, or only what comes in.
    fn cut(&self, i: usize, inbound_only: bool) -> Result<()> {
        let nft = |rule: &str| self.net.nft(i - 1, rule);
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
        self.net.nft(i - 1, "delete table inet cut")
    }

    fn agents(&self) -> Vec<&Agent> {
        self.agents.iter().collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.agents.clear(); // kills every agent before the namespaces go
        let _ = std::fs::remove_file(&self.key_file);
    }
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
