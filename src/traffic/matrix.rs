//! A per-peer byte matrix (bytes rank i sends to rank j) and what follows from it: each rank's totals,
//! the packed displacements of its buffers, the busiest rank and the imbalance.

use crate::collective::Shape;
use serde::{Deserialize, Serialize};

/// Bytes from rank i to rank j of one communicator, row-major (`bytes[i * n + j]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBytes {
    n: usize,
    bytes: Vec<u64>,
}

impl PeerBytes {
    /// A matrix from its rows; every row must have `rows.len()` entries.
    pub fn from_rows(rows: Vec<Vec<u64>>) -> Result<PeerBytes, String> {
        let n = rows.len();
        if n == 0 {
            return Err("the matrix has no rows".into());
        }
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(format!(
                "row {i} has {} entries, but a matrix of {n} rows needs {n} per row (square: bytes from rank i to rank j)",
                row.len()
            ));
        }
        Ok(PeerBytes {
            n,
            bytes: rows.concat(),
        })
    }

    /// Parses a whitespace-separated square matrix of bytes, one row per line (nccl-tests'
    /// NCCL_TESTS_ALLTOALLV_MATRIX_FILE format); blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<PeerBytes, String> {
        Self::parse_with(text, |v| {
            v.parse::<u64>()
                .map_err(|_| format!("'{v}' is not a whole number of bytes"))
        })
    }

    /// Parses nccl-tests' own reading of the same format (NCCL_TESTS_ALLTOALLV_MATRIX_FILE): numbers
    /// in any C notation (1e6, 4096.5), each multiplied by `scale` (_MATRIX_SCALE) and rounded down to
    /// 16 bytes, as its alltoallv_perf does.
    pub fn parse_scaled(text: &str, scale: f64) -> Result<PeerBytes, String> {
        Self::parse_with(text, |v| {
            let bytes = v
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && *b >= 0.0)
                .ok_or_else(|| format!("'{v}' is not a number of bytes (0 or more)"))?;
            let scaled = bytes * scale;
            if scaled >= u64::MAX as f64 {
                return Err(format!("{v} x {scale} overflows a byte count"));
            }
            Ok((scaled as u64) & !15)
        })
    }

    /// The matrix's lines, each value read by `value`; an error names its line.
    fn parse_with(
        text: &str,
        value: impl Fn(&str) -> Result<u64, String>,
    ) -> Result<PeerBytes, String> {
        let mut rows = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let row = line
                .split_whitespace()
                .map(|v| value(v).map_err(|e| format!("line {}: {e}", number + 1)))
                .collect::<Result<Vec<u64>, String>>()?;
            rows.push(row);
        }
        PeerBytes::from_rows(rows)
    }

    /// The matrix of the first `n` ranks (nccl-tests uses the leading block of a larger matrix).
    pub fn leading(&self, n: usize) -> PeerBytes {
        let n = n.min(self.n);
        PeerBytes {
            n,
            bytes: (0..n)
                .flat_map(|i| self.bytes[i * self.n..i * self.n + n].iter().copied())
                .collect(),
        }
    }

    /// Ranks of the communicator the matrix describes.
    pub fn ranks(&self) -> usize {
        self.n
    }

    /// Bytes `from` sends to `to`.
    pub fn get(&self, from: usize, to: usize) -> u64 {
        self.bytes[from * self.n + to]
    }

    /// Bytes `rank` sends in all.
    pub fn sent(&self, rank: usize) -> u64 {
        (0..self.n).map(|j| self.get(rank, j)).sum()
    }

    /// Bytes `rank` receives in all.
    pub fn received(&self, rank: usize) -> u64 {
        (0..self.n).map(|i| self.get(i, rank)).sum()
    }

    /// Bytes a rank moves: the larger of what it sends and what it receives (nccl-tests' alltoallv
    /// counts a rank's busier direction).
    pub fn moved(&self, rank: usize) -> u64 {
        self.sent(rank).max(self.received(rank))
    }

    /// The busiest rank's bytes: what algbw divides by time.
    pub fn busiest(&self) -> u64 {
        (0..self.n).map(|r| self.moved(r)).max().unwrap_or(0)
    }

    /// The busiest rank's bytes over the mean of every rank's (1 when every rank moves the same; 0 for
    /// a matrix that moves nothing).
    pub fn imbalance(&self) -> f64 {
        let total: u64 = (0..self.n).map(|r| self.moved(r)).sum();
        if total == 0 {
            return 0.0;
        }
        self.busiest() as f64 / (total as f64 / self.n as f64)
    }

    /// Whether every pair exchanges the same bytes both ways (MPI_IN_PLACE alltoallv needs it).
    pub fn symmetric(&self) -> bool {
        (0..self.n).all(|i| (0..i).all(|j| self.get(i, j) == self.get(j, i)))
    }

    /// Where `rank`'s piece for each peer starts in its send buffer: pieces packed in peer order.
    pub fn send_displacements(&self, rank: usize) -> Vec<u64> {
        prefix_sums((0..self.n).map(|j| self.get(rank, j)))
    }

    /// Where the piece from each peer lands in `rank`'s receive buffer: packed in peer order.
    pub fn recv_displacements(&self, rank: usize) -> Vec<u64> {
        prefix_sums((0..self.n).map(|i| self.get(i, rank)))
    }

    /// `rank`'s side of an all_to_allv in bytes, in the order MPI_Alltoallv and RCCL's ncclAllToAllv take
    /// them: sent to each peer, where each piece starts, received from each, where each lands.
    pub fn rank_lists(&self, rank: usize) -> [Vec<u64>; 4] {
        [
            (0..self.n).map(|j| self.get(rank, j)).collect(),
            self.send_displacements(rank),
            (0..self.n).map(|i| self.get(i, rank)).collect(),
            self.recv_displacements(rank),
        ]
    }

    /// The first entry that is not a whole number of `elt`-byte elements, as (from, to, bytes).
    pub fn misaligned(&self, elt: usize) -> Option<(usize, usize, u64)> {
        (0..self.n * self.n)
            .map(|k| (k / self.n, k % self.n, self.bytes[k]))
            .find(|&(_, _, b)| b % elt as u64 != 0)
    }

    /// The element counts of one all_to_allv of `elt`-byte elements: buffers sized for the rank that
    /// sends most and the rank that receives most, so every rank's buffers are alike; `count` and the
    /// size column are the busiest rank's.
    pub fn shape(&self, elt: usize) -> Shape {
        let elt = elt as u64;
        let most_sent = (0..self.n).map(|r| self.sent(r)).max().unwrap_or(0);
        let most_received = (0..self.n).map(|r| self.received(r)).max().unwrap_or(0);
        Shape {
            count: self.busiest() / elt,
            send_count: most_sent / elt,
            recv_count: most_received / elt,
            size_bytes: self.busiest(),
        }
    }
}

fn prefix_sums(values: impl Iterator<Item = u64>) -> Vec<u64> {
    values
        .scan(0u64, |at, v| {
            let start = *at;
            *at += v;
            Some(start)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_displacements_and_the_busiest_rank() {
        let m = PeerBytes::parse("# bytes i->j\n0 16 32\n48 0 0\n\n16 16 0\n").unwrap();
        assert_eq!(m.ranks(), 3);
        assert_eq!((m.sent(0), m.sent(1), m.sent(2)), (48, 48, 32));
        assert_eq!((m.received(0), m.received(1), m.received(2)), (64, 32, 32));
        assert_eq!(m.busiest(), 64);
        assert_eq!(m.send_displacements(0), vec![0, 0, 16]);
        assert_eq!(m.recv_displacements(0), vec![0, 0, 48]);
        assert_eq!(
            m.rank_lists(2),
            [
                vec![16, 16, 0],
                vec![0, 16, 32],
                vec![32, 0, 0],
                vec![0, 32, 32]
            ]
        );
        // moved: 64, 48, 32 -> mean 48
        assert!((m.imbalance() - 64.0 / 48.0).abs() < 1e-12);
        assert!(!m.symmetric());
        let s = m.shape(4);
        assert_eq!(
            (s.count, s.send_count, s.recv_count, s.size_bytes),
            (16, 12, 16, 64)
        );
        assert_eq!(m.misaligned(16), None);
        assert_eq!(m.leading(2).rank_lists(1)[0], vec![48, 0]);
        assert_eq!(m.misaligned(32), Some((0, 1, 16)));
    }

    #[test]
    fn malformed_matrices_say_where() {
        assert!(PeerBytes::parse("0 1\n2\n").unwrap_err().contains("row 1"));
        assert!(PeerBytes::parse("0 x\n1 0\n")
            .unwrap_err()
            .contains("line 1: 'x'"));
        assert!(PeerBytes::parse("\n# nothing\n")
            .unwrap_err()
            .contains("no rows"));
        assert!(PeerBytes::parse("0 -3\n1 0").is_err());
    }

    #[test]
    fn nccl_tests_reading_scales_rounds_and_takes_the_leading_block() {
        let m = PeerBytes::parse_scaled("0 1e3 40\n20.5 0 16\n100 17 0\n", 2.0).unwrap();
        // 1e3 x 2 = 2000 -> 2000; 40 x 2 = 80; 20.5 x 2 = 41 -> 32; 100 x 2 = 200 -> 192; 17 x 2 = 34 -> 32.
        assert_eq!(m.get(0, 1), 2000);
        assert_eq!(m.get(0, 2), 80);
        assert_eq!(m.get(1, 0), 32);
        assert_eq!(m.get(2, 0), 192);
        assert_eq!(m.get(2, 1), 32);
        let e = PeerBytes::parse_scaled("0 -1\n1 0\n", 1.0).unwrap_err();
        assert!(e.contains("'-1'"), "{e}");
        let two = m.leading(2);
        assert_eq!((two.ranks(), two.get(1, 0), two.get(0, 1)), (2, 32, 2000));
    }
}
