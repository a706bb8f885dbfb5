//! Node keys: signing what this node says about itself, and checking what others say
//! about themselves (docs/protocol.md §17).
//!
//! Each member has an Ed25519 key pair. It signs its `Alive` (profile, incarnation,
//! health) and its `Leave`; every receiver verifies the signature with the key bound to
//! the name before it believes the record, whoever relayed it. Ed25519 signatures are
//! deterministic, so the core stays deterministic for the simulator.
//!
//! Signing and verifying are pure computation (ring), so they live in the sans-IO core.
//! [`Verifier`] can remember what it verified, shared between many nodes of one
//! process: the simulator runs thousands of nodes that each verify the same records,
//! and one check per distinct record is enough there. The agent runs one node and
//! verifies without a memo; it verifies only records that would change what it holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::proto::member::Proof;
use crate::wire::{
    ClusterId, KvChange, KvMapRecord, MemberRecord, MemberState, Message, NodeKey, Profile,
    Signature, signed,
};

/// Why a node key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 private key in PKCS#8 (v1 or v2) form")]
pub struct KeyError;

/// This node's key pair: it signs the records the node originates.
pub struct NodeSigner {
    pair: Ed25519KeyPair,
    key: NodeKey,
}

impl std::fmt::Debug for NodeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSigner")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl NodeSigner {
    /// A key pair from its PKCS#8 document (what [`NodeSigner::generate`] returns and
    /// the agent keeps in its data directory).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| KeyError)?;
        Ok(Self::from_pair(pair))
    }

    /// A new random key pair and its PKCS#8 document, to be kept.
    pub fn generate() -> (Self, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("the system random generator works")
            .as_ref()
            .to_vec();
        let signer = Self::from_pkcs8(&pkcs8).expect("ring reads the key it generated");
        (signer, pkcs8)
    }

    /// The key pair derived from a 32-byte seed: for the simulator and tests, whose
    /// nodes need reproducible keys. Never for a real agent.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .expect("every 32-byte seed is an Ed25519 private key");
        Self::from_pair(pair)
    }

    fn from_pair(pair: Ed25519KeyPair) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(pair.public_key().as_ref());
        NodeSigner {
            pair,
            key: NodeKey(key),
        }
    }

    /// The public half, which records carry.
    pub fn key(&self) -> NodeKey {
        self.key
    }

    /// Signs a statement ([`crate::wire::signed`]).
    pub fn sign(&self, statement: &[u8]) -> Signature {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(statement).as_ref());
        Signature(sig)
    }

    /// This key's signature of an `Alive` of `profile` at `incarnation` with `health`.
    pub fn sign_alive(
        &self,
        cluster: ClusterId,
        profile: &Profile,
        incarnation: u64,
        health: u8,
    ) -> Signature {
        self.sign(&signed::alive_statement(
            cluster,
            profile,
            incarnation,
            health,
        ))
    }

    /// This key's signed `Alive` for `profile` (the node itself announces through the
    /// core; tools, tests and the simulator's pre-converged start use this).
    pub fn alive(
        &self,
        cluster: ClusterId,
        profile: Profile,
        incarnation: u64,
        health: u8,
    ) -> Message {
        let sig = self.sign_alive(cluster, &profile, incarnation, health);
        Message::Alive {
            profile,
            incarnation,
            health,
            key: self.key,
            sig,
        }
    }

    /// This key's signed write to `node`'s replicated map (for tools, tests and the
    /// simulator; the node signs its own writes through the core). A `Large` notice is
    /// signed over an empty value: receivers never check it (it only makes them pull).
    pub fn kv_update(
        &self,
        cluster: ClusterId,
        node: &str,
        epoch: u64,
        version: u64,
        key: &str,
        change: KvChange,
    ) -> Message {
        // A `Large` notice's signature is never checked: signed over an empty value.
        let statement = signed::kv_change_statement(cluster, node, epoch, key, version, &change)
            .unwrap_or_else(|| {
                signed::kv_entry_statement(cluster, node, epoch, key, version, Some(""))
            });
        Message::KvUpdate {
            node: node.into(),
            epoch,
            version,
            key: key.to_owned(),
            change,
            sig: self.sign(&statement),
        }
    }

    /// This key's signature of `node`'s map being at `epoch` (the key is the owner's).
    pub fn sign_kv_epoch(&self, cluster: ClusterId, node: &str, epoch: u64) -> Signature {
        self.sign(&signed::kv_epoch_statement(cluster, node, epoch))
    }

    /// This key's signature of one write to `node`'s map: `key` at `version` of the map
    /// at `epoch` holds `value` (`None`: deleted).
    pub fn sign_kv_entry(
        &self,
        cluster: ClusterId,
        node: &str,
        epoch: u64,
        key: &str,
        version: u64,
        value: Option<&str>,
    ) -> Signature {
        self.sign(&signed::kv_entry_statement(
            cluster, node, epoch, key, version, value,
        ))
    }

    /// Signs a whole map as its owner: its epoch and every entry.
    pub fn sign_map(&self, cluster: ClusterId, record: &mut KvMapRecord) {
        record.epoch_sig = self.sign_kv_epoch(cluster, &record.node, record.epoch);
        for e in &mut record.entries {
            e.sig = self.sign_kv_entry(
                cluster,
                &record.node,
                record.epoch,
                &e.key,
                e.version,
                e.value.as_deref(),
            );
        }
    }

    /// This key's signed table record of `profile`, alive, with no replicated state.
    pub fn record(
        &self,
        cluster: ClusterId,
        profile: Profile,
        incarnation: u64,
        health: u8,
    ) -> MemberRecord {
        let sig = self.sign_alive(cluster, &profile, incarnation, health);
        MemberRecord {
            profile,
            incarnation,
            state: MemberState::Alive,
            health,
            kv: Default::default(),
            key: self.key,
            sig,
            leave_sig: None,
        }
    }
}

/// One shared copy of each proof (see [`Verifier::share`]).
type SharedProofs = HashMap<Proof, Arc<Proof>>;

/// Checks signatures; optionally remembers the ones it found good (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    memo: Option<Arc<Mutex<HashSet<[u8; 32]>>>>,
    /// With the memo: one shared copy of each proof that member tables hold, so that
    /// thousands of nodes in one process holding the same record hold one allocation.
    proofs: Option<Arc<Mutex<SharedProofs>>>,
}

impl Verifier {
    /// A verifier that checks every signature it is given.
    pub fn new() -> Self {
        Verifier::default()
    }

    /// A verifier that remembers good signatures, shared by every clone: for many
    /// nodes in one process (the simulator), where the same record reaches them all.
    pub fn shared_memo() -> Self {
        Verifier {
            memo: Some(Arc::default()),
            proofs: Some(Arc::default()),
        }
    }

    /// A member table's copy of `proof`: shared between the clones of a
    /// [`Verifier::shared_memo`], a new allocation otherwise.
    pub fn share(&self, proof: Proof) -> Arc<Proof> {
        let Some(proofs) = &self.proofs else {
            return Arc::new(proof);
        };
        let Ok(mut proofs) = proofs.lock() else {
            return Arc::new(proof);
        };
        proofs
            .entry(proof.clone())
            .or_insert_with(|| Arc::new(proof))
            .clone()
    }

    /// Whether `sig` is `key`'s signature of `statement`.
    pub fn verify(&self, key: &NodeKey, statement: &[u8], sig: &Signature) -> bool {
        let Some(memo) = &self.memo else {
            return check(key, statement, sig);
        };
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(&key.0);
        digest.update(&sig.0);
        digest.update(statement);
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.finish().as_ref());
        if memo.lock().is_ok_and(|m| m.contains(&id)) {
            return true;
        }
        let good = check(key, statement, sig);
        if good && let Ok(mut m) = memo.lock() {
            m.insert(id);
        }
        good
    }
}

fn check(key: &NodeKey, statement: &[u8], sig: &Signature) -> bool {
    UnparsedPublicKey::new(&ED25519, &key.0)
        .verify(statement, &sig.0)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_and_statement_only() {
        let (a, pkcs8) = NodeSigner::generate();
        let b = NodeSigner::from_seed([7; 32]);
        assert_eq!(NodeSigner::from_pkcs8(&pkcs8).unwrap().key(), a.key());
        assert_eq!(NodeSigner::from_seed([7; 32]).key(), b.key());
        assert_eq!(NodeSigner::from_pkcs8(b"not a key").unwrap_err(), KeyError);
        let sig = a.sign(b"statement");
        for v in [Verifier::new(), Verifier::shared_memo()] {
            assert!(v.verify(&a.key(), b"statement", &sig));
            assert!(
                v.verify(&a.key(), b"statement", &sig),
                "again, from the memo"
            );
            assert!(!v.verify(&b.key(), b"statement", &sig));
            assert!(!v.verify(&a.key(), b"statemenT", &sig));
            let mut bent = sig;
            bent.0[10] ^= 1;
            assert!(!v.verify(&a.key(), b"statement", &bent));
        }
    }
}
