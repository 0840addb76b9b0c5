//! What the search has measured so far: every sample in the order taken, and each pair's bandwidths, so
//! that judging a round costs O(samples) and asking whether two hosts have met costs O(1).

use crate::pairs::document::PairSample;
use std::collections::HashMap;

/// One pair of participants and every bandwidth measured between them (GB/s), in the order taken.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRecord {
    pub a: usize,
    pub b: usize,
    pub bandwidths: Vec<f64>,
    /// For each sample: whether the search measured the pair again because it was slow (a link
    /// retest), so that the sample says nothing about its hosts that the first did not.
    pub retest: Vec<bool>,
    /// The round of each sample.
    pub rounds: Vec<usize>,
}

impl PairRecord {
    /// The round of its first sample.
    pub fn first_round(&self) -> usize {
        self.rounds[0]
    }
}

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    hosts: usize,
    pairs: Vec<PairRecord>,
    index: HashMap<(usize, usize), usize>,
    samples: Vec<PairSample>,
}

impl Ledger {
    pub fn new(hosts: usize) -> Ledger {
        Ledger {
            hosts,
            ..Ledger::default()
        }
    }

    /// Participants in the search.
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Adds a sample; `retest` when the pair was measured again because it had been slow.
    pub fn add(&mut self, sample: PairSample, retest: bool) {
        let key = (sample.a.min(sample.b), sample.a.max(sample.b));
        let next = self.pairs.len();
        let at = *self.index.entry(key).or_insert(next);
        if at == next {
            self.pairs.push(PairRecord {
                a: key.0,
                b: key.1,
                bandwidths: Vec::new(),
                retest: Vec::new(),
                rounds: Vec::new(),
            });
        }
        self.pairs[at].bandwidths.push(sample.bandwidth_gbps);
        self.pairs[at].retest.push(retest);
        self.pairs[at].rounds.push(sample.round);
        self.samples.push(sample);
    }

    /// Every pair measured at least once, in the order first measured.
    pub fn pairs(&self) -> &[PairRecord] {
        &self.pairs
    }

    /// Every sample, in the order taken.
    pub fn samples(&self) -> &[PairSample] {
        &self.samples
    }

    pub fn into_samples(self) -> Vec<PairSample> {
        self.samples
    }

    pub fn met(&self, a: usize, b: usize) -> bool {
        self.index.contains_key(&(a.min(b), a.max(b)))
    }

    /// How many samples `a` and `b` have together.
    pub fn times_met(&self, a: usize, b: usize) -> usize {
        self.index
            .get(&(a.min(b), a.max(b)))
            .map_or(0, |&i| self.pairs[i].bandwidths.len())
    }

    /// Each round's median sample, by round index (NaN for a round without samples).
    pub fn round_medians(&self) -> Vec<f64> {
        let rounds = self.samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
        let mut of_round: Vec<Vec<f64>> = vec![Vec::new(); rounds];
        for s in &self.samples {
            of_round[s.round].push(s.bandwidth_gbps);
        }
        of_round.iter().map(|v| crate::metrics::median(v)).collect()
    }

    /// Each participant's median sample (NaN for one not measured yet).
    pub fn host_medians(&self) -> Vec<f64> {
        let mut of_host: Vec<Vec<f64>> = vec![Vec::new(); self.hosts];
        for s in &self.samples {
            of_host[s.a].push(s.bandwidth_gbps);
            of_host[s.b].push(s.bandwidth_gbps);
        }
        of_host.iter().map(|v| crate::metrics::median(v)).collect()
    }

    /// How many distinct partners each participant has met.
    pub fn partner_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.hosts];
        for p in &self.pairs {
            counts[p.a] += 1;
            counts[p.b] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::search::sample;

    #[test]
    fn a_pair_is_one_record_whichever_end_comes_first() {
        let mut ledger = Ledger::new(4);
        ledger.add(sample(2, 1, 5.0), false);
        ledger.add(sample(1, 2, 6.0), false);
        ledger.add(sample(0, 3, 7.0), false);
        assert_eq!(ledger.pairs().len(), 2);
        assert_eq!(ledger.pairs()[0].bandwidths, [5.0, 6.0]);
        assert!(ledger.met(2, 1) && ledger.met(3, 0) && !ledger.met(0, 1));
        assert_eq!(ledger.partner_counts(), [1, 1, 1, 1]);
        assert_eq!((ledger.times_met(1, 2), ledger.times_met(0, 1)), (2, 0));
        assert_eq!(ledger.host_medians(), [7.0, 5.5, 5.5, 7.0]);
        assert_eq!(ledger.samples().len(), 3);
    }
}
