//! Codec and core micro-benchmarks: encoding and decoding one full datagram, one
//! ping/ack exchange between two nodes through the sans-IO interface, and signing and
//! verifying a member's signed `Alive` (docs/protocol.md §15).
//!
//! Run with `cargo bench --bench codec` (add `-- --quick` for a fast look). The figures
//! are printed by criterion; nothing here asserts on time.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use muster::proto::{Channel, Command, Node, NodeOptions, NodeSigner, SwimConfig, Time, Verifier};
use muster::wire::{
    ClusterId, DatagramBuilder, Message, Name, Profile, Tags, decode_datagram, signed,
};

const CLUSTER: &str = "bench";
/// The LAN preset's datagram budget.
const BUDGET: usize = 1150;
/// Fill the benchmark datagram to about this many bytes.
const TARGET_LEN: usize = 1100;

fn profile(name: &str, addr: SocketAddr) -> Profile {
    Profile {
        name: name.into(),
        addr,
        region: "eu-west".into(),
        zone: "eu-west-1a".into(),
        tags: Tags::from_pairs([("role", "web"), ("version", "1.4.2")]).expect("small tags"),
    }
}

/// A probe ping followed by alternating alive and suspect updates, as many as keep the
/// datagram at or under [`TARGET_LEN`] bytes: what a busy node sends when it probes.
fn full_datagram_messages() -> Vec<Message> {
    let mut msgs = vec![Message::Ping {
        seq: 123_456,
        target: "node-0042.eu-west.example".into(),
    }];
    let mut d = DatagramBuilder::new(TARGET_LEN);
    d.push(&msgs[0]).expect("a ping encodes");
    for i in 0u16.. {
        let name: Name = format!("node-{i:04}.eu-west.example").into();
        let msg = if i % 2 == 0 {
            let addr = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 7946));
            let profile = profile(&name, addr);
            let signer = NodeSigner::from_seed([i as u8; 32]);
            let incarnation = u64::from(i);
            let statement =
                signed::alive_statement(ClusterId::from_name(CLUSTER), &profile, incarnation, 0);
            Message::Alive {
                profile,
                incarnation,
                health: 0,
                key: signer.key(),
                sig: signer.sign(&statement),
            }
        } else {
            Message::Suspect {
                name,
                incarnation: u64::from(i),
                from: "node-0001.eu-west.example".into(),
            }
        };
        if !d.push(&msg).expect("an update encodes") {
            break;
        }
        msgs.push(msg);
    }
    msgs
}

fn encode(msgs: &[Message]) -> Vec<u8> {
    let mut d = DatagramBuilder::new(BUDGET);
    for m in msgs {
        let fitted = d.push(m).expect("messages encode");
        debug_assert!(fitted);
    }
    d.finish()
}

fn codec(c: &mut Criterion) {
    let msgs = full_datagram_messages();
    let bytes = encode(&msgs);
    println!(
        "full datagram: {} messages, {} bytes",
        msgs.len(),
        bytes.len()
    );

    let mut g = c.benchmark_group("datagram");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode_full", |b| b.iter(|| encode(black_box(&msgs))));
    g.bench_function("decode_full", |b| {
        b.iter(|| decode_datagram(black_box(&bytes)).expect("decodes"))
    });
    g.finish();
}

/// Two nodes that know each other; `a` probes `b` once per probe interval.
struct Pair {
    a: Node,
    b: Node,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
}

impl Pair {
    fn new() -> Pair {
        let a_addr: SocketAddr = "10.0.0.1:7946".parse().expect("literal");
        let b_addr: SocketAddr = "10.0.0.2:7946".parse().expect("literal");
        let node = |name: &str, addr, seed| {
            let options = NodeOptions {
                config: SwimConfig::lan(),
                profile: profile(name, addr),
                cluster: CLUSTER.into(),
                incarnation: 0,
                signer: Arc::new(NodeSigner::from_seed([seed as u8; 32])),
                verifier: Verifier::new(),
                seed,
                kv_epoch: 1,
                proven: false,
            };
            Node::new(options, Time::ZERO).expect("lan preset is valid")
        };
        let mut pair = Pair {
            a: node("a", a_addr, 1),
            b: node("b", b_addr, 2),
            a_addr,
            b_addr,
        };
        // `a` joins through `b`: its Join stream to b, b's JoinReply back.
        pair.a
            .handle_command(
                Time::ZERO,
                Command::Join {
                    seeds: vec![b_addr],
                },
            )
            .expect("join");
        while let Some(t) = pair.a.poll_transmit() {
            pair.b.handle_stream(Time::ZERO, a_addr, &t.payload);
        }
        while let Some(t) = pair.b.poll_transmit() {
            pair.a.handle_stream(Time::ZERO, b_addr, &t.payload);
        }
        assert_eq!(pair.a.members().live_count(), 2);
        assert_eq!(pair.b.members().live_count(), 2);
        pair
    }

    /// Runs `a`'s timers until it pings `b`; feeds the ping to `b` and `b`'s ack to `a`.
    /// Other datagrams `a` sends (gossip) go to `b` too; streams are dropped.
    fn probe_exchange(&mut self) {
        loop {
            let at = self.a.poll_timeout().expect("a running node has timers");
            self.a.handle_timeout(at);
            let mut answered = false;
            while let Some(t) = self.a.poll_transmit() {
                if t.channel != Channel::Datagram {
                    continue;
                }
                self.b.handle_datagram(at, self.a_addr, &t.payload);
                while let Some(r) = self.b.poll_transmit() {
                    self.a.handle_datagram(at, self.b_addr, &r.payload);
                    answered = true;
                }
            }
            while self.a.poll_event().is_some() {}
            while self.b.poll_event().is_some() {}
            if answered {
                return;
            }
        }
    }
}

fn exchange(c: &mut Criterion) {
    let mut pair = Pair::new();
    // Past the join gossip, into the steady state.
    for _ in 0..50 {
        pair.probe_exchange();
    }
    let probes = pair.a.stats().probes;
    c.bench_function("node/ping_ack_exchange", |b| {
        b.iter(|| pair.probe_exchange())
    });
    let s = pair.a.stats();
    assert_eq!(s.probes_failed, 0, "every probe was acked");
    println!(
        "probes run: {}, failed: {}",
        s.probes - probes,
        s.probes_failed
    );
}

/// What a signed record costs: the statement's encoding and signature, the check every
/// receiver makes before believing it (once per record that changes what it holds).
fn signatures(c: &mut Criterion) {
    let cluster = ClusterId::from_name(CLUSTER);
    let p = profile(
        "node-0042.eu-west.example",
        "10.0.0.42:7946".parse().expect("literal"),
    );
    let signer = NodeSigner::from_seed([42; 32]);
    let statement = signed::alive_statement(cluster, &p, 7, 0);
    let sig = signer.sign(&statement);
    let verifier = Verifier::new();
    println!("alive statement: {} bytes", statement.len());
    let mut g = c.benchmark_group("signed_record");
    g.bench_function("encode_alive_statement", |b| {
        b.iter(|| signed::alive_statement(cluster, black_box(&p), 7, 0))
    });
    g.bench_function("sign_alive", |b| {
        b.iter(|| signer.sign(&signed::alive_statement(cluster, black_box(&p), 7, 0)))
    });
    g.bench_function("verify_alive", |b| {
        b.iter(|| {
            let statement = signed::alive_statement(cluster, black_box(&p), 7, 0);
            assert!(verifier.verify(&signer.key(), &statement, black_box(&sig)));
        })
    });
    g.finish();
}

criterion_group!(benches, codec, exchange, signatures);
criterion_main!(benches);
