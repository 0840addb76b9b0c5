//! One operation from its description to the library's calls: resolved once (communicator, addresses
//! checked for every rotation, operator), run each iteration with the rotation, released after.

use super::{GpuBackend, GpuOp};
use crate::backend::OpDesc;
use crate::collective::Collective;
use crate::dtype::ReduceOp;
use crate::error::{Error, Result};
use crate::ffi::nccl::{Optional, RedOp};

impl GpuBackend {
    /// `desc` on this rank as the library takes it, its regions checked for every rotation up to
    /// `max_shift` (a mulsum operator is made here, for `release` to destroy).
    pub(super) fn resolve(&mut self, desc: &OpDesc, max_shift: u64) -> Result<GpuOp> {
        self.activate(desc.comm.id)?;
        (self.rank, self.size) = (desc.comm.rank, desc.comm.size);
        let d = desc.dtype;
        let elt = d.size() as u64;
        let shape = desc.shape;
        let b = self.buffers()?;
        let needed = shape.buffer_bytes(d.size());
        if needed > b.bytes {
            return Err(Error::Internal(format!(
                "{} needs {needed} bytes; buffers hold {}",
                desc.collective, b.bytes
            )));
        }
        if needed + max_shift > b.bytes {
            return Err(Error::Internal(format!(
                "{} shifted by {max_shift} bytes overruns buffers of {}",
                desc.collective, b.bytes
            )));
        }
        let (send, recv) = if desc.in_place {
            let layout = self
                .capabilities
                .in_place_layout(desc.collective, &shape, self.rank);
            (
                b.recv.offset(layout.input_offset * elt),
                b.recv.offset(layout.output_offset * elt),
            )
        } else {
            (b.send, b.recv)
        };
        let root = desc.root.unwrap_or(0);
        if desc.collective.rooted() && root >= self.size {
            return Err(Error::Usage(format!(
                "root {root} is not a rank: there are {} ranks",
                self.size
            )));
        }
        let (op, made_op) = match desc.op.filter(|_| desc.collective.reduces()) {
            None => (None, false),
            Some(ReduceOp::MulSum) => {
                // nccl-tests' scalar: 1 on even ranks, 2 on odd ones, in the operation's type.
                let mut scalar = vec![0u8; d.size()];
                d.encode(ReduceOp::premul_scalar(self.rank), &mut scalar);
                (Some(self.comm.pre_mul_sum(&scalar, d)?), true)
            }
            Some(o) => (RedOp::builtin(o), false),
        };
        let matrix =
            match desc.collective {
                Collective::AllToAllv => Some(desc.counts.clone().ok_or_else(|| {
                    Error::Internal("all_to_allv without per-peer counts".into())
                })?),
                _ => None,
            };
        Ok(GpuOp {
            collective: desc.collective,
            comm: desc.comm.id,
            send,
            recv,
            count: shape.count,
            dtype: d,
            op,
            made_op,
            root,
            peer: desc.peer,
            matrix,
        })
    }

    /// Destroys what `resolve` made for an operation (its mulsum operator).
    pub(super) fn release(&mut self, op: GpuOp) -> Result<()> {
        match op.op.filter(|_| op.made_op) {
            Some(made) => {
                self.activate(op.comm)?;
                self.comm.destroy_op(made)
            }
            None => Ok(()),
        }
    }

    /// Makes the library's calls of `op` with both buffers `shift` bytes on.
    pub(super) fn run(&mut self, op: &GpuOp, shift: u64) -> Result<()> {
        if op.comm != self.active {
            self.activate(op.comm)?;
        }
        let (send, recv) = (op.send.offset(shift), op.recv.offset(shift));
        let (count, d, root) = (op.count, op.dtype, op.root);
        let stream = self.device.stream();
        let reduction = || {
            op.op.ok_or_else(|| {
                Error::Internal(format!("{} without a reduction operator", op.collective))
            })
        };
        match op.collective {
            Collective::AllReduce => {
                self.comm
                    .all_reduce(send, recv, count, d, reduction()?, stream)
            }
            Collective::AllGather => self.comm.all_gather(send, recv, count, d, stream),
            Collective::ReduceScatter => {
                self.comm
                    .reduce_scatter(send, recv, count, d, reduction()?, stream)
            }
            Collective::Broadcast => self.comm.broadcast(send, recv, count, d, root, stream),
            Collective::Reduce => {
                self.comm
                    .reduce(send, recv, count, d, reduction()?, root, stream)
            }
            Collective::AllToAll if self.nccl.has(Optional::AllToAll) => {
                self.comm.all_to_all(send, recv, count, d, stream)
            }
            Collective::AllToAll => self.grouped_all_to_all(send, recv, count, d),
            Collective::Gather if self.nccl.has(Optional::Gather) => {
                self.comm.gather(send, recv, count, d, root, stream)
            }
            Collective::Gather => self.grouped_gather(send, recv, count, d, root),
            Collective::Scatter if self.nccl.has(Optional::Scatter) => {
                self.comm.scatter(send, recv, count, d, root, stream)
            }
            Collective::Scatter => self.grouped_scatter(send, recv, count, d, root),
            Collective::SendRecv => self.ring_send_recv(send, recv, count, d, op.peer),
            Collective::Hypercube => self.hypercube(send, recv, count, d),
            Collective::AllToAllv => {
                let matrix = op
                    .matrix
                    .as_ref()
                    .ok_or_else(|| Error::Internal("all_to_allv without per-peer counts".into()))?;
                if self.nccl.has(Optional::AllToAllv) {
                    self.native_all_to_allv(send, recv, matrix, d)
                } else {
                    self.grouped_all_to_allv(send, recv, matrix, d)
                }
            }
        }
    }
}
