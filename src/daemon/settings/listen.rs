//! [`Listen`]: where a local listener (the HTTP API, the DNS interface) goes: the
//! default rule, an address the operator set, or nowhere (`"off"`). In config files,
//! `MUSTER_*` variables and flags alike it is written `"ip:port"` or `"off"`; the default
//! is not written at all.
//!
//! The default rule (see [`AgentConfig::api_listen`](super::AgentConfig::api_listen)) lets
//! several agents share a host: in `--dev` mode the API and DNS ports follow the gossip
//! port (`bind` + 1 and + 2), and a default address that turns out to be taken is not
//! fatal, while an address the operator set that cannot be bound is.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The word that turns a listener off.
pub const OFF: &str = "off";

/// Where a local listener goes. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listen {
    /// The default rule: not set anywhere.
    #[default]
    Default,
    /// This address, set by the operator: not being able to bind it is fatal.
    At(SocketAddr),
    /// No listener.
    Off,
}

impl Listen {
    /// Whether it is left to the default rule (for `skip_serializing_if`).
    pub fn is_default(&self) -> bool {
        *self == Listen::Default
    }

    /// Parses `"ip:port"` (`"[v6]:port"`) or `"off"`. The error says what was expected.
    pub fn parse(text: &str) -> Result<Listen, String> {
        if text == OFF {
            return Ok(Listen::Off);
        }
        text.parse()
            .map(Listen::At)
            .map_err(|e| format!("{text:?}: {e}; expected ip:port or \"{OFF}\""))
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Listen::At(addr) => serializer.collect_str(addr),
            Listen::Off => serializer.serialize_str(OFF),
            // Skipped by `skip_serializing_if`; written as nothing a reader could mistake.
            Listen::Default => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Listen, D::Error> {
        let text = String::deserialize(deserializer)?;
        Listen::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A listener's address once the default rule is applied, and whether the operator set
/// it (then a bind failure is fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Set by the operator, not by the default rule.
    pub explicit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_off_parse_and_anything_else_is_refused() {
        assert_eq!(Listen::parse("off"), Ok(Listen::Off));
        assert_eq!(
            Listen::parse("127.0.0.1:8600"),
            Ok(Listen::At("127.0.0.1:8600".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("[::1]:53"),
            Ok(Listen::At("[::1]:53".parse().unwrap()))
        );
        for bad in ["", "OFF", "no", "127.0.0.1", "localhost:8600"] {
            let err = Listen::parse(bad).unwrap_err();
            assert!(err.contains("expected ip:port or \"off\""), "{bad}: {err}");
        }
    }
}
