//! When blame is earned: a rank, host or link is named only when it was slow consistently (in most of
//! the measurements or rounds that could show it), never for one bad row. One rule for the sweep's
//! slow-rank summary and for the pairwise matrix.

// The stored form lives in the report layer so that report/ never depends on fleet/.
pub use crate::report::verdicts::Consistency;

/// A named suspect is unlikely to be the slowest this often by chance: below this probability.
pub const MAX_CHANCE: f64 = 0.01;

impl Consistency {
    /// Slow in more than half of the trials, and, where a chance per trial is known, unlikely by chance.
    pub fn earned(&self) -> bool {
        2 * self.slow_in > self.of && self.chance.is_none_or(|p| p < MAX_CHANCE)
    }

    /// "slow in 5 of 6 measurements (chance 1.2e-4)".
    pub fn describe(&self, trials: &str) -> String {
        let chance = self
            .chance
            .map(|p| format!(" (by chance: {p:.1e})"))
            .unwrap_or_default();
        format!("{} of {} {trials}{chance}", self.slow_in, self.of)
    }
}

/// Consistency of `slow_in` out of `of` trials where an innocent party is slow with probability `p`
/// per trial (e.g. 1/ranks for "the slowest rank").
pub fn against_chance(slow_in: usize, of: usize, p: f64) -> Consistency {
    Consistency {
        slow_in,
        of,
        chance: Some(binomial_tail(slow_in, of, p)),
    }
}

/// Consistency by majority alone (pairs over repeats, hosts over partners).
pub fn by_majority(slow_in: usize, of: usize) -> Consistency {
    Consistency {
        slow_in,
        of,
        chance: None,
    }
}

/// P(X >= k) for X ~ Binomial(n, p), summed in log space so large n does not overflow.
pub fn binomial_tail(k: usize, n: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let ln_choose = |n: usize, i: usize| -> f64 {
        (1..=i)
            .map(|j| ((n - i + j) as f64).ln() - (j as f64).ln())
            .sum()
    };
    (k..=n)
        .map(|i| (ln_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum::<f64>()
        .min(1.0)
}

/// P(X <= k) for X ~ Binomial(n, p): how likely a suspect that is slow with probability `p` per trial
/// would show no more than `k` slow trials in `n` (the chance of clearing one that should be named).
pub fn binomial_at_most(k: usize, n: usize, p: f64) -> f64 {
    if k >= n {
        return 1.0;
    }
    1.0 - binomial_tail(k + 1, n, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_matches_hand_computed_values() {
        // P(X >= 3), n = 4, p = 1/8: 4 (1/8)^3 (7/8) + (1/8)^4.
        let exact = 4.0 * (0.125f64).powi(3) * 0.875 + (0.125f64).powi(4);
        assert!((binomial_tail(3, 4, 0.125) - exact).abs() < 1e-12);
        assert_eq!(binomial_tail(0, 5, 0.3), 1.0);
        assert_eq!(binomial_tail(6, 5, 0.3), 0.0);
        // Fair coin, 10 tosses, at least 10 heads.
        assert!((binomial_tail(10, 10, 0.5) - 1.0 / 1024.0).abs() < 1e-12);
        assert!(binomial_tail(200, 216, 0.25) < 1e-50);
        // A fair coin, 10 tosses, at most one head: 11 / 1024.
        assert!((binomial_at_most(1, 10, 0.5) - 11.0 / 1024.0).abs() < 1e-12);
        assert_eq!(binomial_at_most(3, 3, 0.5), 1.0);
        assert!((binomial_at_most(0, 7, 0.5) - 1.0 / 128.0).abs() < 1e-12);
    }

    #[test]
    fn one_slow_measurement_in_many_earns_nothing() {
        // The quiet run of issue 11: rank 2 slowest in 1 of 216 measurements on 4 ranks.
        assert!(!against_chance(1, 216, 0.25).earned());
        // Slowest in most, but 3 of 5 on 2 ranks is what a coin does.
        assert!(!against_chance(3, 5, 0.5).earned());
        assert!(against_chance(12, 12, 0.25).earned());
        assert!(by_majority(2, 3).earned());
        assert!(!by_majority(1, 2).earned());
        assert!(!by_majority(0, 0).earned());
    }
}
