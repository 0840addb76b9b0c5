//! The search for a bad host or link in few rounds instead of the circle method's n-1 per repeat:
//! rounds of disjoint pairs planned from what the earlier rounds showed (matching.rs), judged after
//! every round (judge.rs), until the verdict is sure or `max_rounds` have run. Pure logic: a round is
//! measured by whatever implements `RoundMeter`, the engine over MPI/NCCL/RCCL (pairs/rounds.rs) or a
//! synthetic fabric (sim.rs), so the rounds and false blame the simulator shows are the command's.

pub mod judge;
pub mod ledger;
pub mod matching;
pub mod report;
pub mod sim;

use crate::error::Result;
use crate::pairs::document::PairSample;
use crate::pairs::schedule::Round;
pub use judge::{HostKind, Judgement, NamedHost, SlowLink, Standing, State};
use ledger::Ledger;
use matching::Planner;

/// From this many participants `collbench pairs` searches by default; below it the circle method's
/// full matrix costs no more rounds than a sure verdict needs.
pub const SEARCH_FROM: usize = 8;
/// Rounds after which the search stops even when not sure.
pub const DEFAULT_MAX_ROUNDS: usize = 32;
/// The seed of the rounds' random order when none is given.
pub const DEFAULT_SEED: u64 = 0x636f_6c6c_6265_6e63;

/// Measures one round of disjoint pairs at once and returns one sample per pair, in the round's order.
pub trait RoundMeter {
    /// `index` counts rounds from 0; each sample's `round` is it.
    fn measure(&mut self, index: usize, round: &Round) -> Result<Vec<PairSample>>;
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// A sample is slow below (100 - this) % of the median sample.
    pub threshold_percent: f64,
    pub max_rounds: usize,
    pub seed: u64,
}

/// What a search measured and concluded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub judgement: Judgement,
    pub rounds: usize,
    /// Each host named at some point, with the round (from 1) after which it was first named.
    pub first_named: Vec<(usize, usize)>,
    /// The search stopped because the verdict was sure, not at `max_rounds`.
    pub sure: bool,
    /// Every sample, in the order taken.
    pub samples: Vec<PairSample>,
}

/// Runs the search over `hosts` participants until the verdict is sure: every host named or cleared,
/// and every slow pair seen before that named or measured LINK_SAMPLES times (one first seen later is
/// reported undecided: on a large fabric some hiccup is seen in nearly every round, and chasing each
/// would never end). Every rank that calls it with the same settings and gets the same samples from
/// its meter plans the same rounds.
pub fn search(hosts: usize, settings: &Settings, meter: &mut dyn RoundMeter) -> Result<Outcome> {
    let mut ledger = Ledger::new(hosts);
    let mut planner = Planner::new(hosts, settings.seed);
    let mut judgement: Option<Judgement> = None;
    let mut rounds = 0;
    let mut first_named = Vec::new();
    // The round by which every host was decided, once they were.
    let mut decided_by: Option<usize> = None;
    let sure = |j: &Judgement, decided_by: Option<usize>| {
        decided_by.is_some_and(|r| j.links_pending_from_before(r) == 0)
    };
    while rounds < settings.max_rounds && !judgement.as_ref().is_some_and(|j| sure(j, decided_by)) {
        let (round, retests) = planner.next(&ledger, judgement.as_ref());
        if round.is_empty() {
            break;
        }
        for sample in meter.measure(rounds, &round)? {
            let retest = retests.contains(&(sample.a.min(sample.b), sample.a.max(sample.b)));
            ledger.add(sample, retest);
        }
        rounds += 1;
        let now = judge::judge(&ledger, settings.threshold_percent);
        for h in &now.hosts {
            if !first_named.iter().any(|&(x, _)| x == h.host) {
                first_named.push((h.host, rounds));
            }
        }
        decided_by = if now.hosts_decided() {
            decided_by.or(Some(rounds))
        } else {
            None
        };
        judgement = Some(now);
    }
    let judgement = judgement.unwrap_or_else(|| judge::judge(&ledger, settings.threshold_percent));
    Ok(Outcome {
        sure: sure(&judgement, decided_by),
        judgement,
        rounds,
        first_named,
        samples: ledger.into_samples(),
    })
}

#[cfg(test)]
mod tests;

/// A sample of pair (a, b) in round 0, for the unit tests of the search's parts.
#[cfg(test)]
pub(crate) fn sample(a: usize, b: usize, bandwidth_gbps: f64) -> PairSample {
    PairSample {
        repeat: 0,
        round: 0,
        a,
        b,
        bandwidth_gbps,
        time_us: 1.0,
        latency_us: 1.0,
        lanes: 1,
        wrong: None,
    }
}
