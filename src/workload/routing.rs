//! The per-peer bytes of an EP step's dispatch and combine under balanced routing: a group's tokens
//! split as evenly as whole tokens allow over its ranks, and each rank's token copies (tokens x top-k)
//! spread evenly over the ranks that hold the experts. Combine sends every copy back: the transpose.

use super::messages::{Half, Route};
use crate::traffic::matrix::PeerBytes;

/// The matrix of one half of an EP step on a group of `ranks` ranks; `token_bytes` is one token's
/// hidden state.
pub fn matrix(route: &Route, ranks: usize, token_bytes: u64) -> PeerBytes {
    let k = ranks as u64;
    let mut rows = vec![vec![0u64; ranks]; ranks];
    for (from, row) in rows.iter_mut().enumerate() {
        let r = from as u64;
        let tokens = route.tokens / k + u64::from(r < route.tokens % k);
        let copies = tokens * route.experts_per_token;
        for (to, cell) in row.iter_mut().enumerate() {
            // The remainder goes to the ranks after the sender, so no receiver is favoured.
            let offset = (to as u64 + k - r) % k;
            *cell = (copies / k + u64::from(offset < copies % k)) * token_bytes;
        }
    }
    if route.half == Half::Combine {
        rows = (0..ranks)
            .map(|i| (0..ranks).map(|j| rows[j][i]).collect())
            .collect();
    }
    // Square by construction.
    PeerBytes::from_rows(rows).unwrap_or_else(|e| unreachable!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(half: Half, tokens: u64) -> Route {
        Route {
            half,
            tokens,
            experts_per_token: 2,
        }
    }

    #[test]
    fn one_token_on_four_ranks_goes_from_rank_0_and_comes_back() {
        let d = matrix(&route(Half::Dispatch, 1), 4, 10);
        // Rank 0 holds the token; its 2 copies go to ranks 0 and 1.
        assert_eq!((d.get(0, 0), d.get(0, 1), d.get(0, 2)), (10, 10, 0));
        assert_eq!((d.sent(0), d.sent(1)), (20, 0));
        assert_eq!(d.busiest(), 20);
        let c = matrix(&route(Half::Combine, 1), 4, 10);
        assert_eq!((c.get(1, 0), c.received(0), c.sent(0)), (10, 20, 10));
    }

    #[test]
    fn evenly_divisible_tokens_give_a_uniform_symmetric_matrix() {
        // 8 tokens on 4 ranks: 2 each, 4 copies each, one to every rank.
        let d = matrix(&route(Half::Dispatch, 8), 4, 2048);
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(d.get(i, j), 2048);
            }
        }
        assert!(d.symmetric());
        assert_eq!(d.imbalance(), 1.0);
        // 3 tokens on 2 ranks: rank 0 has 2 (4 copies), rank 1 has 1 (2 copies).
        let u = matrix(&route(Half::Dispatch, 3), 2, 1);
        assert_eq!((u.sent(0), u.sent(1)), (4, 2));
    }
}
