//! nccl-tests' alltoallv "spread" formula (alltoallv_perf, 2.19): how `size` bytes per rank are spread over
//! the peers, from even (s = 0) to farther peers getting more (s = 1, the default).

use super::matrix::PeerBytes;

/// NCCL_TESTS_ALLTOALLV_SPREAD's default.
pub const DEFAULT_SPREAD: f64 = 1.0;

/// Bytes rank i sends rank j: with d = (j - i + n) mod n, (1 - s) T/n + s d T / (n(n-1)/2), rounded down
/// to 16 bytes. With s = 1 a rank sends itself nothing, and every rank sends and receives about T.
pub fn spread(size: u64, n: usize, s: f64) -> PeerBytes {
    let t = size as f64;
    let nf = n as f64;
    let pairs = nf * (nf - 1.0) / 2.0;
    let rows = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let d = ((j + n - i) % n) as f64;
                    let far = if pairs > 0.0 { s * d * t / pairs } else { 0.0 };
                    let bytes = (1.0 - s) * t / nf + far;
                    (bytes.max(0.0) as u64) / 16 * 16
                })
                .collect()
        })
        .collect();
    PeerBytes::from_rows(rows).expect("the spread matrix is square")
}

/// The spread factor from NCCL_TESTS_ALLTOALLV_SPREAD (0 to 1), or the default when it is unset.
pub fn spread_from_env() -> Result<f64, String> {
    match std::env::var("NCCL_TESTS_ALLTOALLV_SPREAD") {
        Err(_) => Ok(DEFAULT_SPREAD),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_SPREAD),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| (0.0..=1.0).contains(s))
            .ok_or_else(|| {
                format!("NCCL_TESTS_ALLTOALLV_SPREAD={v}: give a number from 0 to 1, or unset it")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spread_on_four_ranks_by_hand() {
        // T = 1024, n = 4: n(n-1)/2 = 6; d = 1: 170.7 -> 160, d = 2: 341.3 -> 336, d = 3: 512.
        let m = spread(1024, 4, 1.0);
        assert_eq!(
            (0..4).map(|j| m.get(0, j)).collect::<Vec<_>>(),
            [0, 160, 336, 512]
        );
        assert_eq!(
            (0..4).map(|i| m.get(i, 0)).collect::<Vec<_>>(),
            [0, 512, 336, 160]
        );
        for r in 0..4 {
            assert_eq!((m.sent(r), m.received(r)), (1008, 1008));
        }
        assert_eq!(m.busiest(), 1008);
        assert_eq!(m.imbalance(), 1.0);
    }

    #[test]
    fn no_spread_is_an_even_all_to_all() {
        let m = spread(1 << 20, 4, 0.0);
        assert!((0..16).all(|k| m.get(k / 4, k % 4) == 1 << 18));
        assert_eq!(spread(1024, 1, 1.0).get(0, 0), 0);
        assert_eq!(spread(1024, 1, 0.0).get(0, 0), 1024);
    }

    #[test]
    fn no_spread_has_the_shape_all_to_allv_has_without_traffic() {
        use crate::collective::Collective;
        for (bytes, n) in [(1u64 << 20, 4), (1000, 3), (4096, 7), (100, 8)] {
            for elt in [1, 2, 4, 8] {
                assert_eq!(
                    spread(bytes, n, 0.0).shape(elt),
                    Collective::AllToAllv.shape(bytes, elt, n),
                    "{bytes} bytes on {n} ranks, {elt}-byte elements"
                );
            }
        }
    }
}
