//! The `--expect` gate for pre-deployment checks: rules parsed from the command line, judged over the
//! rows after the sweep, each with a verdict that says what it covered and why it failed. The gate never
//! fails open: a rule that covers no measured value fails.
//!
//! Syntax (docs/FLEET.md): `[COLLECTIVE:]METRIC OP VALUE[UNIT][@RANGE]`, e.g.
//! `all_reduce:busbw>=180@1G-16G`, `busbw>=0.9peak@64M-`, `all_reduce:time<=50us@-64K`; GPU telemetry
//! rules `no-throttle[@RANGE]` (short for `throttled<=0`) and `clock>=0.9max[@RANGE]`; the whole run's
//! `no-link-errors` (short for `link_errors<=0`: no RDMA port or NVLink error counter rose or was reset).

use crate::collective::Collective;
use crate::error::{Error, ExitCode, Result};
use crate::fleet::slow::{describe, measurements};
use crate::report::document::{BusBwFigure, Measurement, Row};
use crate::report::port_errors::LinkErrorReport;
// The stored form lives in the report layer so that report/ never depends on fleet/.
pub use crate::report::verdicts::{GateReport, MinBwCheck, Verdict};
use crate::size::{parse_size, HumanSize};
use serde::Serialize;
use std::fmt;

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Bus bandwidth, GB/s.
    BusBw,
    /// Algorithm bandwidth, GB/s.
    AlgBw,
    /// nccl-tests' time, microseconds.
    Time,
    /// 99th percentile of per-iteration times, microseconds (needs per-iteration stats).
    P99,
    /// Coefficient of variation of per-iteration times, percent (needs per-iteration stats).
    Cv,
    /// Ranks whose GPU gave a throttle reason while the row ran (needs telemetry).
    Throttled,
    /// The lowest SM clock of any rank while the row ran, as a fraction of its GPU's maximum (needs
    /// telemetry).
    Clock,
    /// RDMA port error counts that rose while the run went, over every port of every host (judged
    /// once for the whole run, not per row).
    LinkErrors,
}

impl Metric {
    fn parse(text: &str) -> Option<Metric> {
        match text.trim().to_ascii_lowercase().as_str() {
            "busbw" => Some(Metric::BusBw),
            "algbw" => Some(Metric::AlgBw),
            "time" => Some(Metric::Time),
            "p99" => Some(Metric::P99),
            "cv" => Some(Metric::Cv),
            "throttled" => Some(Metric::Throttled),
            "clock" => Some(Metric::Clock),
            "link_errors" => Some(Metric::LinkErrors),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::BusBw => "busbw",
            Metric::AlgBw => "algbw",
            Metric::Time => "time",
            Metric::P99 => "p99",
            Metric::Cv => "cv",
            Metric::Throttled => "throttled",
            Metric::Clock => "clock",
            Metric::LinkErrors => "link_errors",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::BusBw | Metric::AlgBw => "GB/s",
            Metric::Time | Metric::P99 => "us",
            Metric::Cv => "%",
            Metric::Throttled => "ranks",
            Metric::Clock => "x max SM clock",
            Metric::LinkErrors => "errors",
        }
    }

    /// True for the rules judged on GPU telemetry.
    pub fn needs_telemetry(self) -> bool {
        matches!(self, Metric::Throttled | Metric::Clock)
    }

    /// What a measurement must carry for this metric, when it is not always there.
    fn needs(self) -> &'static str {
        if self.needs_telemetry() {
            "GPU telemetry (NVML readings of every rank)"
        } else if self == Metric::LinkErrors {
            "the run's RDMA port error counters, which a row does not carry"
        } else {
            "per-iteration statistics"
        }
    }

    fn is_bandwidth(self) -> bool {
        matches!(self, Metric::BusBw | Metric::AlgBw)
    }

    /// The value of this metric in a measurement of `row`; None when it lacks it.
    fn of(self, row: &Row, m: &Measurement) -> Option<f64> {
        match self {
            Metric::BusBw => Some(m.busbw_gbps),
            Metric::AlgBw => Some(m.algbw_gbps),
            Metric::Time => Some(m.time_us),
            Metric::P99 => m.stats.as_ref().map(|s| s.p99_us),
            Metric::Cv => m.stats.as_ref().map(|s| s.cv_percent),
            Metric::Throttled => every_rank(row, |t| Some(f64::from(u8::from(t.throttled()))))
                .map(|v| v.iter().sum()),
            Metric::Clock => every_rank(row, |t| t.sm_clock_of_max)
                .map(|v| v.into_iter().fold(f64::INFINITY, f64::min)),
            Metric::LinkErrors => None,
        }
    }
}

/// A reading of every rank of the row; None when a rank lacks it (the gate never fails open).
fn every_rank(
    row: &Row,
    get: impl Fn(&crate::report::gpu_readings::RankTelemetry) -> Option<f64>,
) -> Option<Vec<f64>> {
    let ranks = row.telemetry.as_ref()?;
    if ranks.is_empty() {
        return None;
    }
    ranks.iter().map(|t| t.as_ref().and_then(&get)).collect()
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    AtLeast,
    AtMost,
    Above,
    Below,
}

impl Comparison {
    fn holds(self, value: f64, bound: f64) -> bool {
        // NaN compares false everywhere, so a broken value fails every rule.
        match self {
            Comparison::AtLeast => value >= bound,
            Comparison::AtMost => value <= bound,
            Comparison::Above => value > bound,
            Comparison::Below => value < bound,
        }
    }

    fn wants_large(self) -> bool {
        matches!(self, Comparison::AtLeast | Comparison::Above)
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => ">=",
            Comparison::AtMost => "<=",
            Comparison::Above => ">",
            Comparison::Below => "<",
        }
    }
}

/// The bound of a rule: an absolute number in the metric's unit, or a fraction of the peak bandwidth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Absolute(f64),
    FractionOfPeak(f64),
}

/// One parsed `--expect` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As the user typed it, for the verdict.
    pub text: String,
    /// None: every collective.
    pub collective: Option<Collective>,
    pub metric: Metric,
    pub comparison: Comparison,
    pub bound: Bound,
    /// Inclusive size range in bytes; None is an open end.
    pub min_bytes: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl GateReport {
    /// ExitCode::GateFailed when any rule failed.
    pub fn exit_code(&self) -> ExitCode {
        if self.passed {
            ExitCode::Success
        } else {
            ExitCode::GateFailed
        }
    }
}

/// A rule is recorded as the user wrote it (e.g. inside the plan of the JSON document).
impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

impl Rule {
    fn covers(&self, row: &Row) -> bool {
        self.collective.is_none_or(|c| c == row.collective)
            && self.min_bytes.is_none_or(|m| row.size_bytes >= m)
            && self.max_bytes.is_none_or(|m| row.size_bytes <= m)
    }

    fn scope(&self) -> String {
        let what = self
            .collective
            .map(|c| c.name().to_string())
            .unwrap_or_else(|| "any collective".into());
        let sizes = match (self.min_bytes, self.max_bytes) {
            (None, None) => "any size".to_string(),
            (Some(a), Some(b)) if a == b => format!("size {}", HumanSize(a)),
            (Some(a), None) => format!("sizes from {}", HumanSize(a)),
            (None, Some(b)) => format!("sizes up to {}", HumanSize(b)),
            (Some(a), Some(b)) => format!("sizes {} to {}", HumanSize(a), HumanSize(b)),
        };
        format!("{what}, {sizes}")
    }

    /// Judges the rule over every covered value (both placements); `peak_gbps` resolves fractions of
    /// the peak.
    pub fn judge(&self, rows: &[Row], peak_gbps: Option<f64>) -> Verdict {
        let unit = self.metric.unit().to_string();
        let covered: Vec<(String, Option<f64>)> = measurements(rows)
            .filter(|(row, _, _)| self.covers(row))
            .map(|(row, placement, m)| (describe(row, placement), self.metric.of(row, m)))
            .collect();
        let fail = |reason: String, bound: Option<f64>| Verdict {
            rule: self.text.clone(),
            passed: false,
            values_judged: covered.len(),
            values_failed: covered.len(),
            worst_value: None,
            worst_at: None,
            bound,
            unit: unit.clone(),
            reason,
        };
        let bound = match self.bound {
            Bound::Absolute(b) => b,
            Bound::FractionOfPeak(f) => match peak_gbps.filter(|p| p.is_finite() && *p > 0.0) {
                Some(p) => f * p,
                None => {
                    return fail(
                        "the peak bandwidth is not known: give it with --peak GBPS or write an absolute bound".into(),
                        None,
                    )
                }
            },
        };
        if covered.is_empty() {
            return fail(
                format!(
                    "no measured value to judge ({}): the gate never passes a rule it could not check",
                    self.scope()
                ),
                Some(bound),
            );
        }
        if let Some((at, _)) = covered.iter().find(|(_, v)| v.is_none()) {
            return fail(
                format!(
                    "{} needs {}, which {at} lacks",
                    self.metric.name(),
                    self.metric.needs()
                ),
                Some(bound),
            );
        }
        let values: Vec<(String, f64)> = covered
            .into_iter()
            .map(|(at, v)| (at, v.unwrap_or(f64::NAN)))
            .collect();
        let failed = values
            .iter()
            .filter(|(_, v)| !self.comparison.holds(*v, bound))
            .count();
        // NaN is the worst of all; otherwise the smallest value for >= rules, the largest for <=.
        let worst = values
            .iter()
            .max_by(|a, b| {
                let badness = |v: f64| {
                    if v.is_nan() {
                        f64::INFINITY
                    } else if self.comparison.wants_large() {
                        -v
                    } else {
                        v
                    }
                };
                badness(a.1).total_cmp(&badness(b.1))
            })
            .cloned();
        let (worst_at, worst_value) = match worst {
            Some((at, v)) => (Some(at), Some(v)),
            None => (None, None),
        };
        let passed = failed == 0;
        let bound_text = match self.bound {
            Bound::Absolute(_) => format!("{bound:.3} {unit}"),
            Bound::FractionOfPeak(f) => format!(
                "{bound:.3} {unit} ({f} x peak {:.3})",
                peak_gbps.unwrap_or(0.0)
            ),
        };
        let reason = format!(
            "{} of {} values ({}) {} {} {bound_text}; worst {:.3} {unit} at {}",
            if passed { values.len() } else { failed },
            values.len(),
            self.scope(),
            if passed { "are" } else { "are not" },
            self.comparison.symbol(),
            worst_value.unwrap_or(f64::NAN),
            worst_at.as_deref().unwrap_or("-"),
        );
        Verdict {
            rule: self.text.clone(),
            passed,
            values_judged: values.len(),
            values_failed: failed,
            worst_value,
            worst_at,
            bound: Some(bound),
            unit,
            reason,
        }
    }
}

impl Rule {
    /// Judges a `link_errors` rule: the errors counted on every port read, a counter reset failing
    /// (its errors are unknown), and no readable counter on some host failing (never fails open).
    pub fn judge_link_errors(&self, report: Option<&LinkErrorReport>) -> Verdict {
        let bound = match self.bound {
            Bound::Absolute(b) => b,
            Bound::FractionOfPeak(_) => f64::NAN,
        };
        let mut verdict = Verdict {
            rule: self.text.clone(),
            passed: false,
            values_judged: 0,
            values_failed: 0,
            worst_value: None,
            worst_at: None,
            bound: Some(bound),
            unit: Metric::LinkErrors.unit().into(),
            reason: String::new(),
        };
        let Some(report) = report else {
            verdict.reason = "no host had a readable RDMA port or NVLink error counter (/sys/class/infiniband/*/ports/*/counters, NVML): the gate never passes a rule it could not check".into();
            return verdict;
        };
        let ports = crate::fleet::link_errors::ports_with_changes(report);
        verdict.values_judged = report.ports_read.len() + report.nvlinks_read.len();
        verdict.values_failed = ports.len();
        let total: f64 = report
            .changes
            .iter()
            .map(|c| c.delta.filter(|_| !c.reset).map_or(f64::NAN, |d| d as f64))
            .sum();
        verdict.worst_value = Some(total);
        let named: Vec<String> = ports
            .iter()
            .map(|(port, changes)| {
                let what: Vec<String> = changes
                    .iter()
                    .map(|c| crate::fleet::link_errors::describe(c))
                    .collect();
                format!("{port}: {}", what.join(", "))
            })
            .collect();
        verdict.worst_at = named.first().cloned();
        if !report.hosts_without_counters.is_empty() {
            verdict.reason = format!(
                "no RDMA port error counter could be read on {}: their links cannot be judged",
                report.hosts_without_counters.join(", ")
            );
            return verdict;
        }
        verdict.passed = self.comparison.holds(total, bound);
        let changed = if report.changes.iter().any(|c| c.reset) {
            "rose or were reset"
        } else {
            "rose"
        };
        let read = crate::fleet::link_errors::links_read(report);
        verdict.reason = if ports.is_empty() {
            format!("no error counter rose on the {read} read")
        } else if report.nvlinks_read.is_empty() {
            format!(
                "error counters {changed} on {} of {read}: {}",
                ports.len(),
                named.join("; ")
            )
        } else {
            format!(
                "error counters {changed} on {} of {} link(s) ({read}): {}",
                ports.len(),
                verdict.values_judged,
                named.join("; ")
            )
        };
        verdict
    }
}

/// Judges every rule, the row rules over `rows` and `link_errors` rules over the run's RDMA port
/// counters (None: no host had any); the gate passes only when every rule does.
pub fn judge(
    rules: &[Rule],
    rows: &[Row],
    peak_gbps: Option<f64>,
    link_errors: Option<&LinkErrorReport>,
) -> GateReport {
    let verdicts: Vec<Verdict> = rules
        .iter()
        .map(|r| match r.metric {
            Metric::LinkErrors => r.judge_link_errors(link_errors),
            _ => r.judge(rows, peak_gbps),
        })
        .collect();
    GateReport {
        passed: verdicts.iter().all(|v| v.passed),
        verdicts,
    }
}

/// NCCL_TESTS_MIN_BW=`required` judged as nccl-tests judges it: the run fails when the average bus
/// bandwidth is below 0.9 x `required`, and when there is no average to judge (the gate never fails
/// open).
pub fn judge_min_bw(required: f64, avg: Option<&BusBwFigure>) -> MinBwCheck {
    let threshold = 0.9 * required;
    let avg = avg.map(|a| a.gbps);
    MinBwCheck {
        required_gbps: required,
        threshold_gbps: threshold,
        avg_busbw_gbps: avg,
        passed: avg.is_some_and(|a| a >= threshold),
    }
}

/// The lines printed after the run, one per rule.
pub fn render(report: &GateReport) -> String {
    let mut out = String::new();
    for v in &report.verdicts {
        out.push_str(&format!(
            "# Expect {} : {} ({})\n",
            v.rule,
            if v.passed { "PASSED" } else { "FAILED" },
            v.reason
        ));
    }
    out.push_str(&format!(
        "# Gate                 : {}\n",
        if report.passed {
            "PASSED"
        } else {
            "FAILED (exit code 8)"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::row;

    fn rows() -> Vec<Row> {
        // all_reduce on 4 ranks: 1 MiB in 10 us and 64 MiB in 400 us; all_gather 1 MiB in 20 us.
        vec![
            row(Collective::AllReduce, 1 << 20, 4, 10.0),
            row(Collective::AllReduce, 64 << 20, 4, 400.0),
            row(Collective::AllGather, 1 << 20, 4, 20.0),
        ]
    }

    #[test]
    fn min_bw_fails_below_nine_tenths_as_nccl_tests_and_never_open() {
        let avg = |gbps| BusBwFigure {
            gbps,
            values: 4,
            covers: "test".into(),
        };
        assert!(judge_min_bw(100.0, Some(&avg(90.0))).passed);
        let below = judge_min_bw(100.0, Some(&avg(89.9)));
        assert!(!below.passed);
        assert_eq!(below.threshold_gbps, 90.0);
        assert!(!judge_min_bw(1.0, None).passed, "nothing measured fails");
    }

    #[test]
    fn parses_the_documented_forms() {
        let r = parse_rule("all_reduce:busbw>=180@1G-16G").unwrap();
        assert_eq!(r.collective, Some(Collective::AllReduce));
        assert_eq!(
            (r.metric, r.comparison, r.bound),
            (Metric::BusBw, Comparison::AtLeast, Bound::Absolute(180.0))
        );
        assert_eq!((r.min_bytes, r.max_bytes), (Some(1 << 30), Some(16 << 30)));
        let r = parse_rule("busbw>=0.9peak@64M-").unwrap();
        assert_eq!(r.collective, None);
        assert_eq!(r.bound, Bound::FractionOfPeak(0.9));
        assert_eq!((r.min_bytes, r.max_bytes), (Some(64 << 20), None));
        let r = parse_rule(" allreduce : time <= 2ms @ -64K ").unwrap();
        assert_eq!(r.bound, Bound::Absolute(2000.0));
        assert_eq!((r.min_bytes, r.max_bytes), (None, Some(64 << 10)));
        assert_eq!(
            parse_rule("busbw>=90%peak").unwrap().bound,
            Bound::FractionOfPeak(0.9)
        );
        assert_eq!(parse_rule("cv<5%@1M").unwrap().min_bytes, Some(1 << 20));
    }

    #[test]
    fn bad_rules_name_the_flag_and_the_fix() {
        for bad in [
            "",
            "busbw",
            "speed>=3",
            "busbw>=fast",
            "busbw=>3",
            "allreduc:busbw>=3",
            "time>=0.9peak",
            "busbw>=90peak",
            "busbw>=3@64M-1M",
            "busbw>=3@12Q",
            "busbw>=3@",
            "busbw>=-1",
        ] {
            let e = parse_rule(bad).expect_err(bad);
            assert!(matches!(e, Error::Usage(_)), "{bad}");
            let text = e.to_string();
            assert!(text.contains("--expect"), "{text}");
            assert!(text.contains("e.g."), "{text}");
        }
    }

    #[test]
    fn passing_and_failing_rules() {
        let rows = rows();
        // 1 MiB in 10 us is 104.9 GB/s algbw, 157.3 busbw; 64 MiB in 400 us is 167.8 algbw, 251.7 busbw.
        let pass = parse_rule("all_reduce:busbw>=150")
            .unwrap()
            .judge(&rows, None);
        assert!(pass.passed, "{}", pass.reason);
        assert_eq!((pass.values_judged, pass.values_failed), (4, 0));
        assert!((pass.worst_value.unwrap() - 157.286).abs() < 1e-2);
        let fail = parse_rule("all_reduce:busbw>=200")
            .unwrap()
            .judge(&rows, None);
        assert!(!fail.passed);
        assert_eq!(fail.values_failed, 2);
        assert!(fail.worst_at.as_deref().unwrap().contains("1M"));
        let time = parse_rule("time<=15us@-1M").unwrap().judge(&rows, None);
        // all_gather at 1 MiB takes 20 us.
        assert!(!time.passed);
        assert_eq!(time.worst_value, Some(20.0));
        assert!(time.worst_at.unwrap().starts_with("all_gather"));
    }

    #[test]
    fn a_rule_without_values_fails() {
        let v = parse_rule("busbw>=1@1G-").unwrap().judge(&rows(), None);
        assert!(!v.passed);
        assert_eq!(v.values_judged, 0);
        assert!(v.reason.contains("no measured value"), "{}", v.reason);
        let v = parse_rule("broadcast:busbw>=1")
            .unwrap()
            .judge(&rows(), None);
        assert!(!v.passed);
    }

    #[test]
    fn fraction_of_peak_needs_the_peak() {
        let rule = parse_rule("all_reduce:busbw>=0.5peak@64M").unwrap();
        let unknown = rule.judge(&rows(), None);
        assert!(!unknown.passed);
        assert!(unknown.reason.contains("peak"), "{}", unknown.reason);
        assert!(rule.judge(&rows(), Some(400.0)).passed);
        assert!(!rule.judge(&rows(), Some(600.0)).passed);
    }

    #[test]
    fn broken_values_fail() {
        let mut rows = rows();
        rows[0].out_of_place.as_mut().unwrap().busbw_gbps = f64::NAN;
        let v = parse_rule("busbw>=1").unwrap().judge(&rows, None);
        assert!(!v.passed);
        assert!(v.worst_value.unwrap().is_nan());
        rows[1].in_place.as_mut().unwrap().stats = None;
        let v = parse_rule("p99<=1s").unwrap().judge(&rows, None);
        assert!(!v.passed);
        assert!(v.reason.contains("statistics"));
    }

    #[test]
    fn gate_passes_only_when_every_rule_does() {
        let rules = parse_rules(&["busbw>=1".into(), "time<=1s".into()]).unwrap();
        let report = judge(&rules, &rows(), None, None);
        assert!(report.passed);
        assert_eq!(report.exit_code(), ExitCode::Success);
        let rules = parse_rules(&["busbw>=1".into(), "time<=1us".into()]).unwrap();
        let report = judge(&rules, &rows(), None, None);
        assert!(!report.passed);
        assert_eq!(report.exit_code().code(), 8);
        let text = render(&report);
        assert!(text.contains("PASSED") && text.contains("FAILED"), "{text}");
        assert_eq!(
            serde_json::to_value(&rules[1]).unwrap(),
            serde_json::json!("time<=1us")
        );
        let back: GateReport =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back.verdicts.len(), 2);
    }

    #[test]
    fn no_link_errors_fails_on_a_rise_a_reset_a_host_without_counters_or_none_at_all() {
        use crate::fleet::link_errors::{compare, merge};
        use crate::topo::port_counters::PortCounters;
        let port = |n: u64| PortCounters {
            device: "mlx5_3".into(),
            port: 1,
            counters: [("symbol_error".to_string(), n)].into(),
        };
        let rule = parse_rule("no-link-errors").unwrap();
        assert_eq!(
            (rule.metric, rule.comparison, rule.bound),
            (Metric::LinkErrors, Comparison::AtMost, Bound::Absolute(0.0))
        );
        for bad in ["all_reduce:no-link-errors", "no-link-errors@1M-"] {
            let e = parse_rule(bad).expect_err(bad).to_string();
            assert!(e.contains("whole run"), "{e}");
        }
        let judge_one = |r: Option<LinkErrorReport>| {
            judge(std::slice::from_ref(&rule), &rows(), None, r.as_ref())
        };

        let quiet = merge([compare("a", &[port(5)], &[port(5)])]);
        let gate = judge_one(quiet);
        assert!(gate.passed, "{:?}", gate.verdicts);
        assert_eq!(gate.verdicts[0].values_judged, 1);

        let rose = merge([
            compare("a", &[port(5)], &[port(5)]),
            compare("node7", &[port(5)], &[port(1209)]),
        ]);
        let gate = judge_one(rose.clone());
        assert_eq!(gate.exit_code(), ExitCode::GateFailed);
        let v = &gate.verdicts[0];
        assert_eq!((v.values_judged, v.values_failed), (2, 1));
        assert_eq!(v.worst_value, Some(1204.0));
        assert_eq!(
            v.worst_at.as_deref(),
            Some("node7 mlx5_3 port 1: symbol_error +1204")
        );
        // A bound that allows them passes.
        let lenient = parse_rule("link_errors<=2000").unwrap();
        assert!(lenient.judge_link_errors(rose.as_ref()).passed);

        let reset = merge([compare("a", &[port(5)], &[port(0)])]);
        let v = rule.judge_link_errors(reset.as_ref());
        assert!(!v.passed);
        assert!(v.reason.contains("reset"), "{}", v.reason);
        assert!(!lenient.judge_link_errors(reset.as_ref()).passed);

        let partial = merge([compare("a", &[port(5)], &[port(5)]), compare("b", &[], &[])]);
        let v = rule.judge_link_errors(partial.as_ref());
        assert!(!v.passed);
        assert!(v.reason.contains("on b"), "{}", v.reason);

        let v = rule.judge_link_errors(None);
        assert!(!v.passed);
        assert!(v.reason.contains("never passes"), "{}", v.reason);
        // The row rules alone do not see link errors.
        assert!(!rule.judge(&rows(), None).passed);
    }

    fn with_readings(mut row: Row, clocks: &[Option<(f64, bool)>]) -> Row {
        use crate::report::gpu_readings::{Range, RankTelemetry};
        row.telemetry = Some(
            clocks
                .iter()
                .map(|c| {
                    c.map(|(ratio, throttled)| RankTelemetry {
                        samples: 1,
                        sm_clock_mhz: Some(Range {
                            min: ratio * 1980.0,
                            max: 1980.0,
                        }),
                        sm_clock_of_max: Some(ratio),
                        throttle_reasons: if throttled {
                            vec!["sw_power_cap".into()]
                        } else {
                            vec![]
                        },
                        ..RankTelemetry::default()
                    })
                })
                .collect(),
        );
        row
    }

    #[test]
    fn telemetry_rules_judge_every_rank_and_fail_without_readings() {
        let r = parse_rule("all_reduce:no-throttle@1M-").unwrap();
        assert_eq!(
            (r.metric, r.comparison, r.bound),
            (Metric::Throttled, Comparison::AtMost, Bound::Absolute(0.0))
        );
        assert_eq!(r.min_bytes, Some(1 << 20));
        assert_eq!(
            parse_rule("clock>=90%max").unwrap().bound,
            Bound::Absolute(0.9)
        );
        assert_eq!(
            parse_rule("clock >= 0.85").unwrap().bound,
            Bound::Absolute(0.85)
        );
        assert!(matches!(parse_rule("clock>=1.2max"), Err(Error::Usage(_))));

        let calm = vec![with_readings(
            row(Collective::AllReduce, 1 << 20, 2, 10.0),
            &[Some((0.99, false)), Some((0.97, false))],
        )];
        let hot = vec![with_readings(
            row(Collective::AllReduce, 1 << 20, 2, 10.0),
            &[Some((0.99, false)), Some((0.71, true))],
        )];
        let none = vec![row(Collective::AllReduce, 1 << 20, 2, 10.0)];
        let partial = vec![with_readings(
            row(Collective::AllReduce, 1 << 20, 2, 10.0),
            &[Some((0.99, false)), None],
        )];
        let no_throttle = parse_rule("no-throttle").unwrap();
        assert!(no_throttle.judge(&calm, None).passed);
        let v = no_throttle.judge(&hot, None);
        assert!(!v.passed);
        assert_eq!(v.worst_value, Some(1.0));
        let clock = parse_rule("clock>=0.9max").unwrap();
        assert!(clock.judge(&calm, None).passed);
        let v = clock.judge(&hot, None);
        assert!(!v.passed);
        assert!((v.worst_value.unwrap() - 0.71).abs() < 1e-12);
        for rows in [&none, &partial] {
            let v = no_throttle.judge(rows, None);
            assert!(!v.passed);
            assert!(v.reason.contains("GPU telemetry"), "{}", v.reason);
        }
    }
}
