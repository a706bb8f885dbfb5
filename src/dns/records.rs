//! The records DNS answers carry, built from route answers and member addresses. Pure
//! functions: no clock, no I/O.
//!
//! - **A / AAAA**: the addresses in answer order, IPv4 ones as A and IPv6 ones as AAAA
//!   (an IPv4-mapped IPv6 address counts as IPv4), each address once: an RRset is a set
//!   (RFC 2181 §5), and two agents on one host share an address. The first occurrence
//!   keeps its place, so the order is still the route answer's.
//! - **SRV**: one record per instance whose node has a DNS name ([`names::node_name`]):
//!   priority from the instance's tier ([`endpoints`]), weight from its weight, its port,
//!   and the target `NODE.node.muster.`, whose address goes in the additional section.

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::names;
use crate::routing::router::{Caller, InstanceView};
use crate::wire::MemberState;

/// SOA timers for secondaries (there are none: every agent answers from its own view);
/// the usual values, so tools that check them stay quiet.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;

/// One instance as the DNS answers show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The member's node name.
    pub node: String,
    /// Where the instance listens.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its weight (SRV carries at most 65,535).
    pub weight: u32,
    /// Its SRV priority: its tier, from 1.
    pub priority: u16,
}

/// A route answer's instances, in its order, with SRV priorities.
///
/// SRV clients try the lowest priority first and spread over one priority's records by
/// weight; the route answer ranks instances in tiers and orders each tier by weighted
/// rendezvous hashing. So one tier is one priority: a run of consecutive instances in the
/// same region, all in the caller's zone or all not, all alive or all suspect, and all
/// serving or all standbys (weight 0). Priority 1 is the first tier, and each change of
/// tier adds one: a failed-over answer's second region comes after its first, the
/// caller's zone before the rest of its region, a standby after its tier's others.
pub fn endpoints(instances: &[InstanceView], home: &Caller) -> Vec<Endpoint> {
    fn tier<'a>(i: &'a InstanceView, home: &Caller) -> (&'a str, bool, bool, bool) {
        (
            i.region.as_str(),
            i.region == home.region && i.zone == home.zone,
            i.member != MemberState::Alive,
            i.weight == 0,
        )
    }
    let mut priority: u16 = 0;
    let mut previous = None;
    instances
        .iter()
        .map(|i| {
            let key = tier(i, home);
            if previous != Some(key) {
                priority = priority.saturating_add(1);
                previous = Some(key);
            }
            Endpoint {
                node: i.node.clone(),
                address: i.address,
                port: i.port,
                weight: i.weight,
                priority,
            }
        })
        .collect()
}

/// The A or AAAA record of `address` (A for IPv4 and IPv4-mapped addresses).
pub fn address(owner: Name, address: IpAddr, ttl: u32) -> Record {
    let data = match address.to_canonical() {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, data)
}

/// Whether a query of `qtype` wants `address`: A wants IPv4, AAAA IPv6, ANY both.
fn wants(qtype: RecordType, address: IpAddr) -> bool {
    match qtype {
        RecordType::A => address.to_canonical().is_ipv4(),
        RecordType::AAAA => address.to_canonical().is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    }
}

/// The address records `qtype` asks for, in order, each address once.
pub fn addresses(
    owner: &Name,
    list: impl IntoIterator<Item = IpAddr>,
    qtype: RecordType,
    ttl: u32,
) -> Vec<Record> {
    let mut seen: Vec<IpAddr> = Vec::new();
    let mut out = Vec::new();
    for a in list.into_iter().map(|a| a.to_canonical()) {
        if wants(qtype, a) && !seen.contains(&a) {
            seen.push(a);
            out.push(address(owner.clone(), a, ttl));
        }
    }
    out
}

/// SRV records for `endpoints` (answer section), and their targets' addresses
/// (additional section, each target once). Instances whose node has no DNS name are left
/// out.
pub fn srv(owner: &Name, endpoints: &[Endpoint], ttl: u32) -> (Vec<Record>, Vec<Record>) {
    let mut answers = Vec::with_capacity(endpoints.len());
    let mut additionals: Vec<Record> = Vec::new();
    let mut targets: Vec<&str> = Vec::new();
    for e in endpoints {
        let Some(target) = names::node_name(&e.node) else {
            continue;
        };
        let weight = u16::try_from(e.weight).unwrap_or(u16::MAX);
        if !targets.contains(&e.node.as_str()) {
            targets.push(&e.node);
            additionals.push(address(target.clone(), e.address, ttl));
        }
        answers.push(Record::from_rdata(
            owner.clone(),
            ttl,
            RData::SRV(SRV::new(e.priority, weight, e.port, target)),
        ));
    }
    (answers, additionals)
}

/// The zone's SOA: `mname` is the agent that answered, `rname` the usual
/// `hostmaster.muster.`; `minimum` and the record's TTL are `ttl`, so resolvers cache a
/// negative answer no longer than a positive one (RFC 2308 §5).
pub fn soa(mname: Name, rname: Name, serial: u32, ttl: u32) -> Record {
    Record::from_rdata(
        names::apex(),
        ttl,
        RData::SOA(SOA::new(
            mname,
            rname,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            ttl,
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::HealthStatus;

    fn instance(node: &str, address: &str, region: &str, zone: &str) -> InstanceView {
        InstanceView {
            node: node.into(),
            address: address.parse().unwrap(),
            port: 8080,
            region: region.into(),
            zone: zone.into(),
            status: HealthStatus::Passing,
            weight: 1,
            member: MemberState::Alive,
        }
    }

    fn home() -> Caller {
        Caller {
            region: "eu".into(),
            zone: "eu-1".into(),
            key: "eu-a".into(),
        }
    }

    fn owner() -> Name {
        Name::from_ascii("web.service.muster.").unwrap()
    }

    #[test]
    fn tiers_follow_the_route_answers_ranking() {
        let mut suspect = instance("eu-s", "127.0.0.9", "eu", "eu-2");
        suspect.member = MemberState::Suspect;
        let mut standby = instance("eu-z", "127.0.0.8", "eu", "eu-2");
        standby.weight = 0;
        // As the router orders a normal answer then a failed-over tail: the caller's
        // zone, the rest of the region (alive, standby, suspect), then another region.
        let answer = [
            instance("eu-a", "127.0.0.1", "eu", "eu-1"),
            instance("eu-b", "127.0.0.2", "eu", "eu-2"),
            instance("eu-c", "127.0.0.3", "eu", "eu-3"),
            standby,
            suspect,
            instance("us-a", "127.0.0.4", "us", "us-1"),
            instance("us-b", "127.0.0.5", "us", "us-2"),
        ];
        let priorities: Vec<u16> = endpoints(&answer, &home())
            .iter()
            .map(|e| e.priority)
            .collect();
        assert_eq!(priorities, [1, 2, 2, 3, 4, 5, 5]);
        // A failed-over answer: the first region in force is priority 1.
        let remote = endpoints(&answer[5..], &home());
        assert_eq!(
            remote.iter().map(|e| e.priority).collect::<Vec<_>>(),
            [1, 1]
        );
        assert!(endpoints(&[], &home()).is_empty());
    }

    #[test]
    fn address_records_split_by_family_keep_order_and_drop_repeats() {
        let list: Vec<IpAddr> = [
            "127.0.0.3",
            "::1",
            "127.0.0.2",
            "127.0.0.3",
            "::ffff:10.0.0.1",
            "fd00::2",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let shown = |qtype| -> Vec<String> {
            addresses(&owner(), list.clone(), qtype, 5)
                .iter()
                .map(|r| {
                    assert_eq!(r.ttl, 5);
                    assert_eq!(
                        r.record_type(),
                        if qtype == RecordType::ANY {
                            r.record_type()
                        } else {
                            qtype
                        }
                    );
                    r.data.to_string()
                })
                .collect()
        };
        assert_eq!(shown(RecordType::A), ["127.0.0.3", "127.0.0.2", "10.0.0.1"]);
        assert_eq!(shown(RecordType::AAAA), ["::1", "fd00::2"]);
        assert_eq!(shown(RecordType::ANY).len(), 5);
        assert!(shown(RecordType::MX).is_empty());
    }

    #[test]
    fn an_ipv6_address_makes_an_aaaa_record() {
        let r = address(owner(), "fd00::1".parse().unwrap(), 7);
        assert_eq!(r.record_type(), RecordType::AAAA);
        assert_eq!(r.data, RData::AAAA(AAAA("fd00::1".parse().unwrap())));
        let r = address(owner(), "::ffff:192.0.2.1".parse().unwrap(), 7);
        assert_eq!(r.data, RData::A(A("192.0.2.1".parse().unwrap())));
    }

    #[test]
    fn srv_records_carry_port_weight_priority_and_target_addresses() {
        let mut heavy = instance("us-a", "::1", "us", "us-1");
        heavy.weight = 100_000;
        heavy.port = 9090;
        let list = endpoints(
            &[
                instance("eu-a", "127.0.0.1", "eu", "eu-1"),
                heavy,
                instance("bad..name", "127.0.0.7", "us", "us-1"),
            ],
            &home(),
        );
        let (answers, additionals) = srv(&owner(), &list, 5);
        let shown: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(
            shown,
            [
                "1 1 8080 eu-a.node.muster.",
                "2 65535 9090 us-a.node.muster."
            ]
        );
        let extra: Vec<(String, String)> = additionals
            .iter()
            .map(|r| (r.name.to_string(), r.data.to_string()))
            .collect();
        assert_eq!(
            extra,
            [
                ("eu-a.node.muster.".into(), "127.0.0.1".into()),
                ("us-a.node.muster.".into(), "::1".into())
            ]
        );
        assert_eq!(additionals[1].record_type(), RecordType::AAAA);
    }

    #[test]
    fn the_soa_caches_negative_answers_for_the_ttl() {
        let mname = names::node_name("eu-a").unwrap();
        let rname = names::under_apex("hostmaster").unwrap();
        let r = soa(mname, rname, 42, 5);
        assert_eq!(r.name, names::apex());
        assert_eq!(r.ttl, 5);
        let RData::SOA(soa) = &r.data else {
            panic!("not an SOA: {r:?}")
        };
        assert_eq!((soa.serial, soa.minimum), (42, 5));
        assert_eq!(soa.mname.to_string(), "eu-a.node.muster.");
    }
}
