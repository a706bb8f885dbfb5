//! Spreading replicated key-value state: this node's own writes, gossiped updates,
//! pulls after a push-pull shows a peer holds more, and the pushes that answer them.
//!
//! A write is gossiped as one [`Message::KvUpdate`] per key (the value inline when it
//! fits comfortably in a datagram, else a [`KvChange::Large`] notice that makes
//! receivers pull from the owner). Push-pull records carry each member's [`KvSummary`];
//! a receiver that sees a peer ahead on some members pulls those maps from it over a
//! stream. Like refutation, a node that sees a newer map of itself than it holds (its
//! clock went back across a restart) jumps above it and re-publishes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::event::{CommandError, Event, KvError};
use crate::proto::kv::{self, KvMap, MAX_DELETION_MARKERS};
use crate::proto::node::Node;
use crate::proto::stats::Refusal;
use crate::proto::time::Time;
use crate::wire::{
    KvChange, KvSummary, MAX_KV_KEY_LEN, MAX_KV_MAP_LEN, Message, MessageKind, Name, NodeKey,
    Signature, has_control_char, signed,
};

/// A value longer than this travels as a [`KvChange::Large`] notice plus a pull: under
/// half a datagram with the owner's 64-byte signature, so an update still rides along
/// with probes and other updates.
const INLINE_VALUE_LEN: usize = 448;

/// While a pull of a member's map is unanswered for less than this, news that more of
/// it exists waits for the answer instead of sending another pull; an answer that still
/// falls short pulls again at once. Longer, and the pull counts as lost.
const PULL_PENDING: Duration = Duration::from_secs(1);

/// How far ahead of this run's epoch (a wall-clock reading in microseconds) a peer may
/// say this node's own map is before the claim is refused: a day, far more than any
/// clock step between two runs.
const MAX_OWN_EPOCH_AHEAD: u64 = 86_400 * 1_000_000;

/// A gap in the versions gossip brought of a member's map (a write that overtook an
/// earlier one, or one lost) that lasts this long makes the node pull the map from its
/// owner, instead of waiting for the next push-pull.
const GAP_GRACE: Duration = Duration::from_secs(1);

/// Versions seen past a gap that are remembered; more and the gap is pulled at once.
const MAX_GAP_VERSIONS: usize = 64;

/// Most bytes of maps in one push; the rest comes on a later exchange.
const MAX_PUSH_BYTES: usize = 4 * 1024 * 1024;

/// Which versions of one member's map gossip has brought: every version up to
/// `contiguous` is accounted for, `above` are versions seen past a gap, open since
/// `since`. Each write takes the next version, so a version missing for long is a write
/// this node lost (or one its owner overwrote before it spread).
#[derive(Debug, Default)]
struct Versions {
    epoch: u64,
    contiguous: u64,
    above: std::collections::BTreeSet<u64>,
    since: Option<Time>,
}

impl Versions {
    /// Notes version `v` of the map at `epoch`.
    fn note(&mut self, epoch: u64, v: u64, now: Time) {
        if epoch != self.epoch {
            *self = Versions {
                epoch,
                contiguous: epoch,
                ..Versions::default()
            };
        }
        if v <= self.contiguous {
            return;
        }
        if v == self.contiguous + 1 {
            self.contiguous = v;
            while self.above.remove(&(self.contiguous + 1)) {
                self.contiguous += 1;
            }
        } else {
            self.above.insert(v);
        }
        self.since = if self.above.is_empty() {
            None
        } else {
            self.since.or(Some(now))
        };
    }

    /// Everything up to `v` is now held (a whole map was merged).
    fn covered(&mut self, epoch: u64, v: u64) {
        if epoch != self.epoch {
            *self = Versions {
                epoch,
                contiguous: v,
                ..Versions::default()
            };
            return;
        }
        self.contiguous = self.contiguous.max(v);
        self.above.retain(|&x| x > v);
        while self.above.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
        if self.above.is_empty() {
            self.since = None;
        }
    }

    /// Whether the gap has lasted past [`GAP_GRACE`] (or grown too wide to wait).
    fn overdue(&self, now: Time) -> bool {
        self.above.len() > MAX_GAP_VERSIONS
            || self
                .since
                .is_some_and(|at| now.saturating_since(at) >= GAP_GRACE)
    }
}

/// A pull awaiting its push.
#[derive(Debug, Clone, Copy)]
struct Pull {
    /// When it was sent.
    at: Time,
    /// The highest version of the map known to exist.
    version: u64,
    /// Whom it was sent to: only a push from there answers it.
    asked: SocketAddr,
}

/// Replicated maps held by a node, its own included, with pull bookkeeping.
#[derive(Debug, Default)]
pub(super) struct KvStore {
    pub(super) maps: HashMap<Name, KvMap>,
    /// Pulls awaiting an answer, by the member whose map was asked for.
    pending: HashMap<Name, Pull>,
    /// Versions gossip brought of each member's map, for finding lost writes.
    versions: HashMap<Name, Versions>,
    /// The epoch this node's own map starts at (a clock reading from the driver).
    pub(super) epoch_base: u64,
    /// Live bytes of the maps held for other members, together (bounded by
    /// `kv_max_held_bytes`).
    held: usize,
}

impl KvStore {
    pub(super) fn new(epoch_base: u64) -> KvStore {
        KvStore {
            epoch_base: epoch_base.max(1),
            ..KvStore::default()
        }
    }

    pub(super) fn summary(&self, name: &str) -> KvSummary {
        self.maps.get(name).map(KvMap::summary).unwrap_or_default()
    }

    /// The state held for others if `node`'s map, which held `before` live bytes when
    /// the caller started changing it, held `after`.
    fn held_with(&self, before: usize, after: usize) -> usize {
        self.held.saturating_sub(before).saturating_add(after)
    }

    /// Brings the held total up to date after a change to `node`'s map, which held
    /// `before` live bytes before it.
    fn account(&mut self, node: &str, before: usize) {
        let after = self.maps.get(node).map_or(0, KvMap::live_bytes);
        self.held = self.held_with(before, after);
    }
}

/// The subject under which an update waits in the broadcast queue: one per key, so a
/// newer write replaces an older one of the same key and never news about the member.
fn subject(node: &str, key: &str) -> Name {
    let mut s = Name::with_capacity(node.len() + key.len() + 4);
    s.push_str("\u{0}kv\u{0}");
    s.push_str(node);
    s.push('\u{0}');
    s.push_str(key);
    s
}

impl Node {
    /// Queues a [`Message::KvUpdate`] for gossip, replacing older news of the same key.
    /// Unlike membership news, this node's own updates go out even while a join answer
    /// is being merged (that is when a restarted node finds its stale state out there).
    fn enqueue_kv(&mut self, msg: &Message) {
        let Message::KvUpdate { node, key, .. } = msg else {
            return;
        };
        if self.gossip_muted && *node != self.me {
            return;
        }
        let mut bytes = Vec::with_capacity(64);
        match crate::wire::encode_message(msg, &mut bytes) {
            Ok(_) => self
                .kv_broadcasts
                .push(subject(node, key), MessageKind::KvUpdate, bytes),
            Err(e) => tracing::warn!(error = %e, "update failed to encode"),
        }
    }

    /// Writes (or with `None`, deletes) one key of this node's replicated map.
    pub(super) fn set_kv(
        &mut self,
        key: String,
        value: Option<String>,
    ) -> Result<(), CommandError> {
        if key.is_empty() {
            return Err(KvError::EmptyKey.into());
        }
        if key.len() > MAX_KV_KEY_LEN {
            return Err(KvError::KeyTooLong {
                len: key.len(),
                max: MAX_KV_KEY_LEN,
            }
            .into());
        }
        if has_control_char(&key) {
            // Every peer would refuse the update, and every push of the map with it.
            return Err(CommandError::ControlCharacter { field: "key" });
        }
        let base = self.kv.epoch_base;
        let me = self.me.clone();
        let empty = self.new_own_map(base);
        let current = self.kv.maps.get(&me).unwrap_or(&empty);
        if current.get(&key).map(|(v, _)| v) == value.as_deref() {
            return Ok(());
        }
        let len = current.bytes_after(&key, value.as_deref());
        if value.is_some() && len > self.config.kv_max_bytes {
            return Err(KvError::TooLarge {
                len,
                max: self.config.kv_max_bytes,
            }
            .into());
        }
        let (signer, cluster) = (self.signer.clone(), self.cluster);
        let map = self.kv.maps.entry(me.clone()).or_insert(empty);
        let version = map.version().saturating_add(1);
        let epoch = map.epoch();
        let sig = signer.sign_kv_entry(cluster, &me, epoch, &key, version, value.as_deref());
        map.apply(&key, version, value.clone(), sig);
        if map.markers() > MAX_DELETION_MARKERS {
            // Shed the markers: peers replace the whole map when they see the new epoch.
            let next = version.saturating_add(1);
            let epoch_sig = signer.sign_kv_epoch(cluster, &me, next);
            map.compact(next, epoch_sig, |k, v, value| {
                signer.sign_kv_entry(cluster, &me, next, k, v, Some(value))
            });
            self.announce_epoch();
        } else {
            self.gossip_kv(&me, epoch, version, key.clone(), value, sig);
        }
        self.events.push_back(Event::KvChanged {
            node: me,
            keys: vec![key],
        });
        Ok(())
    }

    /// An empty map of this node's own at `epoch`, its epoch signed.
    fn new_own_map(&self, epoch: u64) -> KvMap {
        KvMap::new(
            epoch,
            self.signer.sign_kv_epoch(self.cluster, &self.me, epoch),
        )
    }

    /// Queues one write of `node`'s map for gossip.
    fn gossip_kv(
        &mut self,
        node: &Name,
        epoch: u64,
        version: u64,
        key: String,
        value: Option<String>,
        sig: Signature,
    ) {
        let change = match value {
            Some(v) if v.len() > INLINE_VALUE_LEN => KvChange::Large,
            Some(v) => KvChange::Set(v),
            None => KvChange::Delete,
        };
        let msg = Message::KvUpdate {
            node: node.clone(),
            epoch,
            version,
            key,
            change,
            sig,
        };
        self.enqueue_kv(&msg);
    }

    /// Tells the cluster this node's map is at a new epoch.
    fn announce_epoch(&mut self) {
        let me = self.me.clone();
        let map = self
            .kv
            .maps
            .get(&me)
            .expect("own map exists when announced");
        let msg = Message::KvUpdate {
            node: me.clone(),
            epoch: map.epoch(),
            version: map.version(),
            key: String::new(),
            change: KvChange::Epoch,
            sig: map.epoch_sig(),
        };
        self.enqueue_kv(&msg);
    }

    /// A gossiped write of some member's map (`update` is a [`Message::KvUpdate`]).
    pub(super) fn on_kv_update(&mut self, now: Time, from: SocketAddr, update: Message) {
        let Message::KvUpdate {
            node,
            epoch,
            version,
            key,
            change,
            sig,
        } = update
        else {
            return;
        };
        if node == self.me {
            // Our own writes come back to us through gossip: nothing to check or do
            // unless the update claims more of our map than we hold.
            let own = self.kv.summary(&node);
            if own.epoch != 0 && (epoch, version) <= (own.epoch, own.version) {
                return;
            }
            // Only this node's own signature says anything about its map (a newer map of
            // its own from a run whose clock was ahead).
            let mine = self.signer.key();
            let statement =
                signed::kv_change_statement(self.cluster, &node, epoch, &key, version, &change);
            if !statement.is_some_and(|s| self.verified(&mine, &s, &sig)) {
                return;
            }
            let seen = KvSummary {
                epoch,
                version,
                hash: 0,
            };
            return self.check_own_kv(&seen);
        }
        let Some(owner) = self
            .members
            .get(&node)
            .map(|m| (m.addr(), m.state(), m.key()))
        else {
            return;
        };
        let (held_epoch, held_version) = self
            .kv
            .maps
            .get(&node)
            .map_or((0, 0), |m| (m.epoch(), m.version_of(&key)));
        if epoch < held_epoch {
            return;
        }
        // What the owner signed is checked before anything held changes, and only when
        // it would change something. A `Large` notice cannot be checked (it does not
        // carry the value): it only ever makes this node pull, never changes its copy.
        let news = epoch > held_epoch || held_version < version;
        if news
            && let Some(statement) =
                signed::kv_change_statement(self.cluster, &node, epoch, &key, version, &change)
            && !self.verified(&owner.2, &statement, &sig)
        {
            return;
        }
        // The owner holds its whole map; a failed owner cannot answer, the relay can.
        let source = if owner.1.is_live() { owner.0 } else { from };
        let awaited = self
            .kv
            .pending
            .get(&node)
            .is_some_and(|p| now.saturating_since(p.at) < PULL_PENDING && p.version >= version);
        let map = self.kv.maps.entry(node.clone()).or_default();
        let live_before = map.live_bytes();
        let before = map.summary();
        let mut changed = Vec::new();
        let mut pull = false;
        let mut fresh = false;
        if epoch > map.epoch() {
            // The owner restarted or compacted: what we hold is void, and we cannot
            // know the rest of the new map from one key. (A `Large` notice, unchecked,
            // only makes this node pull the new map.)
            if !matches!(change, KvChange::Large) {
                let epoch_sig = match change {
                    KvChange::Epoch => sig,
                    _ => Signature::UNSIGNED,
                };
                changed = map.reset(epoch, epoch_sig);
            }
            pull = true;
            fresh = true;
        }
        match &change {
            KvChange::Set(v) => {
                let after = map.bytes_after(&key, Some(v));
                if after > MAX_KV_MAP_LEN {
                    // Past what any owner may publish: a broken or hostile sender.
                    self.stats.malformed_dropped += 1;
                    self.kv.account(&node, live_before);
                    return;
                }
                // (The field, not `held_with`: `map` borrows the store.)
                let held = self
                    .kv
                    .held
                    .saturating_sub(live_before)
                    .saturating_add(after);
                if after > map.live_bytes() && held > self.config.kv_max_held_bytes {
                    self.stats.refused.add(Refusal::StateHeldFull);
                    self.kv.account(&node, live_before);
                    return;
                }
                if map.apply(&key, version, Some(v.clone()), sig) {
                    fresh = true;
                    if !changed.contains(&key) {
                        changed.push(key.clone());
                    }
                }
            }
            KvChange::Delete => {
                let had = map.get(&key).is_some();
                if map.apply(&key, version, None, sig) {
                    fresh = true;
                    if had && !changed.contains(&key) {
                        changed.push(key.clone());
                    }
                }
            }
            KvChange::Large => {
                // News only the first time: while the pull for it is out, copies of the
                // same notice are not gossiped on again.
                if map.version_of(&key) < version && !awaited {
                    pull = true;
                    fresh = true;
                }
            }
            KvChange::Epoch => {}
        }
        let moved = map.summary() != before;
        let map_epoch = map.epoch();
        self.kv.account(&node, live_before);
        if !matches!(change, KvChange::Epoch) {
            self.kv
                .versions
                .entry(node.clone())
                .or_default()
                .note(map_epoch, version, now);
        }
        if pull {
            self.pull_kv(now, source, vec![(node.clone(), version)]);
        }
        if fresh {
            let msg = Message::KvUpdate {
                node: node.clone(),
                epoch,
                version,
                key: key.clone(),
                change,
                sig,
            };
            self.enqueue_kv(&msg);
        }
        // A new deletion marker or epoch changes no value, but the map's version: readers
        // of the snapshot are told too (with no keys).
        if !changed.is_empty() || moved {
            self.events.push_back(Event::KvChanged {
                node,
                keys: changed,
            });
        }
    }

    /// Asks `from` for the maps of `wanted` (member, version known to exist), except
    /// those with a pull already in flight, which only note the version.
    pub(super) fn pull_kv(&mut self, now: Time, from: SocketAddr, wanted: Vec<(Name, u64)>) {
        let mut nodes = Vec::with_capacity(wanted.len());
        for (n, version) in wanted {
            match self.kv.pending.get_mut(&n) {
                Some(p) if now.saturating_since(p.at) < PULL_PENDING => {
                    p.version = p.version.max(version);
                }
                _ => {
                    let pull = Pull {
                        at: now,
                        version,
                        asked: from,
                    };
                    self.kv.pending.insert(n.clone(), pull);
                    nodes.push(n);
                }
            }
        }
        if nodes.is_empty() {
            return;
        }
        self.stats.kv_pulls += 1;
        self.send_stream(from, &Message::KvPull { nodes });
    }

    /// Pulls each of `wanted` from its owner (which always holds its whole map), or
    /// from `fallback` for members not live here.
    fn pull_from_owners(&mut self, now: Time, fallback: SocketAddr, wanted: Vec<(Name, u64)>) {
        let mut rest = Vec::new();
        for (n, v) in wanted {
            match self.members.get(&n).filter(|m| m.state().is_live()) {
                Some(m) => {
                    let addr = m.addr();
                    self.pull_kv(now, addr, vec![(n, v)]);
                }
                None => rest.push((n, v)),
            }
        }
        if !rest.is_empty() {
            self.pull_kv(now, fallback, rest);
        }
    }

    /// Answers a pull with the maps asked for that this node holds.
    pub(super) fn on_kv_pull(&mut self, from: SocketAddr, nodes: Vec<Name>) {
        let mut budget = MAX_PUSH_BYTES;
        let mut maps = Vec::new();
        for n in &nodes {
            let Some(map) = self.kv.maps.get(n).filter(|m| m.epoch() > 0) else {
                continue;
            };
            let len = map.wire_len();
            if len > budget {
                break;
            }
            budget -= len;
            maps.push(map.record(n));
        }
        if !maps.is_empty() {
            self.send_stream(from, &Message::KvPush { maps });
        }
    }

    /// Merges maps pushed in answer to a pull; pulls again from the owner where news of
    /// a later version came in meanwhile. A map this node did not pull from `from` is
    /// refused: a push is an answer, never news (this node's own map is never pulled).
    pub(super) fn on_kv_push(
        &mut self,
        now: Time,
        from: SocketAddr,
        maps: Vec<crate::wire::KvMapRecord>,
    ) {
        for record in maps {
            let asked = self
                .kv
                .pending
                .get(&record.node)
                .is_some_and(|p| p.asked == from);
            if !asked || record.node == self.me {
                self.stats.refused.add(Refusal::UnaskedKvPush);
                continue;
            }
            let Some(owner_key) = self.members.get(&record.node).map(|m| m.key()) else {
                continue;
            };
            let Some(record) = self.verified_map(&owner_key, record) else {
                continue;
            };
            let live_before = self.kv.maps.get(&record.node).map_or(0, KvMap::live_bytes);
            let pushed: usize = record
                .entries
                .iter()
                .filter_map(|e| e.value.as_ref().map(|v| e.key.len() + v.len()))
                .sum();
            if pushed > live_before
                && self.kv.held_with(live_before, pushed) > self.config.kv_max_held_bytes
            {
                self.stats.refused.add(Refusal::StateHeldFull);
                continue;
            }
            let map = self.kv.maps.entry(record.node.clone()).or_default();
            let keys = map.merge(&record);
            self.kv.account(&record.node, live_before);
            let map = &self.kv.maps[&record.node];
            let have = map.version();
            let epoch = map.epoch();
            self.kv
                .versions
                .entry(record.node.clone())
                .or_default()
                .covered(epoch, have);
            let owner = self
                .members
                .get(&record.node)
                .filter(|m| m.state().is_live())
                .map(|m| m.addr());
            if let Some(Pull {
                version: wanted, ..
            }) = self.kv.pending.remove(&record.node)
                && wanted > have
                && let Some(owner) = owner
            {
                self.pull_kv(now, owner, vec![(record.node.clone(), wanted)]);
            }
            if !keys.is_empty() {
                self.events.push_back(Event::KvChanged {
                    node: record.node,
                    keys,
                });
            }
        }
    }

    /// The part of a pushed map its owner signed, or `None` when nothing of it can be
    /// believed. Only what would change the copy held is checked: entries newer than
    /// held (all of them when the push moves the map to a newer epoch). A newer epoch is
    /// the owner's word if its epoch signature verifies or if any of its entries does
    /// (entries are signed with their epoch). Unsigned entries are dropped and counted.
    fn verified_map(
        &mut self,
        owner: &NodeKey,
        mut record: crate::wire::KvMapRecord,
    ) -> Option<crate::wire::KvMapRecord> {
        let held_epoch = self.kv.maps.get(&record.node).map_or(0, KvMap::epoch);
        if record.epoch < held_epoch {
            return None;
        }
        let resets = record.epoch > held_epoch;
        let mut proven = !resets;
        let entries = std::mem::take(&mut record.entries);
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries {
            let held_version = match self.kv.maps.get(&record.node) {
                Some(m) if !resets => m.version_of(&e.key),
                _ => 0,
            };
            if e.version > held_version {
                let statement = signed::kv_entry_statement(
                    self.cluster,
                    &record.node,
                    record.epoch,
                    &e.key,
                    e.version,
                    e.value.as_deref(),
                );
                if !self.verified(owner, &statement, &e.sig) {
                    continue;
                }
                proven = true;
            }
            kept.push(e);
        }
        if !proven {
            let statement = signed::kv_epoch_statement(self.cluster, &record.node, record.epoch);
            if !self.verified(owner, &statement, &record.epoch_sig) {
                return None;
            }
        }
        record.entries = kept;
        Some(record)
    }

    /// After merging a peer's table: pull the maps it holds more of than we do, all from
    /// the peer when `bulk` (a join: one stream brings everything), else each from its
    /// owner, so one pull repairs it whatever the peer itself missed.
    pub(super) fn pull_newer_kv(
        &mut self,
        now: Time,
        from: SocketAddr,
        summaries: &[(Name, KvSummary)],
        bulk: bool,
    ) {
        let mut want = Vec::new();
        for (name, remote) in summaries {
            if *name == self.me {
                self.check_own_kv(remote);
            } else if self.members.get(name).is_some()
                && kv::is_behind(&self.kv.summary(name), remote)
            {
                want.push((name.clone(), remote.version));
            }
        }
        if bulk {
            self.pull_kv(now, from, want);
        } else {
            self.pull_from_owners(now, from, want);
        }
    }

    /// Someone holds `seen` of this node's own map. Newer than ours (our clock went back
    /// across a restart): move above it and re-publish. Older, while we never published
    /// in this run: announce our epoch so the stale map is dropped.
    fn check_own_kv(&mut self, seen: &KvSummary) {
        if seen.epoch == 0 {
            return;
        }
        let base = self.kv.epoch_base;
        if seen.epoch.max(seen.version) > base.saturating_add(MAX_OWN_EPOCH_AHEAD) {
            // Not a map of ours from an earlier run (those are below this run's clock,
            // give or take a clock step): a peer claiming our map is near the end of
            // the number line, to make us jump there.
            self.stats.refused.add(Refusal::KvEpochAhead);
            return;
        }
        let me = self.me.clone();
        let own = self
            .kv
            .maps
            .get(&me)
            .map(KvMap::summary)
            .unwrap_or_default();
        if own.epoch == 0 && base > seen.version {
            // A normal restart: this run's epoch is above the stale map already.
            let map = self.new_own_map(base);
            self.kv.maps.insert(me, map);
            self.announce_epoch();
        } else if seen.epoch > own.epoch || (seen.epoch == own.epoch && seen.version > own.version)
        {
            // Our clock went back across a restart: move above the stale map.
            let epoch = seen
                .epoch
                .max(seen.version)
                .max(own.version)
                .max(base)
                .saturating_add(1);
            let empty = self.new_own_map(base);
            let (signer, cluster) = (self.signer.clone(), self.cluster);
            let map = self.kv.maps.entry(me.clone()).or_insert(empty);
            let epoch_sig = signer.sign_kv_epoch(cluster, &me, epoch);
            map.compact(epoch, epoch_sig, |k, v, value| {
                signer.sign_kv_entry(cluster, &me, epoch, k, v, Some(value))
            });
            self.kv.epoch_base = epoch;
            self.stats.kv_epoch_bumps += 1;
            self.announce_epoch();
        }
    }

    /// Pulls, from their live owners, the maps whose gossip left a gap for longer than
    /// [`GAP_GRACE`] (called every gossip round).
    pub(super) fn pull_gaps(&mut self, now: Time) {
        let overdue: Vec<(Name, u64)> = self
            .kv
            .versions
            .iter()
            .filter(|(_, v)| v.overdue(now))
            .map(|(n, v)| (n.clone(), v.above.last().copied().unwrap_or(v.contiguous)))
            .collect();
        for (name, version) in overdue {
            if let Some(v) = self.kv.versions.get_mut(&name) {
                // Not again before another grace period, answered or not.
                v.since = Some(now);
                if v.above.len() > MAX_GAP_VERSIONS {
                    v.above.clear();
                }
            }
            let owner = self
                .members
                .get(&name)
                .filter(|m| m.state().is_live())
                .map(|m| m.addr());
            if let Some(owner) = owner {
                self.stats.kv_gap_pulls += 1;
                self.pull_kv(now, owner, vec![(name, version)]);
            }
        }
    }

    /// Forgets a reaped member's map.
    pub(super) fn drop_kv(&mut self, name: &str) {
        if name != self.me
            && let Some(map) = self.kv.maps.remove(name)
        {
            self.kv.held = self.kv.held.saturating_sub(map.live_bytes());
        }
        self.kv.pending.remove(name);
        self.kv.versions.remove(name);
    }

    /// The sync digest's share of replicated state: live members' map summaries.
    pub(super) fn kv_digest(&self) -> u64 {
        self.kv
            .maps
            .iter()
            .filter(|(n, _)| {
                self.members
                    .get(n.as_str())
                    .is_some_and(|m| m.state().is_live())
            })
            .fold(0u64, |d, (n, m)| {
                d.wrapping_add(kv::digest_part(n, &m.summary()))
            })
    }
}
