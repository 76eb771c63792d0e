//! Elementary functions that vectorise: `exp` in `f32` and `f64` without a libm
//! call, so that a generated loop calling them (through [`crate::support`]'s
//! `sigmoid`, say) compiles to SIMD code, as one calling glibc's `exp` does not.
//!
//! The method is the textbook one (Cody and Waite's range reduction, as in Cephes
//! and SLEEF): `exp(x) = 2^k · exp(r)` with `k = round(x / ln 2)` and
//! `r = x - k·ln 2` in `[-ln 2 / 2, ln 2 / 2]`, `ln 2` split in two so that `k·ln2_hi`
//! is exact; `exp(r)` by its Taylor polynomial (degree 13 in `f64`, 7 in `f32`:
//! truncation below a hundredth of an ulp), and `2^k` built in the exponent bits,
//! in two halves so that results near overflow and in the subnormal range are
//! right too. Everything is arithmetic and selects, with the rounding of `k` done
//! by adding and subtracting `1.5·2^52` (`1.5·2^23`): no branch, no float-to-int
//! conversion (AVX2 has none for 64-bit integers), nothing that stops a loop from
//! vectorising, on any x86-64 (no FMA needed).
//!
//! Accuracy, tested against the standard library on dense grids: within 1 ulp
//! (`f64`) and 1 ulp (`f32`) over the whole range, exact at 0, and `inf`, `0` and
//! NaN where the standard library gives them.

/// `e^x` in `f64`, branch-free (see the module's description).
#[inline]
#[allow(clippy::excessive_precision, reason = "constants as published")]
pub fn exp_f64(x: f64) -> f64 {
    // Beyond these the result is `inf` or `0`; clamping keeps `k` in range, and a
    // NaN passes both comparisons unchanged.
    const HI: f64 = 710.0;
    const LO: f64 = -746.0;
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // `ln 2` as a sum: the high part has 32 trailing zero bits, so `k · LN2_HI`
    // is exact for every `k` used here.
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    // Adding and subtracting 1.5 · 2^52 rounds to the nearest integer, and leaves
    // the integer in the low bits of the sum.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let x = if x > HI { HI } else { x };
    let x = if x < LO { LO } else { x };
    let t = x * LOG2_E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // e^r, Horner from 1/13! down to 1.
    const C: [f64; 14] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let mut p = C[0];
    for c in &C[1..] {
        p = p * r + c;
    }
    // 2^k as 2^(k/2) · 2^(k - k/2): each half a normal number for every k here.
    let ki = (t.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64);
    let k1 = ki >> 1;
    let k2 = ki - k1;
    let two_to = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    p * two_to(k1) * two_to(k2)
}

/// `e^x` in `f32`, branch-free (see the module's description).
#[inline]
#[allow(clippy::excessive_precision, reason = "constants as published")]
pub fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 89.0;
    const LO: f32 = -104.0;
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // `ln 2` as a sum: the high part has 12 trailing zero bits.
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_400_5e-4;
    const ROUND: f32 = 12_582_912.0;
    let x = if x > HI { HI } else { x };
    let x = if x < LO { LO } else { x };
    let t = x * LOG2_E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    const C: [f32; 8] = [
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let mut p = C[0];
    for c in &C[1..] {
        p = p * r + c;
    }
    let ki = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let k1 = ki >> 1;
    let k2 = ki - k1;
    let two_to = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    p * two_to(k1) * two_to(k2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in ulps between two finite floats of the same sign (or both zero).
    fn ulps64(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    fn ulps32(a: f32, b: f32) -> u32 {
        (a.to_bits() as i32 - b.to_bits() as i32).unsigned_abs()
    }

    #[test]
    fn exp_f64_is_within_one_ulp_everywhere() {
        let mut worst = (0, 0.0);
        let mut check = |x: f64| {
            let (got, want) = (exp_f64(x), x.exp());
            assert_eq!(
                got.is_finite(),
                want.is_finite(),
                "exp({x}): {got} vs {want}"
            );
            let u = ulps64(got, want);
            if u > worst.0 {
                worst = (u, x);
            }
        };
        // The whole finite range, densely near 0 and across both ends.
        let steps = 4_000_000;
        for i in 0..=steps {
            check(-745.2 + (709.79 + 745.2) * i as f64 / steps as f64);
        }
        for i in 0..=1_000_000 {
            check((i as f64 - 500_000.0) * 1e-6);
        }
        for x in [
            709.78, 709.782, 709.7827, -708.4, -708.39, -740.0, -745.0, -745.13,
        ] {
            check(x);
        }
        assert!(worst.0 <= 1, "{} ulps at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_f32_is_within_one_ulp_everywhere() {
        let mut worst = (0, 0.0f32);
        // Every 7th float in the finite range, positive and negative.
        let top = 89.0f32.to_bits();
        let bottom = 104.0f32.to_bits();
        let mut check = |x: f32| {
            let (got, want) = (exp_f32(x), x.exp());
            assert_eq!(
                got.is_finite(),
                want.is_finite(),
                "exp({x}): {got} vs {want}"
            );
            let u = ulps32(got, want);
            if u > worst.0 {
                worst = (u, x);
            }
        };
        for bits in (0..top).step_by(7) {
            check(f32::from_bits(bits));
        }
        for bits in (0..bottom).step_by(7) {
            check(-f32::from_bits(bits));
        }
        assert!(worst.0 <= 1, "{} ulps at x = {}", worst.0, worst.1);
    }

    #[test]
    fn special_values() {
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(-0.0), 1.0);
        assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp_f64(1000.0), f64::INFINITY);
        assert_eq!(exp_f64(709.8), f64::INFINITY);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_f64(-800.0), 0.0);
        assert!(exp_f64(f64::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(88.8), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-110.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // Subnormal results, as the standard library rounds them (within an ulp).
        for x in [-708.5, -720.0, -744.0] {
            assert!(ulps64(exp_f64(x), x.exp()) <= 1, "{x}");
        }
        for x in [-88.0f32, -95.0, -103.0] {
            assert!(ulps32(exp_f32(x), x.exp()) <= 1, "{x}");
        }
    }
}
