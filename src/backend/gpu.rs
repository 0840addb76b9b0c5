//! The GPU backend: NCCL on CUDA devices or RCCL on HIP devices (one NCCL API), one communicator per
//! rank, buffers allocated once, operations enqueued on one stream and waited for as nccl-tests does.

use super::options::{Allocator, GpuOptions, Registration};
use super::{
    Backend, BufferId, Capabilities, CommId, DeviceInfo, Exchange, GraphCapture, GroupJoin,
    InPlaceConvention, LibraryVersion, MemoryUse, OpDesc, PathTaken,
};
use crate::collective::Collective;
use crate::device::{select_ordinals, GpuDevice, Placement};
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::ffi::cuda::{self, CudaDevice};
use crate::ffi::device::MemoryKind;
use crate::ffi::hip::{Hip, HipDevice};
use crate::ffi::nccl::{
    version_code, AlgoChoice, AsyncState, CommConfig, Flavor, Nccl, NcclComm, Optional, PeerCounts,
    RedOp, TunedFunc, WINDOW_COLL_SYMMETRIC,
};
use crate::ffi::DeviceAddr;
use crate::traffic::matrix::PeerBytes;
use crate::world::World;
use std::sync::Arc;
use std::time::Instant;

/// Which GPU family, and so which library: NVIDIA GPUs with NCCL, AMD GPUs with RCCL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuVendor {
    Nvidia,
    Amd,
}

impl GpuVendor {
    fn flavor(self) -> Flavor {
        match self {
            GpuVendor::Nvidia => Flavor::Nccl,
            GpuVendor::Amd => Flavor::Rccl,
        }
    }

    /// The variables that hide devices from this vendor's runtime, in the order the runtime reads them.
    pub fn visibility_vars(self) -> &'static [&'static str] {
        match self {
            GpuVendor::Nvidia => &["CUDA_VISIBLE_DEVICES"],
            GpuVendor::Amd => &[
                "HIP_VISIBLE_DEVICES",
                "ROCR_VISIBLE_DEVICES",
                "CUDA_VISIBLE_DEVICES",
            ],
        }
    }
}

/// The first visibility variable set in the environment, as (name, value).
fn visibility(vendor: GpuVendor) -> Option<(&'static str, String)> {
    vendor
        .visibility_vars()
        .iter()
        .find_map(|&name| std::env::var(name).ok().map(|v| (name, v)))
}

/// When the device runtime finds no GPU, NCCL's own words say why from its side too. A one-rank
/// communicator involves no other process, so asking cannot hang.
fn no_gpu_error(nccl: &Arc<Nccl>, why: String, rank: usize, host: &str) -> Error {
    let vendor = if nccl.flavor() == Flavor::Nccl {
        "NVIDIA"
    } else {
        "AMD"
    };
    // The runtimes' own no-device errors already say so; do not say it twice.
    let mut msg = if why.starts_with("no usable") {
        why
    } else {
        format!("no usable {vendor} GPU or driver was found on rank {rank} ({host}): {why}")
    };
    let attempt = nccl.unique_id().and_then(|id| nccl.init_rank(1, &id, 0));
    match attempt {
        Err(e) => {
            let words = match e {
                Error::Library { call, detail, .. } => format!("{call}: {detail}"),
                other => other.to_string(),
            };
            msg.push_str(&format!(
                "; {} {} ({}) reports: {words}",
                nccl.flavor().name(),
                nccl.version_string(),
                nccl.path().display()
            ));
        }
        Ok(comm) => drop(comm),
    }
    msg.push_str(
        ". Run on a machine with a GPU and its driver, or use --backend mpi for host memory.",
    );
    Error::Unsupported(msg)
}

/// A device runtime's failure in its own words, without the rank and host the caller adds.
fn words(e: Error) -> String {
    match e {
        Error::Library {
            library,
            call,
            detail,
            ..
        } => format!("{library} {call}: {detail}"),
        Error::Unsupported(m) => m,
        other => other.to_string(),
    }
}

/// The GPU this rank drives, opened and current in this thread.
fn open_device(
    vendor: GpuVendor,
    nccl: &Arc<Nccl>,
    world: &dyn World,
    null_stream: bool,
) -> Result<Box<dyn GpuDevice>> {
    let (rank, host) = (world.rank(), world.host());
    let env = visibility(vendor);
    let first_device = crate::device::first_device_from_env()?;
    let place = |count: usize| Placement {
        host,
        local_rank: world.local_rank(),
        local_size: world.local_size(),
        per_process: 1,
        visible_count: count,
        visible_env: env.as_ref().map(|(n, v)| (*n, v.as_str())),
        first_device,
    };
    match vendor {
        GpuVendor::Nvidia => {
            if let Err(why) = cuda::driver_status() {
                return Err(no_gpu_error(nccl, why, rank, host));
            }
            let count = match cuda::device_count(rank, host) {
                Ok(0) => {
                    return Err(no_gpu_error(
                        nccl,
                        "the CUDA driver reports no device".into(),
                        rank,
                        host,
                    ))
                }
                Ok(n) => n,
                Err(e) => return Err(no_gpu_error(nccl, words(e), rank, host)),
            };
            let ordinal = select_ordinals(&place(count))?[0];
            Ok(Box::new(CudaDevice::open(
                ordinal,
                rank,
                host,
                null_stream,
            )?))
        }
        GpuVendor::Amd => {
            let hip = Hip::open(rank, host)?;
            let count = match hip.device_count() {
                Ok(0) => {
                    return Err(no_gpu_error(
                        nccl,
                        "the HIP runtime reports no device".into(),
                        rank,
                        host,
                    ))
                }
                Ok(n) => n,
                Err(e) => return Err(no_gpu_error(nccl, words(e), rank, host)),
            };
            let ordinal = select_ordinals(&place(count))?[0];
            Ok(Box::new(HipDevice::open(&hip, ordinal, null_stream)?))
        }
    }
}

/// Creates the NCCL (`Nvidia`) or RCCL (`Amd`) backend for this rank: loads the library, takes the GPU of
/// this local rank, and joins the communicator of every rank of `world` (rank 0 makes the unique id and
/// broadcasts it through the world). Every rank of the world must call this together.
pub fn create_gpu_backend(
    vendor: GpuVendor,
    options: &GpuOptions,
    world: &dyn World,
) -> Result<Box<dyn Backend>> {
    Ok(Box::new(GpuBackend::new(vendor, options, world)?))
}

struct Buffers {
    send: DeviceAddr,
    recv: DeviceAddr,
    bytes: u64,
    /// Allocated with ncclMemAlloc (freed with ncclMemFree), else with the device runtime.
    by_library: bool,
}

/// NCCL or RCCL on one GPU. Field order is teardown order: buffers are freed in `drop`, then the
/// communicator is destroyed, then the device (stream, events, context) released.
pub struct GpuBackend {
    /// The communicator operations go to now: `active`'s.
    comm: NcclComm,
    /// The other communicators, by CommId (0 the job's, then one per --groups layout); the active one's
    /// slot is empty while it sits in `comm`.
    parked: Vec<Option<NcclComm>>,
    active: CommId,
    device: Box<dyn GpuDevice>,
    nccl: Arc<Nccl>,
    buffers: Option<Buffers>,
    vendor: GpuVendor,
    /// This rank in the active communicator, and its size.
    rank: usize,
    size: usize,
    /// This rank in the job, for errors.
    job_rank: usize,
    host: String,
    timeout_s: Option<f64>,
    alloc: Allocator,
    /// -Y: what memory the device runtime gives the buffers.
    memory: MemoryKind,
    capabilities: Capabilities,
    /// RCCL's ncclAllToAllv arguments, made once per matrix, rank and type rather than per iteration.
    native_counts: Option<NativeCounts>,
    /// The operation `prepare` readied for `launch`.
    prepared: Option<GpuOp>,
    /// -R: the buffers' registrations with each communicator, undone by `deregister_buffers`.
    registered: Vec<(CommId, Registered)>,
    /// -M: the device memory the communicator and the buffers took.
    memory_use: MemoryUse,
}

/// One buffer's registration with one communicator.
enum Registered {
    Local(crate::ffi::nccl::Registration),
    Window(crate::ffi::nccl::Window),
}

/// One operation resolved for this rank: its communicator, its buffers' addresses before any rotation,
/// count, type and operator. Launching it adds the rotation and makes the library's calls.
struct GpuOp {
    collective: Collective,
    comm: CommId,
    send: DeviceAddr,
    recv: DeviceAddr,
    count: u64,
    dtype: DataType,
    /// The library's operator; for mulsum one made for this operation (`made_op`), destroyed with it.
    op: Option<RedOp>,
    made_op: bool,
    root: usize,
    peer: Exchange,
    matrix: Option<Arc<PeerBytes>>,
}

/// ncclAllToAllv's element counts for one matrix, rank in the active communicator and element type.
struct NativeCounts {
    made_for: super::CountsMadeFor,
    counts: PeerCounts,
}

impl NativeCounts {
    fn of(matrix: Arc<PeerBytes>, rank: usize, dtype: DataType) -> Result<NativeCounts> {
        let elt = dtype.size() as u64;
        let in_elements = |bytes: Vec<u64>| -> Result<Vec<usize>> {
            bytes
                .into_iter()
                .map(|b| {
                    usize::try_from(b / elt)
                        .map_err(|_| Error::Internal(format!("{b} bytes do not fit size_t")))
                })
                .collect()
        };
        let [sc, sd, rc, rd] = matrix.rank_lists(rank);
        let counts = PeerCounts {
            send_counts: in_elements(sc)?,
            send_displs: in_elements(sd)?,
            recv_counts: in_elements(rc)?,
            recv_displs: in_elements(rd)?,
        };
        Ok(NativeCounts {
            made_for: super::CountsMadeFor {
                matrix,
                rank,
                dtype,
            },
            counts,
        })
    }
}

impl GpuBackend {
    pub fn new(vendor: GpuVendor, options: &GpuOptions, world: &dyn World) -> Result<GpuBackend> {
        let (rank, host) = (world.rank(), world.host().to_string());
        let explicit = match vendor {
            GpuVendor::Nvidia => options.nccl_lib.as_deref(),
            GpuVendor::Amd => options.rccl_lib.as_deref(),
        };
        let nccl = Nccl::open(vendor.flavor(), explicit, rank, &host)?;
        let device = open_device(vendor, &nccl, world, options.null_stream)?;
        let mut id = if rank == 0 {
            nccl.unique_id()?
        } else {
            Vec::new()
        };
        world.broadcast_bytes(0, &mut id)?;
        let config = comm_config(
            options.cta_policy,
            nccl.flavor(),
            nccl.version_code(),
            nccl.has(Optional::InitRankConfig),
        )
        .map_err(Error::Usage)?;
        let free_before = device.mem_info().map(|m| m.0).unwrap_or(0);
        let comm = nccl.init_rank_with(world.size(), &id, rank, config.as_ref())?;
        let free_after = device.mem_info().map(|m| m.0).unwrap_or(free_before);
        let capabilities = capabilities_of(&nccl);
        Ok(GpuBackend {
            comm,
            parked: vec![None],
            active: 0,
            device,
            nccl,
            buffers: None,
            vendor,
            rank,
            size: world.size(),
            job_rank: rank,
            host,
            timeout_s: options.timeout_s,
            alloc: options.alloc,
            memory: options.memory,
            capabilities,
            native_counts: None,
            prepared: None,
            registered: Vec::new(),
            memory_use: MemoryUse {
                initialization_bytes: free_before.saturating_sub(free_after),
                user_allocated_bytes: 0,
            },
        })
    }

    /// Makes `id` the communicator operations go to, parking the current one.
    fn activate(&mut self, id: CommId) -> Result<()> {
        if id == self.active {
            return Ok(());
        }
        let next = self
            .parked
            .get_mut(id)
            .and_then(Option::take)
            .ok_or_else(|| Error::Internal(format!("no communicator {id} was split")))?;
        let previous = std::mem::replace(&mut self.comm, next);
        self.parked[self.active] = Some(previous);
        self.active = id;
        Ok(())
    }

    fn buffers(&self) -> Result<&Buffers> {
        self.buffers
            .as_ref()
            .ok_or_else(|| Error::Internal("GPU buffers used before allocate".into()))
    }

    fn address(&self, buffer: BufferId, offset: u64, len: u64) -> Result<DeviceAddr> {
        let b = self.buffers()?;
        if offset.checked_add(len).is_none_or(|end| end > b.bytes) {
            return Err(Error::Internal(format!(
                "{len} bytes at offset {offset} do not fit the {} -byte {buffer:?} buffer",
                b.bytes
            )));
        }
        Ok(match buffer {
            BufferId::Send => b.send,
            BufferId::Recv => b.recv,
        }
        .offset(offset))
    }

    fn free_buffers(&mut self) -> Result<()> {
        if let Some(b) = self.buffers.take() {
            for addr in [b.send, b.recv] {
                if b.by_library {
                    self.nccl.mem_free(addr)?;
                } else {
                    self.device.free(addr)?;
                }
            }
        }
        Ok(())
    }

    fn alloc_one(&mut self, bytes: u64) -> Result<(DeviceAddr, bool)> {
        if self.alloc == Allocator::Device {
            return Ok((self.device.alloc_kind(bytes, self.memory)?, false));
        }
        match self.nccl.mem_alloc(bytes)? {
            Some(addr) => Ok((addr, true)),
            None => Ok((self.device.alloc(bytes)?, false)),
        }
    }

    /// all-to-all as nccl-tests runs it without ncclAlltoAll: one send and one receive per peer, grouped.
    fn grouped_all_to_all(
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
    fn grouped_all_to_allv(
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
    fn native_all_to_allv(
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

    fn grouped_gather(
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

    fn grouped_scatter(
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
    fn hypercube(
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
    fn ring_send_recv(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        peer: super::Exchange,
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

impl GpuBackend {
    /// `desc` on this rank as the library takes it, its regions checked for every rotation up to
    /// `max_shift` (a mulsum operator is made here, for `release` to destroy).
    fn resolve(&mut self, desc: &OpDesc, max_shift: u64) -> Result<GpuOp> {
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
    fn release(&mut self, op: GpuOp) -> Result<()> {
        match op.op.filter(|_| op.made_op) {
            Some(made) => {
                self.activate(op.comm)?;
                self.comm.destroy_op(made)
            }
            None => Ok(()),
        }
    }

    /// Makes the library's calls of `op` with both buffers `shift` bytes on.
    fn run(&mut self, op: &GpuOp, shift: u64) -> Result<()> {
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

/// The communicator options passed at creation (ncclCommInitRankConfig): -x's CTA policy (NCCL 2.27+,
/// 2 = NCCL_CTA_POLICY_ZERO 2.28+), and on NCCL 2.28+ nvlinkCentricSched = 1, as nccl-tests sets it;
/// None where there is nothing to set (plain ncclCommInitRank). A CTA policy the library cannot take
/// is refused with what is missing.
pub fn comm_config(
    cta_policy: Option<i32>,
    flavor: Flavor,
    code: i32,
    has_config: bool,
) -> std::result::Result<Option<CommConfig>, String> {
    let (x, y, z) = crate::ffi::nccl::version_from_code(code);
    let lib = flavor.name();
    if let Some(policy) = cta_policy {
        let needs = if policy >= 2 { (2, 28) } else { (2, 27) };
        if code < version_code(needs.0, needs.1, 0) || !has_config {
            return Err(format!(
                "-x {policy}: the CTA policy is an option of ncclCommInitRankConfig from NCCL {}.{} ({}), and {lib} {x}.{y}.{z} is older: leave -x out or load a newer library (--nccl-lib)",
                needs.0,
                needs.1,
                if policy >= 2 {
                    "NCCL_CTA_POLICY_ZERO"
                } else {
                    "ncclConfig_t.CTAPolicy"
                }
            ));
        }
    }
    let nvlink_centric_sched =
        (flavor == Flavor::Nccl && code >= version_code(2, 28, 0) && has_config).then_some(1);
    if cta_policy.is_none() && nvlink_centric_sched.is_none() {
        return Ok(None);
    }
    Ok(Some(CommConfig {
        cta_policy,
        nvlink_centric_sched,
    }))
}

/// How -R's registration is done with this library: -R 1 needs ncclCommRegister (NCCL 2.19+); -R 2 a
/// symmetric window (ncclCommWindowRegister, NCCL 2.27+), else, as nccl-tests does, -R 1 with a note
/// saying so. What cannot be done at all is refused with what is missing.
pub fn registration_for(
    asked: Registration,
    flavor: Flavor,
    code: i32,
    has_register: bool,
    has_window: bool,
) -> std::result::Result<(Registration, Option<String>), String> {
    let (x, y, z) = crate::ffi::nccl::version_from_code(code);
    let lib = flavor.name();
    let local = || {
        if has_register {
            Ok(Registration::Local)
        } else {
            Err(format!(
                "-R: {lib} {x}.{y}.{z} has no ncclCommRegister (NCCL 2.19 and later have it): leave -R out or load a newer library (--nccl-lib)"
            ))
        }
    };
    match asked {
        Registration::None => Ok((Registration::None, None)),
        Registration::Local => local().map(|r| (r, None)),
        Registration::Symmetric if has_window && code >= version_code(2, 27, 0) => {
            Ok((Registration::Symmetric, None))
        }
        Registration::Symmetric => local().map(|r| {
            (
                r,
                Some(format!(
                    "-R 2: symmetric windows (ncclCommWindowRegister) need NCCL 2.27, and {lib} {x}.{y}.{z} has none: the buffers are registered with ncclCommRegister instead (-R 1), as nccl-tests does"
                )),
            )
        }),
    }
}

/// Why a library version or device cannot run a data type or operator, if it cannot.
pub fn version_limits(
    flavor: Flavor,
    code: i32,
    fp8_device: Option<bool>,
    dtype: DataType,
    op: Option<ReduceOp>,
) -> Option<String> {
    let (x, y, z) = crate::ffi::nccl::version_from_code(code);
    let lib = flavor.name();
    if matches!(dtype, DataType::Bfloat16) && code < version_code(2, 10, 0) {
        return Some(format!("{lib} {x}.{y}.{z} has no bfloat16 (added in 2.10)"));
    }
    if op == Some(ReduceOp::MulSum) && code < version_code(2, 11, 0) {
        return Some(format!(
            "{lib} {x}.{y}.{z} has no pre-multiplied sum for -o mulsum (added in 2.11)"
        ));
    }
    if op == Some(ReduceOp::Avg) && code < version_code(2, 10, 0) {
        return Some(format!(
            "{lib} {x}.{y}.{z} has no avg reduction (added in 2.10)"
        ));
    }
    if matches!(dtype, DataType::F8e4m3 | DataType::F8e5m2) {
        if flavor == Flavor::Nccl && code < version_code(2, 24, 0) {
            return Some(format!(
                "{lib} {x}.{y}.{z} has no FP8 types (added in 2.24)"
            ));
        }
        if fp8_device == Some(false) {
            return Some(format!("{dtype} needs a GPU with FP8 support (NVIDIA Hopper, compute capability 9.0, or newer)"));
        }
    }
    None
}

/// Where NCCL and RCCL leave an in-place form undefined. Their documentation defines in place for
/// all_reduce, broadcast and reduce (send == recv), all_gather and reduce_scatter (the rank's block of the
/// full buffer) and, for gather and scatter, the root's block; all-to-all and point-to-point have no
/// in-place form, so overlapping buffers give whatever the transfers' order leaves (docs/GPU.md).
pub fn in_place_undefined(flavor: Flavor, collective: Collective) -> Option<String> {
    let what = match collective {
        Collective::AllToAll | Collective::AllToAllv => "all-to-all",
        Collective::SendRecv => "send/receive",
        _ => return None,
    };
    Some(format!(
        "{} defines no in-place {what} (overlapping send and receive buffers): in-place {collective} is timed but not checked, as nccl-tests does (#wrong N/A)",
        flavor.name()
    ))
}

/// What the loaded library defines: NCCL's in-place conventions, the forms it leaves undefined, and the
/// collectives its optional symbols carry natively.
fn capabilities_of(nccl: &Nccl) -> Capabilities {
    let every = Collective::ALL
        .iter()
        .copied()
        .chain([Collective::AllToAllv]);
    Capabilities {
        in_place: InPlaceConvention::Nccl,
        undefined_in_place: every
            .clone()
            .filter_map(|c| in_place_undefined(nccl.flavor(), c).map(|why| (c, why)))
            .collect(),
        in_place_v_needs_symmetry: false,
        paths: every
            .map(|c| (c, path_for(c, |o| nccl.has(o))))
            .filter(|(_, p)| *p != "native")
            .collect(),
    }
}

/// How the loaded library carries a collective.
pub fn path_for(collective: Collective, has: impl Fn(Optional) -> bool) -> PathTaken {
    let native = match collective {
        Collective::AllToAll => has(Optional::AllToAll),
        Collective::Gather => has(Optional::Gather),
        Collective::Scatter => has(Optional::Scatter),
        Collective::AllToAllv => has(Optional::AllToAllv),
        Collective::SendRecv | Collective::Hypercube => false,
        _ => true,
    };
    if native {
        "native"
    } else {
        "grouped send/recv"
    }
}

/// The function RCCL's tuner knows a collective by; None for those it does not tune (all-to-all,
/// gather, scatter, sendrecv run as point-to-point or RCCL's own kernels).
pub fn tuned_func(collective: Collective) -> Option<TunedFunc> {
    match collective {
        Collective::AllReduce => Some(TunedFunc::AllReduce),
        Collective::AllGather => Some(TunedFunc::AllGather),
        Collective::ReduceScatter => Some(TunedFunc::ReduceScatter),
        Collective::Broadcast => Some(TunedFunc::Broadcast),
        Collective::Reduce => Some(TunedFunc::Reduce),
        _ => None,
    }
}

impl Backend for GpuBackend {
    fn algo_choice(&mut self, desc: &OpDesc) -> Result<Option<AlgoChoice>> {
        let Some(func) = tuned_func(desc.collective) else {
            return Ok(None);
        };
        self.activate(desc.comm.id)?;
        self.comm.algo_choice(func, desc.shape.count, desc.dtype)
    }

    fn name(&self) -> &'static str {
        match self.vendor {
            GpuVendor::Nvidia => "nccl",
            GpuVendor::Amd => "rccl",
        }
    }

    fn versions(&self) -> Vec<LibraryVersion> {
        let mut v = vec![LibraryVersion {
            library: self.nccl.flavor().name().into(),
            version: self.nccl.version_string(),
        }];
        v.extend(self.device.versions());
        v
    }

    fn device(&self) -> DeviceInfo {
        self.device.info()
    }

    fn free_memory(&self) -> Result<u64> {
        Ok(self.device.mem_info()?.0)
    }

    fn unsupported(
        &self,
        _collective: Collective,
        dtype: DataType,
        op: Option<ReduceOp>,
    ) -> Option<String> {
        version_limits(
            self.nccl.flavor(),
            self.nccl.version_code(),
            self.device.supports_fp8(),
            dtype,
            op,
        )
        .or_else(|| {
            (op == Some(ReduceOp::MulSum) && !self.nccl.has(Optional::PreMulSum)).then(|| {
                format!(
                    "{} {} at {} has no ncclRedOpCreatePreMulSum, so -o mulsum cannot run",
                    self.nccl.flavor().name(),
                    self.nccl.version_string(),
                    self.nccl.path().display()
                )
            })
        })
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn allocate(&mut self, bytes: u64) -> Result<()> {
        // Zero-byte allocations fail in some runtimes; a minimum keeps every address valid.
        let bytes = bytes.max(256);
        if self.buffers.as_ref().is_some_and(|b| b.bytes >= bytes) {
            return Ok(());
        }
        // What was prepared points into the buffers being replaced.
        if let Some(old) = self.prepared.take() {
            self.release(old)?;
        }
        self.deregister_buffers()?;
        self.free_buffers()?;
        let free_before = self.device.mem_info().map(|m| m.0).unwrap_or(0);
        let (send, by_library) = self.alloc_one(bytes)?;
        let recv = match self.alloc_one(bytes) {
            Ok((recv, _)) => recv,
            Err(e) => {
                let _ = if by_library {
                    self.nccl.mem_free(send)
                } else {
                    self.device.free(send)
                };
                return Err(e);
            }
        };
        self.buffers = Some(Buffers {
            send,
            recv,
            bytes,
            by_library,
        });
        let free_after = self.device.mem_info().map(|m| m.0).unwrap_or(free_before);
        self.memory_use.user_allocated_bytes = free_before.saturating_sub(free_after);
        Ok(())
    }

    fn register_buffers(&mut self, how: Registration) -> Result<Option<String>> {
        let (mode, note) = registration_for(
            how,
            self.nccl.flavor(),
            self.nccl.version_code(),
            self.nccl.has(Optional::Register),
            self.nccl.has(Optional::Window),
        )
        .map_err(Error::Usage)?;
        if mode == Registration::None {
            return Ok(note);
        }
        let (send, recv, bytes) = {
            let b = self.buffers()?;
            (b.send, b.recv, b.bytes)
        };
        let free_before = self.device.mem_info().map(|m| m.0).unwrap_or(0);
        // Every communicator, the job's and each group's, in the same order on every rank: window
        // registration is collective.
        for id in 0..self.parked.len() {
            self.activate(id)?;
            for addr in [send, recv] {
                let registered = match mode {
                    Registration::Symmetric => Registered::Window(self.comm.window_register(
                        addr,
                        bytes,
                        WINDOW_COLL_SYMMETRIC,
                    )?),
                    _ => Registered::Local(self.comm.register(addr, bytes)?),
                };
                self.registered.push((id, registered));
            }
        }
        self.activate(0)?;
        let free_after = self.device.mem_info().map(|m| m.0).unwrap_or(free_before);
        self.memory_use.user_allocated_bytes += free_before.saturating_sub(free_after);
        Ok(note)
    }

    fn deregister_buffers(&mut self) -> Result<()> {
        while let Some((id, registered)) = self.registered.pop() {
            self.activate(id)?;
            match registered {
                Registered::Local(r) => self.comm.deregister(r)?,
                Registered::Window(w) => self.comm.window_deregister(w)?,
            }
        }
        self.activate(0)
    }

    fn memory_use(&self) -> Option<MemoryUse> {
        Some(self.memory_use)
    }

    fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()> {
        let at = self.address(buffer, offset, data.len() as u64)?;
        self.device.copy_in(at, data)
    }

    fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()> {
        let at = self.address(buffer, offset, out.len() as u64)?;
        self.device.copy_out(at, out)
    }

    fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()> {
        let at = self.address(buffer, 0, len)?;
        self.device.memset(at, len, byte)
    }

    fn group_start(&mut self) -> Result<()> {
        self.nccl.group_start()
    }

    fn group_end(&mut self) -> Result<()> {
        self.nccl.group_end()
    }

    fn split(&mut self, world: &dyn World, join: &GroupJoin) -> Result<CommId> {
        // ncclCommSplit (NCCL 2.18+) from the job's communicator where the library has it: no id exchange,
        // and the library may reuse the parent's resources.
        if self.nccl.has(Optional::CommSplit) {
            self.activate(0)?;
            let comm = self.comm.split(join.color, join.rank, join.size)?;
            self.parked.push(Some(comm));
            return Ok(self.parked.len() - 1);
        }
        // Else one unique id per group, made by its leader and shared through the world: this works with
        // every NCCL and RCCL version.
        let mine = if join.leader == world.rank() {
            self.nccl.unique_id()?
        } else {
            Vec::new()
        };
        let ids = world.all_gather_bytes(&mine)?;
        let id = ids
            .get(join.leader)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Internal(format!("group leader {} sent no id", join.leader)))?;
        let comm = self.nccl.init_rank(join.size, id, join.rank)?;
        self.parked.push(Some(comm));
        Ok(self.parked.len() - 1)
    }

    fn enqueue(&mut self, desc: &OpDesc) -> Result<()> {
        let op = self.resolve(desc, desc.shift_bytes)?;
        let result = self.run(&op, desc.shift_bytes);
        // One operation: a mulsum operator made for it goes with it, as nccl-tests' startColl does.
        self.release(op).and(result)
    }

    fn prepare(&mut self, desc: &OpDesc, max_shift_bytes: u64) -> Result<()> {
        if let Some(old) = self.prepared.take() {
            self.release(old)?;
        }
        self.prepared = Some(self.resolve(desc, max_shift_bytes)?);
        Ok(())
    }

    fn launch(&mut self, shift_bytes: u64) -> Result<()> {
        let op = self
            .prepared
            .take()
            .ok_or_else(|| Error::Internal("launch without a prepared operation".into()))?;
        let result = self.run(&op, shift_bytes);
        self.prepared = Some(op);
        result
    }

    fn wait(&mut self) -> Result<()> {
        // nccl-tests: poll the stream, and between polls ask the communicator for asynchronous errors
        // (a failed peer), so a broken job ends with the library's words instead of hanging.
        let start = Instant::now();
        loop {
            // Any failure here leaves peers that may wait forever: abort the communicator, so that
            // neither its destruction nor the other ranks hang on it.
            let polled = self
                .device
                .stream_done()
                .and_then(|done| self.comm.async_error().map(|state| (done, state)));
            let done = match polled {
                Ok((done, AsyncState::Ok | AsyncState::InProgress)) => done,
                Err(e) => {
                    let _ = self.comm.abort();
                    return Err(e);
                }
            };
            if done {
                return Ok(());
            }
            if let Some(limit) = self.timeout_s {
                let waited = start.elapsed().as_secs_f64();
                if waited > limit {
                    let _ = self.comm.abort();
                    return Err(Error::Timeout {
                        what: format!("{} operations on the GPU stream", self.nccl.flavor().name()),
                        seconds: limit,
                        rank: self.job_rank,
                        host: self.host.clone(),
                    });
                }
            }
        }
    }

    fn reserve_marks(&mut self, count: usize) -> Result<()> {
        // Marks 0..=count bound `count` intervals.
        self.device.reserve_events(count + 1)
    }

    fn mark(&mut self, index: usize) -> Result<()> {
        self.device.record_event(index)
    }

    fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>> {
        (0..count)
            .map(|i| {
                self.device
                    .elapsed_ms(i, i + 1)
                    .map(|ms| ms as f64 * 1000.0)
            })
            .collect()
    }

    fn graphs(&mut self) -> Option<&mut dyn GraphCapture> {
        // Graph capture goes through the CUDA driver; the HIP layer does not declare hipGraph calls.
        self.device.graphs()?;
        Some(self)
    }
}

/// -G through the device runtime's graphs, on the stream the communicator enqueues on.
impl GraphCapture for GpuBackend {
    fn begin_capture(&mut self) -> Result<()> {
        self.device_graphs()?.begin_capture()
    }

    fn end_capture(&mut self) -> Result<()> {
        self.device_graphs()?.end_capture()
    }

    fn replay(&mut self) -> Result<()> {
        self.device_graphs()?.launch_graph()
    }

    fn release_graph(&mut self) -> Result<()> {
        self.device_graphs()?.release_graph()
    }
}

impl GpuBackend {
    fn device_graphs(&mut self) -> Result<&mut dyn crate::device::DeviceGraphs> {
        self.device
            .graphs()
            .ok_or_else(|| Error::Internal("a graph call on a device without graphs".into()))
    }
}

impl Drop for GpuBackend {
    fn drop(&mut self) {
        // Deregistering and freeing can only fail on a broken device, which nobody is left to tell.
        let _ = self.deregister_buffers();
        let _ = self.free_buffers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cta_policy_and_nvlink_scheduling_follow_the_library_version() {
        // NCCL 2.26: no CTA policy; nothing else to set, so plain ncclCommInitRank.
        let e = comm_config(Some(1), Flavor::Nccl, 22605, true).unwrap_err();
        assert!(e.contains("NCCL 2.27") && e.contains("2.26.5"), "{e}");
        assert_eq!(comm_config(None, Flavor::Nccl, 22605, true).unwrap(), None);
        // 2.27 takes 0 and 1; 2 (NCCL_CTA_POLICY_ZERO) needs 2.28.
        let c = comm_config(Some(1), Flavor::Nccl, 22703, true)
            .unwrap()
            .unwrap();
        assert_eq!((c.cta_policy, c.nvlink_centric_sched), (Some(1), None));
        let e = comm_config(Some(2), Flavor::Nccl, 22703, true).unwrap_err();
        assert!(
            e.contains("NCCL 2.28") && e.contains("NCCL_CTA_POLICY_ZERO"),
            "{e}"
        );
        // 2.28+: nvlinkCentricSched = 1 as nccl-tests, with or without -x.
        let c = comm_config(Some(2), Flavor::Nccl, 23203, true)
            .unwrap()
            .unwrap();
        assert_eq!((c.cta_policy, c.nvlink_centric_sched), (Some(2), Some(1)));
        let c = comm_config(None, Flavor::Nccl, 22803, true)
            .unwrap()
            .unwrap();
        assert_eq!((c.cta_policy, c.nvlink_centric_sched), (None, Some(1)));
        // A library without ncclCommInitRankConfig cannot take a policy whatever it says its version is.
        assert!(comm_config(Some(0), Flavor::Nccl, 23203, false).is_err());
        // RCCL gets options only when asked.
        assert_eq!(comm_config(None, Flavor::Rccl, 22803, true).unwrap(), None);
    }

    #[test]
    fn registration_falls_back_from_symmetric_below_2_27_and_needs_2_19() {
        let r = |asked, code, reg, win| registration_for(asked, Flavor::Nccl, code, reg, win);
        assert_eq!(
            r(Registration::Symmetric, 22703, true, true).unwrap(),
            (Registration::Symmetric, None)
        );
        let (mode, note) = r(Registration::Symmetric, 22605, true, false).unwrap();
        assert_eq!(mode, Registration::Local);
        assert!(note.unwrap().contains("NCCL 2.27"));
        // A 2.27 that lacks the symbol (a stripped build) falls back too.
        assert_eq!(
            r(Registration::Symmetric, 22703, true, false).unwrap().0,
            Registration::Local
        );
        assert_eq!(
            r(Registration::Local, 21903, true, false).unwrap(),
            (Registration::Local, None)
        );
        let e = r(Registration::Local, 21810, false, false).unwrap_err();
        assert!(e.contains("ncclCommRegister") && e.contains("2.19"), "{e}");
        assert_eq!(
            r(Registration::None, 21810, false, false).unwrap(),
            (Registration::None, None)
        );
    }

    #[test]
    fn fp8_needs_nccl_2_24_and_a_hopper_gpu() {
        let f8 = DataType::F8e4m3;
        assert!(version_limits(Flavor::Nccl, 22304, Some(true), f8, None)
            .unwrap()
            .contains("2.24"));
        assert!(version_limits(Flavor::Nccl, 22400, Some(false), f8, None)
            .unwrap()
            .contains("Hopper"));
        assert_eq!(
            version_limits(Flavor::Nccl, 23203, Some(true), f8, None),
            None
        );
        assert_eq!(
            version_limits(
                Flavor::Nccl,
                23203,
                Some(true),
                DataType::F8e5m2,
                Some(ReduceOp::Sum)
            ),
            None
        );
        assert_eq!(
            version_limits(Flavor::Nccl, 23203, Some(false), DataType::Float, None),
            None
        );
    }

    #[test]
    fn bfloat16_and_avg_need_nccl_2_10() {
        assert!(
            version_limits(Flavor::Nccl, 2804, None, DataType::Bfloat16, None)
                .unwrap()
                .contains("bfloat16")
        );
        assert!(version_limits(
            Flavor::Rccl,
            2804,
            None,
            DataType::Float,
            Some(ReduceOp::Avg)
        )
        .unwrap()
        .contains("avg"));
        assert_eq!(
            version_limits(
                Flavor::Nccl,
                21003,
                None,
                DataType::Bfloat16,
                Some(ReduceOp::Avg)
            ),
            None
        );
    }

    #[test]
    fn in_place_is_undefined_for_all_to_all_and_sendrecv_only() {
        for flavor in [Flavor::Nccl, Flavor::Rccl] {
            for c in Collective::ALL {
                let undefined = in_place_undefined(flavor, c);
                let expected = matches!(c, Collective::AllToAll | Collective::SendRecv);
                assert_eq!(undefined.is_some(), expected, "{flavor:?} {c}");
                if let Some(why) = undefined {
                    assert!(
                        why.contains(flavor.name()) && why.contains(c.name()),
                        "{why}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_to_allv_is_grouped_send_recv_and_undefined_in_place() {
        for flavor in [Flavor::Nccl, Flavor::Rccl] {
            let why = in_place_undefined(flavor, Collective::AllToAllv).unwrap();
            assert!(why.contains("all_to_allv"), "{why}");
        }
        // NCCL has no ncclAllToAllv (nor does `has` admit one for NCCL): nccl-tests' grouped form.
        assert_eq!(
            path_for(Collective::AllToAllv, |_| false),
            "grouped send/recv"
        );
        assert_eq!(
            path_for(Collective::AllToAllv, |o| o == Optional::AllToAllv),
            "native"
        );
        assert_eq!(
            path_for(Collective::AllToAllv, |o| o != Optional::AllToAllv),
            "grouped send/recv"
        );
    }

    #[test]
    fn rccl_all_to_allv_counts_are_the_matrix_in_elements() {
        // Bytes i->j; rank 1 sends 8 to 0 and 24 to 2, receives 16 from 0 and 32 from 2.
        let m = Arc::new(PeerBytes::parse("0 16 0\n8 0 24\n40 32 0\n").unwrap());
        let made = NativeCounts::of(Arc::clone(&m), 1, DataType::Float).unwrap();
        assert_eq!(
            made.counts,
            PeerCounts {
                send_counts: vec![2, 0, 6],
                send_displs: vec![0, 2, 2],
                recv_counts: vec![4, 0, 8],
                recv_displs: vec![0, 4, 4],
            }
        );
        assert!(made.made_for.is(&m, 1, DataType::Float));
        assert!(!made.made_for.is(&m, 0, DataType::Float));
        assert!(!made.made_for.is(&m, 1, DataType::Bfloat16));
        let same_bytes = Arc::new(PeerBytes::parse("0 16 0\n8 0 24\n40 32 0\n").unwrap());
        assert!(
            !made.made_for.is(&same_bytes, 1, DataType::Float),
            "another matrix"
        );
    }

    #[test]
    fn missing_symbols_select_grouped_send_recv() {
        let none = |_: Optional| false;
        let all = |_: Optional| true;
        assert_eq!(path_for(Collective::AllToAll, none), "grouped send/recv");
        assert_eq!(path_for(Collective::Gather, none), "grouped send/recv");
        assert_eq!(path_for(Collective::Scatter, none), "grouped send/recv");
        assert_eq!(path_for(Collective::AllToAll, all), "native");
        assert_eq!(path_for(Collective::SendRecv, all), "grouped send/recv");
        assert_eq!(path_for(Collective::AllReduce, none), "native");
    }
}
