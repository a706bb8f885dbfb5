//! One DNS message in, at most one out: [`respond`]. Pure over a [`ZoneData`] (the
//! agent's view, or a fixed one in tests): no sockets, no clock.
//!
//! # Answers
//!
//! | query | response |
//! |---|---|
//! | fewer than 3 bytes, or a response (QR set) | none: too short to tell, and answering a response can loop between two servers |
//! | not a whole message (short header, bad label, records past the end) | FORMERR, header only, with the request's id |
//! | opcode other than QUERY | NOTIMP |
//! | not exactly one question | FORMERR |
//! | EDNS version above 0 | BADVERS (RFC 6891) |
//! | a name outside `muster.`, or a class other than IN (or ANY) | REFUSED: this server answers for `muster.` only and never recurses |
//! | AXFR or IXFR | REFUSED: no zone transfers, every agent answers from its own view |
//! | a name under `muster.` that does not exist | NXDOMAIN |
//! | a name that exists, a type it has no records of | NOERROR, no answer (NODATA) |
//!
//! NXDOMAIN and NODATA carry the zone's SOA in the authority section, its minimum the
//! TTL, so resolvers cache the negative answer as long as a positive one (RFC 2308).
//! A known service with nothing healthy is NODATA, not NXDOMAIN: the name exists (it is
//! registered), an NXDOMAIN would deny every type at once and, by RFC 8020, every name
//! below it, and it would read as a typo; NODATA expires after one TTL like any answer,
//! so clients see instances come back as soon as the route answer does.
//!
//! Answers are authoritative (AA), never recursive (RA clear); RD and CD are copied. The
//! question is echoed as sent, case included (resolvers that randomise case check it).
//!
//! # Size
//!
//! Over UDP an answer fits the client's EDNS buffer size, at most [`MAX_UDP_PAYLOAD`],
//! or 512 bytes without EDNS; over TCP, 65,535. Past that the additional section goes
//! first (without TC: it is optional, RFC 2181 §9), then the whole answer RRset, with TC
//! set so the client retries over TCP, and last the echoed questions (only a NOTIMP to a
//! message of many questions is that long).

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use super::names::{self, Target};
use super::records::{self, Endpoint};

/// The largest UDP answer sent, and the EDNS buffer size announced: the 2020 DNS flag
/// day's value, which avoids IP fragmentation on common paths.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The UDP limit without EDNS (RFC 1035).
const PLAIN_UDP_PAYLOAD: usize = 512;

/// What the zone holds, as [`respond`] asks for it. Every argument is lowercased (see
/// [`names`]); the implementation matches names ASCII case-insensitively.
pub trait ZoneData {
    /// The healthy instances of `service` in route order (restricted to `region` when
    /// given), with SRV priorities; empty when none is healthy. `None` when no such
    /// service is registered, or no such region exists.
    fn service(&self, service: &str, region: Option<&str>) -> Option<Vec<Endpoint>>;
    /// The current primary of `service` (one endpoint, SRV priority 1), or none when no
    /// instance holds the role now. `None` when no such service is registered or it is
    /// not in `primary` mode.
    fn primary(&self, service: &str) -> Option<Vec<Endpoint>>;
    /// The address of the live member named `node`.
    fn node(&self, node: &str) -> Option<IpAddr>;
    /// Whether some live member is in `region`.
    fn has_region(&self, region: &str) -> bool;
    /// The SOA serial: moves when the answers may have.
    fn serial(&self) -> u32;
}

/// What every answer shares: the TTL and the SOA's names.
#[derive(Debug, Clone)]
pub struct Authority {
    /// TTL of every record, and the negative-caching TTL.
    pub ttl: u32,
    /// The SOA's primary server: this agent's node name.
    pub mname: Name,
    /// The SOA's mailbox.
    pub rname: Name,
}

impl Authority {
    /// The settings for an agent named `node` answering with `ttl`.
    pub fn new(node: &str, ttl: u32) -> Authority {
        Authority {
            ttl,
            mname: names::node_name(node).unwrap_or_else(names::apex),
            rname: names::under_apex("hostmaster").unwrap_or_else(names::apex),
        }
    }

    fn soa(&self, serial: u32) -> Record {
        records::soa(self.mname.clone(), self.rname.clone(), serial, self.ttl)
    }
}

/// The transport a message came over: it bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the EDNS buffer size up to [`MAX_UDP_PAYLOAD`].
    Udp,
    /// TCP: 65,535 bytes.
    Tcp,
}

/// An encoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The bytes to send.
    pub bytes: Vec<u8>,
    /// Its response code (for stats).
    pub rcode: ResponseCode,
    /// Whether records were left out and TC set.
    pub truncated: bool,
}

/// The response to `packet` (see the module doc), or `None` for nothing to send. Never
/// panics on any input.
pub fn respond(
    packet: &[u8],
    zone: &impl ZoneData,
    authority: &Authority,
    transport: Transport,
) -> Option<Reply> {
    // The id and the flags byte: without them there is no one to answer, and a
    // response (QR set) is never answered.
    let [id_high, id_low, flags, ..] = *packet else {
        return None;
    };
    if flags & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([id_high, id_low]);
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    let recursion_desired = flags & 0x01 != 0;
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(id, error = %e, "malformed DNS query");
            return Some(header_only(id, flags, ResponseCode::FormErr));
        }
    };
    let mut response = Message::response(id, request.metadata.op_code);
    response.metadata.recursion_desired = recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    let mut limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => PLAIN_UDP_PAYLOAD,
    };
    if let Some(edns) = &request.edns {
        let mut ours = Edns::new();
        ours.set_max_payload(MAX_UDP_PAYLOAD);
        response.set_edns(ours);
        if transport == Transport::Udp {
            limit = usize::from(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
        }
        if edns.version() > 0 {
            return Some(finish(response, ResponseCode::BADVERS, limit));
        }
    }
    if op_code != OpCode::Query {
        response.add_queries(request.queries.iter().cloned());
        return Some(finish(response, ResponseCode::NotImp, limit));
    }
    let [query] = request.queries.as_slice() else {
        return Some(finish(response, ResponseCode::FormErr, limit));
    };
    response.add_query(query.clone());
    let target = names::parse(query.name());
    let class_ok = matches!(query.query_class(), DNSClass::IN | DNSClass::ANY);
    let qtype = query.query_type();
    if target == Target::Outside || !class_ok {
        return Some(finish(response, ResponseCode::Refused, limit));
    }
    response.metadata.authoritative = true;
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Some(finish(response, ResponseCode::Refused, limit));
    }
    let owner = query.name();
    let ttl = authority.ttl;
    let found: Option<(Vec<Record>, Vec<Record>)> = match target {
        Target::Apex => Some(match qtype {
            RecordType::SOA | RecordType::ANY => (vec![authority.soa(zone.serial())], Vec::new()),
            _ => (Vec::new(), Vec::new()),
        }),
        Target::Branch => Some((Vec::new(), Vec::new())),
        Target::RegionBranch { region } => {
            zone.has_region(&region).then(|| (Vec::new(), Vec::new()))
        }
        Target::Service { service, region } => zone
            .service(&service, region.as_deref())
            .map(|endpoints| service_records(owner, &endpoints, qtype, ttl)),
        Target::Primary { service } => zone
            .primary(&service)
            .map(|endpoints| service_records(owner, &endpoints, qtype, ttl)),
        Target::Node { node } => zone
            .node(&node)
            .map(|address| (records::addresses(owner, [address], qtype, ttl), Vec::new())),
        Target::Missing | Target::Outside => None,
    };
    let rcode = match found {
        Some((answers, additionals)) if !answers.is_empty() => {
            response.answers = answers;
            response.additionals = additionals;
            ResponseCode::NoError
        }
        Some(_) => {
            response.add_authority(authority.soa(zone.serial()));
            ResponseCode::NoError
        }
        None => {
            response.add_authority(authority.soa(zone.serial()));
            ResponseCode::NXDomain
        }
    };
    Some(finish(response, rcode, limit))
}

/// An empty answer to `packet` with TC set, asking the client to retry over TCP: for a
/// query over the rate limit (see [`super::limiter`]). It echoes the id, the question,
/// RD and CD (and an OPT if the query had one), and is never longer than `packet`, so
/// it reflects no more than was sent. `None` (send nothing) for anything but a
/// well-formed standard query with one question.
pub fn retry_over_tcp(packet: &[u8]) -> Option<Reply> {
    let request = Message::from_vec(packet).ok()?;
    let [query] = request.queries.as_slice() else {
        return None;
    };
    if request.metadata.message_type != MessageType::Query
        || request.metadata.op_code != OpCode::Query
    {
        return None;
    }
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.metadata.truncation = true;
    response.add_query(query.clone());
    if request.edns.is_some() {
        let mut ours = Edns::new();
        ours.set_max_payload(MAX_UDP_PAYLOAD);
        response.set_edns(ours);
    }
    let bytes = response.to_vec().ok()?;
    (bytes.len() <= packet.len()).then_some(Reply {
        bytes,
        rcode: ResponseCode::NoError,
        truncated: true,
    })
}

/// Sets `rcode` and encodes `response` within `limit` bytes (see the module doc).
fn finish(mut response: Message, rcode: ResponseCode, limit: usize) -> Reply {
    response.metadata.response_code = rcode;
    let flags = header_flags(&response);
    let encode = |m: &Message| match m.to_vec() {
        Ok(bytes) => bytes,
        Err(e) => {
            // Every name and record here was built or parsed as valid: not expected.
            tracing::warn!(error = %e, "cannot encode a DNS response; answering SERVFAIL");
            header_only(m.metadata.id, flags, ResponseCode::ServFail).bytes
        }
    };
    // Whole; then without the additional section (clients can look the targets up);
    // then without the answers, TC set (the client retries over TCP); last without the
    // echoed questions (only a NOTIMP to a message of many questions is that long; the
    // header and the OPT alone always fit).
    for step in 0..=3 {
        match step {
            0 => {}
            1 => response.additionals.clear(),
            2 => {
                response.answers.clear();
                response.authorities.clear();
                response.metadata.truncation = true;
            }
            _ => response.queries.clear(),
        }
        let bytes = encode(&response);
        if bytes.len() <= limit || step >= 3 {
            return Reply {
                bytes,
                rcode,
                truncated: step >= 2,
            };
        }
    }
    unreachable!("the last step always answers")
}

/// The third header byte of a request that `response` answers: opcode and RD (what
/// [`header_only`] copies).
fn header_flags(response: &Message) -> u8 {
    (u8::from(response.metadata.op_code) << 3) | u8::from(response.metadata.recursion_desired)
}

/// A 12-byte response with no sections: `id`, the opcode and RD of the request's flags
/// byte `flags`, and `rcode` (low four bits). Built by hand: it cannot fail.
fn header_only(id: u16, flags: u8, rcode: ResponseCode) -> Reply {
    let [a, b] = id.to_be_bytes();
    let qr = 0x80;
    let opcode_and_rd = flags & 0x79;
    let bytes = vec![
        a,
        b,
        qr | opcode_and_rd,
        rcode.low() & 0x0f,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    Reply {
        bytes,
        rcode,
        truncated: false,
    }
}

/// The records of a service-shaped answer: SRV records (with their targets' addresses
/// as additionals) for an SRV query, else the endpoints' addresses of `qtype`.
fn service_records(
    owner: &Name,
    endpoints: &[Endpoint],
    qtype: RecordType,
    ttl: u32,
) -> (Vec<Record>, Vec<Record>) {
    match qtype {
        RecordType::SRV => records::srv(owner, endpoints, ttl),
        _ => (
            records::addresses(owner, endpoints.iter().map(|e| e.address), qtype, ttl),
            Vec::new(),
        ),
    }
}
#[cfg(test)]
mod tests;
