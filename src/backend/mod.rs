//! The backend interface every communication library implements (mpi, nccl, rccl), and backend selection.
//!
//! The engine drives a backend through the core trait only (buffers allocated once at the largest size,
//! operations enqueued and then waited for, timer marks, sub-communicators), asks its `Capabilities` what
//! the library defines, and captures graphs through the optional `GraphCapture`. A backend never formats
//! output.

use crate::collective::{Collective, Shape};
use crate::dtype::{DataType, ReduceOp};
use crate::error::Result;
pub use crate::ffi::device::{DeviceInfo, LibraryVersion, MemoryKind};
pub use crate::ffi::nccl::AlgoChoice;
use crate::world::World;
pub use capabilities::{Capabilities, InPlaceConvention};
use serde::Serialize;

mod capabilities;
pub mod gpu;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod options;
pub mod select;

pub use options::{Allocator, BackendChoice, BackendRequest, GpuOptions, Registration};

/// Which matrix, rank and element type a backend's all_to_allv counts were made for: they are made once
/// and reused by the timed iterations while all three stay the same.
struct CountsMadeFor {
    matrix: std::sync::Arc<crate::traffic::matrix::PeerBytes>,
    rank: usize,
    dtype: DataType,
}

impl CountsMadeFor {
    fn is(
        &self,
        matrix: &std::sync::Arc<crate::traffic::matrix::PeerBytes>,
        rank: usize,
        dtype: DataType,
    ) -> bool {
        std::sync::Arc::ptr_eq(&self.matrix, matrix) && self.rank == rank && self.dtype == dtype
    }
}

/// One operation as the engine asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpDesc {
    pub collective: Collective,
    pub dtype: DataType,
    /// The reduction, for collectives that reduce.
    pub op: Option<ReduceOp>,
    /// The root, for rooted collectives.
    pub root: Option<usize>,
    pub shape: Shape,
    /// In place: the input lies inside the receive buffer (see `Collective::in_place_layout`).
    pub in_place: bool,
    /// Bytes added to both buffers' addresses: timed iterations rotate through the buffers as nccl-tests
    /// does, so small sizes do not measure a cache. 0 for warm-up and check operations.
    pub shift_bytes: u64,
    /// The communicator it runs on, and this rank's place in it.
    pub comm: Comm,
    /// all_to_allv's bytes from each rank of `comm` to each other (None for every other collective).
    #[serde(skip)]
    pub counts: Option<std::sync::Arc<crate::traffic::matrix::PeerBytes>>,
    /// Whom sendrecv exchanges with (the ring unless a pair is measured); ignored by other collectives.
    pub peer: Exchange,
}

/// A backend's handle on one of its communicators: 0 is the whole job, `Backend::split` makes others.
pub type CommId = usize;

/// A communicator as the engine sees it: the backend's handle, this rank in it, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Comm {
    pub id: CommId,
    pub rank: usize,
    pub size: usize,
}

impl OpDesc {
    /// The all_to_allv that moves `matrix`'s bytes on `comm` in `dtype` elements, for `Engine::measure_op`
    /// (the backend's buffers must hold `shape.buffer_bytes`): what a workload step or a plan row asks for.
    pub fn all_to_allv(
        matrix: std::sync::Arc<crate::traffic::matrix::PeerBytes>,
        dtype: DataType,
        comm: Comm,
        in_place: bool,
    ) -> OpDesc {
        OpDesc {
            collective: Collective::AllToAllv,
            dtype,
            op: None,
            root: None,
            shape: matrix.shape(dtype.size()),
            in_place,
            shift_bytes: 0,
            comm,
            counts: Some(matrix),
            peer: Exchange::Ring,
        }
    }
}

impl Comm {
    /// The communicator of every rank of the job.
    pub fn whole(rank: usize, size: usize) -> Comm {
        Comm { id: 0, rank, size }
    }
}

/// This rank's group in one layout, for `Backend::split`: every rank of the job calls it together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupJoin {
    /// Ranks of equal color form one group.
    pub color: usize,
    /// This rank's rank in its group, and the group's size.
    pub rank: usize,
    pub size: usize,
    /// The job rank that is rank 0 of this rank's group.
    pub leader: usize,
}

/// The two buffers of a rank. Both are allocated at the largest size the plan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferId {
    Send,
    Recv,
}

/// Whom a rank's sendrecv exchanges with: nccl-tests' ring (send to the next rank, receive from the
/// previous), one peer in both directions (a pair of `collbench pairs`), nobody (a rank that waits
/// while other pairs are measured), or one way each (a pipeline's stage boundary: a rank sends to the
/// next stage and receives from the one before, the first stage only sends, the last only receives).
/// Point-to-point on the world communicator, so disjoint pairs run at the same time without
/// sub-communicators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    #[default]
    Ring,
    Peer(usize),
    Idle,
    Directed {
        to: Option<usize>,
        from: Option<usize>,
    },
}

impl Exchange {
    /// (send to, receive from) on `rank` of `size` ranks; None where this rank does not send, or
    /// does not receive.
    pub fn partners(self, rank: usize, size: usize) -> (Option<usize>, Option<usize>) {
        match self {
            Exchange::Ring => (Some((rank + 1) % size), Some((rank + size - 1) % size)),
            Exchange::Peer(p) => (Some(p), Some(p)),
            Exchange::Idle => (None, None),
            Exchange::Directed { to, from } => (to, from),
        }
    }

    /// The ring position whose expected sendrecv output is what `rank` receives here: the check's
    /// patterns are the ring's (rank r receives rank r-1's input), and a rank that receives from peer p
    /// receives what ring rank p+1 would. None for a rank that receives nothing.
    pub fn checked_as(self, rank: usize, size: usize) -> Option<usize> {
        match self {
            Exchange::Ring => Some(rank),
            Exchange::Peer(p) => Some((p + 1) % size),
            Exchange::Idle => None,
            Exchange::Directed { from, .. } => from.map(|p| (p + 1) % size),
        }
    }
}

/// How the library carried an operation, recorded in the JSON (e.g. "native", "grouped send/recv").
pub type PathTaken = &'static str;

/// The core of every backend: what it is, its memory, its communicators, the operations it enqueues and
/// waits for, and the timer marks of the sampled pass. What the library defines is in `capabilities`,
/// graph capture behind `graphs`.
pub trait Backend {
    /// "mpi", "nccl" or "rccl".
    fn name(&self) -> &'static str;
    fn versions(&self) -> Vec<LibraryVersion>;
    fn device(&self) -> DeviceInfo;
    /// What the loaded library defines and how it carries each collective.
    fn capabilities(&self) -> &Capabilities;
    /// Why this backend cannot run the combination, if it cannot.
    fn unsupported(
        &self,
        collective: Collective,
        dtype: DataType,
        op: Option<ReduceOp>,
    ) -> Option<String>;
    /// Bytes this rank may use for its buffers (free device memory, or its share of host memory).
    fn free_memory(&self) -> Result<u64>;
    /// Makes the communicator of this rank's group (MPI_Comm_split, or one NCCL communicator per group).
    /// Every rank of `world` calls it together, once per layout, before the first row.
    fn split(&mut self, world: &dyn World, join: &GroupJoin) -> Result<CommId>;
    /// Allocates both buffers with at least `bytes` each. Called once, with the largest size.
    fn allocate(&mut self, bytes: u64) -> Result<()>;
    /// Copies host bytes into a buffer at a byte offset.
    fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()>;
    /// Copies bytes from a buffer at a byte offset into host memory.
    fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()>;
    /// Sets every byte of a buffer's first `len` bytes.
    fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()>;
    /// Opens a group of operations that the library may fuse (-m > 1 only, as nccl-tests); nothing to do
    /// where groups do not exist.
    fn group_start(&mut self) -> Result<()> {
        Ok(())
    }
    fn group_end(&mut self) -> Result<()> {
        Ok(())
    }
    /// Starts one operation. It may complete asynchronously.
    fn enqueue(&mut self, desc: &OpDesc) -> Result<()>;
    /// Readies `desc` for a timed pass, once before it: what stays the same from one iteration to the
    /// next (partners, the in-place layout, the library's arguments and handles, the buffers' bounds for
    /// every rotation up to `max_shift_bytes`) is worked out here, so that `launch` makes only the
    /// library's call. A later `prepare`, `enqueue` or `allocate` may replace what was prepared.
    fn prepare(&mut self, desc: &OpDesc, max_shift_bytes: u64) -> Result<()>;
    /// Starts the prepared operation with both buffers `shift_bytes` further on (at most the prepared
    /// maximum). It may complete asynchronously.
    fn launch(&mut self, shift_bytes: u64) -> Result<()>;
    /// Waits until every enqueued operation has completed.
    fn wait(&mut self) -> Result<()>;
    /// Makes room for `count` timer marks, so that marking allocates nothing inside the timed loop.
    fn reserve_marks(&mut self, count: usize) -> Result<()>;
    /// Records timer mark `index` after the operations enqueued so far.
    fn mark(&mut self, index: usize) -> Result<()>;
    /// Microseconds between consecutive marks 0..=count, after `wait`.
    fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>>;
    /// Graph capture (-G), where this backend and its device have it.
    fn graphs(&mut self) -> Option<&mut dyn GraphCapture> {
        None
    }
    /// The algorithm, protocol and channels the library chooses for `desc` (rccl-tests' -A), where it
    /// tells: RCCL 7 for the collectives its tuner knows; None elsewhere. Asked once per size, after the
    /// timed passes, never inside them.
    fn algo_choice(&mut self, _desc: &OpDesc) -> Result<Option<AlgoChoice>> {
        Ok(None)
    }
    /// Registers both buffers with every communicator as `how` asks (-R), before the first row; what it
    /// did in words when that differs from what was asked (nccl-tests' fallback of -R 2 to -R 1).
    /// No default: a backend says itself whether it can register, so none refuses -R by omission.
    fn register_buffers(&mut self, how: Registration) -> Result<Option<String>>;
    /// Undoes `register_buffers`, after the last row.
    fn deregister_buffers(&mut self) -> Result<()> {
        Ok(())
    }
    /// The device memory the communicators and the buffers took (-M); None for a backend without a
    /// device (the mpi backend), which the GPU-only flags are refused on.
    fn memory_use(&self) -> Option<MemoryUse> {
        None
    }
}

/// Device memory a GPU backend took, as nccl-tests' -M reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Free memory that creating the communicator used.
    pub initialization_bytes: u64,
    /// Free memory the buffers used, with their registration.
    pub user_allocated_bytes: u64,
}

/// Capturing enqueued operations into a graph and replaying it (-G): CUDA graphs on the nccl backend.
pub trait GraphCapture {
    /// Starts capturing enqueued operations into a graph instead of running them.
    fn begin_capture(&mut self) -> Result<()>;
    /// Ends the capture; the graph is ready to replay. Between `begin_capture` and `end_capture` the engine
    /// calls nothing but `enqueue`, `group_start` and `group_end`: CUDA invalidates a capture in which any
    /// other object is touched (an event recorded, a graph destroyed, a stream synchronised).
    fn end_capture(&mut self) -> Result<()>;
    /// Enqueues one replay of the captured graph.
    fn replay(&mut self) -> Result<()>;
    /// Releases the captured graph once its replays have completed; the next capture starts clean.
    fn release_graph(&mut self) -> Result<()>;
}
