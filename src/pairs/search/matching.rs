//! The next round of the search: disjoint pairs covering every host that is not yet named. Suspects
//! meet partners already known to be good (a slow pair then points at the suspect), slow pairs between
//! hosts that are fine elsewhere are measured again (a bad link stays slow, a hiccup does not), and
//! every other host meets a partner it has not met: the circle method over a random order of the hosts,
//! so a quiet fabric of n hosts sees every pair once in n-1 rounds and a large one sees new pairs in
//! every round. A named host plays on until its kind is settled (bad or flaky), then sits out.

use super::judge::{Judgement, State};
use super::ledger::Ledger;
use crate::pairs::schedule::{circle_round, circle_round_count, Round};

pub struct Planner {
    /// The hosts in the order the circle method seats them; shuffled again after every full circle.
    order: Vec<usize>,
    rng: fastrand::Rng,
    /// Background rounds planned so far.
    background: usize,
}

impl Planner {
    /// Every rank makes the same planner from the same seed, so all plan the same rounds.
    pub fn new(hosts: usize, seed: u64) -> Planner {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut order: Vec<usize> = (0..hosts).collect();
        rng.shuffle(&mut order);
        Planner {
            order,
            rng,
            background: 0,
        }
    }

    /// The next round, from what `ledger` holds and how it was judged (None before the first round),
    /// and which of its pairs are link retests.
    pub fn next(&mut self, ledger: &Ledger, judgement: Option<&Judgement>) -> (Round, Round) {
        let n = self.order.len();
        let mut busy = vec![false; n];
        let mut round: Round = Vec::new();
        let mut retests: Round = Vec::new();
        if let Some(j) = judgement {
            for named in j.hosts.iter().filter(|h| h.settled) {
                busy[named.host] = true;
            }
            let good = self.known_good(j);
            let open_with = |min: usize, max: usize| {
                let mut hosts: Vec<usize> = (0..n)
                    .filter(|&h| {
                        let s = &j.standing[h];
                        s.state == State::Open && (min..=max).contains(&s.slow_with)
                    })
                    .collect();
                hosts.sort_by_key(|&h| std::cmp::Reverse(j.standing[h].slow_with));
                hosts
            };
            // Suspects first: a host slow with two partners or more meets a known-good one.
            for x in open_with(2, usize::MAX) {
                if let Some(g) = pick_partner(x, &good, &busy, ledger) {
                    take(&mut round, &mut busy, x, g);
                }
            }
            for &(a, b) in &j.retest {
                if !busy[a] && !busy[b] {
                    take(&mut round, &mut busy, a, b);
                    retests.push((a, b));
                }
            }
            // A host slow with one partner meets a known-good one too, so that its next pair says
            // whether it or its partner was the slow one.
            for x in open_with(1, 1) {
                if !busy[x] {
                    if let Some(g) = pick_partner(x, &good, &busy, ledger) {
                        take(&mut round, &mut busy, x, g);
                    }
                }
            }
        }
        // Everyone else: the circle method's next round over the shuffled order, where both are free.
        let cycle = circle_round_count(n).max(1);
        if self.background > 0 && self.background % cycle == 0 {
            self.rng.shuffle(&mut self.order);
        }
        let seated = circle_round(n, self.background % cycle);
        self.background += 1;
        for (i, j) in seated {
            let (a, b) = (self.order[i], self.order[j]);
            if !busy[a] && !busy[b] {
                take(&mut round, &mut busy, a, b);
            }
        }
        // Hosts whose circle partner is busy: paired among themselves, new partners first.
        let mut left: Vec<usize> = (0..n).filter(|&h| !busy[h]).collect();
        self.rng.shuffle(&mut left);
        while let Some(u) = left.pop() {
            let Some(at) = left
                .iter()
                .position(|&v| !ledger.met(u, v))
                .or((!left.is_empty()).then_some(0))
            else {
                break;
            };
            let v = left.swap_remove(at);
            take(&mut round, &mut busy, u, v);
        }
        (round, retests)
    }

    /// Hosts with partners and no slow pair, most partners first (ties in random order).
    fn known_good(&mut self, j: &Judgement) -> Vec<usize> {
        let mut good: Vec<usize> = (0..j.standing.len())
            .filter(|&h| {
                let s = &j.standing[h];
                s.state != State::Named && s.slow_with == 0 && s.partners > 0
            })
            .collect();
        self.rng.shuffle(&mut good);
        good.sort_by_key(|&h| std::cmp::Reverse(j.standing[h].partners));
        good
    }
}

fn take(round: &mut Round, busy: &mut [bool], a: usize, b: usize) {
    busy[a] = true;
    busy[b] = true;
    round.push((a.min(b), a.max(b)));
}

/// The free known-good partner `x` has met least (on a large fabric: one it has not met), the first
/// of `good` among equals.
fn pick_partner(x: usize, good: &[usize], busy: &[bool], ledger: &Ledger) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for &g in good.iter().filter(|&&g| g != x && !busy[g]) {
        let times = ledger.times_met(x, g);
        if best.is_none_or(|(_, t)| times < t) {
            best = Some((g, times));
        }
        if times == 0 {
            break;
        }
    }
    best.map(|(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::search::judge::judge;
    use crate::pairs::search::sample;
    use std::collections::BTreeSet;

    fn disjoint(round: &Round, n: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        for &(a, b) in round {
            assert!(a < b && b < n, "{a}-{b}");
            assert!(seen.insert(a) && seen.insert(b), "{round:?}");
        }
        seen
    }

    fn measure(ledger: &mut Ledger, round: &Round, index: usize, bw: impl Fn(usize, usize) -> f64) {
        for &(a, b) in round {
            let mut s = sample(a, b, bw(a, b));
            s.round = index;
            ledger.add(s, false);
        }
    }

    #[test]
    fn a_quiet_fabric_meets_every_pair_once_in_n_minus_1_rounds() {
        for n in [8, 9, 12] {
            let mut planner = Planner::new(n, 7);
            let mut ledger = Ledger::new(n);
            let mut judgement = None;
            for index in 0..circle_round_count(n) {
                let (round, _) = planner.next(&ledger, judgement.as_ref());
                let seated = disjoint(&round, n);
                assert_eq!(seated.len(), n - n % 2, "round {index} of {n}: {round:?}");
                measure(&mut ledger, &round, index, |_, _| 10.0);
                judgement = Some(judge(&ledger, 10.0));
            }
            assert_eq!(ledger.pairs().len(), n * (n - 1) / 2, "n = {n}");
        }
    }

    #[test]
    fn the_same_seed_plans_the_same_rounds_and_another_seed_others() {
        let plan = |seed| {
            let mut planner = Planner::new(64, seed);
            let ledger = Ledger::new(64);
            (0..3)
                .map(|_| planner.next(&ledger, None))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(1), plan(1));
        assert_ne!(plan(1), plan(2));
    }

    #[test]
    fn a_suspect_meets_a_known_good_partner() {
        let n = 16;
        let bad = 3;
        let slow = |a: usize, b: usize| if a == bad || b == bad { 1.0 } else { 10.0 };
        let mut planner = Planner::new(n, 11);
        let mut ledger = Ledger::new(n);
        let (first, _) = planner.next(&ledger, None);
        measure(&mut ledger, &first, 0, slow);
        let partner = first
            .iter()
            .find_map(|&(a, b)| (a == bad).then_some(b).or((b == bad).then_some(a)))
            .expect("everyone plays round 1");
        let j = judge(&ledger, 10.0);
        assert_eq!(j.standing[bad].slow_with, 1);
        let (second, _) = planner.next(&ledger, Some(&j));
        disjoint(&second, n);
        // Both ends of the slow pair meet someone else, who was fast in round 1.
        for x in [bad, partner] {
            let (a, b) = *second
                .iter()
                .find(|&&(a, b)| a == x || b == x)
                .expect("plays");
            let other = if a == x { b } else { a };
            assert!(other != bad && other != partner, "{second:?}");
            assert_eq!(j.standing[other].slow_with, 0);
        }
        measure(&mut ledger, &second, 1, slow);
        let mut j = judge(&ledger, 10.0);
        for index in 2..6 {
            let (round, _) = planner.next(&ledger, Some(&j));
            disjoint(&round, n);
            measure(&mut ledger, &round, index, slow);
            j = judge(&ledger, 10.0);
        }
        assert!(j.named(bad), "{j:?}");
    }
}
