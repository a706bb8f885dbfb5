//! Read-only snapshots of the replicated key-value state, for readers outside the driver
//! (the HTTP API, the router): one immutable map per member, shared between snapshots so
//! a change to one member's state copies only that member's map.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::proto::{KvMap, Node};
use crate::wire::Name;

/// One member's replicated map as this node holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemberKv {
    /// The map's epoch (a new one replaced the map wholesale).
    pub epoch: u64,
    /// Highest version held.
    pub version: u64,
    /// Live entries by key.
    pub entries: BTreeMap<String, KvValue>,
}

/// One live entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvValue {
    /// The value.
    pub value: String,
    /// The version the owner gave the write.
    pub version: u64,
}

impl MemberKv {
    /// Copies a map out of the core.
    pub fn of(map: &KvMap) -> MemberKv {
        MemberKv {
            epoch: map.epoch(),
            version: map.version(),
            entries: map
                .iter()
                .map(|(k, v, version)| {
                    (
                        k.to_owned(),
                        KvValue {
                            value: v.to_owned(),
                            version,
                        },
                    )
                })
                .collect(),
        }
    }

    /// A value by key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }
}

/// Every member's replicated map held by this node, by member name.
pub type KvMaps = Arc<BTreeMap<Name, Arc<MemberKv>>>;

/// The whole snapshot, built from scratch.
pub(super) fn snapshot(node: &Node) -> KvMaps {
    Arc::new(
        node.kv_maps()
            .map(|(n, m)| (n.clone(), Arc::new(MemberKv::of(m))))
            .collect(),
    )
}

/// `previous` with the maps of `changed` members re-read from the node (and dropped for
/// members it no longer holds).
pub(super) fn refresh(previous: &KvMaps, node: &Node, changed: &[Name]) -> KvMaps {
    let mut maps = (**previous).clone();
    for name in changed {
        match node.kv(name) {
            Some(m) => {
                maps.insert(name.clone(), Arc::new(MemberKv::of(m)));
            }
            None => {
                maps.remove(name);
            }
        }
    }
    Arc::new(maps)
}
