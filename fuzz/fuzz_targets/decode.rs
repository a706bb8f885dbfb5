//! Fuzz target `decode`: arbitrary bytes into both decoders and into a node.
//!
//! Invariants checked: decoding never panics; whatever `decode_datagram` accepts holds
//! only datagram kinds that pass `Message::validate`; whatever `decode_stream` accepts may
//! travel on a stream and validates; a `Node` fed the bytes as a datagram or a stream
//! never panics, whatever it makes of them. Each input is also tried behind a valid
//! header, so the fuzzer reaches the message parser without first having to guess the
//! cluster id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muster::proto::{Node, NodeOptions, NodeSigner, SwimConfig, Time, Verifier};
use muster::wire::{self, ClusterId, Profile, Tags};

const CLUSTER: &str = "fuzz";

fn node() -> Node {
    let profile = Profile {
        name: "fuzzed".into(),
        addr: "10.0.0.1:7946".parse().expect("a literal address"),
        region: "eu".into(),
        zone: "eu-1".into(),
        tags: Tags::new(),
    };
    let options = NodeOptions {
        config: SwimConfig::lan(),
        profile,
        cluster: CLUSTER.into(),
        incarnation: 0,
        signer: std::sync::Arc::new(NodeSigner::from_seed([1; 32])),
        verifier: Verifier::new(),
        seed: 1,
        kv_epoch: 1,
        proven: false,
    };
    Node::new(options, Time::ZERO).expect("the lan preset is valid")
}

fn check_decoders(bytes: &[u8], cluster: ClusterId) {
    if let Ok(messages) = wire::decode_datagram(bytes) {
        assert!(!messages.is_empty());
        for (m, len) in &messages {
            assert!(!m.kind().is_stream(), "{:?} accepted in a datagram", m.kind());
            assert_eq!(m.validate(), Ok(()));
            assert!(*len > 0);
        }
    }
    if let Ok(m) = wire::decode_stream(bytes, cluster) {
        assert!(m.kind().allowed_on_stream(), "{:?} accepted on a stream", m.kind());
        assert_eq!(m.validate(), Ok(()));
    }
}

fuzz_target!(|data: &[u8]| {
    let cluster = ClusterId::from_name(CLUSTER);
    // Behind a valid datagram header, and behind a valid stream header.
    let mut datagram = Vec::with_capacity(wire::DATAGRAM_HEADER_LEN + data.len());
    datagram.push(wire::PROTOCOL_VERSION);
    datagram.extend_from_slice(data);
    let mut stream = Vec::with_capacity(wire::STREAM_HEADER_LEN + data.len());
    stream.push(wire::PROTOCOL_VERSION);
    stream.extend_from_slice(&cluster.0.to_le_bytes());
    stream.extend_from_slice(data);

    check_decoders(data, cluster);
    check_decoders(&datagram, cluster);
    check_decoders(&stream, cluster);

    let mut node = node();
    let from = "10.0.0.2:7946".parse().expect("a literal address");
    let at = Time::from_nanos(1_000_000);
    node.handle_datagram(at, from, data);
    node.handle_datagram(at, from, &datagram);
    node.handle_stream(at, from, &stream);
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
});
