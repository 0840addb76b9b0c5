//! The `--expect` gate for pre-deployment checks: rules parsed from the command line, judged over the
//! rows after the sweep, each with a verdict that says what it covered and why it failed. The gate never
//! fails open: a rule that covers no measured value fails.
//!
//! Syntax (docs/FLEET.md): `[COLLECTIVE:]METRIC OP VALUE[UNIT][@RANGE]`, e.g.
//! `all_reduce:busbw>=180@1G-16G`, `busbw>=0.9peak@64M-`, `all_reduce:time<=50us@-64K`; GPU telemetry
//! rules `no-throttle[@RANGE]` (short for `throttled<=0`) and `clock>=0.9max[@RANGE]`; the whole run's
//! `no-link-errors` (short for `link_errors<=0`: no RDMA port or NVLink error counter rose or was reset).

use crate::collective::Collective;
use crate::error::ExitCode;
use crate::fleet::slow::{describe, measurements};
use crate::report::document::{BusBwFigure, Measurement, Row};
use crate::report::port_errors::LinkErrorReport;
// The stored form lives in the report layer so that report/ never depends on fleet/.
pub use crate::report::verdicts::{GateReport, MinBwCheck, Verdict};
use crate::size::HumanSize;
use serde::Serialize;
use std::fmt;

mod parse;
pub use parse::{parse_rule, parse_rules};

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
mod tests;
