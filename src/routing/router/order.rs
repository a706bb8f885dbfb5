//! Which regions a failover sends traffic to, and the order of instances inside a region.
//!
//! Inside a region: the caller's zone first (only in the caller's own region), alive
//! members before suspect ones, then weighted rendezvous hashing, then node name, port
//! and address so the order is total. Everything here is a pure function of its
//! arguments.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use super::{Caller, Instance};
use crate::routing::rule::Action;
use crate::stable_hash::StableHasher;
use crate::wire::MemberState;

/// The weighted rendezvous score of `node` for `key` and `service`: lower goes first.
///
/// `-ln(u) / weight` with `u` uniform in (0, 1] from a stable hash is an exponential
/// variable with rate `weight`, and the smallest of several is instance `i` with
/// probability `weight_i / Σ weight`: callers' first choices spread in proportion to
/// weight, and removing one instance only moves the callers that had it first. Weight 0
/// scores infinity: such an instance is a standby, last in its tier.
pub(super) fn rendezvous_score(key: &str, node: &str, service: &str, weight: u32) -> f64 {
    if weight == 0 {
        return f64::INFINITY;
    }
    let hash = StableHasher::default()
        .write_str(key)
        .write_str(node)
        .write_str(service)
        .finish();
    // The top 53 bits, plus one so u is never 0 (ln 0 is -inf), over 2^53: u in (0, 1].
    let u = ((hash >> 11) + 1) as f64 / (1u64 << 53) as f64;
    -u.ln() / f64::from(weight)
}

/// Orders one region's instances for `caller` (see the module doc for the order).
pub(super) fn order_instances<'a>(
    instances: Vec<&'a Instance>,
    caller: &Caller,
    service: &str,
) -> Vec<&'a Instance> {
    let mut keyed: Vec<(bool, bool, f64, &'a Instance)> = instances
        .into_iter()
        .map(|i| {
            let other_zone = !(i.region == caller.region && i.zone == caller.zone);
            let suspect = i.member != MemberState::Alive;
            let score = rendezvous_score(&caller.key, &i.node, service, i.weight);
            (other_zone, suspect, score, i)
        })
        .collect();
    keyed.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
            .then_with(|| a.3.node.cmp(&b.3.node))
            .then(a.3.port.cmp(&b.3.port))
            .then(a.3.address.cmp(&b.3.address))
    });
    keyed.into_iter().map(|(.., i)| i).collect()
}

/// The action's regions that have a healthy instance, in the action's order, without the
/// caller's own region (its remaining instances come after them, not among them).
///
/// `Nearest`: every other region with a healthy instance, by measured round-trip time,
/// unmeasured ones last, ties by name. `Regions(list)`: the listed ones, in list order,
/// each once.
pub(super) fn action_regions<T>(
    action: &Action,
    healthy: &BTreeMap<&str, T>,
    caller_region: &str,
    rtt: &BTreeMap<String, Duration>,
) -> Vec<String> {
    match action {
        Action::Nearest => {
            // BTreeMap keys come sorted by name, and the sort is stable: ties keep it.
            let mut regions: Vec<&str> = healthy
                .keys()
                .copied()
                .filter(|r| *r != caller_region)
                .collect();
            regions.sort_by(|a, b| compare_rtt(rtt.get(*a), rtt.get(*b)));
            regions.into_iter().map(String::from).collect()
        }
        Action::Regions(list) => {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for r in list {
                if r != caller_region && healthy.contains_key(r.as_str()) && !out.contains(r) {
                    out.push(r.clone());
                }
            }
            out
        }
    }
}

/// Measured before unmeasured, then shorter first.
fn compare_rtt(a: Option<&Duration>, b: Option<&Duration>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_score_is_stable_and_weighted() {
        let a = rendezvous_score("caller-1", "node-a", "web", 1);
        assert_eq!(a, rendezvous_score("caller-1", "node-a", "web", 1));
        assert!(a >= 0.0 && a.is_finite());
        // Same hash, three times the weight: a third of the score.
        let heavy = rendezvous_score("caller-1", "node-a", "web", 3);
        assert!((heavy * 3.0 - a).abs() < 1e-12);
        assert_eq!(
            rendezvous_score("caller-1", "node-a", "web", 0),
            f64::INFINITY
        );
        assert_ne!(a, rendezvous_score("caller-2", "node-a", "web", 1));
        assert_ne!(a, rendezvous_score("caller-1", "node-a", "api", 1));
    }

    #[test]
    fn nearest_orders_by_rtt_unmeasured_last_ties_by_name() {
        let healthy: BTreeMap<&str, ()> = ["eu", "us", "ap", "sa", "af", "me"]
            .into_iter()
            .map(|r| (r, ()))
            .collect();
        let rtt: BTreeMap<String, Duration> = [("us", 80), ("ap", 150), ("me", 80), ("eu", 1)]
            .into_iter()
            .map(|(r, ms)| (r.to_string(), Duration::from_millis(ms)))
            .collect();
        assert_eq!(
            action_regions(&Action::Nearest, &healthy, "eu", &rtt),
            ["me", "us", "ap", "af", "sa"]
        );
    }

    #[test]
    fn listed_regions_keep_list_order_and_skip_unhealthy_own_and_repeats() {
        let healthy: BTreeMap<&str, ()> = ["eu", "us", "ap"].into_iter().map(|r| (r, ())).collect();
        let list = Action::Regions(
            ["sa", "ap", "eu", "us", "ap"]
                .into_iter()
                .map(String::from)
                .collect(),
        );
        assert_eq!(
            action_regions(&list, &healthy, "eu", &BTreeMap::new()),
            ["ap", "us"]
        );
    }
}
