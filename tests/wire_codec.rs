//! Property tests of the wire codec: every message round-trips on its channel, packed
//! datagrams decode in order, and no input (random, corrupted, truncated, over-size, from
//! another cluster or version) makes the decoder panic or accept what it should refuse.
//!
//! The strategies cover every `Message` variant with names up to [`MAX_NAME_LEN`] bytes
//! (ASCII and multi-byte), tags up to [`MAX_TAGS_LEN`], and IPv4 and IPv6 addresses.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use muster::wire::{
    ClusterId, DATAGRAM_HEADER_LEN, DatagramBuilder, DecodeError, MAX_DATAGRAM_LEN, MAX_NAME_LEN,
    MAX_STREAM_LEN, MAX_TAGS_LEN, MemberRecord, MemberState, Message, Name, NodeKey,
    PROTOCOL_VERSION, Profile, STREAM_HEADER_LEN, Signature, SyncPhase, Tags, decode_datagram,
    decode_stream, encode_message, encode_stream,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ----- strategies -------------------------------------------------------------------

const CLUSTER: ClusterId = ClusterId(0x6d75_7374);

/// Names of 0..=128 bytes: ASCII up to the limit, or up to 32 characters of any width.
fn name() -> impl Strategy<Value = Name> {
    prop_oneof!["[a-z0-9.-]{0,128}", "\\PC{0,32}", "[a-z]{128}",].prop_map(Name::from)
}

/// Member names: as [`name`], but never empty.
fn member_name() -> impl Strategy<Value = Name> {
    prop_oneof!["[a-z0-9.-]{1,128}", "\\PC{1,32}", "[a-z]{128}"].prop_map(Name::from)
}

/// Tag sets within [`MAX_TAGS_LEN`], including one exactly at the limit.
fn tags() -> impl Strategy<Value = Tags> {
    let at_limit =
        Tags::from_pairs([("k", "v".repeat(MAX_TAGS_LEN - 1))]).expect("exactly at the limit");
    prop_oneof![
        4 => prop::collection::vec(("[a-z_]{1,16}", "\\PC{0,24}"), 0..8)
            .prop_filter_map("over the tag limit", |pairs| Tags::from_pairs(pairs).ok()),
        1 => Just(at_limit),
    ]
}

/// IPv4 and IPv6 socket addresses. IPv6 flow info and scope id are zero: serde's compact
/// form of `SocketAddrV6` carries only address and port.
fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<u128>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            0,
            0
        ))),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    (member_name(), addr(), name(), name(), tags()).prop_map(|(name, addr, region, zone, tags)| {
        Profile {
            name,
            addr,
            region,
            zone,
            tags,
        }
    })
}

fn member_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left),
    ]
}

fn sync_phase() -> impl Strategy<Value = SyncPhase> {
    prop_oneof![
        Just(SyncPhase::Offer),
        Just(SyncPhase::Reply),
        Just(SyncPhase::Final),
        Just(SyncPhase::JoinReply),
    ]
}

/// A signature-shaped value (the codec does not verify; the core does).
fn sig_of(seed: [u8; 32]) -> Signature {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&seed);
    sig[32..].copy_from_slice(&seed);
    sig[63] ^= 0x5a;
    Signature(sig)
}

fn record() -> impl Strategy<Value = MemberRecord> {
    (
        profile(),
        any::<u64>(),
        member_state(),
        any::<u8>(),
        any::<[u8; 32]>(),
        any::<bool>(),
    )
        .prop_map(
            |(profile, incarnation, state, health, key, left)| MemberRecord {
                profile,
                incarnation,
                state,
                health,
                kv: Default::default(),
                key: NodeKey(key),
                sig: sig_of(key),
                leave_sig: left.then(|| sig_of(key)),
            },
        )
}

/// Every message that travels in a datagram.
fn datagram_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), name()).prop_map(|(seq, target)| Message::Ping { seq, target }),
        any::<u32>().prop_map(|seq| Message::Ack { seq }),
        (any::<u32>(), name(), addr()).prop_map(|(seq, target, target_addr)| Message::PingReq {
            seq,
            target,
            target_addr
        }),
        any::<u32>().prop_map(|seq| Message::Nack { seq }),
        (profile(), any::<u64>(), any::<u8>(), any::<[u8; 32]>()).prop_map(
            |(profile, incarnation, health, key)| {
                Message::Alive {
                    profile,
                    incarnation,
                    health,
                    key: NodeKey(key),
                    sig: sig_of(key),
                }
            }
        ),
        (name(), any::<u64>(), name()).prop_map(|(name, incarnation, from)| Message::Suspect {
            name,
            incarnation,
            from
        }),
        (name(), any::<u64>(), name()).prop_map(|(name, incarnation, from)| Message::Dead {
            name,
            incarnation,
            from
        }),
        (name(), any::<u64>(), any::<Option<[u8; 32]>>()).prop_map(|(name, incarnation, sig)| {
            Message::Leave {
                name,
                incarnation,
                sig: sig.map(sig_of),
            }
        }),
    ]
}

/// Every message that travels on a stream.
fn stream_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        prop::collection::vec(record(), 0..12).prop_map(|members| Message::Join { members }),
        (
            sync_phase(),
            any::<u64>(),
            prop::collection::vec(record(), 0..12)
        )
            .prop_map(|(phase, digest, members)| Message::PushPull {
                phase,
                digest,
                members
            }),
    ]
}

/// One datagram holding `msgs`, with room for any of them.
fn pack(msgs: &[Message]) -> Vec<u8> {
    let mut d = DatagramBuilder::new(MAX_DATAGRAM_LEN);
    for m in msgs {
        assert!(
            d.push(m).expect("messages encode"),
            "test datagram over the limit"
        );
    }
    d.finish()
}

fn encoded_len(msg: &Message) -> usize {
    let mut buf = Vec::new();
    encode_message(msg, &mut buf).expect("messages encode")
}

/// Whatever the decoder accepts must be well-formed for its channel.
fn check_accepted_datagram(decoded: &[(Message, usize)]) {
    assert!(!decoded.is_empty());
    for (m, len) in decoded {
        assert!(
            !m.kind().is_stream(),
            "{:?} accepted in a datagram",
            m.kind()
        );
        assert_eq!(m.validate(), Ok(()));
        assert!(*len > 0);
    }
}

// ----- round trips ------------------------------------------------------------------

proptest! {
    #[test]
    fn datagram_message_round_trips(msg in datagram_message()) {
        let bytes = pack(std::slice::from_ref(&msg));
        prop_assert!(bytes.len() <= MAX_DATAGRAM_LEN);
        let decoded = decode_datagram(&bytes).expect("a valid datagram decodes");
        prop_assert_eq!(decoded, vec![(msg.clone(), bytes.len() - DATAGRAM_HEADER_LEN)]);
        prop_assert_eq!(encoded_len(&msg), bytes.len() - DATAGRAM_HEADER_LEN);
        prop_assert_eq!(bytes[0], PROTOCOL_VERSION);
    }

    #[test]
    fn stream_message_round_trips(msg in stream_message()) {
        let bytes = encode_stream(&msg, CLUSTER).expect("a stream message encodes");
        prop_assert_eq!(&bytes[..STREAM_HEADER_LEN], &header(PROTOCOL_VERSION, CLUSTER)[..]);
        prop_assert_eq!(decode_stream(&bytes, CLUSTER), Ok(msg));
    }

    #[test]
    fn packed_datagram_decodes_in_order(msgs in prop::collection::vec(datagram_message(), 1..8)) {
        let bytes = pack(&msgs);
        let decoded = decode_datagram(&bytes).expect("a valid datagram decodes");
        let lens: Vec<usize> = msgs.iter().map(encoded_len).collect();
        prop_assert_eq!(decoded.iter().map(|(_, len)| *len).collect::<Vec<_>>(), lens);
        prop_assert_eq!(decoded.into_iter().map(|(m, _)| m).collect::<Vec<_>>(), msgs);
    }
}

/// A stream header.
fn header(version: u8, cluster: ClusterId) -> [u8; STREAM_HEADER_LEN] {
    let id = cluster.0.to_le_bytes();
    [version, id[0], id[1], id[2], id[3]]
}

// ----- hostile input ----------------------------------------------------------------

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(decoded) = decode_datagram(&bytes) {
            check_accepted_datagram(&decoded);
        }
        if let Ok(m) = decode_stream(&bytes, CLUSTER) {
            prop_assert!(m.kind().allowed_on_stream());
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = vec![PROTOCOL_VERSION];
        bytes.extend_from_slice(&body);
        if let Ok(decoded) = decode_datagram(&bytes) {
            check_accepted_datagram(&decoded);
        }
        let mut bytes = header(PROTOCOL_VERSION, CLUSTER).to_vec();
        bytes.extend_from_slice(&body);
        if let Ok(decoded) = decode_datagram(&bytes) {
            check_accepted_datagram(&decoded);
        }
        if let Ok(m) = decode_stream(&bytes, CLUSTER) {
            prop_assert!(m.kind().allowed_on_stream());
            prop_assert_eq!(m.validate(), Ok(()));
        }
    }

    /// Random overwrites of a valid encoding reach deeper into the parser than noise does.
    #[test]
    fn corrupted_messages_never_panic(
        msgs in prop::collection::vec(datagram_message(), 1..4),
        stream in stream_message(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..8),
    ) {
        let mut d = pack(&msgs);
        let mut s = encode_stream(&stream, CLUSTER).expect("a stream message encodes");
        for (at, byte) in &edits {
            // Keep the header intact so the body gets parsed.
            let i = DATAGRAM_HEADER_LEN + at.index(d.len() - DATAGRAM_HEADER_LEN);
            d[i] = *byte;
            let j = STREAM_HEADER_LEN + at.index(s.len() - STREAM_HEADER_LEN);
            s[j] = *byte;
        }
        if let Ok(decoded) = decode_datagram(&d) {
            check_accepted_datagram(&decoded);
        }
        if let Ok(m) = decode_stream(&s, CLUSTER) {
            prop_assert!(m.kind().allowed_on_stream());
            prop_assert_eq!(m.validate(), Ok(()));
        }
    }

    /// A datagram cut anywhere is refused, except exactly between two messages, where what
    /// is left is itself a valid datagram of the leading messages.
    #[test]
    fn truncated_datagram_is_refused(msgs in prop::collection::vec(datagram_message(), 1..5), cut in any::<Index>()) {
        let bytes = pack(&msgs);
        let at = cut.index(bytes.len()); // 0..len: always shorter than the datagram
        let mut boundaries = vec![DATAGRAM_HEADER_LEN];
        for m in &msgs {
            boundaries.push(boundaries.last().copied().unwrap_or_default() + encoded_len(m));
        }
        let result = decode_datagram(&bytes[..at]);
        match boundaries.iter().position(|&b| b == at) {
            Some(k) if k > 0 => {
                let leading: Vec<Message> = result.expect("a cut between messages").into_iter().map(|(m, _)| m).collect();
                prop_assert_eq!(&leading[..], &msgs[..k]);
            }
            _ => prop_assert!(result.is_err(), "cut at {} of {} accepted", at, bytes.len()),
        }
    }

    #[test]
    fn truncated_single_message_datagram_is_always_refused(msg in datagram_message(), cut in any::<Index>()) {
        let bytes = pack(std::slice::from_ref(&msg));
        let at = cut.index(bytes.len());
        prop_assert!(decode_datagram(&bytes[..at]).is_err());
    }

    #[test]
    fn truncated_stream_is_refused(msg in stream_message(), cut in any::<Index>()) {
        let bytes = encode_stream(&msg, CLUSTER).expect("a stream message encodes");
        let at = cut.index(bytes.len());
        prop_assert!(decode_stream(&bytes[..at], CLUSTER).is_err());
    }

    #[test]
    fn stream_message_in_a_datagram_is_wrong_channel(msg in stream_message()) {
        let mut d = DatagramBuilder::new(MAX_DATAGRAM_LEN);
        prop_assume!(d.push(&msg).expect("a stream message encodes"));
        prop_assert_eq!(decode_datagram(&d.finish()), Err(DecodeError::WrongChannel { kind: msg.kind() }));
    }

    /// Only `Ping` and `Ack` (the reliable fallback probe) may also travel on a stream.
    #[test]
    fn datagram_message_on_a_stream_is_wrong_channel(msg in datagram_message()) {
        let bytes = encode_stream(&msg, CLUSTER).expect("a message encodes");
        let kind = msg.kind();
        let want = if kind.allowed_on_stream() { Ok(msg) } else { Err(DecodeError::WrongChannel { kind }) };
        prop_assert_eq!(decode_stream(&bytes, CLUSTER), want);
    }

    #[test]
    fn foreign_cluster_id_is_refused_on_streams(ours in any::<u32>(), theirs in any::<u32>(), stream in stream_message()) {
        prop_assume!(ours != theirs);
        let (ours, theirs) = (ClusterId(ours), ClusterId(theirs));
        let want = DecodeError::ForeignCluster { found: theirs.0 };
        let bytes = encode_stream(&stream, theirs).expect("a stream message encodes");
        prop_assert_eq!(decode_stream(&bytes, ours).unwrap_err(), want);
    }

    #[test]
    fn unknown_version_is_refused(version in any::<u8>(), msg in datagram_message(), stream in stream_message()) {
        prop_assume!(version != PROTOCOL_VERSION);
        let want = DecodeError::UnknownVersion { found: version };
        let mut d = pack(&[msg]);
        d[0] = version;
        prop_assert_eq!(decode_datagram(&d).unwrap_err(), want.clone());
        let mut s = encode_stream(&stream, CLUSTER).expect("a stream message encodes");
        s[0] = version;
        prop_assert_eq!(decode_stream(&s, CLUSTER).unwrap_err(), want);
    }
}

#[test]
fn over_size_input_is_refused_before_parsing() {
    let mut d = vec![PROTOCOL_VERSION];
    d.resize(MAX_DATAGRAM_LEN + 1, 0);
    assert_eq!(
        decode_datagram(&d),
        Err(DecodeError::Oversized {
            len: MAX_DATAGRAM_LEN + 1,
            max: MAX_DATAGRAM_LEN
        })
    );
    let mut s = header(PROTOCOL_VERSION, CLUSTER).to_vec();
    s.resize(MAX_STREAM_LEN + 1, 0);
    assert_eq!(
        decode_stream(&s, CLUSTER),
        Err(DecodeError::Oversized {
            len: MAX_STREAM_LEN + 1,
            max: MAX_STREAM_LEN
        })
    );
}

#[test]
fn header_alone_or_less_is_truncated() {
    let h = header(PROTOCOL_VERSION, CLUSTER);
    for len in 0..=DATAGRAM_HEADER_LEN {
        assert_eq!(
            decode_datagram(&h[..len]),
            Err(DecodeError::Truncated { len })
        );
    }
    for len in 0..STREAM_HEADER_LEN {
        assert_eq!(
            decode_stream(&h[..len], CLUSTER),
            Err(DecodeError::Truncated { len })
        );
    }
    assert!(matches!(
        decode_stream(&h, CLUSTER),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn names_and_tags_over_their_bounds_are_invalid() {
    let long = Name::from("x".repeat(MAX_NAME_LEN + 1));
    let ok = Name::from("x".repeat(MAX_NAME_LEN));
    let addr: SocketAddr = "10.0.0.1:7946".parse().unwrap();
    let profile = |name: Name| Profile {
        name,
        addr,
        region: "eu".into(),
        zone: "eu-1".into(),
        tags: Tags::new(),
    };
    let refused = [
        Message::Ping {
            seq: 1,
            target: long.clone(),
        },
        Message::Suspect {
            name: ok.clone(),
            incarnation: 1,
            from: long.clone(),
        },
        Message::Alive {
            profile: profile(long.clone()),
            incarnation: 1,
            health: 0,
            key: NodeKey([3; 32]),
            sig: sig_of([3; 32]),
        },
        Message::Alive {
            profile: profile(Name::default()),
            incarnation: 1,
            health: 0,
            key: NodeKey([3; 32]),
            sig: sig_of([3; 32]),
        },
        Message::Alive {
            profile: Profile {
                region: long.clone(),
                ..profile(ok.clone())
            },
            incarnation: 1,
            health: 0,
            key: NodeKey([3; 32]),
            sig: sig_of([3; 32]),
        },
    ];
    for msg in &refused {
        assert!(
            matches!(
                decode_datagram(&pack(std::slice::from_ref(msg))),
                Err(DecodeError::Invalid { .. })
            ),
            "{msg:?}"
        );
    }
    let join = Message::Join {
        members: vec![MemberRecord {
            profile: profile(long),
            incarnation: 0,
            state: MemberState::Alive,
            health: 0,
            kv: Default::default(),
            key: NodeKey([3; 32]),
            sig: sig_of([3; 32]),
            leave_sig: None,
        }],
    };
    let bytes = encode_stream(&join, CLUSTER).unwrap();
    assert!(matches!(
        decode_stream(&bytes, CLUSTER),
        Err(DecodeError::Invalid { .. })
    ));
    // At the bound exactly, all is well.
    let fine = Message::Alive {
        profile: profile(ok),
        incarnation: 1,
        health: 0,
        key: NodeKey([3; 32]),
        sig: sig_of([3; 32]),
    };
    assert!(decode_datagram(&pack(std::slice::from_ref(&fine))).is_ok());
}

#[test]
fn bytes_after_a_stream_message_are_refused() {
    let msg = Message::PushPull {
        phase: SyncPhase::Offer,
        digest: 7,
        members: Vec::new(),
    };
    let mut bytes = encode_stream(&msg, CLUSTER).unwrap();
    bytes.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        decode_stream(&bytes, CLUSTER),
        Err(DecodeError::TrailingBytes { extra: 3 })
    );
}

// ----- the datagram builder ---------------------------------------------------------

/// A spread of message sizes, from a two-byte ack to an alive with full tags.
fn sample_messages() -> Vec<Message> {
    let addr: SocketAddr = "[2001:db8::7]:7946".parse().unwrap();
    let big_tags = Tags::from_pairs([("k", "v".repeat(MAX_TAGS_LEN - 1))]).unwrap();
    let long = Name::from("n".repeat(MAX_NAME_LEN));
    let profile = Profile {
        name: long.clone(),
        addr,
        region: long.clone(),
        zone: long.clone(),
        tags: big_tags,
    };
    vec![
        Message::Ack { seq: 1 },
        Message::Ping {
            seq: 70_000,
            target: "node-17".into(),
        },
        Message::Suspect {
            name: "node-3".into(),
            incarnation: 4,
            from: "node-9".into(),
        },
        Message::Alive {
            profile,
            incarnation: 1 << 30,
            health: 0,
            key: NodeKey([3; 32]),
            sig: sig_of([3; 32]),
        },
        Message::Nack { seq: u32::MAX },
        Message::PingReq {
            seq: 5,
            target: long.clone(),
            target_addr: addr,
        },
        Message::Dead {
            name: long.clone(),
            incarnation: 2,
            from: "x".into(),
        },
        Message::Leave {
            name: "node-44".into(),
            incarnation: 12,
            sig: Some(sig_of([4; 32])),
        },
    ]
}

#[test]
fn full_datagram_builder_never_exceeds_its_budget() {
    let samples = sample_messages();
    let encoded: Vec<Vec<u8>> = samples
        .iter()
        .map(|m| {
            let mut b = Vec::new();
            encode_message(m, &mut b).unwrap();
            b
        })
        .collect();
    // The header is written unconditionally, so budgets start at its length.
    for budget in [
        DATAGRAM_HEADER_LEN,
        DATAGRAM_HEADER_LEN + 1,
        7,
        20,
        64,
        512,
        1000,
        1150,
        1400,
        4096,
        MAX_DATAGRAM_LEN,
    ] {
        for offset in 0..samples.len() {
            let mut d = DatagramBuilder::new(budget);
            let mut e = DatagramBuilder::new(budget);
            let (mut pushed, mut refusals) = (Vec::new(), 0);
            for i in 0..2000 {
                let k = (i * 3 + offset) % samples.len();
                let before = d.remaining();
                if d.push(&samples[k]).unwrap() {
                    assert_eq!(before - d.remaining(), encoded[k].len());
                    pushed.push(samples[k].clone());
                } else {
                    assert_eq!(d.remaining(), before, "a refused push changes nothing");
                    refusals += 1;
                }
                assert_eq!(e.push_encoded(&encoded[k]), before >= encoded[k].len());
                if refusals > 50 {
                    break;
                }
            }
            let (bytes, other) = (d.finish(), e.finish());
            assert!(
                bytes.len() <= budget,
                "budget {budget}: {} bytes",
                bytes.len()
            );
            assert!(
                other.len() <= budget,
                "budget {budget}: {} bytes (pre-encoded)",
                other.len()
            );
            assert_eq!(bytes, other, "push and push_encoded pack the same bytes");
            if pushed.is_empty() {
                assert_eq!(bytes.len(), DATAGRAM_HEADER_LEN);
            } else {
                let decoded: Vec<Message> = decode_datagram(&bytes)
                    .unwrap()
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect();
                assert_eq!(decoded, pushed);
            }
        }
    }
}
