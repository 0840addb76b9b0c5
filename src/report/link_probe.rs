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
    /// Each pair's median over the repeats (the search: over the pairs it measured).
    pub matrix: Vec<PairFigure>,
    pub verdict: PairsVerdict,
    /// How the search chose its rounds; null for the circle method's full matrix.
    #[serde(default)]
    pub search: Option<SearchReport>,
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
    /// Repeats (the search: samples) in which it was below the threshold, and for a bad link named by
    /// the search how likely that is by chance among all the pairs it measured.
    pub consistency: Consistency,
}

/// A participant slow with most of its partners (or, in `flaky_hosts`, in some rounds only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadHost {
    pub name: String,
    /// Partners it is slow with, of all its partners; the search adds how likely that many is for
    /// any innocent host of the fleet by chance.
    pub consistency: Consistency,
    /// The search's evidence: the partners it was slow with (the full matrix lists them in
    /// `slow_pairs`).
    #[serde(default)]
    pub slow_with: Vec<String>,
    /// The search's evidence: its rounds, and how many of them were slow.
    #[serde(default)]
    pub rounds: Option<Consistency>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsVerdict {
    pub threshold_percent: f64,
    pub median_gbps: f64,
    pub slow_pairs: Vec<SlowPair>,
    pub bad_hosts: Vec<BadHost>,
    /// Slow pairs whose two ends are not bad hosts.
    pub bad_links: Vec<SlowPair>,
    /// The search: hosts slow with more partners than chance allows but fast in some of their rounds.
    #[serde(default)]
    pub flaky_hosts: Vec<BadHost>,
    /// The search: slow pairs between hosts that are fine elsewhere, not measured often enough to be
    /// named a bad link (first seen when every host was already decided, or not slow every time).
    #[serde(default)]
    pub undecided_links: Vec<SlowPair>,
    /// The search: hosts neither named nor cleared when --max-rounds stopped it.
    #[serde(default)]
    pub undecided_hosts: Vec<String>,
}

/// How the search ran (`collbench pairs` from 8 hosts up without --full, and the sweep's link probe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The seed of the rounds' random order (the run id's unless --seed gave one).
    pub seed: u64,
    pub max_rounds: usize,
    pub rounds: usize,
    /// Every host named or cleared, and every slow pair seen before then named or measured often
    /// enough; false when --max-rounds stopped it first.
    pub sure: bool,
    /// How often an innocent host was taken to be slow in a round by chance (at least 1 %).
    pub chance_per_round: f64,
    /// Distinct pairs measured, and the most distinct partners any participant met.
    pub pairs_measured: usize,
    pub most_partners: usize,
    /// Each named host, with the round after which it was first named.
    pub first_named: Vec<NamedAfter>,
    /// Wall seconds per round, measured (null in the sweep's link probe).
    #[serde(default)]
    pub seconds_per_round: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedAfter {
    pub name: String,
    pub round: usize,
}
