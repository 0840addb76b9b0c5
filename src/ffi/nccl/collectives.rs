//! The collectives and point-to-point calls on a communicator, each enqueued on a stream and
//! checked in the library's words.

use super::*;
use crate::dtype::DataType;
use crate::error::Result;
use crate::ffi::{DeviceAddr, StreamHandle};
use std::sync::Arc;

impl NcclComm {
    pub fn all_reduce(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        op: RedOp,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclAllReduce);
        // SAFETY (all collectives below): the buffers are device allocations sized by the backend for
        // this shape; raw is a live communicator; the stream belongs to the communicator's device.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                op.0,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclAllReduce")
    }

    pub fn all_gather(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclAllGather);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclAllGather")
    }

    pub fn reduce_scatter(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        op: RedOp,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclReduceScatter);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                op.0,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclReduceScatter")
    }

    pub fn broadcast(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclBroadcast);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclBroadcast")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn reduce(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        op: RedOp,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclReduce);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                op.0,
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclReduce")
    }

    /// Native all-to-all (ncclAlltoAll in NCCL 2.28+, ncclAllToAll in RCCL); `count` elements per peer.
    pub fn all_to_all(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        s: StreamHandle,
    ) -> Result<()> {
        let nccl = Arc::clone(&self.nccl);
        let (f, name) = match (
            nccl.lib.ncclAlltoAll.as_ref(),
            nccl.lib.ncclAllToAll.as_ref(),
        ) {
            (Ok(f), _) => (f, "ncclAlltoAll"),
            (_, Ok(f)) => (f, "ncclAllToAll"),
            (Err(e), _) => return Err(nccl.missing("ncclAlltoAll", e)),
        };
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, name)
    }

    pub fn gather(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclGather);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclGather")
    }

    pub fn scatter(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclScatter);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclScatter")
    }

    /// RCCL's ncclAllToAllv: each rank's pieces for and from every peer, as `counts` places them.
    pub fn all_to_allv(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        counts: &PeerCounts,
        d: DataType,
        s: StreamHandle,
    ) -> Result<()> {
        counts.fits(self.size)?;
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclAllToAllv);
        // SAFETY: see all_reduce; each list holds one entry per rank of this communicator (checked above),
        // as many as the library reads.
        let r = unsafe {
            f(
                send.as_ptr(),
                counts.send_counts.as_ptr(),
                counts.send_displs.as_ptr(),
                recv.as_ptr(),
                counts.recv_counts.as_ptr(),
                counts.recv_displs.as_ptr(),
                nccl_type(d),
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclAllToAllv")
    }

    pub fn send(
        &mut self,
        buf: DeviceAddr,
        count: u64,
        d: DataType,
        peer: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclSend);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                buf.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(peer)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclSend")
    }

    pub fn recv(
        &mut self,
        buf: DeviceAddr,
        count: u64,
        d: DataType,
        peer: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclRecv);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                buf.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(peer)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclRecv")
    }
}
