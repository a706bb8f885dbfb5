//! Services, health checks, failover rules and region-aware routing: where to send a
//! request, on top of who is alive.
//!
//! | module | holds |
//! |---|---|
//! | [`rule`] | a service's failover rule: trigger, action, timeout, retry, failback |
//! | [`spec`] | what the config says of a service, [`spec::ServiceSpec`]: a `[[services]]` entry: name, port, weight, tags, its health checks, its rule |
//! | [`check`] | the health-check runner: http, tcp and exec checks, thresholds, per-service status |
//! | [`record`] | how an instance travels: a JSON record in its member's replicated state |
//! | [`catalog`] | the router's input, read off the membership and replicated state |
//! | [`primary`] | primary roles: one passing instance per `primary`-mode service, elected the same way everywhere |
//! | [`router`] | pure route answers from a catalog snapshot, failover rule states over time |
//! | [`services`] | the agent's services at run time: checks, publishing, the debounced router |
//!
//! The types here are shared by the config (`[[services]]`), the health-check runner,
//! the replicated service records and the route answers.

pub mod catalog;
pub mod check;
pub mod primary;
pub mod record;
pub mod router;
pub mod rule;
pub mod services;
pub mod spec;

use serde::{Deserialize, Serialize};

/// Health of one service instance, as its own agent's checks (or its operator) set it.
/// Travels with the member's replicated state, so every agent knows every instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every check passes: takes traffic.
    Passing,
    /// A check warns (HTTP 429, exit code 1): takes traffic only when the caller counts
    /// warning as healthy.
    Warning,
    /// A check fails: takes no traffic.
    Critical,
    /// Taken out of rotation by its operator: alive, takes no new traffic.
    Draining,
}

impl HealthStatus {
    /// Lowercase name, as in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Passing => "passing",
            HealthStatus::Warning => "warning",
            HealthStatus::Critical => "critical",
            HealthStatus::Draining => "draining",
        }
    }

    /// Whether an instance in this state takes traffic; `warning_ok` counts `Warning`.
    pub fn takes_traffic(self, warning_ok: bool) -> bool {
        match self {
            HealthStatus::Passing => true,
            HealthStatus::Warning => warning_ok,
            HealthStatus::Critical | HealthStatus::Draining => false,
        }
    }

    /// The worse of two states, for a service with several checks: `Critical` beats
    /// `Warning` beats `Passing` (`Draining` is set by hand, never by checks, and wins).
    pub fn worst(self, other: HealthStatus) -> HealthStatus {
        self.max(other)
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
