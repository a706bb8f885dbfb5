//! Membership-table micro-benchmarks at 10,000 members: looking a member up by name,
//! inserting records, and a node merging a push-pull of 10,000 records (all new, and all
//! already known: the anti-entropy case), through the sans-IO interface (decode
//! included).
//!
//! Run with `cargo bench --bench table` (add `-- --quick` for a fast look). The figures
//! are printed by criterion; nothing here asserts on time.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use muster::proto::member::Proof;
use muster::proto::rng::node_rng;
use muster::proto::{MemberTable, Node, NodeOptions, NodeSigner, SwimConfig, Time, Verifier};
use muster::wire::{
    ClusterId, MemberRecord, MemberState, Message, Profile, Signature, SyncPhase, Tags,
    encode_stream,
};

const CLUSTER: &str = "bench";
const MEMBERS: usize = 10_000;

fn profile(i: usize) -> Profile {
    Profile {
        name: format!("node-{i:05}.eu-west.example").into(),
        addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7946)),
        region: ["eu-west", "us-east", "ap-south"][i % 3].into(),
        zone: format!("zone-{}", i % 4).into(),
        tags: Tags::from_pairs([("role", "web"), ("version", "1.4.2")]).expect("small tags"),
    }
}

fn table() -> MemberTable {
    let mut t = MemberTable::new();
    let mut rng = node_rng(7);
    t.reserve(MEMBERS);
    let signer = NodeSigner::from_seed([9; 32]);
    for i in 0..MEMBERS {
        let proof = Arc::new(Proof {
            key: signer.key(),
            sig: Signature::UNSIGNED,
            leave_sig: None,
        });
        t.insert(
            profile(i),
            1,
            MemberState::Alive,
            proof,
            Time::ZERO,
            &mut rng,
        );
    }
    t
}

fn table_ops(c: &mut Criterion) {
    let t = table();
    let names: Vec<String> = (0..MEMBERS).map(|i| profile(i).name.to_string()).collect();
    let mut g = c.benchmark_group("table_10k");
    let mut i = 0;
    g.bench_function("lookup_by_name", |b| {
        b.iter(|| {
            i = (i + 7919) % MEMBERS;
            black_box(t.get(&names[i]))
        })
    });
    g.bench_function("lookup_missing", |b| {
        b.iter(|| black_box(t.get("no-such-node")))
    });
    g.throughput(Throughput::Elements(MEMBERS as u64));
    g.bench_function("insert_10k", |b| b.iter(|| black_box(table())));
    g.finish();
}

fn node(name: &str) -> Node {
    let options = NodeOptions {
        config: SwimConfig::lan(),
        profile: Profile {
            name: name.into(),
            addr: "10.255.255.1:7946".parse().expect("literal"),
            region: "eu-west".into(),
            zone: "zone-0".into(),
            tags: Tags::new(),
        },
        cluster: CLUSTER.into(),
        incarnation: 0,
        signer: Arc::new(NodeSigner::from_seed([1; 32])),
        verifier: Verifier::new(),
        seed: 1,
        kv_epoch: 1,
        proven: false,
    };
    Node::new(options, Time::ZERO).expect("lan preset is valid")
}

/// A push-pull `Final` leg carrying every record (merged, never answered).
fn push_pull(records: &[MemberRecord]) -> Vec<u8> {
    let msg = Message::PushPull {
        phase: SyncPhase::Final,
        digest: 0,
        members: records.to_vec(),
    };
    encode_stream(&msg, ClusterId::from_name(CLUSTER)).expect("fits a stream")
}

fn merges(c: &mut Criterion) {
    // Every member signs its own record (a merge of new members verifies each).
    let cluster = ClusterId::from_name(CLUSTER);
    let records: Vec<MemberRecord> = (0..MEMBERS)
        .map(|i| NodeSigner::from_seed([(i % 251) as u8; 32]).record(cluster, profile(i), 1, 0))
        .collect();
    let bytes = push_pull(&records);
    let from: SocketAddr = "10.0.0.1:7946".parse().expect("literal");
    println!("push-pull of {MEMBERS} records: {} bytes", bytes.len());
    let mut g = c.benchmark_group("push_pull_10k");
    g.throughput(Throughput::Elements(MEMBERS as u64));
    g.sample_size(20);
    g.bench_function("merge_all_new", |b| {
        b.iter_batched(
            || node("merger"),
            |mut n| {
                n.handle_stream(Time::ZERO, from, &bytes);
                assert_eq!(n.members().len(), MEMBERS + 1);
                n
            },
            BatchSize::LargeInput,
        )
    });
    let mut known = node("merger");
    known.handle_stream(Time::ZERO, from, &bytes);
    while known.poll_transmit().is_some() {}
    while known.poll_event().is_some() {}
    g.bench_function("merge_all_known", |b| {
        b.iter(|| {
            known.handle_stream(Time::ZERO, from, &bytes);
            while known.poll_transmit().is_some() {}
            while known.poll_event().is_some() {}
        })
    });
    g.finish();
}

criterion_group!(benches, table_ops, merges);
criterion_main!(benches);
