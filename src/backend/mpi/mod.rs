//! The `mpi` backend: host-memory buffers and the matching MPI collective, the baseline that runs anywhere.

use super::{
    Backend, BufferId, Capabilities, Comm, CommId, DeviceInfo, GroupJoin, InPlaceConvention,
    LibraryVersion, OpDesc,
};
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::ffi::mpi::{self as raw, Buffers};
use crate::traffic::matrix::PeerBytes;
use crate::world::{MpiWorld, World};
use mpi::topology::SimpleCommunicator;
use std::sync::Arc;
use std::time::Instant;

mod steps;
use steps::Step;

/// The largest count one MPI call takes (a test switch may lower it: src/testing.rs).
fn max_count() -> u64 {
    crate::testing::mpi_max_count().map_or(i32::MAX as u64, |n| n.min(i32::MAX as u64))
}

pub struct MpiBackend<'w> {
    world: &'w MpiWorld,
    send: HostBuffer,
    recv: HostBuffer,
    marks: Vec<Instant>,
    in_place: *const std::ffi::c_void,
    /// A 16-byte contiguous type, made on first use for chunks beyond MPI's int count.
    wide: Option<raw::Datatype>,
    /// The current operation's rotation of buffer offsets (OpDesc::shift_bytes).
    shift: usize,
    max_count: u64,
    capabilities: Capabilities,
    /// Sub-communicators made by `split`: CommId k is `groups[k - 1]` (0 is the job's).
    groups: Vec<SimpleCommunicator>,
    /// The current operation's communicator (OpDesc::comm).
    comm: Comm,
    /// all_to_allv's MPI counts for the last matrix, rank and type, so timed iterations reuse them.
    peer_counts: Option<PeerCountsFor>,
    /// The operation `prepare` readied for `launch`: its MPI calls checked and resolved once.
    prepared: Vec<Ready>,
}

/// A step made ready once for the timed loop.
enum Ready {
    Mpi(&'static str, raw::Ready),
    Copy { from: usize, to: usize, len: usize },
}

/// MPI counts made from one matrix for one rank and element type.
struct PeerCountsFor {
    made_for: super::CountsMadeFor,
    dt: raw::Datatype,
    counts: raw::PeerCounts,
}

impl<'w> MpiBackend<'w> {
    pub fn new(world: &'w MpiWorld) -> Self {
        let in_place = raw::in_place_sentinel(&world.library_version().unwrap_or_default());
        MpiBackend {
            world,
            send: HostBuffer::default(),
            recv: HostBuffer::default(),
            marks: Vec::new(),
            in_place,
            wide: None,
            shift: 0,
            max_count: max_count(),
            capabilities: Capabilities {
                in_place: InPlaceConvention::Mpi,
                // MPI defines every in-place form, all-to-all and point-to-point included.
                undefined_in_place: Vec::new(),
                in_place_v_needs_symmetry: true,
                paths: vec![(Collective::Hypercube, "send/recv rounds")],
            },
            groups: Vec::new(),
            comm: Comm::whole(world.rank(), world.size()),
            peer_counts: None,
            prepared: Vec::new(),
        }
    }

    /// Makes `desc`'s all_to_allv counts (in the type's elements, or in 16-byte units where an element
    /// count passes MPI's int: Open MPI 4.1 has no MPI_Alltoallv_c), unless the last ones fit it.
    fn make_peer_counts(&mut self, desc: &OpDesc) -> Result<()> {
        let matrix = desc
            .counts
            .clone()
            .ok_or_else(|| Error::Internal("all_to_allv without per-peer counts".into()))?;
        let rank = desc.comm.rank;
        let cached = self
            .peer_counts
            .as_ref()
            .is_some_and(|c| c.made_for.is(&matrix, rank, desc.dtype));
        if !cached {
            let made = self.peer_counts_for(matrix, rank, desc.dtype)?;
            self.peer_counts = Some(made);
        }
        Ok(())
    }

    fn peer_counts_for(
        &mut self,
        matrix: Arc<PeerBytes>,
        rank: usize,
        dtype: DataType,
    ) -> Result<PeerCountsFor> {
        let lists = matrix.rank_lists(rank);
        let elt = dtype.size() as u64;
        let fits = |unit: u64, limit: u64| {
            lists
                .iter()
                .flatten()
                .all(|&b| b % unit == 0 && b / unit <= limit)
        };
        let (dt, unit) = if fits(elt, self.max_count) {
            (Self::datatype(dtype), elt)
        } else if fits(16, i32::MAX as u64) {
            (
                *self.wide.get_or_insert_with(|| raw::contiguous_bytes(16)),
                16,
            )
        } else {
            return Err(Error::Unsupported(format!(
                "all_to_allv: rank {rank}'s per-peer bytes or offsets pass MPI's int count and are not all multiples of 16 bytes (this MPI has no MPI_Alltoallv_c): use smaller or 16-byte-aligned entries"
            )));
        };
        let [sc, sd, rc, rd] = lists.map(|l| l.iter().map(|&b| (b / unit) as i32).collect());
        Ok(PeerCountsFor {
            made_for: super::CountsMadeFor {
                matrix,
                rank,
                dtype,
            },
            dt,
            counts: raw::PeerCounts {
                send_counts: sc,
                send_displs: sd,
                recv_counts: rc,
                recv_displs: rd,
            },
        })
    }

    fn buffer(&mut self, id: BufferId) -> &mut HostBuffer {
        match id {
            BufferId::Send => &mut self.send,
            BufferId::Recv => &mut self.recv,
        }
    }

    fn error(&self, call: &str, detail: String) -> Error {
        Error::Library {
            library: "MPI".into(),
            call: call.into(),
            detail,
            rank: self.world.rank(),
            host: self.world.host().to_string(),
        }
    }

    /// An MPI call's return code as a Result.
    fn code(&self, name: &str, code: std::ffi::c_int) -> Result<()> {
        match code {
            0 => Ok(()),
            raw::OUT_OF_BOUNDS => Err(Error::Internal(format!(
                "{name}: a region lies outside the allocated buffers"
            ))),
            raw::NOT_PREPARED => Err(Error::Internal(format!(
                "{name}: launched on buffers, a communicator or a rotation it was not prepared for"
            ))),
            code => raw::check(code).map_err(|detail| self.error(name, detail)),
        }
    }

    /// Runs the steps of one operation now, each region checked as it goes.
    fn run_steps(&mut self, steps: &[Step]) -> Result<()> {
        let (rank, size) = (self.comm.rank as i32, self.comm.size as i32);
        for step in steps {
            let comm = communicator(self.world, &self.groups, self.comm.id)?;
            let mut bufs = Buffers {
                send: &mut self.send,
                recv: &mut self.recv,
                in_place: self.in_place,
                shift: self.shift,
            };
            let (name, code) = match step {
                Step::Call(name, call) => (*name, raw::run(call, &mut bufs, comm, rank, size)),
                Step::Alltoallv { send, recv } => {
                    let made = self.peer_counts.as_ref().ok_or_else(|| {
                        Error::Internal("all_to_allv counts were not made".into())
                    })?;
                    let code =
                        raw::alltoallv(&mut bufs, comm, *send, *recv, &made.counts, made.dt, size);
                    ("MPI_Alltoallv", code)
                }
                Step::Copy { from, to, len } => {
                    self.copy(*from, *to, *len)?;
                    continue;
                }
            };
            self.code(name, code)?;
        }
        Ok(())
    }

    /// Copies `len` bytes from the send buffer at `from` to the receive buffer at `to`, rotated.
    fn copy(&mut self, from: usize, to: usize, len: usize) -> Result<()> {
        let (from, to) = (from + self.shift, to + self.shift);
        match (
            self.send.get(from..from + len),
            self.recv.get_mut(to..to + len),
        ) {
            (Some(s), Some(r)) => {
                r.copy_from_slice(s);
                Ok(())
            }
            _ => Err(Error::Internal(
                "a copy inside the operation lies outside the buffers".into(),
            )),
        }
    }

    /// The MPI datatype that carries `dtype`, and the elements per MPI element (for the wide type).
    fn datatype(dtype: DataType) -> raw::Datatype {
        match dtype {
            // No reduction is defined on these in MPI; they move as raw bits.
            DataType::Half | DataType::Bfloat16 => raw::datatype("uint16"),
            DataType::F8e4m3 | DataType::F8e5m2 => raw::datatype("uint8"),
            t => raw::datatype(t.name()),
        }
    }

    /// Datatype and count for a data-movement count that may exceed MPI's int: chunks are multiples
    /// of 16 bytes (Collective::shape), so they move as 16-byte units when too long.
    fn movement(&mut self, dtype: DataType, count: u64) -> Result<(raw::Datatype, i32)> {
        if count <= self.max_count {
            return Ok((Self::datatype(dtype), count as i32));
        }
        let units = count * dtype.size() as u64 / 16;
        if units > i32::MAX as u64 {
            return Err(Error::Unsupported(format!(
                "{count} elements per rank is beyond what one MPI call can move"
            )));
        }
        let wide = *self.wide.get_or_insert_with(|| raw::contiguous_bytes(16));
        Ok((wide, units as i32))
    }
}

/// Where a host buffer starts: on a page, as device allocations start at least on 256 bytes, so that
/// the library's copies see the same alignment from one run (and one program) to the next.
const HOST_ALIGNMENT: usize = 4096;

/// A host buffer of `len` bytes starting on a `HOST_ALIGNMENT` boundary inside its allocation.
#[derive(Default)]
struct HostBuffer {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl HostBuffer {
    fn new(len: usize) -> Result<HostBuffer> {
        let mut raw = Vec::new();
        raw.try_reserve_exact(len + HOST_ALIGNMENT).map_err(|e| {
            Error::Unsupported(format!(
                "cannot allocate {len} bytes of host memory ({e}): lower -e"
            ))
        })?;
        raw.resize(len + HOST_ALIGNMENT, 0);
        let start = raw
            .as_ptr()
            .align_offset(HOST_ALIGNMENT)
            .min(HOST_ALIGNMENT);
        Ok(HostBuffer { raw, start, len })
    }
}

impl std::ops::Deref for HostBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for HostBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// Communicator `id`: 0 the job's, k the k-th split (`MpiBackend::groups`).
fn communicator<'a>(
    world: &'a MpiWorld,
    groups: &'a [SimpleCommunicator],
    id: CommId,
) -> Result<&'a SimpleCommunicator> {
    match id {
        0 => Ok(world.communicator()),
        k => groups
            .get(k - 1)
            .ok_or_else(|| Error::Internal(format!("no communicator {k} was split"))),
    }
}

fn offset(elements: u64, dtype: DataType) -> usize {
    (elements * dtype.size() as u64) as usize
}

impl Backend for MpiBackend<'_> {
    fn register_buffers(&mut self, how: super::Registration) -> Result<Option<String>> {
        match how {
            super::Registration::None => Ok(None),
            _ => Err(Error::Unsupported(format!(
                "-R: the {} backend has no communicator to register buffers with",
                self.name()
            ))),
        }
    }
    fn name(&self) -> &'static str {
        "mpi"
    }

    fn versions(&self) -> Vec<LibraryVersion> {
        self.world
            .library_version()
            .map(|v| {
                vec![LibraryVersion {
                    library: "MPI".into(),
                    version: v,
                }]
            })
            .unwrap_or_default()
    }

    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            kind: "host".into(),
            index: None,
            name: "host memory".into(),
            pci_bus_id: None,
        }
    }

    fn free_memory(&self) -> Result<u64> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| Error::io("reading /proc/meminfo", e))?;
        let available_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| Error::Internal("/proc/meminfo has no MemAvailable line".into()))?;
        // Ranks on one host share its memory.
        Ok(available_kib * 1024 / self.world.local_size() as u64)
    }

    fn unsupported(
        &self,
        collective: Collective,
        dtype: DataType,
        op: Option<ReduceOp>,
    ) -> Option<String> {
        if !collective.reduces() {
            return None;
        }
        if matches!(
            dtype,
            DataType::Half | DataType::Bfloat16 | DataType::F8e4m3 | DataType::F8e5m2
        ) {
            return Some(format!(
                "MPI has no {dtype} reductions, so the mpi backend cannot run {collective} on {dtype}: use a GPU backend (--backend nccl or rccl) or another -d"
            ));
        }
        if op == Some(ReduceOp::MulSum) {
            return Some(format!(
                "MPI has no pre-multiplied sum, so the mpi backend cannot run {collective} with -o mulsum: use a GPU backend (NCCL 2.11+)"
            ));
        }
        if op == Some(ReduceOp::Avg) {
            return Some(format!(
                "MPI has no avg reduction, so the mpi backend cannot run {collective} with -o avg: use -o sum, or a GPU backend"
            ));
        }
        None
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn split(&mut self, _world: &dyn World, join: &GroupJoin) -> Result<CommId> {
        let comm = self.world.split(join.color, join.rank)?;
        self.groups.push(comm);
        Ok(self.groups.len())
    }

    fn allocate(&mut self, bytes: u64) -> Result<()> {
        // What was prepared points into the buffers being replaced.
        self.prepared.clear();
        let bytes = usize::try_from(bytes).map_err(|_| {
            Error::Unsupported("buffer size beyond this machine's address space".into())
        })?;
        for id in [BufferId::Send, BufferId::Recv] {
            *self.buffer(id) = HostBuffer::new(bytes)?;
        }
        Ok(())
    }

    fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()> {
        let buf = self.buffer(buffer);
        let start = offset as usize;
        buf.get_mut(start..start + data.len())
            .ok_or_else(|| Error::Internal("write beyond the buffer".into()))?
            .copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(buffer);
        let start = offset as usize;
        out.copy_from_slice(
            buf.get(start..start + out.len())
                .ok_or_else(|| Error::Internal("read beyond the buffer".into()))?,
        );
        Ok(())
    }

    fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()> {
        let buf = self.buffer(buffer);
        let end = (len as usize).min(buf.len());
        buf[..end].fill(byte);
        Ok(())
    }

    fn enqueue(&mut self, desc: &OpDesc) -> Result<()> {
        self.shift = desc.shift_bytes as usize;
        self.comm = desc.comm;
        let steps = self.steps(desc)?;
        self.run_steps(&steps)
    }

    fn prepare(&mut self, desc: &OpDesc, max_shift_bytes: u64) -> Result<()> {
        self.prepared.clear();
        self.comm = desc.comm;
        let steps = self.steps(desc)?;
        let (rank, size) = (self.comm.rank as i32, self.comm.size as i32);
        let max_shift = max_shift_bytes as usize;
        for step in steps {
            let comm = communicator(self.world, &self.groups, self.comm.id)?;
            let mut bufs = Buffers {
                send: &mut self.send,
                recv: &mut self.recv,
                in_place: self.in_place,
                shift: 0,
            };
            let (name, what) = match &step {
                Step::Call(name, call) => (*name, raw::Prepare::Call(call)),
                Step::Alltoallv { send, recv } => {
                    let made = self.peer_counts.as_ref().ok_or_else(|| {
                        Error::Internal("all_to_allv counts were not made".into())
                    })?;
                    (
                        "MPI_Alltoallv",
                        raw::Prepare::Alltoallv {
                            send: *send,
                            recv: *recv,
                            counts: &made.counts,
                            dt: made.dt,
                        },
                    )
                }
                Step::Copy { from, to, len } => {
                    if from + len + max_shift > self.send.len()
                        || to + len + max_shift > self.recv.len()
                    {
                        return Err(Error::Internal(
                            "a copy inside the operation lies outside the buffers".into(),
                        ));
                    }
                    self.prepared.push(Ready::Copy {
                        from: *from,
                        to: *to,
                        len: *len,
                    });
                    continue;
                }
            };
            match raw::Ready::new(what, &mut bufs, comm, rank, size, max_shift) {
                Ok(ready) => self.prepared.push(Ready::Mpi(name, ready)),
                Err(code) => return self.code(name, code),
            }
        }
        Ok(())
    }

    fn launch(&mut self, shift_bytes: u64) -> Result<()> {
        let shift = shift_bytes as usize;
        let comm = communicator(self.world, &self.groups, self.comm.id)?;
        for ready in &self.prepared {
            match ready {
                Ready::Mpi(name, ready) => {
                    let code = ready.launch(comm, &self.send, &self.recv, shift);
                    if code != 0 {
                        return self.code(name, code);
                    }
                }
                Ready::Copy { from, to, len } => {
                    let (from, to) = (from + shift, to + shift);
                    self.recv[to..to + len].copy_from_slice(&self.send[from..from + len]);
                }
            }
        }
        Ok(())
    }

    fn wait(&mut self) -> Result<()> {
        // MPI's blocking collectives have completed when they return.
        Ok(())
    }

    fn reserve_marks(&mut self, count: usize) -> Result<()> {
        let now = Instant::now();
        self.marks.clear();
        self.marks.resize(count, now);
        Ok(())
    }

    fn mark(&mut self, index: usize) -> Result<()> {
        if let Some(slot) = self.marks.get_mut(index) {
            *slot = Instant::now();
        }
        Ok(())
    }

    fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>> {
        Ok(self
            .marks
            .windows(2)
            .take(count)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e6)
            .collect())
    }
}
