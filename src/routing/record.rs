//! How a service instance travels: one key of its agent's replicated state per service,
//! `muster/svc/NAME`, holding a small JSON [`ServiceRecord`]. Every agent mirrors every
//! member's state, so every agent knows every instance, its weight and its health within
//! a gossip round or two; a member that fails or leaves takes its instances with it
//! (the catalog only reads live members' state).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::routing::HealthStatus;
use crate::routing::rule::FailoverRule;
use crate::routing::spec::{ServiceMode, ServiceSpec};

/// Prefix of the replicated-state keys that hold service instances.
pub const KEY_PREFIX: &str = "muster/svc/";

/// Prefix of every key Muster itself writes; the API refuses user writes under it.
pub const RESERVED_PREFIX: &str = "muster/";

/// The state key of service `name`.
pub fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// The service name of a state key, if it is a service key.
pub fn service_of(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_PREFIX).filter(|n| !n.is_empty())
}

/// One instance of a service, as its agent publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Port the instance listens on (at the member's address).
    pub port: u16,
    /// Capacity share.
    pub weight: u32,
    /// Health after its checks' thresholds, or `draining`.
    pub status: HealthStatus,
    /// Instance labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// How traffic spreads over the instances.
    #[serde(default)]
    pub mode: ServiceMode,
    /// Rank in `primary` mode (highest first).
    #[serde(default)]
    pub priority: u32,
    /// In `primary` mode: whether a recovered higher-priority instance takes the role back.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub failback: bool,
    /// In `primary` mode without failback: the term of this instance's claim to the
    /// role (0: none). The passing claimant with the highest term is the primary.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub claim: u64,
    /// The failover rule its agent declares (agents that run no instance of the service
    /// route by the rule its instances carry).
    #[serde(default)]
    pub failover: FailoverRule,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ServiceRecord {
    /// The record of a local service in `status`.
    pub fn of(spec: &ServiceSpec, status: HealthStatus) -> ServiceRecord {
        ServiceRecord {
            port: spec.port,
            weight: spec.weight,
            status,
            tags: spec.tags.clone(),
            mode: spec.mode,
            priority: spec.priority,
            failback: spec.failback,
            claim: 0,
            failover: spec.failover.clone().unwrap_or_default(),
        }
    }

    /// The JSON kept in the replicated state.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a service record always serialises")
    }

    /// Reads a record back; `None` for a value that is not one (written by a newer or
    /// broken agent): such an instance is left out rather than guessed at.
    pub fn decode(value: &str) -> Option<ServiceRecord> {
        serde_json::from_str(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_fit_an_inline_update() {
        let mut spec = ServiceSpec::new("web", 8080);
        spec.tags.insert("version".into(), "2".into());
        let rec = ServiceRecord::of(&spec, HealthStatus::Passing);
        let text = rec.encode();
        assert_eq!(ServiceRecord::decode(&text), Some(rec));
        assert!(text.len() < 512, "{} bytes: {text}", text.len());
        assert_eq!(service_of(&key("web")), Some("web"));
        assert_eq!(service_of("muster/svc/"), None);
        assert_eq!(service_of("app/x"), None);
        assert_eq!(ServiceRecord::decode("{\"port\": \"x\"}"), None);
    }
}
