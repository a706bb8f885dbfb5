//! What crosses the wire under real agents: whole-packet UDP counters, injected loss, and
//! garbage aimed at the gossip port. QUIC with mutual TLS on loopback, polling with
//! generous deadlines.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use muster::agent::{Mesh, MeshConfig};
use muster::wire::MemberState;

use support::{DEADLINE, meshes};

async fn start(name: &str, seeds: Vec<SocketAddr>) -> Mesh {
    meshes::start_config(MeshConfig {
        seeds,
        ..meshes::dev_config("wire", name)
    })
    .await
}

/// Waits for `check`, within [`DEADLINE`].
async fn eventually(what: &str, check: impl FnMut() -> bool) -> Duration {
    support::eventually_within(DEADLINE, what, check, String::new).await
}

fn alive_count(mesh: &Mesh) -> usize {
    mesh.members()
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_counters_see_whole_quic_packets() {
    let a = start("a", vec![]).await;
    let b = start("b", vec![a.local_addr()]).await;
    eventually("a and b see each other", || {
        alive_count(&a) == 2 && alive_count(&b) == 2
    })
    .await;
    // Let a few probe rounds go by.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = a.transport_stats();
    let payload = s.datagram_bytes_out + s.stream_bytes_out;
    assert!(s.udp_packets_out > 0 && s.udp_packets_in > 0, "{s:?}");
    assert!(
        s.udp_bytes_out > payload,
        "UDP bytes ({}) must include QUIC overhead beyond the {} payload bytes",
        s.udp_bytes_out,
        payload
    );
    assert!(
        s.udp_packets_out >= s.datagrams_out,
        "every datagram is a packet: {s:?}"
    );
    assert_eq!(s.udp_packets_dropped, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_the_gossip_port_changes_nothing_and_the_agent_keeps_serving() {
    let a = start("a", vec![]).await;
    let b = start("b", vec![a.local_addr()]).await;
    // Each new node announces itself once more (at incarnation 1) when its first probe
    // proves it healthy (protocol.md §8): wait for that, so only garbage could move them.
    eventually("a and b see each other, proven", || {
        alive_count(&a) == 2
            && alive_count(&b) == 2
            && a.members().iter().all(|m| m.incarnation >= 1)
    })
    .await;
    let before: Vec<_> = a
        .members()
        .iter()
        .map(|m| (m.name.clone(), m.incarnation, m.state))
        .collect();
    let received_before = a.transport_stats().datagrams_in;

    // Random bytes, and truncated copies of a QUIC long-header packet (an Initial's first
    // bytes: flags, version 1, connection id lengths) at every length.
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for i in 0..500usize {
        let len = 1 + (i * 37) % 1400;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        attacker.send_to(&junk, a.local_addr()).expect("send");
    }
    let initial: Vec<u8> = [0xc3, 0, 0, 0, 1, 8]
        .into_iter()
        .chain(std::iter::repeat_n(0xab, 1194))
        .collect();
    for cut in 1..initial.len() {
        attacker
            .send_to(&initial[..cut], a.local_addr())
            .expect("send");
    }

    // A keeps serving: probes keep flowing, a newcomer can still join through it, and
    // nobody was suspected because of the garbage.
    let c = start("c", vec![a.local_addr()]).await;
    eventually("c joins through a", || {
        alive_count(&a) == 3 && alive_count(&b) == 3 && alive_count(&c) == 3
    })
    .await;
    eventually("a still receives probes", || {
        a.transport_stats().datagrams_in > received_before + 5
    })
    .await;
    let after: Vec<_> = a
        .members()
        .iter()
        .filter(|m| m.name != "c")
        .map(|m| (m.name.clone(), m.incarnation, m.state))
        .collect();
    assert_eq!(
        before, after,
        "garbage changed a's view of the members it had"
    );
    for mesh in [&a, &b, &c] {
        assert!(
            mesh.members().iter().all(|m| m.state == MemberState::Alive),
            "{}: {:?}",
            mesh.name(),
            mesh.members()
        );
    }
    for mesh in [a, b, c] {
        mesh.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_injected_loss_cuts_a_node_off_and_removing_it_heals() {
    let a = start("a", vec![]).await;
    let b = start("b", vec![a.local_addr()]).await;
    let c = start("c", vec![a.local_addr()]).await;
    eventually("all three agree", || {
        [&a, &b, &c].iter().all(|m| alive_count(m) == 3)
    })
    .await;
    c.set_loss(1.0);
    let took = eventually("a and b mark c failed", || {
        [&a, &b].iter().all(|m| {
            m.members()
                .iter()
                .any(|x| x.name == "c" && x.state == MemberState::Dead)
        })
    })
    .await;
    println!("c cut off by 100% outgoing loss: marked failed after {took:?}");
    assert!(c.transport_stats().udp_packets_dropped > 0);
    c.set_loss(0.0);
    let took = eventually("c is back alive everywhere", || {
        [&a, &b, &c].iter().all(|m| alive_count(m) == 3)
    })
    .await;
    println!("loss removed: everyone alive again after {took:?}");
    for mesh in [a, b, c] {
        mesh.shutdown().await;
    }
}
