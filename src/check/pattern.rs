//! Input values chosen so that every exact result is known whatever the reduction order, and the
//! expected output of every collective on every rank.

use crate::collective::{Collective, Shape};
use crate::dtype::{DataType, ReduceOp};
use crate::traffic::matrix::PeerBytes;
use std::sync::Arc;

/// What one element of an input or expected output is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Element {
    /// An exact small integer, written with `DataType::encode` and compared bit for bit.
    Exact(u64),
    /// A rounded average, compared within 2 ulp.
    Average(f64),
}

impl Element {
    /// Writes this element as `dtype`'s bytes.
    pub fn encode(self, dtype: DataType, out: &mut [u8]) {
        match self {
            Element::Exact(v) => dtype.encode(v, out),
            Element::Average(v) => dtype.encode_f64(v, out),
        }
    }
}

/// Where the values of a stretch of output come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One rank's input.
    Input(usize),
    /// The reduction over every rank's input at the same index.
    Fold,
}

/// The largest input value `k` of a summing operator on `n` ranks: n x k (2n x k for mulsum, whose
/// odd ranks count twice) within the type's exact limit, and at most 3.
pub fn sum_bound(limit: u64, n: u64, op: ReduceOp) -> u64 {
    let weight = if op == ReduceOp::MulSum { 2 } else { 1 };
    (limit / (weight * n)).min(3)
}

/// The generator of input values for one operation.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub collective: Collective,
    pub dtype: DataType,
    pub op: Option<ReduceOp>,
    pub root: usize,
    pub ranks: usize,
    pub seed: u64,
    pub shape: Shape,
    /// all_to_allv's per-peer bytes (None for every other collective).
    pub counts: Option<Arc<PeerBytes>>,
}

impl Pattern {
    /// Input element `index` of `rank`.
    pub fn input(&self, rank: usize, index: u64) -> u64 {
        let n = self.ranks as u64;
        let r = rank as u64;
        let limit = self.dtype.exact_integer_limit();
        let mix = index
            .wrapping_mul(7)
            .wrapping_add(r.wrapping_mul(3))
            .wrapping_add(self.seed.wrapping_mul(5));
        match self.op.filter(|_| self.collective.reduces()) {
            // Sums stay below the type's exact limit: values 0..=k with n * k <= limit; where even k = 1
            // would overflow, one rank per index contributes 1.
            Some(op @ (ReduceOp::Sum | ReduceOp::Avg | ReduceOp::MulSum)) => {
                let k = sum_bound(limit, n, op);
                if k == 0 {
                    u64::from((index + self.seed) % n == r)
                } else {
                    mix % (k + 1)
                }
            }
            // Products of 1s and 2s: exactly j ranks give 2 at an index, 2^j within the exact limit.
            Some(ReduceOp::Prod) => {
                let t = (63 - limit.leading_zeros() as u64).min(n).min(6);
                let j = (index + self.seed) % (t + 1);
                if (index + self.seed + r) % n < j {
                    2
                } else {
                    1
                }
            }
            Some(ReduceOp::Max) | Some(ReduceOp::Min) => mix % (limit.min(16) + 1),
            // Data movement: values identify rank and index as far as the type's range allows.
            None => {
                (index
                    .wrapping_mul(3)
                    .wrapping_add(r.wrapping_mul(11))
                    .wrapping_add(self.seed.wrapping_mul(7))
                    + 1)
                    % (limit.min(4096) + 1)
            }
        }
    }

    /// Number of input elements `rank` provides (0 where it provides none).
    pub fn input_len(&self, rank: usize) -> u64 {
        let Shape {
            send_count, count, ..
        } = self.shape;
        let n = self.ranks as u64;
        match self.collective {
            Collective::Broadcast => {
                if rank == self.root {
                    count
                } else {
                    0
                }
            }
            Collective::Scatter => {
                if rank == self.root {
                    n * count
                } else {
                    0
                }
            }
            Collective::AllToAllv => self.peer_elements(|m| m.sent(rank)),
            _ => send_count,
        }
    }

    /// An all_to_allv quantity of bytes in elements (0 without counts).
    fn peer_elements(&self, bytes: impl Fn(&PeerBytes) -> u64) -> u64 {
        self.counts
            .as_deref()
            .map_or(0, |m| bytes(m) / self.dtype.size() as u64)
    }

    /// all_to_allv: the peer whose piece holds element `index` of `rank`'s output, and the input index
    /// that piece starts from in that peer's send buffer.
    fn v_source(&self, rank: usize, index: u64) -> (usize, u64, u64) {
        let m = self.counts.as_deref().expect("all_to_allv has counts");
        let elt = self.dtype.size() as u64;
        let starts = m.recv_displacements(rank);
        let from = (0..m.ranks())
            .rev()
            .find(|&s| starts[s] / elt <= index && m.get(s, rank) > 0)
            .unwrap_or(0);
        (
            from,
            starts[from] / elt,
            m.send_displacements(from)[rank] / elt,
        )
    }

    /// Number of output elements `rank` receives (0 where it receives none).
    pub fn output_len(&self, rank: usize) -> u64 {
        let Shape {
            recv_count, count, ..
        } = self.shape;
        let n = self.ranks as u64;
        match self.collective {
            Collective::Reduce => {
                if rank == self.root {
                    count
                } else {
                    0
                }
            }
            Collective::Gather => {
                if rank == self.root {
                    n * count
                } else {
                    0
                }
            }
            Collective::AllToAllv => self.peer_elements(|m| m.received(rank)),
            _ => recv_count,
        }
    }

    fn fold(&self, index: u64) -> Element {
        let op = self.op.unwrap_or(ReduceOp::Sum);
        let values = (0..self.ranks).map(|s| self.input(s, index));
        match op {
            ReduceOp::Sum => Element::Exact(values.sum()),
            ReduceOp::MulSum => Element::Exact(
                (0..self.ranks)
                    .map(|s| ReduceOp::premul_scalar(s) * self.input(s, index))
                    .sum(),
            ),
            ReduceOp::Prod => Element::Exact(values.product()),
            ReduceOp::Max => Element::Exact(values.max().unwrap_or(0)),
            ReduceOp::Min => Element::Exact(values.min().unwrap_or(0)),
            ReduceOp::Avg => {
                let sum: u64 = values.sum();
                if self.dtype.is_float() {
                    Element::Average(sum as f64 / self.ranks as f64)
                } else {
                    // Integer averages truncate, as NCCL's do.
                    Element::Exact(sum / self.ranks as u64)
                }
            }
        }
    }

    /// `source`'s value at input index `index`.
    pub fn value(&self, source: Source, index: u64) -> Element {
        match source {
            Source::Input(rank) => Element::Exact(self.input(rank, index)),
            Source::Fold => self.fold(index),
        }
    }

    /// Whether outputs are rounded averages, compared within 2 ulp rather than bit for bit.
    pub fn averages(&self) -> bool {
        self.collective.reduces() && self.op == Some(ReduceOp::Avg) && self.dtype.is_float()
    }

    /// Expected output element `index` of `rank`.
    pub fn expected(&self, rank: usize, index: u64) -> Element {
        let n = self.ranks as u64;
        let chunk = self.shape.count;
        let r = rank as u64;
        match self.collective {
            Collective::AllReduce | Collective::Reduce => self.fold(index),
            Collective::ReduceScatter => self.fold(r * chunk + index),
            Collective::Broadcast => Element::Exact(self.input(self.root, index)),
            Collective::AllGather | Collective::Gather | Collective::Hypercube => {
                Element::Exact(self.input((index / chunk) as usize, index % chunk))
            }
            Collective::Scatter => Element::Exact(self.input(self.root, r * chunk + index)),
            Collective::AllToAll => {
                Element::Exact(self.input((index / chunk) as usize, r * chunk + index % chunk))
            }
            Collective::SendRecv => Element::Exact(self.input(((r + n - 1) % n) as usize, index)),
            Collective::AllToAllv => {
                let (from, start, base) = self.v_source(rank, index);
                Element::Exact(self.input(from, base + index - start))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(
        collective: Collective,
        dtype: DataType,
        op: Option<ReduceOp>,
        ranks: usize,
    ) -> Pattern {
        Pattern {
            collective,
            dtype,
            op,
            root: 0,
            ranks,
            seed: 3,
            shape: collective.shape(4096, dtype.size(), ranks),
            counts: None,
        }
    }

    /// Every reduction result stays within the type's exact range, for every type, op and rank count,
    /// so a float reduction in any order gives exactly this value.
    #[test]
    fn reductions_stay_exact_for_every_type_op_and_rank_count() {
        for t in DataType::ALL {
            for op in [
                ReduceOp::Sum,
                ReduceOp::Prod,
                ReduceOp::Max,
                ReduceOp::Min,
                ReduceOp::MulSum,
            ] {
                for n in [1, 2, 3, 4, 8, 64, 300] {
                    let p = pattern(Collective::AllReduce, t, Some(op), n);
                    for i in 0..200 {
                        match p.expected(0, i) {
                            Element::Exact(v) => {
                                assert!(v <= t.exact_integer_limit(), "{t} {op} n={n} i={i}: {v}")
                            }
                            e => panic!("{e:?}"),
                        }
                        for r in 0..n {
                            assert!(p.input(r, i) <= t.exact_integer_limit());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn exact_expected_values_for_small_cases() {
        // float sum on 4 ranks: expected is the sum of the four generated inputs.
        let p = pattern(
            Collective::AllReduce,
            DataType::Float,
            Some(ReduceOp::Sum),
            4,
        );
        for i in 0..50 {
            let manual: u64 = (0..4).map(|r| (i * 7 + r * 3 + 15) % 4).sum();
            assert_eq!(p.expected(2, i), Element::Exact(manual));
        }
        // prod: exactly j = (i + seed) % (t + 1) ranks contribute a 2.
        let p = pattern(
            Collective::AllReduce,
            DataType::Int32,
            Some(ReduceOp::Prod),
            4,
        );
        for i in 0..50 {
            assert_eq!(p.expected(0, i), Element::Exact(1 << ((i + 3) % 5)));
        }
        // max and min over ranks.
        let p = pattern(
            Collective::AllReduce,
            DataType::Int8,
            Some(ReduceOp::Max),
            3,
        );
        for i in 0..50 {
            let m = (0..3).map(|r| p.input(r, i)).max().unwrap();
            assert_eq!(p.expected(1, i), Element::Exact(m));
        }
        // float avg is a rounded quotient, integer avg truncates.
        let p = pattern(
            Collective::AllReduce,
            DataType::Float,
            Some(ReduceOp::Avg),
            3,
        );
        let sum: u64 = (0..3).map(|r| p.input(r, 5)).sum();
        assert_eq!(p.expected(0, 5), Element::Average(sum as f64 / 3.0));
        let p = pattern(
            Collective::AllReduce,
            DataType::Int32,
            Some(ReduceOp::Avg),
            3,
        );
        let sum: u64 = (0..3).map(|r| p.input(r, 5)).sum();
        assert_eq!(p.expected(0, 5), Element::Exact(sum / 3));
    }

    #[test]
    fn data_movement_expectations_point_at_the_right_source() {
        let n = 3;
        let ag = pattern(Collective::AllGather, DataType::Int32, None, n);
        let chunk = ag.shape.count;
        assert_eq!(ag.expected(0, chunk + 5), Element::Exact(ag.input(1, 5)));
        let a2a = pattern(Collective::AllToAll, DataType::Int32, None, n);
        // Rank 2's block from rank 1 is rank 1's block 2.
        assert_eq!(
            a2a.expected(2, chunk + 4),
            Element::Exact(a2a.input(1, 2 * chunk + 4))
        );
        let sr = pattern(Collective::SendRecv, DataType::Int32, None, n);
        assert_eq!(sr.expected(0, 9), Element::Exact(sr.input(2, 9)));
        let sc = pattern(Collective::Scatter, DataType::Int32, None, n);
        assert_eq!(sc.expected(1, 3), Element::Exact(sc.input(0, chunk + 3)));
        let rs = pattern(
            Collective::ReduceScatter,
            DataType::Int32,
            Some(ReduceOp::Sum),
            n,
        );
        let manual: u64 = (0..n).map(|r| rs.input(r, 2 * chunk + 1)).sum();
        assert_eq!(rs.expected(2, 1), Element::Exact(manual));
        // Distinct ranks give distinct data at the same index, so a misrouted block is caught.
        assert_ne!(ag.input(0, 7), ag.input(1, 7));
    }

    #[test]
    fn who_sends_and_who_receives() {
        let b = pattern(Collective::Broadcast, DataType::Float, None, 4);
        assert_eq!((b.input_len(0), b.input_len(1)), (1024, 0));
        assert_eq!(b.output_len(3), 1024);
        let r = pattern(Collective::Reduce, DataType::Float, Some(ReduceOp::Sum), 4);
        assert_eq!((r.output_len(0), r.output_len(1)), (1024, 0));
        let g = pattern(Collective::Gather, DataType::Float, None, 4);
        assert_eq!(
            (g.input_len(2), g.output_len(0), g.output_len(2)),
            (256, 1024, 0)
        );
    }
}
