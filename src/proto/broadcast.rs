//! The queue of membership updates waiting to be piggybacked or gossiped.
//!
//! Each update is about one member and is kept already encoded. Sending takes the
//! least-sent updates first (newest first among equals), so fresh news spreads before
//! repeats; an update is dropped after `limit` transmissions. A newer update about a
//! member replaces the queued one. The queue is bounded: past `max` entries the most-sent,
//! oldest entry goes first (push-pull repairs whatever is dropped). memberlist's
//! `TransmitLimitedQueue`, with the same ordering.

use std::collections::{BTreeMap, HashMap};

use crate::wire::{DatagramBuilder, MessageKind, Name};

/// Smallest encoded update; with less room than this left, stop scanning.
const MIN_UPDATE_LEN: usize = 6;
/// Updates skipped for not fitting before a fill gives up scanning.
const MAX_SKIPS: usize = 32;

/// Ordering key: (transmissions so far, `u64::MAX - id` so newer sorts first).
type Key = (u32, u64);

#[derive(Debug)]
struct Entry {
    name: Name,
    kind: MessageKind,
    bytes: Vec<u8>,
}

/// Encoded updates ordered for sending.
#[derive(Debug)]
pub struct BroadcastQueue {
    order: BTreeMap<Key, Entry>,
    by_name: HashMap<Name, Key>,
    next_id: u64,
    max: usize,
}

impl BroadcastQueue {
    /// An empty queue holding at most `max` updates.
    pub fn new(max: usize) -> Self {
        BroadcastQueue {
            order: BTreeMap::new(),
            by_name: HashMap::new(),
            next_id: 0,
            max,
        }
    }

    /// Queues an encoded update about `name`, replacing any older one about it.
    pub fn push(&mut self, name: Name, kind: MessageKind, bytes: Vec<u8>) {
        if let Some(old) = self.by_name.remove(&name) {
            self.order.remove(&old);
        }
        let key = (0, u64::MAX - self.next_id);
        self.next_id += 1;
        self.by_name.insert(name.clone(), key);
        self.order.insert(key, Entry { name, kind, bytes });
        while self.order.len() > self.max {
            if let Some((_, e)) = self.order.pop_last() {
                self.by_name.remove(&e.name);
            }
        }
    }

    /// Whether an update about `name` is still queued.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Queued updates.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Moves as many updates as fit into `datagram`, least-sent first; each one taken
    /// counts a transmission and is dropped once sent `limit` times. `sent` is told the
    /// kind and length of each update added. Returns how many were added.
    pub fn fill(
        &mut self,
        datagram: &mut DatagramBuilder,
        limit: u32,
        mut sent: impl FnMut(MessageKind, usize),
    ) -> usize {
        let mut taken: Vec<Key> = Vec::new();
        let mut skips = 0;
        for (key, e) in &self.order {
            if datagram.remaining() < MIN_UPDATE_LEN || skips >= MAX_SKIPS {
                break;
            }
            if datagram.push_encoded(&e.bytes) {
                sent(e.kind, e.bytes.len());
                taken.push(*key);
            } else {
                skips += 1;
            }
        }
        for key in &taken {
            let e = self
                .order
                .remove(key)
                .expect("key was just read from the map");
            let next = key.0 + 1;
            if next >= limit {
                self.by_name.remove(&e.name);
            } else {
                let new_key = (next, key.1);
                self.by_name.insert(e.name.clone(), new_key);
                self.order.insert(new_key, e);
            }
        }
        taken.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill_names(q: &mut BroadcastQueue, budget: usize, limit: u32) -> Vec<u8> {
        let mut d = DatagramBuilder::new(budget);
        q.fill(&mut d, limit, |_, _| {});
        d.finish()[crate::wire::DATAGRAM_HEADER_LEN..].to_vec()
    }

    #[test]
    fn least_sent_then_newest_first_and_dropped_at_limit() {
        let mut q = BroadcastQueue::new(100);
        q.push("a".into(), MessageKind::Alive, vec![b'a'; 10]);
        q.push("b".into(), MessageKind::Alive, vec![b'b'; 10]);
        // Room for one: the newest goes first.
        assert_eq!(fill_names(&mut q, 5 + 10, 2), vec![b'b'; 10]);
        // Then the unsent one.
        assert_eq!(fill_names(&mut q, 5 + 10, 2), vec![b'a'; 10]);
        // Both sent once; next fill sends both and drops both at the limit of 2.
        assert_eq!(fill_names(&mut q, 5 + 20, 2).len(), 20);
        assert!(q.is_empty());
    }

    #[test]
    fn newer_update_replaces_older_about_same_member() {
        let mut q = BroadcastQueue::new(100);
        q.push("a".into(), MessageKind::Suspect, vec![1; 8]);
        q.push("a".into(), MessageKind::Alive, vec![2; 8]);
        assert_eq!(q.len(), 1);
        assert_eq!(fill_names(&mut q, 100, 5), vec![2; 8]);
    }

    #[test]
    fn bound_drops_most_sent_first() {
        let mut q = BroadcastQueue::new(2);
        q.push("a".into(), MessageKind::Alive, vec![1; 8]);
        fill_names(&mut q, 100, 10); // a sent once
        q.push("b".into(), MessageKind::Alive, vec![2; 8]);
        q.push("c".into(), MessageKind::Alive, vec![3; 8]);
        assert!(!q.contains("a"));
        assert!(q.contains("b") && q.contains("c"));
    }

    #[test]
    fn oversize_update_is_skipped_not_blocking() {
        let mut q = BroadcastQueue::new(10);
        q.push("small".into(), MessageKind::Alive, vec![1; 8]);
        q.push("big".into(), MessageKind::Alive, vec![2; 200]);
        assert_eq!(fill_names(&mut q, 5 + 50, 5), vec![1; 8]);
    }
}
