//! Which pairs run together: the circle method (n-1 rounds of n/2 disjoint pairs, every pair once), or
//! one pair at a time.

/// One round: pairs of participant indices that run at the same time; no participant is in two.
pub type Round = Vec<(usize, usize)>;

/// The circle method: participant 0 stays, the others rotate one place per round. With an odd count
/// one participant sits out each round. Every pair appears exactly once, smaller index first.
pub fn circle_rounds(n: usize) -> Vec<Round> {
    if n < 2 {
        return Vec::new();
    }
    // An odd count gets a phantom participant; whoever meets it sits the round out.
    let slots = n + n % 2;
    let mut ring: Vec<usize> = (1..slots).collect();
    let mut rounds = Vec::with_capacity(slots - 1);
    for _ in 0..slots - 1 {
        let mut seats = vec![0];
        seats.extend(&ring);
        let round: Round = (0..slots / 2)
            .map(|i| (seats[i], seats[slots - 1 - i]))
            .filter(|&(a, b)| a < n && b < n)
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        rounds.push(round);
        ring.rotate_right(1);
    }
    rounds
}

/// Every pair in its own round, in the circle method's order.
pub fn one_at_a_time(n: usize) -> Vec<Round> {
    circle_rounds(n)
        .into_iter()
        .flatten()
        .map(|pair| vec![pair])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn check_complete(n: usize, rounds: &[Round]) {
        let mut seen = BTreeSet::new();
        for round in rounds {
            let mut busy = BTreeSet::new();
            for &(a, b) in round {
                assert!(a < b && b < n, "{a}-{b} of {n}");
                assert!(
                    busy.insert(a) && busy.insert(b),
                    "{a} or {b} twice in {round:?}"
                );
                assert!(seen.insert((a, b)), "{a}-{b} measured twice");
            }
        }
        assert_eq!(seen.len(), n * (n - 1) / 2, "every pair once for n = {n}");
    }

    #[test]
    fn every_pair_once_in_disjoint_rounds() {
        for n in 2..=9 {
            let rounds = circle_rounds(n);
            assert_eq!(rounds.len(), n - 1 + n % 2, "rounds for n = {n}");
            check_complete(n, &rounds);
        }
        assert_eq!(circle_rounds(4)[0].len(), 2, "4 hosts: two pairs at a time");
        assert!(circle_rounds(1).is_empty());
    }

    #[test]
    fn one_at_a_time_has_a_round_per_pair() {
        let rounds = one_at_a_time(5);
        assert_eq!(rounds.len(), 10);
        assert!(rounds.iter().all(|r| r.len() == 1));
        check_complete(5, &rounds);
    }
}
