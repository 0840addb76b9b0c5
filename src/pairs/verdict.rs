//! The verdict over the matrix: pairs below X % of the median pair, the host slow with most of its
//! partners (a bad host), and a slow pair whose two hosts are fine with everyone else (a bad link).
//! Blame is earned (fleet::blame): a pair is slow only in most of its repeats.

use super::document::{PairSample, Participant};
use crate::fleet::blame::by_majority;
use crate::metrics::median;
// The stored form lives in the report layer so that report/ never depends on pairs/.
pub use crate::report::link_probe::{BadHost, PairsVerdict, SlowPair};

/// A pair is slow below this percentage under the median pair, unless --slow-threshold says otherwise.
pub use crate::cli::pairs::DEFAULT_SLOW_THRESHOLD_PERCENT as DEFAULT_THRESHOLD_PERCENT;

impl PairsVerdict {
    /// Nobody named.
    pub fn quiet(&self) -> bool {
        self.slow_pairs.is_empty()
            && self.bad_hosts.is_empty()
            && self.flaky_hosts.is_empty()
            && self.bad_links.is_empty()
    }
}

/// Judges every pair: in each repeat, a pair is slow when below (100 - threshold) % of that repeat's
/// median pair. It is named when slow in most repeats and even its best repeat stays below the
/// threshold under the typical pair's worst repeat: on a noisy network a pair that is sometimes fast
/// is not the bad one.
pub fn judge(
    samples: &[PairSample],
    participants: &[Participant],
    threshold_percent: f64,
) -> PairsVerdict {
    let limit = 1.0 - threshold_percent / 100.0;
    let repeats: Vec<usize> = {
        let mut r: Vec<usize> = samples.iter().map(|s| s.repeat).collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    let repeat_median = |r: usize| {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.repeat == r)
            .map(|s| s.bandwidth_gbps)
            .collect();
        median(&v)
    };
    let medians: Vec<(usize, f64)> = repeats.iter().map(|&r| (r, repeat_median(r))).collect();
    let figures = super::document::matrix(samples);
    let of_pair = super::document::by_pair(samples);
    let overall = median(
        &figures
            .iter()
            .map(|f| f.bandwidth_gbps)
            .collect::<Vec<f64>>(),
    );
    let worst_of_each: Vec<f64> = of_pair
        .values()
        .map(|mine| {
            mine.iter()
                .map(|s| s.bandwidth_gbps)
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let typical_worst = median(&worst_of_each);
    let name = |i: usize| {
        participants
            .get(i)
            .map_or_else(|| i.to_string(), |p| p.name.clone())
    };

    let mut slow: Vec<(usize, usize, SlowPair)> = Vec::new();
    for (f, mine) in figures.iter().zip(of_pair.values()) {
        let slow_in = mine
            .iter()
            .filter(|s| {
                medians
                    .iter()
                    .find(|(r, _)| *r == s.repeat)
                    .is_some_and(|(_, m)| s.bandwidth_gbps < limit * m)
            })
            .count();
        let best = mine.iter().map(|s| s.bandwidth_gbps).fold(0.0, f64::max);
        let consistency = by_majority(slow_in, mine.len());
        if consistency.earned() && best < limit * typical_worst {
            slow.push((
                f.a,
                f.b,
                SlowPair {
                    a: name(f.a),
                    b: name(f.b),
                    bandwidth_gbps: f.bandwidth_gbps,
                    percent_of_median: 100.0 * f.bandwidth_gbps / overall,
                    consistency,
                },
            ));
        }
    }

    // A host is bad when slow with most of its partners; with one partner there is no telling a bad
    // host from a bad link.
    let mut bad: Vec<usize> = Vec::new();
    let mut bad_hosts = Vec::new();
    let mut partners = vec![0usize; participants.len()];
    let mut slow_with = vec![0usize; participants.len()];
    for f in &figures {
        partners[f.a] += 1;
        partners[f.b] += 1;
    }
    for (a, b, _) in &slow {
        slow_with[*a] += 1;
        slow_with[*b] += 1;
    }
    for (i, _) in participants.iter().enumerate() {
        let (partners, slow_with) = (partners[i], slow_with[i]);
        let consistency = by_majority(slow_with, partners);
        if partners >= 2 && consistency.earned() {
            bad.push(i);
            bad_hosts.push(BadHost {
                name: name(i),
                consistency,
                slow_with: Vec::new(),
                rounds: None,
            });
        }
    }
    let bad_links = slow
        .iter()
        .filter(|(a, b, _)| !bad.contains(a) && !bad.contains(b))
        .map(|(_, _, p)| p.clone())
        .collect();
    PairsVerdict {
        threshold_percent,
        median_gbps: overall,
        slow_pairs: slow.into_iter().map(|(_, _, p)| p).collect(),
        bad_hosts,
        bad_links,
        flaky_hosts: Vec::new(),
        undecided_links: Vec::new(),
        undecided_hosts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people(n: usize) -> Vec<Participant> {
        let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
        crate::pairs::document::test_participants(&names)
    }

    /// Every pair of `n` once per repeat, with bandwidth from `bw(a, b, repeat)`.
    fn samples(
        n: usize,
        repeats: usize,
        bw: impl Fn(usize, usize, usize) -> f64,
    ) -> Vec<PairSample> {
        let mut out = Vec::new();
        for repeat in 0..repeats {
            for a in 0..n {
                for b in a + 1..n {
                    out.push(PairSample {
                        repeat,
                        round: 0,
                        a,
                        b,
                        bandwidth_gbps: bw(a, b, repeat),
                        time_us: 1.0,
                        latency_us: 1.0,
                        lanes: 1,
                        wrong: None,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn a_host_slow_with_every_partner_is_the_bad_host() {
        let s = samples(4, 3, |a, b, _| if a == 2 || b == 2 { 1.0 } else { 7.0 });
        let v = judge(&s, &people(4), DEFAULT_THRESHOLD_PERCENT);
        assert_eq!(v.slow_pairs.len(), 3);
        assert_eq!(v.bad_hosts.len(), 1, "{v:?}");
        assert_eq!(v.bad_hosts[0].name, "h2");
        assert_eq!(v.bad_hosts[0].consistency.slow_in, 3);
        assert!(v.bad_links.is_empty(), "{v:?}");
    }

    #[test]
    fn a_slow_pair_between_good_hosts_is_a_bad_link() {
        let s = samples(4, 3, |a, b, _| if (a, b) == (1, 3) { 1.0 } else { 7.0 });
        let v = judge(&s, &people(4), DEFAULT_THRESHOLD_PERCENT);
        assert!(v.bad_hosts.is_empty(), "{v:?}");
        assert_eq!(v.bad_links.len(), 1);
        assert_eq!(
            (v.bad_links[0].a.as_str(), v.bad_links[0].b.as_str()),
            ("h1", "h3")
        );
        assert!((v.bad_links[0].percent_of_median - 100.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn slow_once_in_three_repeats_names_nobody() {
        let s = samples(
            4,
            3,
            |a, b, r| if (a, b, r) == (0, 1, 1) { 1.0 } else { 7.0 },
        );
        let v = judge(&s, &people(4), DEFAULT_THRESHOLD_PERCENT);
        assert!(v.quiet(), "{v:?}");
        let noisy = samples(4, 3, |a, b, r| 7.0 + ((a * 3 + b + r) % 4) as f64 * 0.1);
        assert!(judge(&noisy, &people(4), DEFAULT_THRESHOLD_PERCENT).quiet());
        // Slow in two repeats of three, but as fast as anyone in the third: noise, not a bad link.
        let bursty = samples(4, 3, |a, b, r| match ((a, b), r) {
            ((1, 2), 0) => 9.0,
            ((1, 2), _) => 1.0,
            _ => 7.0,
        });
        assert!(judge(&bursty, &people(4), DEFAULT_THRESHOLD_PERCENT).quiet());
    }
}
