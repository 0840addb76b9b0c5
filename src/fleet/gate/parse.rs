//! Parsing `--expect` rules: the syntax, its shorthands (`no-throttle`, `no-link-errors`), bounds
//! against the hardware's peak, size ranges, and a usage error naming the rule and the fix.

use super::{Bound, Comparison, Metric, Rule};
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::size::{parse_size, HumanSize};
use std::fmt;

/// `[COLLECTIVE:]no-throttle` is `[COLLECTIVE:]throttled<=0`, `no-link-errors` is `link_errors<=0`.
fn expand_shorthand(body: &str) -> String {
    let (prefix, name) = match body.rsplit_once(':') {
        Some((c, n)) => (format!("{c}:"), n),
        None => (String::new(), body),
    };
    if name.eq_ignore_ascii_case("no-throttle") {
        format!("{prefix}throttled<=0")
    } else if name.eq_ignore_ascii_case("no-link-errors") {
        format!("{prefix}link_errors<=0")
    } else {
        body.to_string()
    }
}

const SYNTAX: &str = "write [COLLECTIVE:]METRIC OP VALUE[UNIT][@MIN-MAX], e.g. 'all_reduce:busbw>=180@1G-16G', 'busbw>=0.9peak@64M-', 'time<=50us@-64K', 'no-throttle@1M-', 'clock>=0.9max' or 'no-link-errors'; METRIC is busbw, algbw (GB/s), time, p99 (us), cv (%), throttled (ranks), clock (fraction of the GPU's max SM clock) or link_errors (RDMA port and NVLink errors during the whole run); OP is >=, <=, > or <";

fn usage(text: &str, problem: impl fmt::Display) -> Error {
    Error::Usage(format!("--expect '{text}': {problem}; {SYNTAX}"))
}

/// Parses one `--expect` rule.
pub fn parse_rule(text: &str) -> Result<Rule> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(usage(text, "empty rule"));
    }
    let (body, range) = match compact.split_once('@') {
        Some((b, r)) => (b, Some(r)),
        None => (compact.as_str(), None),
    };
    let body = expand_shorthand(body);
    let body = body.as_str();
    let op_at = body
        .find(['<', '>', '='])
        .ok_or_else(|| usage(text, "no comparison (>=, <=, > or <)"))?;
    let (lhs, rest) = body.split_at(op_at);
    let (comparison, value_text) = if let Some(v) = rest.strip_prefix(">=") {
        (Comparison::AtLeast, v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        (Comparison::AtMost, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Comparison::Above, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Comparison::Below, v)
    } else {
        return Err(usage(text, "the comparison must be >=, <=, > or <"));
    };

    let (collective, metric_text) = match lhs.split_once(':') {
        Some((c, m)) => (
            Some(c.parse::<Collective>().map_err(|e| usage(text, e))?),
            m,
        ),
        None => (None, lhs),
    };
    let metric = Metric::parse(metric_text).ok_or_else(|| {
        usage(
            text,
            format!(
                "unknown metric '{metric_text}' (busbw, algbw, time, p99, cv, throttled, clock or link_errors)"
            ),
        )
    })?;
    let bound = parse_bound(text, metric, value_text)?;
    let (min_bytes, max_bytes) = match range {
        None => (None, None),
        Some(r) => parse_range(text, r)?,
    };
    if metric == Metric::LinkErrors && (collective.is_some() || range.is_some()) {
        return Err(usage(
            text,
            "link errors are counted over the whole run, not per collective or size: drop the 'COLLECTIVE:' and '@RANGE'",
        ));
    }
    Ok(Rule {
        text: text.trim().to_string(),
        collective,
        metric,
        comparison,
        bound,
        min_bytes,
        max_bytes,
    })
}

/// Parses every rule; the first bad one is the error.
pub fn parse_rules(texts: &[String]) -> Result<Vec<Rule>> {
    texts.iter().map(|t| parse_rule(t)).collect()
}

fn parse_number(text: &str, number: &str) -> Result<f64> {
    let value: f64 = number
        .parse()
        .map_err(|_| usage(text, format!("'{number}' is not a number")))?;
    if !value.is_finite() || value < 0.0 {
        return Err(usage(
            text,
            format!("'{number}' must be a finite number of at least 0"),
        ));
    }
    Ok(value)
}

fn parse_bound(text: &str, metric: Metric, value_text: &str) -> Result<Bound> {
    let lower = value_text.to_ascii_lowercase();
    if let Some(fraction) = lower.strip_suffix("%peak") {
        return peak_bound(text, metric, parse_number(text, fraction)? / 100.0);
    }
    if let Some(fraction) = lower.strip_suffix("peak") {
        return peak_bound(text, metric, parse_number(text, fraction)?);
    }
    let (number, scale) = match metric {
        Metric::BusBw | Metric::AlgBw => match lower.strip_suffix("gb/s") {
            Some(n) => (n, 1.0),
            None => (lower.as_str(), 1.0),
        },
        Metric::Time | Metric::P99 => {
            if let Some(n) = lower.strip_suffix("us") {
                (n, 1.0)
            } else if let Some(n) = lower.strip_suffix("ms") {
                (n, 1e3)
            } else if let Some(n) = lower.strip_suffix('s') {
                (n, 1e6)
            } else {
                (lower.as_str(), 1.0)
            }
        }
        Metric::Cv => (lower.strip_suffix('%').unwrap_or(&lower), 1.0),
        Metric::Throttled | Metric::LinkErrors => (lower.as_str(), 1.0),
        Metric::Clock => {
            let ratio = if let Some(n) = lower.strip_suffix("%max") {
                parse_number(text, n)? / 100.0
            } else {
                parse_number(text, lower.strip_suffix("max").unwrap_or(&lower))?
            };
            if ratio > 1.0 {
                return Err(usage(
                    text,
                    "clock is a fraction of the GPU's maximum SM clock: write 0.9max or 90%max",
                ));
            }
            return Ok(Bound::Absolute(ratio));
        }
    };
    Ok(Bound::Absolute(parse_number(text, number)? * scale))
}

fn peak_bound(text: &str, metric: Metric, fraction: f64) -> Result<Bound> {
    if !metric.is_bandwidth() {
        return Err(usage(
            text,
            "a fraction of the peak only applies to busbw or algbw",
        ));
    }
    if fraction > 2.0 {
        return Err(usage(
            text,
            format!("{fraction} times the peak is surely a typo: write 0.9peak or 90%peak"),
        ));
    }
    Ok(Bound::FractionOfPeak(fraction))
}

fn parse_range(text: &str, range: &str) -> Result<(Option<u64>, Option<u64>)> {
    let size = |s: &str| -> Result<Option<u64>> {
        if s.is_empty() {
            Ok(None)
        } else {
            parse_size(s).map(Some).map_err(|e| usage(text, e))
        }
    };
    let (min, max) = match range.split_once('-') {
        Some((a, b)) => (size(a)?, size(b)?),
        // A single size covers exactly that size.
        None => {
            let s = size(range)?;
            if s.is_none() {
                return Err(usage(text, "nothing after '@'"));
            }
            (s, s)
        }
    };
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            return Err(usage(
                text,
                format!(
                    "the size range starts at {} above its end {}",
                    HumanSize(a),
                    HumanSize(b)
                ),
            ));
        }
    }
    Ok((min, max))
}
