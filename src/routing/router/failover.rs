//! The failover state machine of one (service, caller region) pair, and the sentences
//! that explain its states.
//!
//! A [`Track`] remembers its [`RuleState`], when that state began, and the trigger's
//! last observed value with when it took that value. Time is only ever an argument:
//! [`Track::observe`] records the trigger at a call, [`Track::next`] says which state
//! follows (one step), and the router repeats the step until nothing changes. Deadlines
//! are counted from when the trigger changed value, so a state entered late (at the first
//! call after a deadline) is judged by how long the trigger has really held.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::duration::format_duration;
use crate::proto::Time;
use crate::routing::rule::{Action, Failback, FailoverRule};

/// The state of a service's failover rule for one caller region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleState {
    /// The trigger does not hold: traffic stays in the caller's region.
    Normal,
    /// The trigger holds, for less than the rule's timeout so far: traffic still stays.
    Pending,
    /// The trigger has held for the timeout: traffic goes to the action's regions first.
    /// With a manual failback it stays here, after the region heals, until a reset.
    FailedOver,
    /// Failed over, and the trigger has stopped holding: traffic returns once it has not
    /// held for the failback hold.
    FailingBack,
    /// An operator sent the service's traffic to one region until a reset.
    Forced,
    /// The caller's region has no instance of the service at all: the action's regions
    /// apply at once.
    Remote,
}

impl RuleState {
    /// Kebab-case name, as in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Normal => "normal",
            RuleState::Pending => "pending",
            RuleState::FailedOver => "failed-over",
            RuleState::FailingBack => "failing-back",
            RuleState::Forced => "forced",
            RuleState::Remote => "remote",
        }
    }

    /// Whether traffic goes to the action's regions first in this state.
    pub(super) fn uses_action(self) -> bool {
        matches!(
            self,
            RuleState::FailedOver | RuleState::FailingBack | RuleState::Remote
        )
    }
}

impl fmt::Display for RuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step needs to know about the catalog besides the trigger.
#[derive(Debug, Clone, Copy)]
pub(super) struct Input<'a> {
    /// The caller's region has at least one instance of the service (any health).
    pub registered: bool,
    /// An operator forced the service to a region.
    pub forced: bool,
    /// The service's rule.
    pub rule: &'a FailoverRule,
}

impl Input<'_> {
    /// The state a pair starts in when first seen (the trigger is judged by the first
    /// steps after, so a region first seen with nothing passing goes to `pending`).
    pub(super) fn initial(self) -> RuleState {
        if self.forced {
            RuleState::Forced
        } else if !self.registered {
            RuleState::Remote
        } else {
            RuleState::Normal
        }
    }
}

/// The rule state of one (service, caller region) pair over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Track {
    /// The current state.
    pub state: RuleState,
    /// When the current state began.
    pub since: Time,
    /// Whether the trigger held at the last observation.
    pub holds: bool,
    /// When the trigger took its current value (as seen at a call).
    pub holds_since: Time,
}

impl Track {
    /// A pair first seen at `now`.
    pub(super) fn new(now: Time, holds: bool, input: Input<'_>) -> Track {
        Track {
            state: input.initial(),
            since: now,
            holds,
            holds_since: now,
        }
    }

    /// Records the trigger's value at `now`.
    pub(super) fn observe(&mut self, now: Time, holds: bool) {
        if holds != self.holds {
            self.holds = holds;
            self.holds_since = now;
        }
    }

    /// Moves to `state` at `now`.
    pub(super) fn enter(&mut self, now: Time, state: RuleState) {
        self.state = state;
        self.since = now;
    }

    /// The state that follows at `now`, if any (one step; the router repeats it).
    pub(super) fn next(&self, now: Time, input: Input<'_>) -> Option<RuleState> {
        use RuleState::*;
        if input.forced {
            return (self.state != Forced).then_some(Forced);
        }
        if !input.registered {
            return (self.state != Remote).then_some(Remote);
        }
        let rule = input.rule;
        match self.state {
            // Leaving a state that ignored the trigger: judge it afresh.
            Forced | Remote => Some(if self.holds { Pending } else { Normal }),
            Normal => self.holds.then_some(Pending),
            Pending if !self.holds => Some(Normal),
            Pending => (now >= self.holds_since + rule.timeout).then_some(FailedOver),
            FailedOver if self.holds => None,
            FailedOver => match rule.failback {
                Failback::After(_) => Some(FailingBack),
                Failback::Manual => None,
            },
            FailingBack if self.holds => Some(FailedOver),
            FailingBack => match rule.failback {
                Failback::After(hold) => (now >= self.holds_since + hold).then_some(Normal),
                Failback::Manual => Some(FailedOver),
            },
        }
    }

    /// When this track next changes state by itself, if nothing else changes.
    pub(super) fn deadline(&self, rule: &FailoverRule) -> Option<Time> {
        match (self.state, rule.failback) {
            (RuleState::Pending, _) if self.holds => Some(self.holds_since + rule.timeout),
            (RuleState::FailingBack, Failback::After(hold)) if !self.holds => {
                Some(self.holds_since + hold)
            }
            _ => None,
        }
    }

    /// Failed over, healed, and waiting for an operator's reset.
    pub(super) fn awaits_reset(&self, rule: &FailoverRule) -> bool {
        self.state == RuleState::FailedOver && !self.holds && rule.failback == Failback::Manual
    }
}

/// What a reason sentence is about.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts<'a> {
    /// The service.
    pub service: &'a str,
    /// The caller's region.
    pub region: &'a str,
    /// Passing instances in the caller's region (what the trigger counts).
    pub passing: usize,
    /// The service's rule.
    pub rule: &'a FailoverRule,
    /// The regions in force, in order.
    pub regions: &'a [String],
    /// The region an operator forced, if any.
    pub forced: Option<&'a str>,
}

/// A human sentence saying why `track` is in its state at `now`.
pub(super) fn reason(track: &Track, now: Time, facts: Facts<'_>) -> String {
    let Facts {
        service,
        region,
        passing,
        rule,
        regions,
        forced,
    } = facts;
    let held = seconds(now.saturating_since(track.holds_since));
    let count = format!(
        "region {region} has {passing} passing instance{}",
        if passing == 1 { "" } else { "s" }
    );
    let n = rule.trigger.fewer_than;
    // "us, ap, then eu": the other regions in force, then the caller's own if it is in
    // force too (a `fewer-than N` trigger leaves some of its instances).
    let targets = || {
        let others: Vec<&str> = regions
            .iter()
            .map(String::as_str)
            .filter(|r| *r != region)
            .collect();
        if others.is_empty() {
            return None;
        }
        let own = regions.iter().any(|r| r == region);
        Some(format!(
            "{}{}",
            others.join(", "),
            if own {
                format!(", then {region}")
            } else {
                String::new()
            }
        ))
    };
    let failed_over = || match targets() {
        Some(t) => format!("failed over to {t}"),
        None => "failed over, but no other region has a healthy instance".to_string(),
    };
    match track.state {
        RuleState::Normal => format!("{count} (not fewer than {n}): traffic stays in {region}"),
        RuleState::Pending => {
            let left = (track.holds_since + rule.timeout).saturating_since(now);
            format!(
                "{count} (fewer than {n}) for {held}: failing over in {} unless it recovers",
                seconds(left)
            )
        }
        RuleState::FailedOver if track.holds => {
            format!("{count} (fewer than {n}) for {held}: {}", failed_over())
        }
        RuleState::FailedOver => format!(
            "{count} again (not fewer than {n}) for {held}, but failback is manual: \
             {} until `muster failover reset {service}`",
            failed_over()
        ),
        RuleState::FailingBack => {
            let left = match rule.failback {
                Failback::After(hold) => (track.holds_since + hold).saturating_since(now),
                Failback::Manual => Duration::ZERO,
            };
            format!(
                "{count} again (not fewer than {n}) for {held}: failing back in {}; until then {}",
                seconds(left),
                failed_over()
            )
        }
        RuleState::Forced => format!(
            "forced to region {} by an operator {} ago, until `muster failover reset {service}`",
            forced.unwrap_or("?"),
            seconds(now.saturating_since(track.since))
        ),
        RuleState::Remote => match targets() {
            Some(t) => format!("region {region} has no instance of {service}: sent to {t}"),
            None => format!(
                "region {region} has no instance of {service}, and no other region has a healthy one"
            ),
        },
    }
}

/// A duration in seconds with one decimal, as in reasons: `2.1s`.
pub(super) fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The action as shown in a rule view: `nearest` or the regions joined by `, `.
pub(super) fn action_text(action: &Action) -> String {
    match action {
        Action::Nearest => "nearest".into(),
        Action::Regions(regions) => regions.join(", "),
    }
}

/// The failback as shown in a rule view: `10s` or `manual`.
pub(super) fn failback_text(failback: Failback) -> String {
    match failback {
        Failback::After(hold) => format_duration(hold),
        Failback::Manual => "manual".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::rule::Trigger;

    fn at(secs: u64) -> Time {
        Time::from_duration(Duration::from_secs(secs))
    }

    /// Steps `track` until it settles, as the router does; returns the states passed.
    fn settle(track: &mut Track, now: Time, input: Input<'_>) -> Vec<RuleState> {
        let mut seen = Vec::new();
        while let Some(next) = track.next(now, input) {
            track.enter(now, next);
            seen.push(next);
        }
        seen
    }

    #[test]
    fn table_of_single_steps() {
        use RuleState::*;
        let rule = FailoverRule::default(); // timeout 2s, failback after 10s
        let manual = FailoverRule {
            failback: Failback::Manual,
            ..FailoverRule::default()
        };
        let live = |rule| Input {
            registered: true,
            forced: false,
            rule,
        };
        // (state, holds, held for secs, rule, expected next)
        let table: &[(RuleState, bool, u64, &FailoverRule, Option<RuleState>)] = &[
            (Normal, false, 5, &rule, None),
            (Normal, true, 0, &rule, Some(Pending)),
            (Pending, true, 1, &rule, None),
            (Pending, true, 2, &rule, Some(FailedOver)),
            (Pending, false, 0, &rule, Some(Normal)),
            (FailedOver, true, 100, &rule, None),
            (FailedOver, false, 0, &rule, Some(FailingBack)),
            (FailedOver, false, 100, &manual, None),
            (FailingBack, false, 9, &rule, None),
            (FailingBack, false, 10, &rule, Some(Normal)),
            (FailingBack, true, 0, &rule, Some(FailedOver)),
            (FailingBack, false, 0, &manual, Some(FailedOver)),
            (Remote, true, 0, &rule, Some(Pending)),
            (Remote, false, 0, &rule, Some(Normal)),
            (Forced, false, 0, &rule, Some(Normal)),
        ];
        for &(state, holds, held, rule, expected) in table {
            let track = Track {
                state,
                since: at(0),
                holds,
                holds_since: at(100),
            };
            assert_eq!(
                track.next(at(100 + held), live(rule)),
                expected,
                "{state} holds={holds} held={held}s"
            );
        }
    }

    #[test]
    fn forced_and_unregistered_override_the_trigger() {
        let rule = FailoverRule::default();
        let mut track = Track::new(
            at(0),
            false,
            Input {
                registered: true,
                forced: false,
                rule: &rule,
            },
        );
        let forced = Input {
            registered: true,
            forced: true,
            rule: &rule,
        };
        assert_eq!(settle(&mut track, at(1), forced), [RuleState::Forced]);
        let gone = Input {
            registered: false,
            forced: false,
            rule: &rule,
        };
        assert_eq!(settle(&mut track, at(2), gone), [RuleState::Remote]);
    }

    #[test]
    fn a_trigger_that_held_long_enough_fails_over_in_one_call() {
        let rule = FailoverRule {
            trigger: Trigger { fewer_than: 2 },
            ..FailoverRule::default()
        };
        let input = Input {
            registered: true,
            forced: false,
            rule: &rule,
        };
        let mut track = Track::new(at(0), true, input);
        track.state = RuleState::Forced;
        let input = Input {
            forced: false,
            ..input
        };
        assert_eq!(
            settle(&mut track, at(30), input),
            [RuleState::Pending, RuleState::FailedOver]
        );
        assert_eq!(track.deadline(&rule), None);
    }

    #[test]
    fn deadlines_count_from_when_the_trigger_changed() {
        let rule = FailoverRule::default();
        let pending = Track {
            state: RuleState::Pending,
            since: at(5),
            holds: true,
            holds_since: at(4),
        };
        assert_eq!(pending.deadline(&rule), Some(at(6)));
        let back = Track {
            state: RuleState::FailingBack,
            holds: false,
            ..pending
        };
        assert_eq!(back.deadline(&rule), Some(at(14)));
    }
}
