//! [`Status`]: a member's status as the API, the event stream and the metrics name it.

use serde::Serialize;

use crate::wire::MemberState;

/// A member's status as the API names it (`Dead` is `failed`, as operators say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answering probes.
    Alive,
    /// Missed probes; may yet refute.
    Suspect,
    /// Declared dead by the failure detector.
    Failed,
    /// Left gracefully (or was force-left).
    Left,
}

impl Status {
    /// Every status, in the order counts are shown.
    pub const ALL: [Status; 4] = [Status::Alive, Status::Suspect, Status::Failed, Status::Left];

    /// The API status of a protocol state.
    pub fn of(state: MemberState) -> Status {
        match state {
            MemberState::Alive => Status::Alive,
            MemberState::Suspect => Status::Suspect,
            MemberState::Dead => Status::Failed,
            MemberState::Left => Status::Left,
        }
    }

    /// Parses the API name (`alive`, `suspect`, `failed`, `left`).
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Failed => "failed",
            Status::Left => "left",
        }
    }
}
