//! The judgements a results document carries: the `--expect` gate's verdicts, the slow-rank attribution
//! and the consistency behind every named suspect. Data only: the rules that produce them live in
//! fleet/ (gate/, slow.rs, blame.rs), which depends on this module and never the other way round.

use serde::{Deserialize, Serialize};

/// The outcome of one rule, printed after the run and stored in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub rule: String,
    pub passed: bool,
    /// Values (row x placement) the rule covered.
    pub values_judged: usize,
    /// Values that broke the rule.
    pub values_failed: usize,
    /// The value closest to breaking the rule (or the worst break), in the metric's unit.
    pub worst_value: Option<f64>,
    /// The measurement of the worst value.
    pub worst_at: Option<String>,
    /// The bound in the metric's unit (a fraction of the peak resolved to GB/s); None when unknown.
    pub bound: Option<f64>,
    pub unit: String,
    /// Why it passed or failed, in words.
    pub reason: String,
}

/// Every verdict of a run's gate; stored in the JSON summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
}

/// NCCL_TESTS_MIN_BW's verdict, as nccl-tests judges it: the average bus bandwidth (the footer's) must
/// be at least 0.9 x the variable's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinBwCheck {
    /// NCCL_TESTS_MIN_BW, GB/s.
    pub required_gbps: f64,
    /// 0.9 x required: what the average must reach.
    pub threshold_gbps: f64,
    /// The average bus bandwidth judged; None when no row was measured (which fails).
    pub avg_busbw_gbps: Option<f64>,
    pub passed: bool,
}

/// A measurement whose slowest rank exceeded the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlaggedMeasurement {
    /// "all_reduce float sum 64M root - out-of-place": enough to find the row in the table.
    pub what: String,
    pub size_bytes: u64,
    pub placement: String,
    pub rank: usize,
    pub host: String,
    pub time_us: f64,
    pub median_us: f64,
    pub excess_percent: f64,
}

/// A rank flagged at least once in the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectRank {
    pub rank: usize,
    pub host: String,
    /// "cuda 3 NVIDIA H100 80GB HBM3" or "host memory".
    pub device: String,
    /// Measurements (row x placement) in which this rank was the slowest beyond the threshold.
    pub flagged_in: usize,
    pub worst_excess_percent: f64,
    /// The measurement of the worst excess.
    pub worst_in: String,
    /// How consistently it was the slowest: flagged_in of the judged measurements, against the chance
    /// that any one rank is the slowest (1 / ranks). Absent (zero) in documents written before it existed.
    #[serde(default)]
    pub consistency: Consistency,
}

/// A host with at least one suspect rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectHost {
    pub host: String,
    /// Its flagged ranks.
    pub ranks: Vec<usize>,
    pub flagged_in: usize,
    pub worst_excess_percent: f64,
}

/// Everything the sweep says about slow ranks; stored in the JSON summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRankReport {
    pub threshold_percent: f64,
    /// Measurements with at least two rank times, i.e. those that could be judged.
    pub judged: usize,
    pub flagged: Vec<FlaggedMeasurement>,
    /// Most often flagged first.
    pub suspect_ranks: Vec<SuspectRank>,
    pub suspect_hosts: Vec<SuspectHost>,
}

/// How consistently something was slow, and how sure the verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Consistency {
    /// Trials (measurements, rounds, partners) in which it was slow.
    pub slow_in: usize,
    /// Trials that could show it.
    pub of: usize,
    /// Probability of being slow this often or more by chance alone (a binomial tail, with the chance
    /// per trial that an innocent one has); 0 to 1. Null where no chance model applies.
    pub chance: Option<f64>,
}
