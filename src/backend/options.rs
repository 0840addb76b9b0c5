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
    /// -R: how the buffers are registered with the communicator.
    pub register: Registration,
    /// -x: the communicator's CTA policy (ncclConfig_t.CTAPolicy), when asked.
    pub cta_policy: Option<i32>,
    /// -y 1: the legacy default stream instead of a non-blocking one.
    pub null_stream: bool,
    /// -Y: what memory the buffers are when the device runtime allocates them.
    pub memory: crate::ffi::device::MemoryKind,
}

/// What a command asks of the backends: which one, and what the GPU backends take from it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendRequest {
    pub choice: BackendChoice,
    pub gpu: GpuOptions,
}

/// How the buffers are registered with the communicator (-R): as nccl-tests' local_register values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Not registered (-R 0).
    #[default]
    None,
    /// ncclCommRegister (-R 1, NCCL 2.19+).
    Local,
    /// ncclCommWindowRegister with NCCL_WIN_COLL_SYMMETRIC (-R 2, NCCL 2.27+).
    Symmetric,
}
