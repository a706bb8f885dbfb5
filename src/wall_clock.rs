//! The wall clock, for the few values that carry time for people or across restarts:
//! when an event happened or a check last ran (milliseconds), the epoch of a run's
//! replicated state (microseconds), when a certificate's validity starts. The protocol
//! core never reads it (`clippy.toml` forbids `SystemTime::now` elsewhere): its time is
//! the driver's monotonic [`crate::proto::Time`].

use std::time::{Duration, SystemTime};

/// Now, on the wall clock.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place the wall clock is read; nothing here is a protocol clock"
)]
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// Time since the Unix epoch; zero if the clock is set before it.
pub fn since_epoch() -> Duration {
    now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Milliseconds since the Unix epoch (saturating).
pub fn unix_millis() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// Microseconds since the Unix epoch (saturating).
pub fn unix_micros() -> u64 {
    u64::try_from(since_epoch().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_agree() {
        let (ms, us) = (unix_millis(), unix_micros());
        // 2020-01-01 or later, and microseconds a thousand times milliseconds.
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!(us / 1000 >= ms && us / 1000 - ms < 60_000, "{us} vs {ms}");
    }
}
