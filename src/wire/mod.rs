//! The wire format: every protocol message and the codec that turns them into bytes.
//!
//! - [`message`] holds the closed set of messages ([`Message`]) and the records they carry.
//! - [`signed`] holds the statements members sign about themselves.
//! - [`codec`] owns the byte layout: a datagram header (protocol version and cluster id),
//!   messages packed back to back up to a byte budget, and bounded, panic-free decoding.
//!
//! Nothing outside `codec` knows that the encoding is bincode, so the format can change in
//! one place. Invariant: decoding any input either yields well-formed, size-checked messages
//! or a [`DecodeError`]; it never panics.

pub mod codec;
pub mod message;
pub mod signed;

pub use codec::{
    ClusterId, DATAGRAM_HEADER_LEN, DatagramBuilder, DecodeError, EncodeError, MAX_DATAGRAM_LEN,
    MAX_STREAM_LEN, PROTOCOL_VERSION, STREAM_HEADER_LEN, decode_datagram, decode_stream,
    encode_message, encode_stream,
};
pub use message::{
    KvChange, KvEntry, KvMapRecord, KvSummary, MAX_KV_ENTRIES, MAX_KV_KEY_LEN, MAX_KV_MAP_LEN,
    MAX_KV_VERSION, MAX_NAME_LEN, MAX_TAGS, MAX_TAGS_LEN, MemberRecord, MemberState, Message,
    MessageKind, Name, NodeKey, Profile, Signature, SyncPhase, Tags, TagsError, has_control_char,
};
