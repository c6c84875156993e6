//! A small deterministic PRNG (splitmix64 seeding, xorshift64* output) and input-shaping helpers.
#![forbid(unsafe_code)]

/// splitmix64: turns any 64-bit value (a seed, an iteration number) into a well-mixed one.
pub const fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64*: fast, deterministic, good enough to drive input generators. Not cryptographic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        // xorshift must never hold 0.
        let state = splitmix64(seed);
        Self(if state == 0 {
            0x2545_F491_4F6C_DD1D
        } else {
            state
        })
    }

    /// The generator of iteration `iteration` of a run with seed `seed`: every iteration can be
    /// replayed on its own.
    pub const fn for_iteration(seed: u64, iteration: u64) -> Self {
        Self::new(seed ^ splitmix64(iteration.wrapping_add(0x5eed)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..bound` (0 when `bound` is 0). The slight modulo bias does not matter here.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// A `usize` in `0..bound` (0 when `bound` is 0).
    pub fn index(&mut self, bound: usize) -> usize {
        // Lossless both ways: the result is below `bound`.
        self.below(bound as u64) as usize
    }

    /// A value in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// `true` with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// A random bool.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 != 0
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// A 64-bit value shaped to hit edge cases: small numbers, powers of two and their
    /// neighbours, all-ones patterns, or plain random bits.
    pub fn interesting_u64(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(16),
            1 => 1u64 << self.below(64),
            2 => (1u64 << self.below(64)).wrapping_sub(1),
            3 => u64::MAX - self.below(16),
            4 => self.next_u64() & 0xffff_ffff,
            _ => self.next_u64(),
        }
    }

    /// `length` random bytes.
    pub fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next_u64() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_fixed_by_the_seed() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.iter().all(|value| *value == a[0]));
        let mut one = Rng::for_iteration(1, 2);
        let mut two = Rng::for_iteration(1, 2);
        assert_eq!(one.next_u64(), two.next_u64());
        assert_ne!(
            Rng::for_iteration(1, 2).next_u64(),
            Rng::for_iteration(1, 3).next_u64()
        );
    }

    #[test]
    fn bounded_helpers_stay_in_bounds() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            assert!((3..=9).contains(&rng.range(3, 9)));
        }
        assert_eq!(rng.below(0), 0);
    }
}
