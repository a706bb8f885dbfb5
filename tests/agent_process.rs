//! `muster` as a process: agents in `--dev --profile local` mode on 127.0.0.1, watched
//! through their JSON logs on stderr (there is no HTTP API yet), plus the command's
//! refusals (bad config, no key) and `keygen` / `--check-config` output.
//!
//! Every wait polls with a generous deadline; every child is killed when its guard drops,
//! whatever way the test ends.

mod support;

use std::path::Path;

use anyhow::{Context, Result};
use muster::transport::ClusterKey;
use support::{command, eventually, free_port, muster, start_dev};

#[test]
fn three_agents_see_a_kill_as_failed_and_a_sigterm_as_left() -> Result<()> {
    let a = start_dev("a", free_port(), None, &[])?;
    let b = start_dev("b", free_port(), Some(a.port), &[])?;
    let mut c = start_dev("c", free_port(), Some(a.port), &[])?;
    let took = eventually("everyone sees everyone join", &[&a, &b, &c], || {
        a.saw("member joined", "b")
            && a.saw("member joined", "c")
            && b.saw("member joined", "c")
            && c.saw("member joined", "b")
    })?;
    eprintln!("three agents joined in {took:?}");
    let listen = a.first_field("agent listening", "listen");
    let expected = format!("127.0.0.1:{}", a.port);
    assert_eq!(
        listen.as_ref().and_then(|v| v.as_str()),
        Some(expected.as_str())
    );

    c.child.kill().context("SIGKILL c")?;
    let took = eventually("a and b mark the killed c failed", &[&a, &b, &c], || {
        a.saw("member failed", "c") && b.saw("member failed", "c")
    })?;
    eprintln!("kill -9 seen as failed in {took:?}");
    assert!(
        !a.saw("member left", "c"),
        "a killed agent is not seen to leave"
    );

    let mut b = b;
    b.terminate()?;
    let status = b.wait_exit()?;
    assert!(
        status.success(),
        "b exits 0 after SIGTERM: {status}\n{}",
        b.tail()
    );
    let took = eventually("a marks b left", &[&a, &b], || a.saw("member left", "b"))?;
    eprintln!("SIGTERM seen as left in {took:?}");
    assert_eq!(
        a.last_about("b").as_deref(),
        Some("member left"),
        "a graceful leave ends as left, not failed\n{}",
        a.tail()
    );
    drop(c.wait_exit());
    Ok(())
}

#[test]
fn a_restarted_agent_rejoins_through_its_data_dir_with_a_higher_incarnation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("b").display().to_string();
    let a = start_dev("a", free_port(), None, &[])?;
    let b_port = free_port();
    let mut b = start_dev("b", b_port, Some(a.port), &["--data-dir", &data_dir])?;
    eventually("a sees b join", &[&a, &b], || a.saw("member joined", "b"))?;
    b.terminate()?;
    assert!(b.wait_exit()?.success(), "b exits 0\n{}", b.tail());
    eventually("a marks b left", &[&a, &b], || a.saw("member left", "b"))?;

    // No --join: the only way back is the members remembered in the data dir.
    let b = start_dev("b", b_port, None, &["--data-dir", &data_dir])?;
    eventually("a sees b join again", &[&a, &b], || {
        a.count("member joined", "b") >= 2
    })?;
    let incarnation = b
        .first_field("agent listening", "incarnation")
        .and_then(|v| v.as_u64())
        .context("the start line carries the incarnation")?;
    assert!(
        incarnation >= 2,
        "above the leave's incarnation: {incarnation}"
    );
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

#[test]
fn a_bad_config_file_exits_2_naming_the_field() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            "unknown.toml",
            "dev = true\nbindd = \"127.0.0.1:1\"\n",
            "bindd",
        ),
        (
            "profile.toml",
            "dev = true\nbind = \"127.0.0.1:1\"\nprofile = \"fast\"\n",
            "profile",
        ),
        ("syntax.toml", "dev = true\nbind = \n", "line 2"),
        ("value.toml", "dev = true\nbind = \"nowhere\"\n", "`bind`"),
    ];
    for (file, text, expected) in cases {
        let path = write(dir.path(), file, text)?;
        let out = muster(&["agent", "--config", &path, "--name", "a"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{file}: one line: {stderr}");
        assert!(
            stderr.contains(expected),
            "{file}: names {expected}: {stderr}"
        );
    }
    let out = muster(&["agent", "--config", "/nonexistent/agent.toml", "--dev"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/agent.toml"));
    Ok(())
}

#[test]
fn without_a_key_or_dev_the_agent_refuses_to_start() -> Result<()> {
    let out = muster(&["agent", "--name", "a", "--bind", "127.0.0.1:1"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(
        stderr.contains("--cluster-key") && stderr.contains("--dev"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn keygen_prints_one_key_that_parses() -> Result<()> {
    let first = muster(&["keygen"])?;
    let second = muster(&["keygen"])?;
    assert!(first.status.success());
    let text = String::from_utf8(first.stdout)?;
    assert_eq!(text.lines().count(), 1, "{text}");
    let key = ClusterKey::parse(&text)?;
    assert_ne!(key, ClusterKey::parse(&String::from_utf8(second.stdout)?)?);
    Ok(())
}

#[test]
fn an_unusable_data_dir_stops_the_agent_before_it_starts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Inside a plain file: neither readable nor writable as a directory, even as root.
    let file = write(dir.path(), "not-a-dir", "x")?;
    let unreadable = format!("{file}/state");
    // Readable (no state yet) but not writable: the temporary file's name is taken by a
    // directory, so the write-ahead save of the new incarnation fails.
    let unwritable = dir.path().join("unwritable");
    std::fs::create_dir_all(unwritable.join("state.toml.tmp"))?;
    let unwritable = unwritable.display().to_string();
    for data_dir in [unreadable, unwritable] {
        let bind = format!("127.0.0.1:{}", free_port());
        let out = command()
            .args(["agent", "--dev", "--name", "a", "--bind", &bind])
            .args(["--api-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0"])
            .args(["--data-dir", &data_dir])
            .stdin(std::process::Stdio::null())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{data_dir}: {stderr}");
        assert!(stderr.contains("data_dir"), "{data_dir}: {stderr}");
        assert!(
            !stderr.contains("mesh started"),
            "{data_dir}: refused before joining: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn check_config_refuses_a_path_that_is_not_utf8() -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let out = command()
        .args(["agent", "--dev", "--name", "a", "--bind", "127.0.0.1:7000"])
        .arg("--check-config")
        .arg("--data-dir")
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .stdin(std::process::Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("data_dir"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[test]
fn check_config_prints_the_effective_config_with_flags_over_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = write(
        dir.path(),
        "cluster.key",
        &format!("{}\n", ClusterKey::generate()?),
    )?;
    let config = write(
        dir.path(),
        "agent.toml",
        "bind = \"127.0.0.1:7000\"\nregion = \"file\"\njoin = [\"10.0.0.1:7946\"]\n\
         [tags]\nrole = \"file\"\n",
    )?;
    let out = muster(&[
        "agent",
        "--config",
        &config,
        "--check-config",
        "--name",
        "n1",
        "--cluster-key",
        &key,
        "--region",
        "flag",
        "--tag",
        "role=flag",
        "--join",
        "10.0.0.2:7946,10.0.0.3:7946",
    ])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective: toml::Table = toml::from_str(&stdout)?;
    assert_eq!(effective["name"].as_str(), Some("n1"), "{stdout}");
    assert_eq!(effective["bind"].as_str(), Some("127.0.0.1:7000"));
    assert_eq!(effective["region"].as_str(), Some("flag"));
    assert_eq!(effective["tags"]["role"].as_str(), Some("flag"));
    assert_eq!(effective["join"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        effective["profile"].as_str(),
        Some("lan"),
        "defaults are shown"
    );
    Ok(())
}

#[test]
fn keygen_out_writes_a_private_file_and_never_overwrites_one() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cluster.key");
    let path_arg = path.display().to_string();
    let out = muster(&["keygen", "--out", &path_arg])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the key is not printed");
    let key = ClusterKey::parse(&std::fs::read_to_string(&path)?)?;
    let mode = std::fs::metadata(&path)?.permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = muster(&["keygen", "--out", &path_arg])?;
    assert!(!again.status.success(), "an existing key is kept");
    assert_eq!(ClusterKey::parse(&std::fs::read_to_string(&path)?)?, key);
    Ok(())
}

#[test]
fn check_config_hides_webhook_headers_and_urls() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write(
        dir.path(),
        "agent.toml",
        "dev = true\nname = \"a\"\nbind = \"127.0.0.1:7000\"\n\
         [[hooks]]\nevents = [\"member-failed\"]\n\
         webhook = \"https://hooks.example.com/services/T0/B0/SECRETPATH?key=SECRETQUERY\"\n\
         headers = { Authorization = \"Bearer SECRETHEADER\" }\n",
    )?;
    let out = muster(&["agent", "--config", &config, "--check-config"])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("SECRET"), "{stdout}");
    assert!(
        stdout.contains("https://hooks.example.com/<redacted>"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Authorization = \"<redacted>\""),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn version_names_the_protocol_and_the_commit_and_completions_and_man_are_generated() -> Result<()> {
    let out = muster(&["--version"])?;
    let text = String::from_utf8(out.stdout)?;
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!(
            "muster {} (protocol v{}, commit ",
            env!("CARGO_PKG_VERSION"),
            muster::wire::PROTOCOL_VERSION
        )),
        "{text}"
    );
    for (shell, marker) in [
        ("bash", "_muster()"),
        ("zsh", "#compdef muster"),
        ("fish", "complete -c muster"),
    ] {
        let out = muster(&["completions", shell])?;
        let script = String::from_utf8(out.stdout)?;
        assert!(
            out.status.success() && script.contains(marker),
            "{shell}: {script:.200}"
        );
        assert!(
            script.contains("members") && script.contains("agent"),
            "{shell}"
        );
    }
    // The bash script parses.
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "muster.bash",
        &String::from_utf8(muster(&["completions", "bash"])?.stdout)?,
    )?;
    let parsed = std::process::Command::new("bash")
        .args(["-n", &path])
        .output()?;
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let man = muster(&["man"])?;
    let page = String::from_utf8(man.stdout)?;
    assert!(
        man.status.success() && page.contains(".TH muster 1"),
        "{page:.200}"
    );
    assert!(page.contains("keygen"), "the subcommands are listed");
    Ok(())
}

#[test]
fn an_agent_whose_mesh_driver_dies_exits_rather_than_answer_from_a_frozen_view() -> Result<()> {
    // Debug builds make the driver panic on request (MUSTER_TEST_CRASH_DRIVER): a bug's
    // stand-in. The agent must exit non-zero at once, not keep serving /v1/health.
    let port = free_port();
    let mut cmd = support::dev_command("crash", port, None, &[]);
    cmd.env("MUSTER_TEST_CRASH_DRIVER", "1");
    let mut agent = support::Agent::spawn("crash", port, cmd)?;
    let status = agent.wait_exit()?;
    assert_eq!(status.code(), Some(70), "{}", agent.tail());
    assert!(
        agent.said("the mesh driver stopped; exiting"),
        "{}",
        agent.tail()
    );
    let why = agent
        .first_field("the mesh driver stopped; exiting", "why")
        .unwrap_or_default();
    assert!(why.to_string().contains("panicked"), "{why}");
    Ok(())
}

#[test]
fn sighup_is_logged_and_ignored_and_the_agent_stays_a_member() -> Result<()> {
    let port_a = free_port();
    let a = start_dev("hup-a", port_a, None, &[])?;
    let mut b = start_dev("hup-b", free_port(), Some(port_a), &[])?;
    eventually("a sees b join", &[&a, &b], || {
        a.saw("member joined", "hup-b")
    })?;
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &b.child.id().to_string()])
        .status()?;
    assert!(sent.success());
    eventually("b logs the SIGHUP", &[&b], || {
        b.said("SIGHUP: the config is not reloaded (not supported yet); restart the agent (SIGTERM leaves gracefully) to apply changes")
    })?;
    assert!(b.child.try_wait()?.is_none(), "b still runs: {}", b.tail());
    assert!(!a.saw("member failed", "hup-b"), "{}", a.tail());
    // SIGTERM still leaves gracefully.
    b.terminate()?;
    let status = b.wait_exit()?;
    assert!(status.success(), "{status}: {}", b.tail());
    eventually("a sees b leave", &[&a], || a.saw("member left", "hup-b"))?;
    Ok(())
}
