//! The period of the check inputs. For a fixed rank every generator in `Pattern::input` repeats in the
//! index (the seed and the rank only shift the phase), so inputs and every expected output can be
//! written and compared by copying and comparing the bytes of a few periods instead of computing each
//! element. This module says how long that period is and over which indices it holds.

use super::pattern::Pattern;
use crate::dtype::ReduceOp;

/// Periods longer than this are not tabulated (the per-element path is used): no pattern of a sane
/// rank count comes near it, and a table stays a few MB.
const MAX_PERIOD: u64 = 1 << 20;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Pattern {
    /// A period P shared by every rank's input over indices `0..end`: `input(r, i) == input(r, i + P)`
    /// whenever both indices are below `end`, and so for the fold over ranks too. None where P would
    /// exceed `MAX_PERIOD`, or where the generator's 64-bit arithmetic wraps below `end` (a seed near
    /// 2^64), since a wrap shifts the phase mid-buffer; the caller then computes element by element.
    pub fn period(&self, end: u64) -> Option<u64> {
        let n = self.ranks as u64;
        let limit = self.dtype.exact_integer_limit();
        let last = end.saturating_sub(1);
        let seed = self.seed;
        // `(a * index + b * rank + c * seed) mod 2^64 + extra` stays below 2^64 for every rank and
        // index, so taken modulo m it repeats with period m.
        let linear_fits = |a: u64, b: u64, c: u64, extra: u64| {
            (0..n).all(|r| {
                let phase = r.wrapping_mul(b).wrapping_add(seed.wrapping_mul(c));
                last.checked_mul(a)
                    .and_then(|v| v.checked_add(phase))
                    .and_then(|v| v.checked_add(extra))
                    .is_some()
            })
        };
        // These branches mirror `Pattern::input`'s.
        let (period, fits) = match self.op.filter(|_| self.collective.reduces()) {
            Some(op @ (ReduceOp::Sum | ReduceOp::Avg | ReduceOp::MulSum)) => {
                let k = super::pattern::sum_bound(limit, n, op);
                if k == 0 {
                    (n, last.checked_add(seed).is_some())
                } else {
                    (k + 1, linear_fits(7, 3, 5, 0))
                }
            }
            Some(ReduceOp::Prod) => {
                let t = (63 - limit.leading_zeros() as u64).min(n).min(6);
                let fits = last
                    .checked_add(seed)
                    .and_then(|v| v.checked_add(n - 1))
                    .is_some();
                ((t + 1) / gcd(t + 1, n) * n, fits)
            }
            Some(ReduceOp::Max) | Some(ReduceOp::Min) => {
                (limit.min(16) + 1, linear_fits(7, 3, 5, 0))
            }
            None => (limit.min(4096) + 1, linear_fits(3, 11, 7, 1)),
        };
        (fits && period <= MAX_PERIOD).then_some(period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::dtype::DataType;

    fn ops(c: Collective) -> Vec<Option<ReduceOp>> {
        if c.reduces() {
            ReduceOp::ALL.map(Some).to_vec()
        } else {
            vec![None]
        }
    }

    /// Checked against the definition itself, for every generator branch.
    #[test]
    fn every_input_repeats_with_the_period() {
        for c in [Collective::AllReduce, Collective::AllGather] {
            for t in DataType::ALL {
                for op in ops(c) {
                    for n in [1, 2, 3, 4, 5, 8, 12, 300] {
                        for seed in [0, 7, 1 << 40] {
                            let p = Pattern {
                                collective: c,
                                dtype: t,
                                op,
                                root: 0,
                                ranks: n,
                                seed,
                                shape: c.shape(1 << 16, t.size(), n),
                                counts: None,
                            };
                            let period = p.period(1 << 40).expect("a period");
                            for r in (0..n).step_by(n / 8 + 1) {
                                for i in (0..3 * period).chain((1 << 39)..(1 << 39) + 50) {
                                    assert_eq!(
                                        p.input(r, i),
                                        p.input(r, i + period),
                                        "{c} {t} {op:?} n={n} seed={seed} r={r} i={i}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_wrapping_seed_has_no_period() {
        let p = Pattern {
            collective: Collective::AllGather,
            dtype: DataType::Int32,
            op: None,
            root: 0,
            ranks: 2,
            seed: u64::MAX,
            shape: Collective::AllGather.shape(1 << 10, 4, 2),
            counts: None,
        };
        assert_eq!(p.period(1000), None);
        // Rank 0 at index 0: 7 * (2^64 - 1) mod 2^64 + 1 = 2^64 - 6 still fits.
        assert_eq!(p.period(1), Some(4097));
    }
}
