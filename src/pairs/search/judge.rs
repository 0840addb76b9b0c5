//! The search's verdict from what it has measured so far, and how sure it is. A sample is slow below
//! (100 - threshold) % of the typical host's median sample and of its own round's median. A host is
//! named when it was slow, with two partners or more, in more of its rounds than an innocent host
//! would be by chance among all the hosts (blame.rs's rule with the chance taken over the fleet); its
//! partners' slow samples are then explained by it. A pair slow in most of its samples whose two
//! hosts are fine with their other partners is measured again and named a bad link when slow in
//! every one of LINK_MIN_SAMPLES or more samples, that many unlikely by chance among all the pairs
//! measured. A host is cleared when one slow in half of its rounds would have shown more slow rounds.

use super::ledger::{Ledger, PairRecord};
use crate::fleet::blame::{binomial_at_most, binomial_tail, MAX_CHANCE};
use crate::metrics::median;

/// An innocent pair's sample is taken to be slow at least this often, whatever the fabric showed: a
/// few hundred quiet samples do not show that a slow one never comes.
pub const CHANCE_FLOOR: f64 = 0.01;
/// The rarest intermittent fault the search promises to see: a host slow in this share of its rounds.
pub const FLAKY_RATE: f64 = 0.5;
/// A host is cleared when a host slow in FLAKY_RATE of its rounds would have shown no more slow
/// rounds than it did with at most this probability: 7 quiet rounds clear a host, 11 when one was
/// slow, 14 when two were.
pub const MISS: f64 = 0.01;
/// A slow pair is measured again until it is named or has this many samples.
pub const LINK_SAMPLES: usize = 6;
/// A bad link is slow in every one of at least this many samples: a flaky host slow in every round
/// it meets one partner and fast with all others is this unlikely to pass for one.
pub const LINK_MIN_SAMPLES: usize = 4;
/// Before a slow pair is measured again as a link, each of its hosts has met this many other partners:
/// a bad host shows with them and is not taken for a bad link.
pub const LINK_OTHERS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// Slow with (nearly) every partner: fast in at most an eighth of its rounds.
    Bad,
    /// Slow in more rounds than chance allows, fast in more of them than a bad host: slow in some
    /// rounds only.
    Flaky,
}

/// A host the verdict names, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedHost {
    pub host: usize,
    pub kind: HostKind,
    /// The partners it was slow with at least once (hosts named before it left out).
    pub slow_with: Vec<usize>,
    /// All its partners (hosts named before it left out).
    pub partners: usize,
    /// Its rounds and those that were slow (hosts named before it left out).
    pub rounds: usize,
    pub slow_rounds: usize,
    /// Its kind will not change: flaky (a bad host is never fast), or bad after so many slow rounds
    /// that a host slow in half of its rounds would have shown more fast ones (MISS). A settled host
    /// sits out the rounds that follow, so that its partners' rounds are not spent on it.
    pub settled: bool,
    /// Probability that any innocent host of the fleet is slow in this many of its rounds by chance.
    pub chance: f64,
}

/// A pair slow in most of its samples: a bad link when named, else left undecided.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowLink {
    pub a: usize,
    pub b: usize,
    pub slow_in: usize,
    pub of: usize,
    /// Probability that any measured innocent pair is slow this often by chance.
    pub chance: f64,
    /// The pair's median sample, GB/s.
    pub bandwidth_gbps: f64,
    /// The round of its first sample.
    pub first_round: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Named,
    /// Not slow often enough to be flaky (probability of a miss below MISS).
    Cleared,
    /// Needs more rounds.
    Open,
}

/// Where one host stands, leaving out named hosts, named links and link retests: its distinct
/// partners and how many it was slow with at least once (a host is named only when slow with two or
/// more), and its rounds and how many were slow (what naming and clearing it weigh: a flaky host is
/// slow in some rounds, whoever its partner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    pub state: State,
    pub partners: usize,
    pub slow_with: usize,
    pub rounds: usize,
    pub slow_rounds: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub threshold_percent: f64,
    /// The median over hosts of each host's median sample, and the bandwidth below which a sample is
    /// slow, GB/s.
    pub median_gbps: f64,
    pub limit_gbps: f64,
    /// The share of slow samples among those of unnamed hosts (link retests left out), at least
    /// CHANCE_FLOOR: how often an innocent host is taken to be slow in a round by chance.
    pub chance_per_round: f64,
    /// Named hosts, most certain first.
    pub hosts: Vec<NamedHost>,
    pub links: Vec<SlowLink>,
    /// Slow pairs between unnamed hosts not named as links: still being measured, or given up on
    /// after LINK_SAMPLES samples.
    pub undecided_links: Vec<SlowLink>,
    /// Each host, by index.
    pub standing: Vec<Standing>,
    /// Undecided links to measure again now: each end fine with its other partners.
    pub retest: Vec<(usize, usize)>,
}

impl Judgement {
    /// Every host named or cleared.
    pub fn hosts_decided(&self) -> bool {
        self.standing.iter().all(|s| s.state != State::Open)
    }

    /// Slow pairs first seen before round `round` that are neither named nor measured LINK_SAMPLES
    /// times, and are still to be measured again or have an end not yet decided.
    pub fn links_pending_from_before(&self, round: usize) -> usize {
        self.undecided_links
            .iter()
            .filter(|l| l.of < LINK_SAMPLES && l.first_round < round)
            .filter(|l| {
                self.retest.contains(&(l.a, l.b))
                    || self.standing[l.a].state == State::Open
                    || self.standing[l.b].state == State::Open
            })
            .count()
    }

    pub fn named(&self, h: usize) -> bool {
        self.standing[h].state == State::Named
    }

    /// Named, and its kind will not change: it sits out.
    pub fn settled(&self, h: usize) -> bool {
        self.hosts.iter().any(|n| n.host == h && n.settled)
    }
}

/// Over pairs of unnamed hosts: per host, distinct partners and those it was slow with, its rounds
/// and those slow; in all, pairs, samples and slow samples. Rounds and samples leave out link retests
/// (a pair measured again because it was slow): they were chosen by being slow, so they would count
/// one slow pair many times against its hosts.
struct Tally {
    partners: Vec<usize>,
    slow_with: Vec<usize>,
    rounds: Vec<usize>,
    slow_rounds: Vec<usize>,
    pairs: usize,
    samples: usize,
    slow_samples: usize,
}

impl Tally {
    fn over(pairs: &[PairRecord], verdicts: &[PairVerdict], named: &[bool]) -> Tally {
        let n = named.len();
        let mut t = Tally {
            partners: vec![0; n],
            slow_with: vec![0; n],
            rounds: vec![0; n],
            slow_rounds: vec![0; n],
            pairs: 0,
            samples: 0,
            slow_samples: 0,
        };
        for (p, v) in pairs.iter().zip(verdicts) {
            if named[p.a] || named[p.b] {
                continue;
            }
            t.pairs += 1;
            t.samples += v.designed;
            t.slow_samples += v.designed_slow;
            for h in [p.a, p.b] {
                t.partners[h] += 1;
                t.rounds[h] += v.designed;
                t.slow_rounds[h] += v.designed_slow;
                t.slow_with[h] += usize::from(v.designed_slow > 0);
            }
        }
        t
    }

    /// The chance that any innocent host of `hosts` is slow in this many of its rounds, from the
    /// samples it is not in.
    fn host_chance(&self, h: usize, hosts: usize) -> f64 {
        let (k, s) = (self.rounds[h], self.slow_rounds[h]);
        let p = chance_per_trial(self.slow_samples - s, self.samples - k);
        (hosts as f64 * binomial_tail(s, k, p)).min(1.0)
    }
}

/// Bad when fast in at most an eighth of its rounds (a bad host is fast in none; one slow in half of
/// its rounds is fast in about half); else flaky.
fn kind_of(slow_rounds: usize, rounds: usize) -> HostKind {
    if 8 * (rounds - slow_rounds) <= rounds {
        HostKind::Bad
    } else {
        HostKind::Flaky
    }
}

/// The chance per trial from `slow` of `of` trials, smoothed (one slow trial in two more) and never
/// below CHANCE_FLOOR.
fn chance_per_trial(slow: usize, of: usize) -> f64 {
    ((slow as f64 + 1.0) / (of as f64 + 2.0)).max(CHANCE_FLOOR)
}

#[derive(Debug, Clone, Copy)]
struct PairVerdict {
    /// Samples that count (taken in a round that was not slow as a whole), and those slow.
    counted: usize,
    slow_in: usize,
    /// Of those, the samples that are not link retests, and those slow.
    designed: usize,
    designed_slow: usize,
    /// Slow in most of its samples: a link to look at.
    slow: bool,
}

/// What one sample says about its pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sample {
    Fast,
    Slow,
    /// Below the fabric's limit in a round whose median pair was too (the whole fabric or machine
    /// busy for a moment): it says nothing about the pair, so a bad host is not taken for a flaky one
    /// because of a round in which everyone was slow.
    Void,
}

/// The verdict over everything `ledger` holds, samples slow below `threshold_percent` under the median.
pub fn judge(ledger: &Ledger, threshold_percent: f64) -> Judgement {
    let n = ledger.hosts();
    let pairs = ledger.pairs();
    // The typical host's median sample: the median pair still, but one that stays a healthy pair's
    // while fewer than half of the hosts are bad (the median sample is a slow one once a third are).
    let typical: Vec<f64> = ledger
        .host_medians()
        .into_iter()
        .filter(|m| !m.is_nan())
        .collect();
    let median_gbps = median(&typical);
    let share = 1.0 - threshold_percent / 100.0;
    let limit_gbps = share * median_gbps;
    // Slow against the fabric's typical pair and against its own round's.
    let round_limit: Vec<f64> = ledger.round_medians().iter().map(|m| share * m).collect();
    let class = |b: f64, r: usize| match (b < limit_gbps, b < round_limit[r]) {
        (false, _) => Sample::Fast,
        (true, true) => Sample::Slow,
        (true, false) => Sample::Void,
    };
    let verdicts: Vec<PairVerdict> = pairs
        .iter()
        .map(|p| {
            let mut v = PairVerdict {
                counted: 0,
                slow_in: 0,
                designed: 0,
                designed_slow: 0,
                slow: false,
            };
            for ((&b, &r), &retest) in p.bandwidths.iter().zip(&p.rounds).zip(&p.retest) {
                let c = class(b, r);
                if c == Sample::Void {
                    continue;
                }
                let slow = usize::from(c == Sample::Slow);
                v.counted += 1;
                v.slow_in += slow;
                if !retest {
                    v.designed += 1;
                    v.designed_slow += slow;
                }
            }
            v.slow = 2 * v.slow_in > v.counted;
            v
        })
        .collect();

    // Name the most certain host, explain its pairs by it, and look again.
    let mut named = vec![false; n];
    let mut hosts = Vec::new();
    loop {
        let tally = Tally::over(pairs, &verdicts, &named);
        let best = (0..n)
            .filter(|&h| !named[h] && tally.slow_with[h] >= 2)
            .map(|h| (h, tally.host_chance(h, n)))
            .min_by(|x, y| x.1.total_cmp(&y.1));
        let Some((host, chance)) = best.filter(|&(_, c)| c < MAX_CHANCE) else {
            break;
        };
        let slow_with: Vec<usize> = pairs
            .iter()
            .zip(&verdicts)
            .filter(|(p, v)| v.designed_slow > 0 && (p.a == host || p.b == host))
            .map(|(p, _)| if p.a == host { p.b } else { p.a })
            .filter(|&q| !named[q])
            .collect();
        let partners = tally.partners[host];
        hosts.push(NamedHost {
            host,
            kind: kind_of(tally.slow_rounds[host], tally.rounds[host]),
            slow_with,
            partners,
            rounds: tally.rounds[host],
            slow_rounds: tally.slow_rounds[host],
            settled: match kind_of(tally.slow_rounds[host], tally.rounds[host]) {
                HostKind::Flaky => true,
                HostKind::Bad => {
                    let fast = tally.rounds[host] - tally.slow_rounds[host];
                    binomial_at_most(fast, tally.rounds[host], FLAKY_RATE) < MISS
                }
            },
            chance,
        });
        named[host] = true;
    }

    let tally = Tally::over(pairs, &verdicts, &named);
    // Fine with its other partners: no slow round with them, or so few that it is cleared without
    // this pair. A host slow in other rounds is not fine, so a flaky host's pairs are not taken for
    // bad links.
    let fine_elsewhere = |h: usize, v: &PairVerdict| {
        let others = tally.partners[h] - 1;
        let rounds = tally.rounds[h] - v.designed;
        let slow_rounds = tally.slow_rounds[h] - v.designed_slow;
        others >= LINK_OTHERS
            && (slow_rounds == 0 || binomial_at_most(slow_rounds, rounds, FLAKY_RATE) < MISS)
    };
    let mut links = Vec::new();
    let mut undecided_links = Vec::new();
    let mut retest = Vec::new();
    for (p, v) in pairs.iter().zip(&verdicts) {
        if named[p.a] || named[p.b] || !v.slow {
            continue;
        }
        let of = v.counted;
        let per_sample = chance_per_trial(
            tally.slow_samples - v.designed_slow,
            tally.samples - v.designed,
        );
        let link = SlowLink {
            a: p.a,
            b: p.b,
            slow_in: v.slow_in,
            of,
            chance: (tally.pairs as f64 * binomial_tail(v.slow_in, of, per_sample)).min(1.0),
            bandwidth_gbps: median(&p.bandwidths),
            first_round: p.first_round(),
        };
        let ends_fine = fine_elsewhere(p.a, v) && fine_elsewhere(p.b, v);
        let steady = of >= LINK_MIN_SAMPLES && v.slow_in == of;
        if ends_fine && steady && link.chance < MAX_CHANCE {
            links.push((*v, link));
        } else {
            if ends_fine && of < LINK_SAMPLES {
                retest.push((p.a, p.b));
            }
            undecided_links.push(link);
        }
    }

    let mut standing: Vec<Standing> = (0..n)
        .map(|h| Standing {
            state: State::Open,
            partners: tally.partners[h],
            slow_with: tally.slow_with[h],
            rounds: tally.rounds[h],
            slow_rounds: tally.slow_rounds[h],
        })
        .collect();
    // A named link's samples are the link's, not its hosts'.
    for (v, l) in &links {
        for h in [l.a, l.b] {
            let s = &mut standing[h];
            s.partners -= 1;
            s.slow_with -= usize::from(v.designed_slow > 0);
            s.rounds -= v.designed;
            s.slow_rounds -= v.designed_slow;
        }
    }
    let mut links: Vec<SlowLink> = links.into_iter().map(|(_, l)| l).collect();
    for (h, s) in standing.iter_mut().enumerate() {
        s.state = if named[h] {
            State::Named
        } else if binomial_at_most(s.slow_rounds, s.rounds, FLAKY_RATE) < MISS {
            State::Cleared
        } else {
            State::Open
        };
    }
    hosts.sort_by(|x, y| x.chance.total_cmp(&y.chance));
    links.sort_by(|x, y| x.chance.total_cmp(&y.chance));
    Judgement {
        threshold_percent,
        median_gbps,
        limit_gbps,
        chance_per_round: chance_per_trial(tally.slow_samples, tally.samples),
        hosts,
        links,
        undecided_links,
        standing,
        retest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::search::sample;

    /// Every pair of `n` once, bandwidth from `bw`.
    fn every_pair(n: usize, bw: impl Fn(usize, usize) -> f64) -> Ledger {
        let mut ledger = Ledger::new(n);
        for a in 0..n {
            for b in a + 1..n {
                ledger.add(sample(a, b, bw(a, b)), false);
            }
        }
        ledger
    }

    #[test]
    fn a_host_slow_with_every_partner_is_named_and_explains_its_pairs() {
        let ledger = every_pair(12, |a, b| if a == 5 || b == 5 { 2.0 } else { 10.0 });
        let j = judge(&ledger, 10.0);
        assert_eq!(j.hosts.len(), 1, "{j:?}");
        let h = &j.hosts[0];
        assert_eq!((h.host, h.kind, h.partners), (5, HostKind::Bad, 11));
        assert_eq!(h.slow_with.len(), 11);
        assert!(h.chance < 1e-10, "{h:?}");
        // Its partners' one slow pair each is its, not theirs.
        assert!(j.undecided_links.is_empty() && j.links.is_empty(), "{j:?}");
        assert_eq!(j.standing[5].state, State::Named);
        assert!(j.standing.iter().all(|s| s.slow_with == 0));
        assert_eq!(j.median_gbps, 10.0);
    }

    #[test]
    fn one_slow_sample_of_a_pair_is_a_link_to_measure_again_not_a_name() {
        let ledger = every_pair(12, |a, b| if (a, b) == (2, 7) { 2.0 } else { 10.0 });
        let j = judge(&ledger, 10.0);
        assert!(j.hosts.is_empty() && j.links.is_empty(), "{j:?}");
        assert_eq!(j.retest, [(2, 7)]);
        assert_eq!(
            j.links_pending_from_before(1),
            1,
            "an undecided link keeps the search going"
        );
    }

    #[test]
    fn a_pair_slow_in_every_sample_between_fine_hosts_is_a_bad_link() {
        let mut ledger = every_pair(12, |a, b| if (a, b) == (2, 7) { 2.0 } else { 10.0 });
        for _ in 0..2 {
            ledger.add(sample(7, 2, 2.1), true);
        }
        let j = judge(&ledger, 10.0);
        assert!(j.links.is_empty(), "three samples are not enough: {j:?}");
        ledger.add(sample(7, 2, 2.1), true);
        let j = judge(&ledger, 10.0);
        assert!(j.hosts.is_empty(), "{j:?}");
        assert_eq!(j.links.len(), 1, "{j:?}");
        assert_eq!((j.links[0].a, j.links[0].b, j.links[0].slow_in), (2, 7, 4));
        // The link is not held against its hosts: 2 and 7 are as clean as everyone.
        assert_eq!(j.standing[2].slow_with, 0);
        assert_eq!(j.standing[2].partners, 10);
        assert_eq!((j.standing[7].rounds, j.standing[7].slow_rounds), (10, 0));
        // One fast sample among them: not steady, so no bad link.
        ledger.add(sample(7, 2, 10.0), true);
        assert!(judge(&ledger, 10.0).links.is_empty());
    }

    #[test]
    fn a_pair_slow_once_in_two_is_no_link_but_stays_against_its_hosts() {
        let mut ledger = every_pair(12, |a, b| if (a, b) == (2, 7) { 2.0 } else { 10.0 });
        ledger.add(sample(2, 7, 10.0), true);
        let j = judge(&ledger, 10.0);
        assert!(j.undecided_links.is_empty() && j.retest.is_empty(), "{j:?}");
        // Either end may have been slow in that round: a host slow in some rounds only shows so.
        assert_eq!((j.standing[2].slow_with, j.standing[7].slow_with), (1, 1));
    }

    #[test]
    fn a_host_slow_with_a_few_partners_more_than_chance_allows_is_flaky() {
        // 40 hosts, every pair once; host 9 slow with 13 of its 39 partners.
        let ledger = every_pair(40, |a, b| {
            let other = if a == 9 { b } else { a };
            if (a == 9 || b == 9) && other % 3 == 0 {
                2.0
            } else {
                10.0
            }
        });
        let j = judge(&ledger, 10.0);
        assert_eq!(j.hosts.len(), 1, "{j:?}");
        assert_eq!((j.hosts[0].host, j.hosts[0].kind), (9, HostKind::Flaky));
        assert_eq!(j.hosts[0].slow_with.len(), 13);
    }

    #[test]
    fn hosts_are_cleared_only_after_enough_quiet_partners() {
        // 6 quiet partners each: a host slow in half its rounds shows none with probability 1/64.
        let ledger = every_pair(7, |_, _| 10.0);
        let j = judge(&ledger, 10.0);
        assert!(j.standing.iter().all(|s| s.state == State::Open), "{j:?}");
        let ledger = every_pair(8, |_, _| 10.0);
        let j = judge(&ledger, 10.0);
        // 7 quiet partners: 1/128 < MISS.
        assert!(j.standing.iter().all(|s| s.state == State::Cleared));
        assert!(j.hosts_decided() && j.hosts.is_empty());
    }

    #[test]
    fn a_round_in_which_every_pair_was_slow_says_nothing() {
        use crate::pairs::schedule::circle_round;
        let bad = 3;
        let mut ledger = Ledger::new(8);
        let add_round = |ledger: &mut Ledger, index: usize, bw: &dyn Fn(usize, usize) -> f64| {
            for (a, b) in circle_round(8, index) {
                let mut s = sample(a, b, bw(a, b));
                s.round = index;
                ledger.add(s, false);
            }
        };
        let fabric = |a: usize, b: usize| if a == bad || b == bad { 2.0 } else { 10.0 };
        for r in 0..5 {
            add_round(&mut ledger, r, &fabric);
        }
        // The machine busy for a round: every pair as slow as the bad host's. Taken for a fast round
        // of the bad host, 5 slow rounds of 6 would make it flaky.
        add_round(&mut ledger, 5, &|_, _| 1.5);
        let j = judge(&ledger, 10.0);
        assert_eq!(j.hosts.len(), 1, "{j:?}");
        let h = &j.hosts[0];
        assert_eq!((h.host, h.kind), (bad, HostKind::Bad), "{h:?}");
        assert_eq!(
            (h.rounds, h.slow_rounds),
            (5, 5),
            "the busy round is left out: {h:?}"
        );
        assert!(j.links.is_empty() && j.undecided_links.is_empty(), "{j:?}");
        assert!(j
            .standing
            .iter()
            .all(|s| s.slow_rounds == 0 && s.rounds <= 5));
        // A pair slow against its busy round still counts.
        add_round(&mut ledger, 6, &|a, b| fabric(a, b) / 10.0);
        let h = &judge(&ledger, 10.0).hosts[0];
        assert_eq!((h.rounds, h.slow_rounds), (6, 6), "{h:?}");
    }

    #[test]
    fn a_noisy_fabric_raises_the_chance_and_names_nobody_for_a_few_slow_pairs() {
        // One sample in five is slow everywhere: host 0 slow with 4 of 10 partners is not unusual.
        let ledger = every_pair(11, |a, b| if (a * 7 + b * 3) % 5 == 0 { 2.0 } else { 10.0 });
        let j = judge(&ledger, 10.0);
        assert!(j.chance_per_round > 0.1, "{j:?}");
        assert!(j.hosts.is_empty(), "{:?}", j.hosts);
    }
}
