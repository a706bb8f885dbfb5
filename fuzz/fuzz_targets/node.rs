//! Fuzz target `node`: a stateful run of one `proto::Node` through a sequence of
//! operations decoded from the input with `arbitrary`.
//!
//! The node starts as a member of a small cluster (five peers, one suspect and one
//! failed, replicated state of its own and of two peers), set up the way
//! `tests/node_scripted.rs` does: through the public API only (`muster::proto`,
//! `muster::wire`). Each operation is then one of: a datagram of well-formed messages
//! built from arbitrary fields (names, incarnations, versions and sequence numbers are
//! mostly drawn from what the node holds, so the fuzzer gets past the decoder and hits
//! live state), a stream message built the same way, raw datagram or stream bytes (with
//! or without a valid header), a healthy peer's answer to something the node sent (acks,
//! nacks, push-pull replies, pushes), a time step that runs the timers one deadline at a
//! time, a leap that runs them all at once at a far instant, or a local command.
//!
//! After every step (each timer deadline included) the harness drains the node's
//! outputs and checks:
//!
//! - nothing panics (overflow checks are on in fuzz builds);
//! - the node's own incarnation never goes down;
//! - until it is told to leave, the node holds itself `Alive`, has not left, and emits
//!   no event about itself other than its own state changes; after the leave, it holds
//!   itself `Left`, and once `LeaveCompleted` is out nothing more comes out at all;
//! - every datagram it sends decodes and fits `SwimConfig::datagram_budget`; every
//!   stream message decodes with the cluster's id;
//! - a refused command changes nothing and sends nothing;
//! - the member table only holds this node, its initial peers and names the input
//!   announced (an alive message or a table record), so it grows by at most one member
//!   per announcement; every replicated map held belongs to a member in the table;
//! - the two gossip queues together hold at most `2 × SwimConfig::max_queued_updates`
//!   (each `BroadcastQueue` is bounded by it);
//! - one step sends at most `4 × items + 16 × members + 2 × requests + 16` transmissions
//!   and emits at most `4 × items + 4 × members + 16` events, where `items` counts the
//!   messages, records, maps and seeds of the step's input and `requests` the ping-reqs
//!   and suspicion/death notices fed so far (each may owe a deferred nack or check):
//!   output stays linear in input, with no amplification loop;
//! - a time step of at most ten seconds runs fewer than 10,000 timer deadlines.

#![no_main]

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

use muster::proto::{Channel, Command, Event, Node, NodeOptions, NodeSigner, SwimConfig, Time, Verifier};
use muster::wire::{
    self, ClusterId, DatagramBuilder, KvChange, KvEntry, KvMapRecord, KvSummary, MemberRecord,
    MemberState, Message, Name, Profile, SyncPhase, Tags,
};

const CLUSTER: &str = "fuzz";
const ME: &str = "me";
/// The node's peers at the start, at hosts 2 to 6.
const PEERS: [&str; 5] = ["a", "b", "c", "d", "e"];
/// Names the node does not know at the start (a case variant and a non-ASCII one too).
const STRANGERS: [&str; 4] = ["f", "g", "A", "\u{fc}n\u{ef}"];
const KEYS: [&str; 5] = ["svc/web", "role", "color", "k1", "k2"];
const VALUES: [&str; 4] = ["passing", "db", "blue", ""];
const REGIONS: [&str; 3] = ["eu", "us", ""];
/// Transmissions remembered for `Op::Answer` and sequence numbers for `SeqArg::Recent`.
const RECENT: usize = 16;
/// Longest `Op::Advance`, in milliseconds.
const MAX_ADVANCE_MS: u64 = 10_000;
/// Timer deadlines one `Op::Advance` may run (see the module doc).
const MAX_TIMER_STEPS: usize = 10_000;

fn host(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

// ----- the input --------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Input {
    preset: Preset,
    proven: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Preset {
    Lan,
    Wan,
    Local,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Well-formed messages packed into one datagram (those that fit 8 KiB).
    Datagram { from: AddrArg, msgs: Vec<MsgArg> },
    /// One well-formed message on a stream (datagram-only kinds are refused there).
    Stream { from: AddrArg, msg: MsgArg },
    /// Raw bytes as a datagram, behind a valid version byte when `header`.
    RawDatagram {
        from: AddrArg,
        header: bool,
        bytes: Vec<u8>,
    },
    /// Raw bytes as a stream message, behind a valid stream header when `header`.
    RawStream {
        from: AddrArg,
        header: bool,
        bytes: Vec<u8>,
    },
    /// A healthy peer's answer to one of the node's recent transmissions.
    Answer { index: u8, nack: bool },
    /// Moves time forward up to 10 s, one timer deadline at a time.
    Advance { millis: u16 },
    /// Jumps up to 18 h ahead and runs every due timer at once (a driver that stalled).
    Leap { secs: u16 },
    /// A local command.
    Command(CommandArg),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Who {
    Me,
    Peer(u8),
    Stranger(u8),
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Me => ME,
            Who::Peer(i) => PEERS[usize::from(i) % PEERS.len()],
            Who::Stranger(i) => STRANGERS[usize::from(i) % STRANGERS.len()],
        }
    }

    fn addr(self) -> SocketAddr {
        match self {
            Who::Me => host(1),
            Who::Peer(i) => host(2 + i % PEERS.len() as u8),
            Who::Stranger(i) => host(20 + i % STRANGERS.len() as u8),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum NameArg {
    Who(Who),
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AddrArg {
    Of(Who),
    Host(u8, u16),
    V6(u16),
}

impl AddrArg {
    fn get(self) -> SocketAddr {
        match self {
            AddrArg::Of(who) => who.addr(),
            AddrArg::Host(i, port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), port),
            AddrArg::V6(port) => SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), port),
        }
    }
}

/// An incarnation: relative to the one held for the member named (own for this node).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum IncArg {
    Held(i8),
    Raw(u32),
    NearMax(u8),
}

/// A map epoch or version: relative to the one held for the member named.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum NumArg {
    Held(i8),
    Raw(u64),
    NearMax(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqArg {
    /// One of the sequence numbers the node recently sent.
    Recent(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum KeyArg {
    Pool(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum ValueArg {
    Pool(u8),
    /// A value of this many bytes (mod 2 KiB): past 512 it travels as a `Large` notice.
    Long(u16),
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum StateArg {
    Alive,
    Suspect,
    Dead,
    Left,
}

impl StateArg {
    fn get(self) -> MemberState {
        match self {
            StateArg::Alive => MemberState::Alive,
            StateArg::Suspect => MemberState::Suspect,
            StateArg::Dead => MemberState::Dead,
            StateArg::Left => MemberState::Left,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct ProfileArg {
    name: NameArg,
    addr: AddrArg,
    region: u8,
    zone: u8,
    tags: Vec<(KeyArg, ValueArg)>,
}

#[derive(Arbitrary, Debug)]
struct SummaryArg {
    epoch: NumArg,
    version: NumArg,
    /// The hash of the map held, else this.
    hash: Option<u64>,
}

#[derive(Arbitrary, Debug)]
enum RecordArg {
    /// The node's own record of its `index`-th member, its incarnation moved by `inc`,
    /// its state replaced when given, with the node's summary of its map when `kv`.
    Held {
        index: u8,
        inc: i8,
        state: Option<StateArg>,
        kv: bool,
    },
    New {
        profile: ProfileArg,
        inc: IncArg,
        state: StateArg,
        health: u8,
        kv: Option<SummaryArg>,
    },
}

#[derive(Arbitrary, Debug)]
enum ChangeArg {
    Set(ValueArg),
    Delete,
    Large,
    /// A new epoch (always with an empty key, as the decoder requires).
    Epoch,
}

#[derive(Arbitrary, Debug)]
struct EntryArg {
    key: KeyArg,
    version: NumArg,
    value: Option<ValueArg>,
}

#[derive(Arbitrary, Debug)]
enum MapArg {
    /// The map the node holds for a member, as its owner would push it.
    Held(Who),
    New {
        node: NameArg,
        epoch: NumArg,
        entries: Vec<EntryArg>,
    },
}

#[derive(Arbitrary, Debug)]
enum PhaseArg {
    Offer,
    Reply,
    Final,
    JoinReply,
}

#[derive(Arbitrary, Debug)]
enum MsgArg {
    Ping {
        seq: SeqArg,
        target: NameArg,
    },
    Ack {
        seq: SeqArg,
    },
    PingReq {
        seq: SeqArg,
        target: NameArg,
        target_addr: AddrArg,
    },
    Nack {
        seq: SeqArg,
    },
    Alive {
        profile: ProfileArg,
        inc: IncArg,
        health: u8,
    },
    Suspect {
        name: NameArg,
        inc: IncArg,
        from: NameArg,
    },
    Dead {
        name: NameArg,
        inc: IncArg,
        from: NameArg,
    },
    Leave {
        name: NameArg,
        inc: IncArg,
    },
    Join {
        members: Vec<RecordArg>,
    },
    PushPull {
        phase: PhaseArg,
        /// The node's own sync digest (an in-sync offer) when `None`.
        digest: Option<u64>,
        members: Vec<RecordArg>,
    },
    KvUpdate {
        node: NameArg,
        epoch: NumArg,
        version: NumArg,
        key: KeyArg,
        change: ChangeArg,
    },
    KvPull {
        nodes: Vec<NameArg>,
    },
    KvPush {
        maps: Vec<MapArg>,
    },
}

#[derive(Arbitrary, Debug)]
enum CommandArg {
    Join { seeds: Vec<AddrArg> },
    Leave,
    SetTags(Vec<(KeyArg, ValueArg)>),
    ForceLeave(NameArg),
    SetKv { key: KeyArg, value: Option<ValueArg> },
}

// ----- building messages from the input ---------------------------------------------

fn name(arg: &NameArg) -> Name {
    match arg {
        NameArg::Who(who) => who.name().into(),
        NameArg::Raw(s) => s.as_str().into(),
    }
}

fn key(arg: &KeyArg) -> String {
    match arg {
        KeyArg::Pool(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
        KeyArg::Raw(s) => s.clone(),
    }
}

fn value(arg: &ValueArg) -> String {
    match arg {
        ValueArg::Pool(i) => VALUES[usize::from(*i) % VALUES.len()].to_owned(),
        ValueArg::Long(n) => "v".repeat(usize::from(*n) % 2048),
        ValueArg::Raw(s) => s.clone(),
    }
}

/// Tags from pairs, leaving out any pair that would make them invalid.
fn tags(pairs: &[(KeyArg, ValueArg)]) -> Tags {
    let mut tags = Tags::new();
    for (k, v) in pairs {
        let _ = tags.insert(key(k), value(v));
    }
    tags
}

/// The node key of the member named `name`, fixed by the name: the harness signs every
/// alive record and leave with its member's key, so the input gets past the signature
/// checks (a held record with a moved incarnation keeps its old signature, and is the
/// forgery the node must refuse).
fn signer_for(name: &str) -> NodeSigner {
    let mut seed = [0x42; 32];
    for (i, b) in name.bytes().enumerate().take(31) {
        seed[i] = b;
    }
    seed[31] = name.len() as u8;
    NodeSigner::from_seed(seed)
}

/// A map of `node`'s at `epoch`, signed by `node` (as every real map is).
fn owner_signed(cluster: ClusterId, node: Name, epoch: u64, entries: Vec<KvEntry>) -> KvMapRecord {
    let signer = signer_for(&node);
    let mut map = KvMapRecord {
        node,
        epoch,
        epoch_sig: wire::Signature::UNSIGNED,
        entries,
    };
    signer.sign_map(cluster, &mut map);
    map
}

fn shift_u64(base: u64, delta: i8) -> u64 {
    base.saturating_add_signed(i64::from(delta))
}

impl Harness {
    fn incarnation_of(&self, name: &str) -> u64 {
        self.node.member(name).map_or(0, |m| m.incarnation)
    }

    fn inc(&self, arg: IncArg, name: &str) -> u64 {
        match arg {
            IncArg::Held(d) => shift_u64(self.incarnation_of(name), d),
            IncArg::Raw(n) => u64::from(n),
            IncArg::NearMax(d) => u64::MAX - u64::from(d),
        }
    }

    /// `epoch` picks the map's epoch as the base, else its version.
    fn num(&self, arg: NumArg, name: &str, epoch: bool) -> u64 {
        match arg {
            NumArg::Held(d) => {
                let held = self.node.kv(name).map_or(0, |m| if epoch { m.epoch() } else { m.version() });
                shift_u64(held, d)
            }
            NumArg::Raw(n) => n,
            NumArg::NearMax(d) => u64::MAX - u64::from(d),
        }
    }

    fn seq(&self, arg: SeqArg) -> u32 {
        match arg {
            SeqArg::Recent(i) if !self.seqs.is_empty() => self.seqs[usize::from(i) % self.seqs.len()],
            SeqArg::Recent(i) => u32::from(i),
            SeqArg::Raw(n) => n,
        }
    }

    fn profile(&self, arg: &ProfileArg) -> Profile {
        Profile {
            name: name(&arg.name),
            addr: arg.addr.get(),
            region: REGIONS[usize::from(arg.region) % REGIONS.len()].into(),
            zone: REGIONS[usize::from(arg.zone) % REGIONS.len()].into(),
            tags: tags(&arg.tags),
        }
    }

    fn summary(&self, arg: &SummaryArg, name: &str) -> KvSummary {
        KvSummary {
            epoch: self.num(arg.epoch, name, true),
            version: self.num(arg.version, name, false),
            hash: arg
                .hash
                .unwrap_or_else(|| self.node.kv(name).map_or(0, |m| m.summary().hash)),
        }
    }

    fn held_summary(&self, name: &str) -> KvSummary {
        self.node.kv(name).map(|m| m.summary()).unwrap_or_default()
    }

    /// The node's whole table as a peer holding the same view would send it.
    fn table(&self) -> Vec<MemberRecord> {
        let members = self.node.members();
        members
            .iter()
            .map(|m| {
                let mut r = members.record(m);
                r.kv = self.held_summary(m.name());
                r
            })
            .collect()
    }

    fn record(&self, arg: &RecordArg) -> MemberRecord {
        match arg {
            RecordArg::Held {
                index,
                inc,
                state,
                kv,
            } => {
                let members = self.node.members();
                let m = members
                    .iter()
                    .nth(usize::from(*index) % members.len())
                    .expect("the table holds this node at least");
                let mut r = members.record(m);
                r.incarnation = shift_u64(r.incarnation, *inc);
                if let Some(state) = state {
                    r.state = state.get();
                }
                if *kv {
                    r.kv = self.held_summary(m.name());
                }
                r
            }
            RecordArg::New {
                profile,
                inc,
                state,
                health,
                kv,
            } => {
                let profile = self.profile(profile);
                let incarnation = self.inc(*inc, &profile.name);
                let kv = kv
                    .as_ref()
                    .map(|s| self.summary(s, &profile.name))
                    .unwrap_or_default();
                let signer = signer_for(&profile.name);
                MemberRecord {
                    state: state.get(),
                    kv,
                    ..signer.record(self.cluster, profile, incarnation, *health)
                }
            }
        }
    }

    fn map(&self, arg: &MapArg) -> KvMapRecord {
        match arg {
            MapArg::Held(who) => {
                let node: Name = who.name().into();
                match self.node.kv(&node) {
                    Some(m) => m.record(&node),
                    None => owner_signed(self.cluster, node, 1, Vec::new()),
                }
            }
            MapArg::New {
                node,
                epoch,
                entries,
            } => {
                let node = name(node);
                let epoch = self.num(*epoch, &node, true);
                let entries = entries
                    .iter()
                    .map(|e| KvEntry {
                        key: key(&e.key),
                        version: self.num(e.version, &node, false),
                        value: e.value.as_ref().map(value),
                        sig: wire::Signature::UNSIGNED,
                    })
                    .collect();
                owner_signed(self.cluster, node, epoch, entries)
            }
        }
    }

    fn message(&self, arg: &MsgArg) -> Message {
        match arg {
            MsgArg::Ping { seq, target } => Message::Ping {
                seq: self.seq(*seq),
                target: name(target),
            },
            MsgArg::Ack { seq } => Message::Ack {
                seq: self.seq(*seq),
            },
            MsgArg::PingReq {
                seq,
                target,
                target_addr,
            } => Message::PingReq {
                seq: self.seq(*seq),
                target: name(target),
                target_addr: target_addr.get(),
            },
            MsgArg::Nack { seq } => Message::Nack {
                seq: self.seq(*seq),
            },
            MsgArg::Alive {
                profile,
                inc,
                health,
            } => {
                let profile = self.profile(profile);
                let incarnation = self.inc(*inc, &profile.name);
                signer_for(&profile.name).alive(self.cluster, profile, incarnation, *health)
            }
            MsgArg::Suspect { name: n, inc, from } => {
                let n = name(n);
                Message::Suspect {
                    incarnation: self.inc(*inc, &n),
                    name: n,
                    from: name(from),
                }
            }
            MsgArg::Dead { name: n, inc, from } => {
                let n = name(n);
                Message::Dead {
                    incarnation: self.inc(*inc, &n),
                    name: n,
                    from: name(from),
                }
            }
            MsgArg::Leave { name: n, inc } => {
                let n = name(n);
                let incarnation = self.inc(*inc, &n);
                let statement = wire::signed::leave_statement(self.cluster, &n, incarnation);
                Message::Leave {
                    sig: Some(signer_for(&n).sign(&statement)),
                    incarnation,
                    name: n,
                }
            }
            MsgArg::Join { members } => Message::Join {
                members: members.iter().map(|r| self.record(r)).collect(),
            },
            MsgArg::PushPull {
                phase,
                digest,
                members,
            } => Message::PushPull {
                phase: match phase {
                    PhaseArg::Offer => SyncPhase::Offer,
                    PhaseArg::Reply => SyncPhase::Reply,
                    PhaseArg::Final => SyncPhase::Final,
                    PhaseArg::JoinReply => SyncPhase::JoinReply,
                },
                digest: digest.unwrap_or_else(|| self.node.sync_digest()),
                members: members.iter().map(|r| self.record(r)).collect(),
            },
            MsgArg::KvUpdate {
                node,
                epoch,
                version,
                key: k,
                change,
            } => {
                let node = name(node);
                let (key, change) = match change {
                    ChangeArg::Set(v) => (key(k), KvChange::Set(value(v))),
                    ChangeArg::Delete => (key(k), KvChange::Delete),
                    ChangeArg::Large => (key(k), KvChange::Large),
                    ChangeArg::Epoch => (String::new(), KvChange::Epoch),
                };
                let (epoch, version) = (
                    self.num(*epoch, &node, true),
                    self.num(*version, &node, false),
                );
                signer_for(&node).kv_update(self.cluster, &node, epoch, version, &key, change)
            }
            MsgArg::KvPull { nodes } => Message::KvPull {
                nodes: nodes.iter().map(name).collect(),
            },
            MsgArg::KvPush { maps } => Message::KvPush {
                maps: maps.iter().map(|m| self.map(m)).collect(),
            },
        }
    }

    fn command(&self, arg: &CommandArg) -> Command {
        match arg {
            CommandArg::Join { seeds } => Command::Join {
                seeds: seeds.iter().map(|a| a.get()).collect(),
            },
            CommandArg::Leave => Command::Leave,
            CommandArg::SetTags(pairs) => Command::SetTags(tags(pairs)),
            CommandArg::ForceLeave(n) => Command::ForceLeave { name: name(n) },
            CommandArg::SetKv { key: k, value: v } => Command::SetKv {
                key: key(k),
                value: v.as_ref().map(value),
            },
        }
    }
}

// ----- the harness ------------------------------------------------------------------

/// One transmission of the node, decoded.
#[derive(Debug, Clone)]
struct Sent {
    to: SocketAddr,
    channel: Channel,
    msgs: Vec<Message>,
}

/// What the node was fed in one step, as the node's own decoder reads it.
#[derive(Debug, Default, Clone, Copy)]
struct Fed {
    /// Messages, plus the records, maps and names they carry (and a command's seeds).
    items: usize,
    /// Ping-reqs and suspicion or death notices (messages and table records).
    requests: usize,
}

struct Harness {
    node: Node,
    now: Time,
    cluster: ClusterId,
    recent: VecDeque<Sent>,
    seqs: VecDeque<u32>,
    /// Names announced to the node (alive messages and table records), initial peers and
    /// this node included: the only names its table may hold.
    announced: BTreeSet<Name>,
    /// Ping-reqs and suspicion/death notices fed so far.
    requests: usize,
    incarnation: u64,
    leave_asked: bool,
    leave_completed: bool,
}

fn datagram(msgs: &[Message]) -> Vec<u8> {
    let mut d = DatagramBuilder::new(wire::MAX_DATAGRAM_LEN);
    for m in msgs {
        // A message that does not encode or fit is left out, as a sender would.
        let _ = d.push(m);
    }
    d.finish()
}

impl Harness {
    fn new(preset: Preset, proven: bool) -> Harness {
        let config = match preset {
            Preset::Lan => SwimConfig::lan(),
            Preset::Wan => SwimConfig::wan(),
            Preset::Local => SwimConfig::local(),
        };
        let profile = Profile {
            name: ME.into(),
            addr: host(1),
            region: "eu".into(),
            zone: "eu-1".into(),
            tags: Tags::new(),
        };
        let options = NodeOptions {
            config,
            profile,
            cluster: CLUSTER.into(),
            incarnation: 0,
            signer: Arc::new(signer_for(ME)),
            verifier: Verifier::new(),
            seed: 1,
            kv_epoch: 1,
            proven,
        };
        let node = Node::new(options, Time::ZERO).expect("the presets are valid");
        let mut announced: BTreeSet<Name> = PEERS.iter().map(|p| Name::from(*p)).collect();
        announced.insert(ME.into());
        let mut h = Harness {
            node,
            now: Time::from_nanos(1_000_000),
            cluster: ClusterId::from_name(CLUSTER),
            recent: VecDeque::new(),
            seqs: VecDeque::new(),
            announced,
            requests: 0,
            incarnation: 0,
            leave_asked: false,
            leave_completed: false,
        };
        h.set_up();
        h
    }

    /// Joins through `a`, whose table lists the other peers, then gives the cluster some
    /// news and state: `e` restarted, `c` suspected, `d` failed, a map each for `me`,
    /// `a` and `b`.
    fn set_up(&mut self) {
        let cluster = self.cluster;
        let record = |name: &str, i: u8, incarnation: u64| {
            let profile = Profile {
                name: name.into(),
                addr: host(i),
                region: if i % 2 == 0 { "eu" } else { "us" }.into(),
                zone: "z1".into(),
                tags: Tags::new(),
            };
            signer_for(name).record(cluster, profile, incarnation, 0)
        };
        let now = self.now;
        self.node
            .handle_command(now, Command::Join { seeds: vec![host(2)] })
            .expect("a join with a seed is accepted");
        let members = PEERS
            .iter()
            .enumerate()
            .map(|(i, p)| record(p, 2 + i as u8, 0))
            .collect();
        let reply = Message::PushPull {
            phase: SyncPhase::JoinReply,
            digest: 0,
            members,
        };
        let bytes = wire::encode_stream(&reply, self.cluster).expect("the join reply encodes");
        self.node.handle_stream(now, host(2), &bytes);
        for (key, value) in [("svc/web", "passing"), ("role", "db")] {
            self.node
                .handle_command(
                    now,
                    Command::SetKv {
                        key: key.into(),
                        value: Some(value.into()),
                    },
                )
                .expect("a small write is accepted");
        }
        let news = [
            signer_for("e").alive(cluster, record("e", 6, 1).profile, 1, 0),
            signer_for("a").kv_update(cluster, "a", 1, 2, "color", KvChange::Set("blue".into())),
            // News of a value of b's too large to gossip: the node pulls b's map from b,
            // whose push (below) answers that pull.
            signer_for("b").kv_update(cluster, "b", 5, 7, "k2", KvChange::Large),
            Message::Suspect {
                name: "c".into(),
                incarnation: 0,
                from: "a".into(),
            },
            Message::Dead {
                name: "d".into(),
                incarnation: 0,
                from: "b".into(),
            },
        ];
        self.node.handle_datagram(now, host(2), &datagram(&news));
        let entries = vec![
            KvEntry {
                key: "k1".into(),
                version: 6,
                value: Some("x".into()),
                sig: wire::Signature::UNSIGNED,
            },
            KvEntry {
                key: "k2".into(),
                version: 7,
                value: None,
                sig: wire::Signature::UNSIGNED,
            },
        ];
        let map = owner_signed(cluster, "b".into(), 5, entries);
        let push = Message::KvPush { maps: vec![map] };
        let bytes = wire::encode_stream(&push, self.cluster).expect("the push encodes");
        self.node.handle_stream(now, host(3), &bytes);
        self.drain(Fed::default(), self.node.members().len());
        let state = |n: &str| self.node.member(n).map(|m| m.state);
        assert_eq!(self.node.members().len(), 1 + PEERS.len(), "set-up: the table");
        assert_eq!(state("c"), Some(MemberState::Suspect), "set-up: c");
        assert_eq!(state("d"), Some(MemberState::Dead), "set-up: d");
        for n in [ME, "a", "b"] {
            assert!(self.node.kv(n).is_some(), "set-up: the map of {n}");
        }
    }

    /// What the node's decoder makes of `bytes`, counted; records announced names.
    fn note_fed(&mut self, msgs: &[Message]) -> Fed {
        let mut fed = Fed::default();
        for m in msgs {
            fed.items += 1;
            match m {
                Message::Alive { profile, .. } => {
                    self.announced.insert(profile.name.clone());
                }
                Message::PingReq { .. } | Message::Suspect { .. } | Message::Dead { .. } => {
                    fed.requests += 1;
                }
                Message::Join { members } | Message::PushPull { members, .. } => {
                    fed.items += members.len();
                    for r in members {
                        self.announced.insert(r.profile.name.clone());
                        if matches!(r.state, MemberState::Suspect | MemberState::Dead) {
                            fed.requests += 1;
                        }
                    }
                }
                Message::KvPull { nodes } => fed.items += nodes.len(),
                Message::KvPush { maps } => fed.items += maps.len(),
                _ => {}
            }
        }
        self.requests += fed.requests;
        fed
    }

    fn feed_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let msgs: Vec<Message> = wire::decode_datagram(bytes)
            .map(|ms| ms.into_iter().map(|(m, _)| m).collect())
            .unwrap_or_default();
        let fed = self.note_fed(&msgs);
        let before = self.node.members().len();
        self.node.handle_datagram(self.now, from, bytes);
        self.drain(fed, before);
    }

    fn feed_stream(&mut self, from: SocketAddr, bytes: &[u8]) {
        let msgs: Vec<Message> = wire::decode_stream(bytes, self.cluster).into_iter().collect();
        let fed = self.note_fed(&msgs);
        let before = self.node.members().len();
        self.node.handle_stream(self.now, from, bytes);
        self.drain(fed, before);
    }

    fn send(&mut self, from: SocketAddr, channel: Channel, msgs: &[Message]) {
        match channel {
            Channel::Datagram => self.feed_datagram(from, &datagram(msgs)),
            Channel::Stream => {
                for m in msgs {
                    // A stream message over the size limit is not sent at all.
                    if let Ok(bytes) = wire::encode_stream(m, self.cluster) {
                        self.feed_stream(from, &bytes);
                    }
                }
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Datagram { from, msgs } => {
                let msgs: Vec<Message> = msgs.iter().map(|m| self.message(m)).collect();
                self.send(from.get(), Channel::Datagram, &msgs);
            }
            Op::Stream { from, msg } => {
                let msg = self.message(msg);
                self.send(from.get(), Channel::Stream, &[msg]);
            }
            Op::RawDatagram {
                from,
                header,
                bytes,
            } => {
                let mut d = Vec::with_capacity(bytes.len() + 1);
                if *header {
                    d.push(wire::PROTOCOL_VERSION);
                }
                d.extend_from_slice(bytes);
                self.feed_datagram(from.get(), &d);
            }
            Op::RawStream {
                from,
                header,
                bytes,
            } => {
                let mut s = Vec::with_capacity(bytes.len() + wire::STREAM_HEADER_LEN);
                if *header {
                    s.push(wire::PROTOCOL_VERSION);
                    s.extend_from_slice(&self.cluster.0.to_le_bytes());
                }
                s.extend_from_slice(bytes);
                self.feed_stream(from.get(), &s);
            }
            Op::Answer { index, nack } => self.answer(*index, *nack),
            Op::Advance { millis } => {
                let limit = self.now + Duration::from_millis(u64::from(*millis) % (MAX_ADVANCE_MS + 1));
                let mut steps = 0;
                while let Some(at) = self.node.poll_timeout().filter(|at| *at <= limit) {
                    steps += 1;
                    assert!(
                        steps < MAX_TIMER_STEPS,
                        "{steps} timer deadlines within {millis} ms"
                    );
                    self.now = self.now.max(at);
                    let before = self.node.members().len();
                    self.node.handle_timeout(self.now);
                    self.drain(Fed::default(), before);
                }
                self.now = limit;
            }
            Op::Leap { secs } => {
                self.now = self.now + Duration::from_secs(u64::from(*secs));
                let before = self.node.members().len();
                self.node.handle_timeout(self.now);
                self.drain(Fed::default(), before);
            }
            Op::Command(arg) => {
                let command = self.command(arg);
                let seeds = match &command {
                    Command::Join { seeds } => seeds.len(),
                    _ => 0,
                };
                let is_leave = command == Command::Leave;
                let digest = self.node.sync_digest();
                let queued = self.node.queued_updates();
                let before = self.node.members().len();
                let result = self.node.handle_command(self.now, command);
                match result {
                    Ok(()) => {
                        if is_leave {
                            self.leave_asked = true;
                        }
                        self.drain(
                            Fed {
                                items: 1 + seeds,
                                requests: 0,
                            },
                            before,
                        );
                    }
                    Err(e) => {
                        assert!(self.node.poll_transmit().is_none(), "refused ({e}) but sent");
                        assert!(self.node.poll_event().is_none(), "refused ({e}) but emitted");
                        assert_eq!(self.node.sync_digest(), digest, "refused ({e}) but changed");
                        assert_eq!(self.node.queued_updates(), queued, "refused ({e}) but queued");
                        assert_eq!(self.node.incarnation(), self.incarnation, "refused ({e})");
                        self.check_state();
                    }
                }
            }
        }
    }

    /// Answers one of the node's recent transmissions as a healthy peer at its
    /// destination would.
    fn answer(&mut self, index: u8, nack: bool) {
        if self.recent.is_empty() {
            return;
        }
        let sent = self.recent[usize::from(index) % self.recent.len()].clone();
        let mut datagrams = Vec::new();
        let mut streams = Vec::new();
        for m in &sent.msgs {
            match m {
                Message::Ping { seq, .. } => {
                    let ack = Message::Ack { seq: *seq };
                    match sent.channel {
                        Channel::Datagram => datagrams.push(ack),
                        Channel::Stream => streams.push(ack),
                    }
                }
                Message::PingReq { seq, .. } if nack => datagrams.push(Message::Nack { seq: *seq }),
                Message::PingReq { seq, .. } => datagrams.push(Message::Ack { seq: *seq }),
                Message::PushPull {
                    phase: SyncPhase::Offer,
                    ..
                } => streams.push(Message::PushPull {
                    phase: SyncPhase::Reply,
                    digest: 0,
                    members: self.table(),
                }),
                Message::Join { .. } => streams.push(Message::PushPull {
                    phase: SyncPhase::JoinReply,
                    digest: 0,
                    members: self.table(),
                }),
                Message::KvPull { nodes } => streams.push(Message::KvPush {
                    maps: nodes
                        .iter()
                        .filter_map(|n| self.node.kv(n).map(|m| m.record(n)))
                        .collect(),
                }),
                _ => {}
            }
        }
        if !datagrams.is_empty() {
            self.send(sent.to, Channel::Datagram, &datagrams);
        }
        if !streams.is_empty() {
            self.send(sent.to, Channel::Stream, &streams);
        }
    }

    /// Takes every transmission and event, checking each, then checks the node's state
    /// and this step's output against the bounds in the module doc.
    fn drain(&mut self, fed: Fed, members_before: usize) {
        let budget = self.node.config().datagram_budget;
        let mut transmits = 0usize;
        while let Some(t) = self.node.poll_transmit() {
            assert!(!self.leave_completed, "sent after its leave completed: {t:?}");
            transmits += 1;
            let msgs: Vec<Message> = match t.channel {
                Channel::Datagram => {
                    assert!(
                        t.payload.len() <= budget,
                        "a datagram of {} bytes, over the budget of {budget}",
                        t.payload.len()
                    );
                    wire::decode_datagram(&t.payload)
                        .unwrap_or_else(|e| panic!("its own datagram does not decode: {e}"))
                        .into_iter()
                        .map(|(m, _)| m)
                        .collect()
                }
                Channel::Stream => vec![wire::decode_stream(&t.payload, self.cluster)
                    .unwrap_or_else(|e| panic!("its own stream does not decode: {e}"))],
            };
            for m in &msgs {
                if let Message::Ping { seq, .. } | Message::PingReq { seq, .. } = m {
                    if self.seqs.len() == RECENT {
                        self.seqs.pop_front();
                    }
                    self.seqs.push_back(*seq);
                }
            }
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(Sent {
                to: t.to,
                channel: t.channel,
                msgs,
            });
        }
        let mut events = 0usize;
        while let Some(e) = self.node.poll_event() {
            assert!(!self.leave_completed, "an event after its leave completed: {e:?}");
            events += 1;
            match &e {
                Event::LeaveCompleted => {
                    assert!(self.leave_asked, "left without being told to");
                    self.leave_completed = true;
                }
                Event::MemberSuspected(m) | Event::MemberFailed(m) | Event::MemberReaped(m)
                    if m.name == ME =>
                {
                    panic!("an event that it failed itself: {e:?}")
                }
                Event::MemberLeft(m) | Event::MemberJoined(m) if m.name == ME => {
                    panic!("an event about its own membership: {e:?}")
                }
                _ => {}
            }
        }
        let members = members_before.max(self.node.members().len());
        let most_sent = 4 * fed.items + 16 * members + 2 * self.requests + 16;
        assert!(
            transmits <= most_sent,
            "{transmits} transmissions in one step (at most {most_sent}: {fed:?}, {members} members)"
        );
        let most_events = 4 * fed.items + 4 * members + 16;
        assert!(
            events <= most_events,
            "{events} events in one step (at most {most_events}: {fed:?}, {members} members)"
        );
        self.check_state();
    }

    fn check_state(&mut self) {
        let node = &self.node;
        let incarnation = node.incarnation();
        assert!(
            incarnation >= self.incarnation,
            "its incarnation went down from {} to {incarnation}",
            self.incarnation
        );
        self.incarnation = incarnation;
        let me = node.member(ME).expect("it always holds itself");
        if self.leave_asked {
            assert_eq!(me.state, MemberState::Left, "leaving, it holds itself {:?}", me.state);
        } else {
            assert_eq!(me.state, MemberState::Alive, "not told to leave, it holds itself {:?}", me.state);
            assert!(!node.has_left(), "left without being told to");
        }
        assert_eq!(node.has_left(), self.leave_completed, "has_left disagrees with its events");
        if node.has_left() {
            assert!(node.poll_timeout().is_none(), "a timer after leaving");
        }
        let table = node.members();
        assert!(
            table.len() <= self.announced.len(),
            "{} members from {} names announced",
            table.len(),
            self.announced.len()
        );
        for m in table.iter() {
            assert!(self.announced.contains(m.name()), "a member nobody announced: {:?}", m.name());
        }
        for (n, _) in node.kv_maps() {
            assert!(node.member(n).is_some(), "a replicated map of {n:?}, not a member");
        }
        let most = 2 * node.config().max_queued_updates;
        assert!(
            node.queued_updates() <= most,
            "{} updates queued, over {most}",
            node.queued_updates()
        );
    }
}

fuzz_target!(|input: Input| {
    let mut h = Harness::new(input.preset, input.proven);
    for op in &input.ops {
        h.apply(op);
    }
});
