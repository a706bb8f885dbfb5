//! The agent's data dir: what a restart needs to come back as the same node, in one small
//! TOML file, [`STATE_FILE`] ([`SavedState`]: the node name, the last incarnation it
//! announced, and the addresses of the members it knew).
//!
//! On start the agent announces the next incarnation, so records of its past life cannot
//! out-bid it, and joins through a random sample of the saved members (see
//! [`join_seeds`]) as well as its seeds, so it rejoins even when the seeds are gone
//! (Serf's snapshot and rejoin).
//!
//! Invariants: writes are atomic (a temporary file in the same directory, fsynced, then
//! renamed over the old one, then the directory fsynced), so a crash mid-write leaves the
//! old file or the new one, never a torn one. A missing file means a first start; a file
//! that cannot be read or parsed is an error naming it, never a silent fresh start.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::Members;
use crate::proto::rng::{self, NodeRng};
use crate::wire::MemberState;

/// The state file's name inside the data dir.
pub const STATE_FILE: &str = "state.toml";

/// The temporary file a write goes through before it is renamed over [`STATE_FILE`].
const TEMP_FILE: &str = "state.toml.tmp";

/// How many remembered members a restart joins through besides the configured seeds.
pub const REMEMBERED_WITH_SEEDS: usize = 3;

/// How many remembered members a restart joins through when no seeds are configured.
pub const REMEMBERED_WITHOUT_SEEDS: usize = 5;

/// The join seeds of a restart: the configured `seeds`, plus a random sample of the
/// `remembered` members ([`REMEMBERED_WITH_SEEDS`] of them, or
/// [`REMEMBERED_WITHOUT_SEEDS`] when there are no seeds), without duplicates. A sample,
/// not all of them: every seed gets a full-state join (and the driver re-contacts its
/// seeds), so joining through every remembered member would cost O(N²) bytes per restart.
pub fn join_seeds(
    seeds: &[SocketAddr],
    remembered: &[SocketAddr],
    rng: &mut NodeRng,
) -> Vec<SocketAddr> {
    let limit = if seeds.is_empty() {
        REMEMBERED_WITHOUT_SEEDS
    } else {
        REMEMBERED_WITH_SEEDS
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(seeds.len() + limit);
    for addr in seeds {
        if !out.contains(addr) {
            out.push(*addr);
        }
    }
    let mut pool: Vec<SocketAddr> = Vec::new();
    for addr in remembered {
        if !out.contains(addr) && !pool.contains(addr) {
            pool.push(*addr);
        }
    }
    rng::shuffle(rng, &mut pool);
    pool.truncate(limit);
    out.extend(pool);
    out
}

/// Why the data dir could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The state file exists but could not be read.
    #[error("cannot read state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not a valid [`SavedState`].
    #[error("state file {path} is corrupt ({reason}); move it away to start as a new node")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state could not be written.
    #[error("cannot write state file {path}: {source}")]
    Write {
        /// The file (or the directory).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data dir holds another node's state.
    #[error("state file {path} belongs to node {found:?}, not {expected:?}; use another data dir")]
    OtherNode {
        /// The file.
        path: PathBuf,
        /// The name in the file.
        found: String,
        /// This node's name.
        expected: String,
    },
}

/// What a restart needs. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// The node's name.
    pub name: String,
    /// The highest incarnation the node has announced.
    pub incarnation: u64,
    /// Listening addresses of the other members that did not leave, sorted: live ones,
    /// and failed ones too (they may be back by the time this node restarts, and after a
    /// partition they may be all it knows).
    pub members: Vec<SocketAddr>,
}

impl SavedState {
    /// The state of node `name` in a membership snapshot: its own incarnation (0 if the
    /// snapshot lacks it) and the addresses of the other members that did not leave.
    pub fn of(name: &str, members: &Members) -> SavedState {
        let incarnation = members
            .iter()
            .find(|m| m.name == name)
            .map_or(0, |m| m.incarnation);
        let mut addrs: Vec<SocketAddr> = members
            .iter()
            .filter(|m| m.name != name && m.state != MemberState::Left)
            .map(|m| m.addr)
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        SavedState {
            name: name.to_owned(),
            incarnation,
            members: addrs,
        }
    }

    /// The state to save just before a graceful leave, one incarnation above the last
    /// announced. Since protocol v4 a leave keeps its incarnation (docs/protocol.md
    /// §10.6); the margin stays so a restart is above the leave of an agent of v3,
    /// which raised it.
    pub fn leaving(mut self) -> SavedState {
        self.incarnation = self.incarnation.saturating_add(1);
        self
    }

    /// The incarnation a restart starts at: above every one announced before.
    pub fn next_incarnation(&self) -> u64 {
        self.incarnation.saturating_add(1)
    }
}

/// An agent's data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    dir: PathBuf,
}

impl DataDir {
    /// The data dir at `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> DataDir {
        DataDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state of node `name`: `None` on a first start (no file), an error if the
    /// file cannot be read or parsed or belongs to another node.
    pub fn load(&self, name: &str) -> Result<Option<SavedState>, DataDirError> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DataDirError::Read { path, source }),
        };
        let state: SavedState = toml::from_str(&text).map_err(|e| DataDirError::Corrupt {
            path: path.clone(),
            reason: e.message().trim().replace('\n', " "),
        })?;
        if state.name != name {
            return Err(DataDirError::OtherNode {
                path,
                found: state.name,
                expected: name.to_owned(),
            });
        }
        Ok(Some(state))
    }

    /// Writes `state` atomically (see the module docs), creating the directory if needed.
    pub fn save(&self, state: &SavedState) -> Result<(), DataDirError> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| DataDirError::Write { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(write_err(&self.dir))?;
        let text = toml::to_string(state).expect("a saved state always has a TOML form");
        let temp = self.dir.join(TEMP_FILE);
        let mut file = std::fs::File::create(&temp).map_err(write_err(&temp))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_err(&temp))?;
        drop(file);
        let path = self.state_path();
        std::fs::rename(&temp, &path).map_err(write_err(&path))?;
        // Make the rename itself durable.
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(write_err(&self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn addrs(ports: std::ops::Range<u16>) -> Vec<SocketAddr> {
        ports
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect()
    }

    #[test]
    fn a_restart_joins_through_the_seeds_and_a_sample_of_the_remembered() {
        let seeds = addrs(1..3);
        let remembered = addrs(1..101);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut r = rng::node_rng(seed);
            let join = join_seeds(&seeds, &remembered, &mut r);
            assert_eq!(join.len(), seeds.len() + REMEMBERED_WITH_SEEDS, "{join:?}");
            assert_eq!(&join[..2], &seeds[..]);
            let mut unique = join.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), join.len(), "no duplicates: {join:?}");
            assert!(join.iter().all(|a| remembered.contains(a)));
            seen.extend(join[2..].iter().copied());
        }
        assert!(seen.len() > REMEMBERED_WITH_SEEDS, "random: {seen:?}");
    }

    #[test]
    fn without_seeds_a_restart_joins_through_at_most_five_remembered() {
        let mut r = rng::node_rng(7);
        let remembered = addrs(1..51);
        let join = join_seeds(&[], &remembered, &mut r);
        assert_eq!(join.len(), REMEMBERED_WITHOUT_SEEDS);
        assert!(join.iter().all(|a| remembered.contains(a)));
        let few = addrs(1..3);
        let mut join = join_seeds(&[], &few, &mut r);
        join.sort();
        assert_eq!(join, few);
        assert!(join_seeds(&[], &[], &mut r).is_empty());
        let seeds = addrs(1..2);
        assert_eq!(join_seeds(&seeds, &seeds, &mut r), seeds);
    }
    use crate::proto::{MemberInfo, Time};
    use crate::wire::Tags;

    fn state(incarnation: u64) -> SavedState {
        SavedState {
            name: "a".into(),
            incarnation,
            members: vec!["127.0.0.1:7001".parse().unwrap()],
        }
    }

    #[test]
    fn a_missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            DataDir::new(dir.path().join("new")).load("a").unwrap(),
            None
        );
    }

    #[test]
    fn saves_replace_the_file_atomically_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("sub"));
        data.save(&state(1)).unwrap();
        assert_eq!(data.load("a").unwrap(), Some(state(1)));
        // A crash mid-write leaves a torn temporary behind: the next start ignores it
        // and the next save replaces it.
        std::fs::write(dir.path().join("sub").join(TEMP_FILE), "name = \"a\"\ninc").unwrap();
        assert_eq!(data.load("a").unwrap(), Some(state(1)));
        data.save(&state(7)).unwrap();
        assert_eq!(data.load("a").unwrap(), Some(state(7)));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [STATE_FILE]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        std::fs::write(data.state_path(), "name = \"a\"\nincarnation = \"x\"\n").unwrap();
        let err = data.load("a").unwrap_err();
        assert!(matches!(err, DataDirError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(STATE_FILE), "{err}");
        std::fs::write(data.state_path(), [0xff, 0xfe, 0x00]).unwrap();
        let err = data.load("a").unwrap_err();
        assert!(err.to_string().contains(STATE_FILE), "{err}");
    }

    #[test]
    fn another_nodes_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        data.save(&state(1)).unwrap();
        let err = data.load("b").unwrap_err();
        assert!(matches!(err, DataDirError::OtherNode { .. }), "{err:?}");
    }

    #[test]
    fn the_state_of_a_snapshot_has_our_incarnation_and_the_others_that_did_not_leave() {
        let member = |name: &str, port: u16, incarnation, state| MemberInfo {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation,
            state,
            region: "".into(),
            zone: "".into(),
            tags: Tags::new(),
            state_changed: Time::ZERO,
            rtt: None,
            key: crate::wire::NodeKey([0; 32]),
        };
        let members = Arc::new(vec![
            member("a", 1, 4, MemberState::Alive),
            member("b", 2, 9, MemberState::Suspect),
            member("c", 3, 1, MemberState::Dead),
            member("d", 4, 1, MemberState::Left),
        ]);
        let saved = SavedState::of("a", &members);
        assert_eq!(saved.incarnation, 4);
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(saved.members, [addr(2), addr(3)]);
        assert_eq!(saved.clone().leaving().incarnation, 5);
        assert_eq!(saved.leaving().next_incarnation(), 6);
    }
}
