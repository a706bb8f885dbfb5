//! `muster demo` as a newcomer would run it, piped: it must crash a node, see every
//! survivor mark it failed, bring it back alive, and exit 0 by itself when its duration
//! is over. Piped output is a plain event log, so the test reads it line by line.

mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use support::{POLL, command, now};

/// The demo's own duration plus a generous margin for starting and stopping.
const EXIT_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn demo_crashes_a_node_sees_it_detected_and_brings_it_back() -> Result<()> {
    let mut child = command()
        .args([
            "demo",
            "--nodes",
            "3",
            "--crash-every",
            "2",
            "--down-for",
            "3",
        ])
        .args(["--duration", "25", "--profile", "local"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn muster demo")?;
    let mut stdout = child.stdout.take().context("stdout is piped")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let start = now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > EXIT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            bail!("muster demo did not exit within {EXIT_DEADLINE:?}");
        }
        std::thread::sleep(POLL);
    };
    let out = reader.join().expect("the reader does not panic");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let context = format!("--- stdout\n{out}--- stderr\n{stderr}");
    assert!(status.success(), "muster demo exited {status}\n{context}");
    assert!(
        !out.contains('\x1b'),
        "piped output must not redraw\n{context}"
    );
    // The first node crashed, and that it was followed to the end.
    let victim = out
        .lines()
        .filter(|l| l.starts_with('+'))
        .find_map(|l| l.split(" crashed ").nth(1)?.split(' ').next())
        .with_context(|| format!("no crash in the output\n{context}"))?;
    for expected in [
        format!("both survivors mark {victim} failed"),
        format!("{victim} restarted at incarnation"),
        format!("all agree {victim} is alive"),
    ] {
        assert!(
            out.contains(&expected),
            "no line with {expected:?}\n{context}"
        );
    }
    assert!(
        out.contains("stopping: the duration is over"),
        "the demo did not stop on its duration\n{context}"
    );
    Ok(())
}
