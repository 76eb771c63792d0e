//! splitmix64: small, fast, and the same sequence for a seed forever.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Mix the seed once so that nearby seeds start far apart.
        let mut rng = Rng(seed ^ 0x6a09_e667_f3bc_c909);
        rng.next();
        rng
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is below 2^-50 for our `n`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with probability proportional to `weights` (not all zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut at = self.next() % total.max(1);
        for (k, &w) in weights.iter().enumerate() {
            if at < u64::from(w) {
                return k;
            }
            at -= u64::from(w);
        }
        weights.len() - 1
    }

    /// A "nice" constant in `[lo, hi]`, two decimals, as a user would write it.
    pub fn constant(&mut self, lo: f64, hi: f64) -> f64 {
        let (lo, hi) = ((lo * 100.0).round() as i64, (hi * 100.0).round() as i64);
        // Whole hundredths divided once, so the value prints as written (0.86).
        let hundredths = lo + self.below((hi - lo) as usize + 1) as i64;
        hundredths as f64 / 100.0
    }
}
