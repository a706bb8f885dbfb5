//! The daemon: what `muster agent` is, above the library's parts. It owns the agent's
//! deployment config ([`settings::AgentConfig`]: TOML, defaults, validation), how file,
//! environment and flags merge ([`overrides`]), the data directory ([`data_dir`],
//! [`node_key`]), and [`run`], which wires a [`crate::Mesh`], the services, the HTTP
//! API, the DNS interface and the hooks together for one agent's life: start, serve,
//! leave on request.
//!
//! The binary only parses arguments and signals and calls [`run`]; tests and programs
//! that want a whole agent in process call it the same way.
//!
//! | file | holds |
//! |---|---|
//! | `settings` | [`settings::AgentConfig`], its defaults, validation (`settings/validate.rs`) and listen addresses, and how it becomes a [`crate::agent::MeshConfig`] |
//! | `overrides` | merging file < environment (`MUSTER_*`) < flags |
//! | `data_dir` | the state a restarted agent needs (name, last incarnation, member addresses), written atomically |
//! | `node_key` | the agent's Ed25519 node key in the data dir: generated on first start, mode 0600 |
//! | `run` | [`run`]: one agent from config to leave |
//! | `startup` | what is set up before joining: sockets, the API token, the node key |

pub mod data_dir;
pub mod node_key;
pub mod overrides;
mod run;
pub mod settings;
mod startup;

pub use run::{Listeners, RunError, SAVE_INTERVAL, Stop, leave_bound, random_seed, run};
