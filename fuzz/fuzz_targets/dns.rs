//! Fuzz target `dns`: a query to the DNS interface's pure `dns::respond`, over UDP and
//! over TCP, with a fixed zone of a few members and services (one too big for a UDP
//! answer); and the same bytes to `dns::message::retry_over_tcp`, the rate limiter's
//! answer.
//!
//! The input is either raw bytes or a query built from arbitrary parts (names from the
//! zone's own labels, any type and class, EDNS or not, a few bytes flipped after
//! encoding), so the fuzzer reaches every row of `respond`'s table, not only FORMERR.
//!
//! Invariants checked (the module doc of `src/dns/message.rs`):
//! - no panic;
//! - no answer exactly when the message is shorter than 3 bytes or is a response (QR);
//! - an answer is a well-formed response with the query's id, whose rcode and TC bit are
//!   the ones `Reply` reports;
//! - over UDP it fits the client's EDNS buffer size clamped to 512..=`MAX_UDP_PAYLOAD`
//!   (1,232), or 512 bytes without EDNS; over TCP, 65,535; a message that does not parse
//!   gets a 12-byte header;
//! - the rate limiter's TC answer is never longer than the query.

#![no_main]

use std::collections::BTreeMap;
use std::net::IpAddr;

use arbitrary::Arbitrary;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use libfuzzer_sys::fuzz_target;
use muster::dns::message::retry_over_tcp;
use muster::dns::records::Endpoint;
use muster::dns::{Authority, MAX_UDP_PAYLOAD, Transport, ZoneData, respond};

/// Labels the zone answers for, and the words of its names.
const LABELS: [&str; 19] = [
    "web", "idle", "big", "mid", "eu-a", "us-a", "EU-A", "service", "node", "eu", "us",
    "muster", "MUSTER", "*", "-", "xn--nxasmq6b", "primary", "_web", "_tcp",
];

/// A zone that never changes (as in `src/dns/message/tests.rs`).
struct Fixed {
    services: BTreeMap<String, Vec<Endpoint>>,
    nodes: BTreeMap<String, IpAddr>,
    regions: Vec<String>,
}

impl ZoneData for Fixed {
    fn service(&self, service: &str, region: Option<&str>) -> Option<Vec<Endpoint>> {
        if region.is_some_and(|r| !self.has_region(r)) {
            return None;
        }
        let all = self.services.get(service)?;
        let region_of = |e: &Endpoint| if e.address.is_ipv6() { "us" } else { "eu" };
        Some(
            all.iter()
                .filter(|e| region.is_none_or(|r| region_of(e) == r))
                .cloned()
                .collect(),
        )
    }

    /// `web` is in primary mode, its first endpoint the primary; `idle` is too, with no
    /// primary now; the others are not.
    fn primary(&self, service: &str) -> Option<Vec<Endpoint>> {
        match service {
            "web" | "idle" => Some(self.services.get(service)?.iter().take(1).cloned().collect()),
            _ => None,
        }
    }

    fn node(&self, node: &str) -> Option<IpAddr> {
        self.nodes.get(node).copied()
    }

    fn has_region(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }

    fn serial(&self) -> u32 {
        7
    }
}

fn endpoint(node: &str, address: &str, priority: u16) -> Endpoint {
    Endpoint {
        node: node.into(),
        address: address.parse().expect("a literal address"),
        port: 8080,
        weight: 2,
        priority,
    }
}

fn zone() -> Fixed {
    // Long node names make the SRV answer's additional section large.
    let many: Vec<Endpoint> = (0..60)
        .map(|i| {
            endpoint(
                &format!("node-{i:02}-{}", "x".repeat(40)),
                &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                1 + i as u16 / 20,
            )
        })
        .collect();
    Fixed {
        services: [
            (
                "web".to_string(),
                vec![
                    endpoint("eu-a", "127.0.0.2", 1),
                    endpoint("eu-b", "127.0.0.3", 2),
                    endpoint("us-a", "::1", 3),
                    endpoint("eu-c", "127.0.0.2", 3),
                ],
            ),
            ("idle".to_string(), Vec::new()),
            ("mid".to_string(), many[..20].to_vec()),
            ("big".to_string(), many),
        ]
        .into(),
        nodes: [
            ("eu-a".to_string(), "127.0.0.2".parse().expect("literal")),
            ("us-a".to_string(), "::1".parse().expect("literal")),
        ]
        .into(),
        regions: vec!["eu".into(), "us".into()],
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Query(QueryArg),
}

#[derive(Arbitrary, Debug)]
struct QueryArg {
    id: u16,
    op_code: u8,
    recursion_desired: bool,
    checking_disabled: bool,
    questions: Vec<QuestionArg>,
    edns: Option<EdnsArg>,
    /// Bytes to flip after encoding: (position, xor mask).
    flips: Vec<(u16, u8)>,
    /// Cut the encoded message to this length (mod its length + 1).
    cut: Option<u16>,
}

#[derive(Arbitrary, Debug)]
struct EdnsArg {
    max_payload: u16,
    version: u8,
    dnssec_ok: bool,
}

#[derive(Arbitrary, Debug)]
enum LabelArg {
    Pool(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum NameArg {
    Apex,
    Service {
        service: LabelArg,
        region: Option<LabelArg>,
    },
    Node(LabelArg),
    Labels(Vec<LabelArg>),
}

#[derive(Arbitrary, Debug)]
enum TypeArg {
    A,
    Aaaa,
    Srv,
    Soa,
    Any,
    Axfr,
    Other(u16),
}

#[derive(Arbitrary, Debug)]
struct QuestionArg {
    name: NameArg,
    qtype: TypeArg,
    /// IN unless given.
    class: Option<u16>,
}

fn label(arg: &LabelArg) -> String {
    match arg {
        LabelArg::Pool(i) => LABELS[usize::from(*i) % LABELS.len()].to_owned(),
        LabelArg::Raw(s) => s.clone(),
    }
}

fn name(arg: &NameArg) -> Option<Name> {
    let labels: Vec<String> = match arg {
        NameArg::Apex => vec!["muster".into()],
        NameArg::Service { service, region } => {
            let mut l = vec![label(service), "service".into()];
            l.extend(region.as_ref().map(label));
            l.push("muster".into());
            l
        }
        NameArg::Node(node) => vec![label(node), "node".into(), "muster".into()],
        NameArg::Labels(labels) => labels.iter().map(label).collect(),
    };
    let mut name = Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?;
    name.set_fqdn(true);
    Some(name)
}

fn query_bytes(arg: &QueryArg) -> Option<Vec<u8>> {
    let mut m = Message::new(arg.id, MessageType::Query, OpCode::from_u8(arg.op_code & 0x0f));
    m.metadata.recursion_desired = arg.recursion_desired;
    m.metadata.checking_disabled = arg.checking_disabled;
    for q in &arg.questions {
        let qtype = match q.qtype {
            TypeArg::A => RecordType::A,
            TypeArg::Aaaa => RecordType::AAAA,
            TypeArg::Srv => RecordType::SRV,
            TypeArg::Soa => RecordType::SOA,
            TypeArg::Any => RecordType::ANY,
            TypeArg::Axfr => RecordType::AXFR,
            TypeArg::Other(n) => RecordType::from(n),
        };
        let mut query = Query::query(name(&q.name)?, qtype);
        if let Some(class) = q.class {
            query.set_query_class(DNSClass::from(class));
        }
        m.add_query(query);
    }
    if let Some(e) = &arg.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(e.max_payload);
        edns.set_version(e.version);
        edns.set_dnssec_ok(e.dnssec_ok);
        m.set_edns(edns);
    }
    let mut bytes = m.to_vec().ok()?;
    for (at, mask) in &arg.flips {
        if !bytes.is_empty() {
            let i = usize::from(*at) % bytes.len();
            bytes[i] ^= mask;
        }
    }
    if let Some(cut) = arg.cut {
        bytes.truncate(usize::from(cut) % (bytes.len() + 1));
    }
    Some(bytes)
}

/// The most bytes `respond` may answer `packet` with over `transport`.
fn limit(packet: &[u8], transport: Transport) -> usize {
    match Message::from_vec(packet) {
        // FORMERR: the header alone.
        Err(_) => 12,
        Ok(_) if transport == Transport::Tcp => usize::from(u16::MAX),
        Ok(request) => match request.edns {
            Some(edns) => usize::from(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD)),
            None => 512,
        },
    }
}

fn check(packet: &[u8], zone: &Fixed, authority: &Authority) {
    for transport in [Transport::Udp, Transport::Tcp] {
        let reply = respond(packet, zone, authority, transport);
        let silent = packet.len() < 3 || packet[2] & 0x80 != 0;
        let Some(reply) = reply else {
            assert!(silent, "no answer to a query over {transport:?}");
            continue;
        };
        assert!(!silent, "an answer to a response or a fragment over {transport:?}");
        let most = limit(packet, transport);
        assert!(
            reply.bytes.len() <= most,
            "{} bytes over {transport:?}, over the limit of {most}",
            reply.bytes.len()
        );
        if transport == Transport::Udp {
            assert!(reply.bytes.len() <= usize::from(MAX_UDP_PAYLOAD));
        }
        let response = Message::from_vec(&reply.bytes)
            .unwrap_or_else(|e| panic!("the answer does not parse: {e}: {:?}", reply.bytes));
        assert_eq!(response.metadata.id, u16::from_be_bytes([packet[0], packet[1]]));
        assert_eq!(response.metadata.message_type, MessageType::Response);
        // By number: BADVERS and BADSIG share 16, and decoding picks BADSIG.
        assert_eq!(
            u16::from(response.metadata.response_code),
            u16::from(reply.rcode),
            "the rcode sent is not the one reported"
        );
        assert_eq!(response.metadata.truncation, reply.truncated);
    }
    if let Some(tc) = retry_over_tcp(packet) {
        assert!(tc.truncated);
        assert!(
            tc.bytes.len() <= packet.len(),
            "a TC answer of {} bytes to {} bytes",
            tc.bytes.len(),
            packet.len()
        );
    }
}

fuzz_target!(|input: Input| {
    let packet = match &input {
        Input::Raw(bytes) => bytes.clone(),
        Input::Query(q) => match query_bytes(q) {
            Some(bytes) => bytes,
            None => return,
        },
    };
    check(&packet, &zone(), &Authority::new("eu-a", 5));
});
