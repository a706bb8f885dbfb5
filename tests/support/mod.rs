//! Shared by the tests that run `muster` as a process: the binary, deadlines, and
//! [`Agent`], a running agent whose JSON log lines on stderr are collected so a test can
//! wait for "member joined / failed / left / alive" about a member.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod docs;
pub mod meshes;
pub mod netns;
pub mod router;

use anyhow::{Context, Result, bail};

pub const BIN: &str = env!("CARGO_BIN_EXE_muster");

/// Upper bound on any single wait; far above what an idle machine needs.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a wait re-checks its condition.
pub const POLL: Duration = Duration::from_millis(50);

/// The wall clock, for deadlines: these tests watch real processes, so there is no
/// virtual time to use (the lint guards the protocol core, not process tests).
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// A port that was free a moment ago: bind port 0, read the port, let it go.
pub fn free_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    socket
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// One field of a JSON log line: `fields.<key>` as a string.
pub fn field<'a>(line: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    line.get("fields")?.get(key)?.as_str()
}

/// A running agent; killed (SIGKILL) and reaped when dropped.
pub struct Agent {
    pub name: String,
    pub port: u16,
    pub child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<JoinHandle<()>>,
}

impl Agent {
    /// Spawns `command` (a `muster agent` invocation, possibly wrapped, e.g. by
    /// `ip netns exec`) with stderr piped, and collects its JSON log lines.
    pub fn spawn(name: &str, port: u16, mut command: Command) -> Result<Agent> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawn muster agent")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let label = name.to_owned();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "fields": { "message": line } }));
                sink.lock()
                    .expect("no reader panics holding it")
                    .push(value);
            }
            eprintln!("[{label}] stderr closed");
        });
        Ok(Agent {
            name: name.to_owned(),
            port,
            child,
            lines,
            reader: Some(reader),
        })
    }

    /// How many log lines say `message` about member `member`.
    pub fn count(&self, message: &str, member: &str) -> usize {
        let lines = self.lines.lock().expect("no reader panics holding it");
        lines
            .iter()
            .filter(|l| field(l, "message") == Some(message) && field(l, "member") == Some(member))
            .count()
    }

    /// Whether any log line says `message`.
    pub fn said(&self, message: &str) -> bool {
        let lines = self.lines.lock().expect("no reader panics holding it");
        lines.iter().any(|l| field(l, "message") == Some(message))
    }

    /// How many log lines say `message` with field `key` equal to `value`.
    pub fn count_where(&self, message: &str, key: &str, value: &str) -> usize {
        let lines = self.lines.lock().expect("no reader panics holding it");
        lines
            .iter()
            .filter(|l| field(l, "message") == Some(message) && field(l, key) == Some(value))
            .count()
    }

    /// The last of "member joined", "member failed" and "member left" about `member`.
    pub fn last_about(&self, member: &str) -> Option<String> {
        let lines = self.lines.lock().expect("no reader panics holding it");
        lines
            .iter()
            .filter(|l| field(l, "member") == Some(member))
            .filter_map(|l| field(l, "message"))
            .rfind(|m| ["member joined", "member failed", "member left"].contains(m))
            .map(str::to_owned)
    }

    pub fn saw(&self, message: &str, member: &str) -> bool {
        self.count(message, member) > 0
    }

    /// The last few log lines, for failure messages.
    pub fn tail(&self) -> String {
        let lines = self.lines.lock().expect("no reader panics holding it");
        let start = lines.len().saturating_sub(15);
        let mut out = format!("--- {} (last {} lines)\n", self.name, lines.len() - start);
        for line in &lines[start..] {
            out.push_str(&format!("{line}\n"));
        }
        out
    }

    /// A log line's field from the first line with `message`.
    pub fn first_field(&self, message: &str, key: &str) -> Option<serde_json::Value> {
        let lines = self.lines.lock().expect("no reader panics holding it");
        lines
            .iter()
            .find(|l| field(l, "message") == Some(message))
            .and_then(|l| l.get("fields")?.get(key).cloned())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        Ok(())
    }

    /// Waits for the process to exit, up to [`DEADLINE`].
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
        let start = now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Ok(status);
            }
            if start.elapsed() > DEADLINE {
                bail!(
                    "{} did not exit within {DEADLINE:?}\n{}",
                    self.name,
                    self.tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Already gone is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds, or fails with `what` and every agent's log tail.
pub fn eventually(what: &str, agents: &[&Agent], check: impl Fn() -> bool) -> Result<Duration> {
    let start = now();
    loop {
        if check() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > DEADLINE {
            let tails: String = agents.iter().map(|a| a.tail()).collect();
            bail!("{what}: not within {DEADLINE:?}\n{tails}");
        }
        std::thread::sleep(POLL);
    }
}

/// A `muster` command that sees none of this process's `MUSTER_*` variables, so the
/// tests' outcomes do not depend on the environment they run in.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("MUSTER_") {
            command.env_remove(var);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

/// Runs `muster` with `args` to completion.
pub fn muster(args: &[&str]) -> Result<Output> {
    command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run muster")
}

/// Starts `muster agent` named `name` on `port`, joining through `join` if given, with
/// `extra` arguments.
pub fn start_dev(name: &str, port: u16, join: Option<u16>, extra: &[&str]) -> Result<Agent> {
    Agent::spawn(name, port, dev_command(name, port, join, extra))
}

/// The command [`start_dev`] runs, for a test that adds to it (environment variables)
/// before spawning it with [`Agent::spawn`].
pub fn dev_command(name: &str, port: u16, join: Option<u16>, extra: &[&str]) -> Command {
    let bind = format!("127.0.0.1:{port}");
    let mut command = command();
    command
        .args([
            "agent",
            "--dev",
            "--profile",
            "local",
            "--log-format",
            "json",
        ])
        .args(["--name", name, "--bind", &bind])
        // Any free port: these agents run side by side and must not fight over 7947
        // (nor over 8600 for DNS).
        .args(["--api-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0"])
        .args(extra);
    if let Some(seed) = join {
        command.args(["--join", &format!("127.0.0.1:{seed}")]);
    }
    command
}

/// `muster agent --dev` with its API on any free loopback port; returns it and the API
/// address it logged.
pub fn start_dev_api(name: &str, join: Option<u16>, extra: &[&str]) -> Result<(Agent, SocketAddr)> {
    let agent = start_dev(name, free_port(), join, extra)?;
    eventually("the agent logs its API address", &[&agent], || {
        agent.first_field("HTTP API listening", "api").is_some()
    })?;
    let api = agent
        .first_field("HTTP API listening", "api")
        .and_then(|v| v.as_str()?.parse().ok())
        .context("the API address parses")?;
    Ok((agent, api))
}

/// Polls `check` in async code until it holds; panics with `what` and `describe()` after
/// [`DEADLINE`]. Returns the time it took.
pub async fn eventually_async(
    what: &str,
    check: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) -> Duration {
    eventually_within(DEADLINE, what, check, describe).await
}

/// [`eventually_async`] with its own deadline, for waits that include a protocol period
/// longer than [`DEADLINE`] allows.
pub async fn eventually_within(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        if start.elapsed() > deadline {
            panic!("{what}: not within {deadline:?}; last seen: {}", describe());
        }
        tokio::time::sleep(POLL).await;
    }
}
