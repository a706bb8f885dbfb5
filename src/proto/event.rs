//! What flows in and out of the core besides raw bytes: commands from the local user,
//! events about the membership, and transmissions for the driver to send.

use std::net::SocketAddr;

use crate::proto::member::MemberInfo;
use crate::wire::{Name, Tags, TagsError};

/// The channel a transmission must travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Unreliable datagram (probes and gossip); may be lost.
    Datagram,
    /// Reliable, ordered stream (join and push-pull); the driver frames the bytes.
    Stream,
}

/// Bytes the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Encoded datagram or stream message, header included.
    pub payload: Vec<u8>,
    /// How to send it.
    pub channel: Channel,
}

/// A membership change or a result of a command, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member was seen for the first time (or came back after leaving).
    MemberJoined(MemberInfo),
    /// A live member changed its address, region, zone or tags.
    MemberUpdated(MemberInfo),
    /// A member became suspect.
    MemberSuspected(MemberInfo),
    /// A suspect or failed member is alive again (refuted, or recovered after a failure).
    MemberAlive(MemberInfo),
    /// A member was declared failed.
    MemberFailed(MemberInfo),
    /// A member left gracefully (or was force-left).
    MemberLeft(MemberInfo),
    /// A failed or departed member was forgotten after its retention time.
    MemberReaped(MemberInfo),
    /// A join attempt got its first answer from a seed.
    Joined {
        /// The seed that answered.
        via: SocketAddr,
        /// Live members known after merging its state.
        members: usize,
    },
    /// A seed's table holds this node's name as a live member under another node key:
    /// another agent has the name (or this one restarted with a new key before the
    /// cluster declared its old self failed). The join is over; the node should stop.
    NameTaken {
        /// Where the member holding the name is.
        addr: SocketAddr,
        /// Its state there (alive or suspect).
        state: crate::wire::MemberState,
        /// The key the name is bound to.
        key: crate::wire::NodeKey,
    },
    /// No seed of a join attempt answered within `join_timeout`.
    JoinFailed {
        /// The seeds tried.
        seeds: Vec<SocketAddr>,
    },
    /// A member's replicated map changed here: `keys` lists the keys whose value changed
    /// (set, changed or deleted); it is empty when only the map's version or epoch moved
    /// (a deletion marker for a key never seen, a new empty epoch).
    KvChanged {
        /// The member whose map changed (maybe this node).
        node: Name,
        /// The keys whose value changed.
        keys: Vec<String>,
    },
    /// A graceful leave finished spreading (or reached `leave_timeout`); the node is now
    /// inert and the driver can shut down.
    LeaveCompleted,
}

/// Something the local user asks the node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Push-pull with every seed; the first answer completes the join.
    Join {
        /// Seed addresses.
        seeds: Vec<SocketAddr>,
    },
    /// Leave gracefully: others will see this node as left, not failed.
    Leave,
    /// Replace this node's tags; the change spreads with a higher incarnation.
    SetTags(Tags),
    /// Mark a failed member as left, so it stops being re-contacted (Serf's force-leave).
    ForceLeave {
        /// The failed member.
        name: Name,
    },
    /// Write one key of this node's replicated map (`None` deletes it); the change
    /// spreads by gossip.
    SetKv {
        /// The key.
        key: String,
        /// The new value, or `None` to delete.
        value: Option<String>,
    },
}

/// Why a command was refused. In every case the node's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `Join` with no seed other than this node's own address.
    #[error("no seed addresses to join through")]
    NoSeeds,
    /// The node has left or is leaving; it takes no more commands.
    #[error("the node has left the cluster")]
    Left,
    /// `ForceLeave` of a name not in the member table.
    #[error("no member named {0:?}")]
    UnknownMember(Name),
    /// `ForceLeave` of a member that is not failed.
    #[error("member {name:?} is {state}, not failed")]
    NotFailed {
        /// The member.
        name: Name,
        /// Its current state.
        state: &'static str,
    },
    /// `SetTags` with tags over the size bound.
    #[error("invalid tags: {0}")]
    Tags(#[from] TagsError),
    /// `SetKv` with a bad key or over the state's size bound.
    #[error("invalid state write: {0}")]
    Kv(#[from] KvError),
    /// A name or key given to a command holds a control character
    /// ([`crate::wire::has_control_char`]), which every peer would refuse. Only
    /// `SetKv`'s key is checked here; tags say so through [`TagsError`].
    #[error("the {field} holds a control character")]
    ControlCharacter {
        /// Which input: `key`.
        field: &'static str,
    },
}

/// Why a write to this node's replicated map was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is empty.
    #[error("the key is empty")]
    EmptyKey,
    /// The key is over [`crate::wire::MAX_KV_KEY_LEN`].
    #[error("the key is {len} bytes, more than the limit of {max}")]
    KeyTooLong {
        /// Bytes of the key.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The map would be over the configured `kv_max_bytes`.
    #[error("the state would take {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Bytes the map would take (keys plus values).
        len: usize,
        /// The limit.
        max: usize,
    },
}
