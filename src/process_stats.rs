//! This process's own resource use, read from Linux `/proc`: resident memory and CPU
//! time, for the benchmarks and the simulator's reports (and, later, metrics). Where
//! `/proc` is missing the figures read as zero rather than failing.

/// A `VmXxx:` line of `/proc/self/status` (e.g. `VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory now, in bytes.
pub fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// Peak resident memory so far, in bytes.
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM")
}

/// CPU seconds used so far, user and system (`/proc/self/stat` fields 14 and 15, in
/// Linux's USER_HZ of 100 ticks per second).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may contain spaces: count fields after its closing ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_the_peak_is_not_below_it() {
        let rss = rss_bytes();
        assert!(rss > 0);
        assert!(
            peak_rss_bytes() >= rss / 2,
            "peak {} rss {rss}",
            peak_rss_bytes()
        );
        assert_eq!(status_bytes("NoSuchField"), 0);
        assert!(cpu_seconds() >= 0.0);
    }
}
