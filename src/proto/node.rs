//! [`Node`]: one member's protocol state machine, and its sans-IO interface.
//!
//! Inputs are `handle_datagram`, `handle_stream`, `handle_timeout` and `handle_command`,
//! each given the current time; outputs are drained with `poll_transmit`, `poll_event` and
//! `poll_timeout`. The behaviour is split by concern across sibling files, each an
//! `impl Node` block: `probe` (failure detection), `update` (applying alive, suspect, dead
//! and leave) and `sync` (join, push-pull, reconnect, reaping, gossip rounds, leave).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::awareness::Awareness;
use crate::proto::broadcast::BroadcastQueue;
use crate::proto::certified::CertBook;
use crate::proto::config::{ConfigError, SwimConfig};
use crate::proto::event::{Channel, Command, CommandError, Event, Transmit};
use crate::proto::identity::{NodeSigner, Verifier};
use crate::proto::kv::KvMap;
use crate::proto::kv_sync::KvStore;
use crate::proto::member::{MemberInfo, MemberTable, Proof};
use crate::proto::rng::{self, NodeRng};
use crate::proto::stats::Stats;
use crate::proto::suspicion::Suspicion;
use crate::proto::time::Time;
use crate::proto::timer::{Timer, TimerQueue};
use crate::wire::{
    self, ClusterId, DatagramBuilder, DecodeError, MemberState, Message, Name, Profile,
};
use std::sync::Arc;

/// Random draws a gossip round spends looking for contacted members before it fills
/// the rest of its targets uniformly ([`Node::gossip_targets`]): enough to find three
/// when a twentieth of the members are contacts (a miss then is under 5%).
const CONTACTED_TRIES: usize = 64;

/// How long after its own join a node's gossip targets prefer contacts
/// ([`Node::gossip_targets`]): the length of a mass join's storm of news.
const YOUNG_GOSSIP: Duration = Duration::from_secs(30);

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Protocol timing.
    pub config: SwimConfig,
    /// This node's name, address, region, zone and tags.
    pub profile: Profile,
    /// Cluster name; nodes of different clusters drop each other's traffic.
    pub cluster: String,
    /// Incarnation to start from: the last one used plus one after a restart with a data
    /// directory, else 0 (a stale record of this node is refuted when seen anyway).
    pub incarnation: u64,
    /// This node's key pair: it signs the node's `Alive` and `Leave`, and its name is
    /// bound to the public half while it is live (docs/protocol.md §17).
    pub signer: Arc<NodeSigner>,
    /// Checks other members' signatures ([`Verifier::new`] for one node).
    pub verifier: Verifier,
    /// Seed for the node's random generator.
    pub seed: u64,
    /// Epoch this node's replicated key-value map starts at: above every version of its
    /// previous run. The agent passes the wall clock in microseconds; the simulator its
    /// virtual time. A node that finds itself behind a map of its own jumps above it.
    pub kv_epoch: u64,
    /// Start as proven healthy: announce health 0 from the start instead of the highest
    /// score until a probe is answered in time (protocol.md §8). Only for a node the
    /// cluster already holds as long running, as the simulator's pre-converged start
    /// does; an agent starts unproven (`false`).
    pub proven: bool,
}

/// The probe in flight.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub(super) seq: u32,
    pub(super) target: Name,
    pub(super) addr: SocketAddr,
    pub(super) started: Time,
    /// The timeout toward the target at full health: an ack later than this does not
    /// lower the health score.
    pub(super) healthy_wait: Duration,
    /// When the probe's outcome is due; the next probe does not start before.
    pub(super) deadline: Time,
    pub(super) expected_nacks: u32,
    pub(super) nacks: u32,
}

/// A ping sent on behalf of another member's ping-req.
#[derive(Debug, Clone)]
pub(super) struct Relay {
    pub(super) requester: SocketAddr,
    pub(super) seq: u32,
    /// Where the relayed ping went: only an ack from there is passed on.
    pub(super) target: SocketAddr,
}

/// A confirmation check: a ping to a member someone else suspects.
#[derive(Debug, Clone)]
pub(super) struct Check {
    pub(super) target: Name,
    pub(super) addr: SocketAddr,
    pub(super) incarnation: u64,
}

/// Where the node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    Leaving,
    Left,
}

/// A pending join.
#[derive(Debug, Clone)]
pub(super) struct JoinAttempt {
    pub(super) attempt: u32,
    pub(super) seeds: Vec<SocketAddr>,
}

/// One member's SWIM/Lifeguard state machine. See the module docs for the interface.
#[derive(Debug)]
pub struct Node {
    pub(super) config: SwimConfig,
    pub(super) cluster: ClusterId,
    pub(super) me: Name,
    pub(super) signer: Arc<NodeSigner>,
    pub(super) verifier: Verifier,
    pub(super) rng: NodeRng,
    pub(super) members: MemberTable,
    pub(super) suspicions: BTreeMap<Name, Suspicion>,
    pub(super) broadcasts: BroadcastQueue,
    /// Replicated-state updates, sent only in the room membership updates leave (as
    /// memberlist puts its delegate's broadcasts after its own): a burst of state writes
    /// never delays news of a failure.
    pub(super) kv_broadcasts: BroadcastQueue,
    pub(super) awareness: Awareness,
    pub(super) timers: TimerQueue,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<Event>,
    pub(super) stats: Stats,
    pub(super) probe: Option<Probe>,
    pub(super) probe_cursor: usize,
    pub(super) probe_generation: u64,
    pub(super) next_seq: u32,
    pub(super) relays: BTreeMap<u32, Relay>,
    /// Recent direct pings (probes and checks): (seq, address, target, sent at). An ack
    /// from that address is an RTT sample even when it comes too late to count (a
    /// datagram ack only: a stream ack answers the later fallback ping).
    pub(super) recent_pings: VecDeque<(u32, SocketAddr, Name, Time)>,
    pub(super) checks: BTreeMap<u32, Check>,
    pub(super) phase: Phase,
    pub(super) join: Option<JoinAttempt>,
    pub(super) join_attempts: u32,
    /// While merging a seed's answer to our own join, news about others is not
    /// re-gossiped: the cluster already knows it, and a newcomer re-announcing a whole
    /// table would flood every queue.
    pub(super) gossip_muted: bool,
    /// The health score in this node's latest alive announcement.
    pub(super) advertised_health: u8,
    /// A probe of this node's was answered in time at full health: until then it
    /// announces itself as unproven (see [`Node::announced_health`]).
    pub(super) proven: bool,
    /// Membership news was queued by the input being handled: an eager gossip round is
    /// due once it is done (see [`Node::schedule_eager_gossip`]).
    pub(super) fresh_news: bool,
    /// An eager gossip round is scheduled and has not run yet.
    pub(super) eager_pending: bool,
    /// When the last eager gossip round ran, to space them out.
    pub(super) last_eager: Option<Time>,
    /// When this node's own join completed (its first `JoinReply`).
    pub(super) joined_at: Option<Time>,
    /// When the last heal syncs were scheduled ([`Node::schedule_heal_sync`]).
    pub(super) heal_sync_at: Option<Time>,
    /// Every member's replicated key-value map held here, this node's own included.
    pub(super) kv: KvStore,
    /// What peers' certificates said (PKI mode; empty otherwise).
    pub(super) certificates: CertBook,
}

impl Node {
    /// Creates a node that knows only itself, with its periodic timers set from `now`.
    pub fn new(options: NodeOptions, now: Time) -> Result<Node, ConfigError> {
        let NodeOptions {
            config,
            profile,
            cluster,
            incarnation,
            signer,
            verifier,
            seed,
            kv_epoch,
            proven,
        } = options;
        config.validate()?;
        validate_profile(&profile)?;
        let mut rng = rng::node_rng(seed);
        let mut members = MemberTable::new();
        let me = profile.name.clone();
        // Signed for real by `announce_self` below, once the health to announce is set.
        let unsigned = Arc::new(Proof::alive(signer.key(), wire::Signature::UNSIGNED));
        members.insert(
            profile,
            incarnation,
            MemberState::Alive,
            unsigned,
            now,
            &mut rng,
        );
        let mut node = Node {
            awareness: Awareness::new(config.awareness_max),
            broadcasts: BroadcastQueue::new(config.max_queued_updates),
            kv_broadcasts: BroadcastQueue::new(config.max_queued_updates),
            cluster: ClusterId::from_name(&cluster),
            config,
            me,
            signer,
            verifier,
            rng,
            members,
            suspicions: BTreeMap::new(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            probe: None,
            probe_cursor: 0,
            probe_generation: 0,
            next_seq: 0,
            relays: BTreeMap::new(),
            recent_pings: VecDeque::new(),
            checks: BTreeMap::new(),
            phase: Phase::Running,
            join: None,
            join_attempts: 0,
            gossip_muted: false,
            advertised_health: 0,
            proven,
            fresh_news: false,
            eager_pending: false,
            last_eager: None,
            joined_at: None,
            heal_sync_at: None,
            kv: KvStore::new(kv_epoch),
            certificates: CertBook::default(),
        };
        // A new node is presumed slow until it shows otherwise: its join carries the
        // unproven health, so the cluster waits long enough for its first answers.
        node.set_advertised_health(node.announced_health());
        node.sign_self();
        // Random first deadlines spread nodes started together across the interval.
        let probe_at = now + node.jitter(node.config.probe_interval);
        node.timers
            .schedule(probe_at, Timer::Probe { generation: 0 });
        let gossip_at = now + node.jitter(node.config.gossip_interval);
        node.timers.schedule(gossip_at, Timer::Gossip);
        let push_pull_at = now + node.jitter(node.config.push_pull_interval);
        node.timers.schedule(push_pull_at, Timer::PushPull);
        let reconnect_at = now + node.jitter(node.config.reconnect_interval);
        node.timers.schedule(reconnect_at, Timer::Reconnect);
        let reap_at = now + node.reap_interval();
        node.timers.schedule(reap_at, Timer::Reap);
        Ok(node)
    }

    // ----- inputs -------------------------------------------------------------------

    /// Feeds a datagram received from `from`. Bad input is counted and dropped; it
    /// never changes state.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        if self.phase == Phase::Left {
            return;
        }
        self.stats.datagrams_in += 1;
        self.stats.datagram_bytes_in += bytes.len() as u64;
        let messages = match wire::decode_datagram(bytes) {
            Ok(m) => m,
            Err(e) => return self.count_bad_input(from, &e),
        };
        for (m, len) in &messages {
            self.stats.received.add(m.kind(), *len);
        }
        // Updates first, so a reply built below already carries any refutation they
        // caused (a suspect pinged by its buddy answers with its new incarnation).
        let (updates, control): (Vec<_>, Vec<_>) =
            messages.into_iter().map(|(m, _)| m).partition(is_update);
        for m in updates {
            self.apply_message(now, from, m);
        }
        for m in control {
            self.apply_message(now, from, m);
        }
        self.schedule_eager_gossip(now);
    }

    /// Feeds a whole stream message received from `from` (the driver reassembles it).
    pub fn handle_stream(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        if self.phase == Phase::Left {
            return;
        }
        self.stats.streams_in += 1;
        self.stats.stream_bytes_in += bytes.len() as u64;
        match wire::decode_stream(bytes, self.cluster) {
            Ok(m) => {
                self.stats.received.add(
                    m.kind(),
                    bytes.len().saturating_sub(wire::STREAM_HEADER_LEN),
                );
                match m {
                    Message::Ping { seq, target } => {
                        self.on_ping(now, from, seq, target, Channel::Stream)
                    }
                    Message::Ack { seq } => self.on_ack(now, from, seq, Channel::Stream),
                    m => self.apply_message(now, from, m),
                }
            }
            Err(e) => self.count_bad_input(from, &e),
        }
        self.schedule_eager_gossip(now);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(timer) = self.timers.pop_due(now) {
            if self.phase == Phase::Left {
                return;
            }
            self.fire(now, timer);
        }
        self.schedule_eager_gossip(now);
    }

    /// Carries out a local command. On error nothing changed.
    pub fn handle_command(&mut self, now: Time, command: Command) -> Result<(), CommandError> {
        if self.phase != Phase::Running {
            return Err(CommandError::Left);
        }
        let result = match command {
            Command::Join { seeds } => self.start_join(now, seeds),
            Command::Leave => {
                self.start_leave(now);
                Ok(())
            }
            Command::SetTags(tags) => self.set_tags(now, tags),
            Command::ForceLeave { name } => self.force_leave(now, &name),
            Command::SetKv { key, value } => self.set_kv(key, value),
        };
        self.schedule_eager_gossip(now);
        result
    }

    // ----- outputs ------------------------------------------------------------------

    /// The next datagram or stream message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front();
        release_burst(&mut self.transmits);
        t
    }

    /// The next membership event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        release_burst(&mut self.events);
        e
    }

    /// When `handle_timeout` next wants to run; `None` once the node has left.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.phase == Phase::Left {
            None
        } else {
            self.timers.next_deadline()
        }
    }

    // ----- read access --------------------------------------------------------------

    /// This node's name.
    pub fn name(&self) -> &Name {
        &self.me
    }

    /// The public half of this node's key pair.
    pub fn key(&self) -> wire::NodeKey {
        self.signer.key()
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.members.get(&self.me).map_or(0, |m| m.incarnation())
    }

    /// The member table (this node included).
    pub fn members(&self) -> &MemberTable {
        &self.members
    }

    /// A snapshot of one member.
    pub fn member(&self, name: &str) -> Option<MemberInfo> {
        self.members.get(name).map(|m| self.members.info(m))
    }

    /// The membership digest (see [`MemberTable::digest`]).
    pub fn digest(&self) -> u64 {
        self.members.digest()
    }

    /// The digest push-pull compares: membership plus every live member's replicated
    /// map summary. Two nodes with the same sync digest hold the same members and the
    /// same state for each.
    pub fn sync_digest(&self) -> u64 {
        self.members.digest().wrapping_add(self.kv_digest())
    }

    /// The replicated key-value map held for `name` (this node's own included), if any.
    pub fn kv(&self, name: &str) -> Option<&KvMap> {
        self.kv.maps.get(name).filter(|m| m.epoch() > 0)
    }

    /// Every member's replicated map held here.
    pub fn kv_maps(&self) -> impl Iterator<Item = (&Name, &KvMap)> {
        self.kv.maps.iter().filter(|(_, m)| m.epoch() > 0)
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The Lifeguard local health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Whether a graceful leave has completed.
    pub fn has_left(&self) -> bool {
        self.phase == Phase::Left
    }

    /// The protocol configuration in force.
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// Updates waiting to be gossiped (membership and replicated state).
    pub fn queued_updates(&self) -> usize {
        self.broadcasts.len() + self.kv_broadcasts.len()
    }

    // ----- dispatch -----------------------------------------------------------------

    fn apply_message(&mut self, now: Time, from: SocketAddr, msg: Message) {
        match msg {
            Message::Ping { seq, target } => {
                self.on_ping(now, from, seq, target, Channel::Datagram)
            }
            Message::Ack { seq } => self.on_ack(now, from, seq, Channel::Datagram),
            Message::PingReq {
                seq,
                target,
                target_addr,
            } => self.on_ping_req(now, from, seq, target, target_addr),
            Message::Nack { seq } => self.on_nack(seq),
            Message::Alive {
                profile,
                incarnation,
                health,
                key,
                sig,
            } => self.apply_alive(now, profile, incarnation, health, key, sig),
            Message::Suspect {
                name,
                incarnation,
                from: by,
            } => self.apply_suspect(now, &name, incarnation, &by),
            Message::Dead {
                name,
                incarnation,
                from: by,
            } => self.apply_dead(now, &name, incarnation, &by),
            Message::Leave {
                name,
                incarnation,
                sig,
            } => self.apply_leave(now, &name, incarnation, sig),
            Message::Join { members } => self.on_join(now, from, members),
            Message::PushPull {
                phase,
                digest,
                members,
            } => self.on_push_pull(now, from, phase, digest, members),
            update @ Message::KvUpdate { .. } => self.on_kv_update(now, from, update),
            Message::KvPull { nodes } => self.on_kv_pull(from, nodes),
            Message::KvPush { maps } => self.on_kv_push(now, from, maps),
        }
    }

    fn fire(&mut self, now: Time, timer: Timer) {
        match timer {
            Timer::Probe { generation } => self.on_probe_timer(now, generation),
            Timer::ProbeTimeout { seq } => self.on_probe_timeout(now, seq),
            Timer::ProbeDeadline { seq } => self.on_probe_deadline(now, seq),
            Timer::RelayTimeout { seq } => self.on_relay_timeout(now, seq),
            Timer::CheckRetry { seq } => self.on_check_retry(now, seq),
            Timer::CheckTimeout { seq } => self.on_check_timeout(now, seq),
            Timer::Suspicion { name } => self.on_suspicion_timer(now, &name),
            Timer::Gossip => self.on_gossip_timer(now),
            Timer::GossipSoon => self.on_eager_gossip(now),
            Timer::PushPull => self.on_push_pull_timer(now),
            Timer::Reap => self.on_reap_timer(now),
            Timer::Reconnect => self.on_reconnect_timer(now),
            Timer::JoinTimeout { attempt } => self.on_join_timeout(attempt),
            Timer::JoinSync { remaining } => self.on_join_sync(now, remaining),
            Timer::LeaveDeadline => self.finish_leave(),
        }
    }

    fn count_bad_input(&mut self, from: SocketAddr, e: &DecodeError) {
        match e {
            DecodeError::ForeignCluster { .. } | DecodeError::UnknownVersion { .. } => {
                self.stats.foreign_dropped += 1
            }
            _ => self.stats.malformed_dropped += 1,
        }
        tracing::debug!(%from, error = %e, "dropped input");
    }

    // ----- helpers shared by the behaviour files ------------------------------------

    /// The health score this node announces: its Lifeguard score, but never below the
    /// highest score until one of its probes is answered in time at full health.
    ///
    /// Until then nothing shows this node is not the slow one: a node started on a
    /// starved host answers every probe late from its first second, and in a cluster
    /// still small its suspicions would run out (1.25 s at N < 10) before it could even
    /// read them, let alone refute. Announced at the highest score, its probers wait
    /// longer and its suspicions last their maximum. A healthy node proves itself with
    /// its first probe (about a second) and announces 0 at a new incarnation (§8).
    pub(super) fn announced_health(&self) -> u8 {
        let score = self.awareness.score();
        let score = if self.proven {
            score
        } else {
            score.max(self.config.awareness_max.saturating_sub(1))
        };
        u8::try_from(score).unwrap_or(u8::MAX)
    }

    /// A fresh sequence number.
    pub(super) fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// A uniformly random duration in `[0, d)`.
    pub(super) fn jitter(&mut self, d: Duration) -> Duration {
        d.mul_f64(rng::unit(&mut self.rng))
    }

    /// Live members, this node included: the `N` of every formula.
    pub(super) fn cluster_size(&self) -> usize {
        self.members.live_count()
    }

    /// How often tombstones are swept: a quarter of the shorter retention, at least one
    /// probe interval.
    pub(super) fn reap_interval(&self) -> Duration {
        (self.config.dead_retention.min(self.config.left_retention) / 4)
            .max(self.config.probe_interval)
    }

    /// Sends `first` messages to `to` in one datagram, then fills the rest of the budget
    /// with queued updates.
    pub(super) fn send_datagram(&mut self, to: SocketAddr, first: &[Message]) {
        let mut d = DatagramBuilder::new(self.config.datagram_budget);
        for m in first {
            let before = d.remaining();
            match d.push(m) {
                Ok(true) => self.stats.sent.add(m.kind(), before - d.remaining()),
                Ok(false) => tracing::debug!(kind = ?m.kind(), "message over the datagram budget"),
                Err(e) => tracing::warn!(error = %e, "message failed to encode"),
            }
        }
        let limit = self.config.retransmit_limit(self.cluster_size());
        let sent = &mut self.stats.sent;
        self.broadcasts
            .fill(&mut d, limit, |kind, len| sent.add(kind, len));
        self.kv_broadcasts
            .fill(&mut d, limit, |kind, len| sent.add(kind, len));
        if d.is_empty() {
            return;
        }
        let payload = d.finish();
        self.stats.datagrams_out += 1;
        self.stats.datagram_bytes_out += payload.len() as u64;
        self.transmits.push_back(Transmit {
            to,
            payload,
            channel: Channel::Datagram,
        });
    }

    /// Sends one stream message to `to`.
    pub(super) fn send_stream(&mut self, to: SocketAddr, msg: &Message) {
        match wire::encode_stream(msg, self.cluster) {
            Ok(payload) => {
                self.stats
                    .sent
                    .add(msg.kind(), payload.len() - wire::STREAM_HEADER_LEN);
                self.stats.streams_out += 1;
                self.stats.stream_bytes_out += payload.len() as u64;
                self.transmits.push_back(Transmit {
                    to,
                    payload,
                    channel: Channel::Stream,
                });
            }
            Err(e) => tracing::warn!(error = %e, "stream message failed to encode"),
        }
    }

    /// Queues an update about `subject` for gossip, replacing older news about it.
    pub(super) fn enqueue(&mut self, subject: Name, msg: &Message) {
        if self.gossip_muted && subject != self.me {
            return;
        }
        let mut bytes = Vec::with_capacity(32);
        match wire::encode_message(msg, &mut bytes) {
            Ok(_) => {
                self.broadcasts.push(subject, msg.kind(), bytes);
                self.fresh_news = true;
            }
            Err(e) => tracing::warn!(error = %e, "update failed to encode"),
        }
    }

    /// Emits an event about the member at position `i`.
    pub(super) fn emit(&mut self, i: usize, make: fn(MemberInfo) -> Event) {
        let info = self.members.info(self.members.at(i));
        self.events.push_back(make(info));
    }

    /// Up to `k` distinct random live members to gossip to, and marks them contacted.
    /// For [`YOUNG_GOSSIP`] after its own join, a node prefers members it has already
    /// sent to.
    ///
    /// Over QUIC a first contact costs a TLS handshake (about a millisecond of CPU on
    /// both sides). When a whole cluster comes up at once, every node gossips several
    /// rounds a second about the others' joins, and uniformly random targets make every
    /// pair meet through gossip at once (256 agents on two cores spent their join doing
    /// little else). So a young node's round first draws up to [`CONTACTED_TRIES`]
    /// random members and keeps the live, contacted ones (its seed, the members it
    /// probed or gossiped to), and fills the rest uniformly among all live members,
    /// which then count as contacted too. Only the young node's own sends prefer: the
    /// others keep uniform targets, so the young node hears its share of gossip (with
    /// every node preferring, a churning cluster's young members, which few had
    /// contacted, learnt of failures only by push-pull).
    pub(super) fn gossip_targets(&mut self, now: Time, k: usize) -> Vec<usize> {
        let n = self.members.len();
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        if n <= 1 || k == 0 {
            return picked;
        }
        let young = self.joined_at.is_some_and(|at| now < at + YOUNG_GOSSIP);
        for _ in 0..if young { CONTACTED_TRIES } else { 0 } {
            if picked.len() == k {
                break;
            }
            let i = rng::below(&mut self.rng, n);
            let m = self.members.at(i);
            if m.contacted() && m.state().is_live() && *m.name() != self.me && !picked.contains(&i)
            {
                picked.push(i);
            }
        }
        let more = self.random_live_members_except(k - picked.len(), None, &picked);
        picked.extend(more);
        for &i in &picked {
            self.members.mark_contacted(i);
        }
        picked
    }

    /// Up to `k` distinct random live members other than this node and `exclude`,
    /// found by rejection sampling (cheap when most members are live).
    pub(super) fn random_live_members(&mut self, k: usize, exclude: Option<&str>) -> Vec<usize> {
        self.random_live_members_except(k, exclude, &[])
    }

    /// As [`Node::random_live_members`], leaving out the positions in `taken` too (live
    /// members other than this node and `exclude`).
    fn random_live_members_except(
        &mut self,
        k: usize,
        exclude: Option<&str>,
        taken: &[usize],
    ) -> Vec<usize> {
        let n = self.members.len();
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        if n <= 1 || k == 0 {
            return picked;
        }
        // Count only the live members that can be picked: this node is not live once it
        // is leaving, and `exclude` may be this node or not live at all.
        let is_live = |name: &str| self.members.get(name).is_some_and(|m| m.state().is_live());
        let excluded = usize::from(exclude.is_some_and(|e| e != self.me.as_str() && is_live(e)));
        let candidates = self
            .members
            .live_count()
            .saturating_sub(usize::from(is_live(&self.me)) + excluded + taken.len());
        let want = k.min(candidates);
        let mut tries = 0;
        while picked.len() < want && tries < 8 * k + 32 {
            tries += 1;
            let i = rng::below(&mut self.rng, n);
            let m = self.members.at(i);
            if !m.state().is_live()
                || *m.name() == self.me
                || exclude == Some(m.name().as_str())
                || picked.contains(&i)
                || taken.contains(&i)
            {
                continue;
            }
            picked.push(i);
        }
        if picked.len() < want {
            // Sparse live set (after a region outage): fall back to a full scan.
            let mut pool: Vec<usize> = (0..n)
                .filter(|&i| {
                    let m = self.members.at(i);
                    m.state().is_live()
                        && *m.name() != self.me
                        && exclude != Some(m.name().as_str())
                        && !picked.contains(&i)
                        && !taken.contains(&i)
                })
                .collect();
            rng::shuffle(&mut self.rng, &mut pool);
            picked.extend(pool.into_iter().take(want - picked.len()));
        }
        picked
    }
}

/// Output queues keep the capacity of their largest burst (a join yields one event per
/// member); once drained, give it back, or a simulator holding thousands of nodes holds
/// thousands of burst-sized empty queues.
fn release_burst<T>(queue: &mut VecDeque<T>) {
    const KEEP: usize = 16;
    if queue.is_empty() && queue.capacity() > 4 * KEEP {
        queue.shrink_to(KEEP);
    }
}

fn is_update(m: &Message) -> bool {
    matches!(
        m,
        Message::Alive { .. }
            | Message::Suspect { .. }
            | Message::Dead { .. }
            | Message::Leave { .. }
            | Message::KvUpdate { .. }
    )
}

/// Checks a profile the node will announce for itself.
pub(super) fn validate_profile(p: &Profile) -> Result<(), ConfigError> {
    let field_err = |field, reason: String| Err(ConfigError { field, reason });
    if p.name.is_empty() {
        return field_err("name", "must not be empty".into());
    }
    for (field, value) in [("name", &p.name), ("region", &p.region), ("zone", &p.zone)] {
        if value.len() > wire::MAX_NAME_LEN {
            return field_err(
                field,
                format!(
                    "is {} bytes, over the limit of {}",
                    value.len(),
                    wire::MAX_NAME_LEN
                ),
            );
        }
        if wire::has_control_char(value) {
            // Every peer would refuse the announcement (§2.3).
            return field_err(field, format!("{value:?} holds a control character"));
        }
    }
    if let Err(e) = p.tags.validate() {
        return field_err("tags", e.to_string());
    }
    Ok(())
}
