//! The GPU backend: NCCL on CUDA devices or RCCL on HIP devices (one NCCL API), one communicator per
//! rank, buffers allocated once, operations enqueued on one stream and waited for as nccl-tests does.
//!
//! The files: `open` finds this rank's GPU, `library_rules` says what the loaded library version allows,
//! `launch` turns an operation into the library's calls, `grouped` builds the collectives a library
//! lacks from sends and receives; this file holds the backend's state and its `Backend` impl.

mod grouped;
mod launch;
mod library_rules;
mod open;
#[cfg(test)]
mod tests;

pub use library_rules::{
    comm_config, in_place_undefined, path_for, registration_for, tuned_func, version_limits,
};

use library_rules::capabilities_of;
use open::open_device;

use crate::backend::options::{Allocator, GpuOptions, Registration};
use crate::backend::{
    Backend, BufferId, Capabilities, CommId, DeviceInfo, Exchange, GraphCapture, GroupJoin,
    LibraryVersion, MemoryUse, OpDesc,
};
use crate::collective::Collective;
use crate::device::GpuDevice;
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::ffi::device::MemoryKind;
use crate::ffi::nccl::{
    AlgoChoice, AsyncState, Flavor, Nccl, NcclComm, Optional, PeerCounts, RedOp,
    WINDOW_COLL_SYMMETRIC,
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
    made_for: crate::backend::CountsMadeFor,
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
            made_for: crate::backend::CountsMadeFor {
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
