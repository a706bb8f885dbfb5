//! [`RateLimiter`]: how many UDP queries each source gets answered, so the DNS interface
//! cannot be used to reflect (or amplify) traffic at an address someone else spoofs.
//! Pure: the time is an argument, so tests step it by hand.
//!
//! Each source has a token bucket of [`RateLimit::burst`] answers that refills at
//! [`RateLimit::per_second`]. A query that finds a token is answered; one that does not
//! is *limited*: dropped, except every [`RateLimit::slip`]-th, which gets an empty
//! answer with TC set (BIND's "slip"), no larger than the query, so a real client
//! behind a busy address retries over TCP (not limited: TCP cannot be spoofed) while a
//! spoofed victim receives no more bytes than the attacker sent.
//!
//! A source is an IPv4 address, or an IPv6 /64 (one host commonly holds many addresses
//! of its /64, and a victim's whole /64 routes to it). IPv4-mapped IPv6 addresses count
//! as their IPv4 address.
//!
//! Invariant: at most [`MAX_SOURCES`] sources (or the count given to
//! [`RateLimiter::with_max_sources`]) are tracked; a new one past that evicts the source
//! seen least recently, so a flood from spoofed, ever-changing sources cannot grow
//! memory. An evicted source starts again with a full bucket, as does any source idle
//! long enough to refill one: forgetting a full bucket loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Answers per second a source earns by default: a caching resolver in front of the
/// agent (systemd-resolved, dnsmasq) asks each name once per TTL (5 s by default), so
/// 100 a second is 500 distinct names per TTL from one source, while a spoofed flood
/// reflects at most 100 answers (about 120 KB at the 1,232-byte EDNS maximum) a second
/// from each agent at its victim. A busier client than that still gets answers: every
/// second limited query is answered TC and retried over TCP.
pub const DEFAULT_PER_SECOND: u32 = 100;

/// Default burst, as a multiple of the rate: two seconds' worth, so a resolver
/// starting cold (or a program resolving its whole configuration at once) is answered
/// in full.
const DEFAULT_BURST_SECONDS: u32 = 2;

/// Every second limited query is answered TC by default: BIND's default slip, which
/// halves what a spoofed flood reflects while a real client retries over TCP on its
/// next try.
pub const DEFAULT_SLIP: u32 = 2;

/// Most sources tracked at once. A source costs about 80 bytes here (two map entries),
/// so 10,000 is under a megabyte, and far more clients than an agent's DNS serves (its
/// host's resolver, or a few hosts'): only a flood from spoofed sources fills it.
pub const MAX_SOURCES: usize = 10_000;

/// The limit each source gets over UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Answers a second a source earns; 0 turns the limit off (every query answered).
    pub per_second: u32,
    /// Answers a source may get at once after a quiet spell (at least 1 is used).
    pub burst: u32,
    /// Every `slip`-th limited query from a source is answered empty with TC set; the
    /// others are dropped. 0 drops every one, 1 answers every one TC.
    pub slip: u32,
}

impl RateLimit {
    /// No limit: every query is answered.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
        slip: 0,
    };

    /// `per_second` answers a second per source, a burst of two seconds' worth, and
    /// the default slip; 0 is [`RateLimit::OFF`].
    pub fn per_second(per_second: u32) -> RateLimit {
        if per_second == 0 {
            return RateLimit::OFF;
        }
        RateLimit {
            per_second,
            burst: per_second.saturating_mul(DEFAULT_BURST_SECONDS),
            slip: DEFAULT_SLIP,
        }
    }

    /// Whether every query is answered.
    pub fn is_off(&self) -> bool {
        self.per_second == 0
    }
}

impl Default for RateLimit {
    /// [`DEFAULT_PER_SECOND`] per source, a burst of two seconds' worth,
    /// [`DEFAULT_SLIP`].
    fn default() -> RateLimit {
        RateLimit::per_second(DEFAULT_PER_SECOND)
    }
}

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: answer it.
    Answer,
    /// Limited: answer it empty with TC set, so a real client retries over TCP.
    Slip,
    /// Limited: send nothing.
    Drop,
}

/// A source as the limiter counts it: an IPv4 address, or an IPv6 /64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => Source::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One source's bucket, kept as the time it will be full again (the generic cell rate
/// algorithm's form of a token bucket): at `now` it lacks `(full_at - now) / interval`
/// tokens of `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    full_at: Instant,
    /// Queries limited since the source was first tracked: picks the ones that slip.
    limited: u32,
    /// When it was last seen, as a sequence number: its key in `RateLimiter::by_age`.
    seen: u64,
}

/// The per-source limiter (see the module doc). Not thread-safe on its own: the server
/// holds it behind a lock, for a few hundred nanoseconds a query.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    /// Time per token: one second over the rate.
    interval: Duration,
    /// Time a whole bucket takes to refill: `interval × burst`.
    window: Duration,
    max_sources: usize,
    /// std's `HashMap` (SipHash with a random key): the keys are chosen by whoever
    /// sends packets, so the hasher must resist collisions made on purpose.
    buckets: HashMap<Source, Bucket>,
    /// The tracked sources by when they were last seen, oldest first.
    by_age: BTreeMap<u64, Source>,
    /// The next `Bucket::seen`.
    sequence: u64,
}

impl RateLimiter {
    /// A limiter tracking up to [`MAX_SOURCES`] sources.
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter::with_max_sources(limit, MAX_SOURCES)
    }

    /// A limiter tracking up to `max_sources` sources (at least 1).
    pub fn with_max_sources(limit: RateLimit, max_sources: usize) -> RateLimiter {
        let interval = match limit.per_second {
            0 => Duration::ZERO,
            n => Duration::from_secs(1) / n,
        };
        let window = interval
            .checked_mul(limit.burst.max(1))
            .unwrap_or(Duration::MAX);
        RateLimiter {
            limit,
            interval,
            window,
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
            by_age: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// The limit it applies.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Sources tracked now.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// A query from `ip` at `now`: whether to answer it, and takes its token if so.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.limit.is_off() {
            return Verdict::Answer;
        }
        let source = Source::of(ip);
        let seen = self.sequence;
        self.sequence += 1;
        let bucket = match self.buckets.get_mut(&source) {
            Some(bucket) => {
                self.by_age.remove(&bucket.seen);
                bucket
            }
            None => {
                if self.buckets.len() >= self.max_sources {
                    self.evict_oldest();
                }
                self.buckets.entry(source).or_insert(Bucket {
                    full_at: now,
                    limited: 0,
                    seen,
                })
            }
        };
        bucket.seen = seen;
        self.by_age.insert(seen, source);
        // The bucket after taking one token: full at `after`, lacking
        // `(after - now) / interval` tokens, which must not be more than it holds.
        let after = bucket.full_at.max(now) + self.interval;
        if after.saturating_duration_since(now) <= self.window {
            bucket.full_at = after;
            return Verdict::Answer;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if self.limit.slip != 0 && bucket.limited % self.limit.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    /// Forgets the source seen least recently.
    fn evict_oldest(&mut self) {
        if let Some((_, source)) = self.by_age.pop_first() {
            self.buckets.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Verdict::{Answer, Drop, Slip};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("a test address")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `steps` (milliseconds after the start, source, verdict expected) to a
    /// limiter with `limit`, in order; the table's row number is in any failure.
    fn run(limit: RateLimit, max_sources: usize, steps: &[(u64, &str, Verdict)]) {
        let start = Instant::now();
        let mut limiter = RateLimiter::with_max_sources(limit, max_sources);
        for (row, (at, source, want)) in steps.iter().enumerate() {
            let got = limiter.check(ip(source), start + ms(*at));
            assert_eq!(got, *want, "row {row}: {source} at {at} ms");
            assert!(
                limiter.sources() <= max_sources.max(1),
                "row {row}: bounded"
            );
        }
    }

    /// Ten a second (a token every 100 ms), a burst of three, every second limited
    /// query slipped.
    const TEN: RateLimit = RateLimit {
        per_second: 10,
        burst: 3,
        slip: 2,
    };

    #[test]
    fn a_source_gets_its_burst_then_one_answer_per_interval() {
        let a = "192.0.2.1";
        run(
            TEN,
            100,
            &[
                // The burst, all at once.
                (0, a, Answer),
                (0, a, Answer),
                (0, a, Answer),
                // Empty: limited, every second one slipped.
                (0, a, Drop),
                (0, a, Slip),
                (99, a, Drop),
                // One token back per 100 ms, no more.
                (100, a, Answer),
                (100, a, Slip),
                (250, a, Answer),
                (250, a, Drop),
                (300, a, Answer),
                // Quiet for a second: the bucket is full again, and holds three.
                (1300, a, Answer),
                (1300, a, Answer),
                (1300, a, Answer),
                (1300, a, Slip),
            ],
        );
    }

    #[test]
    fn sources_have_their_own_buckets() {
        let (a, b) = ("192.0.2.1", "192.0.2.2");
        run(
            TEN,
            100,
            &[
                (0, a, Answer),
                (0, a, Answer),
                (0, a, Answer),
                (0, a, Drop),
                (0, b, Answer),
                (0, a, Slip),
                (0, b, Answer),
                (0, b, Answer),
                (0, b, Drop),
            ],
        );
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let limit = RateLimit {
            per_second: 1,
            burst: 1,
            slip: 0,
        };
        run(
            limit,
            100,
            &[
                (0, "2001:db8:0:1::1", Answer),
                (0, "2001:db8:0:1::2", Drop),
                (0, "2001:db8:0:1:ffff:ffff:ffff:ffff", Drop),
                (0, "2001:db8:0:2::1", Answer),
                (0, "192.0.2.7", Answer),
                (0, "::ffff:192.0.2.7", Drop),
                (0, "::1", Answer),
                (0, "127.0.0.1", Answer),
            ],
        );
    }

    #[test]
    fn slip_zero_drops_every_limited_query_and_one_slips_every_one() {
        let a = "192.0.2.1";
        let with_slip = |slip| RateLimit {
            per_second: 1,
            burst: 1,
            slip,
        };
        run(
            with_slip(0),
            100,
            &[(0, a, Answer), (0, a, Drop), (0, a, Drop), (0, a, Drop)],
        );
        run(
            with_slip(1),
            100,
            &[(0, a, Answer), (0, a, Slip), (0, a, Slip), (0, a, Slip)],
        );
        run(
            with_slip(3),
            100,
            &[(0, a, Answer), (0, a, Drop), (0, a, Drop), (0, a, Slip)],
        );
    }

    #[test]
    fn off_answers_everything_and_tracks_nothing() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(RateLimit::per_second(0));
        assert_eq!(RateLimit::per_second(0), RateLimit::OFF);
        for i in 0..10_000u32 {
            let from = IpAddr::from((i | 0x0a00_0000).to_be_bytes());
            assert_eq!(limiter.check(from, start), Answer);
            assert_eq!(limiter.check(ip("192.0.2.1"), start), Answer);
        }
        assert_eq!(limiter.sources(), 0);
    }

    #[test]
    fn a_new_source_past_the_cap_evicts_the_one_seen_least_recently() {
        let (a, b, c) = ("192.0.2.1", "192.0.2.2", "192.0.2.3");
        let limit = RateLimit {
            per_second: 1,
            burst: 1,
            slip: 0,
        };
        run(
            limit,
            2,
            &[
                (0, a, Answer),
                (0, b, Answer),
                // `a` seen again: `b` is now the oldest.
                (0, a, Drop),
                // `c` evicts `b`, which comes back with a full bucket, evicting `a`.
                (0, c, Answer),
                (0, b, Answer),
                (0, a, Answer),
                // `c` was the oldest when `a` came back: evicted, full again.
                (0, c, Answer),
                // `a` is still tracked, its bucket empty.
                (0, a, Drop),
            ],
        );
    }

    #[test]
    fn a_spoofed_flood_stays_within_the_cap_and_a_busy_source_keeps_its_bucket() {
        let start = Instant::now();
        let mut limiter = RateLimiter::with_max_sources(TEN, 1_000);
        let victim = ip("198.51.100.9");
        let mut victim_answers = 0;
        for i in 0..=100_000u32 {
            let now = start + Duration::from_micros(u64::from(i));
            // A different source every time, as spoofed floods send...
            let spoofed = IpAddr::from((i | 0x0a00_0000).to_be_bytes());
            assert_eq!(limiter.check(spoofed, now), Answer, "a new source");
            // ...and one address asked for every tenth time.
            if i % 10 == 0 && limiter.check(victim, now) == Answer {
                victim_answers += 1;
            }
            assert!(limiter.sources() <= 1_000);
        }
        // A tenth of a second passed: the burst and one token.
        assert_eq!(victim_answers, 4, "the busy source was never evicted");
        assert_eq!(limiter.sources(), 1_000);
    }

    #[test]
    fn the_defaults_are_a_hundred_a_second_with_two_seconds_of_burst() {
        let limit = RateLimit::default();
        assert_eq!((limit.per_second, limit.burst, limit.slip), (100, 200, 2));
        assert!(!limit.is_off());
        let start = Instant::now();
        let mut limiter = RateLimiter::new(limit);
        let a = ip("127.0.0.1");
        let answered = (0..1_000)
            .filter(|_| limiter.check(a, start) == Answer)
            .count();
        assert_eq!(answered, 200);
        // Ten seconds at twice the rate: half answered.
        let answered = (0..2_000u64)
            .filter(|i| limiter.check(a, start + Duration::from_millis(5 * (i + 1))) == Answer)
            .count();
        assert_eq!(answered, 1_000);
        // Extreme rates neither panic nor overflow.
        let mut fast = RateLimiter::new(RateLimit::per_second(u32::MAX));
        assert_eq!(fast.check(a, start), Answer);
    }
}
