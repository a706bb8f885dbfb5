//! What happened to members, as this agent saw it, defined once for everything that
//! shows or acts on it: the HTTP API (`/v1/events`, `/v1/members`), the hooks and the
//! metrics.
//!
//! | file | holds |
//! |---|---|
//! | `journal` | [`Journal`]: membership events numbered in order, kept for resuming clients, offered live to every subscriber; [`EventRecord`] and [`EventKind`] |
//! | `view` | [`MemberView`] and the other JSON shapes of members and the cluster |
//! | `availability` | each member's availability over the last hour and day, fed by the journal |
//! | `status` | [`Status`]: `alive`, `suspect`, `failed`, `left` |

pub mod availability;
pub mod journal;
pub mod status;
pub mod view;

pub use journal::{EventDetail, EventKind, EventRecord, Journal};
pub use status::Status;
pub use view::{ClusterView, HealthView, MemberRow, MemberView, StatusCounts};
