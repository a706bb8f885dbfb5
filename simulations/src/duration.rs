//! Human durations in scenario files and flags: `250ms`, `2s`, `1.5s`, `3m`, `1h`.

use std::time::Duration;

/// Parses `<number><unit>` with unit `us`, `ms`, `s`, `m` or `h`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 2s, 3m"))?;
    let secs = match unit.trim() {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Serde adapter for `Duration` fields written as strings.
pub mod serde_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserializes a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }

    /// Optional variant.
    pub mod option {
        use super::*;
        /// Deserializes an optional duration string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| super::super::parse(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        for (s, ms) in [
            ("250ms", 250),
            ("2s", 2000),
            ("1.5s", 1500),
            ("3m", 180_000),
            ("1h", 3_600_000),
            ("7", 7000),
        ] {
            assert_eq!(parse(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        assert!(parse("fast").is_err());
        assert!(parse("5 parsecs").is_err());
    }
}
