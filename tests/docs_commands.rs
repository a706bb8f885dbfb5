//! The commands the README and docs/operations.md §1 and §2.4 show, run as written: the fenced
//! `sh` blocks are read from the files themselves, so a docs change that breaks a
//! command breaks this test.
//!
//! What "as written" means here: every word of each command is kept; only the way the
//! binary is reached is swapped, `cargo run --release --bin muster --` and a leading
//! `muster` both becoming the binary this test suite built (a release build inside a
//! test would take minutes). Agents run until the test stops them (SIGTERM, checking
//! they exit 0); query commands run to completion and their output is compared with the
//! `text` block the docs show after them (name, address and status of each row).

mod support;

use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, ensure};
use support::docs::{Block, blocks, muster_args};
use support::{Agent, BIN, eventually};

/// The docs use fixed ports (7946 and up): one test at a time.
static PORTS: Mutex<()> = Mutex::new(());

/// `muster` with `args`, seeing none of this process's `MUSTER_*` variables.
fn muster(args: &[String]) -> Command {
    let mut command = support::command();
    command.args(args);
    command
}

/// Starts every agent command of `block`; returns them running.
fn start_agents(block: &Block) -> Result<Vec<Agent>> {
    let mut agents = Vec::new();
    for line in &block.lines {
        let Some(args) = muster_args(line)? else {
            continue;
        };
        ensure!(args.first().map(String::as_str) == Some("agent"), "{line}");
        let name = args
            .windows(2)
            .find(|w| w[0] == "--name")
            .map(|w| w[1].clone())
            .with_context(|| format!("an agent with --name: {line}"))?;
        agents.push(Agent::spawn(&name, 0, muster(&args))?);
    }
    ensure!(!agents.is_empty(), "no agent command in {block:?}");
    Ok(agents)
}

/// The names `muster members --json` lists as alive on the agent at `api` (the CLI's
/// default when `None`).
fn alive(api: Option<&str>) -> Vec<String> {
    let mut args = vec!["members".to_owned(), "--json".to_owned()];
    if let Some(api) = api {
        args.extend(["--api-addr".to_owned(), api.to_owned()]);
    }
    let Ok(out) = muster(&args).output() else {
        return Vec::new();
    };
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    members
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|m| m["status"] == "alive")
                .filter_map(|m| m["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Stops every agent with SIGTERM and checks each left and exited 0.
fn stop(agents: &mut [Agent]) -> Result<()> {
    for agent in agents.iter() {
        agent.terminate()?;
    }
    for agent in agents.iter_mut() {
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

/// The first three columns (name, address, status) of each row of a members table.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).map(str::to_owned).collect())
        .collect()
}

#[test]
fn the_readme_agents_join_and_members_prints_what_the_readme_shows() -> Result<()> {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let all = blocks(&readme);
    let agents_block = all
        .iter()
        .find(|b| b.lang == "sh" && b.lines.iter().any(|l| l.contains(" agent --dev ")))
        .context("the README's block of dev agents")?;
    let mut agents = start_agents(agents_block)?;
    let refs: Vec<&Agent> = agents.iter().collect();
    eventually("both README agents see both alive", &refs, || {
        alive(None).len() == agents_block.lines.len() && alive(Some("127.0.0.1:7957")).len() == 2
    })?;
    // The query block and the output shown after it.
    let at = all
        .iter()
        .position(|b| b.lang == "sh" && b.lines.iter().any(|l| l.contains("-- members")))
        .context("the README's members block")?;
    let shown = all
        .get(at + 1)
        .filter(|b| b.lang == "text")
        .context("the output the README shows after the members block")?
        .lines
        .join("\n");
    for line in &all[at].lines {
        let Some(args) = muster_args(line)? else {
            continue;
        };
        let out = muster(&args).output()?;
        let stdout = String::from_utf8(out.stdout)?;
        ensure!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.lines().next(),
            shown.lines().next(),
            "{line}: the header"
        );
        assert_eq!(rows(&stdout), rows(&shown), "{line}:\n{stdout}");
    }
    stop(&mut agents)
}

#[test]
fn the_three_terminals_of_the_operations_quick_start_form_one_cluster() -> Result<()> {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let ops = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))?;
    let block = blocks(&ops)
        .into_iter()
        .find(|b| b.lang == "sh" && b.lines.iter().any(|l| l.starts_with("# terminal 1")))
        .context("the three-terminal block of operations.md §1")?;
    let mut agents = start_agents(&block)?;
    ensure!(agents.len() == 3, "{block:?}");
    let refs: Vec<&Agent> = agents.iter().collect();
    // Each agent's API is next to its gossip port: 7947, 7957, 7967.
    eventually("every agent sees all three alive", &refs, || {
        ["127.0.0.1:7947", "127.0.0.1:7957", "127.0.0.1:7967"]
            .iter()
            .all(|api| alive(Some(api)).len() == 3)
    })?;
    stop(&mut agents)
}

#[test]
fn the_pki_files_muster_tls_makes_in_operations_2_4_let_two_agents_join() -> Result<()> {
    let ops = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))?;
    let block = blocks(&ops)
        .into_iter()
        .find(|b| {
            b.subsection.starts_with("2.4")
                && b.lang == "sh"
                && b.lines.iter().any(|l| l.contains("muster tls"))
        })
        .context("the muster tls block of operations.md §2.4")?;
    let dir = tempfile::tempdir()?;
    let run = |args: &[String]| -> Result<std::process::Output> {
        Ok(muster(args).current_dir(dir.path()).output()?)
    };
    let mut commands = Vec::new();
    for line in &block.lines {
        let Some(args) = muster_args(line)? else {
            continue;
        };
        let out = run(&args)?;
        ensure!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        commands.push(args);
    }
    ensure!(commands.len() == 3, "{block:?}");
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "node1.key", "node2.key"] {
        let mode = std::fs::metadata(dir.path().join(key))?
            .permissions()
            .mode();
        ensure!(mode & 0o777 == 0o600, "{key} has mode {mode:o}");
    }
    // Run again, the same commands refuse to overwrite what they made.
    for args in &commands {
        let out = run(args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains("not overwriting"),
            "{args:?}: {stderr}"
        );
    }
    // Two agents with these files (PKI mode, no cluster key) form one cluster.
    let first = support::free_port();
    let start = |name: &str, port: u16, join: Option<u16>| -> Result<Agent> {
        let bind = format!("127.0.0.1:{port}");
        let mut command = support::command();
        command
            .current_dir(dir.path())
            .args(["agent", "--name", name, "--bind", &bind])
            .args(["--tls-ca", "ca.pem"])
            .args(["--tls-cert", &format!("{name}.pem")])
            .args(["--tls-key", &format!("{name}.key")])
            .args(["--api-addr", "127.0.0.1:0", "--dns-addr", "off"])
            .args(["--profile", "local", "--log-format", "json"]);
        if let Some(seed) = join {
            command.args(["--join", &format!("127.0.0.1:{seed}")]);
        }
        Agent::spawn(name, port, command)
    };
    let node1 = start("node1", first, None)?;
    let node2 = start("node2", support::free_port(), Some(first))?;
    eventually(
        "node1 and node2 join with the muster tls files",
        &[&node1, &node2],
        || node1.saw("member joined", "node2") && node2.saw("member joined", "node1"),
    )?;
    Ok(())
}

#[test]
fn the_block_parser_reads_fences_and_refuses_shell_syntax() -> Result<()> {
    let text = "a\n```sh\nmuster members\n# a comment\n```\n\n```text\nout\n```\n";
    let all = blocks(text);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].lang, "sh");
    assert_eq!(
        muster_args(&all[0].lines[0])?,
        Some(vec!["members".to_owned()])
    );
    assert_eq!(muster_args(&all[0].lines[1])?, None);
    assert!(muster_args("muster members | head").is_err());
    assert!(muster_args("ls").is_err());
    assert!(BIN.ends_with("muster"));
    Ok(())
}
