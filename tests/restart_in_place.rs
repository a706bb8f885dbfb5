//! An agent killed with SIGKILL and restarted at once at the same address must not be
//! declared failed. Two mechanisms see to it: the restarted agent's join dials its seed,
//! and the new connection replaces the seed's cached one to the old life; and for peers
//! it does not dial, its new endpoint answers packets on old connections with QUIC
//! stateless resets they recognise (the reset key derives from a secret that survives
//! restarts), so they drop the dead connection at once. This test exercises the first;
//! the second is not separately observable at this size.
//!
//! The restarted agent keeps its data dir, hence its node key (docs/protocol.md §17):
//! its name is bound to that key while it is a live member, so a second agent with the
//! same name and another key is refused, and exits 1 saying where the name is held.

mod support;

use anyhow::Result;
use support::{eventually, free_port, start_dev};

#[test]
fn a_node_killed_and_restarted_in_place_is_never_declared_failed() -> Result<()> {
    let a = start_dev("a", free_port(), None, &[])?;
    let b_port = free_port();
    let data = tempfile::tempdir()?;
    let b_dir = data.path().join("b");
    let b_dir = b_dir.to_str().expect("a UTF-8 temporary path");
    let mut b = start_dev("b", b_port, Some(a.port), &["--data-dir", b_dir])?;
    eventually("a and b join", &[&a, &b], || {
        a.saw("member joined", "b") && b.saw("member joined", "a")
    })?;
    // Let probes run over the connections a while, so a holds a live one to b.
    std::thread::sleep(std::time::Duration::from_secs(2));
    b.child.kill()?;
    b.child.wait()?;
    let b = start_dev("b", b_port, Some(a.port), &["--data-dir", b_dir])?;
    eventually("the restarted b joins", &[&a, &b], || {
        b.saw("member joined", "a")
    })?;
    // Several suspicion windows of the local profile: a stale connection would have
    // made a declare b failed by now.
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert!(
        !a.saw("member failed", "b"),
        "b was declared failed\n{}",
        a.tail()
    );
    Ok(())
}

#[test]
fn a_second_agent_with_a_live_members_name_is_refused_and_exits_1() -> Result<()> {
    let a = start_dev("a", free_port(), None, &[])?;
    let b_port = free_port();
    let b = start_dev("b", b_port, Some(a.port), &[])?;
    eventually("a and b join", &[&a, &b], || {
        a.saw("member joined", "b") && b.saw("member joined", "a")
    })?;
    // Another agent (another key: no data dir) takes the name b.
    let mut impostor = start_dev("b", free_port(), Some(a.port), &[])?;
    let status = impostor.wait_exit()?;
    assert_eq!(status.code(), Some(1), "{}", impostor.tail());
    let held = format!("name `b` is held by a live member at 127.0.0.1:{b_port}");
    assert!(impostor.tail().contains(&held), "{}", impostor.tail());
    // The real b is untouched: alive at its address on a, never failed or left.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        a.last_about("b").as_deref(),
        Some("member joined"),
        "{}",
        a.tail()
    );
    Ok(())
}
