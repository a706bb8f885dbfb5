//! Names bound by certificate (PKI mode).
//!
//! With an operator's CA, a node certificate names the node it was issued to (a DNS or
//! URI subject alternative name), and a node's key is its certificate's key. The driver
//! hands the core what the certificate of each message's connection says
//! ([`PeerCertificate`], chain already verified by the transport) through
//! [`Node::handle_certificate`], before the message itself. The book below remembers the
//! latest certificate seen per address and the key certified per name, and the core
//! uses it twice:
//!
//! - when a certificate arrives, a live member record it contradicts (one held at that
//!   address under a name the certificate does not hold or under another key, or one of
//!   its names held under another key) was not made by the certificate's holder: it is
//!   declared failed at its incarnation (an accusation everyone accepts, gossiped as
//!   usual), counted as `not_certified`, which frees the name for the holder's own record;
//! - an alive record is refused (`not_certified`) when a certificate seen here binds its
//!   name to another key, or when the certificate seen at its address does not name it
//!   with its key.
//!
//! Relayed records for names whose certificate this node has not seen are bound first
//! come, as in cluster-key mode; the first contact with the member's address settles
//! them (SWIM probes every member, and a record at an address nobody answers from fails).
//! In cluster-key mode every holder of the key issues its own certificate, so names in
//! them prove nothing: the driver never calls [`Node::handle_certificate`] and the book
//! stays empty.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::proto::node::Node;
use crate::proto::stats::Refusal;
use crate::proto::time::Time;
use crate::wire::{Name, NodeKey};

/// What a peer's verified certificate says: the node names it was issued for and its
/// public key, when that key is an Ed25519 key (else no record can be signed by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Node names in the certificate's subject alternative names.
    pub names: Vec<Name>,
    /// The certificate's key, if it is a node key.
    pub key: Option<NodeKey>,
}

impl PeerCertificate {
    /// Whether this certificate vouches for `name` signing with `key`.
    pub fn vouches(&self, name: &str, key: &NodeKey) -> bool {
        self.key.as_ref() == Some(key) && self.names.iter().any(|n| n == name)
    }
}

/// Certificates seen, bounded: at most `limit` addresses and `limit` names (the member
/// table's own bound), the oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct CertBook {
    by_addr: HashMap<SocketAddr, (u64, Arc<PeerCertificate>)>,
    by_name: HashMap<Name, (u64, NodeKey)>,
    /// Insertion counter, to find the oldest entry when full.
    next: u64,
}

impl CertBook {
    /// Records `cert` as `addr`'s; false when it was already.
    fn insert(&mut self, addr: SocketAddr, cert: &Arc<PeerCertificate>, limit: usize) -> bool {
        if self
            .by_addr
            .get(&addr)
            .is_some_and(|(_, held)| Arc::ptr_eq(held, cert) || **held == **cert)
        {
            return false;
        }
        self.next = self.next.wrapping_add(1);
        let stamp = self.next;
        if !self.by_addr.contains_key(&addr) {
            forget_oldest(&mut self.by_addr, limit);
        }
        self.by_addr.insert(addr, (stamp, cert.clone()));
        if let Some(key) = cert.key {
            for name in &cert.names {
                if !self.by_name.contains_key(name) {
                    forget_oldest(&mut self.by_name, limit);
                }
                self.by_name.insert(name.clone(), (stamp, key));
            }
        }
        true
    }

    /// Whether what is known allows an alive record of `name` at `addr` signed by `key`.
    fn allows(&self, name: &str, addr: SocketAddr, key: &NodeKey) -> bool {
        let by_name = self.by_name.get(name).is_none_or(|(_, k)| k == key);
        let by_addr = self
            .by_addr
            .get(&addr)
            .is_none_or(|(_, cert)| cert.vouches(name, key));
        by_name && by_addr
    }

    /// The key certified for `name`, if a certificate naming it was seen.
    fn key_of(&self, name: &str) -> Option<NodeKey> {
        self.by_name.get(name).map(|(_, k)| *k)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

/// Makes room for one entry in `map` if it holds `limit` already.
fn forget_oldest<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, (u64, V)>, limit: usize) {
    if map.len() < limit.max(1) {
        return;
    }
    if let Some(oldest) = map
        .iter()
        .min_by_key(|(_, (stamp, _))| *stamp)
        .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

impl Node {
    /// Takes what the verified certificate of the connection `from`'s messages arrive on
    /// says (PKI mode only; see the module docs). Call it before handing those messages
    /// over; repeating the same certificate costs a lookup.
    pub fn handle_certificate(&mut self, now: Time, from: SocketAddr, cert: &Arc<PeerCertificate>) {
        if !self
            .certificates
            .insert(from, cert, self.config.max_members)
        {
            return;
        }
        let contradicted: Vec<(Name, u64)> = self
            .members
            .iter()
            .filter(|m| *m.name() != self.me && m.state().is_live())
            .filter(|m| {
                let here = m.addr() == from && !cert.vouches(m.name(), &m.key());
                let named = cert.names.iter().any(|n| n == m.name())
                    && self
                        .certificates
                        .key_of(m.name())
                        .is_some_and(|k| k != m.key());
                here || named
            })
            .map(|m| (m.name().clone(), m.incarnation()))
            .collect();
        let me = self.me.clone();
        for (name, incarnation) in contradicted {
            self.stats.refused.add(Refusal::NotCertified);
            self.apply_dead(now, &name, incarnation, &me);
        }
    }

    /// Whether the certificates seen here allow an alive record of `name` at `addr`
    /// signed by `key`; counts a refusal if not.
    pub(super) fn certified_alive(&mut self, name: &str, addr: SocketAddr, key: &NodeKey) -> bool {
        if self.certificates.is_empty() || self.certificates.allows(name, addr, key) {
            return true;
        }
        self.stats.refused.add(Refusal::NotCertified);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str], key: u8) -> Arc<PeerCertificate> {
        Arc::new(PeerCertificate {
            names: names.iter().map(|n| Name::from(*n)).collect(),
            key: Some(NodeKey([key; 32])),
        })
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_book_allows_only_what_certificates_vouch_for() {
        let mut book = CertBook::default();
        assert!(
            book.allows("a", addr(1), &NodeKey([1; 32])),
            "empty: first come"
        );
        assert!(book.insert(addr(1), &cert(&["a"], 1), 10));
        assert!(!book.insert(addr(1), &cert(&["a"], 1), 10), "same again");
        assert!(book.allows("a", addr(1), &NodeKey([1; 32])));
        assert!(!book.allows("a", addr(1), &NodeKey([2; 32])), "another key");
        assert!(!book.allows("a", addr(2), &NodeKey([2; 32])), "name bound");
        assert!(
            !book.allows("b", addr(1), &NodeKey([1; 32])),
            "address names a"
        );
        assert!(
            book.allows("b", addr(2), &NodeKey([2; 32])),
            "unknown: first come"
        );
    }

    #[test]
    fn a_key_that_is_not_a_node_key_vouches_for_nobody() {
        let mut book = CertBook::default();
        let odd = Arc::new(PeerCertificate {
            names: vec![Name::from("a")],
            key: None,
        });
        book.insert(addr(1), &odd, 10);
        assert!(!book.allows("a", addr(1), &NodeKey([1; 32])));
        assert_eq!(book.key_of("a"), None);
    }

    #[test]
    fn the_book_is_bounded_and_forgets_the_oldest() {
        let mut book = CertBook::default();
        for i in 0..5u8 {
            let name = format!("n{i}");
            book.insert(addr(u16::from(i)), &cert(&[name.as_str()], i), 3);
        }
        assert_eq!(book.by_addr.len(), 3);
        assert_eq!(book.by_name.len(), 3);
        assert_eq!(book.key_of("n0"), None);
        assert_eq!(book.key_of("n4"), Some(NodeKey([4; 32])));
    }
}
