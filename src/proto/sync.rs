//! Anti-entropy and the membership lifecycle: join, periodic push-pull, reconnecting
//! failed members, reaping tombstones, gossip rounds and graceful leave.
//!
//! Push-pull is digest-first: the opener sends only its digest (`Offer`); a peer whose
//! digest differs answers with its table (`Reply`), and the opener sends its own
//! (`Final`) only if the digests still differ after merging. In a converged cluster an
//! exchange is one small message instead of two whole tables.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::event::{CommandError, Event};
use crate::proto::node::{JoinAttempt, Node, Phase};
use crate::proto::rng;
use crate::proto::time::Time;
use crate::proto::timer::Timer;
use crate::wire::{MemberRecord, MemberState, Message, Name, SyncPhase};

/// Parts of a gossip interval after a successful join before the first follow-up
/// push-pull: soon (100 ms with `lan`), to pick up members that joined just after us
/// (their news reached the cluster before it knew us, and a news item's few transmissions
/// in a cluster still small can miss us); later syncs, further apart, catch what a join
/// storm still leaves out.
const JOIN_SYNC_FIRST_DIVISOR: u32 = 2;

/// Queued updates per extra gossip datagram per target (about four datagrams' worth).
const GOSSIP_BACKLOG: usize = 128;

/// Most gossip datagrams sent to one target in one round.
const MAX_GOSSIP_BURST: usize = 3;

/// How long after an input that queued fresh membership news its eager gossip round
/// goes out: long enough to batch the news of inputs handled together (a join reply and
/// the datagrams around it), short beside one gossip interval.
const EAGER_GOSSIP_DELAY: Duration = Duration::from_millis(2);

/// Delay from the first revival of a failed member to the first heal sync.
const HEAL_SYNC_DELAY: Duration = Duration::from_secs(2);
/// Heal syncs after a revival (see `schedule_heal_sync`).
const HEAL_SYNCS: u8 = 3;
/// Least time between two series of heal syncs.
const HEAL_SYNC_SPACING: Duration = Duration::from_secs(30);

/// Attempts to re-contact failed members that the whole cluster makes per
/// `reconnect_interval`.
const RECONNECTS_PER_INTERVAL: f64 = 8.0;

/// Follow-up push-pulls after a join, each twice as far apart as the last (0.1, 0.3,
/// 0.7, 1.5, 3.1 and 6.3 s after it with `lan`). In a join storm the first may meet a
/// peer as incomplete as we are; an in-sync exchange costs one digest.
const JOIN_SYNCS: u8 = 6;

impl Node {
    /// This node's whole table, its own record first.
    fn full_state(&self) -> Vec<MemberRecord> {
        let record = |m| {
            let mut r = self.members.record(m);
            r.kv = self.kv.summary(&r.profile.name);
            r
        };
        let mut out = Vec::with_capacity(self.members.len());
        if let Some(me) = self.members.get(&self.me) {
            out.push(record(me));
        }
        out.extend(
            self.members
                .iter()
                .filter(|m| *m.name() != self.me)
                .map(record),
        );
        out
    }

    /// Merges a remote table. A remote "suspect" or "dead" about a member this node has
    /// alive is not believed outright: this node checks it with two direct pings carrying
    /// the suspicion, and suspects it in its own name only if neither is answered. memberlist
    /// turns such records straight into suspicions; after a partition heals, every table
    /// from the far side says "dead" about members that are alive, and those suspicions
    /// confirm each other into false failures faster than the members can refute.
    /// Then pulls the replicated maps the table shows this node is behind on: all from
    /// `from` at a join (one stream brings everything), else from their owners.
    fn merge(&mut self, now: Time, from: SocketAddr, records: Vec<MemberRecord>) {
        let me = self.me.clone();
        let summaries: Vec<(Name, crate::wire::KvSummary)> = records
            .iter()
            .filter(|r| r.kv.epoch > 0)
            .map(|r| (r.profile.name.clone(), r.kv))
            .collect();
        let unknown = records
            .iter()
            .filter(|r| self.members.get(&r.profile.name).is_none())
            .count();
        self.members.reserve(unknown);
        for r in records {
            let name = r.profile.name.clone();
            match r.state {
                MemberState::Alive => {
                    // The sender sees alive a member we hold as failed at the very same
                    // incarnation: on the far side of a healed partition it may well be.
                    let revive = self.members.get(&name).is_some_and(|m| {
                        m.state() == MemberState::Dead && m.incarnation() == r.incarnation
                    });
                    let addr = r.profile.addr;
                    self.apply_alive(now, r.profile, r.incarnation, r.health, r.key, r.sig);
                    if revive {
                        self.send_revival(addr, &name, r.incarnation);
                    }
                }
                MemberState::Suspect | MemberState::Dead if name == me => {
                    // A record of our past life, signed by us, is out-bid above it.
                    let incarnation = r.incarnation;
                    self.apply_alive(now, r.profile, incarnation, r.health, r.key, r.sig);
                    self.apply_suspect(now, &name, incarnation, &me);
                }
                MemberState::Suspect | MemberState::Dead => {
                    let local = self
                        .members
                        .get(&name)
                        .map(|m| (m.state(), m.incarnation()));
                    let learn = match local {
                        // A suspect we never heard of: learn of it, then check it. A failure
                        // of a member we never knew: nothing to learn.
                        None => r.state == MemberState::Suspect,
                        // Our tombstone stands: only the member itself can revive it.
                        Some((state, _)) if !state.is_live() => false,
                        // Live here at an older incarnation: take the newer one.
                        Some((_, inc)) => inc < r.incarnation,
                    };
                    if learn {
                        self.apply_alive(now, r.profile, r.incarnation, r.health, r.key, r.sig);
                    }
                    let verify = self.members.get(&name).is_some_and(|m| {
                        m.state() == MemberState::Alive && m.incarnation() == r.incarnation
                    });
                    if verify {
                        self.start_check(now, &name, r.incarnation);
                    }
                }
                MemberState::Left => self.apply_leave(now, &name, r.incarnation, r.leave_sig),
            }
        }
        if !summaries.is_empty() {
            let bulk = self.join.is_some() || self.gossip_muted;
            self.pull_newer_kv(now, from, &summaries, bulk);
        }
    }

    /// Tells a member we hold as failed that we do, with a ping: if it is alive it
    /// refutes at once, and the refutation rides back on its ack, so one push-pull across
    /// a healed partition revives every member the two tables disagree on.
    pub(super) fn send_revival(&mut self, addr: SocketAddr, name: &Name, incarnation: u64) {
        let seq = self.next_seq();
        let msgs = [
            Message::Dead {
                name: name.clone(),
                incarnation,
                from: self.me.clone(),
            },
            Message::Ping {
                seq,
                target: name.clone(),
            },
        ];
        self.send_datagram(addr, &msgs);
        self.stats.revival_pings += 1;
    }

    pub(super) fn start_join(
        &mut self,
        now: Time,
        seeds: Vec<std::net::SocketAddr>,
    ) -> Result<(), CommandError> {
        let own = self.members.get(&self.me).map(|m| m.addr());
        // Each distinct seed once, in the order given (`dedup` alone only drops neighbours).
        let mut targets: Vec<SocketAddr> = Vec::with_capacity(seeds.len());
        for seed in seeds {
            if Some(seed) != own && !targets.contains(&seed) {
                targets.push(seed);
            }
        }
        if targets.is_empty() {
            return Err(CommandError::NoSeeds);
        }
        self.join_attempts += 1;
        let attempt = self.join_attempts;
        let msg = Message::Join {
            members: self.full_state(),
        };
        for seed in &targets {
            self.send_stream(*seed, &msg);
        }
        self.join = Some(JoinAttempt {
            attempt,
            seeds: targets,
        });
        self.timers.schedule(
            now + self.config.join_timeout,
            Timer::JoinTimeout { attempt },
        );
        Ok(())
    }

    pub(super) fn on_join_timeout(&mut self, attempt: u32) {
        if let Some(j) = self.join.take_if(|j| j.attempt == attempt) {
            self.events.push_back(Event::JoinFailed { seeds: j.seeds });
        }
    }

    pub(super) fn on_join(&mut self, now: Time, from: SocketAddr, members: Vec<MemberRecord>) {
        self.merge(now, from, members);
        if self.phase == Phase::Left {
            return;
        }
        let reply = Message::PushPull {
            phase: SyncPhase::JoinReply,
            digest: self.sync_digest(),
            members: self.full_state(),
        };
        self.send_stream(from, &reply);
    }

    pub(super) fn on_push_pull(
        &mut self,
        now: Time,
        from: SocketAddr,
        phase: SyncPhase,
        digest: u64,
        members: Vec<MemberRecord>,
    ) {
        match phase {
            SyncPhase::Offer => {
                if digest == self.sync_digest() {
                    self.stats.push_pull_in_sync += 1;
                } else {
                    let reply = Message::PushPull {
                        phase: SyncPhase::Reply,
                        digest: self.sync_digest(),
                        members: self.full_state(),
                    };
                    self.send_stream(from, &reply);
                }
            }
            SyncPhase::Reply => {
                self.merge(now, from, members);
                if self.sync_digest() != digest {
                    let fin = Message::PushPull {
                        phase: SyncPhase::Final,
                        digest: self.sync_digest(),
                        members: self.full_state(),
                    };
                    self.send_stream(from, &fin);
                }
            }
            SyncPhase::Final => self.merge(now, from, members),
            SyncPhase::JoinReply => {
                if self.join.is_some() && self.name_taken(&members) {
                    return;
                }
                self.gossip_muted = true;
                self.merge(now, from, members);
                self.gossip_muted = false;
                if self.join.take().is_some() {
                    self.joined_at.get_or_insert(now);
                    // The seed that answered is a contact (a young node's gossip prefers
                    // contacts).
                    if let Some(i) =
                        (0..self.members.len()).find(|&i| self.members.at(i).addr() == from)
                    {
                        self.members.mark_contacted(i);
                    }
                    let members = self.cluster_size();
                    self.events.push_back(Event::Joined { via: from, members });
                    // Updates gossiped while nobody knew us yet never reached us; one
                    // follow-up exchange after the join news has spread repairs that
                    // (memberlist leaves it to the next periodic push-pull, minutes away).
                    let at = now + self.config.gossip_interval / JOIN_SYNC_FIRST_DIVISOR;
                    self.timers.schedule(
                        at,
                        Timer::JoinSync {
                            remaining: JOIN_SYNCS - 1,
                        },
                    );
                }
            }
        }
    }

    /// Whether a seed's table holds this node's name as a live member under another
    /// key; if so the join ends with [`Event::NameTaken`] and nothing of the table is
    /// believed (the agent stops: two nodes must not share a name).
    fn name_taken(&mut self, members: &[MemberRecord]) -> bool {
        let mine = self.signer.key();
        let Some(r) = members
            .iter()
            .find(|r| r.profile.name == self.me && r.key != mine && r.state.is_live())
        else {
            return false;
        };
        self.join = None;
        self.stats
            .refused
            .add(crate::proto::stats::Refusal::NameTaken);
        self.events.push_back(Event::NameTaken {
            addr: r.profile.addr,
            state: r.state,
            key: r.key,
        });
        true
    }

    pub(super) fn on_push_pull_timer(&mut self, now: Time) {
        let interval = self.config.push_pull_interval_for(self.cluster_size());
        // ±10% jitter keeps nodes from falling into step.
        let next = interval.mul_f64(0.9 + 0.2 * rng::unit(&mut self.rng));
        self.timers.schedule(now + next, Timer::PushPull);
        self.push_pull_with_random_member();
    }

    /// A member this node held failed is alive after all: a healed partition, most
    /// likely, whose refutations are a storm that a node can miss part of (its queue
    /// full, the retransmissions spent). Schedules [`HEAL_SYNCS`] push-pulls with
    /// random members, the first [`HEAL_SYNC_DELAY`] from now and each twice as far
    /// as the last, at most once per [`HEAL_SYNC_SPACING`]: a node left holding a
    /// live member failed learns better from the first table that has it alive,
    /// instead of waiting for the periodic push-pull, minutes away at a few hundred
    /// members.
    pub(super) fn schedule_heal_sync(&mut self, now: Time) {
        if self.phase != Phase::Running
            || self
                .heal_sync_at
                .is_some_and(|at| now < at + HEAL_SYNC_SPACING)
        {
            return;
        }
        self.heal_sync_at = Some(now);
        self.timers.schedule(
            now + HEAL_SYNC_DELAY,
            Timer::JoinSync {
                remaining: HEAL_SYNCS - 1,
            },
        );
    }

    pub(super) fn on_join_sync(&mut self, now: Time, remaining: u8) {
        self.push_pull_with_random_member();
        if remaining > 0 {
            let done = u32::from(JOIN_SYNCS - remaining);
            let at = now + (self.config.gossip_interval / JOIN_SYNC_FIRST_DIVISOR) * (1 << done);
            self.timers.schedule(
                at,
                Timer::JoinSync {
                    remaining: remaining - 1,
                },
            );
        }
    }

    /// Offers a digest-first push-pull to one random live member.
    pub(super) fn push_pull_with_random_member(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        if let Some(&i) = self.random_live_members(1, None).first() {
            self.members.mark_contacted(i);
            let to = self.members.at(i).addr();
            self.send_offer(to);
        }
    }

    /// Opens a digest-first push-pull with `to`.
    fn send_offer(&mut self, to: SocketAddr) {
        let offer = Message::PushPull {
            phase: SyncPhase::Offer,
            digest: self.sync_digest(),
            members: Vec::new(),
        };
        self.send_stream(to, &offer);
    }

    /// Offers a push-pull to one random failed member: if it is in fact alive on the far
    /// side of a healed partition, the digests differ, tables are exchanged, each side
    /// sees the other's stale view of it and refutes, and the two halves merge.
    pub(super) fn on_reconnect_timer(&mut self, now: Time) {
        // Each node tries once per `reconnect_interval × N / RECONNECTS_PER_INTERVAL`, so
        // the cluster as a whole makes about RECONNECTS_PER_INTERVAL attempts per interval
        // whatever its size: a dial to a dead host costs a handshake attempt, and a healed
        // partition needs only one attempt to succeed.
        // Exponential gaps (a Poisson process): nodes started together do not stay in
        // step, so the cluster's attempts are spread evenly in time.
        let share = (self.cluster_size() as f64 / RECONNECTS_PER_INTERVAL).max(1.0);
        let gap = -(1.0 - rng::unit(&mut self.rng)).ln();
        let next = self.config.reconnect_interval.mul_f64(share * gap);
        self.timers.schedule(now + next, Timer::Reconnect);
        if self.phase != Phase::Running || self.members.count(MemberState::Dead) == 0 {
            return;
        }
        let dead: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|m| m.state() == MemberState::Dead)
            .map(|m| m.addr())
            .collect();
        let to = dead[rng::below(&mut self.rng, dead.len())];
        self.stats.reconnect_attempts += 1;
        self.send_offer(to);
    }

    pub(super) fn on_reap_timer(&mut self, now: Time) {
        self.timers
            .schedule(now + self.reap_interval(), Timer::Reap);
        let (dead_for, left_for) = (self.config.dead_retention, self.config.left_retention);
        // Never this node: it is `Left` while leaving, and stays in its own table.
        let expired: Vec<_> = self
            .members
            .iter()
            .filter(|m| *m.name() != self.me)
            .filter(|m| match m.state() {
                MemberState::Dead => now.saturating_since(m.state_changed()) >= dead_for,
                MemberState::Left => now.saturating_since(m.state_changed()) >= left_for,
                _ => false,
            })
            .map(|m| m.name().clone())
            .collect();
        for name in expired {
            if let Some(i) = self.members.position(&name) {
                let info = self.members.info(self.members.at(i));
                self.members.remove(i);
                self.drop_kv(&name);
                self.events.push_back(Event::MemberReaped(info));
            }
        }
    }

    pub(super) fn on_gossip_timer(&mut self, now: Time) {
        self.timers
            .schedule(now + self.config.gossip_interval, Timer::Gossip);
        if self.phase == Phase::Running {
            self.pull_gaps(now);
        }
        if self.phase == Phase::Leaving && !self.broadcasts.contains(&self.me) {
            return self.finish_leave();
        }
        if self.broadcasts.is_empty() && self.kv_broadcasts.is_empty() {
            return;
        }
        // A backlog (a healed partition's refutations, a join storm) would take many
        // rounds at one datagram per target: send up to MAX_GOSSIP_BURST while it lasts.
        let backlog = self.broadcasts.len() + self.kv_broadcasts.len();
        let burst = (1 + backlog / GOSSIP_BACKLOG).min(MAX_GOSSIP_BURST);
        let targets = self.gossip_targets(now, self.config.gossip_fanout as usize);
        for i in targets {
            let to = self.members.at(i).addr();
            for _ in 0..burst {
                if self.broadcasts.is_empty() && self.kv_broadcasts.is_empty() {
                    return;
                }
                self.send_datagram(to, &[]);
            }
        }
    }

    pub(super) fn start_leave(&mut self, now: Time) {
        let i = self
            .members
            .position(&self.me)
            .expect("the local node is always in its table");
        // A leave overrides every state at the same incarnation: no need to raise it.
        let incarnation = self.members.at(i).incarnation();
        let statement = crate::wire::signed::leave_statement(self.cluster, &self.me, incarnation);
        let sig = self.signer.sign(&statement);
        self.set_leave_sig(i, sig);
        self.members
            .set_liveness(i, incarnation, MemberState::Left, now);
        let msg = Message::Leave {
            name: self.me.clone(),
            incarnation,
            sig: Some(sig),
        };
        self.enqueue(self.me.clone(), &msg);
        self.phase = Phase::Leaving;
        self.probe = None;
        self.timers
            .schedule(now + self.config.leave_timeout, Timer::LeaveDeadline);
        // Do not wait for the next gossip round to start spreading the news.
        self.on_gossip_now(now);
    }

    /// After an input that queued membership news, schedules one extra gossip round
    /// [`EAGER_GOSSIP_DELAY`] later (batching the news of inputs that arrive together),
    /// at most one per quarter gossip interval. The news is sent no more times than
    /// without it (each send counts toward its retransmission limit), only sooner: a
    /// join or a failure crosses the cluster in hops of milliseconds rather than of one
    /// gossip interval each, and a steady cluster, with no news, pays nothing.
    pub(super) fn schedule_eager_gossip(&mut self, now: Time) {
        if !std::mem::take(&mut self.fresh_news)
            || self.eager_pending
            || self.phase != Phase::Running
        {
            return;
        }
        let mut at = now + EAGER_GOSSIP_DELAY;
        if let Some(last) = self.last_eager {
            at = at.max(last + self.config.gossip_interval / 4);
        }
        self.eager_pending = true;
        self.timers.schedule(at, Timer::GossipSoon);
    }

    pub(super) fn on_eager_gossip(&mut self, now: Time) {
        self.eager_pending = false;
        self.last_eager = Some(now);
        // A backlog is a storm (a mass join, a healed partition), not sparse news: the
        // periodic rounds' bursts carry it, and extra rounds to random members would
        // only add first contacts (a TLS handshake each) where CPU is already short.
        let storm = self.broadcasts.len() >= GOSSIP_BACKLOG;
        if self.phase == Phase::Running && !self.broadcasts.is_empty() && !storm {
            self.stats.eager_gossip_rounds += 1;
            self.on_gossip_now(now);
        }
    }

    fn on_gossip_now(&mut self, now: Time) {
        let targets = self.gossip_targets(now, self.config.gossip_fanout as usize);
        for i in targets {
            let to = self.members.at(i).addr();
            self.send_datagram(to, &[]);
        }
    }

    pub(super) fn finish_leave(&mut self) {
        if self.phase == Phase::Leaving {
            self.phase = Phase::Left;
            self.timers.clear();
            self.events.push_back(Event::LeaveCompleted);
        }
    }
}
