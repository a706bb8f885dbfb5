//! The DNS interface: every agent answers for the zone `muster.` from its own view of
//! the cluster, so any program that can resolve a name can find a healthy instance.
//!
//! | name | answers |
//! |---|---|
//! | `SERVICE.service.muster.` | A / AAAA: the healthy instances' addresses, in route order; SRV: port, weight and priority per instance, its node's address in the additional section |
//! | `SERVICE.service.REGION.muster.` | the same, restricted to REGION's healthy instances (no failover) |
//! | `NODE.node.muster.` | A / AAAA: a live member's address |
//! | `muster.` | SOA |
//!
//! Answers follow the same order and failover rules as `GET /v1/route/{service}` for a
//! caller in this agent's region and zone, and move once per burst of membership
//! changes (the router's debounce), not once per gossip message. Every record has the
//! agent's `dns_ttl` (5 s by default), so a client that caches sees a failover within
//! one TTL of the agent. See [`message`] for what each kind of query is answered, and
//! `docs/operations.md` for running it.
//!
//! # Layout
//!
//! | file | holds |
//! |---|---|
//! | `names` | query names: what a name asks for, and the names records carry |
//! | `records` | A, AAAA, SRV and SOA records from route answers (pure) |
//! | `message` | one message in, one out: errors, EDNS, sizes and truncation (pure over [`ZoneData`]) |
//! | `limiter` | [`RateLimiter`]: UDP answers per source, a token bucket each, a bounded number of sources (pure) |
//! | `zone` | [`AgentZone`]: the zone as the agent sees it (services, debounced members) |
//! | `server` | [`DnsServer`]: UDP and TCP sockets and their tasks; [`DnsStats`] |
//!
//! The server loop is ours, over `hickory-proto`'s message codec: answers are cheap
//! synchronous reads, so each socket task answers inline (no task and no log line per
//! query, as `hickory-server` has), and every malformed message whose id is readable is
//! answered FORMERR, a header shorter than 12 bytes included. UDP answers are limited
//! per source ([`limiter`]; 100 a second by default), and an empty TC answer is never
//! larger than its query, so the interface cannot be used to amplify a flood at an
//! address someone spoofs.

pub mod limiter;
pub mod message;
pub mod names;
pub mod records;
mod server;
mod zone;

pub use limiter::{RateLimit, RateLimiter};
pub use message::{Authority, MAX_UDP_PAYLOAD, Reply, Transport, ZoneData, respond};
pub use server::{DnsServer, DnsSockets, DnsStats, MAX_TCP_CONNECTIONS, TCP_IDLE};
pub use zone::{AgentZone, MemberFeed, MemberTable, follow_members};
