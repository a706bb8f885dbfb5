//! The simulator's randomness: every generator derives from the one world seed, so a
//! run is fixed by its seed.

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// A generator for stream `stream` of world seed `seed` (SplitMix64 of both, so nearby
/// seeds and indices give unrelated sequences).
pub fn derive(seed: u64, stream: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(mix(seed ^ mix(stream.wrapping_add(0x51ed_2701))))
}

/// The seed handed to node `index` in its `restart`-th life.
pub fn node_seed(seed: u64, index: usize, restart: u32) -> u64 {
    mix(seed ^ mix((index as u64) << 20 ^ u64::from(restart)))
}

/// The 32-byte seed of node `index`'s node key: the same in every life, as an agent
/// with a data dir keeps its key across restarts.
pub fn node_key_seed(seed: u64, index: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (k, chunk) in out.chunks_exact_mut(8).enumerate() {
        let word = mix(seed ^ mix((index as u64) << 8 ^ (k as u64) ^ 0x6b65_7973));
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform float in `[0, 1)`.
pub fn unit(rng: &mut Pcg64Mcg) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform index in `0..n`.
pub fn below(rng: &mut Pcg64Mcg, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}
