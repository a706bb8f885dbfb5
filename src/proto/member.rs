//! The member table: one compact record per known member, the local node included.
//!
//! Records live in a `Vec` whose order is the probe order (reshuffled every round, new
//! members inserted at a random place, as memberlist does); a `hashbrown::HashTable` of
//! indices finds a record by name without storing the name twice. Region and zone names
//! are interned, tags are boxed only when present, so a record costs about 100 bytes and a
//! simulator can hold 10,000 tables of 10,000 members.
//!
//! Invariants: names are unique; `digest` always equals the wrapping sum of
//! `entry_hash(name, incarnation, state)` over all records; `counts` match the states.

use std::net::SocketAddr;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

use crate::proto::rng::{self, NodeRng};
use crate::proto::time::Time;
use crate::stable_hash::StableHasher;
use std::sync::Arc;

use crate::wire::{MemberRecord, MemberState, Name, NodeKey, Profile, Signature, Tags};

/// One member as the local node knows it.
#[derive(Debug, Clone)]
pub struct Member {
    name: Name,
    addr: SocketAddr,
    incarnation: u64,
    state: MemberState,
    region: u32,
    zone: u32,
    tags: Option<Box<Tags>>,
    state_changed: Time,
    /// Smoothed round-trip time in microseconds; 0 while unmeasured.
    srtt_micros: u32,
    /// Round-trip time variation in microseconds (TCP's RTTVAR).
    rttvar_micros: u32,
    /// The health score the member last announced about itself.
    health: u8,
    /// This node has sent to the member at its current address, so the transport
    /// likely holds a connection to it: gossip prefers such members (a first contact
    /// costs a TLS handshake).
    contacted: bool,
    /// The member's key and signatures behind this record (shared, not copied, when
    /// many nodes of one process hold the same record: see `Proof`).
    proof: Arc<Proof>,
}

/// What a member signed about the record held of it: the key its name is bound to,
/// its signature of its `Alive` at the held incarnation (with the held profile and
/// health), and its signature of its leave, if it left by itself. Relayed in tables as
/// the member made them (docs/protocol.md §17).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proof {
    /// The member's node key.
    pub key: NodeKey,
    /// Its signature of its `Alive` at the held incarnation.
    pub sig: Signature,
    /// Its signature of its leave, when the record is `Left` by its own word.
    pub leave_sig: Option<Signature>,
}

impl Proof {
    /// The proof of an `Alive`: `key`'s signature `sig`, no leave.
    pub fn alive(key: NodeKey, sig: Signature) -> Proof {
        Proof {
            key,
            sig,
            leave_sig: None,
        }
    }
}

impl Member {
    /// Unique node name.
    pub fn name(&self) -> &Name {
        &self.name
    }
    /// Address of its endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Latest incarnation known.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
    /// Liveness as this node sees it.
    pub fn state(&self) -> MemberState {
        self.state
    }
    /// When `state` last changed.
    pub fn state_changed(&self) -> Time {
        self.state_changed
    }
    /// Smoothed direct-probe round-trip time, if measured.
    pub fn rtt(&self) -> Option<Duration> {
        (self.srtt_micros > 0).then(|| Duration::from_micros(u64::from(self.srtt_micros)))
    }
    /// Retransmission-style timeout from the RTT samples, `srtt + 4 × rttvar` (RFC 6298),
    /// if measured: it rises within one sample when a peer turns slow.
    pub fn rtt_timeout(&self) -> Option<Duration> {
        (self.srtt_micros > 0).then(|| {
            Duration::from_micros(u64::from(self.srtt_micros) + 4 * u64::from(self.rttvar_micros))
        })
    }

    /// Whether this node has sent to it at its current address.
    pub fn contacted(&self) -> bool {
        self.contacted
    }

    /// The Lifeguard health score it last announced (0 = healthy).
    pub fn health(&self) -> u8 {
        self.health
    }

    /// The member's key and signatures behind this record.
    pub fn proof(&self) -> &Arc<Proof> {
        &self.proof
    }

    /// The key the member's name is bound to.
    pub fn key(&self) -> NodeKey {
        self.proof.key
    }

    /// Its tags (empty when none).
    pub fn tags(&self) -> &Tags {
        static EMPTY: std::sync::OnceLock<Tags> = std::sync::OnceLock::new();
        self.tags
            .as_deref()
            .unwrap_or_else(|| EMPTY.get_or_init(Tags::new))
    }
}

/// An owned snapshot of one member, for events and readers outside the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Unique node name.
    pub name: Name,
    /// Address of its endpoint.
    pub addr: SocketAddr,
    /// Latest incarnation known.
    pub incarnation: u64,
    /// Liveness as this node sees it.
    pub state: MemberState,
    /// Region.
    pub region: Name,
    /// Zone.
    pub zone: Name,
    /// Tags.
    pub tags: Tags,
    /// When `state` last changed, on the driver's clock.
    pub state_changed: Time,
    /// Smoothed direct-probe round-trip time, if measured.
    pub rtt: Option<Duration>,
    /// The node key its name is bound to (docs/protocol.md §17).
    pub key: NodeKey,
}

/// One record's contribution to the membership digest: live records only, so a node
/// that never knew a failed member agrees with one that still holds its tombstone.
fn entry_hash(name: &str, incarnation: u64, state: MemberState) -> u64 {
    if !state.is_live() {
        return 0;
    }
    StableHasher::default()
        .write_str(name)
        .write_u64(incarnation)
        .write(&[state as u8])
        .finish()
}

/// The membership digest of a snapshot (see [`MemberTable::digest`]): what the table it
/// was taken from had as its digest at that moment.
pub fn digest_of(members: &[MemberInfo]) -> u64 {
    members.iter().fold(0u64, |digest, m| {
        digest.wrapping_add(entry_hash(&m.name, m.incarnation, m.state))
    })
}

/// All known members, in probe order.
#[derive(Debug)]
pub struct MemberTable {
    members: Vec<Member>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Interned region and zone names; index 0 is the empty name.
    places: Vec<Name>,
    digest: u64,
    counts: [usize; 4],
}

impl Default for MemberTable {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberTable {
    /// An empty table.
    pub fn new() -> Self {
        MemberTable {
            members: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            places: vec![Name::default()],
            digest: 0,
            counts: [0; 4],
        }
    }

    /// Number of records, tombstones included.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Records in a given state.
    pub fn count(&self, state: MemberState) -> usize {
        self.counts[state as usize]
    }

    /// Alive and suspect records (the local node included).
    pub fn live_count(&self) -> usize {
        self.count(MemberState::Alive) + self.count(MemberState::Suspect)
    }

    /// The membership digest: an order-independent stable hash (wrapping sum) over the
    /// (name, incarnation, state) of every live (alive or suspect) record. Two nodes that
    /// agree on who is live, at which incarnation, have the same digest; tombstones are
    /// left out because nodes that joined later legitimately never saw them.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// All records in probe order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// The record at a position.
    pub fn at(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Position of the record for `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        let members = &self.members;
        self.index
            .find(hash, |&i| members[i as usize].name == name)
            .map(|&i| i as usize)
    }

    /// The record for `name`.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.position(name).map(|i| &self.members[i])
    }

    /// Region name of a record.
    pub fn region(&self, m: &Member) -> &Name {
        &self.places[m.region as usize]
    }

    /// Zone name of a record.
    pub fn zone(&self, m: &Member) -> &Name {
        &self.places[m.zone as usize]
    }

    fn intern(&mut self, place: &str) -> u32 {
        if let Some(i) = self.places.iter().position(|p| p == place) {
            return i as u32;
        }
        self.places.push(Name::from(place));
        (self.places.len() - 1) as u32
    }

    /// Adds a member not yet in the table at a random place in the probe order;
    /// returns its position. The caller checks the name is new.
    pub fn insert(
        &mut self,
        profile: Profile,
        incarnation: u64,
        state: MemberState,
        proof: Arc<Proof>,
        now: Time,
        rng: &mut NodeRng,
    ) -> usize {
        debug_assert!(
            self.position(&profile.name).is_none(),
            "insert of a known name"
        );
        let region = self.intern(&profile.region);
        let zone = self.intern(&profile.zone);
        let member = Member {
            name: profile.name,
            addr: profile.addr,
            incarnation,
            state,
            region,
            zone,
            tags: (!profile.tags.is_empty()).then(|| Box::new(profile.tags)),
            state_changed: now,
            srtt_micros: 0,
            rttvar_micros: 0,
            health: 0,
            contacted: false,
            proof,
        };
        self.digest = self
            .digest
            .wrapping_add(entry_hash(&member.name, incarnation, state));
        self.counts[state as usize] += 1;
        let last = self.members.len();
        self.members.push(member);
        self.index_insert(last);
        let at = rng::below(rng, last + 1);
        self.swap(at, last);
        at
    }

    fn index_insert(&mut self, i: usize) {
        let hash = self.hasher.hash_one(self.members[i].name.as_str());
        let (members, hasher) = (&self.members, &self.hasher);
        self.index.insert_unique(hash, i as u32, |&j| {
            hasher.hash_one(members[j as usize].name.as_str())
        });
    }

    /// Rewrites the index slot of the record hashed `hash` that holds position `from`.
    fn index_move(&mut self, hash: u64, from: u32, to: u32) {
        if let Some(slot) = self.index.find_mut(hash, |&j| j == from) {
            *slot = to;
        }
    }

    /// Swaps two positions, keeping the index true. Slots are matched by hash and stored
    /// position (never by name through `members`, which is mid-update here); a sentinel
    /// keeps the two rewrites from matching each other's slot.
    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let ha = self.hasher.hash_one(self.members[a].name.as_str());
        let hb = self.hasher.hash_one(self.members[b].name.as_str());
        self.members.swap(a, b);
        self.index_move(ha, a as u32, u32::MAX);
        self.index_move(hb, b as u32, a as u32);
        self.index_move(ha, u32::MAX, b as u32);
    }

    /// Sets incarnation and state, keeping digest and counts true. `state_changed` moves
    /// only when the state does.
    pub fn set_liveness(&mut self, i: usize, incarnation: u64, state: MemberState, now: Time) {
        let m = &mut self.members[i];
        self.digest = self
            .digest
            .wrapping_sub(entry_hash(&m.name, m.incarnation, m.state))
            .wrapping_add(entry_hash(&m.name, incarnation, state));
        self.counts[m.state as usize] -= 1;
        self.counts[state as usize] += 1;
        if m.state != state {
            m.state_changed = now;
        }
        m.incarnation = incarnation;
        m.state = state;
    }

    /// Replaces address, region, zone and tags; returns whether anything changed.
    pub fn set_profile(&mut self, i: usize, profile: &Profile) -> bool {
        let region = self.intern(&profile.region);
        let zone = self.intern(&profile.zone);
        let m = &mut self.members[i];
        let changed = m.addr != profile.addr
            || m.region != region
            || m.zone != zone
            || m.tags() != &profile.tags;
        if m.addr != profile.addr {
            m.contacted = false;
        }
        if changed {
            m.addr = profile.addr;
            m.region = region;
            m.zone = zone;
            m.tags = (!profile.tags.is_empty()).then(|| Box::new(profile.tags.clone()));
        }
        changed
    }

    /// Replaces the key and signatures behind member `i`'s record.
    pub fn set_proof(&mut self, i: usize, proof: Arc<Proof>) {
        self.members[i].proof = proof;
    }

    /// Notes that this node has sent to member `i` at its current address.
    pub fn mark_contacted(&mut self, i: usize) {
        self.members[i].contacted = true;
    }

    /// Records the health score a member announced about itself.
    pub fn set_health(&mut self, i: usize, health: u8) {
        self.members[i].health = health;
    }

    /// Folds one RTT sample into the record's smoothed RTT and variation, as TCP does
    /// (RFC 6298: gains 1/8 and 1/4).
    pub fn record_rtt(&mut self, i: usize, sample: Duration) {
        let s = u64::try_from(sample.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, u64::from(u32::MAX / 8));
        let m = &mut self.members[i];
        if m.srtt_micros == 0 {
            m.srtt_micros = s as u32;
            m.rttvar_micros = (s / 2) as u32;
        } else {
            let srtt = u64::from(m.srtt_micros);
            m.rttvar_micros = ((u64::from(m.rttvar_micros) * 3 + srtt.abs_diff(s)) / 4) as u32;
            m.srtt_micros = ((srtt * 7 + s) / 8) as u32;
        }
    }

    /// Makes room for `additional` more records at once, so a large merge grows the
    /// table in one step instead of by repeated doubling (which strands freed blocks).
    pub fn reserve(&mut self, additional: usize) {
        self.members.reserve_exact(additional);
        let (members, hasher) = (&self.members, &self.hasher);
        self.index.reserve(additional, |&j| {
            hasher.hash_one(members[j as usize].name.as_str())
        });
    }

    /// Removes the record at `i` (the last record takes its place in probe order).
    pub fn remove(&mut self, i: usize) -> Member {
        let last = self.members.len() - 1;
        self.swap(i, last);
        let hash = self.hasher.hash_one(self.members[last].name.as_str());
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == last) {
            entry.remove();
        }
        let m = self
            .members
            .pop()
            .expect("table is not empty: `i` was a valid position");
        self.digest = self
            .digest
            .wrapping_sub(entry_hash(&m.name, m.incarnation, m.state));
        self.counts[m.state as usize] -= 1;
        m
    }

    /// Reshuffles the probe order.
    pub fn shuffle(&mut self, rng: &mut NodeRng) {
        rng::shuffle(rng, &mut self.members);
        self.index.clear();
        for i in 0..self.members.len() {
            self.index_insert(i);
        }
    }

    /// The profile of a record.
    pub fn profile(&self, m: &Member) -> Profile {
        Profile {
            name: m.name.clone(),
            addr: m.addr,
            region: self.region(m).clone(),
            zone: self.zone(m).clone(),
            tags: m.tags().clone(),
        }
    }

    /// A record as carried in push-pull, with an empty replicated-state summary (the
    /// node, which holds the maps, fills it in).
    pub fn record(&self, m: &Member) -> MemberRecord {
        MemberRecord {
            profile: self.profile(m),
            incarnation: m.incarnation,
            state: m.state,
            health: m.health,
            kv: crate::wire::KvSummary::default(),
            key: m.proof.key,
            sig: m.proof.sig,
            leave_sig: m.proof.leave_sig,
        }
    }

    /// An owned snapshot of a record.
    pub fn info(&self, m: &Member) -> MemberInfo {
        MemberInfo {
            name: m.name.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            state: m.state,
            region: self.region(m).clone(),
            zone: self.zone(m).clone(),
            tags: m.tags().clone(),
            state_changed: m.state_changed,
            rtt: m.rtt(),
            key: m.proof.key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rng::node_rng;

    fn test_proof() -> Arc<Proof> {
        Arc::new(Proof {
            key: NodeKey([1; 32]),
            sig: Signature([2; 64]),
            leave_sig: None,
        })
    }

    fn profile(name: &str) -> Profile {
        Profile {
            name: name.into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            region: "eu".into(),
            zone: "eu-1".into(),
            tags: Tags::new(),
        }
    }

    #[test]
    fn lookups_survive_insert_shuffle_and_remove() {
        let mut rng = node_rng(1);
        let mut t = MemberTable::new();
        for i in 0..200 {
            t.insert(
                profile(&format!("n{i}")),
                0,
                MemberState::Alive,
                test_proof(),
                Time::ZERO,
                &mut rng,
            );
        }
        t.shuffle(&mut rng);
        for i in (0..200).step_by(3) {
            let p = t.position(&format!("n{i}")).unwrap();
            t.remove(p);
        }
        for i in 0..200 {
            let found = t.get(&format!("n{i}")).map(|m| m.name().to_string());
            if i % 3 == 0 {
                assert_eq!(found, None);
            } else {
                assert_eq!(found, Some(format!("n{i}")));
            }
        }
        assert_eq!(t.len(), 133);
        assert_eq!(t.live_count(), 133);
    }

    #[test]
    fn digest_is_order_independent_and_tracks_changes() {
        let mut a = MemberTable::new();
        let mut b = MemberTable::new();
        let (mut ra, mut rb) = (node_rng(1), node_rng(2));
        for i in 0..50 {
            a.insert(
                profile(&format!("n{i}")),
                1,
                MemberState::Alive,
                test_proof(),
                Time::ZERO,
                &mut ra,
            );
        }
        for i in (0..50).rev() {
            b.insert(
                profile(&format!("n{i}")),
                1,
                MemberState::Alive,
                test_proof(),
                Time::ZERO,
                &mut rb,
            );
        }
        assert_eq!(a.digest(), b.digest());
        let i = a.position("n7").unwrap();
        a.set_liveness(i, 2, MemberState::Suspect, Time::ZERO);
        assert_ne!(a.digest(), b.digest());
        // Tombstones do not count: dead in one table, unknown in another, same digest.
        let before = b.digest();
        let k = b.position("n3").unwrap();
        b.set_liveness(k, 1, MemberState::Dead, Time::ZERO);
        let mut c = MemberTable::new();
        let mut rc = node_rng(3);
        for i in (0..50).filter(|i| *i != 3) {
            c.insert(
                profile(&format!("n{i}")),
                1,
                MemberState::Alive,
                test_proof(),
                Time::ZERO,
                &mut rc,
            );
        }
        assert_eq!(b.digest(), c.digest());
        let infos: Vec<MemberInfo> = b.iter().map(|m| b.info(m)).collect();
        assert_eq!(digest_of(&infos), b.digest());
        b.set_liveness(k, 1, MemberState::Alive, Time::ZERO);
        assert_eq!(b.digest(), before);
        let j = b.position("n7").unwrap();
        b.set_liveness(j, 2, MemberState::Suspect, Time::ZERO);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.count(MemberState::Suspect), 1);
        let removed = a.remove(a.position("n7").unwrap());
        assert_eq!(removed.name(), "n7");
        assert_eq!(a.count(MemberState::Suspect), 0);
    }

    #[test]
    fn a_record_stays_within_112_bytes() {
        // 10,000 nodes × 10,000 records must fit a 24 GiB machine: see docs/performance.md.
        // (96 bytes before node keys: the shared proof pointer and 64-bit incarnations
        // added 16; the proofs themselves are shared between simulated nodes.)
        assert!(
            std::mem::size_of::<Member>() <= 112,
            "{} bytes",
            std::mem::size_of::<Member>()
        );
    }

    #[test]
    fn a_proof_is_a_key_and_two_signatures() {
        // docs/performance.md counts it: 32 + 64 + 65 (an optional signature) bytes.
        assert_eq!(std::mem::size_of::<Proof>(), 161);
    }

    #[test]
    fn rtt_is_smoothed() {
        let mut rng = node_rng(1);
        let mut t = MemberTable::new();
        let i = t.insert(
            profile("a"),
            0,
            MemberState::Alive,
            test_proof(),
            Time::ZERO,
            &mut rng,
        );
        assert_eq!(t.at(i).rtt(), None);
        t.record_rtt(i, Duration::from_micros(800));
        t.record_rtt(i, Duration::from_micros(1600));
        assert_eq!(t.at(i).rtt(), Some(Duration::from_micros(900)));
        // rttvar: 400 → (3·400 + 800) / 4 = 500; timeout = 900 + 4·500.
        assert_eq!(t.at(i).rtt_timeout(), Some(Duration::from_micros(2900)));
    }
}
