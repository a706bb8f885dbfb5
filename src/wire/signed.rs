//! The statements members sign about themselves (docs/protocol.md §17).
//!
//! A member signs, with its node key, what it says about itself: that it is alive at an
//! incarnation with a profile and health score, that it left at an incarnation, and
//! what its replicated map holds (its epoch, and each write).
//! The signature covers a canonical encoding of the statement: a domain tag (so a
//! signature over one kind of statement, or one made for another purpose, is never
//! taken for another), the cluster id (so a record of one cluster is never replayed in
//! another), and the fields. Whoever relays the record passes the signature on as the
//! member made it; nobody re-signs.

use serde::Serialize;

use super::codec::{ClusterId, encode_statement};
use super::message::{KvChange, Profile};

/// Opens every statement; the version follows the protocol version that introduced it.
const DOMAIN: &str = "muster signed statement v4";

#[derive(Serialize)]
enum Statement<'a> {
    Alive {
        cluster: u32,
        profile: &'a Profile,
        incarnation: u64,
        health: u8,
    },
    Leave {
        cluster: u32,
        name: &'a str,
        incarnation: u64,
    },
    KvEpoch {
        cluster: u32,
        node: &'a str,
        epoch: u64,
    },
    KvEntry {
        cluster: u32,
        node: &'a str,
        epoch: u64,
        key: &'a str,
        version: u64,
        value: Option<&'a str>,
    },
}

/// The bytes a member signs to say it is alive at `incarnation` with `profile` and
/// `health`: what `Message::Alive` and a table's `MemberRecord` carry.
pub fn alive_statement(
    cluster: ClusterId,
    profile: &Profile,
    incarnation: u64,
    health: u8,
) -> Vec<u8> {
    encode_statement(&(
        DOMAIN,
        Statement::Alive {
            cluster: cluster.0,
            profile,
            incarnation,
            health,
        },
    ))
}

/// The bytes a member signs to say it left at `incarnation`.
pub fn leave_statement(cluster: ClusterId, name: &str, incarnation: u64) -> Vec<u8> {
    encode_statement(&(
        DOMAIN,
        Statement::Leave {
            cluster: cluster.0,
            name,
            incarnation,
        },
    ))
}

/// The bytes the owner of a replicated map signs to say its map is at `epoch`.
pub fn kv_epoch_statement(cluster: ClusterId, node: &str, epoch: u64) -> Vec<u8> {
    encode_statement(&(
        DOMAIN,
        Statement::KvEpoch {
            cluster: cluster.0,
            node,
            epoch,
        },
    ))
}

/// The bytes the owner of a replicated map signs for one write: `key` at `version` of
/// the map at `epoch` holds `value` (`None`: deleted).
pub fn kv_entry_statement(
    cluster: ClusterId,
    node: &str,
    epoch: u64,
    key: &str,
    version: u64,
    value: Option<&str>,
) -> Vec<u8> {
    encode_statement(&(
        DOMAIN,
        Statement::KvEntry {
            cluster: cluster.0,
            node,
            epoch,
            key,
            version,
            value,
        },
    ))
}

/// The statement a [`KvChange`] of a `KvUpdate` is signed over: the write for `Set` and
/// `Delete`, the epoch for `Epoch`. `None` for `Large`, which does not carry the value its
/// signature covers (receivers cannot check it; it only makes them pull).
pub fn kv_change_statement(
    cluster: ClusterId,
    node: &str,
    epoch: u64,
    key: &str,
    version: u64,
    change: &KvChange,
) -> Option<Vec<u8>> {
    match change {
        KvChange::Set(v) => Some(kv_entry_statement(
            cluster,
            node,
            epoch,
            key,
            version,
            Some(v),
        )),
        KvChange::Delete => Some(kv_entry_statement(cluster, node, epoch, key, version, None)),
        KvChange::Epoch => Some(kv_epoch_statement(cluster, node, epoch)),
        KvChange::Large => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Tags;

    fn profile() -> Profile {
        Profile {
            name: "a".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            region: "eu".into(),
            zone: "eu-1".into(),
            tags: Tags::from_pairs([("b", "2"), ("a", "1")]).unwrap(),
        }
    }

    #[test]
    fn statements_differ_by_kind_cluster_and_every_field() {
        let c = ClusterId::from_name("c");
        let base = alive_statement(c, &profile(), 1, 0);
        assert_eq!(base, alive_statement(c, &profile(), 1, 0), "deterministic");
        let mut moved = profile();
        moved.addr = "127.0.0.1:7947".parse().unwrap();
        let mut tagged = profile();
        tagged.tags.insert("c", "3").unwrap();
        for other in [
            alive_statement(ClusterId::from_name("d"), &profile(), 1, 0),
            alive_statement(c, &moved, 1, 0),
            alive_statement(c, &tagged, 1, 0),
            alive_statement(c, &profile(), 2, 0),
            alive_statement(c, &profile(), 1, 1),
            leave_statement(c, "a", 1),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(leave_statement(c, "a", 1), leave_statement(c, "a", 2));
        assert_ne!(leave_statement(c, "a", 1), leave_statement(c, "b", 1));
        let entry = kv_entry_statement(c, "a", 1, "k", 2, Some("v"));
        for other in [
            kv_entry_statement(c, "a", 1, "k", 2, None),
            kv_entry_statement(c, "a", 1, "k", 2, Some("w")),
            kv_entry_statement(c, "a", 1, "k", 3, Some("v")),
            kv_entry_statement(c, "a", 2, "k", 2, Some("v")),
            kv_entry_statement(c, "b", 1, "k", 2, Some("v")),
            kv_entry_statement(c, "a", 1, "j", 2, Some("v")),
            kv_epoch_statement(c, "a", 1),
        ] {
            assert_ne!(entry, other);
        }
    }
}
