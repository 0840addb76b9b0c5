//! The collectives a library lacks, built as nccl-tests builds them: all-to-all, all_to_allv, gather
//! and scatter from grouped sends and receives, the hypercube all-gather, the sendrecv ring; and RCCL's
//! native all_to_allv, its counts made once per matrix.

use super::{GpuBackend, NativeCounts};
use crate::backend::Exchange;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ffi::DeviceAddr;
use crate::traffic::matrix::PeerBytes;
use std::sync::Arc;

impl GpuBackend {
    /// all-to-all as nccl-tests runs it without ncclAlltoAll: one send and one receive per peer, grouped.
    pub(super) fn grouped_all_to_all(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
    ) -> Result<()> {
        let stream = self.device.stream();
        let chunk = count * d.size() as u64;
        self.nccl.group_start()?;
        for peer in 0..self.size {
            let at = peer as u64 * chunk;
            self.comm.send(send.offset(at), count, d, peer, stream)?;
            self.comm.recv(recv.offset(at), count, d, peer, stream)?;
        }
        self.nccl.group_end()
    }

    /// all_to_allv as nccl-tests' alltoallv_perf runs it: one send and one receive per peer with that
    /// peer's bytes, packed in peer order, grouped.
    pub(super) fn grouped_all_to_allv(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        matrix: &PeerBytes,
        d: DataType,
    ) -> Result<()> {
        let stream = self.device.stream();
        let elt = d.size() as u64;
        let (sent_at, received_at) = (
            matrix.send_displacements(self.rank),
            matrix.recv_displacements(self.rank),
        );
        self.nccl.group_start()?;
        for peer in 0..self.size {
            let (out, inn) = (matrix.get(self.rank, peer), matrix.get(peer, self.rank));
            if out > 0 {
                self.comm
                    .send(send.offset(sent_at[peer]), out / elt, d, peer, stream)?;
            }
            if inn > 0 {
                self.comm
                    .recv(recv.offset(received_at[peer]), inn / elt, d, peer, stream)?;
            }
        }
        self.nccl.group_end()
    }

    /// all_to_allv through RCCL's own ncclAllToAllv, with the same packing as the grouped form.
    pub(super) fn native_all_to_allv(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        matrix: &Arc<PeerBytes>,
        d: DataType,
    ) -> Result<()> {
        let made = match self.native_counts.take() {
            Some(c) if c.made_for.is(matrix, self.rank, d) => c,
            _ => NativeCounts::of(Arc::clone(matrix), self.rank, d)?,
        };
        let stream = self.device.stream();
        let result = self.comm.all_to_allv(send, recv, &made.counts, d, stream);
        self.native_counts = Some(made);
        result
    }

    pub(super) fn grouped_gather(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
    ) -> Result<()> {
        let stream = self.device.stream();
        let chunk = count * d.size() as u64;
        self.nccl.group_start()?;
        if self.rank == root {
            for peer in 0..self.size {
                self.comm
                    .recv(recv.offset(peer as u64 * chunk), count, d, peer, stream)?;
            }
        }
        self.comm.send(send, count, d, root, stream)?;
        self.nccl.group_end()
    }

    pub(super) fn grouped_scatter(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
    ) -> Result<()> {
        let stream = self.device.stream();
        let chunk = count * d.size() as u64;
        self.nccl.group_start()?;
        if self.rank == root {
            for peer in 0..self.size {
                self.comm
                    .send(send.offset(peer as u64 * chunk), count, d, peer, stream)?;
            }
        }
        self.comm.recv(recv, count, d, root, stream)?;
        self.nccl.group_end()
    }

    /// nccl-tests' hypercube all-gather: this rank's block copied into place on the stream (out of place),
    /// then one group per bit of the rank, sending every block gathered so far to the rank that differs
    /// in it and receiving as many.
    pub(super) fn hypercube(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
    ) -> Result<()> {
        if !self.size.is_power_of_two() {
            return Err(Error::Unsupported(format!(
                "hypercube needs a power-of-two number of ranks, not {} (nccl-tests skips it)",
                self.size
            )));
        }
        let stream = self.device.stream();
        let block = count * d.size() as u64;
        let own = recv.offset(self.rank as u64 * block);
        if send != own {
            self.device.copy_on_stream(own, send, block)?;
        }
        let mut mask = 1;
        while mask < self.size {
            let gathered = (self.rank & !(mask - 1)) as u64;
            let (peer, blocks) = (self.rank ^ mask, mask as u64);
            self.nccl.group_start()?;
            self.comm.send(
                recv.offset(gathered * block),
                count * blocks,
                d,
                peer,
                stream,
            )?;
            self.comm.recv(
                recv.offset((gathered ^ blocks) * block),
                count * blocks,
                d,
                peer,
                stream,
            )?;
            self.nccl.group_end()?;
            mask <<= 1;
        }
        Ok(())
    }

    /// sendrecv as nccl-tests: a ring, each rank sends to rank+1 and receives from rank-1 (or both with
    /// one peer, for a pair; or one way each, for a pipeline's stage boundary).
    pub(super) fn ring_send_recv(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        peer: Exchange,
    ) -> Result<()> {
        let stream = self.device.stream();
        let (next, prev) = peer.partners(self.rank, self.size);
        if next.is_none() && prev.is_none() {
            // Idle while other pairs exchange.
            return Ok(());
        }
        self.nccl.group_start()?;
        if let Some(next) = next {
            self.comm.send(send, count, d, next, stream)?;
        }
        if let Some(prev) = prev {
            self.comm.recv(recv, count, d, prev, stream)?;
        }
        self.nccl.group_end()
    }
}
