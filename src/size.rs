//! Byte sizes as users type them (`32K`, `1M`, `16G`) and the sweep of sizes between -b and -e.

use std::fmt;

/// Parses a byte count with an optional K, M, G or T suffix (powers of 1024, as nccl-tests).
/// A trailing `B` or `iB` is accepted (`64MB`, `64MiB`), as is a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty size".into());
    }
    let upper = trimmed.to_ascii_uppercase();
    let without_b = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match without_b.chars().last() {
        Some('K') => (&without_b[..without_b.len() - 1], 10),
        Some('M') => (&without_b[..without_b.len() - 1], 20),
        Some('G') => (&without_b[..without_b.len() - 1], 30),
        Some('T') => (&without_b[..without_b.len() - 1], 40),
        _ => (without_b, 0),
    };
    let value: u64 = digits.trim().parse().map_err(|_| {
        format!("'{text}' is not a size: use a whole number with an optional K, M, G or T suffix (powers of 1024), e.g. 32K, 64M, 16G")
    })?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// How the sweep moves from one size to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "by", rename_all = "snake_case")]
pub enum Step {
    /// Multiply by this factor (-f).
    Factor(u64),
    /// Add this many bytes (-i).
    Bytes(u64),
}

/// The sizes from `min` to `max` inclusive; `max` is always the last size when it is not reached exactly
/// by stepping, as long as it differs from the previous one (users asking -e 100M expect a 100M row).
pub fn sweep(min: u64, max: u64, step: Step) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut size = min;
    while size <= max {
        sizes.push(size);
        let next = match step {
            Step::Factor(f) => size.saturating_mul(f),
            Step::Bytes(b) => size.saturating_add(b),
        };
        if next == size {
            break;
        }
        size = next;
    }
    if sizes.last().is_some_and(|&last| last != max) {
        sizes.push(max);
    }
    sizes
}

/// A byte count printed the way the flags take it: 32K, 64M, 16G, or bytes when not a round multiple.
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if n >= 1 << shift && n % (1 << shift) == 0 {
                return write!(f, "{}{}", n >> shift, unit);
            }
        }
        write!(f, "{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes_as_powers_of_1024() {
        assert_eq!(parse_size("32K"), Ok(32 * 1024));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("16G"), Ok(16u64 << 30));
        assert_eq!(parse_size("2T"), Ok(2u64 << 40));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for bad in ["12Q", "", "K", "-1M", "1.5G", "abc", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad} should not parse");
        }
        assert!(parse_size("12Q").unwrap_err().contains("12Q"));
    }

    #[test]
    fn sweeps_by_factor_and_by_step() {
        assert_eq!(
            sweep(32 << 10, 256 << 10, Step::Factor(2)),
            vec![32 << 10, 64 << 10, 128 << 10, 256 << 10]
        );
        assert_eq!(sweep(1 << 20, 1 << 20, Step::Factor(2)), vec![1 << 20]);
        assert_eq!(sweep(0, 3000, Step::Bytes(1000)), vec![0, 1000, 2000, 3000]);
        // A maximum that stepping skips over is still measured.
        assert_eq!(
            sweep(1 << 20, 5 << 20, Step::Factor(2)),
            vec![1 << 20, 2 << 20, 4 << 20, 5 << 20]
        );
        // The mission's default sweep: 32K to 16G by 2 is 20 sizes.
        let default = sweep(32 << 10, 16 << 30, Step::Factor(2));
        assert_eq!(default.len(), 20);
        assert_eq!(*default.last().unwrap(), 16u64 << 30);
    }

    #[test]
    fn a_factor_of_one_or_a_zero_step_does_not_loop_forever() {
        assert_eq!(sweep(8, 64, Step::Factor(1)), vec![8, 64]);
        assert_eq!(sweep(8, 64, Step::Bytes(0)), vec![8, 64]);
        assert_eq!(sweep(0, 64, Step::Factor(2)), vec![0, 64]);
    }

    #[test]
    fn prints_sizes_like_the_flags() {
        assert_eq!(HumanSize(32 << 10).to_string(), "32K");
        assert_eq!(HumanSize(16u64 << 30).to_string(), "16G");
        assert_eq!(HumanSize(1000).to_string(), "1000");
        assert_eq!(HumanSize(3 << 19).to_string(), "1536K");
    }
}
