//! `pow(x, y)` for floats, computed in Rust rather than by the system's C
//! math library: every machine a saved run resumes on computes the same
//! result, and the `spool` executable need not load `libm.so.6` at every
//! start for this one function (a tenth of an empty script's start-up).
//!
//! The special cases are C99's (Annex F, `pow`). Elsewhere `x^y` is
//! `exp(y·ln x)` evaluated in double-double arithmetic (a pair of floats
//! holding some 104 bits), whose error, about 2^-94 relative, is far
//! below half a unit in the last place of the float returned: the result
//! is the correctly rounded one except for inputs whose exact power lies
//! within that error of a halfway point, which random inputs hit with a
//! probability of about 2^-40. A whole exponent up to 64 is done by
//! repeated squaring instead, as fast as the C library's `pow`; any other
//! takes about 0.4 µs (the C library's about 0.03). Only addition,
//! multiplication, division, square root and rounding to a whole number
//! are used, all exact or correctly rounded in IEEE arithmetic, so the
//! result does not depend on the processor or on a fused multiply-add.

/// `x` to the power `y`.
pub fn pow(x: f64, y: f64) -> f64 {
    if let Some(special) = special_case(x, y) {
        return special;
    }
    // Here x and y are finite and non-zero, x is not 1, and y is an
    // integer when x is negative.
    let sign = if x < 0.0 && is_odd_integer(y) {
        -1.0
    } else {
        1.0
    };
    sign * pow_positive(x.abs(), y)
}

/// The result of `pow(x, y)` when C99 gives it without computing a
/// power: a zero, infinite, NaN or unit operand, or a negative base
/// under a non-integer exponent.
fn special_case(x: f64, y: f64) -> Option<f64> {
    if y == 0.0 || x == 1.0 {
        return Some(1.0);
    }
    if x.is_nan() || y.is_nan() {
        return Some(f64::NAN);
    }
    if y.is_infinite() {
        let magnitude = x.abs();
        if magnitude == 1.0 {
            return Some(1.0);
        }
        let grows = (magnitude > 1.0) == (y > 0.0);
        return Some(if grows { f64::INFINITY } else { 0.0 });
    }
    if x == 0.0 || x.is_infinite() {
        // +0 and +inf are reciprocal; an odd integer exponent keeps the
        // base's sign.
        let grows = (x == 0.0) == (y < 0.0);
        let magnitude = if grows { f64::INFINITY } else { 0.0 };
        let negative = x.is_sign_negative() && is_odd_integer(y);
        return Some(if negative { -magnitude } else { magnitude });
    }
    if x < 0.0 && y.trunc() != y {
        return Some(f64::NAN);
    }
    None
}

/// Is `y` (finite) an odd integer? Every float of magnitude 2^53 or more
/// is even.
fn is_odd_integer(y: f64) -> bool {
    y.trunc() == y && y.abs() < 9_007_199_254_740_992.0 && (y as i64) % 2 != 0
}

/// `x^y` for a finite positive `x` other than 1 and a finite non-zero `y`.
fn pow_positive(x: f64, y: f64) -> f64 {
    // Exponents that IEEE arithmetic answers correctly rounded on its own.
    if y == 1.0 {
        return x;
    } else if y == 2.0 {
        return x * x;
    } else if y == -1.0 {
        return 1.0 / x;
    } else if y == 0.5 {
        return x.sqrt();
    }
    if y.trunc() == y && y.abs() <= 64.0 {
        if let Some(power) = integer_power(x, y as i32) {
            return power;
        }
    }
    let log = ln(x);
    let estimate = y * log.hi;
    // exp overflows past 709.78 and rounds to zero below -745.13; with
    // a margin, so that near the edges the scaling below decides.
    if estimate > 710.0 {
        return f64::INFINITY;
    }
    if estimate < -746.0 {
        return 0.0;
    }
    // |y| < 746 / |ln x| < 2^63 here (|ln x| >= 2^-53 for x != 1), so
    // the products below neither overflow nor lose their low part.
    exp(log.mul_f64(y))
}

/// `x^n` for a whole `n` with `|n| <= 64`, by repeated squaring in
/// double-double arithmetic (at most a dozen products, each within
/// 2^-104, so the float it rounds to is the correctly rounded power), or
/// `None` when a factor leaves the range where a double-double keeps its
/// low part (the general path then answers, overflow and underflow
/// included).
fn integer_power(x: f64, n: i32) -> Option<f64> {
    const HIGH: f64 = 1e280;
    const LOW: f64 = 1e-280;
    let in_range = |value: DoubleDouble| (LOW..=HIGH).contains(&value.hi.abs());
    let mut base = DoubleDouble::of(x);
    let mut power = DoubleDouble::of(1.0);
    let mut left = n.unsigned_abs();
    while left > 0 {
        if left & 1 == 1 {
            power = power.mul(base);
            if !in_range(power) {
                return None;
            }
        }
        left >>= 1;
        if left > 0 {
            // Squares stay within 1e±280 only from factors within 1e±140.
            if !(1e-140..=1e140).contains(&base.hi.abs()) {
                return None;
            }
            base = base.mul(base);
        }
    }
    let power = if n < 0 {
        DoubleDouble::of(1.0).div(power)
    } else {
        power
    };
    Some(power.hi + power.lo)
}

/// A double-double: the number `hi + lo`, with `|lo|` at most half a
/// unit in the last place of `hi`.
#[derive(Clone, Copy, Debug)]
struct DoubleDouble {
    hi: f64,
    lo: f64,
}

/// ln 2 as a double-double (its first 106 bits).
const LN_2: DoubleDouble = DoubleDouble {
    hi: f64::from_bits(0x3fe6_2e42_fefa_39ef),
    lo: f64::from_bits(0x3c7a_bc9e_3b39_803f),
};

/// √2, the top of the range [√2/2, √2] the logarithm reduces to.
const SQRT_2: f64 = std::f64::consts::SQRT_2;

impl DoubleDouble {
    /// The float `value` as a double-double.
    const fn of(value: f64) -> DoubleDouble {
        DoubleDouble { hi: value, lo: 0.0 }
    }

    /// `self + other`.
    const fn add(self, other: DoubleDouble) -> DoubleDouble {
        let high = two_sum(self.hi, other.hi);
        let low = two_sum(self.lo, other.lo);
        let sum = fast_two_sum(high.hi, high.lo + low.hi);
        fast_two_sum(sum.hi, sum.lo + low.lo)
    }

    /// `self * other`.
    const fn mul(self, other: DoubleDouble) -> DoubleDouble {
        let product = two_product(self.hi, other.hi);
        fast_two_sum(
            product.hi,
            product.lo + (self.hi * other.lo + self.lo * other.hi),
        )
    }

    /// `self * factor`.
    const fn mul_f64(self, factor: f64) -> DoubleDouble {
        let product = two_product(self.hi, factor);
        fast_two_sum(product.hi, product.lo + self.lo * factor)
    }

    /// `self / other`: three quotient digits, each from the remainder
    /// of the ones before.
    const fn div(self, other: DoubleDouble) -> DoubleDouble {
        let first = self.hi / other.hi;
        let rest = self.add(other.mul_f64(-first));
        let second = rest.hi / other.hi;
        let rest = rest.add(other.mul_f64(-second));
        let third = rest.hi / other.hi;
        fast_two_sum(first, second).add(DoubleDouble::of(third))
    }
}

/// `a + b` exactly, as a rounded sum and its error.
const fn two_sum(a: f64, b: f64) -> DoubleDouble {
    let sum = a + b;
    let b_part = sum - a;
    let error = (a - (sum - b_part)) + (b - b_part);
    DoubleDouble { hi: sum, lo: error }
}

/// `a + b` exactly when `|a| >= |b|` (or `a` is 0).
const fn fast_two_sum(a: f64, b: f64) -> DoubleDouble {
    let sum = a + b;
    DoubleDouble {
        hi: sum,
        lo: b - (sum - a),
    }
}

/// `a` split into two floats of 26 significant bits each (Veltkamp), so
/// that products of the halves are exact; `|a|` must stay below 2^995.
const fn split(a: f64) -> (f64, f64) {
    let scaled = 134_217_729.0 * a; // 2^27 + 1
    let high = scaled - (scaled - a);
    (high, a - high)
}

/// `a * b` exactly, as a rounded product and its error (Dekker), without
/// a fused multiply-add, which without the processor's instruction is a
/// call into the C library.
const fn two_product(a: f64, b: f64) -> DoubleDouble {
    let product = a * b;
    let (a_high, a_low) = split(a);
    let (b_high, b_low) = split(b);
    let error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low;
    DoubleDouble {
        hi: product,
        lo: error,
    }
}

/// `1 / d` as a double-double, for a small whole `d`.
const fn reciprocal(d: f64) -> DoubleDouble {
    let hi = 1.0 / d;
    let product = two_product(hi, d);
    DoubleDouble {
        hi,
        lo: ((1.0 - product.hi) - product.lo) / d,
    }
}

/// `x` rounded to a whole number, halfway cases to even, for `|x|`
/// below 2^51: adding 1.5·2^52 leaves no bits after the point, and the
/// addition rounds (without the call `f64::round` makes).
fn round_small(x: f64) -> f64 {
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    (x + SHIFT) - SHIFT
}

/// 2^`n` for `n` in -1022..=1023.
fn power_of_two(n: i32) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// The logarithm's table: `ln c` for `c = 1 + (i - 19)/64`, `i` in
/// `0..47`, the 47 steps of 1/64 around [√2/2, √2].
const LN_TABLE: [DoubleDouble; 47] = {
    let mut table = [DoubleDouble::of(0.0); 47];
    let mut i = 0;
    while i < table.len() {
        table[i] = ln_near_one(1.0 + (i as f64 - 19.0) / 64.0);
        i += 1;
    }
    table
};

/// The exponential's table: `2^(j/64)` for `j` in `0..64`.
const EXP_TABLE: [DoubleDouble; 64] = {
    let mut table = [DoubleDouble::of(0.0); 64];
    let mut j = 0;
    while j < table.len() {
        table[j] = exp_small(LN_2.mul_f64(j as f64 / 64.0));
        j += 1;
    }
    table
};

/// ln 2 / 64 (exactly [`LN_2`] scaled).
const LN_2_BY_64: DoubleDouble = DoubleDouble {
    hi: LN_2.hi / 64.0,
    lo: LN_2.lo / 64.0,
};

/// `ln c` for `c` in [0.7, 1.43], to about 2^-104, for the tables (at
/// compile time): `ln c = 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …)` for
/// `s = (c - 1)/(c + 1)`, `|s| < 0.18`, to 30 terms.
const fn ln_near_one(c: f64) -> DoubleDouble {
    let s = DoubleDouble::of(c - 1.0).div(two_sum(c, 1.0));
    let s2 = s.mul(s);
    let mut series = DoubleDouble::of(0.0);
    let mut k = 30;
    while k >= 0 {
        series = series.mul(s2).add(reciprocal((2 * k + 1) as f64));
        k -= 1;
    }
    s.mul(series).mul_f64(2.0)
}

/// `e^t` for `|t| <= ln 2`, to about 2^-100, for the tables (at compile
/// time): `(e^(t/16))^16`, the inner power from 20 terms of its series.
const fn exp_small(t: DoubleDouble) -> DoubleDouble {
    let r = t.mul_f64(1.0 / 16.0);
    let mut series = DoubleDouble::of(0.0);
    let mut n = 20;
    while n > 0 {
        // Adds 1/n!, as (1/n)·(the previous sum's coefficient ratio):
        // Horner on 1 + r/1·(1 + r/2·(1 + r/3·(…))).
        series = series
            .mul(r)
            .mul(reciprocal(n as f64))
            .add(DoubleDouble::of(1.0));
        n -= 1;
    }
    let mut squarings = 0;
    while squarings < 4 {
        series = series.mul(series);
        squarings += 1;
    }
    series
}

/// `ln x` for a finite positive `x`: `x = m·2^e` with `m` in [√2/2, √2],
/// `c` the table's nearest step to `m` (`|m - c| <= 1/128`), and
/// `ln m = ln c + 2·atanh(s)` for `s = (m - c)/(m + c)`, `|s| < 2^-7.5`,
/// whose series reaches 2^-106 in eight terms.
fn ln(x: f64) -> DoubleDouble {
    let (mut x, mut exponent) = (x, 0);
    if x < f64::MIN_POSITIVE {
        x *= 18_014_398_509_481_984.0; // 2^54: subnormals become normal
        exponent = -54;
    }
    let bits = x.to_bits();
    exponent += ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    let step = round_small((m - 1.0) * 64.0);
    let c = 1.0 + step / 64.0;
    // m - c is exact: c is within a factor 2 of m.
    let s = DoubleDouble::of(m - c).div(two_sum(m, c));
    let s2 = s.mul(s);
    // Σ s2^k / (2k + 1), k = 0..=7, by Horner: from k = 4 on the terms
    // are below 2^-60 and need only floats.
    let tail = ((s2.hi / 15.0 + 1.0 / 13.0) * s2.hi + 1.0 / 11.0) * s2.hi + 1.0 / 9.0;
    let mut series = DoubleDouble::of(tail);
    for coefficient in [ONE_SEVENTH, ONE_FIFTH, ONE_THIRD, DoubleDouble::of(1.0)] {
        series = series.mul(s2).add(coefficient);
    }
    let near = s.mul(series).mul_f64(2.0);
    let table = LN_TABLE[(step + 19.0) as usize];
    LN_2.mul_f64(f64::from(exponent)).add(table).add(near)
}

/// 1/3 as a double-double (and so on below).
const ONE_THIRD: DoubleDouble = reciprocal(3.0);
const ONE_FIFTH: DoubleDouble = reciprocal(5.0);
const ONE_SEVENTH: DoubleDouble = reciprocal(7.0);
const ONE_SIXTH: DoubleDouble = reciprocal(6.0);
const ONE_24TH: DoubleDouble = reciprocal(24.0);
const ONE_120TH: DoubleDouble = reciprocal(120.0);

/// `e^t` for `|t|` below 746, rounded to a float: with
/// `t = (64q + j)·(ln 2)/64 + r` and `|r| <= (ln 2)/128`,
/// `e^t = 2^q · 2^(j/64) · e^r`, the middle factor from the table and
/// the last from eleven terms of its series; rounded once, also where
/// the result is subnormal.
fn exp(t: DoubleDouble) -> f64 {
    let n = round_small(t.hi * (64.0 / LN_2.hi));
    let r = t.add(LN_2_BY_64.mul_f64(-n));
    // Σ r^i / i!, i = 0..=10: from i = 6 on the terms are below 2^-54.
    let x = r.hi;
    let tail = ((((x / 3_628_800.0 + 1.0 / 362_880.0) * x + 1.0 / 40_320.0) * x + 1.0 / 5_040.0)
        * x
        + 1.0 / 720.0)
        * x;
    let mut series = DoubleDouble::of(tail).add(ONE_120TH);
    for coefficient in [ONE_24TH, ONE_SIXTH, DoubleDouble::of(0.5)] {
        series = series.mul(r).add(coefficient);
    }
    series = series.mul(r).add(DoubleDouble::of(1.0));
    series = series.mul(r).add(DoubleDouble::of(1.0));
    let n = n as i32;
    let (q, j) = (n.div_euclid(64), n.rem_euclid(64));
    scale(EXP_TABLE[j as usize].mul(series), q)
}

/// `value·2^k` rounded to a float, for `value` in [1, 2): rounded
/// then scaled exactly where the result is normal (or overflows); where
/// it is subnormal, rounded once to the subnormal spacing 2^-1074.
fn scale(value: DoubleDouble, k: i32) -> f64 {
    if k >= -1021 {
        let half = k / 2;
        return (value.hi + value.lo) * power_of_two(half) * power_of_two(k - half);
    }
    // In units of 2^-1074 the value is below 2^53: round it to a whole
    // number, halfway cases to even, from both of its parts.
    let units = power_of_two(k + 1074);
    let (high, low) = (value.hi * units, value.lo * units);
    let whole = high.floor();
    let fraction = (high - whole) + low;
    let rounded = if fraction > 0.5 || (fraction == 0.5 && whole % 2.0 != 0.0) {
        whole + 1.0
    } else if fraction < -0.5 {
        whole - 1.0
    } else {
        whole
    };
    rounded * f64::from_bits(1)
}

#[cfg(test)]
mod tests {
    use super::pow;

    /// How many floats apart `a` and `b` are (0 when they are the same
    /// float or both NaN; zeros of different signs are 1 apart).
    fn ulps_apart(a: f64, b: f64) -> u64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0
            } else {
                u64::MAX
            };
        }
        let ordered = |x: f64| {
            let bits = x.to_bits() as i64;
            if bits < 0 {
                i64::MIN - bits - 1
            } else {
                bits
            }
        };
        ordered(a).abs_diff(ordered(b))
    }

    /// A repeatable stream of floats in [0, 1).
    fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Compares `pow` with the platform's `powf` on `count` pairs from
    /// `pair`: at most one float apart each time, and the same float but
    /// for at most one pair in two hundred. glibc's `pow` errs by up to
    /// 0.52 of a unit in the last place and so rounds the wrong way when
    /// the exact power is close to halfway between two floats: about one
    /// pair in a thousand of these (the test after this one has some).
    fn agrees_with_the_platform(count: usize, mut pair: impl FnMut() -> (f64, f64)) {
        let mut different = 0;
        for _ in 0..count {
            let (x, y) = pair();
            let (ours, theirs) = (pow(x, y), x.powf(y));
            let apart = ulps_apart(ours, theirs);
            assert!(
                apart <= 1,
                "pow({x:e}, {y:e}) = {ours:e}, the platform's {theirs:e}"
            );
            different += usize::from(apart != 0);
        }
        assert!(different * 200 <= count, "{different} of {count} differ");
    }

    #[test]
    fn special_cases_are_c99s() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -0.5,
            2.0,
            -2.0,
            3.0,
            -3.0,
            2.5,
            -2.5,
            1e300,
            -1e300,
            5e-324,
            -5e-324,
            9_007_199_254_740_993.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for &x in &values {
            for &y in &values {
                let (ours, theirs) = (pow(x, y), x.powf(y));
                assert_eq!(
                    ulps_apart(ours, theirs),
                    0,
                    "pow({x:e}, {y:e}) = {ours:e}, the platform's {theirs:e}"
                );
            }
        }
    }

    #[test]
    fn exact_powers_are_exact() {
        for n in -1074..=1023 {
            let exact = if n >= -1022 {
                super::power_of_two(n)
            } else {
                f64::from_bits(1 << (n + 1074))
            };
            assert_eq!(pow(2.0, f64::from(n)), exact, "2^{n}");
        }
        let mut power = 1.0;
        for n in 0..=22 {
            assert_eq!(pow(10.0, f64::from(n)), power, "10^{n}");
            assert_eq!(
                pow(-10.0, f64::from(n)),
                if n % 2 == 0 { power } else { -power }
            );
            power *= 10.0;
        }
        assert_eq!(pow(0.5, -0.5), std::f64::consts::SQRT_2);
        assert_eq!(pow(2.0, 0.5), std::f64::consts::SQRT_2);
        assert_eq!(pow(9.0, 1.5), 27.0);
        assert_eq!(pow(-3.0, 3.0), -27.0);
        assert_eq!(pow(1e-200, 2.0), 0.0);
        assert_eq!(pow(1e200, 2.0), f64::INFINITY);
        assert_eq!(pow(-1e200, 3.0), f64::NEG_INFINITY);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
    }

    /// Pairs whose power glibc 2.36 rounds the wrong way (one float off),
    /// with the correctly rounded result, as the bits of `x`, `y` and
    /// `x^y`; each checked against the exact power to 100 digits.
    #[test]
    fn platform_misroundings_are_rounded_correctly() {
        let cases: [(u64, u64, u64); 12] = [
            (0x3fed1debd247eb29, 0x40bccec19133dc44, 0x0125b12d673f8033),
            (0x3fed97f6685af505, 0x40bb53e0bbc7b865, 0x0e9f1c057631c739),
            (0x3feddef524f5fc77, 0x40baf1fb31c21983, 0x151c5649e569e650),
            (0x3fed26e57fbc9595, 0x40bc02d4e92bfd37, 0x03a9642a99450c57),
            (0x405678cc408c73cc, 0xbfe7246e1ac7ebe0, 0x3fa3c93edcd45ec6),
            (0x3ff1d994f8c0d26c, 0x4008c50f1a05a558, 0x3ff67388ba4e451d),
            (0x3fece2a78bbc0c63, 0x40b9d21556cf7073, 0x02e63409a9f14673),
            (0x40310174d43593e5, 0xc00a40d997d776d8, 0x3f17ff04cc53125c),
            (0x403ef84f28afd236, 0xc0216b5205981ff8, 0x3d3d1a3493165f5e),
            (0x405677f4ff658882, 0x40305e6fe40fd246, 0x4692c8cda6771b55),
            (0x4048035a81b78d9f, 0xbfeed9cf4948c280, 0x3f98809696c06803),
            (0x403066ff0e770690, 0x40292d2e08daf2d0, 0x431bef4bd454b564),
        ];
        for (x, y, expected) in cases {
            let (x, y) = (f64::from_bits(x), f64::from_bits(y));
            assert_eq!(pow(x, y).to_bits(), expected, "pow({x:e}, {y:e})");
        }
    }

    #[test]
    fn random_powers_agree_with_the_platforms() {
        let mut next = uniform(0x9e37_79b9_7f4a_7c15);
        // Bases near 1 and far from it, exponents small and large.
        agrees_with_the_platform(100_000, || (next() * 100.0, next() * 40.0 - 20.0));
        agrees_with_the_platform(50_000, || (0.5 + next(), next() * 2000.0 - 1000.0));
        agrees_with_the_platform(50_000, || {
            let x = f64::from_bits(next().to_bits() ^ (u64::from(next() < 0.5) << 63));
            (x * 1e6, (next() * 60.0 - 30.0).round())
        });
        agrees_with_the_platform(20_000, || (next() * 1e300 + 1e-300, next() * 2.0 - 1.0));
    }

    /// The two ways to a whole power agree: repeated squaring and
    /// `exp(n·ln x)`, each correctly rounded.
    #[test]
    fn whole_powers_agree_with_the_general_path() {
        let mut next = uniform(0x5851_f42d_4c95_7f2d);
        for _ in 0..50_000 {
            let x = next() * 20.0 + 1e-3;
            let n = (next() * 128.0 - 64.0).round() as i32;
            let Some(squared) = super::integer_power(x, n) else {
                continue;
            };
            let general = super::exp(super::ln(x).mul_f64(f64::from(n)));
            assert_eq!(squared, general, "{x:e}^{n}");
        }
    }

    #[test]
    fn results_near_the_ends_of_the_range_agree() {
        let mut next = uniform(0x2545_f491_4f6c_dd1d);
        // Results that overflow, are subnormal or round to zero.
        agrees_with_the_platform(20_000, || (0.9 + next() * 0.05, 6_500.0 + next() * 1_000.0));
        agrees_with_the_platform(20_000, || (1.5 + next() * 0.5, 1_000.0 + next() * 800.0));
        agrees_with_the_platform(20_000, || (2.0, -1_022.0 - next() * 60.0));
        agrees_with_the_platform(5_000, || (5e-324 + next() * 1e-310, 0.5 + next()));
    }
}
