//! Primary roles: for a service in `primary` mode, exactly one passing instance holds the
//! role, chosen by a pure function of the membership and the replicated service records,
//! so every agent that holds the same view names the same primary without a vote.
//!
//! **Who is eligible.** Instances on live members (alive or suspect: SWIM suspicion is not
//! failure, so a suspected primary keeps the role until it is declared failed or its
//! checks fail) whose status is `passing`. `warning`, `critical` and `draining` instances
//! never hold the role.
//!
//! **With failback** (the default): the eligible instance with the highest `priority`,
//! ties broken by node name (smallest first). A recovered instance of higher priority
//! takes the role back as soon as it passes again.
//!
//! **Without failback**: the instance holding the role keeps it while it is eligible. To
//! make "holding" something every agent sees the same way, the holder publishes a claim in
//! its service record: a term one above every claim it has seen, failed members' stale
//! records included (so a returning old primary whose old record still carries its old
//! claim does not tie with its replacement). The eligible claimant with the highest term
//! is the primary (ties: priority, then node name); with no eligible claimant, the highest
//! priority as above, which then claims. A claimant that sees a higher eligible claim
//! drops its own. The agent publishes a claim only once its instance has been primary for
//! a moment ([`crate::routing::services::CLAIM_SETTLE`]): a freshly started agent, which
//! has not yet pulled everyone's records, elects from a partial view and must not claim
//! on its strength.
//!
//! **What this is not.** It is not a lock. Every agent computes the primary from its own
//! view; views agree once gossip has spread the last change (tens of milliseconds on a
//! LAN, about a second at worst), and until then two agents may name different
//! primaries. During a partition each side elects from the members it can see, so each
//! side has its own primary; when the partition heals, the views merge and one primary
//! remains (without failback, the one with the newer claim). Work that must never run
//! twice needs a real lock or fencing. The claim term rises while records carrying
//! older claims are held, but it is not a durable counter (once every record with a
//! claim is gone, terms start again from 1), so it is no fencing token on its own.

use crate::routing::HealthStatus;
use crate::wire::MemberState;

/// One instance of a primary-mode service, as the election sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The member's node name.
    pub node: String,
    /// The member's liveness.
    pub member: MemberState,
    /// The instance's health.
    pub status: HealthStatus,
    /// Its priority: the highest eligible one is preferred.
    pub priority: u32,
    /// Its claim term (0: none).
    pub claim: u64,
}

impl Candidate {
    /// Whether it may hold the role.
    pub fn eligible(&self) -> bool {
        self.member.is_live() && self.status == HealthStatus::Passing
    }
}

/// The instances of one primary-mode service and its failback setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Election {
    /// Whether a recovered higher-priority instance takes the role back.
    pub failback: bool,
    /// Every instance on a live member, eligible or not.
    pub candidates: Vec<Candidate>,
    /// The highest claim in the records of members that are not live (failed or left):
    /// a new claim goes above it.
    pub retired_claim: u64,
}

/// Preference between two eligible candidates by priority: higher first, then the
/// smaller node name.
fn by_priority(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.node.cmp(&b.node))
}

impl Election {
    /// The primary, if any instance is eligible.
    pub fn primary(&self) -> Option<&Candidate> {
        let eligible = self.candidates.iter().filter(|c| c.eligible());
        if !self.failback
            && let Some(holder) = eligible
                .clone()
                .filter(|c| c.claim > 0)
                .min_by(|a, b| b.claim.cmp(&a.claim).then_with(|| by_priority(a, b)))
        {
            return Some(holder);
        }
        eligible.min_by(|a, b| by_priority(a, b))
    }

    /// The claim `node` should publish for this election: without failback, the primary
    /// keeps a claim (one above every claim seen, if it has none yet or another is
    /// higher); every other instance holds none. With failback, no claims.
    pub fn claim_for(&self, node: &str) -> u64 {
        if self.failback {
            return 0;
        }
        let Some(primary) = self.primary() else {
            return 0;
        };
        if primary.node != node {
            return 0;
        }
        let others = self
            .candidates
            .iter()
            .filter(|c| c.node != node)
            .map(|c| c.claim)
            .max()
            .unwrap_or(0)
            .max(self.retired_claim);
        if primary.claim > others {
            primary.claim
        } else {
            others.max(primary.claim) + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: &str, priority: u32, claim: u64) -> Candidate {
        Candidate {
            node: node.into(),
            member: MemberState::Alive,
            status: HealthStatus::Passing,
            priority,
            claim,
        }
    }

    fn primary(e: &Election) -> Option<&str> {
        e.primary().map(|c| c.node.as_str())
    }

    #[test]
    fn with_failback_the_highest_priority_passing_instance_is_primary() {
        let mut e = Election {
            failback: true,
            candidates: vec![c("a", 1, 0), c("b", 5, 0), c("c", 5, 0)],
            retired_claim: 0,
        };
        assert_eq!(
            primary(&e),
            Some("b"),
            "highest priority, then the smaller name"
        );
        e.candidates[1].status = HealthStatus::Critical;
        assert_eq!(primary(&e), Some("c"));
        e.candidates[2].member = MemberState::Dead;
        assert_eq!(primary(&e), Some("a"));
        e.candidates[2].member = MemberState::Suspect;
        assert_eq!(primary(&e), Some("c"), "a suspect keeps the role");
        e.candidates[2].status = HealthStatus::Draining;
        e.candidates[0].status = HealthStatus::Warning;
        assert_eq!(primary(&e), None, "warning and draining never hold it");
        // Claims mean nothing with failback.
        e.candidates[0].status = HealthStatus::Passing;
        e.candidates[0].claim = 9;
        e.candidates[1].status = HealthStatus::Passing;
        assert_eq!(primary(&e), Some("b"));
        assert_eq!(e.claim_for("b"), 0);
    }

    #[test]
    fn without_failback_the_replacement_keeps_the_role() {
        // a (priority 9) was primary; it failed and b took over.
        let mut e = Election {
            failback: false,
            candidates: vec![c("a", 9, 0), c("b", 1, 0)],
            retired_claim: 0,
        };
        e.candidates[0].member = MemberState::Dead;
        assert_eq!(primary(&e), Some("b"));
        assert_eq!(e.claim_for("b"), 1, "b claims one above every claim seen");
        e.candidates[1].claim = 1;
        // a comes back: b keeps the role, a claims nothing.
        e.candidates[0].member = MemberState::Alive;
        assert_eq!(primary(&e), Some("b"));
        assert_eq!(e.claim_for("a"), 0);
        assert_eq!(e.claim_for("b"), 1, "a held claim is kept as it is");
        // b fails: a is primary again, and claims above b's stale claim.
        e.candidates[1].status = HealthStatus::Critical;
        assert_eq!(primary(&e), Some("a"));
        assert_eq!(e.claim_for("a"), 2);
    }

    #[test]
    fn after_a_partition_the_newer_claim_wins() {
        let e = Election {
            failback: false,
            candidates: vec![c("a", 9, 1), c("b", 1, 2)],
            retired_claim: 0,
        };
        assert_eq!(primary(&e), Some("b"));
        assert_eq!(e.claim_for("a"), 0, "the older claimant drops its claim");
        let tie = Election {
            failback: false,
            candidates: vec![c("a", 1, 3), c("b", 9, 3)],
            retired_claim: 0,
        };
        assert_eq!(primary(&tie), Some("b"), "equal terms: priority decides");
    }

    #[test]
    fn a_new_claim_goes_above_a_failed_members_stale_claim() {
        // a held the role with claim 4 and failed: its record (claim 4) is retired.
        let e = Election {
            failback: false,
            candidates: vec![c("b", 1, 0)],
            retired_claim: 4,
        };
        assert_eq!(e.claim_for("b"), 5);
        // a returns before its new record replaces the old one: b's claim still wins.
        let back = Election {
            failback: false,
            candidates: vec![c("a", 9, 4), c("b", 1, 5)],
            retired_claim: 0,
        };
        assert_eq!(primary(&back), Some("b"));
    }

    #[test]
    fn no_candidate_no_primary() {
        assert_eq!(Election::default().primary(), None);
        assert_eq!(Election::default().claim_for("a"), 0);
    }
}
