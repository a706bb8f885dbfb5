//! Protocol messages and the member records they carry.
//!
//! One enum, [`Message`], lists everything two nodes ever say to each other. Datagram
//! messages (probes and membership updates) are small and fit a QUIC datagram; stream
//! messages (join and push-pull) carry whole member tables. Sizes of names and tags are
//! bounded so any single update fits in one datagram together with its header.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A node name, region or zone: short strings are stored inline without a heap allocation.
pub type Name = CompactString;

/// Longest node, region or zone name in bytes. Long enough for a FQDN label set, short
/// enough that an alive update with tags always fits one datagram.
pub const MAX_NAME_LEN: usize = 128;

/// Largest total size of a member's tags (sum of key and value lengths). With
/// [`MAX_TAGS`] it keeps the largest alive update (signed, with its node key) at about
/// 1,140 bytes, below the default 1,150-byte datagram budget.
pub const MAX_TAGS_LEN: usize = 496;

/// Most tags a member may carry. With [`MAX_TAGS_LEN`] this bounds the length prefixes
/// too, so the largest possible alive update (~1,060 bytes) still fits one datagram.
pub const MAX_TAGS: usize = 64;

/// Longest key in a member's replicated key-value state.
pub const MAX_KV_KEY_LEN: usize = 256;

/// Largest replicated map (keys plus values) a node accepts for one member, whatever the
/// owner's own bound: it caps the memory one member can make every other member spend.
pub const MAX_KV_MAP_LEN: usize = 1024 * 1024;

/// Most entries (deletion markers included) of one replicated map a node accepts.
pub const MAX_KV_ENTRIES: usize = 65_536;

/// Largest epoch or version of a replicated map a node accepts (2^62): in a `KvUpdate`,
/// in a `KvPush` (the map's epoch and every entry's version), and in a member record's
/// [`KvSummary`]. Epochs are the agent's wall clock in microseconds (2^62 µs is about
/// 146,000 years) and versions count writes on from there, so no real map comes near
/// it; what the bound buys is room for the core's arithmetic on them (the next version,
/// an epoch one above every version seen) to stay far from overflowing `u64`.
pub const MAX_KV_VERSION: u64 = 1 << 62;

/// Whether `s` holds a control character ([`char::is_control`], Unicode category Cc:
/// U+0000–U+001F, DEL U+007F and U+0080–U+009F), which no member name, region, zone,
/// tag key or value, or state key may hold. They reach every member's logs, terminals,
/// DNS answers and hook environments: a NUL cuts a C string short, a newline forges a
/// log line, an escape sequence rewrites a terminal.
pub fn has_control_char(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A member's node key: the Ed25519 public key every record it originates is signed
/// with (docs/protocol.md §17). A name is bound to one key while its member is live.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeKey(pub [u8; 32]);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", self.fingerprint())
    }
}

/// The whole key in lowercase hex, as the API shows it.
impl std::fmt::Display for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl NodeKey {
    /// The first eight bytes in hex (a prefix of the [`Display`](std::fmt::Display)
    /// form): enough to tell keys apart in logs and errors.
    pub fn fingerprint(&self) -> String {
        let mut hex = self.to_string();
        hex.truncate(16);
        hex
    }
}

/// An Ed25519 signature (64 bytes) over a record's canonical statement
/// ([`crate::wire::signed`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// No signature yet: what a record holds before its owner signed it (a map created
    /// empty on a holder, a node's own record before its first announcement). Never
    /// verifies.
    pub const UNSIGNED: Signature = Signature([0; 64]);
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: String = self.0[..4].iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "Signature({head}…)")
    }
}

// serde implements arrays only up to 32 elements: a signature travels as its two
// halves, which is the same 64 bytes on the wire.
impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut low = [0u8; 32];
        let mut high = [0u8; 32];
        low.copy_from_slice(&self.0[..32]);
        high.copy_from_slice(&self.0[32..]);
        (low, high).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (low, high) = <([u8; 32], [u8; 32])>::deserialize(deserializer)?;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&low);
        sig[32..].copy_from_slice(&high);
        Ok(Signature(sig))
    }
}

/// Liveness of a member as one node sees it. Order of precedence at equal incarnation:
/// `Alive < Suspect < Dead`, and `Left` behaves like `Dead` but says the member went away
/// on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Failed a probe; will be declared dead unless it refutes in time.
    Suspect,
    /// Declared failed after its suspicion timed out.
    Dead,
    /// Left the cluster gracefully.
    Left,
}

impl MemberState {
    /// Lowercase name used in logs and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }

    /// Whether the member still takes part (alive or suspect).
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// Why a set of tags was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagsError {
    /// The sum of key and value lengths is over [`MAX_TAGS_LEN`].
    #[error("tags take {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Bytes the tags would take.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A tag key was empty.
    #[error("a tag key is empty")]
    EmptyKey,
    /// More than [`MAX_TAGS`] tags.
    #[error("{count} tags, more than the limit of {max}")]
    TooMany {
        /// Tags given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A tag key or value holds a control character ([`has_control_char`]).
    #[error("tag {key:?} holds a control character")]
    ControlCharacter {
        /// The key of the offending tag (escaped when shown).
        key: String,
    },
}

/// A member's tags: a small, bounded, ordered key/value map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    /// An empty tag set.
    pub fn new() -> Self {
        Tags(BTreeMap::new())
    }

    /// Builds tags from pairs, checking the size bound.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, TagsError> {
        let tags = Tags(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        tags.validate()?;
        Ok(tags)
    }

    /// Sets one tag, refusing (and leaving the set unchanged) if the result is over-size.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), TagsError> {
        let mut next = self.clone();
        next.0.insert(key.into(), value.into());
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Removes one tag, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Looks one tag up.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of keys and values together.
    pub fn byte_len(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Checks the size bound, that no key is empty and that no key or value holds a
    /// control character.
    pub fn validate(&self) -> Result<(), TagsError> {
        if self.0.keys().any(String::is_empty) {
            return Err(TagsError::EmptyKey);
        }
        if let Some((key, _)) = self
            .0
            .iter()
            .find(|(k, v)| has_control_char(k) || has_control_char(v))
        {
            return Err(TagsError::ControlCharacter { key: key.clone() });
        }
        if self.0.len() > MAX_TAGS {
            return Err(TagsError::TooMany {
                count: self.0.len(),
                max: MAX_TAGS,
            });
        }
        let len = self.byte_len();
        if len > MAX_TAGS_LEN {
            return Err(TagsError::TooLarge {
                len,
                max: MAX_TAGS_LEN,
            });
        }
        Ok(())
    }
}

/// What a member says about itself: everything but its liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique node name.
    pub name: Name,
    /// Address its QUIC endpoint listens on.
    pub addr: SocketAddr,
    /// Region, e.g. `eu-west`.
    pub region: Name,
    /// Zone inside the region, e.g. `eu-west-1a`.
    pub zone: Name,
    /// Operator-defined labels.
    pub tags: Tags,
}

/// One member as carried in push-pull and join messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Who the member is.
    pub profile: Profile,
    /// Its incarnation: only the member itself raises it.
    pub incarnation: u64,
    /// Its liveness as the sender sees it.
    pub state: MemberState,
    /// The health score the member announced with this incarnation (see `Alive`), so a
    /// member learned from a table is probed and suspected as patiently as one learned
    /// from its own announcement.
    pub health: u8,
    /// What the sender holds of the member's replicated key-value state.
    pub kv: KvSummary,
    /// The member's node key.
    pub key: NodeKey,
    /// The member's signature of its `Alive` at this incarnation (profile, incarnation,
    /// health), relayed as the member made it.
    pub sig: Signature,
    /// The member's signature of its leave at this incarnation, when it left by itself;
    /// `None` for any other state, and for a member force-left by another node.
    pub leave_sig: Option<Signature>,
}

/// What a node holds of one member's replicated key-value map: enough for two nodes to
/// see that they differ, and which of them is ahead. All zero for a member that never
/// published anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvSummary {
    /// The map's epoch: a new one replaces the whole map (a restart, or a compaction that
    /// drops deletion markers). Epochs and versions come from one counter that only grows.
    pub epoch: u64,
    /// Highest version of any entry held.
    pub version: u64,
    /// Order-independent hash of the (key, version, deleted) entries held.
    pub hash: u64,
}

/// What one [`Message::KvUpdate`] does to its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvChange {
    /// The key now has this value.
    Set(String),
    /// The key was deleted (kept as a marker so the deletion spreads).
    Delete,
    /// The key changed, but the value is too large for a datagram: ask the owner.
    Large,
    /// The owner's map is at a new epoch (the key is empty): drop what you hold of the
    /// old one and ask the owner for the new one.
    Epoch,
}

/// One entry of a replicated map as carried in a [`Message::KvPush`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// Version the owner gave this write.
    pub version: u64,
    /// The value, or `None` for a deletion marker.
    pub value: Option<String>,
    /// The owner's signature of this write (map, epoch, key, version, value), relayed
    /// as the owner made it.
    pub sig: Signature,
}

/// A member's whole replicated map, as one node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMapRecord {
    /// The member the map belongs to.
    pub node: Name,
    /// The map's epoch.
    pub epoch: u64,
    /// The owner's signature of the epoch (an empty map at a new epoch replaces what a
    /// holder has, so the epoch itself is the owner's word too).
    pub epoch_sig: Signature,
    /// Its entries, deletion markers included.
    pub entries: Vec<KvEntry>,
}

/// Which leg of a push-pull exchange a [`Message::PushPull`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncPhase {
    /// Periodic anti-entropy opener: only the sender's digest, no members. The receiver
    /// answers with `Reply` when its digest differs, and says nothing when it matches.
    Offer,
    /// The receiver's full state, sent because digests differed.
    Reply,
    /// The opener's full state, sent after merging a `Reply` that still left digests apart.
    Final,
    /// Answer to a [`Message::Join`]: the seed's full state.
    JoinReply,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Direct probe: "are you `target`?". Answered by `Ack` with the same `seq`, on the
    /// channel it came on (a datagram, or a stream for the fallback probe).
    Ping {
        /// Sender-chosen sequence number echoed by the ack.
        seq: u32,
        /// Name the sender expects at this address, so a reused address never answers
        /// for a departed node.
        target: Name,
    },
    /// Answer to `Ping`, or an intermediary relaying the target's answer to a `PingReq`.
    Ack {
        /// The sequence number of the ping or ping-req being answered.
        seq: u32,
    },
    /// Indirect probe: "please ping `target` for me and relay its ack".
    PingReq {
        /// The requester's sequence number, echoed by the relayed `Ack` or the `Nack`.
        seq: u32,
        /// Member to probe.
        target: Name,
        /// Its address as the requester knows it.
        target_addr: SocketAddr,
    },
    /// Lifeguard: the intermediary is alive but its own ping to the target timed out.
    Nack {
        /// The requester's sequence number.
        seq: u32,
    },
    /// A member is alive at this incarnation, with this profile.
    Alive {
        /// The member's profile.
        profile: Profile,
        /// Its incarnation.
        incarnation: u64,
        /// The member's Lifeguard health score when it announced itself (0 = healthy).
        /// Probers stretch their probe timeout toward it by `health + 1`, so a node that
        /// knows it is slow is not suspected over and over by every prober in turn.
        health: u8,
        /// The member's node key.
        key: NodeKey,
        /// The member's signature of profile, incarnation and health: a receiver
        /// believes the record only if it verifies with the key bound to the name.
        sig: Signature,
    },
    /// `from` suspects `name` at this incarnation.
    Suspect {
        /// Suspected member.
        name: Name,
        /// Incarnation the suspicion is about: the one the sender holds. An accusation
        /// never raises the incarnation a receiver holds.
        incarnation: u64,
        /// Who raised it (distinct senders confirm a suspicion).
        from: Name,
    },
    /// `from` declared `name` dead at this incarnation.
    Dead {
        /// Dead member.
        name: Name,
        /// Incarnation the declaration is about (as for `Suspect`).
        incarnation: u64,
        /// Who declared it.
        from: Name,
    },
    /// `name` left gracefully at this incarnation.
    Leave {
        /// Departing member.
        name: Name,
        /// Its incarnation: `Left` overrides every other state at the same one.
        incarnation: u64,
        /// The member's own signature of its leave. `None` for a force-leave by
        /// another node, which only moves a member held failed at this incarnation.
        sig: Option<Signature>,
    },
    /// Stream: a joining (or reconnecting) node's full state; answered by a
    /// `PushPull { phase: JoinReply }`.
    Join {
        /// The sender's member table, itself included.
        members: Vec<MemberRecord>,
    },
    /// One change to a member's replicated key-value map, gossiped like a membership
    /// update. Only the member (`node`) writes its map; everyone else relays.
    KvUpdate {
        /// Owner of the map.
        node: Name,
        /// The map's epoch.
        epoch: u64,
        /// Version of this write.
        version: u64,
        /// The key written (empty for [`KvChange::Epoch`]).
        key: String,
        /// What happened to it.
        change: KvChange,
        /// The owner's signature: of the write for `Set`, `Delete` and `Large` (over the
        /// value, which a `Large` notice does not carry: it is only a hint to pull), of
        /// the epoch for `Epoch`.
        sig: Signature,
    },
    /// Stream: "send me your copies of these members' maps", after a push-pull or an
    /// update showed the receiver holds more of them.
    KvPull {
        /// Members whose maps are wanted.
        nodes: Vec<Name>,
    },
    /// Stream: answer to a [`Message::KvPull`], whole maps.
    KvPush {
        /// The maps asked for that the sender holds.
        maps: Vec<KvMapRecord>,
    },
    /// Stream: anti-entropy exchange of member tables.
    PushPull {
        /// Which leg of the exchange this is.
        phase: SyncPhase,
        /// The sender's membership digest.
        digest: u64,
        /// The sender's member table (empty for `Offer`).
        members: Vec<MemberRecord>,
    },
}

/// The kind of a message, for statistics and for checking the channel it came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    /// [`Message::Ping`]
    Ping,
    /// [`Message::Ack`]
    Ack,
    /// [`Message::PingReq`]
    PingReq,
    /// [`Message::Nack`]
    Nack,
    /// [`Message::Alive`]
    Alive,
    /// [`Message::Suspect`]
    Suspect,
    /// [`Message::Dead`]
    Dead,
    /// [`Message::Leave`]
    Leave,
    /// [`Message::Join`]
    Join,
    /// [`Message::PushPull`]
    PushPull,
    /// [`Message::KvUpdate`]
    KvUpdate,
    /// [`Message::KvPull`]
    KvPull,
    /// [`Message::KvPush`]
    KvPush,
}

impl MessageKind {
    /// Every kind, in declaration order (the index used by per-kind counters).
    pub const ALL: [MessageKind; 13] = [
        MessageKind::Ping,
        MessageKind::Ack,
        MessageKind::PingReq,
        MessageKind::Nack,
        MessageKind::Alive,
        MessageKind::Suspect,
        MessageKind::Dead,
        MessageKind::Leave,
        MessageKind::Join,
        MessageKind::PushPull,
        MessageKind::KvUpdate,
        MessageKind::KvPull,
        MessageKind::KvPush,
    ];

    /// Position in [`MessageKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lowercase name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Ping => "ping",
            MessageKind::Ack => "ack",
            MessageKind::PingReq => "ping-req",
            MessageKind::Nack => "nack",
            MessageKind::Alive => "alive",
            MessageKind::Suspect => "suspect",
            MessageKind::Dead => "dead",
            MessageKind::Leave => "leave",
            MessageKind::Join => "join",
            MessageKind::PushPull => "push-pull",
            MessageKind::KvUpdate => "kv-update",
            MessageKind::KvPull => "kv-pull",
            MessageKind::KvPush => "kv-push",
        }
    }

    /// Whether this kind only travels on a stream (whole member tables).
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            MessageKind::Join | MessageKind::PushPull | MessageKind::KvPull | MessageKind::KvPush
        )
    }

    /// Whether this kind may arrive on a stream: the stream-only kinds, plus `Ping` and
    /// `Ack` for the reliable fallback probe.
    pub fn allowed_on_stream(self) -> bool {
        self.is_stream() || matches!(self, MessageKind::Ping | MessageKind::Ack)
    }
}

impl Message {
    /// This message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Ping { .. } => MessageKind::Ping,
            Message::Ack { .. } => MessageKind::Ack,
            Message::PingReq { .. } => MessageKind::PingReq,
            Message::Nack { .. } => MessageKind::Nack,
            Message::Alive { .. } => MessageKind::Alive,
            Message::Suspect { .. } => MessageKind::Suspect,
            Message::Dead { .. } => MessageKind::Dead,
            Message::Leave { .. } => MessageKind::Leave,
            Message::Join { .. } => MessageKind::Join,
            Message::PushPull { .. } => MessageKind::PushPull,
            Message::KvUpdate { .. } => MessageKind::KvUpdate,
            Message::KvPull { .. } => MessageKind::KvPull,
            Message::KvPush { .. } => MessageKind::KvPush,
        }
    }

    /// Checks the bounds serde cannot express: name and tag sizes, and no control
    /// characters in names, tags or state keys ([`has_control_char`]). Called by the
    /// decoder, so the core only ever sees messages that pass.
    pub fn validate(&self) -> Result<(), &'static str> {
        fn name(n: &Name) -> Result<(), &'static str> {
            if n.len() > MAX_NAME_LEN {
                Err("name longer than 128 bytes")
            } else if has_control_char(n) {
                Err("name with a control character")
            } else {
                Ok(())
            }
        }
        fn kv_key(k: &str) -> Result<(), &'static str> {
            if k.is_empty() {
                Err("empty key")
            } else if k.len() > MAX_KV_KEY_LEN {
                Err("key longer than 256 bytes")
            } else if has_control_char(k) {
                Err("key with a control character")
            } else {
                Ok(())
            }
        }
        fn kv_number(n: u64) -> Result<(), &'static str> {
            if n > MAX_KV_VERSION {
                Err("map epoch or version over 2^62")
            } else {
                Ok(())
            }
        }
        fn profile(p: &Profile) -> Result<(), &'static str> {
            if p.name.is_empty() {
                return Err("empty member name");
            }
            name(&p.name)?;
            name(&p.region)?;
            name(&p.zone)?;
            p.tags.validate().map_err(|e| match e {
                TagsError::EmptyKey => "empty tag key",
                TagsError::ControlCharacter { .. } => "tag with a control character",
                TagsError::TooLarge { .. } | TagsError::TooMany { .. } => {
                    "tags over the size limit"
                }
            })
        }
        match self {
            Message::Ping { target, .. } | Message::PingReq { target, .. } => name(target),
            Message::Ack { .. } | Message::Nack { .. } => Ok(()),
            Message::Alive { profile: p, .. } => profile(p),
            Message::Suspect { name: n, from, .. } | Message::Dead { name: n, from, .. } => {
                name(n)?;
                name(from)
            }
            Message::Leave { name: n, .. } => name(n),
            Message::Join { members } | Message::PushPull { members, .. } => {
                members.iter().try_for_each(|m| {
                    profile(&m.profile)?;
                    kv_number(m.kv.epoch)?;
                    kv_number(m.kv.version)
                })
            }
            Message::KvUpdate {
                node,
                epoch,
                version,
                key,
                change,
                ..
            } => {
                name(node)?;
                kv_number(*epoch)?;
                kv_number(*version)?;
                match change {
                    KvChange::Epoch if key.is_empty() => Ok(()),
                    KvChange::Epoch => Err("an epoch update names no key"),
                    _ => kv_key(key),
                }
            }
            Message::KvPull { nodes } => nodes.iter().try_for_each(name),
            Message::KvPush { maps } => maps.iter().try_for_each(|m| {
                name(&m.node)?;
                kv_number(m.epoch)?;
                if m.entries.len() > MAX_KV_ENTRIES {
                    return Err("replicated map with too many entries");
                }
                let mut len = 0usize;
                for e in &m.entries {
                    kv_key(&e.key)?;
                    kv_number(e.version)?;
                    // Live entries only, as the owner's own bound counts them.
                    len += e.value.as_ref().map_or(0, |v| e.key.len() + v.len());
                }
                if len > MAX_KV_MAP_LEN {
                    return Err("replicated map over 1 MiB");
                }
                Ok(())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::DatagramBuilder;

    #[test]
    fn the_largest_alive_update_fits_one_datagram() {
        let long = |c: char| Name::from(c.to_string().repeat(MAX_NAME_LEN));
        // 64 tags whose keys and values share the 496 bytes: the most length prefixes.
        let tags = Tags::from_pairs(
            (0..MAX_TAGS).map(|i| (format!("{i:03}"), if i < 48 { "abcde" } else { "abcd" })),
        )
        .unwrap();
        assert_eq!(tags.byte_len(), MAX_TAGS_LEN);
        let msg = Message::Alive {
            profile: Profile {
                name: long('n'),
                addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                    .parse()
                    .unwrap(),
                region: long('r'),
                zone: long('z'),
                tags,
            },
            incarnation: u64::MAX,
            health: u8::MAX,
            key: NodeKey([0xff; 32]),
            sig: Signature([0xff; 64]),
        };
        let mut d = DatagramBuilder::new(1150);
        assert!(
            d.push(&msg).unwrap(),
            "the largest alive update must fit the default budget"
        );
    }

    #[test]
    fn control_characters_are_exactly_the_unicode_cc_category() {
        for (text, control) in [
            ("web-1.eu", false),
            (
                "a;touch${IFS}/tmp/x $(id) `id` 'q' \"q\" | & < > * ?",
                false,
            ),
            ("caf\u{e9} \u{1f980} \u{200b}", false),
            ("a\0b", true),
            ("a\nb", true),
            ("a\rb", true),
            ("a\tb", true),
            ("\u{1b}[2J", true),
            ("del\u{7f}", true),
            ("c1\u{9b}", true),
            ("nel\u{85}", true),
            ("\u{a0}", false),
        ] {
            assert_eq!(has_control_char(text), control, "{text:?}");
        }
    }

    #[test]
    fn map_epochs_and_versions_validate_up_to_the_bound() {
        let update = |epoch, version| Message::KvUpdate {
            node: "a".into(),
            epoch,
            version,
            key: "k".into(),
            change: KvChange::Delete,
            sig: Signature::UNSIGNED,
        };
        let push = |epoch, version| Message::KvPush {
            maps: vec![KvMapRecord {
                node: "a".into(),
                epoch,
                entries: vec![KvEntry {
                    key: "k".into(),
                    version,
                    value: None,
                    sig: Signature::UNSIGNED,
                }],
                epoch_sig: Signature::UNSIGNED,
            }],
        };
        let table = |epoch, version| Message::Join {
            members: vec![MemberRecord {
                profile: Profile {
                    name: "a".into(),
                    addr: "127.0.0.1:7000".parse().unwrap(),
                    region: "eu".into(),
                    zone: "eu-1".into(),
                    tags: Tags::new(),
                },
                incarnation: 0,
                state: MemberState::Alive,
                health: 0,
                kv: KvSummary {
                    epoch,
                    version,
                    hash: u64::MAX,
                },
                key: NodeKey([0; 32]),
                sig: Signature::UNSIGNED,
                leave_sig: None,
            }],
        };
        let (max, over) = (MAX_KV_VERSION, MAX_KV_VERSION + 1);
        let makers: [fn(u64, u64) -> Message; 3] = [update, push, table];
        for make in makers {
            assert_eq!(make(max, max).validate(), Ok(()));
            for (epoch, version) in [(over, max), (max, over), (u64::MAX, 1), (1, u64::MAX)] {
                assert_eq!(
                    make(epoch, version).validate(),
                    Err("map epoch or version over 2^62"),
                    "{epoch} {version}"
                );
            }
        }
    }

    #[test]
    fn names_tags_and_keys_with_control_characters_do_not_validate() {
        let profile = |name: &str, tags: &[(&str, &str)]| Profile {
            name: name.into(),
            addr: "127.0.0.1:7000".parse().unwrap(),
            region: "eu".into(),
            zone: "eu-1".into(),
            tags: Tags(
                tags.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        };
        let alive = |p| Message::Alive {
            profile: p,
            incarnation: 1,
            health: 0,
            key: NodeKey([0; 32]),
            sig: Signature::UNSIGNED,
        };
        assert_eq!(
            alive(profile("a$(id)`x`;b", &[("k", "v w")])).validate(),
            Ok(())
        );
        let mut zone = profile("a", &[]);
        zone.zone = "z\0".into();
        let bad = [
            (alive(profile("a\nb", &[])), "name with a control character"),
            (alive(zone), "name with a control character"),
            (
                alive(profile("a", &[("k\x1b", "v")])),
                "tag with a control character",
            ),
            (
                alive(profile("a", &[("k", "v\r\n")])),
                "tag with a control character",
            ),
            (
                Message::Suspect {
                    name: "b".into(),
                    incarnation: 1,
                    from: "c\u{7f}".into(),
                },
                "name with a control character",
            ),
            (
                Message::KvUpdate {
                    node: "a".into(),
                    epoch: 1,
                    version: 2,
                    key: "k\n".into(),
                    change: KvChange::Delete,
                    sig: Signature::UNSIGNED,
                },
                "key with a control character",
            ),
            (
                Message::KvPush {
                    maps: vec![KvMapRecord {
                        node: "a".into(),
                        epoch: 1,
                        entries: vec![KvEntry {
                            key: "\0".into(),
                            version: 2,
                            value: None,
                            sig: Signature::UNSIGNED,
                        }],
                        epoch_sig: Signature::UNSIGNED,
                    }],
                },
                "key with a control character",
            ),
        ];
        for (msg, reason) in bad {
            assert_eq!(msg.validate(), Err(reason), "{msg:?}");
        }
        // State values are data of any shape: only keys are names.
        let value = Message::KvUpdate {
            node: "a".into(),
            epoch: 1,
            version: 2,
            key: "k".into(),
            change: KvChange::Set("line 1\nline 2\0".into()),
            sig: Signature::UNSIGNED,
        };
        assert_eq!(value.validate(), Ok(()));
    }

    #[test]
    fn too_many_tags_are_refused() {
        let err =
            Tags::from_pairs((0..=MAX_TAGS).map(|i| (i.to_string(), String::new()))).unwrap_err();
        assert_eq!(
            err,
            TagsError::TooMany {
                count: MAX_TAGS + 1,
                max: MAX_TAGS
            }
        );
    }
}
