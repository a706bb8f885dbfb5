//! An agent killed with SIGKILL and restarted at once at the same address must not be
//! declared failed. Two mechanisms see to it: the restarted agent's join dials its seed,
//! and the new connection replaces the seed's cached one to the old life; and for peers
//! it does not dial, its new endpoint answers packets on old connections with QUIC
//! stateless resets they recognise (the reset key derives from a secret that survives
//! restarts), so they drop the dead connection at once. This test exercises the first;
//! the second is not separately observable at this size.

mod support;

use anyhow::Result;
use support::{eventually, free_port, start_dev};

#[test]
fn a_node_killed_and_restarted_in_place_is_never_declared_failed() -> Result<()> {
    let a = start_dev("a", free_port(), None, &[])?;
    let b_port = free_port();
    let mut b = start_dev("b", b_port, Some(a.port), &[])?;
    eventually("a and b join", &[&a, &b], || {
        a.saw("member joined", "b") && b.saw("member joined", "a")
    })?;
    // Let probes run over the connections a while, so a holds a live one to b.
    std::thread::sleep(std::time::Duration::from_secs(2));
    b.child.kill()?;
    b.child.wait()?;
    let b = start_dev("b", b_port, Some(a.port), &[])?;
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
