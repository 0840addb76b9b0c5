//! Which pairs run together: the circle method (n-1 rounds of n/2 disjoint pairs, every pair once), or
//! one pair at a time.

/// One round: pairs of participant indices that run at the same time; no participant is in two.
pub type Round = Vec<(usize, usize)>;

/// The circle method: participant 0 stays, the others rotate one place per round. With an odd count
/// one participant sits out each round. Every pair appears exactly once, smaller index first.
pub fn circle_rounds(n: usize) -> Vec<Round> {
    (0..circle_round_count(n))
        .map(|r| circle_round(n, r))
        .collect()
}

/// How many rounds the circle method has for `n` participants: n-1, or n when n is odd.
pub fn circle_round_count(n: usize) -> usize {
    if n < 2 {
        0
    } else {
        n + n % 2 - 1
    }
}

/// Round `r` of the circle method alone (r taken modulo the round count), in O(n): a search that walks
/// the schedule at 4,096 hosts cannot hold all of its n²/2 pairs.
pub fn circle_round(n: usize, r: usize) -> Round {
    if n < 2 {
        return Vec::new();
    }
    // An odd count gets a phantom participant; whoever meets it sits the round out.
    let slots = n + n % 2;
    let ring = slots - 1;
    let shift = r % ring;
    // Seat 0 is participant 0; seat i > 0 holds the ring rotated right `shift` places.
    let seat = |i: usize| {
        if i == 0 {
            0
        } else {
            1 + (i - 1 + ring - shift) % ring
        }
    };
    (0..slots / 2)
        .map(|i| (seat(i), seat(slots - 1 - i)))
        .filter(|&(a, b)| a < n && b < n)
        .map(|(a, b)| (a.min(b), a.max(b)))
        .collect()
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
