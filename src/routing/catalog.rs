//! The router's input, read off the agent's snapshots: every live member's published
//! service instances, the failover rule of each service, and this agent's round-trip
//! time to each region.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::agent::KvMaps;
use crate::proto::MemberInfo;
use crate::routing::primary::{Candidate, Election};
use crate::routing::record::{self, ServiceRecord};
use crate::routing::router::{Catalog, Instance};
use crate::routing::rule::FailoverRule;
use crate::routing::spec::ServiceMode;

/// Every service record of the members' replicated state, decoded once: (member,
/// service name, record), members in snapshot order (sorted by name), failed and left
/// members included.
fn records<'a>(
    members: &'a [MemberInfo],
    kv: &'a KvMaps,
) -> impl Iterator<Item = (&'a MemberInfo, &'a str, ServiceRecord)> {
    members.iter().flat_map(move |m| {
        kv.get(&m.name)
            .into_iter()
            .flat_map(|map| map.entries.range(record::KEY_PREFIX.to_owned()..))
            .map_while(|(key, entry)| record::service_of(key).map(|s| (s, entry)))
            .filter_map(move |(service, entry)| {
                ServiceRecord::decode(&entry.value).map(|rec| (m, service, rec))
            })
    })
}

/// Reads the catalog and the primary-role elections in one pass over the records.
///
/// The catalog: every live member's instances. `local_rules` (this agent's own config)
/// win over rules carried by instances; otherwise a service's rule is the one its first
/// instance by node name carries.
///
/// The elections: one per service whose instances are in `primary` mode (the mode and
/// failback setting of its first live instance by node name), with every instance on a
/// live member as a candidate, and the highest claim left in the records of members
/// that are not live.
pub fn read(
    members: &[MemberInfo],
    kv: &KvMaps,
    local_rules: &BTreeMap<String, FailoverRule>,
) -> (Catalog, BTreeMap<String, Election>) {
    let mut catalog = Catalog {
        rules: local_rules.clone(),
        ..Catalog::default()
    };
    let mut elections: BTreeMap<String, Election> = BTreeMap::new();
    let mut balanced: BTreeSet<String> = BTreeSet::new();
    let mut retired: BTreeMap<String, u64> = BTreeMap::new();
    for (m, service, rec) in records(members, kv) {
        if !m.state.is_live() {
            let r = retired.entry(service.to_owned()).or_default();
            *r = (*r).max(rec.claim);
            continue;
        }
        catalog
            .rules
            .entry(service.to_owned())
            .or_insert_with(|| rec.failover.clone());
        catalog
            .services
            .entry(service.to_owned())
            .or_default()
            .push(Instance {
                node: m.name.to_string(),
                address: m.addr.ip(),
                port: rec.port,
                region: m.region.to_string(),
                zone: m.zone.to_string(),
                member: m.state,
                status: rec.status,
                weight: rec.weight,
            });
        if balanced.contains(service) {
            continue;
        }
        if !elections.contains_key(service) && rec.mode != ServiceMode::Primary {
            balanced.insert(service.to_owned());
            continue;
        }
        let election = elections
            .entry(service.to_owned())
            .or_insert_with(|| Election {
                failback: rec.failback,
                candidates: Vec::new(),
                retired_claim: 0,
            });
        election.candidates.push(Candidate {
            node: m.name.to_string(),
            member: m.state,
            status: rec.status,
            priority: rec.priority,
            claim: rec.claim,
        });
    }
    for (service, claim) in retired {
        if let Some(e) = elections.get_mut(&service) {
            e.retired_claim = claim;
        }
    }
    catalog.region_rtt = region_rtt(members);
    (catalog, elections)
}

/// The catalog alone (see [`read`]).
pub fn build(
    members: &[MemberInfo],
    kv: &KvMaps,
    local_rules: &BTreeMap<String, FailoverRule>,
) -> Catalog {
    read(members, kv, local_rules).0
}

/// Median measured round-trip time to the live members of each region (regions with no
/// measurement are absent: the router orders them last).
pub fn region_rtt(members: &[MemberInfo]) -> BTreeMap<String, Duration> {
    let mut samples: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for m in members.iter().filter(|m| m.state.is_live()) {
        if let Some(rtt) = m.rtt {
            samples.entry(m.region.as_str()).or_default().push(rtt);
        }
    }
    samples
        .into_iter()
        .map(|(region, mut v)| {
            v.sort();
            // Whole milliseconds: sub-millisecond jitter must not reorder regions (nor
            // count as a catalog change) on every snapshot.
            let median = v[v.len() / 2];
            let rounded = Duration::from_millis(median.as_millis().max(1) as u64);
            (region.to_owned(), rounded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{KvValue, MemberKv};
    use crate::proto::Time;
    use crate::routing::HealthStatus;
    use crate::routing::spec::ServiceSpec;
    use crate::wire::{MemberState, Tags};
    use std::sync::Arc;

    fn member(name: &str, region: &str, state: MemberState, rtt_ms: Option<u64>) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            addr: "10.0.0.1:7946".parse().unwrap(),
            incarnation: 0,
            state,
            region: region.into(),
            zone: format!("{region}-1").into(),
            tags: Tags::new(),
            state_changed: Time::ZERO,
            rtt: rtt_ms.map(Duration::from_millis),
            key: crate::wire::NodeKey([0; 32]),
        }
    }

    fn state(entries: &[(&str, String)]) -> Arc<MemberKv> {
        Arc::new(MemberKv {
            epoch: 1,
            version: 2,
            entries: entries
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        KvValue {
                            value: v.clone(),
                            version: 2,
                        },
                    )
                })
                .collect(),
        })
    }

    #[test]
    fn live_members_instances_are_read_and_failed_ones_left_out() {
        let web = ServiceRecord::of(&ServiceSpec::new("web", 8080), HealthStatus::Passing).encode();
        let members = vec![
            member("a", "eu", MemberState::Alive, Some(2)),
            member("b", "us", MemberState::Dead, Some(40)),
            member("c", "us", MemberState::Suspect, Some(41)),
        ];
        let kv: KvMaps = Arc::new(
            [
                (
                    "a".into(),
                    state(&[(&record::key("web"), web.clone()), ("app/x", "1".into())]),
                ),
                ("b".into(), state(&[(&record::key("web"), web.clone())])),
                (
                    "c".into(),
                    state(&[
                        (&record::key("web"), web),
                        (&record::key("db"), "garbage".into()),
                    ]),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let catalog = build(&members, &kv, &BTreeMap::new());
        let nodes: Vec<&str> = catalog.services["web"]
            .iter()
            .map(|i| i.node.as_str())
            .collect();
        assert_eq!(nodes, vec!["a", "c"]);
        assert!(
            !catalog.services.contains_key("db"),
            "an unreadable record is left out"
        );
        assert_eq!(catalog.rules["web"], FailoverRule::default());
        assert_eq!(catalog.region_rtt["eu"], Duration::from_millis(2));
        assert_eq!(catalog.region_rtt["us"], Duration::from_millis(41));
    }
}
