//! `--groups` and NCCL_TESTS_SPLIT spellings: how one layout says which group each rank joins.

use serde::Serialize;
use std::fmt;

/// nccl-tests' NCCL_TESTS_SPLIT operators on the MPI rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitOp {
    And,
    Or,
    Mod,
    Div,
}

/// One layout of the job into groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum GroupSpec {
    /// Consecutive blocks of K ranks (TP inside a node when K divides the ranks per host).
    Blocks(usize),
    /// Ranks r, r + K, r + 2K, ... together: K groups striding over the job.
    Stride(usize),
    /// One group per host.
    Host,
    /// NCCL_TESTS_SPLIT: the color is `rank OP value`.
    Split(SplitOp, u64),
}

impl GroupSpec {
    /// The color (group key) of `rank`; groups are the ranks of equal color.
    pub fn color(&self, rank: usize, size: usize, hosts: &[String]) -> u64 {
        let r = rank as u64;
        match *self {
            GroupSpec::Blocks(k) => r / k as u64,
            GroupSpec::Stride(k) => r % k as u64,
            GroupSpec::Host => {
                // The index of the host's first rank: hosts in order of first appearance.
                hosts[..size]
                    .iter()
                    .position(|h| *h == hosts[rank])
                    .unwrap_or(rank) as u64
            }
            GroupSpec::Split(op, v) => match op {
                SplitOp::And => r & v,
                SplitOp::Or => r | v,
                SplitOp::Mod => r.checked_rem(v).unwrap_or(r),
                SplitOp::Div => r.checked_div(v).unwrap_or(r),
            },
        }
    }
}

impl fmt::Display for GroupSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSpec::Blocks(k) => write!(f, "{k}"),
            GroupSpec::Stride(k) => write!(f, "stride:{k}"),
            GroupSpec::Host => f.write_str("host"),
            GroupSpec::Split(op, v) => {
                let name = match op {
                    SplitOp::And => "AND",
                    SplitOp::Or => "OR",
                    SplitOp::Mod => "MOD",
                    SplitOp::Div => "DIV",
                };
                write!(f, "nccl-tests:{name}{v}")
            }
        }
    }
}

/// A number as nccl-tests reads it: decimal, 0x.. or 0b...
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(b) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        u64::from_str_radix(b, 2).ok()
    } else {
        s.parse().ok()
    }
}

/// Parses an NCCL_TESTS_SPLIT value: "MOD 4", "MOD4", "%4", "AND 0x3", "&3", "OR 1", "|1", "DIV 2", "/2".
pub fn parse_split(text: &str) -> Result<GroupSpec, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let ops = [
        ("AND", SplitOp::And),
        ("&", SplitOp::And),
        ("OR", SplitOp::Or),
        ("|", SplitOp::Or),
        ("MOD", SplitOp::Mod),
        ("%", SplitOp::Mod),
        ("DIV", SplitOp::Div),
        ("/", SplitOp::Div),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(name, op)| upper.strip_prefix(name).map(|rest| (*op, rest)))
        .ok_or_else(|| {
            format!("'{t}' is not an NCCL_TESTS_SPLIT rule: use AND, OR, MOD or DIV and a number (e.g. MOD4, %4, AND 0x3)")
        })?;
    let value = number(rest).ok_or_else(|| {
        format!(
            "'{t}': '{}' is not a number (decimal, 0x.. or 0b..)",
            rest.trim()
        )
    })?;
    if matches!(op, SplitOp::Mod | SplitOp::Div) && value == 0 {
        return Err(format!("'{t}': MOD and DIV need a value above 0"));
    }
    Ok(GroupSpec::Split(op, value))
}

/// Parses an NCCL_TESTS_SPLIT_MASK value as nccl-tests does (`strtoul(value, NULL, 16)`): a hexadecimal
/// mask, "0x" optional, so "10" is 16; the colour is `rank & mask`.
pub fn parse_split_mask(text: &str) -> Result<GroupSpec, String> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u64::from_str_radix(digits, 16)
        .map(|mask| GroupSpec::Split(SplitOp::And, mask))
        .map_err(|_| {
            format!("'{t}' is not a hexadecimal mask (nccl-tests reads it in base 16: 3, 0x3, ff)")
        })
}

/// Parses one `--groups` layout: `K`, `stride:K`, `host` or `nccl-tests:RULE`.
pub fn parse_spec(text: &str) -> Result<GroupSpec, String> {
    let t = text.trim();
    let positive = |k: &str| -> Result<usize, String> {
        k.trim()
            .parse::<usize>()
            .ok()
            .filter(|&k| k > 0)
            .ok_or_else(|| format!("'{t}': a group size must be a whole number above 0"))
    };
    if t.eq_ignore_ascii_case("host") {
        Ok(GroupSpec::Host)
    } else if let Some(k) = t.strip_prefix("stride:") {
        Ok(GroupSpec::Stride(positive(k)?))
    } else if let Some(rule) = t.strip_prefix("nccl-tests:") {
        parse_split(rule)
    } else if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        Ok(GroupSpec::Blocks(positive(t)?))
    } else {
        Err(format!(
            "'{t}' is not a layout: use K (blocks of K ranks), stride:K, host, or nccl-tests:MOD4-style rules, comma-separated for several"
        ))
    }
}

/// Parses `--groups 8,4,2` into its layouts, in order, without repeats.
pub fn parse_list(text: &str) -> Result<Vec<GroupSpec>, String> {
    let mut specs = Vec::new();
    for part in text.split(',') {
        let spec = parse_spec(part)?;
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nccl_tests_split_spellings() {
        for (text, want) in [
            ("MOD 4", GroupSpec::Split(SplitOp::Mod, 4)),
            ("mod4", GroupSpec::Split(SplitOp::Mod, 4)),
            ("%2", GroupSpec::Split(SplitOp::Mod, 2)),
            ("AND 0x3", GroupSpec::Split(SplitOp::And, 3)),
            ("&0b101", GroupSpec::Split(SplitOp::And, 5)),
            ("OR 1", GroupSpec::Split(SplitOp::Or, 1)),
            ("|1", GroupSpec::Split(SplitOp::Or, 1)),
            ("DIV 2", GroupSpec::Split(SplitOp::Div, 2)),
            ("/8", GroupSpec::Split(SplitOp::Div, 8)),
        ] {
            assert_eq!(parse_split(text), Ok(want), "{text}");
        }
        assert!(parse_split("XOR 1")
            .unwrap_err()
            .contains("AND, OR, MOD or DIV"));
        assert!(parse_split("MOD 0").unwrap_err().contains("above 0"));
        assert!(parse_split("MOD x").unwrap_err().contains("not a number"));
    }

    #[test]
    fn nccl_tests_split_mask_is_hexadecimal() {
        for (text, mask) in [
            ("3", 3),
            ("10", 16),
            ("0x10", 16),
            ("ff", 255),
            (" 0XF ", 15),
            // 0b11 is hexadecimal digits to strtoul(.., 16), not binary.
            ("0b11", 0xb11),
        ] {
            assert_eq!(
                parse_split_mask(text),
                Ok(GroupSpec::Split(SplitOp::And, mask)),
                "{text}"
            );
        }
        assert!(parse_split_mask("0x3g")
            .unwrap_err()
            .contains("hexadecimal"));
        assert!(parse_split_mask("AND 3").is_err());
    }

    #[test]
    fn group_list_spellings() {
        assert_eq!(
            parse_list("8,4,2,4").unwrap(),
            vec![
                GroupSpec::Blocks(8),
                GroupSpec::Blocks(4),
                GroupSpec::Blocks(2)
            ]
        );
        assert_eq!(
            parse_list("stride:2,host,nccl-tests:MOD4").unwrap(),
            vec![
                GroupSpec::Stride(2),
                GroupSpec::Host,
                GroupSpec::Split(SplitOp::Mod, 4)
            ]
        );
        assert!(parse_list("0").unwrap_err().contains("above 0"));
        assert!(parse_list("tp4").unwrap_err().contains("stride:K"));
        for spec in parse_list("8,stride:2,host,nccl-tests:DIV2").unwrap() {
            assert_eq!(parse_spec(&spec.to_string()), Ok(spec));
        }
    }

    #[test]
    fn colors_follow_nccl_tests_arithmetic() {
        let hosts: Vec<String> = ["a", "a", "b", "b"].map(String::from).to_vec();
        let colors = |s: GroupSpec| -> Vec<u64> { (0..4).map(|r| s.color(r, 4, &hosts)).collect() };
        assert_eq!(colors(GroupSpec::Blocks(2)), [0, 0, 1, 1]);
        assert_eq!(colors(GroupSpec::Stride(2)), [0, 1, 0, 1]);
        assert_eq!(colors(GroupSpec::Host), [0, 0, 2, 2]);
        assert_eq!(colors(GroupSpec::Split(SplitOp::Mod, 2)), [0, 1, 0, 1]);
        assert_eq!(colors(GroupSpec::Split(SplitOp::Div, 2)), [0, 0, 1, 1]);
        assert_eq!(colors(GroupSpec::Split(SplitOp::And, 1)), [0, 1, 0, 1]);
        assert_eq!(colors(GroupSpec::Split(SplitOp::Or, 1)), [1, 1, 3, 3]);
    }
}
