//! Replicated key-value state: every member's own small versioned map, mirrored by all.
//!
//! Only a member writes its map. Each write takes the next number of one counter that
//! only grows (its *version*); other nodes keep, per key, the write with the highest
//! version (last writer wins, and there is only one writer), deletions included as
//! markers so they spread too. A map also has an *epoch*: a map at a higher epoch
//! replaces an older one wholesale. A restarted member starts a new epoch above every
//! version of its previous run (the driver hands it a clock reading), which drops keys
//! the new run never wrote; a member also moves to a new epoch to shed deletion markers.
//!
//! Merging is commutative, associative and idempotent (a map of last-writer-wins
//! registers under an epoch), so gossip in any order plus push-pull repair makes every
//! node hold the owner's map. Two nodes compare maps by [`KvSummary`]: epoch, highest
//! version, and an order-independent hash of the entries held.

use std::collections::BTreeMap;

use crate::stable_hash::StableHasher;
use crate::wire::{KvEntry, KvMapRecord, KvSummary, Name, Signature};

/// Deletion markers a member keeps before it moves its map to a new epoch to drop them.
pub const MAX_DELETION_MARKERS: usize = 256;

/// One key's latest write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    version: u64,
    /// `None`: deleted.
    value: Option<String>,
    /// The owner's signature of this write, relayed in pushes.
    sig: Signature,
}

/// One member's map, as the local node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvMap {
    epoch: u64,
    /// The owner's signature of the epoch.
    epoch_sig: Signature,
    max_version: u64,
    entries: BTreeMap<String, Slot>,
    /// Wrapping sum of `entry_hash` over `entries`.
    hash: u64,
    /// Bytes of keys and values of the live (not deleted) entries.
    live_bytes: usize,
    markers: usize,
}

fn entry_hash(key: &str, version: u64, deleted: bool) -> u64 {
    StableHasher::default()
        .write_str(key)
        .write(&version.to_le_bytes())
        .write(&[u8::from(deleted)])
        .finish()
}

impl Default for KvMap {
    fn default() -> Self {
        KvMap::new(0, Signature::UNSIGNED)
    }
}

impl KvMap {
    /// An empty map at `epoch`, with its owner's signature of it.
    pub fn new(epoch: u64, epoch_sig: Signature) -> KvMap {
        KvMap {
            epoch,
            epoch_sig,
            max_version: epoch,
            entries: BTreeMap::new(),
            hash: 0,
            live_bytes: 0,
            markers: 0,
        }
    }

    /// The owner's signature of the epoch.
    pub fn epoch_sig(&self) -> Signature {
        self.epoch_sig
    }

    /// The map's epoch (0: never published).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Highest version held (at least the epoch).
    pub fn version(&self) -> u64 {
        self.max_version
    }

    /// What a peer compares against.
    pub fn summary(&self) -> KvSummary {
        if self.epoch == 0 {
            return KvSummary::default();
        }
        KvSummary {
            epoch: self.epoch,
            version: self.max_version,
            hash: self.hash,
        }
    }

    /// A key's value and version; `None` if absent or deleted.
    pub fn get(&self, key: &str) -> Option<(&str, u64)> {
        self.entries
            .get(key)
            .and_then(|s| s.value.as_deref().map(|v| (v, s.version)))
    }

    /// The version held for `key`, deleted or not (0 if never seen).
    pub fn version_of(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(0, |s| s.version)
    }

    /// Live entries in key order: (key, value, version).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.entries
            .iter()
            .filter_map(|(k, s)| s.value.as_deref().map(|v| (k.as_str(), v, s.version)))
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.entries.len() - self.markers
    }

    /// Whether no live entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values of the live entries.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// Deletion markers held.
    pub fn markers(&self) -> usize {
        self.markers
    }

    /// What the live bytes would be after writing `value` (or deleting) at `key`.
    pub fn bytes_after(&self, key: &str, value: Option<&str>) -> usize {
        let old = self.get(key).map_or(0, |(v, _)| key.len() + v.len());
        self.live_bytes - old + value.map_or(0, |v| key.len() + v.len())
    }

    /// Applies a write if it is newer than what is held for the key; returns whether
    /// anything changed. The caller has checked the epoch and the owner's signature.
    pub fn apply(
        &mut self,
        key: &str,
        version: u64,
        value: Option<String>,
        sig: Signature,
    ) -> bool {
        let old = self.entries.get(key);
        if old.is_some_and(|s| s.version >= version) {
            return false;
        }
        if old.is_none() && value.is_none() && version <= self.epoch {
            // A marker from before this epoch: nothing to delete.
            return false;
        }
        if let Some(old) = self.entries.remove(key) {
            self.forget(key, &old);
        }
        self.hash = self
            .hash
            .wrapping_add(entry_hash(key, version, value.is_none()));
        match &value {
            Some(v) => self.live_bytes += key.len() + v.len(),
            None => self.markers += 1,
        }
        self.max_version = self.max_version.max(version);
        self.entries.insert(
            key.to_owned(),
            Slot {
                version,
                value,
                sig,
            },
        );
        true
    }

    fn forget(&mut self, key: &str, slot: &Slot) {
        self.hash = self
            .hash
            .wrapping_sub(entry_hash(key, slot.version, slot.value.is_none()));
        match &slot.value {
            Some(v) => self.live_bytes -= key.len() + v.len(),
            None => self.markers -= 1,
        }
    }

    /// Moves to a newer epoch, dropping everything held; returns the live keys dropped.
    pub fn reset(&mut self, epoch: u64, epoch_sig: Signature) -> Vec<String> {
        let dropped = self.iter().map(|(k, _, _)| k.to_owned()).collect();
        *self = KvMap::new(epoch, epoch_sig);
        dropped
    }

    /// Drops the deletion markers and moves to `epoch` (above every version held),
    /// keeping the live entries at new versions: the owner's compaction, with its
    /// signature of the new epoch; `sign` signs each entry again (key, version, value).
    pub fn compact(
        &mut self,
        epoch: u64,
        epoch_sig: Signature,
        sign: impl Fn(&str, u64, &str) -> Signature,
    ) {
        debug_assert!(epoch > self.max_version);
        let live: Vec<(String, Slot)> = std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|(_, s)| s.value.is_some())
            .collect();
        *self = KvMap::new(epoch, epoch_sig);
        for (k, s) in live {
            let version = s.version.max(epoch.saturating_add(1));
            let Some(value) = s.value else { continue };
            let sig = sign(&k, version, &value);
            self.apply(&k, version, Some(value), sig);
        }
    }

    /// Merges a whole map received from a peer; returns the keys whose live value
    /// changed (set, changed or deleted).
    pub fn merge(&mut self, record: &KvMapRecord) -> Vec<String> {
        let mut changed = Vec::new();
        if record.epoch < self.epoch {
            return changed;
        }
        if record.epoch > self.epoch {
            changed = self.reset(record.epoch, record.epoch_sig);
        }
        for e in &record.entries {
            let before = self.get(&e.key).map(|(v, _)| v.to_owned());
            if self.apply(&e.key, e.version, e.value.clone(), e.sig)
                && before.as_deref() != self.get(&e.key).map(|(v, _)| v)
                && !changed.contains(&e.key)
            {
                changed.push(e.key.clone());
            }
        }
        changed
    }

    /// The whole map (markers included) for a push.
    pub fn record(&self, node: &Name) -> KvMapRecord {
        KvMapRecord {
            node: node.clone(),
            epoch: self.epoch,
            epoch_sig: self.epoch_sig,
            entries: self
                .entries
                .iter()
                .map(|(k, s)| KvEntry {
                    key: k.clone(),
                    version: s.version,
                    value: s.value.clone(),
                    sig: s.sig,
                })
                .collect(),
        }
    }

    /// Bytes a push of this map costs, roughly (keys, values, a few bytes per entry).
    pub fn wire_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, s)| k.len() + s.value.as_ref().map_or(0, String::len) + 76)
            .sum::<usize>()
            + 96
    }
}

/// Whether a peer holding `remote` has something `local` lacks, so it is worth pulling
/// from: a newer epoch, a higher version, or the same version with different entries (a
/// write that overtook an earlier one in gossip).
pub fn is_behind(local: &KvSummary, remote: &KvSummary) -> bool {
    if remote.epoch == 0 {
        return false;
    }
    remote.epoch > local.epoch
        || (remote.epoch == local.epoch
            && (remote.version > local.version
                || (remote.version == local.version && remote.hash != local.hash)))
}

/// One member's contribution to the sync digest (0 for a member without a map).
pub fn digest_part(name: &str, summary: &KvSummary) -> u64 {
    if summary.epoch == 0 {
        return 0;
    }
    StableHasher::default()
        .write_str(name)
        .write(&summary.epoch.to_le_bytes())
        .write(&summary.version.to_le_bytes())
        .write(&summary.hash.to_le_bytes())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(m: &mut KvMap, k: &str, v: u64, val: Option<&str>) -> bool {
        m.apply(k, v, val.map(str::to_owned), Signature::UNSIGNED)
    }

    #[test]
    fn last_writer_wins_in_any_order() {
        let writes = [
            ("a", 11, Some("1")),
            ("b", 12, Some("2")),
            ("a", 13, Some("3")),
            ("b", 14, None),
        ];
        let mut forward = KvMap::new(10, Signature::UNSIGNED);
        for (k, v, val) in writes {
            set(&mut forward, k, v, val);
        }
        let mut backward = KvMap::new(10, Signature::UNSIGNED);
        for (k, v, val) in writes.iter().rev() {
            set(&mut backward, k, *v, *val);
        }
        assert_eq!(forward.summary(), backward.summary());
        assert_eq!(forward.get("a"), Some(("3", 13)));
        assert_eq!(forward.get("b"), None);
        assert_eq!(forward.markers(), 1);
        assert_eq!(forward.live_bytes(), 2);
        assert_eq!(backward.live_bytes(), 2);
        // Re-applying is a no-op.
        assert!(!set(&mut forward, "a", 13, Some("3")));
        assert!(!set(&mut forward, "a", 12, Some("old")));
    }

    #[test]
    fn a_newer_epoch_replaces_the_map() {
        let mut held = KvMap::new(10, Signature::UNSIGNED);
        set(&mut held, "old", 11, Some("x"));
        let mut owner = KvMap::new(100, Signature::UNSIGNED);
        set(&mut owner, "new", 101, Some("y"));
        let changed = held.merge(&owner.record(&"n".into()));
        assert_eq!(changed, vec!["old".to_string(), "new".to_string()]);
        assert_eq!(held.summary(), owner.summary());
        assert_eq!(held.get("old"), None);
        // An older epoch is ignored.
        let stale = KvMap::new(10, Signature::UNSIGNED).record(&"n".into());
        assert!(held.merge(&stale).is_empty());
        assert_eq!(held.summary(), owner.summary());
    }

    #[test]
    fn compaction_drops_markers_and_keeps_values() {
        let mut m = KvMap::new(1, Signature::UNSIGNED);
        set(&mut m, "a", 2, Some("1"));
        set(&mut m, "b", 3, Some("2"));
        set(&mut m, "b", 4, None);
        m.compact(5, Signature::UNSIGNED, |_, _, _| Signature::UNSIGNED);
        assert_eq!(m.epoch(), 5);
        assert_eq!(m.markers(), 0);
        assert_eq!(m.get("a").map(|(v, _)| v), Some("1"));
        assert!(m.get("a").unwrap().1 > 5);
    }

    #[test]
    fn behind_is_decided_by_epoch_then_version_then_hash() {
        let s = |epoch, version, hash| KvSummary {
            epoch,
            version,
            hash,
        };
        assert!(is_behind(&s(0, 0, 0), &s(1, 1, 1)));
        assert!(is_behind(&s(1, 5, 1), &s(2, 2, 1)));
        assert!(is_behind(&s(1, 5, 1), &s(1, 6, 1)));
        assert!(is_behind(&s(1, 5, 1), &s(1, 5, 2)));
        assert!(!is_behind(&s(1, 5, 1), &s(1, 5, 1)));
        assert!(!is_behind(&s(2, 5, 1), &s(1, 9, 1)));
        assert!(!is_behind(&s(1, 5, 1), &s(0, 0, 0)));
    }

    #[test]
    fn bytes_after_counts_replacements() {
        let mut m = KvMap::new(1, Signature::UNSIGNED);
        set(&mut m, "key", 2, Some("value"));
        assert_eq!(m.bytes_after("key", Some("v")), 4);
        assert_eq!(m.bytes_after("key", None), 0);
        assert_eq!(m.bytes_after("k2", Some("vv")), 8 + 4);
    }
}
