//! What an operation is on this rank in MPI's terms: its calls in order (element-wise collectives in
//! pieces that MPI's int count holds, nccl-tests' hypercube as rounds of sendrecv) and the copies that
//! make MPI's buffers end as NCCL's do.

use super::{offset, MpiBackend};
use crate::backend::OpDesc;
use crate::collective::{Collective, Shape};
use crate::error::{Error, Result};
use crate::ffi::mpi::{self as raw, At, Buf, Call};

/// MPI takes counts as C ints; larger element-wise operations are issued in pieces of this many.
const MAX_PIECE: u64 = 1 << 30;

/// One step of an operation on this rank, in MPI's terms.
pub(super) enum Step {
    Call(&'static str, Call),
    /// MPI_Alltoallv with the counts of `peer_counts`.
    Alltoallv {
        send: Option<At>,
        recv: At,
    },
    /// `len` bytes from the send buffer at `from` to the receive buffer at `to` (the root's own data in
    /// an out-of-place broadcast, a rank's own block in the hypercube's).
    Copy {
        from: usize,
        to: usize,
        len: usize,
    },
}

impl MpiBackend<'_> {
    /// What `desc` is on this rank, in MPI's terms: its calls in order (element-wise collectives in
    /// pieces MPI's int count holds) and the copies between them; nothing for a rank that waits.
    pub(super) fn steps(&mut self, desc: &OpDesc) -> Result<Vec<Step>> {
        let rank = desc.comm.rank;
        let n = desc.comm.size;
        let mut steps = Vec::new();
        let partners = desc.peer.partners(rank, n);
        if desc.collective == Collective::SendRecv && partners == (None, None) {
            // Idle while other pairs exchange.
            return Ok(steps);
        }
        let t = desc.dtype;
        let Shape { count, .. } = desc.shape;
        let root = desc.root.unwrap_or(0) as i32;
        let op = raw::op(desc.op.map(|o| o.name()).unwrap_or("sum"));
        let in_place = desc.in_place;
        let layout = self
            .capabilities
            .in_place_layout(desc.collective, &desc.shape, rank);
        let send_at = |elements: u64| -> Option<At> {
            if in_place {
                None
            } else {
                Some((Buf::Send, offset(elements, t)))
            }
        };
        match desc.collective {
            // Element-wise collectives split into pieces MPI's int count can hold.
            Collective::AllReduce
            | Collective::Broadcast
            | Collective::Reduce
            | Collective::SendRecv => {
                let dt = Self::datatype(t);
                let mut done = 0u64;
                while done < count || (count == 0 && done == 0) {
                    let piece = (count - done).min(MAX_PIECE.min(self.max_count)) as i32;
                    let at = offset(done, t);
                    let call = match desc.collective {
                        Collective::AllReduce => Call::Allreduce {
                            send: if in_place {
                                None
                            } else {
                                Some((Buf::Send, at))
                            },
                            recv: (Buf::Recv, at),
                            count: piece,
                            dt,
                            op,
                        },
                        Collective::Broadcast => {
                            let from = if in_place || rank as i32 != root {
                                Buf::Recv
                            } else {
                                Buf::Send
                            };
                            Call::Bcast {
                                buf: (from, at),
                                count: piece,
                                dt,
                                root,
                            }
                        }
                        Collective::Reduce => {
                            let at_root = rank as i32 == root;
                            Call::Reduce {
                                send: match (in_place, at_root) {
                                    (false, _) => Some((Buf::Send, at)),
                                    (true, true) => None,
                                    (true, false) => Some((Buf::Recv, at)),
                                },
                                recv: (Buf::Recv, at),
                                count: piece,
                                dt,
                                op,
                                root,
                            }
                        }
                        _ => {
                            // A missing direction is MPI_PROC_NULL: the call returns at once on it.
                            let rank_or_none =
                                |r: Option<usize>| r.map_or(raw::proc_null(), |r| r as i32);
                            let (to, from) = (rank_or_none(partners.0), rank_or_none(partners.1));
                            if in_place {
                                Call::SendrecvReplace {
                                    buf: (Buf::Recv, at),
                                    count: piece,
                                    dt,
                                    to,
                                    from,
                                }
                            } else {
                                Call::Sendrecv {
                                    send: (Buf::Send, at),
                                    recv: (Buf::Recv, at),
                                    count: piece,
                                    dt,
                                    to,
                                    from,
                                }
                            }
                        }
                    };
                    steps.push(Step::Call(desc.collective.name(), call));
                    done += piece as u64;
                    if count == 0 {
                        break;
                    }
                }
                // NCCL's out-of-place broadcast also fills the root's receive buffer; MPI_Bcast has one
                // buffer, so the root copies its own data to match.
                if desc.collective == Collective::Broadcast && !in_place && rank as i32 == root {
                    steps.push(Step::Copy {
                        from: 0,
                        to: 0,
                        len: offset(count, t),
                    });
                }
            }
            Collective::AllGather => {
                let (dt, c) = self.movement(t, count)?;
                let send = if in_place { None } else { Some((Buf::Send, 0)) };
                steps.push(Step::Call(
                    "MPI_Allgather",
                    Call::Allgather {
                        send,
                        recv: (Buf::Recv, 0),
                        count: c,
                        dt,
                    },
                ));
            }
            Collective::AllToAll => {
                let (dt, c) = self.movement(t, count)?;
                steps.push(Step::Call(
                    "MPI_Alltoall",
                    Call::Alltoall {
                        send: send_at(0),
                        recv: (Buf::Recv, 0),
                        count: c,
                        dt,
                    },
                ));
            }
            Collective::AllToAllv => {
                self.make_peer_counts(desc)?;
                steps.push(Step::Alltoallv {
                    send: send_at(0),
                    recv: (Buf::Recv, 0),
                });
            }
            Collective::Hypercube => self.hypercube(desc, &mut steps)?,
            Collective::ReduceScatter => {
                if count > self.max_count {
                    return Err(Error::Unsupported(format!(
                        "reduce_scatter of {count} elements per rank is beyond one MPI call: lower -e"
                    )));
                }
                let dt = Self::datatype(t);
                let call = Call::ReduceScatterBlock {
                    send: send_at(0),
                    recv: (Buf::Recv, 0),
                    count: count as i32,
                    dt,
                    op,
                };
                steps.push(Step::Call("MPI_Reduce_scatter_block", call));
            }
            Collective::Gather => {
                let (dt, c) = self.movement(t, count)?;
                let at_root = rank as i32 == root;
                let send = match (in_place, at_root) {
                    (false, _) => Some((Buf::Send, 0)),
                    (true, true) => None,
                    (true, false) => Some((Buf::Recv, offset(layout.input_offset, t))),
                };
                steps.push(Step::Call(
                    "MPI_Gather",
                    Call::Gather {
                        send,
                        recv: (Buf::Recv, 0),
                        count: c,
                        dt,
                        root,
                    },
                ));
            }
            Collective::Scatter => {
                let (dt, c) = self.movement(t, count)?;
                let at_root = rank as i32 == root;
                let (send, recv) = match (in_place, at_root) {
                    (false, _) => ((Buf::Send, 0), Some((Buf::Recv, 0))),
                    (true, true) => ((Buf::Recv, 0), None),
                    (true, false) => (
                        (Buf::Recv, 0),
                        Some((Buf::Recv, offset(layout.output_offset, t))),
                    ),
                };
                steps.push(Step::Call(
                    "MPI_Scatter",
                    Call::Scatter {
                        send,
                        recv,
                        count: c,
                        dt,
                        root,
                    },
                ));
            }
        }
        Ok(steps)
    }

    /// nccl-tests' hypercube all-gather: this rank's block into its place (out of place), then one round
    /// per bit of the rank, exchanging every block gathered so far with the rank that differs in it.
    fn hypercube(&mut self, desc: &OpDesc, steps: &mut Vec<Step>) -> Result<()> {
        let (rank, n) = (desc.comm.rank, desc.comm.size);
        if !n.is_power_of_two() {
            return Err(Error::Unsupported(format!(
                "hypercube needs a power-of-two number of ranks, not {n} (nccl-tests skips it)"
            )));
        }
        let t = desc.dtype;
        let count = desc.shape.count;
        let block = offset(count, t);
        if !desc.in_place {
            steps.push(Step::Copy {
                from: 0,
                to: rank * block,
                len: block,
            });
        }
        let mut mask = 1;
        while mask < n {
            let gathered = rank & !(mask - 1);
            let (dt, c) = self.movement(t, count * mask as u64)?;
            let peer = (rank ^ mask) as i32;
            steps.push(Step::Call(
                "MPI_Sendrecv (hypercube)",
                Call::Sendrecv {
                    send: (Buf::Recv, gathered * block),
                    recv: (Buf::Recv, (gathered ^ mask) * block),
                    count: c,
                    dt,
                    to: peer,
                    from: peer,
                },
            ));
            mask <<= 1;
        }
        Ok(())
    }
}
