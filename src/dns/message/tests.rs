//! [`respond`] over a fixed zone: every row of the module doc's table, sizes, and
//! arbitrary bytes.

use std::collections::BTreeMap;

use hickory_proto::op::{MessageType, Query};
use hickory_proto::rr::RData;
use proptest::prelude::*;

use super::*;

/// A zone that never changes.
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
        let address_region = |e: &Endpoint| if e.address.is_ipv6() { "us" } else { "eu" };
        Some(
            all.iter()
                .filter(|e| region.is_none_or(|r| address_region(e) == r))
                .cloned()
                .collect(),
        )
    }

    /// `web` is in primary mode, its first endpoint the primary; `idle` is too, with no
    /// primary now; the others are not.
    fn primary(&self, service: &str) -> Option<Vec<Endpoint>> {
        match service {
            "web" | "idle" => Some(
                self.services
                    .get(service)?
                    .iter()
                    .take(1)
                    .cloned()
                    .collect(),
            ),
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
        address: address.parse().unwrap(),
        port: 8080,
        weight: 2,
        priority,
    }
}

fn zone() -> Fixed {
    let many: Vec<Endpoint> = (0..60)
        .map(|i| endpoint(&format!("node-{i:02}"), &format!("10.0.0.{}", i + 1), 1))
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
            ("eu-a".to_string(), "127.0.0.2".parse().unwrap()),
            ("us-a".to_string(), "::1".parse().unwrap()),
        ]
        .into(),
        regions: vec!["eu".into(), "us".into()],
    }
}

fn authority() -> Authority {
    Authority::new("eu-a", 5)
}

fn query_bytes(name: &str, qtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(edns) = edns {
        m.set_edns(edns);
    }
    m.to_vec().unwrap()
}

fn ask_bytes(bytes: &[u8], transport: Transport) -> (Message, Reply) {
    let reply = respond(bytes, &zone(), &authority(), transport).expect("an answer");
    let message = Message::from_vec(&reply.bytes).expect("a well-formed response");
    // By number: BADVERS and BADSIG share 16, and decoding picks BADSIG.
    assert_eq!(
        u16::from(message.metadata.response_code),
        u16::from(reply.rcode)
    );
    assert_eq!(message.metadata.truncation, reply.truncated);
    (message, reply)
}

fn ask(name: &str, qtype: RecordType) -> Message {
    ask_bytes(&query_bytes(name, qtype, None), Transport::Udp).0
}

fn shown(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.data.to_string()).collect()
}

fn is_negative(m: &Message, rcode: ResponseCode) {
    assert_eq!(m.metadata.response_code, rcode, "{m}");
    assert!(m.answers.is_empty(), "{m}");
    assert!(m.metadata.authoritative, "{m}");
    let [soa] = m.authorities.as_slice() else {
        panic!("one SOA in the authority section: {m}")
    };
    let RData::SOA(data) = &soa.data else {
        panic!("not an SOA: {soa}")
    };
    assert_eq!((soa.ttl, data.minimum, data.serial), (5, 5, 7));
    assert_eq!(data.mname.to_string(), "eu-a.node.muster.");
}

#[test]
fn a_lists_a_services_ipv4_addresses_in_order_once_each() {
    let m = ask("web.service.muster.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    assert!(!m.metadata.recursion_available);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(shown(&m.answers), ["127.0.0.2", "127.0.0.3"]);
    assert!(m.answers.iter().all(|r| r.ttl == 5));
    assert!(m.authorities.is_empty() && m.additionals.is_empty());
    let m = ask("web.service.muster.", RecordType::AAAA);
    assert_eq!(shown(&m.answers), ["::1"]);
}

#[test]
fn srv_gives_priority_weight_port_and_target_addresses() {
    let m = ask("web.service.muster.", RecordType::SRV);
    assert_eq!(
        shown(&m.answers),
        [
            "1 2 8080 eu-a.node.muster.",
            "2 2 8080 eu-b.node.muster.",
            "3 2 8080 us-a.node.muster.",
            "3 2 8080 eu-c.node.muster."
        ]
    );
    let extra: Vec<String> = m
        .additionals
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(
        extra,
        [
            "eu-a.node.muster. 127.0.0.2",
            "eu-b.node.muster. 127.0.0.3",
            "us-a.node.muster. ::1",
            "eu-c.node.muster. 127.0.0.2"
        ]
    );
}

#[test]
fn the_primary_name_answers_the_primary_alone() {
    let m = ask("primary.web.service.muster.", RecordType::A);
    assert_eq!(shown(&m.answers), ["127.0.0.2"]);
    let m = ask("Primary.WEB.service.muster.", RecordType::SRV);
    assert_eq!(shown(&m.answers), ["1 2 8080 eu-a.node.muster."]);
    assert_eq!(m.additionals.len(), 1, "{m}");
    // In primary mode with no primary now: the name exists, without records.
    is_negative(
        &ask("primary.idle.service.muster.", RecordType::A),
        ResponseCode::NoError,
    );
    // Not in primary mode, or no such service: no such name.
    is_negative(
        &ask("primary.big.service.muster.", RecordType::A),
        ResponseCode::NXDomain,
    );
    is_negative(
        &ask("primary.nope.service.muster.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn rfc_2782_names_answer_as_the_service_names_do() {
    let plain = ask("web.service.muster.", RecordType::SRV);
    let m = ask("_web._tcp.service.muster.", RecordType::SRV);
    assert_eq!(shown(&m.answers), shown(&plain.answers));
    assert_eq!(m.answers[0].name.to_string(), "_web._tcp.service.muster.");
    let m = ask("_web._tcp.service.us.muster.", RecordType::SRV);
    assert_eq!(shown(&m.answers), ["3 2 8080 us-a.node.muster."]);
    is_negative(
        &ask("_nope._tcp.service.muster.", RecordType::SRV),
        ResponseCode::NXDomain,
    );
}

#[test]
fn names_are_case_insensitive_and_the_question_is_echoed_as_sent() {
    let m = ask("WeB.SERVICE.Muster.", RecordType::A);
    assert_eq!(shown(&m.answers), ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(m.queries[0].name().to_string(), "WeB.SERVICE.Muster.");
    assert_eq!(m.answers[0].name.to_string(), "WeB.SERVICE.Muster.");
}

#[test]
fn region_scoped_names_restrict_and_unknown_regions_do_not_exist() {
    let m = ask("web.service.us.muster.", RecordType::AAAA);
    assert_eq!(shown(&m.answers), ["::1"]);
    let m = ask("web.service.us.muster.", RecordType::A);
    is_negative(&m, ResponseCode::NoError);
    is_negative(
        &ask("web.service.mars.muster.", RecordType::A),
        ResponseCode::NXDomain,
    );
    is_negative(
        &ask("service.us.muster.", RecordType::A),
        ResponseCode::NoError,
    );
    is_negative(
        &ask("service.mars.muster.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn node_names_answer_the_members_address() {
    assert_eq!(
        shown(&ask("EU-A.node.muster.", RecordType::A).answers),
        ["127.0.0.2"]
    );
    assert_eq!(
        shown(&ask("us-a.node.muster.", RecordType::AAAA).answers),
        ["::1"]
    );
    assert_eq!(
        shown(&ask("us-a.node.muster.", RecordType::ANY).answers),
        ["::1"]
    );
    is_negative(
        &ask("us-a.node.muster.", RecordType::A),
        ResponseCode::NoError,
    );
    is_negative(
        &ask("eu-z.node.muster.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn existing_names_without_the_type_are_nodata_and_others_nxdomain() {
    for (name, qtype) in [
        ("web.service.muster.", RecordType::TXT),
        ("web.service.muster.", RecordType::MX),
        ("idle.service.muster.", RecordType::A),
        ("idle.service.muster.", RecordType::SRV),
        ("service.muster.", RecordType::A),
        ("node.muster.", RecordType::SRV),
        ("muster.", RecordType::A),
        ("muster.", RecordType::NS),
    ] {
        is_negative(&ask(name, qtype), ResponseCode::NoError);
    }
    for name in [
        "nope.service.muster.",
        "web.service.eu.extra.muster.",
        "www.muster.",
        "a.b.c.muster.",
    ] {
        is_negative(&ask(name, RecordType::A), ResponseCode::NXDomain);
    }
}

#[test]
fn the_apex_answers_its_soa() {
    let m = ask("muster.", RecordType::SOA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let [soa] = m.answers.as_slice() else {
        panic!("one SOA: {m}")
    };
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert!(m.authorities.is_empty());
}

#[test]
fn names_outside_the_zone_and_other_classes_are_refused() {
    for name in ["example.com.", "muster.example.", "."] {
        let m = ask(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!m.metadata.authoritative && m.answers.is_empty() && m.authorities.is_empty());
    }
    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    let mut q = Query::query(
        Name::from_ascii("web.service.muster.").unwrap(),
        RecordType::A,
    );
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let (reply, _) = ask_bytes(&m.to_vec().unwrap(), Transport::Udp);
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    let m = ask("muster.", RecordType::AXFR);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn other_opcodes_and_question_counts_are_refused_by_code() {
    let mut m = Message::new(1, MessageType::Query, OpCode::Status);
    m.add_query(Query::query(
        Name::from_ascii("muster.").unwrap(),
        RecordType::SOA,
    ));
    let (reply, _) = ask_bytes(&m.to_vec().unwrap(), Transport::Udp);
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(reply.metadata.op_code, OpCode::Status);
    for n in [0, 2] {
        let mut m = Message::new(2, MessageType::Query, OpCode::Query);
        for _ in 0..n {
            m.add_query(Query::query(
                Name::from_ascii("muster.").unwrap(),
                RecordType::SOA,
            ));
        }
        let (reply, _) = ask_bytes(&m.to_vec().unwrap(), Transport::Udp);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "{n} questions"
        );
    }
}

/// Found by the `dns` fuzz target: a NOTIMP echoes every question, and 18 of them made
/// a 521-byte UDP answer to a query without EDNS.
#[test]
fn a_notimp_echoing_many_questions_still_fits_the_udp_limit() {
    let mut m = Message::new(3, MessageType::Query, OpCode::Unknown(11));
    // Distinct names, so that name compression cannot shrink them below the limit.
    for i in 0..18 {
        m.add_query(Query::query(
            Name::from_ascii(format!("web-{i:02}-{}.service.eu.muster.", "x".repeat(24))).unwrap(),
            RecordType::SOA,
        ));
    }
    let bytes = m.to_vec().unwrap();
    assert!(
        bytes.len() > 512,
        "the query alone is {} bytes",
        bytes.len()
    );
    let (udp, reply) = ask_bytes(&bytes, Transport::Udp);
    assert!(reply.bytes.len() <= 512, "{} bytes", reply.bytes.len());
    assert_eq!(udp.metadata.response_code, ResponseCode::NotImp);
    assert!(udp.metadata.truncation && udp.queries.is_empty());
    let (tcp, reply) = ask_bytes(&bytes, Transport::Tcp);
    assert_eq!(tcp.metadata.response_code, ResponseCode::NotImp);
    assert!(!reply.truncated);
    assert_eq!(tcp.queries.len(), 18, "over TCP every question is echoed");
}

#[test]
fn edns_is_answered_with_our_buffer_size_and_newer_versions_get_badvers() {
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let (m, _) = ask_bytes(
        &query_bytes("web.service.muster.", RecordType::A, Some(edns.clone())),
        Transport::Udp,
    );
    let ours = m.edns.as_ref().expect("an OPT answers an OPT");
    assert_eq!(ours.max_payload(), MAX_UDP_PAYLOAD);
    assert_eq!(ours.version(), 0);
    assert_eq!(m.answers.len(), 2);
    edns.set_version(1);
    let (m, _) = ask_bytes(
        &query_bytes("web.service.muster.", RecordType::A, Some(edns)),
        Transport::Udp,
    );
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    assert!(m.answers.is_empty());
    let (m, _) = ask_bytes(
        &query_bytes("muster.", RecordType::SOA, None),
        Transport::Udp,
    );
    assert!(m.edns.is_none(), "no OPT without one in the query");
}

#[test]
fn big_answers_drop_additionals_then_truncate_and_fit_over_tcp() {
    // 60 A records: ~1,000 bytes. Over 512 without EDNS; within 1232 with it.
    let plain = query_bytes("big.service.muster.", RecordType::A, None);
    let (m, reply) = ask_bytes(&plain, Transport::Udp);
    assert!(reply.truncated && m.metadata.truncation && m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    assert!(reply.bytes.len() <= 512);
    let (m, reply) = ask_bytes(&plain, Transport::Tcp);
    assert!(!reply.truncated);
    assert_eq!(m.answers.len(), 60);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let with_edns = query_bytes("big.service.muster.", RecordType::A, Some(edns.clone()));
    let (m, reply) = ask_bytes(&with_edns, Transport::Udp);
    assert!(!reply.truncated && reply.bytes.len() <= 1232);
    assert_eq!(m.answers.len(), 60);
    // SRV: 60 records and 60 addresses do not fit 1232; the records alone do not either
    // (about 38 bytes each), so TC. A smaller buffer than ours is honoured too.
    let srv = query_bytes("big.service.muster.", RecordType::SRV, Some(edns.clone()));
    let (m, reply) = ask_bytes(&srv, Transport::Udp);
    assert!(reply.truncated && m.answers.is_empty() && m.additionals.is_empty());
    assert!(m.edns.is_some(), "the OPT survives truncation");
    let (m, _) = ask_bytes(&srv, Transport::Tcp);
    assert_eq!((m.answers.len(), m.additionals.len()), (60, 60));
    // Twenty SRV records (about 830 bytes: SRV targets are never compressed) fit a
    // 1000-byte buffer, but not with their twenty addresses: the additional section
    // goes, without TC.
    edns.set_max_payload(1000);
    let mid = query_bytes("mid.service.muster.", RecordType::SRV, Some(edns));
    let (m, reply) = ask_bytes(&mid, Transport::Udp);
    assert!(!reply.truncated, "{m}");
    assert!(reply.bytes.len() <= 1000);
    assert_eq!((m.answers.len(), m.additionals.len()), (20, 0));
    let (m, _) = ask_bytes(&mid, Transport::Tcp);
    assert_eq!((m.answers.len(), m.additionals.len()), (20, 20));
}

/// `bytes` (a query whose last record is an OPT without options, 11 bytes) with the
/// OPT's UDP payload size set to `payload` on the wire, as any client may send it.
fn with_payload(mut bytes: Vec<u8>, payload: u16) -> Vec<u8> {
    let opt = bytes.len() - 11;
    assert_eq!(bytes[opt..opt + 3], [0, 0, 41], "an OPT last");
    bytes[opt + 3..opt + 5].copy_from_slice(&payload.to_be_bytes());
    bytes
}

#[test]
fn udp_answers_over_512_bytes_go_only_to_edns_clients_within_their_buffer() {
    // (EDNS payload on the wire, the largest UDP answer it may get): none is 512, a
    // size below 512 counts as 512 (RFC 6891 §6.2.3), above ours is ours.
    let table: [(Option<u16>, usize); 8] = [
        (None, 512),
        (Some(0), 512),
        (Some(256), 512),
        (Some(512), 512),
        (Some(1000), 1000),
        (Some(1232), 1232),
        (Some(4096), 1232),
        (Some(u16::MAX), 1232),
    ];
    let names = [
        ("web.service.muster.", RecordType::A),
        ("web.service.muster.", RecordType::SRV),
        ("mid.service.muster.", RecordType::SRV),
        ("big.service.muster.", RecordType::A),
        ("big.service.muster.", RecordType::SRV),
    ];
    for (payload, most) in table {
        for (name, qtype) in names {
            let bytes = match payload {
                None => query_bytes(name, qtype, None),
                Some(p) => with_payload(query_bytes(name, qtype, Some(Edns::new())), p),
            };
            let (m, reply) = ask_bytes(&bytes, Transport::Udp);
            let case = format!("{name} {qtype} with payload {payload:?}");
            assert!(
                reply.bytes.len() <= most,
                "{case}: {} bytes",
                reply.bytes.len()
            );
            assert_eq!(m.edns.is_some(), payload.is_some(), "{case}");
            // Over TCP the same question is answered whole: what was cut, was cut
            // for the buffer's sake.
            let (whole, tcp) = ask_bytes(&bytes, Transport::Tcp);
            assert!(!tcp.truncated, "{case}");
            if tcp.bytes.len() <= most {
                assert_eq!(reply.bytes, tcp.bytes, "{case}: fits, sent whole");
            } else {
                assert!(
                    reply.truncated || m.additionals.len() < whole.additionals.len(),
                    "{case}: cut"
                );
            }
        }
    }
    // The big A answer (about 1,000 bytes) reaches a client with a buffer that holds
    // it, and no other.
    let big = |payload| {
        let bytes = match payload {
            None => query_bytes("big.service.muster.", RecordType::A, None),
            Some(p) => with_payload(
                query_bytes("big.service.muster.", RecordType::A, Some(Edns::new())),
                p,
            ),
        };
        ask_bytes(&bytes, Transport::Udp).1.truncated
    };
    assert!(big(None) && big(Some(256)) && big(Some(512)) && big(Some(900)));
    assert!(!big(Some(1100)) && !big(Some(4096)));
}

#[test]
fn a_limited_query_may_get_an_empty_tc_answer_no_larger_than_itself() {
    for (name, qtype, edns) in [
        ("web.service.muster.", RecordType::A, None),
        ("big.service.muster.", RecordType::SRV, Some(Edns::new())),
        ("Example.COM.", RecordType::ANY, None),
        ("muster.", RecordType::AXFR, Some(Edns::new())),
    ] {
        let mut query = Message::new(0x5151, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.metadata.checking_disabled = true;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some(edns) = edns.clone() {
            query.set_edns(edns);
        }
        let bytes = query.to_vec().unwrap();
        let reply = retry_over_tcp(&bytes).expect("an answer");
        assert!(reply.truncated && reply.rcode == ResponseCode::NoError);
        assert!(reply.bytes.len() <= bytes.len(), "{name}: not amplified");
        let m = Message::from_vec(&reply.bytes).expect("well-formed");
        assert_eq!(m.metadata.id, 0x5151);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.truncation && m.metadata.recursion_desired);
        assert!(m.metadata.checking_disabled);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries, query.queries, "the question echoed as sent");
        assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
        assert_eq!(m.edns.is_some(), edns.is_some(), "{name}");
    }
    // Nothing for what `respond` would not answer with records either: too short,
    // malformed, a response, another opcode, two questions.
    let good = query_bytes("web.service.muster.", RecordType::A, None);
    let mut response = good.clone();
    response[2] |= 0x80;
    let mut two = Message::new(2, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("a.muster.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.muster.").unwrap(),
        RecordType::A,
    ));
    let mut status = Message::new(3, MessageType::Query, OpCode::Status);
    status.add_query(Query::query(
        Name::from_ascii("muster.").unwrap(),
        RecordType::A,
    ));
    for bytes in [
        Vec::new(),
        vec![0x12, 0x34, 0x01],
        good[..good.len() - 2].to_vec(),
        response,
        two.to_vec().unwrap(),
        status.to_vec().unwrap(),
    ] {
        assert_eq!(retry_over_tcp(&bytes), None, "{bytes:02x?}");
    }
}

#[test]
fn malformed_queries_get_formerr_when_an_id_is_readable() {
    assert!(respond(&[], &zone(), &authority(), Transport::Udp).is_none());
    assert!(respond(&[0x12, 0x34], &zone(), &authority(), Transport::Udp).is_none());
    let good = query_bytes("web.service.muster.", RecordType::A, None);
    // A response is never answered.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(respond(&response, &zone(), &authority(), Transport::Udp).is_none());
    let formerr = |bytes: &[u8]| {
        let reply = respond(bytes, &zone(), &authority(), Transport::Udp).expect("an answer");
        assert_eq!(reply.rcode, ResponseCode::FormErr);
        let m = Message::from_vec(&reply.bytes).expect("a well-formed FORMERR");
        assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_desired, "RD copied");
        m
    };
    // A truncated header, a truncated question.
    formerr(&good[..7]);
    formerr(&good[..good.len() - 3]);
    // A label length of 0x41: a reserved label type (RFC 6891 §5).
    let mut bad_label = good.clone();
    bad_label[12] = 0x41;
    formerr(&bad_label);
    // A compression pointer to itself.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
    formerr(&looped);
    // Garbage after a valid flags byte.
    formerr(&[
        0xab, 0xcd, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
}

proptest! {
    #[test]
    fn any_bytes_get_at_most_one_well_formed_answer_with_their_id(
        bytes in proptest::collection::vec(any::<u8>(), 0..600)
    ) {
        if let Some(reply) = respond(&bytes, &zone(), &authority(), Transport::Udp) {
            let m = Message::from_vec(&reply.bytes).expect("a well-formed response");
            prop_assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
            prop_assert!(reply.bytes.len() <= 512);
        }
    }

    #[test]
    fn mangled_queries_never_panic(flip in 0usize..64, value in any::<u8>()) {
        let mut bytes = query_bytes("web.service.muster.", RecordType::SRV, None);
        let at = flip % bytes.len();
        bytes[at] = value;
        let _ = respond(&bytes, &zone(), &authority(), Transport::Tcp);
    }
}
