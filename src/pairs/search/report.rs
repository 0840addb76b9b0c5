//! The search's outcome as the documents store it (report/link_probe.rs): named hosts with their
//! evidence, bad links, what stayed undecided, and how the search ran.

use super::judge::{HostKind, NamedHost, SlowLink, State};
use super::{Outcome, Settings};
use crate::fleet::blame::by_majority;
use crate::metrics::median;
use crate::pairs::document::{by_pair, PairSample, Participant};
use crate::report::link_probe::{BadHost, NamedAfter, PairsVerdict, SearchReport, SlowPair};
use crate::report::verdicts::Consistency;

/// The verdict and the report of `outcome` over `people`; `seconds_per_round` when measured.
pub fn stored(
    outcome: &Outcome,
    people: &[Participant],
    settings: &Settings,
    seconds_per_round: Option<f64>,
) -> (PairsVerdict, SearchReport) {
    let j = &outcome.judgement;
    let name = |i: usize| {
        people
            .get(i)
            .map_or_else(|| i.to_string(), |p| p.name.clone())
    };
    // The chance is the rounds' (judge.rs names a host by its slow rounds), not the partners'.
    let host = |h: &NamedHost| BadHost {
        name: name(h.host),
        consistency: by_majority(h.slow_with.len(), h.partners),
        slow_with: h.slow_with.iter().map(|&q| name(q)).collect(),
        rounds: Some(Consistency {
            slow_in: h.slow_rounds,
            of: h.rounds,
            chance: Some(h.chance),
        }),
    };
    let link = |l: &SlowLink| SlowPair {
        a: name(l.a),
        b: name(l.b),
        bandwidth_gbps: l.bandwidth_gbps,
        percent_of_median: 100.0 * l.bandwidth_gbps / j.median_gbps,
        consistency: Consistency {
            slow_in: l.slow_in,
            of: l.of,
            chance: Some(l.chance),
        },
    };
    // The slow pairs that explain a name: those of a named host, and the named links.
    let named = |h: usize| j.named(h);
    let mut slow_pairs: Vec<SlowPair> = by_pair(&outcome.samples)
        .into_iter()
        .filter(|((a, b), _)| named(*a) || named(*b))
        .filter_map(|((a, b), mine)| slow_pair(a, b, &mine, j.limit_gbps, j.median_gbps, &name))
        .chain(j.links.iter().map(link))
        .collect();
    slow_pairs.sort_by(|x, y| x.bandwidth_gbps.total_cmp(&y.bandwidth_gbps));
    let of_kind = |kind: HostKind| {
        j.hosts
            .iter()
            .filter(|h| h.kind == kind)
            .map(host)
            .collect()
    };
    let verdict = PairsVerdict {
        threshold_percent: j.threshold_percent,
        median_gbps: j.median_gbps,
        slow_pairs,
        bad_hosts: of_kind(HostKind::Bad),
        bad_links: j.links.iter().map(link).collect(),
        flaky_hosts: of_kind(HostKind::Flaky),
        undecided_links: j.undecided_links.iter().map(link).collect(),
        undecided_hosts: j
            .standing
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Open)
            .map(|(h, _)| name(h))
            .collect(),
    };
    let mut partners = vec![0usize; people.len()];
    let pairs = by_pair(&outcome.samples);
    for &(a, b) in pairs.keys() {
        partners[a] += 1;
        partners[b] += 1;
    }
    let report = SearchReport {
        seed: settings.seed,
        max_rounds: settings.max_rounds,
        rounds: outcome.rounds,
        sure: outcome.sure,
        chance_per_round: j.chance_per_round,
        pairs_measured: pairs.len(),
        most_partners: partners.into_iter().max().unwrap_or(0),
        first_named: outcome
            .first_named
            .iter()
            .filter(|(h, _)| j.named(*h))
            .map(|&(h, round)| NamedAfter {
                name: name(h),
                round,
            })
            .collect(),
        seconds_per_round,
    };
    (verdict, report)
}

/// The pair as a slow pair when slow in most of its samples.
fn slow_pair(
    a: usize,
    b: usize,
    mine: &[&PairSample],
    limit_gbps: f64,
    median_gbps: f64,
    name: &impl Fn(usize) -> String,
) -> Option<SlowPair> {
    let slow_in = mine
        .iter()
        .filter(|s| s.bandwidth_gbps < limit_gbps)
        .count();
    (2 * slow_in > mine.len()).then(|| {
        let bandwidth_gbps = median(&mine.iter().map(|s| s.bandwidth_gbps).collect::<Vec<_>>());
        SlowPair {
            a: name(a),
            b: name(b),
            bandwidth_gbps,
            percent_of_median: 100.0 * bandwidth_gbps / median_gbps,
            consistency: by_majority(slow_in, mine.len()),
        }
    })
}
