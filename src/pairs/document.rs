//! The typed results of `collbench pairs`: who the participants are, every pair's measurements round by
//! round, the matrix and the verdict. What `-J` writes (docs/schema/pairs.schema.json, docs/JSON.md).

use crate::fleet::gate::GateReport;
use crate::metrics::median;
use crate::report::document::{Document, DocumentHeader};
use crate::report::growing::Growing;
// The stored form lives in the report layer so that report/ never depends on pairs/.
pub use crate::report::link_probe::{PairFigure, Participant};
use crate::report::link_probe::{PairsVerdict, SearchReport};
use serde::{Deserialize, Serialize};

/// Names the document among collbench's JSON files.
pub const KIND: &str = crate::report::document::kind::PAIRS;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairsDocument {
    /// kind "pairs", versions, command line, start, life (running while rounds are still coming),
    /// environment, backend and ranks, at the top level.
    #[serde(flatten)]
    pub header: DocumentHeader,
    /// "host" (the first rank of each host stands for it) or "rank".
    pub by: String,
    /// "search" (rounds chosen from what earlier rounds showed, from 8 participants up) or "full"
    /// (every pair, the circle method); empty until the participants are known.
    #[serde(default)]
    pub method: String,
    /// true: disjoint pairs at the same time; false: one pair at a time.
    pub concurrent: bool,
    /// How many times every pair is measured (--full); 1 for the search.
    pub repeats: usize,
    /// Bytes each way of the bandwidth exchange, and of the latency exchange.
    pub size_bytes: u64,
    pub latency_size_bytes: u64,
    pub iterations: u64,
    /// --all-gpus: every rank of a host exchanged with the same local rank of the other host.
    #[serde(default)]
    pub all_gpus: bool,
    /// Checked exchanges per round (-c); 0: no check.
    #[serde(default)]
    pub check_iterations: u64,
    pub participants: Vec<Participant>,
    /// Every measurement, in the order taken; each round's are added to the file after the round.
    pub samples: Vec<PairSample>,
    /// Wrong elements over every round; null without -c or until every round has run. After the
    /// samples, with what is known only at the end, so that the file's head is written once.
    #[serde(default)]
    pub wrong_total: Option<u64>,
    /// The round being measured when the document was written (null once complete): after a failure
    /// it says which pairs were exchanging.
    pub in_flight: Option<String>,
    /// Each pair's median over the repeats (the search: over the pairs it measured); null until every
    /// round has run.
    pub matrix: Option<Vec<PairFigure>>,
    pub verdict: Option<PairsVerdict>,
    /// How the search ran; null for the full matrix and until the search has ended.
    #[serde(default)]
    pub search: Option<SearchReport>,
    pub gate: Option<GateReport>,
}

impl Document for PairsDocument {
    fn header(&self) -> &DocumentHeader {
        &self.header
    }
    fn header_mut(&mut self) -> &mut DocumentHeader {
        &mut self.header
    }
}

impl Growing for PairsDocument {
    type Item = PairSample;
    const LIST: &'static str = "samples";
    fn items(&self) -> &[PairSample] {
        &self.samples
    }
    fn items_mut(&mut self) -> &mut Vec<PairSample> {
        &mut self.samples
    }
}

/// One pair exchanging in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSample {
    pub repeat: usize,
    pub round: usize,
    /// Participant indices, a < b.
    pub a: usize,
    pub b: usize,
    /// Bytes each way / time of the slower of the two ranks, GB/s.
    pub bandwidth_gbps: f64,
    pub time_us: f64,
    /// Time of one exchange at the latency size.
    pub latency_us: f64,
    /// Rank pairs that exchanged at once for this pair (local rank i with local rank i): 1 unless
    /// --all-gpus. Bandwidth is their aggregate: lanes x bytes each way / the slowest rank's time.
    #[serde(default = "one_lane")]
    pub lanes: usize,
    /// Elements received that were not the peer's (every lane, both directions); null without -c.
    #[serde(default)]
    pub wrong: Option<u64>,
}

fn one_lane() -> usize {
    1
}

/// Each pair's samples, in (a, b) order: one pass, so a fleet's tens of thousands of pairs cost
/// O(samples log samples), not pairs x samples.
pub fn by_pair(
    samples: &[PairSample],
) -> std::collections::BTreeMap<(usize, usize), Vec<&PairSample>> {
    let mut pairs: std::collections::BTreeMap<(usize, usize), Vec<&PairSample>> =
        std::collections::BTreeMap::new();
    for s in samples {
        pairs.entry((s.a, s.b)).or_default().push(s);
    }
    pairs
}

/// Each pair's median bandwidth and latency over its samples, in (a, b) order.
pub fn matrix(samples: &[PairSample]) -> Vec<PairFigure> {
    by_pair(samples)
        .into_iter()
        .map(|((a, b), mine)| {
            let of = |f: fn(&PairSample) -> f64| {
                median(&mine.iter().map(|s| f(s)).collect::<Vec<f64>>())
            };
            PairFigure {
                a,
                b,
                bandwidth_gbps: of(|s| s.bandwidth_gbps),
                latency_us: of(|s| s.latency_us),
            }
        })
        .collect()
}

/// Participants node0000, node0001, ..., one rank each, for unit tests at fleet size.
#[cfg(test)]
pub(crate) fn test_fleet(n: usize) -> Vec<Participant> {
    let names: Vec<String> = (0..n).map(|i| format!("node{i:04}")).collect();
    test_participants(&names)
}

/// One participant per name, each its own host and rank (rank i for the i-th name), for unit tests.
#[cfg(test)]
pub(crate) fn test_participants<S: AsRef<str>>(names: &[S]) -> Vec<Participant> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Participant {
            name: n.as_ref().to_string(),
            host: n.as_ref().to_string(),
            rank: i,
            members: vec![i],
        })
        .collect()
}
