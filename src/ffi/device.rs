//! The device runtime interface the CUDA and HIP layers implement (`GpuDevice`: memory, stream, events,
//! graphs), and how a device and its libraries are named for the header and the JSON.

use crate::error::Result;
use crate::ffi::{DeviceAddr, StreamHandle};
use serde::Serialize;

/// The device a rank runs on, for the header and the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    /// "host" for the mpi backend, "cuda" or "hip" for GPUs.
    pub kind: String,
    /// Device ordinal as the process sees it, when there is one.
    pub index: Option<usize>,
    pub name: String,
    pub pci_bus_id: Option<String>,
}

/// A library version for the header and the JSON, e.g. ("NCCL", "2.32.3").
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LibraryVersion {
    pub library: String,
    pub version: String,
}

/// What memory a buffer is (rccl-tests' -Y): device memory as the runtime gives it (coarse-grained on
/// AMD, what cudaMalloc gives on NVIDIA), fine-grained device memory (AMD: coherent with the host and
/// peers, uncached), pinned host memory mapped for the device, or managed (migrating) memory.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    #[default]
    Coarse,
    Fine,
    Host,
    Managed,
}

impl MemoryKind {
    pub fn name(self) -> &'static str {
        match self {
            MemoryKind::Coarse => "coarse",
            MemoryKind::Fine => "fine",
            MemoryKind::Host => "host",
            MemoryKind::Managed => "managed",
        }
    }
}

/// Device work the GPU backend needs, implemented over the CUDA driver (cudarc) and the HIP runtime.
/// One value drives one device from one thread, with one stream.
pub trait GpuDevice {
    fn info(&self) -> DeviceInfo;
    /// Driver and runtime versions, for the header.
    fn versions(&self) -> Vec<LibraryVersion>;
    /// The stream every operation is enqueued on.
    fn stream(&self) -> StreamHandle;
    fn alloc(&mut self, bytes: u64) -> Result<DeviceAddr>;
    /// A buffer of `kind` (-Y); `free` releases it whatever its kind. A runtime without that kind of
    /// memory says so (CUDA has no fine-grained memory).
    fn alloc_kind(&mut self, bytes: u64, kind: MemoryKind) -> Result<DeviceAddr>;
    fn free(&mut self, addr: DeviceAddr) -> Result<()>;
    /// Host to device, after the stream's work has finished.
    fn copy_in(&mut self, dst: DeviceAddr, data: &[u8]) -> Result<()>;
    /// Device to host, after the stream's work has finished.
    fn copy_out(&mut self, src: DeviceAddr, out: &mut [u8]) -> Result<()>;
    fn memset(&mut self, dst: DeviceAddr, len: u64, byte: u8) -> Result<()>;
    /// Enqueues a device-to-device copy of `len` bytes on the stream (part of an operation, as
    /// nccl-tests' hypercube copies a rank's own block): asynchronous, and allowed while capturing.
    fn copy_on_stream(&mut self, dst: DeviceAddr, src: DeviceAddr, len: u64) -> Result<()>;
    /// Whether everything enqueued on the stream has finished (a query, never blocking).
    fn stream_done(&mut self) -> Result<bool>;
    /// Makes sure at least `count` events exist, so recording allocates nothing.
    fn reserve_events(&mut self, count: usize) -> Result<()>;
    /// Records event `index` on the stream (creating it if `reserve_events` did not).
    fn record_event(&mut self, index: usize) -> Result<()>;
    /// Milliseconds between two recorded events.
    fn elapsed_ms(&mut self, start: usize, end: usize) -> Result<f32>;
    /// (free, total) bytes of device memory.
    fn mem_info(&self) -> Result<(u64, u64)>;
    /// Whether the device computes on FP8 (None when the device cannot tell).
    fn supports_fp8(&self) -> Option<bool>;
    /// Graph capture on the stream (-G), where the runtime's graph calls are declared.
    fn graphs(&mut self) -> Option<&mut dyn DeviceGraphs> {
        None
    }
}

/// Capturing the stream's work into a graph and launching it (-G).
pub trait DeviceGraphs {
    /// Starts capturing the stream's work into a graph instead of running it.
    fn begin_capture(&mut self) -> Result<()>;
    /// Ends the capture and makes the graph ready to launch. Touches no other CUDA object: anything else
    /// done while the stream captures invalidates the capture.
    fn end_capture(&mut self) -> Result<()>;
    /// Destroys the captured graph, after its replays completed and outside any capture.
    fn release_graph(&mut self) -> Result<()>;
    /// Enqueues one replay of the captured graph on the stream.
    fn launch_graph(&mut self) -> Result<()>;
}
