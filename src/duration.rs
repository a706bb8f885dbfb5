//! Durations as people write them, `"500ms"`, `"10s"`, `"1.5s"`, `"2m"`, `"1h 30m"`: one
//! parser and one printer for every duration the project reads or prints (the agent's
//! config, services, checks and failover rules, hooks, the simulator's scenarios), so
//! they all read the same way and `--check-config` output parses back to the same value.
//!
//! Parsing is [`humantime`]'s (units `ns`, `us`, `ms`, `s`, `m`, `h`, `d` and their long
//! forms, fractions, several spans in a row); a bare number is refused, since a config
//! that says `timeout = "5"` may mean seconds or milliseconds. Printing is ours, not
//! `humantime::format_duration`'s: that one prints `90s` as `"1m 30s"` and `1500ms` as
//! `"1s 500ms"`, while config output should print one span in the largest unit that holds
//! the value exactly (`"90s"`, `"1500ms"`), as an operator would have written it.
//!
//! Use it on a field with `#[serde(with = "crate::duration")]`, or
//! `crate::duration::option` for an `Option<Duration>`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Units the printer uses, largest first, in nanoseconds (it picks the largest that
/// divides the value exactly).
const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration: a number and a unit (`"10s"`, `"1.5s"`, `"250ms"`, `"2m"`), or
/// several of them (`"1h 30m"`). The error names the text and the form expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?}: expected a number and a unit (ms, s, m, h), e.g. \"10s\" ({e})")
    })
}

/// Prints a duration as one span in the largest unit that represents it exactly, so it
/// parses back to the same value: `"90s"`, `"1500ms"`, `"2h"`, `"0ms"`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0ms".into();
    }
    let (unit, per) = UNITS
        .iter()
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / per)
}

/// Serde: writes a duration as its string form.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*duration))
}

/// Serde: reads a duration from its string form.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Serde for `Option<Duration>`: absent or a duration string.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some` as the duration's string form, `None` as none.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit_with_fractions_and_spans() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("0ms", ms(0)),
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("1.5s", ms(1500)),
            ("2m", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("1500ms", ms(1500)),
            ("1m 30s", ms(90_000)),
            ("250us", Duration::from_micros(250)),
            (" 10s ", ms(10_000)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_the_expected_form() {
        for text in [
            "",
            "10",
            "s",
            "-1s",
            "ten s",
            "5 parsecs",
            "99999999999999999999h",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.contains("expected a number and a unit"),
                "{text}: {err}"
            );
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
    }

    #[test]
    fn durations_print_in_the_largest_exact_unit_and_parse_back() {
        let ms = Duration::from_millis;
        for (value, text) in [
            (ms(0), "0ms"),
            (ms(250), "250ms"),
            (ms(1500), "1500ms"),
            (ms(10_000), "10s"),
            (ms(90_000), "90s"),
            (ms(120_000), "2m"),
            (ms(7_200_000), "2h"),
            (Duration::from_micros(1500), "1500us"),
            (Duration::from_nanos(7), "7ns"),
        ] {
            assert_eq!(format_duration(value), text);
            assert_eq!(parse_duration(text), Ok(value));
        }
    }

    #[test]
    fn huge_durations_print_and_parse_back() {
        for value in [
            Duration::from_secs(u64::MAX),
            Duration::from_nanos(u64::MAX),
        ] {
            let text = format_duration(value);
            assert_eq!(parse_duration(&text), Ok(value), "{text}");
        }
    }
}
