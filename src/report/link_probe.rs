//! The sweep's link probe as the results document stores it (`summary.link_probe`): who took part, each
//! pair's figures and the verdict. Data only: pairs/ measures and judges, and depends on this module,
//! never the other way round; `collbench pairs` writes the same participants, cells and verdict.

use super::verdicts::Consistency;
use serde::{Deserialize, Serialize};

/// What the probe measured and concluded (the sweep's `summary.link_probe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkProbe {
    pub size_bytes: u64,
    pub repeats: usize,
    /// Each host's first rank.
    pub participants: Vec<Participant>,
    /// Each pair's median over the repeats.
    pub matrix: Vec<PairFigure>,
    pub verdict: PairsVerdict,
}

/// A host (its first rank) or a rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// "host-a" (by host) or "3 (host-a)" (by rank).
    pub name: String,
    pub host: String,
    /// The rank that exchanges for it (the first of `members`).
    pub rank: usize,
    /// Every rank that exchanges for it, in local-rank order: with --all-gpus all of its host's ranks,
    /// else just `rank`.
    #[serde(default)]
    pub members: Vec<usize>,
}

/// A cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairFigure {
    pub a: usize,
    pub b: usize,
    pub bandwidth_gbps: f64,
    pub latency_us: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowPair {
    pub a: String,
    pub b: String,
    /// The pair's median bandwidth and the median over all pairs' medians, GB/s.
    pub bandwidth_gbps: f64,
    pub percent_of_median: f64,
    /// Repeats in which it was below the threshold.
    pub consistency: Consistency,
}

/// A participant slow with most of its partners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadHost {
    pub name: String,
    /// Partners it is slow with, of all its partners.
    pub consistency: Consistency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsVerdict {
    pub threshold_percent: f64,
    pub median_gbps: f64,
    pub slow_pairs: Vec<SlowPair>,
    pub bad_hosts: Vec<BadHost>,
    /// Slow pairs whose two ends are not bad hosts.
    pub bad_links: Vec<SlowPair>,
}
