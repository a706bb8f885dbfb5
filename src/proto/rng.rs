//! The core's one source of randomness: a named, seeded PCG generator handed in at
//! construction, so a seed fixes every choice the protocol makes.

use rand_core::{Rng, SeedableRng};

/// The generator type used by every [`crate::proto::Node`].
pub type NodeRng = rand_pcg::Pcg64Mcg;

/// Builds a node's generator from a 64-bit seed.
pub fn node_rng(seed: u64) -> NodeRng {
    NodeRng::seed_from_u64(seed)
}

/// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift; the tiny bias for
/// `n` near 2^64 is irrelevant at member-table sizes.
pub fn below(rng: &mut NodeRng, n: usize) -> usize {
    debug_assert!(n > 0, "below(0) has no valid answer");
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// A uniform float in `[0, 1)`.
pub fn unit(rng: &mut NodeRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Fisher–Yates shuffle.
pub fn shuffle<T>(rng: &mut NodeRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = node_rng(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let i = below(&mut rng, 5);
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn same_seed_same_sequence() {
        let a: Vec<usize> = {
            let mut r = node_rng(42);
            (0..10).map(|_| below(&mut r, 1000)).collect()
        };
        let b: Vec<usize> = {
            let mut r = node_rng(42);
            (0..10).map(|_| below(&mut r, 1000)).collect()
        };
        assert_eq!(a, b);
    }
}
