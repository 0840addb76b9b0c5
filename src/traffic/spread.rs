//! How alltoallv_perf spreads `size` bytes per rank over the peers: nccl-tests' "spread" formula (2.19),
//! from even (s = 0) to farther peers getting more (s = 1, the default), and rccl-tests' own counts.

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

/// rccl-tests' alltoallv_perf counts, which RCCL users compare with: p = size / n elements, rounded down to
/// 16 bytes; chunk = 2p / n elements; rank r sends peer i ((i + r) mod n) chunks, and the peer with
/// (i + r) mod n = 0 also gets what is left of n p. Every rank sends and receives n p elements, and the
/// matrix is symmetric. Below n^2 / 2 elements rccl-tests moves nothing, and so does this.
pub fn rccl_tests(size: u64, n: usize, elt: usize) -> PeerBytes {
    let (n_u, elt_u) = (n as u64, elt as u64);
    let elements = size / elt_u;
    let per_peer = if n == 0 || elements < n_u * n_u / 2 {
        0
    } else {
        let align = (16 / elt_u).max(1);
        elements / n_u / align * align
    };
    let chunk = if n == 0 { 0 } else { per_peer * 2 / n_u };
    let rest = (per_peer * n_u).saturating_sub(chunk * n_u * n_u.saturating_sub(1) / 2);
    let rows = (0..n)
        .map(|r| {
            (0..n)
                .map(|i| {
                    let k = ((i + r) % n) as u64;
                    let elements = k * chunk + if k == 0 { rest } else { 0 };
                    elements * elt_u
                })
                .collect()
        })
        .collect();
    PeerBytes::from_rows(rows).expect("the rccl-tests matrix is square")
}

/// The spread factor from NCCL_TESTS_ALLTOALLV_SPREAD (0 to 1), or the default when it is unset.
pub fn spread_from_env() -> Result<f64, String> {
    match std::env::var("NCCL_TESTS_ALLTOALLV_SPREAD") {
        Err(_) => Ok(DEFAULT_SPREAD),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_SPREAD),
        Ok(v) => factor(&v).ok_or_else(|| {
            format!("NCCL_TESTS_ALLTOALLV_SPREAD={v}: give a number from 0 to 1, or unset it")
        }),
    }
}

/// A spread factor as written (NCCL_TESTS_ALLTOALLV_SPREAD or `--spread S`): a number from 0 to 1.
pub fn factor(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| (0.0..=1.0).contains(s))
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
    fn rccl_tests_counts_on_four_ranks_by_hand() {
        // 1024 B of float over 4 ranks: p = 64 elements, chunk = 32; rank 0 sends peers 0..3
        // k = 0, 1, 2, 3 chunks, and peer 0 also gets the rest, 4 x 64 - 32 x 6 = 64 elements.
        let m = rccl_tests(1024, 4, 4);
        assert_eq!(
            (0..4).map(|i| m.get(0, i)).collect::<Vec<_>>(),
            [256, 128, 256, 384]
        );
        // Rank 1: k = (i + 1) mod 4 = 1, 2, 3, 0.
        assert_eq!(
            (0..4).map(|i| m.get(1, i)).collect::<Vec<_>>(),
            [128, 256, 384, 256]
        );
        assert!(m.symmetric());
        for r in 0..4 {
            assert_eq!((m.sent(r), m.received(r)), (1024, 1024));
        }
        assert_eq!(m.busiest(), 1024);
    }

    #[test]
    fn rccl_tests_rounds_to_16_bytes_and_moves_nothing_below_its_floor() {
        // 1000 B of int8 over 3 ranks: 333 elements per peer -> 320 (16 B); chunk 213; rest 960 - 639.
        let m = rccl_tests(1000, 3, 1);
        assert_eq!(
            (0..3).map(|i| m.get(0, i)).collect::<Vec<_>>(),
            [321, 213, 426]
        );
        assert_eq!(m.sent(2), 960);
        // 8 ranks need 32 elements; 31 floats move nothing.
        assert_eq!(rccl_tests(31 * 4, 8, 4).busiest(), 0);
        // 32 floats: p = 4, chunk = 1, rest 32 - 28 = 4.
        let smallest = rccl_tests(32 * 4, 8, 4);
        assert_eq!((smallest.get(0, 0), smallest.get(0, 7)), (16, 28));
        assert_eq!(smallest.busiest(), 128);
        assert_eq!(rccl_tests(1024, 1, 4).get(0, 0), 1024);
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
