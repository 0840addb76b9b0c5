//! The collectives: their names, and what a size means for each (counts, buffer lengths, bus-bandwidth factor).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collective {
    AllReduce,
    AllGather,
    ReduceScatter,
    Broadcast,
    Reduce,
    AllToAll,
    /// all-to-all with per-peer counts (src/traffic/): not part of `all`, since its bytes come from a
    /// traffic source rather than the size alone.
    #[serde(rename = "all_to_allv")]
    AllToAllv,
    #[serde(rename = "sendrecv")]
    SendRecv,
    Gather,
    Scatter,
    /// nccl-tests' hypercube test: an all-gather in log2(n) rounds of grouped send/recv with the rank
    /// whose index differs in one bit, each round moving twice the last (power-of-two rank counts
    /// only). Not part of `all`, as in nccl-tests (its own binary, hypercube_perf).
    Hypercube,
}

impl Collective {
    /// Every collective, in the order `all` runs them.
    pub const ALL: [Collective; 9] = [
        Collective::AllReduce,
        Collective::AllGather,
        Collective::ReduceScatter,
        Collective::Broadcast,
        Collective::Reduce,
        Collective::AllToAll,
        Collective::SendRecv,
        Collective::Gather,
        Collective::Scatter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collective::AllReduce => "all_reduce",
            Collective::AllGather => "all_gather",
            Collective::ReduceScatter => "reduce_scatter",
            Collective::Broadcast => "broadcast",
            Collective::Reduce => "reduce",
            Collective::AllToAll => "all_to_all",
            Collective::AllToAllv => "all_to_allv",
            Collective::SendRecv => "sendrecv",
            Collective::Gather => "gather",
            Collective::Scatter => "scatter",
            Collective::Hypercube => "hypercube",
        }
    }

    /// Whether the collective combines values with a reduction operator.
    pub fn reduces(self) -> bool {
        matches!(
            self,
            Collective::AllReduce | Collective::ReduceScatter | Collective::Reduce
        )
    }

    /// Whether the collective has a root rank.
    pub fn rooted(self) -> bool {
        matches!(
            self,
            Collective::Broadcast | Collective::Reduce | Collective::Gather | Collective::Scatter
        )
    }

    /// Bus-bandwidth factor for `n` ranks (nccl-tests' doc/PERFORMANCE.md): busbw = algbw x factor.
    pub fn bus_factor(self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            Collective::AllReduce => 2.0 * (n - 1.0) / n,
            Collective::AllGather
            | Collective::ReduceScatter
            | Collective::AllToAll
            | Collective::AllToAllv
            | Collective::Gather
            | Collective::Scatter
            | Collective::Hypercube => (n - 1.0) / n,
            Collective::Broadcast | Collective::Reduce | Collective::SendRecv => 1.0,
        }
    }

    /// The shape of one operation of `bytes` requested bytes of `elt`-byte elements on `n` ranks.
    pub fn shape(self, bytes: u64, elt: usize, n: usize) -> Shape {
        let elt_u = elt as u64;
        let n_u = n as u64;
        let count = bytes / elt_u;
        // nccl-tests: per-rank chunk = count / n, rounded down to a multiple of 16 bytes.
        let align = (16 / elt_u).max(1);
        let chunk = (count / n_u) / align * align;
        let (send, recv, param, size) = match self {
            Collective::AllReduce
            | Collective::Broadcast
            | Collective::Reduce
            | Collective::SendRecv => (count, count, count, count),
            Collective::AllGather | Collective::Hypercube => {
                (chunk, n_u * chunk, chunk, n_u * chunk)
            }
            Collective::ReduceScatter => (n_u * chunk, chunk, chunk, n_u * chunk),
            Collective::AllToAll => (n_u * chunk, n_u * chunk, chunk, n_u * chunk),
            // A row's per-peer counts come from its traffic (src/traffic: `PeerBytes::shape` of each
            // phase's matrix), which this module does not know; without one, the even split (what
            // NCCL_TESTS_ALLTOALLV_SPREAD=0 gives): one chunk to every rank, count the busiest rank's.
            Collective::AllToAllv => (n_u * chunk, n_u * chunk, n_u * chunk, n_u * chunk),
            // Leaves send (gather) or receive (scatter) one chunk; the root holds all n. Buffers are
            // sized for the root so any rank can be the root.
            Collective::Gather => (chunk, n_u * chunk, chunk, n_u * chunk),
            Collective::Scatter => (n_u * chunk, chunk, chunk, n_u * chunk),
        };
        Shape {
            count: param,
            send_count: send,
            recv_count: recv,
            size_bytes: size * elt_u,
        }
    }
}

impl Shape {
    /// Bytes the larger of a rank's two buffers needs for this operation (the root's, where rooted).
    pub fn buffer_bytes(&self, elt: usize) -> u64 {
        self.send_count.max(self.recv_count) * elt as u64
    }
}

/// Where an in-place operation's input and output lie inside the receive buffer, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InPlaceLayout {
    pub input_offset: u64,
    pub output_offset: u64,
}

impl Collective {
    /// The in-place layout on `rank` (NCCL's convention: a rank's chunk sits at rank x chunk).
    pub fn in_place_layout(self, shape: &Shape, rank: usize) -> InPlaceLayout {
        let at_rank = rank as u64 * shape.count;
        match self {
            Collective::AllGather | Collective::Gather | Collective::Hypercube => InPlaceLayout {
                input_offset: at_rank,
                output_offset: 0,
            },
            Collective::ReduceScatter | Collective::Scatter => InPlaceLayout {
                input_offset: 0,
                output_offset: at_rank,
            },
            _ => InPlaceLayout {
                input_offset: 0,
                output_offset: 0,
            },
        }
    }
}

/// Element counts of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Shape {
    /// The count passed to the library call and printed in the `count` column (nccl-tests' paramcount).
    pub count: u64,
    /// Elements in each rank's send buffer (the root's, for rooted collectives).
    pub send_count: u64,
    /// Elements in each rank's receive buffer (the root's, for rooted collectives).
    pub recv_count: u64,
    /// The `size` column: the bytes that algbw divides by time.
    pub size_bytes: u64,
}

impl fmt::Display for Collective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Collective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let key: String = s
            .to_ascii_lowercase()
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect();
        // Our names, nccl-tests' binary names (all_reduce_perf, alltoall_perf, ...) and MPI's.
        let key = key.strip_suffix("perf").unwrap_or(&key);
        let c = match key {
            "allreduce" => Collective::AllReduce,
            "allgather" => Collective::AllGather,
            "reducescatter" => Collective::ReduceScatter,
            "broadcast" | "bcast" => Collective::Broadcast,
            "reduce" => Collective::Reduce,
            "alltoall" => Collective::AllToAll,
            "alltoallv" => Collective::AllToAllv,
            "sendrecv" | "p2p" => Collective::SendRecv,
            "gather" => Collective::Gather,
            "scatter" => Collective::Scatter,
            "hypercube" => Collective::Hypercube,
            _ => {
                return Err(format!(
                    "unknown collective '{s}': use one of {} all_to_allv hypercube or all (nccl-tests spellings such as allreduce and alltoall work too)",
                    Collective::ALL.map(|c| c.name()).join(" ")
                ))
            }
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_our_and_nccl_tests_spellings() {
        assert_eq!("all_reduce".parse(), Ok(Collective::AllReduce));
        assert_eq!("allreduce".parse(), Ok(Collective::AllReduce));
        assert_eq!("all_reduce_perf".parse(), Ok(Collective::AllReduce));
        assert_eq!("alltoall".parse(), Ok(Collective::AllToAll));
        assert_eq!("alltoallv".parse(), Ok(Collective::AllToAllv));
        assert_eq!("alltoallv_perf".parse(), Ok(Collective::AllToAllv));
        assert_eq!("all_to_allv".parse(), Ok(Collective::AllToAllv));
        assert_eq!("ReduceScatter".parse(), Ok(Collective::ReduceScatter));
        assert_eq!("sendrecv".parse(), Ok(Collective::SendRecv));
        for c in Collective::ALL {
            assert_eq!(c.name().parse(), Ok(c));
        }
        assert!("no_such_collective"
            .parse::<Collective>()
            .unwrap_err()
            .contains("no_such_collective"));
    }

    #[test]
    fn bus_factors_for_common_rank_counts() {
        let expect = |c: Collective, n: usize, f: f64| {
            assert!((c.bus_factor(n) - f).abs() < 1e-12, "{c} n={n}")
        };
        for (n, ar, ag) in [
            (1, 0.0, 0.0),
            (2, 1.0, 0.5),
            (3, 4.0 / 3.0, 2.0 / 3.0),
            (4, 1.5, 0.75),
            (8, 1.75, 0.875),
        ] {
            expect(Collective::AllReduce, n, ar);
            for c in [
                Collective::AllGather,
                Collective::ReduceScatter,
                Collective::AllToAll,
                Collective::Gather,
                Collective::Scatter,
            ] {
                expect(c, n, ag);
            }
            for c in [
                Collective::Broadcast,
                Collective::Reduce,
                Collective::SendRecv,
            ] {
                expect(c, n, 1.0);
            }
        }
    }

    #[test]
    fn shapes_for_common_rank_counts() {
        // 1 MiB of floats: 262144 elements.
        let count = 262144u64;
        for n in [1usize, 2, 3, 4, 8] {
            let nu = n as u64;
            // chunk rounded down to 16 bytes = 4 floats
            let chunk = count / nu / 4 * 4;
            let ar = Collective::AllReduce.shape(1 << 20, 4, n);
            assert_eq!(
                ar,
                Shape {
                    count,
                    send_count: count,
                    recv_count: count,
                    size_bytes: 1 << 20
                }
            );
            let ag = Collective::AllGather.shape(1 << 20, 4, n);
            assert_eq!(
                ag,
                Shape {
                    count: chunk,
                    send_count: chunk,
                    recv_count: nu * chunk,
                    size_bytes: nu * chunk * 4
                }
            );
            let rs = Collective::ReduceScatter.shape(1 << 20, 4, n);
            assert_eq!(
                rs,
                Shape {
                    count: chunk,
                    send_count: nu * chunk,
                    recv_count: chunk,
                    size_bytes: nu * chunk * 4
                }
            );
            let a2a = Collective::AllToAll.shape(1 << 20, 4, n);
            assert_eq!(
                a2a,
                Shape {
                    count: chunk,
                    send_count: nu * chunk,
                    recv_count: nu * chunk,
                    size_bytes: nu * chunk * 4
                }
            );
            let sc = Collective::Scatter.shape(1 << 20, 4, n);
            assert_eq!((sc.send_count, sc.recv_count), (nu * chunk, chunk));
            let ga = Collective::Gather.shape(1 << 20, 4, n);
            assert_eq!((ga.send_count, ga.recv_count), (chunk, nu * chunk));
            for c in [
                Collective::Broadcast,
                Collective::Reduce,
                Collective::SendRecv,
            ] {
                assert_eq!(c.shape(1 << 20, 4, n).size_bytes, 1 << 20);
            }
        }
        // With 3 ranks the chunk is rounded down: 262144 / 3 = 87381 -> 87380 floats.
        assert_eq!(Collective::AllGather.shape(1 << 20, 4, 3).count, 87380);
        assert_eq!(
            Collective::AllGather.shape(1 << 20, 4, 3).size_bytes,
            3 * 87380 * 4
        );
        // int8 aligns to 16 elements, double to 2.
        assert_eq!(Collective::AllToAll.shape(1000, 1, 3).count, 320);
        assert_eq!(Collective::AllToAll.shape(1000, 8, 3).count, 40);
    }

    #[test]
    fn serialised_names_are_the_printed_names() {
        for c in Collective::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
    }

    #[test]
    fn counts_beyond_two_to_the_31_are_kept() {
        let s = Collective::AllReduce.shape(16u64 << 30, 1, 8);
        assert_eq!(s.count, 16u64 << 30);
        assert!(s.count > i32::MAX as u64);
    }
}
