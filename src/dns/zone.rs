//! [`AgentZone`]: the `muster.` zone as this agent sees it, the [`ZoneData`] its DNS
//! server answers from.
//!
//! - **Services** come from [`Services::route`] for this agent's own caller (its region,
//!   zone and node name), with no limit and `warning` not counted as healthy: the same
//!   order, failover rules and debounced catalog as `GET /v1/route/{service}`, so DNS
//!   answers move once per burst of membership or state changes, not once per gossip
//!   message. A region-scoped name is [`RouteQuery::region`].
//! - **Members** (node names, and which regions exist) come from a membership snapshot
//!   debounced the same way ([`DEBOUNCE_QUIET`](crate::routing::services::DEBOUNCE_QUIET), [`DEBOUNCE_MAX`](crate::routing::services::DEBOUNCE_MAX)), kept by a task
//!   ([`follow_members`]); live members only (alive or suspect).
//!
//! Names match ASCII case-insensitively. When two services, nodes or regions differ only
//! by case, a name finds the one spelt all in lowercase if there is one, else the first
//! in byte order: the answer never depends on the case of the query.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::message::ZoneData;
use super::records::{self, Endpoint};
use crate::agent::{Members, MeshView};
use crate::routing::router::RouteQuery;
use crate::routing::services::{PrimaryError, Services, settle};

/// What the zone knows of the membership: live members and their regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberTable {
    /// Live members' addresses, by lowercased node name.
    nodes: BTreeMap<String, (String, IpAddr)>,
    /// Regions of live members, by lowercased name.
    regions: BTreeMap<String, String>,
}

impl MemberTable {
    /// The table of a membership snapshot.
    pub fn of(members: &Members) -> MemberTable {
        let mut table = MemberTable::default();
        for m in members.iter().filter(|m| m.state.is_live()) {
            let name = m.name.as_str();
            let key = name.to_ascii_lowercase();
            let keep = table
                .nodes
                .get(&key)
                .is_none_or(|(current, _)| prefer(name, current, &key));
            if keep {
                table.nodes.insert(key, (name.to_owned(), m.addr.ip()));
            }
            insert_name(&mut table.regions, m.region.as_str());
        }
        table
    }

    /// The address of the live member named `node` (lowercased).
    pub fn node(&self, node: &str) -> Option<IpAddr> {
        self.nodes.get(node).map(|(_, address)| *address)
    }

    /// The region named `region` (lowercased), as its members spell it.
    pub fn region(&self, region: &str) -> Option<&str> {
        self.regions.get(region).map(String::as_str)
    }
}

/// Whether `candidate` should stand for `key` rather than `current` (see the module doc).
fn prefer(candidate: &str, current: &str, key: &str) -> bool {
    match (candidate == key, current == key) {
        (true, _) => true,
        (false, true) => false,
        (false, false) => candidate < current,
    }
}

/// Adds `name` to a map from lowercased names, by [`prefer`].
fn insert_name(map: &mut BTreeMap<String, String>, name: &str) {
    let key = name.to_ascii_lowercase();
    let keep = map
        .get(&key)
        .is_none_or(|current| prefer(name, current, &key));
    if keep {
        map.insert(key, name.to_owned());
    }
}

/// Service names by lowercased name, as of one catalog generation.
#[derive(Debug, Default)]
struct ServiceNames {
    /// The catalog index they were read at; `None` before the first read.
    index: Option<u64>,
    by_lower: BTreeMap<String, String>,
}

/// The zone as this agent sees it. See the module doc.
#[derive(Debug)]
pub struct AgentZone {
    services: Services,
    members: watch::Receiver<Arc<MemberTable>>,
    /// Bumped by every member table change: part of the SOA serial.
    member_changes: watch::Receiver<u64>,
    names: Mutex<ServiceNames>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A plain map: still usable after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AgentZone {
    /// The zone over `services`, with the member table `follow_members` keeps.
    pub fn new(services: Services, members: &MemberFeed) -> AgentZone {
        AgentZone {
            services,
            members: members.table.subscribe(),
            member_changes: members.changes.subscribe(),
            names: Mutex::new(ServiceNames::default()),
        }
    }

    /// The registered service named `service` (lowercased), as registered.
    fn service_name(&self, service: &str) -> Option<String> {
        let index = self.services.index();
        let mut names = lock(&self.names);
        if names.index != Some(index) {
            // Once per catalog generation: the catalog is copied, then only its names kept.
            let mut by_lower = BTreeMap::new();
            for name in self.services.catalog().services.keys() {
                insert_name(&mut by_lower, name);
            }
            *names = ServiceNames {
                index: Some(index),
                by_lower,
            };
        }
        names.by_lower.get(service).cloned()
    }
}

impl ZoneData for AgentZone {
    fn service(&self, service: &str, region: Option<&str>) -> Option<Vec<Endpoint>> {
        let name = self.service_name(service)?;
        let region = match region {
            Some(r) => Some(self.members.borrow().region(r)?.to_owned()),
            None => None,
        };
        let query = RouteQuery {
            region,
            ..RouteQuery::default()
        };
        // Unknown here means it left between the two reads: it does not exist now.
        let answer = self.services.route(&name, None, &query).ok()?;
        Some(records::endpoints(&answer.instances, self.services.home()))
    }

    fn primary(&self, service: &str) -> Option<Vec<Endpoint>> {
        let name = self.service_name(service)?;
        match self.services.primary(&name) {
            Ok(view) => Some(vec![Endpoint {
                node: view.primary.node,
                address: view.primary.address,
                port: view.primary.port,
                weight: view.primary.weight,
                priority: 1,
            }]),
            // The service is in primary mode, and no instance holds the role now.
            Err(PrimaryError::NoPrimary(_)) => Some(Vec::new()),
            Err(PrimaryError::UnknownService(_) | PrimaryError::NotPrimaryMode(_)) => None,
        }
    }

    fn node(&self, node: &str) -> Option<IpAddr> {
        self.members.borrow().node(node)
    }

    fn has_region(&self, region: &str) -> bool {
        self.members.borrow().region(region).is_some()
    }

    fn serial(&self) -> u32 {
        // Both counters only grow, so their sum moves whenever either does; the SOA
        // serial is 32 bits and compared modulo 2^32 (RFC 1982).
        let sum = self
            .services
            .index()
            .wrapping_add(*self.member_changes.borrow());
        sum as u32
    }
}

/// The debounced member table and its change count, kept by [`follow_members`].
#[derive(Debug)]
pub struct MemberFeed {
    table: watch::Sender<Arc<MemberTable>>,
    changes: watch::Sender<u64>,
}

impl MemberFeed {
    /// A feed holding the table of `view`'s current membership.
    pub fn new(view: &MeshView) -> MemberFeed {
        let (table, _) = watch::channel(Arc::new(MemberTable::of(&view.members())));
        let (changes, _) = watch::channel(0);
        MemberFeed { table, changes }
    }
}

/// Keeps `feed` in line with `view`'s membership: a new table once per burst of
/// changes — when nothing has changed for [`DEBOUNCE_QUIET`](crate::routing::services::DEBOUNCE_QUIET), or [`DEBOUNCE_MAX`](crate::routing::services::DEBOUNCE_MAX) after
/// the burst's first change — and only when the table differs (round-trip times move
/// the snapshot, not the table). Returns when the mesh has stopped.
pub async fn follow_members(view: MeshView, feed: Arc<MemberFeed>) {
    let mut members = view.watch();
    loop {
        let table = MemberTable::of(&members.borrow_and_update().clone());
        let changed = feed.table.send_if_modified(|current| {
            if **current == table {
                return false;
            }
            *current = Arc::new(table);
            true
        });
        if changed {
            feed.changes.send_modify(|n| *n += 1);
        }
        if members.changed().await.is_err() || !settle(&mut members).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MemberInfo, Time};
    use crate::wire::{MemberState, Tags};

    fn member(name: &str, addr: &str, region: &str, state: MemberState) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            addr: addr.parse().unwrap(),
            incarnation: 1,
            state,
            region: region.into(),
            zone: "z".into(),
            tags: Tags::new(),
            state_changed: Time::ZERO,
            rtt: None,
            key: crate::wire::NodeKey([0; 32]),
        }
    }

    #[test]
    fn the_member_table_holds_live_members_case_insensitively() {
        let members: Members = Arc::new(vec![
            member("EU-A", "127.0.0.2:1", "EU", MemberState::Alive),
            member("eu-b", "127.0.0.3:1", "eu", MemberState::Suspect),
            member("gone", "127.0.0.4:1", "mars", MemberState::Dead),
            member("left", "127.0.0.5:1", "moon", MemberState::Left),
            member("v6", "[::1]:1", "us", MemberState::Alive),
        ]);
        let t = MemberTable::of(&members);
        assert_eq!(t.node("eu-a"), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(t.node("eu-b"), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(t.node("v6"), Some("::1".parse().unwrap()));
        assert_eq!(t.node("gone"), None);
        assert_eq!(t.node("left"), None);
        // "eu" is spelt both ways: the lowercase spelling stands for both.
        assert_eq!(t.region("eu"), Some("eu"));
        assert_eq!(t.region("us"), Some("us"));
        assert_eq!(t.region("mars"), None);
    }

    #[test]
    fn a_name_prefers_its_lowercase_spelling_then_byte_order() {
        let mut map = BTreeMap::new();
        for name in ["Web", "WEB", "web", "wEb"] {
            insert_name(&mut map, name);
        }
        assert_eq!(map["web"], "web");
        let mut map = BTreeMap::new();
        for name in ["wEb", "Web", "WEB"] {
            insert_name(&mut map, name);
        }
        assert_eq!(map["web"], "WEB");
    }
}
