//! The simulated world: many `muster::proto::Node`s on a modelled network, driven by a
//! next-event loop in virtual time.
//!
//! The queue holds (time, sequence, action): packet deliveries, node wake-ups at the
//! deadlines the nodes ask for, scripted faults and periodic checks. Each action calls
//! one `handle_*` on one node and then drains that node's transmissions (routed through
//! the network model), events (recorded by the observer) and next deadline. One seed
//! fixes everything; ties break by insertion order, so a seed replays byte for byte.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use muster::proto::{
    Channel, Command, Event, Node, NodeOptions, NodeSigner, SwimConfig, Time, Transmit, Verifier,
};
use muster::wire::{self, MemberRecord, Message, Name, Profile, SyncPhase, Tags};
use rand_pcg::Pcg64Mcg;

use crate::network::{self, Network};
use crate::observe::{Observer, Subject};
use crate::scenario::{FaultAction, FaultSpec, Scenario, Start};
use crate::sim_rng;

mod faults;
mod read;
mod schedule;

use schedule::{Action, Scheduled};

/// Cluster name every simulated node uses.
const CLUSTER: &str = "muster-sim";
/// How often convergence is checked once faults are over.
const CONVERGE_CHECK: Duration = Duration::from_millis(100);
/// How often bandwidth is sampled for charts.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A node whose join failed tries again after this long (the agent's retry-join).
const JOIN_RETRY: Duration = Duration::from_secs(1);
/// A rolling restart keeps each node down this long unless the scenario says otherwise.
const DEFAULT_DOWNTIME: Duration = Duration::from_secs(5);

/// Life stage of a simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Not started yet (join start, churn newcomer).
    Pending,
    Up,
    /// Leaving gracefully; still running until its leave completes.
    Leaving,
    Crashed,
    Left,
}

struct SimNode {
    node: Option<Node>,
    /// Its node key, the same in every life (an agent with a data dir keeps it).
    signer: Arc<NodeSigner>,
    name: Name,
    addr: SocketAddr,
    place: (u16, u16),
    life: Life,
    slow: Duration,
    wake_at: Option<Time>,
    restarts: u32,
    bytes_sent: u64,
    msgs_sent: u64,
    up_since: Option<Time>,
    up_total: Duration,
}

/// One bandwidth sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Virtual time.
    pub at: Time,
    /// Bytes sent by all nodes since the start.
    pub bytes: u64,
    /// Nodes up at the sample.
    pub up: usize,
}

/// The simulated world.
pub struct World {
    scenario: Scenario,
    config: SwimConfig,
    seed: u64,
    now: Time,
    end: Time,
    rng: Pcg64Mcg,
    nodes: Vec<SimNode>,
    /// One verifier for every node: each distinct signed record is checked once.
    verifier: Verifier,
    by_addr: HashMap<SocketAddr, usize>,
    by_name: HashMap<Name, usize>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    net: Network,
    obs: Observer,
    seeds: Vec<usize>,
    base_nodes: usize,
    last_fault: Time,
    converged_at: Option<Time>,
    joined_at: Option<Time>,
    samples: Vec<Sample>,
    steps: u64,
    /// After a heal, alarms between former sides count as partition effects for this
    /// long: the longest suspicion timeout of the cluster.
    heal_grace: Duration,
    /// Writes made by the state workload.
    state_writes: u64,
    /// Primary-role agreement, with a `[primaries]` section.
    primary_watch: crate::primaries::PrimaryWatch,
    primary_cache: crate::primaries::RecordCache,
    /// Until when a partition is in force or just healed (alarms and disagreements
    /// across it are expected).
    split_until: Time,
}

/// Address of node `i`: inside 127.0.0.0/8, purely an identifier (nothing is sent).
/// The protocol nodes of `nodes` that are running now.
fn up_nodes(nodes: &[SimNode]) -> Vec<&Node> {
    nodes
        .iter()
        .filter(|n| n.life == Life::Up)
        .filter_map(|n| n.node.as_ref())
        .collect()
}

fn addr_of(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(ip.into(), 7946)
}

impl World {
    /// Builds the world for a scenario with `nodes` nodes and world seed `seed`.
    pub fn new(scenario: Scenario, nodes: usize, seed: u64) -> anyhow::Result<World> {
        let config = scenario.swim_config()?;
        let heal_grace = config.suspicion_max(nodes);
        let net = Network::new(scenario.network.clone());
        let end = Time::from_duration(scenario.duration);
        let mut w = World {
            seeds: (0..scenario.seeds.clamp(1, nodes)).collect(),
            config,
            seed,
            now: Time::ZERO,
            end,
            rng: sim_rng::derive(seed, u64::MAX),
            nodes: Vec::with_capacity(nodes),
            verifier: Verifier::shared_memo(),
            by_addr: HashMap::with_capacity(nodes),
            by_name: HashMap::with_capacity(nodes),
            queue: BinaryHeap::new(),
            seq: 0,
            net,
            obs: Observer::default(),
            base_nodes: nodes,
            last_fault: Time::ZERO,
            converged_at: None,
            joined_at: None,
            samples: Vec::new(),
            steps: 0,
            heal_grace,
            state_writes: 0,
            primary_watch: Default::default(),
            primary_cache: Default::default(),
            split_until: Time::ZERO,
            scenario,
        };
        for i in 0..nodes {
            w.add_node(i);
        }
        match w.scenario.start {
            Start::Converged => w.start_converged()?,
            Start::Join => {
                let spread = w.scenario.join_spread.unwrap_or(Duration::ZERO);
                for i in 0..nodes {
                    let at = if i == 0 {
                        Time::ZERO
                    } else {
                        Time::ZERO + spread.mul_f64(sim_rng::unit(&mut w.rng))
                    };
                    w.schedule(at, Action::Start { node: i });
                }
            }
        }
        let faults = w.scenario.faults.clone();
        for (k, f) in faults.iter().enumerate() {
            w.schedule(Time::from_duration(f.at), Action::Fault(k));
            let end_of = match f.action {
                FaultAction::Churn => f.until.unwrap_or(f.at),
                FaultAction::KillPrimary => {
                    f.until.unwrap_or(f.at) + f.downtime.unwrap_or(DEFAULT_DOWNTIME)
                }
                FaultAction::RollingRestart => {
                    let count = w.select(f).len() as u32;
                    f.at + f.interval.unwrap_or(Duration::from_secs(10)) * count.saturating_sub(1)
                        + f.downtime.unwrap_or(DEFAULT_DOWNTIME)
                }
                _ => f.at,
            };
            w.last_fault = w.last_fault.max(Time::from_duration(end_of));
        }
        if let Some(st) = &w.scenario.state {
            let end_of = st.until;
            w.schedule(Time::from_duration(st.from), Action::StateWrite);
            w.last_fault = w.last_fault.max(Time::from_duration(end_of));
        }
        if let Some(p) = &w.scenario.primaries {
            w.schedule(Time::ZERO + p.check, Action::PrimaryCheck);
        }
        w.schedule(Time::ZERO, Action::Sample);
        w.schedule(Time::ZERO + CONVERGE_CHECK, Action::ConvergeCheck);
        Ok(w)
    }

    fn add_node(&mut self, i: usize) {
        let place = self
            .net
            .place(i % self.base_nodes.max(1), self.base_nodes.max(1));
        let name = Name::from(format!("node-{i}"));
        let addr = addr_of(i);
        self.by_addr.insert(addr, i);
        self.by_name.insert(name.clone(), i);
        self.net.ensure_node(i);
        self.nodes.push(SimNode {
            node: None,
            signer: Arc::new(NodeSigner::from_seed(sim_rng::node_key_seed(self.seed, i))),
            name,
            addr,
            place,
            life: Life::Pending,
            slow: Duration::ZERO,
            wake_at: None,
            restarts: 0,
            bytes_sent: 0,
            msgs_sent: 0,
            up_since: None,
            up_total: Duration::ZERO,
        });
    }

    fn profile(&self, i: usize) -> Profile {
        let n = &self.nodes[i];
        let (region, zone) = self.net.names(n.place.0, n.place.1);
        Profile {
            name: n.name.clone(),
            addr: n.addr,
            region: region.into(),
            zone: zone.into(),
            tags: Tags::new(),
        }
    }

    /// Starts node `i`; `proven` for the pre-converged start, where every node is as if
    /// long running, rather than a fresh start that must prove its health (§8).
    fn boot(&mut self, i: usize, proven: bool) -> anyhow::Result<()> {
        let options = NodeOptions {
            config: self.config.clone(),
            profile: self.profile(i),
            cluster: CLUSTER.into(),
            incarnation: 0,
            signer: self.nodes[i].signer.clone(),
            verifier: self.verifier.clone(),
            seed: sim_rng::node_seed(self.seed, i, self.nodes[i].restarts),
            // Virtual time: a restart always starts a later epoch than the run before.
            kv_epoch: self.now.as_nanos() / 1_000 + 1,
            proven,
        };
        let mut node =
            Node::new(options, self.now).with_context(|| format!("starting node {i}"))?;
        if let Some(p) = &self.scenario.primaries {
            for k in 0..p.services {
                let (key, value) = crate::primaries::record_of(i, k, self.base_nodes);
                node.handle_command(
                    self.now,
                    Command::SetKv {
                        key,
                        value: Some(value),
                    },
                )
                .context("publishing a service record")?;
            }
        }
        let n = &mut self.nodes[i];
        n.node = Some(node);
        n.life = Life::Up;
        n.wake_at = None;
        n.up_since = Some(self.now);
        Ok(())
    }

    /// Every node starts knowing every other, through one shared join answer.
    fn start_converged(&mut self) -> anyhow::Result<()> {
        let cluster = wire::ClusterId::from_name(CLUSTER);
        let members: Vec<MemberRecord> = (0..self.nodes.len())
            // As if long running: proven healthy (health 0, see `boot`).
            .map(|i| self.nodes[i].signer.record(cluster, self.profile(i), 0, 0))
            .collect();
        let msg = Message::PushPull {
            phase: SyncPhase::JoinReply,
            digest: 0,
            members,
        };
        let snapshot = wire::encode_stream(&msg, wire::ClusterId::from_name(CLUSTER))?;
        let from = self.nodes[0].addr;
        for i in 0..self.nodes.len() {
            self.boot(i, true)?;
            if let Some(node) = self.nodes[i].node.as_mut() {
                node.handle_stream(self.now, from, &snapshot);
            }
            self.after_step(i, None);
        }
        Ok(())
    }

    fn schedule(&mut self, at: Time, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            action,
        }));
    }

    fn seed_addrs(&self, except: usize) -> Vec<SocketAddr> {
        let up: Vec<SocketAddr> = self
            .seeds
            .iter()
            .filter(|&&s| s != except && self.nodes[s].life == Life::Up)
            .map(|&s| self.nodes[s].addr)
            .collect();
        if !up.is_empty() {
            return up;
        }
        // Every seed is down: join through any running node, as an operator would.
        self.nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != except && n.life == Life::Up)
            .map(|(_, n)| n.addr)
            .take(3)
            .collect()
    }

    fn join(&mut self, i: usize) {
        let seeds = self.seed_addrs(i);
        let now = self.now;
        if let Some(node) = self.nodes[i].node.as_mut()
            && node.handle_command(now, Command::Join { seeds }).is_err()
        {
            // No one to join yet: try again shortly.
            self.schedule(now + JOIN_RETRY, Action::JoinRetry { node: i });
        }
        self.after_step(i, None);
    }

    /// Runs until the scenario's end or until `stop` is set; `tick` is called now and then
    /// with the virtual time reached.
    pub fn run(&mut self, stop: &AtomicBool, mut tick: impl FnMut(Time)) -> anyhow::Result<()> {
        while let Some(Reverse(top)) = self.queue.peek() {
            if top.at > self.end {
                break;
            }
            let Reverse(Scheduled { at, action, .. }) =
                self.queue.pop().expect("peeked just above");
            self.now = at;
            self.steps += 1;
            if self.steps.is_multiple_of(65_536) {
                tick(self.now);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            self.dispatch(action)?;
        }
        if !stop.load(Ordering::Relaxed) {
            // Nothing happens between the last action and the end: time still passes.
            self.now = self.end;
        }
        Ok(())
    }

    fn dispatch(&mut self, action: Action) -> anyhow::Result<()> {
        match action {
            Action::Deliver {
                to,
                from,
                payload,
                stream,
            } => self.deliver(to, from, &payload, stream),
            Action::Wake { node, at } => {
                if self.nodes[node].wake_at == Some(at) {
                    self.nodes[node].wake_at = None;
                    let now = self.now;
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_timeout(now);
                    }
                    self.after_step(node, None);
                }
            }
            Action::Start { node } => {
                self.boot(node, false)?;
                if node == 0 {
                    self.after_step(0, None)
                } else {
                    self.join(node)
                }
            }
            Action::JoinRetry { node } => {
                if self.nodes[node].life == Life::Up {
                    self.join(node);
                }
            }
            Action::Fault(k) => self.fault(k)?,
            Action::Crash { node } => self.crash(node),
            Action::Restart { node } => self.restart(node)?,
            Action::ChurnTick { fault } => self.churn_tick(fault)?,
            Action::Sample => {
                let bytes = self.nodes.iter().map(|n| n.bytes_sent).sum();
                let up = self.nodes.iter().filter(|n| n.life == Life::Up).count();
                self.samples.push(Sample {
                    at: self.now,
                    bytes,
                    up,
                });
                self.schedule(self.now + SAMPLE_EVERY, Action::Sample);
            }
            Action::ConvergeCheck => self.converge_check(),
            Action::StateWrite => self.state_write(),
            Action::PrimaryCheck => self.primary_check(),
            Action::KillPrimary { fault, round } => self.kill_primary(fault, round),
        }
        Ok(())
    }

    fn deliver(&mut self, to: usize, from: usize, payload: &[u8], stream: bool) {
        let now = self.now;
        let from_addr = self.nodes[from].addr;
        let Some(node) = self.nodes[to].node.as_mut() else {
            return;
        };
        if stream {
            node.handle_stream(now, from_addr, payload);
            self.after_step(to, None);
        } else {
            node.handle_datagram(now, from_addr, payload);
            self.after_step(to, Some(from));
        }
    }

    /// Drains a node after it handled something: routes its transmissions, records its
    /// events, and re-arms its wake-up. `acking` is the sender of the datagram it just
    /// handled, which QUIC acknowledges in a reply or an ACK-only packet.
    fn after_step(&mut self, i: usize, acking: Option<usize>) {
        let Some(node) = self.nodes[i].node.as_mut() else {
            return;
        };
        let mut transmits: Vec<Transmit> = Vec::new();
        while let Some(t) = node.poll_transmit() {
            transmits.push(t);
        }
        let mut events: Vec<Event> = Vec::new();
        while let Some(e) = node.poll_event() {
            events.push(e);
        }
        let deadline = node.poll_timeout();
        let mut acked = acking.is_none();
        for t in transmits {
            let piggyback = !acked
                && acking.is_some_and(|a| self.nodes[a].addr == t.to)
                && t.channel == Channel::Datagram;
            if piggyback {
                acked = true;
                self.nodes[i].bytes_sent += network::ACK_FRAME;
            }
            self.route(i, t);
        }
        if !acked {
            self.nodes[i].bytes_sent += network::ACK_ONLY_PACKET;
        }
        for e in events {
            self.observe(i, &e);
        }
        if let Some(at) = deadline {
            let at = at.max(self.now);
            let n = &mut self.nodes[i];
            if n.wake_at.is_none_or(|w| at < w) {
                n.wake_at = Some(at);
                self.schedule(at, Action::Wake { node: i, at });
            }
        }
    }

    fn route(&mut self, from: usize, t: Transmit) {
        self.nodes[from].msgs_sent += 1;
        let Some(&to) = self.by_addr.get(&t.to) else {
            self.nodes[from].bytes_sent += t.payload.len() as u64 + network::DATAGRAM_OVERHEAD;
            return;
        };
        let (a, b) = (self.nodes[from].place, self.nodes[to].place);
        match t.channel {
            Channel::Stream => {
                let reachable = self.nodes[to].node.is_some()
                    && !self.net.blocked(from, to)
                    && !self.net.blocked(to, from);
                if !reachable {
                    self.nodes[from].bytes_sent += network::FAILED_HANDSHAKE;
                    return;
                }
                let (sent, acks) = network::stream_cost(t.payload.len() as u64);
                self.nodes[from].bytes_sent += sent;
                self.nodes[to].bytes_sent += acks;
                self.deliver_later(from, to, t.payload, true);
            }
            Channel::Datagram => {
                self.nodes[from].bytes_sent += t.payload.len() as u64 + network::DATAGRAM_OVERHEAD;
                if self.net.blocked(from, to) || self.net.lost(&mut self.rng, a, b) {
                    return;
                }
                self.deliver_later(from, to, t.payload, false);
            }
        }
    }

    /// Schedules the arrival of `payload` at `to` after the link's latency, plus the
    /// receiver's input delay if it is a slow node.
    fn deliver_later(&mut self, from: usize, to: usize, payload: Vec<u8>, stream: bool) {
        let (a, b) = (self.nodes[from].place, self.nodes[to].place);
        let delay = self.net.latency(&mut self.rng, a, b) + self.nodes[to].slow;
        self.schedule(
            self.now + delay,
            Action::Deliver {
                to,
                from,
                payload,
                stream,
            },
        );
    }

    fn observe(&mut self, observer: usize, e: &Event) {
        let name = match e {
            Event::MemberJoined(m)
            | Event::MemberUpdated(m)
            | Event::MemberSuspected(m)
            | Event::MemberAlive(m)
            | Event::MemberFailed(m)
            | Event::MemberLeft(m)
            | Event::MemberReaped(m) => Some(&m.name),
            Event::JoinFailed { .. } => {
                self.schedule(self.now + JOIN_RETRY, Action::JoinRetry { node: observer });
                None
            }
            // Every simulated node keeps its key across lives, so none finds its
            // name held by another key; if one did, it would stop, as an agent does.
            Event::NameTaken { .. } => {
                self.take_down(observer, Life::Crashed);
                None
            }
            Event::LeaveCompleted => {
                self.take_down(observer, Life::Left);
                None
            }
            Event::Joined { .. } | Event::KvChanged { .. } => None,
        };
        let subject = name.and_then(|n| self.by_name.get(n)).map(|&s| Subject {
            index: s,
            up: matches!(self.nodes[s].life, Life::Up),
            slow: !self.nodes[s].slow.is_zero(),
            cut_off: self.net.blocked(observer, s)
                || self.net.blocked(s, observer)
                || self
                    .net
                    .recently_split(observer, s, self.now, self.heal_grace),
        });
        self.obs.record(self.now, observer, e, subject);
    }

    fn converge_check(&mut self) {
        let up = up_nodes(&self.nodes);
        let count = up.len();
        let all_see_all = up.iter().all(|n| n.members().live_count() == count);
        let all_started = self.nodes.iter().all(|n| n.life != Life::Pending);
        if self.joined_at.is_none() && all_started && all_see_all {
            self.joined_at = Some(self.now);
        }
        if self.now >= self.last_fault && self.converged_at.is_none() {
            // The sync digest: members and every member's replicated state.
            let digest = up.first().map(|n| n.sync_digest());
            if all_see_all && up.iter().all(|n| Some(n.sync_digest()) == digest) {
                self.converged_at = Some(self.now);
            }
        }
        if self.joined_at.is_none() || self.converged_at.is_none() {
            self.schedule(self.now + CONVERGE_CHECK, Action::ConvergeCheck);
        }
    }
}
