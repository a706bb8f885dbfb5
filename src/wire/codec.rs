//! The byte layout of datagrams and stream messages.
//!
//! ```text
//! datagram := version:u8  message+
//! stream   := version:u8  cluster_id:u32(le)  message      (framed by the transport)
//! message  := bincode(standard, varint) of `Message`
//! ```
//!
//! A datagram carries no cluster id: every datagram travels on a QUIC connection whose
//! ALPN names the cluster and whose peer proved a certificate of the cluster's CA, so
//! the four bytes would be paid on every probe (two datagrams a second per node, about
//! 7% of a steady node's bandwidth) to repeat what the handshake already settled. A
//! stream message is rare and large, and keeps the id as a second check.
//!
//! Messages in a datagram are self-delimiting, so several pack back to back with no
//! length prefix. Decoding is bounded twice: inputs over [`MAX_DATAGRAM_LEN`] /
//! [`MAX_STREAM_LEN`] are refused before parsing, and bincode's allocation limit caps what
//! any length prefix inside can make the decoder reserve.

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};

use super::message::{Message, MessageKind};
use crate::stable_hash::StableHasher;

/// Version of this wire format. A datagram with another version is dropped and counted.
/// 2: member records carry a replicated-state summary, and the replicated-state messages
/// (`KvUpdate`, `KvPull`, `KvPush`) exist. 3: datagrams drop the cluster id. 4: members
/// sign what they say about themselves (node keys, signed `Alive` and `Leave`, signed
/// table records) and incarnations are 64-bit.
pub const PROTOCOL_VERSION: u8 = 4;

/// Bytes of the datagram header: the version.
pub const DATAGRAM_HEADER_LEN: usize = 1;

/// Bytes of the stream header: version (1) and cluster id (4).
pub const STREAM_HEADER_LEN: usize = 5;

/// Largest datagram the decoder accepts. QUIC datagrams on real paths stay near 1,200
/// bytes; 8 KiB leaves room for jumbo-frame budgets and refuses anything absurd early.
pub const MAX_DATAGRAM_LEN: usize = 8 * 1024;

/// Largest stream message accepted: a 10,000-member push-pull is about 0.5 MiB, so
/// 32 MiB is generous while still bounding memory per connection.
pub const MAX_STREAM_LEN: usize = 32 * 1024 * 1024;

/// Allocation bound while decoding a datagram (bincode's limit counts claimed bytes).
const DATAGRAM_DECODE_LIMIT: usize = 64 * 1024;
/// Allocation bound while decoding a stream message.
const STREAM_DECODE_LIMIT: usize = 64 * 1024 * 1024;

type DatagramConfig = Configuration<LittleEndian, Varint, Limit<DATAGRAM_DECODE_LIMIT>>;
type StreamConfig = Configuration<LittleEndian, Varint, Limit<STREAM_DECODE_LIMIT>>;

fn datagram_config() -> DatagramConfig {
    config::standard().with_limit::<DATAGRAM_DECODE_LIMIT>()
}

fn stream_config() -> StreamConfig {
    config::standard().with_limit::<STREAM_DECODE_LIMIT>()
}

/// Identifies a cluster on the wire: derived from the cluster name, so two clusters with
/// different names drop each other's datagrams instead of merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterId(pub u32);

impl ClusterId {
    /// The id for a cluster name (a stable hash, the same on every machine).
    pub fn from_name(name: &str) -> Self {
        let h = StableHasher::default().write_str(name).finish();
        ClusterId((h ^ (h >> 32)) as u32)
    }
}

/// Why bytes could not be decoded. Every variant means nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header, or a datagram with a header and nothing after it.
    #[error("input of {len} bytes is truncated")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Longer than the channel allows.
    #[error("input of {len} bytes is over the {max}-byte limit")]
    Oversized {
        /// Bytes received.
        len: usize,
        /// The limit for this channel.
        max: usize,
    },
    /// Another protocol version.
    #[error("unknown protocol version {found}")]
    UnknownVersion {
        /// Version byte received.
        found: u8,
    },
    /// Another cluster's traffic.
    #[error("cluster id {found:#010x} is not ours")]
    ForeignCluster {
        /// Cluster id received.
        found: u32,
    },
    /// The bytes do not parse as messages (garbage, truncated body, unknown variant).
    #[error("malformed message: {reason}")]
    Malformed {
        /// What the parser reported.
        reason: String,
    },
    /// Parsed, but breaks a bound (name or tag size).
    #[error("invalid message: {reason}")]
    Invalid {
        /// Which bound.
        reason: &'static str,
    },
    /// A stream-only message in a datagram, or a datagram message on a stream.
    #[error("{kind:?} is not allowed on this channel")]
    WrongChannel {
        /// The offending kind.
        kind: MessageKind,
    },
    /// Bytes left after a stream message.
    #[error("{extra} trailing bytes after the message")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded stream message would be over [`MAX_STREAM_LEN`].
    #[error("encoded message of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The serializer failed (cannot happen for `Message`; kept typed rather than panicking).
    #[error("encoding failed: {reason}")]
    Serialize {
        /// What bincode reported.
        reason: String,
    },
}

fn write_stream_header(buf: &mut Vec<u8>, cluster: ClusterId) {
    buf.push(PROTOCOL_VERSION);
    buf.extend_from_slice(&cluster.0.to_le_bytes());
}

/// The bytes after the version byte, or why the version is not ours.
fn check_version(bytes: &[u8], header_len: usize) -> Result<&[u8], DecodeError> {
    if bytes.len() < header_len {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    if bytes[0] != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion { found: bytes[0] });
    }
    Ok(&bytes[1..])
}

fn check_stream_header(bytes: &[u8], cluster: ClusterId) -> Result<&[u8], DecodeError> {
    let rest = check_version(bytes, STREAM_HEADER_LEN)?;
    let found = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if found != cluster.0 {
        return Err(DecodeError::ForeignCluster { found });
    }
    Ok(&rest[4..])
}

/// Appends one encoded message to `buf`, returning its length.
pub fn encode_message(msg: &Message, buf: &mut Vec<u8>) -> Result<usize, EncodeError> {
    bincode::serde::encode_into_std_write(msg, buf, config::standard()).map_err(|e| {
        EncodeError::Serialize {
            reason: e.to_string(),
        }
    })
}

/// The canonical bytes of a signed statement ([`crate::wire::signed`]): the same
/// encoding as messages, which is deterministic (fixed field order, tags in key order).
pub(crate) fn encode_statement<T: serde::Serialize>(statement: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(statement, config::standard())
        .expect("a statement is plain data and always encodes")
}

/// Encodes a whole stream message: header then the message.
pub fn encode_stream(msg: &Message, cluster: ClusterId) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(64);
    write_stream_header(&mut buf, cluster);
    encode_message(msg, &mut buf)?;
    if buf.len() > MAX_STREAM_LEN {
        return Err(EncodeError::TooLarge {
            len: buf.len(),
            max: MAX_STREAM_LEN,
        });
    }
    Ok(buf)
}

/// Decodes a datagram into its messages, each with its encoded length.
///
/// All or nothing: if any message is bad, the whole datagram is refused, so a caller that
/// applies only `Ok` results never applies half a datagram.
pub fn decode_datagram(bytes: &[u8]) -> Result<Vec<(Message, usize)>, DecodeError> {
    if bytes.len() > MAX_DATAGRAM_LEN {
        return Err(DecodeError::Oversized {
            len: bytes.len(),
            max: MAX_DATAGRAM_LEN,
        });
    }
    let mut rest = check_version(bytes, DATAGRAM_HEADER_LEN)?;
    if rest.is_empty() {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let mut out = Vec::with_capacity(4);
    while !rest.is_empty() {
        let (msg, used): (Message, usize) =
            bincode::serde::decode_from_slice(rest, datagram_config()).map_err(|e| {
                DecodeError::Malformed {
                    reason: e.to_string(),
                }
            })?;
        if msg.kind().is_stream() {
            return Err(DecodeError::WrongChannel { kind: msg.kind() });
        }
        msg.validate()
            .map_err(|reason| DecodeError::Invalid { reason })?;
        out.push((msg, used));
        rest = &rest[used..];
    }
    Ok(out)
}

/// Decodes one stream message (`Join`, `PushPull`, or a fallback `Ping`/`Ack`).
pub fn decode_stream(bytes: &[u8], cluster: ClusterId) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_STREAM_LEN {
        return Err(DecodeError::Oversized {
            len: bytes.len(),
            max: MAX_STREAM_LEN,
        });
    }
    let body = check_stream_header(bytes, cluster)?;
    let (msg, used): (Message, usize) = bincode::serde::decode_from_slice(body, stream_config())
        .map_err(|e| DecodeError::Malformed {
            reason: e.to_string(),
        })?;
    if used != body.len() {
        return Err(DecodeError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    if !msg.kind().allowed_on_stream() {
        return Err(DecodeError::WrongChannel { kind: msg.kind() });
    }
    msg.validate()
        .map_err(|reason| DecodeError::Invalid { reason })?;
    Ok(msg)
}

/// Initial capacity of a datagram being built: a header and a probe message.
const SMALL_DATAGRAM: usize = 64;

/// Packs messages into one datagram without passing a byte budget.
#[derive(Debug)]
pub struct DatagramBuilder {
    buf: Vec<u8>,
    budget: usize,
}

impl DatagramBuilder {
    /// Starts a datagram that will not grow past `budget` bytes.
    pub fn new(budget: usize) -> Self {
        // Most datagrams are a ping or an ack of a dozen bytes: start small and let the
        // rare full gossip datagram grow, rather than allocate the whole budget for each
        // (the profile showed it among the largest allocation costs of a running agent).
        let mut buf = Vec::with_capacity(SMALL_DATAGRAM.min(budget));
        buf.push(PROTOCOL_VERSION);
        DatagramBuilder { buf, budget }
    }

    /// Appends a message if it fits; returns whether it did (the datagram is unchanged if not).
    pub fn push(&mut self, msg: &Message) -> Result<bool, EncodeError> {
        let start = self.buf.len();
        encode_message(msg, &mut self.buf)?;
        if self.buf.len() > self.budget {
            self.buf.truncate(start);
            return Ok(false);
        }
        Ok(true)
    }

    /// Appends an already encoded message if it fits; returns whether it did.
    pub fn push_encoded(&mut self, encoded: &[u8]) -> bool {
        if encoded.len() > self.remaining() {
            return false;
        }
        self.buf.extend_from_slice(encoded);
        true
    }

    /// Bytes still free under the budget.
    pub fn remaining(&self) -> usize {
        self.budget.saturating_sub(self.buf.len())
    }

    /// Whether only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= DATAGRAM_HEADER_LEN
    }

    /// The finished datagram.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}
