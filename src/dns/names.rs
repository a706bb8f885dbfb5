//! Names in the `muster.` zone: what a query name asks for ([`parse`]), and the names the
//! answers carry ([`node_name`], [`apex`]).
//!
//! | query name | asks for |
//! |---|---|
//! | `muster.` | the zone apex: its SOA |
//! | `SERVICE.service.muster.` | the healthy instances of SERVICE, in route order |
//! | `SERVICE.service.REGION.muster.` | the same, restricted to REGION |
//! | `_SERVICE._tcp.service.muster.`, `_SERVICE._tcp.service.REGION.muster.` | the same, in RFC 2782's form for SRV queries (`_udp` too: the protocol label selects nothing) |
//! | `primary.SERVICE.service.muster.` | the current primary of a `primary`-mode SERVICE, as this agent elects it |
//! | `NODE.node.muster.` | a live member's address; NODE may hold dots (`web1.example.com.node.muster.`) |
//! | `service.muster.`, `node.muster.`, `service.REGION.muster.` | empty non-terminals: they exist (names below them do) but hold no records |
//!
//! Anything else under `muster.` does not exist; names outside it are not ours.
//!
//! Labels compare ASCII case-insensitively: [`parse`] lowercases them, so what a query
//! asks for never depends on the case it was sent in (resolvers randomise it, RFC 4343
//! and the "0x20" trick). A name whose second label from the right is `node` is a node
//! name, so a region named `node` cannot be asked for with a region-scoped name; and
//! `primary.X.service.muster.` asks for X's primary, so a service named `primary` in a
//! region named `service` cannot be asked for by its region-scoped name.

use hickory_proto::rr::Name;

/// The zone's only label.
pub const ZONE: &str = "muster";

/// The label under the apex that holds services.
const SERVICE: &[u8] = b"service";

/// The label under the apex that holds nodes.
const NODE: &[u8] = b"node";

/// The label before a service name that asks for its primary.
const PRIMARY: &[u8] = b"primary";

/// RFC 2782's protocol labels, accepted after `_SERVICE`.
const PROTOCOLS: [&[u8]; 2] = [b"_tcp", b"_udp"];

/// What a query name asks for. Strings are lowercased labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `muster.` itself.
    Apex,
    /// `service.muster.` or `node.muster.`: exists, no records.
    Branch,
    /// `service.REGION.muster.`: exists (no records) when REGION does.
    RegionBranch {
        /// The region, lowercased.
        region: String,
    },
    /// `SERVICE.service.muster.` or `SERVICE.service.REGION.muster.`.
    Service {
        /// The service, lowercased.
        service: String,
        /// The region, lowercased, for a region-scoped name.
        region: Option<String>,
    },
    /// `primary.SERVICE.service.muster.`.
    Primary {
        /// The service, lowercased.
        service: String,
    },
    /// `NODE.node.muster.`.
    Node {
        /// The node name, lowercased (its labels joined by dots).
        node: String,
    },
    /// Under `muster.` but of no shape above: does not exist.
    Missing,
    /// Not under `muster.`: not ours to answer.
    Outside,
}

/// What `name` asks for (see the module doc).
pub fn parse(name: &Name) -> Target {
    let labels: Vec<Vec<u8>> = name.iter().map(<[u8]>::to_ascii_lowercase).collect();
    let Some((zone, rest)) = labels.split_last() else {
        return Target::Outside;
    };
    if zone.as_slice() != ZONE.as_bytes() {
        return Target::Outside;
    }
    let text = |label: &[u8]| String::from_utf8(label.to_vec()).ok();
    // RFC 2782: `_SERVICE._PROTO.` in front of the service branch names SERVICE.
    let srv_form: Vec<Vec<u8>>;
    let rest = match rest {
        [service, proto, branch, ..]
            if branch.as_slice() == SERVICE
                && PROTOCOLS.contains(&proto.as_slice())
                && service.len() > 1
                && service.starts_with(b"_") =>
        {
            srv_form = std::iter::once(service[1..].to_vec())
                .chain(rest[2..].iter().cloned())
                .collect();
            srv_form.as_slice()
        }
        _ => rest,
    };
    match rest {
        [] => Target::Apex,
        [branch] if branch.as_slice() == SERVICE || branch.as_slice() == NODE => Target::Branch,
        [node @ .., last] if last.as_slice() == NODE => match text(&node.join(&b'.')) {
            Some(node) => Target::Node { node },
            None => Target::Missing,
        },
        [primary, service, branch]
            if primary.as_slice() == PRIMARY && branch.as_slice() == SERVICE =>
        {
            match text(service) {
                Some(service) => Target::Primary { service },
                None => Target::Missing,
            }
        }
        [service, branch] if branch.as_slice() == SERVICE => match text(service) {
            Some(service) => Target::Service {
                service,
                region: None,
            },
            None => Target::Missing,
        },
        [branch, region] if branch.as_slice() == SERVICE => match text(region) {
            Some(region) => Target::RegionBranch { region },
            None => Target::Missing,
        },
        [service, branch, region] if branch.as_slice() == SERVICE => {
            match (text(service), text(region)) {
                (Some(service), Some(region)) => Target::Service {
                    service,
                    region: Some(region),
                },
                _ => Target::Missing,
            }
        }
        _ => Target::Missing,
    }
}

/// `muster.`.
pub fn apex() -> Name {
    Name::from_labels([ZONE.as_bytes()]).expect("one short label is a valid name")
}

/// `LABEL.muster.`, for names the SOA carries (`hostmaster.muster.`).
pub fn under_apex(label: &str) -> Option<Name> {
    Name::from_labels([label.as_bytes(), ZONE.as_bytes()]).ok()
}

/// `NODE.node.muster.` for a node name, as the node named it (case kept). `None` when the
/// name cannot be one: an empty label (`a..b`, a leading or trailing dot), a label over
/// 63 bytes, or a name over 255 bytes. Such a member has no node name, and its instances
/// no SRV record (their addresses are still in A and AAAA answers).
pub fn node_name(node: &str) -> Option<Name> {
    if node.is_empty() {
        return None;
    }
    let labels = node
        .split('.')
        .map(str::as_bytes)
        .chain([NODE, ZONE.as_bytes()]);
    // `from_labels` refuses empty and over-long labels, and over-long names.
    Name::from_labels(labels).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        parse(&Name::from_ascii(text).expect("a valid test name"))
    }

    fn service(service: &str, region: Option<&str>) -> Target {
        Target::Service {
            service: service.into(),
            region: region.map(String::from),
        }
    }

    #[test]
    fn names_parse_to_what_they_ask_for_whatever_their_case() {
        let node = |n: &str| Target::Node { node: n.into() };
        for (name, expected) in [
            ("muster.", Target::Apex),
            ("MUSTER.", Target::Apex),
            ("web.service.muster.", service("web", None)),
            ("WeB.SeRvIcE.MuStEr.", service("web", None)),
            (
                "web.service.EU-West.muster.",
                service("web", Some("eu-west")),
            ),
            ("_grpc-api.service.muster.", service("_grpc-api", None)),
            ("eu-a.node.muster.", node("eu-a")),
            ("Web1.Example.COM.node.muster.", node("web1.example.com")),
            ("service.muster.", Target::Branch),
            ("node.muster.", Target::Branch),
            (
                "service.us.muster.",
                Target::RegionBranch {
                    region: "us".into(),
                },
            ),
            ("service.service.muster.", service("service", None)),
            ("_web._tcp.service.muster.", service("web", None)),
            ("_WEB._TCP.Service.muster.", service("web", None)),
            ("_web._udp.service.eu.muster.", service("web", Some("eu"))),
            (
                "__grpc-api._tcp.service.muster.",
                service("_grpc-api", None),
            ),
            ("_._tcp.service.muster.", Target::Missing),
            ("_web._sctp.service.muster.", Target::Missing),
            (
                "primary.db.service.muster.",
                Target::Primary {
                    service: "db".into(),
                },
            ),
            (
                "PRIMARY.DB.service.muster.",
                Target::Primary {
                    service: "db".into(),
                },
            ),
            ("primary.service.muster.", service("primary", None)),
            ("web.service.eu.extra.muster.", Target::Missing),
            ("a.b.service.muster.", Target::Missing),
            ("other.muster.", Target::Missing),
            ("web.other.muster.", Target::Missing),
            ("web.service.muster.example.", Target::Outside),
            ("example.com.", Target::Outside),
            (".", Target::Outside),
            ("muster.com.", Target::Outside),
        ] {
            assert_eq!(target(name), expected, "{name}");
        }
    }

    #[test]
    fn a_label_that_is_not_utf8_names_nothing() {
        let name = Name::from_labels([&b"\xff\xfe"[..], b"service", b"muster"]).unwrap();
        assert_eq!(parse(&name), Target::Missing);
        let name = Name::from_labels([&b"\xff"[..], b"node", b"muster"]).unwrap();
        assert_eq!(parse(&name), Target::Missing);
    }

    #[test]
    fn node_names_keep_their_case_and_split_at_dots() {
        assert_eq!(
            node_name("Eu-A").unwrap(),
            Name::from_ascii("Eu-A.node.muster.").unwrap()
        );
        assert_eq!(node_name("eu-a").unwrap().to_string(), "eu-a.node.muster.");
        assert_eq!(
            node_name("web1.example.com").unwrap().to_string(),
            "web1.example.com.node.muster."
        );
        // Every name built here parses back to the node it names.
        for node in ["eu-a", "web1.example.com", "x"] {
            assert_eq!(
                parse(&node_name(node).unwrap()),
                Target::Node { node: node.into() }
            );
        }
    }

    #[test]
    fn node_names_that_cannot_be_dns_names_have_none() {
        for bad in ["", ".", "a..b", ".a", "a.", &"x".repeat(64)] {
            assert!(node_name(bad).is_none(), "{bad:?}");
        }
        // 63-byte labels are fine; 255 bytes in all is the limit.
        assert!(node_name(&"x".repeat(63)).is_some());
        let long = vec!["y".repeat(60); 4].join(".");
        assert!(node_name(&long).is_none(), "{} bytes", long.len());
    }

    #[test]
    fn the_apex_and_names_under_it() {
        assert_eq!(apex().to_string(), "muster.");
        assert_eq!(
            under_apex("hostmaster").unwrap().to_string(),
            "hostmaster.muster."
        );
    }
}
