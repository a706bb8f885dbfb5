//! The connection cache: at most one cached connection per peer address, bounded, least
//! recently used evicted first, and one shared dial per peer.
//!
//! Invariants: an address maps to either a ready connection or one dial in progress; a
//! dial in progress is never evicted or replaced, only settled by its outcome (success
//! makes it ready, failure removes it, so the next send dials again: there is no retry
//! loop here). Operations that drop a live connection (eviction, replacement by a newly
//! accepted one) return it so the caller closes it outside the lock: every open
//! connection is then in the cache of at least one side, which bounds them. The lock is
//! a plain mutex, never held across an `await`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::transport::DialError;

/// What the cache needs to know about a connection (a trait so tests can use fakes).
pub(crate) trait CachedConn: Clone {
    /// Whether it is still open.
    fn is_open(&self) -> bool;
    /// An id unique among live connections.
    fn id(&self) -> usize;
}

impl CachedConn for quinn::Connection {
    fn is_open(&self) -> bool {
        self.close_reason().is_none()
    }
    fn id(&self) -> usize {
        self.stable_id()
    }
}

/// The outcome of one dial, shared by everyone waiting on it.
pub(crate) type DialCell<C> = Arc<OnceCell<Result<C, DialError>>>;

/// What a lookup found.
pub(crate) enum Lookup<C> {
    /// A live connection.
    Ready(C),
    /// A dial to wait on (possibly started by this lookup).
    Dial(DialCell<C>),
}

enum Slot<C> {
    Ready(C),
    Dialing(DialCell<C>),
}

struct Entry<C> {
    slot: Slot<C>,
    last_used: u64,
}

struct Inner<C> {
    entries: HashMap<SocketAddr, Entry<C>>,
    /// Logical clock for recency: bumped on every use.
    tick: u64,
}

/// See the module docs.
pub(crate) struct ConnCache<C = quinn::Connection> {
    inner: Mutex<Inner<C>>,
    capacity: usize,
}

impl<C: CachedConn> ConnCache<C> {
    /// An empty cache holding at most `capacity` ready connections (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        ConnCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                tick: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<C>> {
        // A panic while holding the lock cannot leave the map half-updated (every
        // operation is a single insert or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A live connection to `to`, if one is cached; marks it used.
    pub(crate) fn ready(&self, to: SocketAddr) -> Option<C> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        match inner.entries.get_mut(&to) {
            Some(Entry {
                slot: Slot::Ready(c),
                last_used,
            }) if c.is_open() => {
                *last_used = tick;
                Some(c.clone())
            }
            _ => None,
        }
    }

    /// A live connection to `to`, or the dial to wait on (joining one in progress, or
    /// starting a new one in place of a missing or dead connection).
    pub(crate) fn lookup(&self, to: SocketAddr) -> Lookup<C> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.entries.get_mut(&to) {
            entry.last_used = tick;
            match &entry.slot {
                Slot::Ready(c) if c.is_open() => return Lookup::Ready(c.clone()),
                Slot::Dialing(cell) => return Lookup::Dial(cell.clone()),
                Slot::Ready(_) => {}
            }
        }
        let cell = DialCell::<C>::default();
        inner.entries.insert(
            to,
            Entry {
                slot: Slot::Dialing(cell.clone()),
                last_used: tick,
            },
        );
        Lookup::Dial(cell)
    }

    /// Records the outcome of the dial `cell` to `to`; returns connections evicted to
    /// make room, for the caller to close. Settling twice is harmless.
    pub(crate) fn settle(
        &self,
        to: SocketAddr,
        cell: &DialCell<C>,
        outcome: &Result<C, DialError>,
    ) -> Vec<C> {
        let mut inner = self.lock();
        let ours = matches!(
            inner.entries.get(&to),
            Some(Entry { slot: Slot::Dialing(c), .. }) if Arc::ptr_eq(c, cell)
        );
        if !ours {
            return Vec::new();
        }
        match outcome {
            // Closed already (refused just after the handshake, say): its reader may have
            // run `remove` before this, so it must not be cached now.
            Ok(conn) if !conn.is_open() => {
                inner.entries.remove(&to);
                Vec::new()
            }
            Ok(conn) => self.put_ready(&mut inner, to, conn),
            Err(_) => {
                inner.entries.remove(&to);
                Vec::new()
            }
        }
    }

    /// Offers an accepted connection from `from`. It takes the slot unless a dial to
    /// that address is in progress (a simultaneous dial: each side keeps the connection
    /// it dialed). It replaces a cached connection: a peer dials only when it holds no
    /// live connection to us, so ours is likely stale (the peer restarted, say). The
    /// replaced one is only forgotten, not closed: when both sides dialed at once, each
    /// settles its own dial and then accepts the other's, and closing the replaced ones
    /// would close both connections; left open, each side sends on the one it kept and
    /// reads both, and a truly stale one ends by reset or idle timeout. Returns the
    /// connections evicted to make room, for the caller to close.
    pub(crate) fn offer(&self, from: SocketAddr, conn: &C) -> Vec<C> {
        let mut inner = self.lock();
        if let Some(Entry {
            slot: Slot::Dialing(_),
            ..
        }) = inner.entries.get(&from)
        {
            return Vec::new();
        }
        self.put_ready(&mut inner, from, conn)
    }

    /// Caches `conn` as the ready connection to `addr`, most recently used; returns the
    /// connections evicted to make room.
    fn put_ready(&self, inner: &mut Inner<C>, addr: SocketAddr, conn: &C) -> Vec<C> {
        inner.tick += 1;
        let last_used = inner.tick;
        let slot = Slot::Ready(conn.clone());
        inner.entries.insert(addr, Entry { slot, last_used });
        self.evict(inner, addr)
    }

    /// Forgets the connection to `addr` if it is the one with `id` (it closed).
    pub(crate) fn remove(&self, addr: SocketAddr, id: usize) {
        let mut inner = self.lock();
        let same = matches!(
            inner.entries.get(&addr),
            Some(Entry { slot: Slot::Ready(c), .. }) if c.id() == id
        );
        if same {
            inner.entries.remove(&addr);
        }
    }

    /// Open connections cached now.
    pub(crate) fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| matches!(&e.slot, Slot::Ready(c) if c.is_open()))
            .count()
    }

    /// Drops least recently used ready connections (never `keep`, never a dial in
    /// progress) until at most `capacity` are ready.
    fn evict(&self, inner: &mut Inner<C>, keep: SocketAddr) -> Vec<C> {
        let mut evicted = Vec::new();
        loop {
            let ready = inner
                .entries
                .values()
                .filter(|e| matches!(e.slot, Slot::Ready(_)))
                .count();
            if ready <= self.capacity {
                return evicted;
            }
            let victim = inner
                .entries
                .iter()
                .filter(|(addr, e)| **addr != keep && matches!(e.slot, Slot::Ready(_)))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(addr, _)| *addr);
            let Some(victim) = victim else {
                return evicted;
            };
            if let Some(Entry {
                slot: Slot::Ready(c),
                ..
            }) = inner.entries.remove(&victim)
            {
                evicted.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Clone, Debug)]
    struct Fake {
        id: usize,
        open: Arc<AtomicBool>,
    }

    impl Fake {
        fn new(id: usize) -> Fake {
            Fake {
                id,
                open: Arc::new(AtomicBool::new(true)),
            }
        }
    }

    impl CachedConn for Fake {
        fn is_open(&self) -> bool {
            self.open.load(Ordering::Relaxed)
        }
        fn id(&self) -> usize {
            self.id
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Dials `to` through the cache and settles it with `conn`; returns what was evicted.
    fn dial(cache: &ConnCache<Fake>, to: SocketAddr, conn: Fake) -> Vec<Fake> {
        let Lookup::Dial(cell) = cache.lookup(to) else {
            panic!("expected a dial to {to}");
        };
        cell.set(Ok(conn.clone())).unwrap();
        cache.settle(to, &cell, &Ok(conn))
    }

    #[test]
    fn concurrent_lookups_share_one_dial() {
        let cache = ConnCache::<Fake>::new(4);
        let (Lookup::Dial(a), Lookup::Dial(b)) = (cache.lookup(addr(1)), cache.lookup(addr(1)))
        else {
            panic!("expected dials");
        };
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cache.settle(addr(1), &a, &Ok(Fake::new(1))).is_empty());
        assert!(cache.settle(addr(1), &b, &Ok(Fake::new(2))).is_empty());
        assert_eq!(cache.ready(addr(1)).map(|c| c.id), Some(1));
    }

    #[test]
    fn a_failed_dial_is_forgotten_so_the_next_send_dials_again() {
        let cache = ConnCache::<Fake>::new(4);
        let Lookup::Dial(cell) = cache.lookup(addr(1)) else {
            panic!("expected a dial");
        };
        let failed = Err(DialError::Timeout(std::time::Duration::from_secs(1)));
        assert!(cache.settle(addr(1), &cell, &failed).is_empty());
        assert!(cache.ready(addr(1)).is_none());
        let Lookup::Dial(again) = cache.lookup(addr(1)) else {
            panic!("expected a new dial");
        };
        assert!(!Arc::ptr_eq(&cell, &again));
    }

    #[test]
    fn the_least_recently_used_connection_is_evicted() {
        let cache = ConnCache::<Fake>::new(2);
        assert!(dial(&cache, addr(1), Fake::new(1)).is_empty());
        assert!(dial(&cache, addr(2), Fake::new(2)).is_empty());
        assert!(cache.ready(addr(1)).is_some()); // 2 is now the least recently used
        let evicted = dial(&cache, addr(3), Fake::new(3));
        assert_eq!(evicted.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(cache.len(), 2);
        assert!(cache.ready(addr(2)).is_none());
        // An accepted connection counts against the bound too.
        let evicted = cache.offer(addr(4), &Fake::new(4));
        assert_eq!(evicted.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn an_accepted_connection_replaces_a_cached_one_but_not_a_dial() {
        let cache = ConnCache::<Fake>::new(4);
        dial(&cache, addr(1), Fake::new(1));
        // Replaced, but not closed: the peer may be sending on it (simultaneous dials).
        assert!(cache.offer(addr(1), &Fake::new(9)).is_empty());
        assert_eq!(cache.ready(addr(1)).map(|c| c.id), Some(9));
        let Lookup::Dial(_pending) = cache.lookup(addr(2)) else {
            panic!("expected a dial");
        };
        assert!(cache.offer(addr(2), &Fake::new(8)).is_empty());
        assert!(cache.ready(addr(2)).is_none());
        // A closed connection is replaced quietly, and removal only forgets the same
        // connection.
        let closed = cache.ready(addr(1)).expect("cached");
        closed.open.store(false, Ordering::Relaxed);
        assert!(cache.offer(addr(1), &Fake::new(7)).is_empty());
        cache.remove(addr(1), 9);
        assert_eq!(cache.ready(addr(1)).map(|c| c.id), Some(7));
        cache.remove(addr(1), 7);
        assert!(cache.ready(addr(1)).is_none());
    }
}
