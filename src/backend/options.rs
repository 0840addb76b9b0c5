//! What a run asks of the backends, in the backends' own terms: which one (--backend), where the GPU
//! libraries are, who allocates GPU buffers (--alloc), the -T limit. The command line and the Plan fill
//! these in; backend/ never reads the Plan.

use serde::Serialize;
use std::path::PathBuf;

/// Which backend carries the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Nccl,
    Rccl,
    Mpi,
}

/// Who allocates the GPU buffers (`--alloc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Allocator {
    /// cudaMalloc / hipMalloc through the device runtime.
    Device,
    /// ncclMemAlloc where the library has it (NCCL 2.19+), else the device runtime.
    Nccl,
}

/// What the NCCL and RCCL backends take from the run.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuOptions {
    /// --nccl-lib: the libnccl.so.2 to load instead of searching.
    pub nccl_lib: Option<PathBuf>,
    /// --rccl-lib: the librccl.so.1 to load instead of searching.
    pub rccl_lib: Option<PathBuf>,
    /// -T: seconds the GPU stream may take before the wait gives up; None waits forever.
    pub timeout_s: Option<f64>,
    pub alloc: Allocator,
    /// -Y: what memory the buffers are when the device runtime allocates them.
    pub memory: crate::ffi::device::MemoryKind,
}

/// What a command asks of the backends: which one, and what the GPU backends take from it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendRequest {
    pub choice: BackendChoice,
    pub gpu: GpuOptions,
}
