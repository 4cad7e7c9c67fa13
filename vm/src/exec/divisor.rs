//! Division by a constant: `x / 10` and `x % 1000003` on ints, where the
//! divisor is a literal the compiler put in the program's constants.
//!
//! A 64-bit hardware division takes tens of cycles, which is most of a
//! loop like `s = (s + i * i) % 1000003`. A divisor known in advance is
//! turned, once per run, into a "magic" multiplier and a shift, so that a
//! quotient is a multiply-high and a shift (Granlund and Montgomery's
//! method: the fast path only takes dividends at or above zero, which have
//! 63 significant bits, so the multiplier for 63-bit numerators fits in 64
//! bits and needs no correction step). The interpreter prepares one [`Divisor`] per
//! constant when it first meets a program (`Run::divisors`) and takes the
//! fast path for dividends at or above zero; every other case (a negative
//! dividend, a divisor below 2) goes to `checked_div`/`checked_rem`, so
//! results and errors are exactly those of `/` and `%`. The unit tests
//! compare both paths with Rust's operators over many values.

use crate::program::Constant;

/// A divisor prepared for fast division: its value and, when it is at least
/// 2, the multiplier and shift that divide by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Divisor {
    /// The divisor itself.
    value: i64,
    /// `ceil(2^(63 + l) / value)` with `l = ceil(log2(value))`, below
    /// 2^64 (only for `value >= 2`).
    magic: u64,
    /// `l - 1`: the quotient is the high half of `magic * n` shifted right
    /// by it.
    shift: u32,
}

impl Divisor {
    /// Prepares division by `value`. Any value is accepted; below 2 only
    /// the slow path is used.
    ///
    /// For `d = value >= 2`, `l = ceil(log2(d))` and `m = ceil(2^(63 + l) /
    /// d)`: `2^(63 + l) <= m * d < 2^(63 + l) + d <= 2^(63 + l) + 2^l`, so
    /// by Granlund and Montgomery's theorem 4.2 `floor(n / d) = floor(m *
    /// n / 2^(63 + l))` for every `0 <= n < 2^63`; and `m < 2^64`, because
    /// `d > 2^(l - 1)` (or `m = 2^63` when `d = 2^l`).
    pub(crate) fn new(value: i64) -> Divisor {
        let Ok(d) = u64::try_from(value) else {
            return Divisor::slow(value);
        };
        if d < 2 {
            return Divisor::slow(value);
        }
        let l = 64 - (d - 1).leading_zeros();
        let numerator = 1u128 << (63 + l);
        let magic = numerator.div_ceil(u128::from(d));
        debug_assert!(magic < 1u128 << 64, "the multiplier of {d} fits in 64 bits");
        Divisor {
            value,
            magic: magic as u64,
            shift: l - 1,
        }
    }

    /// The divisor a constant gives: an int's value, or 0 (never used:
    /// the validator accepts only int constants as divisors).
    pub(crate) fn of_constant(constant: &Constant) -> Divisor {
        match constant {
            Constant::Int(value) => Divisor::new(*value),
            _ => Divisor::slow(0),
        }
    }

    /// A divisor for which only the slow path is taken.
    fn slow(value: i64) -> Divisor {
        Divisor {
            value,
            magic: 0,
            shift: 0,
        }
    }

    /// The divisor's value.
    pub(crate) fn value(self) -> i64 {
        self.value
    }

    /// `n / value` as `i64::checked_div` gives it.
    #[inline(always)]
    pub(crate) fn div(self, n: i64) -> Option<i64> {
        if n >= 0 && self.value >= 2 {
            Some(self.unsigned_quotient(n as u64) as i64)
        } else {
            n.checked_div(self.value)
        }
    }

    /// `n % value` as `i64::checked_rem` gives it.
    #[inline(always)]
    pub(crate) fn rem(self, n: i64) -> Option<i64> {
        if n >= 0 && self.value >= 2 {
            let n = n as u64;
            Some((n - self.unsigned_quotient(n) * self.value as u64) as i64)
        } else {
            n.checked_rem(self.value)
        }
    }

    /// `n / value` for `value >= 2` and `n < 2^63` (see [`Divisor::new`]).
    #[inline(always)]
    fn unsigned_quotient(self, n: u64) -> u64 {
        let high = ((u128::from(self.magic) * u128::from(n)) >> 64) as u64;
        high >> self.shift
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;

    /// Dividends of every size and sign, the extremes among them.
    fn numbers(count: usize) -> impl Iterator<Item = i64> {
        let mut next = crate::test_noise(0x2545_f491_4f6c_dd1d);
        (0..count).map(move |k| {
            let state = next();
            match k % 6 {
                0 => state as i64,
                1 => (state >> 20) as i64,
                2 => (state >> 44) as i64,
                3 => i64::MIN + k as i64,
                4 => i64::MAX - k as i64,
                _ => k as i64 - 3,
            }
        })
    }

    fn check(divisor: i64) {
        let prepared = Divisor::new(divisor);
        for n in numbers(600).chain([0, 1, divisor, divisor.wrapping_sub(1), i64::MAX, i64::MIN]) {
            assert_eq!(prepared.div(n), n.checked_div(divisor), "{n} / {divisor}");
            assert_eq!(prepared.rem(n), n.checked_rem(divisor), "{n} % {divisor}");
            for multiple in [n / divisor.max(1), 3] {
                let near = multiple.wrapping_mul(divisor);
                for m in [near.wrapping_sub(1), near, near.wrapping_add(1)] {
                    assert_eq!(prepared.div(m), m.checked_div(divisor), "{m} / {divisor}");
                    assert_eq!(prepared.rem(m), m.checked_rem(divisor), "{m} % {divisor}");
                }
            }
        }
    }

    #[test]
    fn small_divisors_agree_with_the_operators() {
        for divisor in -70..3000 {
            check(divisor);
        }
    }

    #[test]
    fn large_and_edge_divisors_agree_with_the_operators() {
        let mut divisors = vec![
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            1_000_003,
            1 << 62,
            (1 << 62) + 1,
        ];
        for bits in 1..63 {
            let power = 1i64 << bits;
            divisors.extend([power - 1, power, power + 1, -power]);
        }
        divisors.extend(numbers(300).filter(|&d| d != 0));
        for divisor in divisors {
            check(divisor);
        }
    }
}
