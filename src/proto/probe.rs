//! Failure detection: the probe round, indirect probes through intermediaries (with
//! Lifeguard nacks), and confirmation checks of suspicions raised elsewhere.
//!
//! One probe is in flight at a time. A probe pings its target directly; with no ack by
//! the target's timeout it asks `indirect_checks` random members to ping it too; with no
//! ack by the deadline the target becomes suspect. Missing nacks raise this node's
//! health score, a success lowers it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::config::PROBE_DEADLINE_TIMEOUTS;
use crate::proto::event::Channel;
use crate::proto::node::{Check, Node, Phase, Probe, Relay};
use crate::proto::rng;
use crate::proto::stats::Refusal;
use crate::proto::time::Time;
use crate::proto::timer::Timer;
use crate::wire::{MemberState, Message, Name};

/// Share of its own probe timeout after which an intermediary gives up and nacks, so the
/// nack reaches the requester before the requester's deadline (memberlist uses 80%).
const NACK_AT: f64 = 0.8;

/// A node that announced at least this health score announces itself again when it is
/// back to 0, so probers stop waiting longer for it. Below it, the stale score costs
/// probers little and is not worth a cluster-wide gossip round.
const RECOVERY_ANNOUNCE_FROM: u8 = 2;

/// A node whose health score reaches this, having announced less, announces itself
/// (with a new incarnation): its probers then wait longer for its answers and its
/// suspicions last longer (see `update`), so a slow node is not declared failed before
/// it can refute.
const DEGRADED_ANNOUNCE_AT: u32 = 3;

/// Direct pings remembered for late RTT samples.
const RECENT_PINGS: usize = 32;

/// Upper bound of an RTT-derived probe timeout, in probe intervals: a peer answering
/// slower than this is treated as failing, however consistently slow it is.
const MAX_RTT_TIMEOUT_INTERVALS: u32 = 5;

/// Most ping-reqs relayed at once. A relay lives one probe timeout; a cluster asks one
/// member for a handful per probe interval (`indirect_checks` from each prober that
/// picked it), so this is far above honest use and bounds what a flood can hold.
pub const MAX_RELAYS: usize = 1024;

impl Node {
    /// Probe timeout toward one member: the configured timeout, or what its measured
    /// round trips call for if that is longer (`rtt_timeout_mult` × smoothed RTT, or
    /// `srtt + 4 × rttvar` for a peer whose answers turned slow), never more than
    /// [`MAX_RTT_TIMEOUT_INTERVALS`] probe intervals; then stretched by the local health
    /// score.
    pub(super) fn probe_timeout_for(&self, name: &str) -> Duration {
        self.awareness.scale(self.peer_timeout(name))
    }

    /// The probe timeout toward one member before this node's own health stretches it.
    fn peer_timeout(&self, name: &str) -> Duration {
        let base = self.config.probe_timeout;
        let peer_based = self.members.get(name).map_or(Duration::ZERO, |m| {
            let by_mult = m
                .rtt()
                .map_or(Duration::ZERO, |rtt| rtt * self.config.rtt_timeout_mult);
            let by_health = base * (u32::from(m.health()) + 1);
            by_mult
                .max(m.rtt_timeout().unwrap_or_default())
                .max(by_health)
        });
        let cap = self.config.probe_interval * MAX_RTT_TIMEOUT_INTERVALS;
        base.max(peer_based.min(cap))
    }

    /// Stops timing a ping: after a resend, its answer cannot be told from the first's.
    fn forget_ping(&mut self, seq: u32) {
        self.recent_pings.retain(|(s, ..)| *s != seq);
    }

    /// Remembers a direct ping so its ack, however late, becomes an RTT sample.
    fn remember_ping(&mut self, seq: u32, addr: SocketAddr, target: &Name, now: Time) {
        if self.recent_pings.len() >= RECENT_PINGS {
            self.recent_pings.pop_front();
        }
        self.recent_pings
            .push_back((seq, addr, target.clone(), now));
    }

    /// Picks the next member in probe order: alive or suspect, not this node. Reshuffles
    /// at the end of each round so every member is probed once per round.
    fn next_probe_target(&mut self) -> Option<usize> {
        let n = self.members.len();
        for _ in 0..=n {
            if self.probe_cursor >= n {
                self.members.shuffle(&mut self.rng);
                self.probe_cursor = 0;
            }
            let i = self.probe_cursor;
            self.probe_cursor += 1;
            let m = self.members.at(i);
            if m.state().is_live() && *m.name() != self.me {
                return Some(i);
            }
        }
        None
    }

    fn schedule_next_probe(&mut self, at: Time) {
        self.probe_generation += 1;
        self.timers.schedule(
            at,
            Timer::Probe {
                generation: self.probe_generation,
            },
        );
    }

    pub(super) fn on_probe_timer(&mut self, now: Time, generation: u64) {
        if generation != self.probe_generation {
            return;
        }
        let interval = self.awareness.scale(self.config.probe_interval);
        if self.phase != Phase::Running {
            return;
        }
        if let Some(p) = &self.probe {
            // The previous probe's outcome is not in yet (a far or slow target): wait.
            let at = p.deadline.max(now);
            return self.schedule_next_probe(at);
        }
        self.schedule_next_probe(now + interval);
        let Some(i) = self.next_probe_target() else {
            return;
        };
        self.members.mark_contacted(i);
        let (target, addr, state, incarnation) = {
            let m = self.members.at(i);
            (m.name().clone(), m.addr(), m.state(), m.incarnation())
        };
        let healthy_wait = self.peer_timeout(&target);
        let timeout = self.awareness.scale(healthy_wait);
        let seq = self.next_seq();
        let mut msgs = Vec::with_capacity(2);
        if state == MemberState::Suspect {
            // Buddy system: tell the suspect directly so it can refute at once.
            let from = self.suspicion_origin(&target);
            msgs.push(Message::Suspect {
                name: target.clone(),
                incarnation,
                from,
            });
        }
        msgs.push(Message::Ping {
            seq,
            target: target.clone(),
        });
        self.send_datagram(addr, &msgs);
        self.remember_ping(seq, addr, &target, now);
        self.stats.probes += 1;
        let deadline = now + timeout * PROBE_DEADLINE_TIMEOUTS;
        self.probe = Some(Probe {
            seq,
            target,
            addr,
            started: now,
            healthy_wait,
            deadline,
            expected_nacks: 0,
            nacks: 0,
        });
        self.timers
            .schedule(now + timeout, Timer::ProbeTimeout { seq });
        self.timers.schedule(deadline, Timer::ProbeDeadline { seq });
    }

    pub(super) fn on_probe_timeout(&mut self, now: Time, seq: u32) {
        let Some(p) = self.probe.as_ref().filter(|p| p.seq == seq) else {
            return;
        };
        let (target, addr) = (p.target.clone(), p.addr);
        // Reliable fallback, as memberlist's TCP ping: a stream retransmits through loss,
        // so a lossy path alone does not make the target suspect.
        let ping = Message::Ping {
            seq,
            target: target.clone(),
        };
        self.send_stream(addr, &ping);
        let k = self.config.indirect_checks as usize;
        let helpers = self.random_live_members(k, Some(&target));
        for &i in &helpers {
            self.members.mark_contacted(i);
        }
        let requests: Vec<SocketAddr> =
            helpers.iter().map(|&i| self.members.at(i).addr()).collect();
        // Give the indirect path time for the slowest helper's nack: it nacks at 80% of
        // its own timeout (about ours), then the nack needs a round trip to us.
        let slowest = helpers
            .iter()
            .filter_map(|&i| self.members.at(i).rtt())
            .max()
            .unwrap_or_default();
        let indirect_deadline = now + self.probe_timeout_for(&target) + slowest;
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = requests.len() as u32;
            if indirect_deadline > p.deadline {
                p.deadline = indirect_deadline;
                self.timers
                    .schedule(indirect_deadline, Timer::ProbeDeadline { seq });
            }
        }
        for to in requests {
            let msg = Message::PingReq {
                seq,
                target: target.clone(),
                target_addr: addr,
            };
            self.send_datagram(to, &[msg]);
            self.stats.indirect_probes += 1;
        }
    }

    pub(super) fn on_probe_deadline(&mut self, now: Time, seq: u32) {
        // Not before the (possibly extended) deadline.
        let Some(p) = self.probe.take_if(|p| p.seq == seq && now >= p.deadline) else {
            return;
        };
        self.stats.probes_failed += 1;
        // Lifeguard: silence from every intermediary suggests we are the slow one, and
        // costs as many points as nacks were missing (memberlist's rule). But one nack
        // shows our own path works: the missing ones are likelier dead helpers (a region
        // outage), which must not slow the survivors' probing, so it costs nothing.
        if p.nacks == 0 {
            self.awareness.apply(p.expected_nacks.max(1) as i32);
            if self.awareness.score() >= DEGRADED_ANNOUNCE_AT
                && u32::from(self.advertised_health) < DEGRADED_ANNOUNCE_AT
            {
                self.bump_incarnation(now);
            }
        }
        let Some(m) = self.members.get(&p.target) else {
            return;
        };
        if m.state() != MemberState::Alive {
            // Already suspect: our failed probe is one more confirmation.
            let (name, inc) = (m.name().clone(), m.incarnation());
            let me = self.me.clone();
            self.apply_suspect(now, &name, inc, &me);
            return;
        }
        let (name, inc) = (m.name().clone(), m.incarnation());
        self.stats.suspicions_raised += 1;
        let me = self.me.clone();
        tracing::debug!(member = %name, "probe failed; suspecting");
        self.apply_suspect(now, &name, inc, &me);
    }

    /// Answers a ping on the channel it came on.
    pub(super) fn on_ping(
        &mut self,
        _now: Time,
        from: SocketAddr,
        seq: u32,
        target: Name,
        channel: Channel,
    ) {
        if target != self.me {
            self.stats.misdirected_pings += 1;
            return;
        }
        match channel {
            Channel::Datagram => self.send_datagram(from, &[Message::Ack { seq }]),
            Channel::Stream => self.send_stream(from, &Message::Ack { seq }),
        }
    }

    /// An ack for one of our probes, relays or checks. Only a datagram ack from the
    /// pinged address is an RTT sample (however late: that is how a slow or far peer's
    /// timeout grows); a stream ack answered the fallback ping, sent later.
    pub(super) fn on_ack(&mut self, now: Time, from: SocketAddr, seq: u32, channel: Channel) {
        if channel == Channel::Datagram
            && let Some(k) = self
                .recent_pings
                .iter()
                .position(|(s, a, _, _)| *s == seq && *a == from)
        {
            let (_, _, name, sent) = self.recent_pings.remove(k).expect("position is in range");
            if let Some(i) = self.members.position(&name) {
                self.members.record_rtt(i, now - sent);
                self.stats.probe_rtt.record(now - sent);
            }
        }
        if let Some(p) = self.probe.take_if(|p| p.seq == seq) {
            // Only an answer that would have been in time at full health is evidence of
            // health: one that made it thanks to our stretched timeout is not, or a
            // persistently slow node would talk itself back to 0 and fail its next probe.
            if now - p.started > p.healthy_wait {
                return;
            }
            self.awareness.apply(-1);
            self.proven = true;
            if self.awareness.score() == 0 && self.advertised_health >= RECOVERY_ANNOUNCE_FROM {
                // Recovered: tell the cluster, so probers stop waiting longer for us.
                self.bump_incarnation(now);
            }
            return;
        }
        // A relay's ack counts only from where its ping went.
        if self.relays.get(&seq).is_some_and(|r| r.target == from) {
            let r = self.relays.remove(&seq).expect("present: checked above");
            self.send_datagram(r.requester, &[Message::Ack { seq: r.seq }]);
            return;
        }
        self.checks.remove(&seq);
    }

    pub(super) fn on_nack(&mut self, seq: u32) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.nacks += 1;
            self.stats.nacks_received += 1;
        }
    }

    pub(super) fn on_ping_req(
        &mut self,
        now: Time,
        from: SocketAddr,
        seq: u32,
        target: Name,
        _claimed_addr: SocketAddr,
    ) {
        if self.phase != Phase::Running {
            return;
        }
        // Only a member this node holds, at the address it holds for it: a ping-req is
        // never a way to make this node send to an address of the asker's choosing. (A
        // member that moved is pinged where this node last heard of it; the asker's
        // own probe covers the rest.)
        let held = (target != self.me)
            .then(|| self.members.get(&target).map(|m| m.addr()))
            .flatten();
        let Some(addr) = held else {
            self.stats.refused.add(Refusal::PingReqUnknownTarget);
            return;
        };
        if self.relays.len() >= MAX_RELAYS {
            self.stats.refused.add(Refusal::PingReqRelaysFull);
            return;
        }
        let timeout = self.probe_timeout_for(&target);
        let our_seq = self.next_seq();
        self.send_datagram(
            addr,
            &[Message::Ping {
                seq: our_seq,
                target,
            }],
        );
        self.stats.relayed_probes += 1;
        self.relays.insert(
            our_seq,
            Relay {
                requester: from,
                seq,
                target: addr,
            },
        );
        self.timers.schedule(
            now + timeout.mul_f64(NACK_AT),
            Timer::RelayTimeout { seq: our_seq },
        );
    }

    pub(super) fn on_relay_timeout(&mut self, _now: Time, seq: u32) {
        if let Some(r) = self.relays.remove(&seq) {
            self.send_datagram(r.requester, &[Message::Nack { seq: r.seq }]);
            self.stats.nacks_sent += 1;
        }
    }

    /// On first hearing someone else's suspicion of `name`, ping it ourselves with
    /// probability `confirm_probes / (N − 2)` (the suspect and the suspector cannot
    /// check), so about `confirm_probes` members check each suspicion: a failed check confirms the suspicion (Lifeguard
    /// needs independent confirmations), a successful one delivers it to the suspect.
    pub(super) fn maybe_start_check(&mut self, now: Time, name: &Name, incarnation: u64) {
        let n = self.cluster_size().saturating_sub(2).max(1);
        let p = self.config.confirm_probes / n as f64;
        if self.phase != Phase::Running || p <= 0.0 || rng::unit(&mut self.rng) >= p {
            return;
        }
        self.start_check(now, name, incarnation);
    }

    /// Pings `name` (twice, carrying the suspicion) and suspects it in this node's own
    /// name if neither ping is answered: used to confirm someone else's suspicion, and to
    /// verify a stale "dead" from a merged table before believing it.
    pub(super) fn start_check(&mut self, now: Time, name: &Name, incarnation: u64) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(addr) = self.members.get(name).map(|m| m.addr()) else {
            return;
        };
        if self.checks.values().any(|c| c.target == *name) {
            return; // one check at a time per member
        }
        let seq = self.next_seq();
        self.checks.insert(
            seq,
            Check {
                target: name.clone(),
                addr,
                incarnation,
            },
        );
        self.stats.confirmation_checks += 1;
        self.send_check_ping(seq);
        self.remember_ping(seq, addr, name, now);
        let timeout = self.probe_timeout_for(name);
        self.timers
            .schedule(now + timeout, Timer::CheckRetry { seq });
        self.timers
            .schedule(now + timeout * 2, Timer::CheckTimeout { seq });
    }

    fn send_check_ping(&mut self, seq: u32) {
        let Some(c) = self.checks.get(&seq).cloned() else {
            return;
        };
        let from = self.suspicion_origin(&c.target);
        let msgs = [
            Message::Suspect {
                name: c.target.clone(),
                incarnation: c.incarnation,
                from,
            },
            Message::Ping {
                seq,
                target: c.target,
            },
        ];
        self.send_datagram(c.addr, &msgs);
    }

    pub(super) fn on_check_retry(&mut self, _now: Time, seq: u32) {
        // One resend: a single lost packet must not turn into a false confirmation. Its
        // answer cannot be told from the first ping's, so it is no RTT sample.
        self.forget_ping(seq);
        self.send_check_ping(seq);
    }

    pub(super) fn on_check_timeout(&mut self, now: Time, seq: u32) {
        let Some(c) = self.checks.remove(&seq) else {
            return;
        };
        let still = self
            .members
            .get(&c.target)
            .is_some_and(|m| m.state().is_live() && m.incarnation() == c.incarnation);
        if still {
            self.stats.suspicions_confirmed += 1;
            let me = self.me.clone();
            self.apply_suspect(now, &c.target, c.incarnation, &me);
        }
    }

    /// Who to name as the suspector when re-sending a suspicion: its originator if known.
    pub(super) fn suspicion_origin(&self, name: &str) -> Name {
        self.suspicions
            .get(name)
            .map_or_else(|| self.me.clone(), |s| s.origin().clone())
    }
}
