//! A service's failover rule, the seed's `FailoverRule { trigger, action, timeout, retry }`
//! made concrete, plus how traffic fails back.
//!
//! In the config it is `[services.failover]` (every key optional):
//!
//! ```toml
//! [services.failover]
//! trigger = "none-passing"        # or "fewer-than 2": passing instances in the caller's region
//! action = "nearest"              # or ["us-east", "ap-south"]: regions to send traffic to, in order
//! timeout = "2s"                  # the trigger must hold this long before traffic moves
//! retry = "1s"                    # how often the rule is re-checked (at least; deadlines are exact)
//! failback = "10s"                # the local region must pass this long before traffic returns, or "manual"
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{format_duration, parse_duration};
use crate::field_error::FieldError;

/// Default time the trigger must hold before traffic moves: longer than one failed
/// check interval plus gossip, so a single blip does not move traffic.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default re-check interval of a rule.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Default time the local region must pass again before traffic fails back.
pub const DEFAULT_FAILBACK_HOLD: Duration = Duration::from_secs(10);

/// When a rule acts: the caller's region has fewer than `n` instances that take traffic.
/// `"none-passing"` is `FewerThan(1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    /// The rule triggers with fewer than this many healthy instances in the local region
    /// (at least 1).
    pub fewer_than: u32,
}

impl Trigger {
    /// Triggers when the local region has no healthy instance.
    pub const NONE_PASSING: Trigger = Trigger { fewer_than: 1 };

    /// Parses `"none-passing"` or `"fewer-than N"` (N ≥ 1).
    pub fn parse(text: &str) -> Result<Trigger, String> {
        let text = text.trim();
        if text == "none-passing" {
            return Ok(Trigger::NONE_PASSING);
        }
        let expected =
            || format!("{text:?}: expected \"none-passing\" or \"fewer-than N\" with N at least 1");
        let n = text
            .strip_prefix("fewer-than")
            .map(str::trim)
            .ok_or_else(expected)?
            .parse::<u32>()
            .map_err(|_| expected())?;
        if n == 0 {
            return Err(expected());
        }
        Ok(Trigger { fewer_than: n })
    }

    /// Whether the trigger holds with `healthy` instances in the local region.
    pub fn holds(self, healthy: usize) -> bool {
        healthy < self.fewer_than as usize
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fewer_than == 1 {
            f.write_str("none-passing")
        } else {
            write!(f, "fewer-than {}", self.fewer_than)
        }
    }
}

/// Where traffic goes when the rule acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The other regions, nearest first by measured round-trip time.
    Nearest,
    /// These regions, in this order (regions without a healthy instance are skipped).
    Regions(Vec<String>),
}

/// When traffic returns to the local region after a failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failback {
    /// Once the trigger has stopped holding for this long, checked every `retry`.
    After(Duration),
    /// Only on `muster failover reset SERVICE`.
    Manual,
}

/// One service's failover rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRule {
    /// When to act.
    #[serde(default = "default_trigger", with = "trigger_serde")]
    pub trigger: Trigger,
    /// Where to send traffic.
    #[serde(default = "default_action", with = "action_serde")]
    pub action: Action,
    /// How long the trigger must hold before acting.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// How often the rule is re-checked while it is pending or in force.
    #[serde(default = "default_retry", with = "crate::duration")]
    pub retry: Duration,
    /// When traffic fails back.
    #[serde(default = "default_failback", with = "failback_serde")]
    pub failback: Failback,
}

impl Default for FailoverRule {
    fn default() -> Self {
        FailoverRule {
            trigger: default_trigger(),
            action: default_action(),
            timeout: DEFAULT_TIMEOUT,
            retry: DEFAULT_RETRY,
            failback: default_failback(),
        }
    }
}

impl FailoverRule {
    /// Checks what serde cannot: a non-zero retry, region names in the action.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.retry.is_zero() {
            return Err(FieldError::new("retry", "must be more than 0ms"));
        }
        if let Action::Regions(regions) = &self.action {
            if regions.is_empty() {
                return Err(FieldError::new(
                    "action",
                    "an empty region list; use \"nearest\"",
                ));
            }
            if let Some(r) = regions.iter().find(|r| r.is_empty()) {
                return Err(FieldError::new(
                    "action",
                    format!("an empty region name {r:?}"),
                ));
            }
        }
        Ok(())
    }
}

fn default_trigger() -> Trigger {
    Trigger::NONE_PASSING
}
fn default_action() -> Action {
    Action::Nearest
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_retry() -> Duration {
    DEFAULT_RETRY
}
fn default_failback() -> Failback {
    Failback::After(DEFAULT_FAILBACK_HOLD)
}

mod trigger_serde {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Trigger, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Trigger, D::Error> {
        Trigger::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod action_serde {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Word(String),
        List(Vec<String>),
    }

    pub fn serialize<S: Serializer>(a: &Action, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Action::Nearest => s.serialize_str("nearest"),
            Action::Regions(r) => r.serialize(s),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "nearest" => Ok(Action::Nearest),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "{w:?}: expected \"nearest\" or a list of regions"
            ))),
            Raw::List(regions) => Ok(Action::Regions(regions)),
        }
    }
}

mod failback_serde {
    use super::*;
    pub fn serialize<S: Serializer>(f: &Failback, s: S) -> Result<S::Ok, S::Error> {
        match f {
            Failback::Manual => s.serialize_str("manual"),
            Failback::After(d) => s.serialize_str(&format_duration(*d)),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Failback, D::Error> {
        let text = String::deserialize(d)?;
        if text == "manual" {
            return Ok(Failback::Manual);
        }
        parse_duration(&text)
            .map(Failback::After)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"manual\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_parse_and_print_back() {
        assert_eq!(Trigger::parse("none-passing"), Ok(Trigger::NONE_PASSING));
        assert_eq!(
            Trigger::parse("fewer-than 3"),
            Ok(Trigger { fewer_than: 3 })
        );
        for t in ["none-passing", "fewer-than 3"] {
            assert_eq!(Trigger::parse(t).unwrap().to_string(), t);
        }
        for bad in ["", "fewer-than", "fewer-than 0", "fewer-than x", "all"] {
            assert!(Trigger::parse(bad).is_err(), "{bad}");
        }
        assert!(Trigger::NONE_PASSING.holds(0) && !Trigger::NONE_PASSING.holds(1));
    }

    #[test]
    fn rule_reads_from_toml_with_defaults() {
        let rule: FailoverRule = toml::from_str("").unwrap();
        assert_eq!(rule, FailoverRule::default());
        let rule: FailoverRule = toml::from_str(
            "trigger = \"fewer-than 2\"\naction = [\"us\", \"ap\"]\ntimeout = \"5s\"\nretry = \"500ms\"\nfailback = \"manual\"",
        )
        .unwrap();
        assert_eq!(rule.trigger, Trigger { fewer_than: 2 });
        assert_eq!(rule.action, Action::Regions(vec!["us".into(), "ap".into()]));
        assert_eq!(rule.timeout, Duration::from_secs(5));
        assert_eq!(rule.failback, Failback::Manual);
        let err = toml::from_str::<FailoverRule>("action = \"closest\"").unwrap_err();
        assert!(err.to_string().contains("expected \"nearest\""), "{err}");
    }
}
