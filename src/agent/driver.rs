//! The driver task: the one owner of the [`Node`], and the requests it serves.
//!
//! Each turn of the loop handles exactly one input (a request, a peer message, the
//! node's timer, a join retry), then flushes: transmissions go to the transport, events
//! to the broadcast, and a new membership snapshot to the watch channel if the membership
//! changed (an event, or a new digest or table size). Timers are the node's own queue, read with
//! `poll_timeout` each turn, so they can never fire out of order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::agent::clock::Clock;
use crate::agent::join::JoinRetry;
use crate::agent::kv_view::{self, KvMaps};
use crate::proto::rng::{self, NodeRng};
use crate::proto::{Channel, Command, CommandError, Event, MemberInfo, Node, Stats, Transmit};
use crate::transport::{Incoming, Transport};
use crate::wire::{Name, Tags};

/// An immutable snapshot of the membership, sorted by name, this node included.
pub type Members = Arc<Vec<MemberInfo>>;

/// The receivers of [`super::Mesh::follow`], shared with the driver that feeds them.
pub(super) type Followers = Arc<std::sync::Mutex<Vec<mpsc::UnboundedSender<Event>>>>;

/// A request from the [`crate::agent::Mesh`] handle.
#[derive(Debug)]
pub(super) enum Request {
    /// Join through seeds (and keep retrying until one answers).
    Join {
        seeds: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Replace this node's tags.
    SetTags {
        tags: Tags,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Start a graceful leave; `done` fires when it has completed.
    Leave {
        reply: oneshot::Sender<Result<(), CommandError>>,
        done: oneshot::Sender<()>,
    },
    /// Set some tags and remove others, keeping the rest; answers the new tags.
    UpdateTags {
        set: Vec<(String, String)>,
        delete: Vec<String>,
        reply: oneshot::Sender<Result<Tags, CommandError>>,
    },
    /// Mark a failed member as left.
    ForceLeave {
        name: Name,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// A copy of the node's counters.
    Stats { reply: oneshot::Sender<Stats> },
    /// Write (or delete) one key of this node's replicated state.
    SetKv {
        key: String,
        value: Option<String>,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Panic, as a bug would: how tests check that whoever runs the mesh notices.
    /// Debug builds only.
    #[cfg(debug_assertions)]
    Crash,
}

/// The driver's state; see the module docs.
pub(super) struct Driver {
    pub(super) node: Node,
    pub(super) clock: Clock,
    pub(super) transport: Transport,
    pub(super) incoming: mpsc::Receiver<Incoming>,
    pub(super) requests: mpsc::Receiver<Request>,
    pub(super) events: broadcast::Sender<Event>,
    /// Subscribers that get every event (see [`crate::agent::Mesh::follow`]).
    pub(super) followers: Followers,
    pub(super) members: watch::Sender<Members>,
    /// Every member's replicated state, republished when some of it changes.
    pub(super) kv: watch::Sender<KvMaps>,
    /// Jitter for join retries (the node has its own generator).
    pub(super) rng: NodeRng,
    pub(super) join: JoinRetry,
    pub(super) leave_done: Vec<oneshot::Sender<()>>,
    /// Why the node cannot go on (its name is held by another live key): the driver
    /// stops after the current input with this reason (see [`Driver::run`]).
    pub(super) fatal: Option<String>,
    /// Digest and size of the table at the last published snapshot.
    pub(super) published: (u64, usize),
    /// Round-trip times at the last published snapshot ([`rtt_fingerprint`]), and when
    /// they were last compared with the node's (at most every [`RTT_REFRESH`]: the
    /// fingerprint reads every member, too much for every turn of the loop).
    pub(super) rtt_published: u64,
    pub(super) rtt_checked_at: Instant,
    /// The seeds of the latest join, re-contacted while fewer members are live than the
    /// most ever seen (a partition the core's own reconnects have not healed yet, or
    /// every member we knew restarted with a new address).
    pub(super) seeds: Vec<SocketAddr>,
    /// The seeds as names, resolved again before each retry and re-contact
    /// ([`crate::agent::MeshConfig::seed_names`]).
    pub(super) seed_names: Vec<String>,
    /// The addresses `seed_names` resolved to last: the part of `seeds` a new answer
    /// replaces (the rest are address seeds and remembered members).
    pub(super) name_addrs: Vec<SocketAddr>,
    /// A join retry and a seed re-contact that came due, waiting for the seed names.
    pub(super) pending: PendingSeedUse,
    /// A resolution of `seed_names` under way, and what it is for.
    pub(super) resolving: Option<(SeedUse, tokio::task::JoinHandle<Vec<SocketAddr>>)>,
    /// Most live members seen at once.
    pub(super) peak_live: usize,
    /// When the seeds are next considered for re-contact.
    pub(super) recontact_at: Instant,
    /// The node's health score, for readers outside the driver (the API).
    pub(super) health: Arc<std::sync::atomic::AtomicU32>,
    /// How late this node handles its input, in nanoseconds (0 in production): the
    /// benchmarks' model of a CPU-starved or paused host. See [`crate::Mesh::set_input_delay`].
    pub(super) input_delay: Arc<std::sync::atomic::AtomicU64>,
    /// Input received and not yet due, oldest first (the delay is the same for all).
    pub(super) delayed: std::collections::VecDeque<(Instant, Incoming)>,
}

/// What a resolution of the seed names is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeedUse {
    /// At start: learn which of the seeds came from the names (the agent resolved them
    /// just before), so a later answer replaces exactly those.
    Learn,
    /// A join retry came due.
    Retry,
    /// A seed re-contact came due.
    Recontact,
}

/// What waits for the seed names to resolve.
#[derive(Debug, Default)]
pub(super) struct PendingSeedUse {
    /// A join retry.
    pub(super) retry: bool,
    /// A seed re-contact.
    pub(super) recontact: bool,
}

/// Resolves every seed name in `names` ([`crate::agent::seeds`]), without duplicates;
/// names that do not resolve are left out (logged at debug).
async fn resolve_seed_names(names: Vec<String>) -> Vec<SocketAddr> {
    super::seeds::resolve_all(&names, |seed, e| {
        tracing::debug!(%seed, error = %e, "seed name does not resolve");
    })
    .await
}

/// The outcome of the resolution in `slot`, once it finishes (never, when there is
/// none: the caller guards the branch).
async fn resolved(
    slot: &mut Option<(SeedUse, tokio::task::JoinHandle<Vec<SocketAddr>>)>,
) -> (SeedUse, Vec<SocketAddr>) {
    match slot {
        Some((purpose, task)) => {
            let addrs = task.await.unwrap_or_default();
            let purpose = *purpose;
            *slot = None;
            (purpose, addrs)
        }
        None => std::future::pending().await,
    }
}

/// How often the seeds are re-contacted while the cluster looks smaller than it was.
pub(super) const SEED_RECONTACT: std::time::Duration = std::time::Duration::from_secs(30);

impl Driver {
    /// Runs until the [`crate::agent::Mesh`] handle is dropped (or the task is aborted),
    /// returning `None`; or until the node finds it cannot go on (its name is held by
    /// another live member), returning why.
    pub(super) async fn run(mut self, seeds: Vec<SocketAddr>) -> Option<String> {
        self.seeds = seeds.clone();
        if !self.seed_names.is_empty() {
            let names = self.seed_names.clone();
            self.resolving = Some((SeedUse::Learn, tokio::spawn(resolve_seed_names(names))));
        }
        if !seeds.is_empty() {
            match self.start_join(seeds) {
                Ok(()) => {}
                Err(CommandError::NoSeeds) => {
                    tracing::info!("no seed but this node; starting a new cluster")
                }
                Err(e) => tracing::warn!(error = %e, "join refused"),
            }
            self.flush();
        }
        // One sleep per deadline, re-armed only when its deadline moves: a new sleep for
        // every input would insert into and remove from tokio's timer wheel each time.
        let (mut timer, mut retry, mut due, mut recontact) =
            (Alarm::new(), Alarm::new(), Alarm::new(), Alarm::new());
        loop {
            timer.set(self.node.poll_timeout().map(|t| self.clock.instant(t)));
            retry.set(self.join.next_at());
            due.set(self.delayed.front().map(|(at, _)| *at));
            recontact.set(Some(self.recontact_at));
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => break,
                },
                Some(msg) = self.incoming.recv() => {
                    let delay = self.input_delay.load(std::sync::atomic::Ordering::Relaxed);
                    if delay == 0 && self.delayed.is_empty() {
                        self.handle_input(msg);
                    } else {
                        let at = Instant::now() + std::time::Duration::from_nanos(delay);
                        self.delayed.push_back((at, msg));
                    }
                }
                () = due.fired() => {
                    if let Some((_, msg)) = self.delayed.pop_front() {
                        self.handle_input(msg);
                    }
                }
                () = timer.fired() => self.node.handle_timeout(self.clock.now()),
                () = retry.fired() => self.when_seeds_resolve(SeedUse::Retry),
                () = recontact.fired() => self.when_seeds_resolve(SeedUse::Recontact),
                (purpose, addrs) = resolved(&mut self.resolving), if self.resolving.is_some() => {
                    self.seeds_resolved(purpose, addrs);
                }
            }
            self.flush();
            if let Some(reason) = self.fatal.take() {
                self.transport.close();
                return Some(reason);
            }
        }
        tracing::debug!(name = %self.node.name(), "driver stopped");
        None
    }

    /// Hands one message from a peer to the node.
    fn handle_input(&mut self, msg: Incoming) {
        let now = self.clock.now();
        if let Some(cert) = &msg.peer {
            self.node.handle_certificate(now, msg.from, cert);
        }
        match msg.channel {
            Channel::Datagram => self.node.handle_datagram(now, msg.from, &msg.bytes),
            Channel::Stream => self.node.handle_stream(now, msg.from, &msg.bytes),
        }
    }

    fn on_request(&mut self, request: Request) {
        let now = self.clock.now();
        match request {
            Request::Join { seeds, reply } => {
                let result = self.start_join(seeds);
                let _ = reply.send(result);
            }
            Request::SetTags { tags, reply } => {
                let _ = reply.send(self.node.handle_command(now, Command::SetTags(tags)));
            }
            Request::Leave { reply, done } => {
                let result = self.node.handle_command(now, Command::Leave);
                if result.is_ok() {
                    tracing::info!(name = %self.node.name(), "leaving");
                    self.join.stop();
                    self.leave_done.push(done);
                }
                let _ = reply.send(result);
            }
            Request::UpdateTags { set, delete, reply } => {
                let _ = reply.send(self.update_tags(now, set, delete));
            }
            Request::ForceLeave { name, reply } => {
                let result = self.node.handle_command(now, Command::ForceLeave { name });
                let _ = reply.send(result);
            }
            Request::Stats { reply } => {
                let _ = reply.send(self.node.stats().clone());
            }
            Request::SetKv { key, value, reply } => {
                let result = self.node.handle_command(now, Command::SetKv { key, value });
                // Publish before answering, so the writer reads its own write.
                self.flush();
                let _ = reply.send(result);
            }
            #[cfg(debug_assertions)]
            Request::Crash => panic!("the mesh driver was asked to crash (a test)"),
        }
    }

    /// Applies a partial tag change to this node's current tags, atomically with respect
    /// to other requests (they are served one at a time).
    fn update_tags(
        &mut self,
        now: crate::proto::Time,
        set: Vec<(String, String)>,
        delete: Vec<String>,
    ) -> Result<Tags, CommandError> {
        let mut next = self
            .node
            .members()
            .get(self.node.name())
            .map(|m| m.tags().clone())
            .unwrap_or_default();
        for key in &delete {
            next.remove(key);
        }
        for (key, value) in set {
            next.insert(key, value)?;
        }
        // The node announces nothing when the tags are equal, and refuses after a leave.
        self.node
            .handle_command(now, Command::SetTags(next.clone()))?;
        Ok(next)
    }

    /// Starts a join that retries on failure.
    fn start_join(&mut self, seeds: Vec<SocketAddr>) -> Result<(), CommandError> {
        let now = self.clock.now();
        self.seeds = seeds.clone();
        self.join.start(seeds.clone());
        let result = self.node.handle_command(now, Command::Join { seeds });
        if result.is_err() {
            self.join.stop();
        }
        result
    }

    /// A join retry or a seed re-contact came due: with seed names, resolves them first
    /// (off the loop) and acts once they have; without, acts now.
    fn when_seeds_resolve(&mut self, purpose: SeedUse) {
        match purpose {
            SeedUse::Learn => return,
            // Taken now, so the retry does not fire again while the names resolve.
            SeedUse::Retry => match self.join.take_due() {
                Some(_) => self.pending.retry = true,
                None => return,
            },
            SeedUse::Recontact => {
                self.recontact_at = Instant::now() + SEED_RECONTACT;
                self.pending.recontact = true;
            }
        }
        if self.seed_names.is_empty() {
            return self.use_seeds();
        }
        if self
            .resolving
            .as_ref()
            .is_some_and(|(p, _)| *p != SeedUse::Learn)
        {
            // One resolution at a time: the one under way serves this one too.
            return;
        }
        let names = self.seed_names.clone();
        self.resolving = Some((purpose, tokio::spawn(resolve_seed_names(names))));
    }

    /// The seed names resolved: the addresses they gave last time are replaced by these
    /// in the seeds (names that resolve to nothing keep the old ones), then the pending
    /// retry or re-contact goes ahead.
    fn seeds_resolved(&mut self, purpose: SeedUse, addrs: Vec<SocketAddr>) {
        if purpose == SeedUse::Learn {
            self.name_addrs = addrs;
            return;
        }
        if !addrs.is_empty() && addrs != self.name_addrs {
            tracing::info!(
                names = ?self.seed_names,
                before = ?self.name_addrs,
                now = ?addrs,
                "seed names resolve to other addresses now; using them"
            );
            let mut seeds: Vec<SocketAddr> = self
                .seeds
                .iter()
                .filter(|a| !self.name_addrs.contains(a))
                .copied()
                .collect();
            for addr in &addrs {
                if !seeds.contains(addr) {
                    seeds.push(*addr);
                }
            }
            self.name_addrs = addrs;
            self.seeds = seeds.clone();
            self.join.set_seeds(seeds);
        }
        self.use_seeds();
    }

    /// Acts on the pending retry and re-contact with the seeds as they are now.
    fn use_seeds(&mut self) {
        if std::mem::take(&mut self.pending.retry) && self.join.is_active() {
            self.join_again(self.seeds.clone());
        }
        if std::mem::take(&mut self.pending.recontact) {
            self.recontact_seeds();
        }
    }

    /// Joins through the seeds again if fewer members are live than the most ever seen
    /// and no join is under way (Serf's and Consul's periodic rejoin).
    fn recontact_seeds(&mut self) {
        let live = self.node.members().live_count();
        if self.seeds.is_empty() || self.join.is_active() || live >= self.peak_live {
            return;
        }
        tracing::debug!(
            live,
            peak = self.peak_live,
            "fewer members than seen before; contacting the seeds"
        );
        let seeds = self.seeds.clone();
        if let Err(e) = self
            .node
            .handle_command(self.clock.now(), Command::Join { seeds })
        {
            tracing::debug!(error = %e, "seed re-contact refused");
        }
    }

    /// A join retry through `seeds`.
    fn join_again(&mut self, seeds: Vec<SocketAddr>) {
        tracing::debug!(?seeds, "retrying join");
        if let Err(e) = self
            .node
            .handle_command(self.clock.now(), Command::Join { seeds })
        {
            tracing::debug!(error = %e, "join retry refused; no more retries");
            self.join.stop();
        }
    }

    /// Drains the node's outputs.
    fn flush(&mut self) {
        self.health.store(
            self.node.health_score(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.peak_live = self.peak_live.max(self.node.members().live_count());
        while let Some(transmit) = self.node.poll_transmit() {
            self.send(transmit);
        }
        let mut changed = false;
        let mut kv_changed: Vec<Name> = Vec::new();
        let mut events = Vec::new();
        while let Some(event) = self.node.poll_event() {
            match &event {
                Event::KvChanged { node, .. } => kv_changed.push(node.clone()),
                Event::MemberReaped(m) => kv_changed.push(m.name.clone()),
                _ => {}
            }
            changed |= self.on_event(&event);
            events.push(event);
        }
        // Changes to this node itself (new tags, a refutation) raise no event but always
        // raise its incarnation, which moves the digest.
        let now = (self.node.digest(), self.node.members().len());
        // Round-trip times move without any membership change; routing orders regions
        // by them, so they are refreshed now and then when they moved by a millisecond.
        let mut rtt = None;
        if self.rtt_checked_at.elapsed() >= RTT_REFRESH {
            self.rtt_checked_at = Instant::now();
            rtt = Some(rtt_fingerprint(&self.node));
        }
        let rtt_moved = rtt.is_some_and(|f| f != self.rtt_published);
        if changed || now != self.published || rtt_moved {
            self.published = now;
            self.rtt_published = rtt.unwrap_or_else(|| rtt_fingerprint(&self.node));
            self.members.send_replace(snapshot(&self.node));
        }
        if !kv_changed.is_empty() {
            kv_changed.sort();
            kv_changed.dedup();
            let next = kv_view::refresh(&self.kv.borrow(), &self.node, &kv_changed);
            self.kv.send_replace(next);
        }
        // Delivered after the snapshots, so a subscriber that looks a member up on an
        // event finds it there.
        if !events.is_empty() {
            let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
            for event in events {
                // A follower whose receiver is gone is dropped.
                followers.retain(|f| f.send(event.clone()).is_ok());
                // No subscribers is fine: events are offered, not owed.
                let _ = self.events.send(event);
            }
        }
    }

    /// Acts on an event; returns whether it changed the membership.
    fn on_event(&mut self, event: &Event) -> bool {
        match event {
            Event::Joined { via, members } => {
                // The cluster is what the seed says it is now: members that failed and
                // were forgotten meanwhile are not looked for again.
                self.peak_live = *members;
                let failures = self.join.succeeded();
                tracing::info!(%via, members, failed_attempts = failures, "joined");
                true
            }
            Event::JoinFailed { seeds } => {
                let unit = rng::unit(&mut self.rng);
                let now = self.clock.instant(self.clock.now());
                match self.join.failed(now, unit) {
                    // Once per streak at warn; the retries that follow at debug.
                    Some((1, delay)) => {
                        tracing::warn!(?seeds, retry_in = ?delay, "join failed: no seed answered; retrying with backoff")
                    }
                    Some((failures, delay)) => {
                        tracing::debug!(?seeds, failures, retry_in = ?delay, "join failed again")
                    }
                    None => tracing::debug!(?seeds, "join failed"),
                }
                false
            }
            Event::NameTaken { addr, state, key } => {
                let reason = format!(
                    "name `{}` is held by a live member at {addr} ({}, node key {}); \
                     choose another name, or, if that was this node before a restart \
                     without its data dir, wait until the cluster declares it failed",
                    self.node.name(),
                    state.as_str(),
                    key.fingerprint()
                );
                tracing::error!("{reason}");
                self.join.stop();
                self.fatal = Some(reason);
                false
            }
            Event::LeaveCompleted => {
                tracing::info!(name = %self.node.name(), "left the cluster");
                for done in self.leave_done.drain(..) {
                    let _ = done.send(());
                }
                false
            }
            Event::MemberJoined(m) => {
                tracing::info!(member = %m.name, addr = %m.addr, "member joined");
                true
            }
            Event::MemberFailed(m) => {
                tracing::warn!(member = %m.name, addr = %m.addr, "member failed");
                // Whatever comes back at that address gets a fresh connection.
                self.transport.disconnect(m.addr);
                true
            }
            Event::MemberLeft(m) => {
                tracing::info!(member = %m.name, "member left");
                // A departure is not a loss to repair.
                self.peak_live = self.peak_live.saturating_sub(1);
                true
            }
            Event::MemberAlive(m) => {
                // A failed member coming back (a healed partition) matters to operators.
                tracing::info!(member = %m.name, incarnation = m.incarnation, "member alive");
                true
            }
            Event::MemberUpdated(m) | Event::MemberSuspected(m) | Event::MemberReaped(m) => {
                tracing::debug!(member = %m.name, state = m.state.as_str(), "member changed");
                true
            }
            Event::KvChanged { node, keys } => {
                tracing::debug!(member = %node, ?keys, "replicated state changed");
                false
            }
        }
    }

    /// Hands one transmission to the transport. A datagram over a ready connection goes
    /// out at once; anything that may dial or wait for stream credit runs on its own task.
    fn send(&self, transmit: Transmit) {
        let Transmit {
            to,
            payload,
            channel,
        } = transmit;
        match channel {
            Channel::Datagram => {
                let bytes = Bytes::from(payload);
                match self.transport.send_datagram_if_connected(to, &bytes) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => tracing::debug!(peer = %to, error = %e, "datagram not sent"),
                    None => {
                        let transport = self.transport.clone();
                        tokio::spawn(async move {
                            if let Err(e) = transport.send_datagram(to, bytes).await {
                                tracing::debug!(peer = %to, error = %e, "datagram not sent");
                            }
                        });
                    }
                }
            }
            Channel::Stream => {
                let transport = self.transport.clone();
                tokio::spawn(async move {
                    if let Err(e) = transport.send_stream(to, payload).await {
                        tracing::debug!(peer = %to, error = %e, "stream message not sent");
                    }
                });
            }
        }
    }
}

/// How often round-trip times that moved are republished without a membership change.
pub(super) const RTT_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// The members' round-trip times in whole milliseconds, hashed: moves when one moves
/// by a millisecond or more.
fn rtt_fingerprint(node: &Node) -> u64 {
    node.members().iter().fold(0u64, |h, m| {
        let ms = m.rtt().map_or(u64::MAX, |d| d.as_millis() as u64);
        h.wrapping_mul(31).wrapping_add(ms)
    })
}

/// The membership as an immutable snapshot, sorted by name.
pub(super) fn snapshot(node: &Node) -> Members {
    let table = node.members();
    let mut members: Vec<_> = table.iter().map(|m| table.info(m)).collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Arc::new(members)
}

/// A reusable sleep until an optional deadline: armed with [`Alarm::set`], awaited with
/// [`Alarm::fired`] (forever when unarmed). Firing disarms it until the next `set`.
struct Alarm {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    at: Option<Instant>,
}

impl Alarm {
    fn new() -> Alarm {
        Alarm {
            sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            at: None,
        }
    }

    /// Arms (or disarms, with `None`) for `at`; touches the timer only on a change.
    fn set(&mut self, at: Option<Instant>) {
        if at != self.at {
            if let Some(at) = at {
                self.sleep.as_mut().reset(at);
            }
            self.at = at;
        }
    }

    /// Completes at the armed deadline; never when unarmed.
    async fn fired(&mut self) {
        if self.at.is_none() {
            return std::future::pending().await;
        }
        (&mut self.sleep).await;
        self.at = None;
    }
}
