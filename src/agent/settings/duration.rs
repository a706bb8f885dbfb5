//! Durations in config files: a whole number and a unit, `"500ms"`, `"10s"`, `"2m"`,
//! `"1h"`. One parser and one printer, so every duration setting (hook timeouts now,
//! service checks later) reads and prints the same way, and `--check-config` output
//! parses back to the same value.
//!
//! Use it on a field with `#[serde(with = "crate::agent::settings::duration")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Units, largest first (the printer picks the largest that divides the value exactly).
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses `"<whole number><unit>"` with unit `ms`, `s`, `m` or `h` (no space, no
/// fraction: `"1500ms"`, not `"1.5s"`). The error says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let expected =
        || format!("{text:?}: expected a whole number and a unit (ms, s, m, h), e.g. \"10s\"");
    if number.is_empty() {
        return Err(expected());
    }
    let millis_per = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, ms)| *ms)
        .ok_or_else(expected)?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// Prints a duration in the largest unit that represents it exactly (sub-millisecond
/// parts, which config files cannot express, are dropped).
pub fn format_duration(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0ms".into();
    }
    let (unit, per) = UNITS
        .iter()
        .find(|(_, per)| ms % per == 0)
        .copied()
        .unwrap_or(("ms", 1));
    format!("{}{unit}", ms / per)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("0ms", ms(0)),
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("2m", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("1500ms", ms(1500)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_the_expected_form() {
        for text in ["", "10", "s", "1.5s", "10 s", "-1s", "10sec", "ten s", "5d"] {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.contains("expected a whole number and a unit"),
                "{text}: {err}"
            );
        }
        let err = parse_duration("99999999999999999999h").unwrap_err();
        assert!(err.contains("too large"), "{err}");
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
        ] {
            assert_eq!(format_duration(value), text);
            assert_eq!(parse_duration(text), Ok(value));
        }
    }
}
