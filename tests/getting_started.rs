//! docs/getting-started.md, run for real: three hosts made of network namespaces joined
//! by a bridge, with the addresses and host names the walkthrough uses (10.0.0.11–13,
//! `host1`–`host3` through each namespace's own `/etc/hosts`), one cluster key made by
//! the first command and copied as a file, and every `sh` block of the document run as
//! written on the host its first line names (`# on host2`), in that host's own working
//! directory. The only words swapped are the program's path (`muster` becomes the binary
//! this suite built). Query commands are polled until their output matches the `text`
//! block the document shows after them (rule state, table headers, and the first three
//! columns of each row), so a changed command or a changed output breaks this test.
//!
//! What the reader does by hand the test does between blocks: copy the key (after
//! section 1), write `web.toml` and start a web server on each host (section 4), stop the
//! agents before restarting them (Ctrl-C: SIGTERM), stop the web servers of host1 and
//! host2 (section 5).
//!
//! Needs root, `ip` and `python3`; without root it skips with a message.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use support::docs::{blocks, muster_args};
use support::netns::{self, is_root};
use support::{Agent, BIN, DEADLINE, POLL, now};

/// The walkthrough's hosts: name, address.
const HOSTS: [(&str, &str); 3] = [
    ("host1", "10.0.0.11"),
    ("host2", "10.0.0.12"),
    ("host3", "10.0.0.13"),
];

/// Waits for cluster changes are longer than [`DEADLINE`]: a restart of three agents
/// with lan timing, then checks and a failover rule's timeout.
const SLOW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

/// The hosts' working directories, agents and web servers over the namespaces; torn
/// down on drop (processes before namespaces).
struct Lab {
    dir: tempfile::TempDir,
    agents: Vec<Option<Agent>>,
    web: Vec<Option<Child>>,
    net: netns::Lab,
}

impl Lab {
    fn workdir(&self, i: usize) -> PathBuf {
        self.dir.path().join(HOSTS[i].0)
    }

    fn build() -> Result<Lab> {
        let addrs: Vec<&str> = HOSTS.iter().map(|(_, addr)| *addr).collect();
        let lab = Lab {
            dir: tempfile::tempdir()?,
            agents: (0..HOSTS.len()).map(|_| None).collect(),
            web: (0..HOSTS.len()).map(|_| None).collect(),
            net: netns::Lab::build("gs", &addrs)?,
        };
        let names: Vec<(&str, &str)> = HOSTS.iter().map(|(name, addr)| (*addr, *name)).collect();
        for i in 0..HOSTS.len() {
            lab.net.set_hosts(i, &names)?;
            std::fs::create_dir_all(lab.workdir(i))?;
        }
        Ok(lab)
    }

    /// `muster args` on host `i`, in its working directory.
    fn muster(&self, i: usize, args: &[String]) -> Command {
        let mut command = self.net.exec(i, BIN);
        command.args(args).current_dir(self.workdir(i));
        command
    }

    /// Stops host `i`'s agent as Ctrl-C would, and checks it exited 0.
    fn stop_agent(&mut self, i: usize) -> Result<()> {
        if let Some(mut agent) = self.agents[i].take() {
            agent.terminate()?;
            let status = agent.wait_exit()?;
            ensure!(
                status.success(),
                "{} exited {status}\n{}",
                agent.name,
                agent.tail()
            );
        }
        Ok(())
    }

    /// A web server on 127.0.0.1:8080 in host `i`.
    fn start_web(&mut self, i: usize) -> Result<()> {
        let child = self
            .net
            .exec(i, "python3")
            .args(["-m", "http.server", "8080", "--bind", "127.0.0.1"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("python3 -m http.server")?;
        self.web[i] = Some(child);
        Ok(())
    }

    fn stop_web(&mut self, i: usize) {
        if let Some(mut child) = self.web[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn tails(&self) -> String {
        self.agents.iter().flatten().map(Agent::tail).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..HOSTS.len() {
            self.stop_web(i);
            self.agents[i] = None; // killed
        }
    }
}

/// What of an output line is compared with the document: a rule line up to its first
/// ` · ` (the state), a table header whole, a table row's first three columns.
fn comparable(line: &str) -> String {
    if line.contains(" · ") {
        return line.split(" · ").next().unwrap_or("").to_owned();
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase()))
    {
        return words.join(" ");
    }
    words.iter().take(3).copied().collect::<Vec<_>>().join(" ")
}

fn matches(actual: &str, shown: &[String]) -> bool {
    let actual: Vec<String> = actual.lines().map(comparable).collect();
    let shown: Vec<String> = shown.iter().map(|l| comparable(l)).collect();
    actual == shown
}

/// Copies host1's cluster key to the other hosts, keeping its mode.
fn copy_key(lab: &Lab) -> Result<()> {
    let key = lab.workdir(0).join("cluster.key");
    ensure!(key.exists(), "the first block made no cluster.key");
    for i in 1..HOSTS.len() {
        let to = lab.workdir(i).join("cluster.key");
        std::fs::copy(&key, &to)?;
        std::fs::set_permissions(&to, std::fs::metadata(&key)?.permissions())?;
    }
    Ok(())
}

/// Runs `args` on host `i` until its output matches `shown` (or just once, successfully,
/// with nothing shown).
fn query(lab: &Lab, i: usize, args: &[String], shown: Option<&[String]>) -> Result<()> {
    let started = now();
    loop {
        let out = lab.muster(i, args).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let done = match shown {
            Some(shown) => out.status.success() && matches(&stdout, shown),
            None => out.status.success(),
        };
        if done {
            eprintln!(
                "{} $ muster {} (after {:?})\n{stdout}",
                HOSTS[i].0,
                args.join(" "),
                started.elapsed()
            );
            return Ok(());
        }
        if started.elapsed() > SLOW_DEADLINE.max(DEADLINE) {
            bail!(
                "on {}: muster {} did not show what the document shows within {SLOW_DEADLINE:?}\n\
                 got:\n{stdout}{}\nshown:\n{}\n{}",
                HOSTS[i].0,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                shown.map(|s| s.join("\n")).unwrap_or_default(),
                lab.tails()
            );
        }
        std::thread::sleep(POLL * 10);
    }
}

#[test]
fn the_getting_started_walkthrough_runs_as_written_on_three_namespace_hosts() -> Result<()> {
    if !is_root() {
        eprintln!("SKIPPED: the getting-started walkthrough needs root (ip netns)");
        return Ok(());
    }
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/getting-started.md"
    ))?;
    let all = blocks(&doc);
    let mut lab = Lab::build()?;
    let started = now();
    let mut section = 0;
    for (at, block) in all.iter().enumerate() {
        // What the reader does by hand when a section begins.
        if block.section != section {
            if section == 1 {
                copy_key(&lab)?;
            }
            if block.section == 5 {
                lab.stop_web(0);
                lab.stop_web(1);
            }
            section = block.section;
        }
        match block.lang.as_str() {
            "toml" => {
                for i in 0..HOSTS.len() {
                    std::fs::write(lab.workdir(i).join("web.toml"), block.lines.join("\n"))?;
                    lab.start_web(i)?;
                }
                continue;
            }
            "sh" => {}
            _ => continue,
        }
        let host = block
            .lines
            .first()
            .and_then(|l| l.strip_prefix("# on "))
            .with_context(|| format!("a block that names its host: {:?}", block.lines))?;
        let i = HOSTS
            .iter()
            .position(|(name, _)| *name == host.trim())
            .with_context(|| format!("an unknown host {host:?}"))?;
        let shown = all
            .get(at + 1)
            .filter(|b| b.lang == "text")
            .map(|b| b.lines.as_slice());
        for line in &block.lines {
            let Some(args) = muster_args(line)? else {
                continue;
            };
            if args.first().map(String::as_str) == Some("agent") {
                // "Ctrl-C, then the same command": a running agent stops first.
                lab.stop_agent(i)?;
                let agent = Agent::spawn(HOSTS[i].0, 7946, lab.muster(i, &args))?;
                lab.agents[i] = Some(agent);
                // The API is up before the next command asks it anything.
                let api_up = || {
                    lab.muster(i, &["info".to_owned()])
                        .output()
                        .is_ok_and(|o| o.status.success())
                };
                let waited = now();
                while !api_up() {
                    ensure!(waited.elapsed() < DEADLINE, "{}", lab.tails());
                    std::thread::sleep(POLL);
                }
            } else {
                query(&lab, i, &args, shown)?;
            }
        }
    }
    ensure!(
        section == 5,
        "the walkthrough's sections ran up to {section}"
    );
    eprintln!("the walkthrough ran in {:?}", started.elapsed());
    for i in 0..HOSTS.len() {
        lab.stop_agent(i)?;
    }
    Ok(())
}

#[test]
fn output_lines_compare_by_rule_state_header_and_first_columns() {
    assert_eq!(
        comparable("web: rule normal · regions eu · anything"),
        "web: rule normal"
    );
    assert_eq!(comparable("NAME   ADDRESS  STATUS"), "NAME ADDRESS STATUS");
    assert_eq!(
        comparable("host1  10.0.0.11:7946  alive   eu  eu-1  1  -"),
        "host1 10.0.0.11:7946 alive"
    );
}
