//! The flags every measuring command shares: which backend carries the collectives and which GPU
//! library it loads.

use crate::backend::{
    Allocator, BackendChoice, BackendRequest, GpuOptions, MemoryKind, Registration,
};
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct LibraryArgs {
    /// Communication backend: nccl, rccl, mpi (host memory), or auto.
    #[arg(long, default_value = "auto")]
    pub backend: String,

    /// Path of libnccl.so.2 to load.
    #[arg(long = "nccl-lib", value_name = "PATH")]
    pub nccl_lib: Option<PathBuf>,

    /// Path of librccl.so.1 to load.
    #[arg(long = "rccl-lib", value_name = "PATH")]
    pub rccl_lib: Option<PathBuf>,
}

impl LibraryArgs {
    /// `--backend` as a choice, or a usage error naming the values it takes.
    pub fn backend_choice(&self) -> Result<BackendChoice> {
        match self.backend.to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "nccl" => Ok(BackendChoice::Nccl),
            "rccl" => Ok(BackendChoice::Rccl),
            "mpi" => Ok(BackendChoice::Mpi),
            b => Err(Error::usage(format!(
                "--backend {b}: use nccl, rccl, mpi or auto"
            ))),
        }
    }

    /// What `pairs` and `workload` ask of the backend: these flags, `-T`'s timeout, and device memory
    /// with none of a sweep's GPU options (registration, CTA policy, streams, -Y's memory kinds).
    pub fn backend_request(&self, timeout_s: Option<f64>) -> Result<BackendRequest> {
        Ok(BackendRequest {
            choice: self.backend_choice()?,
            gpu: GpuOptions {
                nccl_lib: self.nccl_lib.clone(),
                rccl_lib: self.rccl_lib.clone(),
                timeout_s,
                alloc: Allocator::Device,
                register: Registration::None,
                cta_policy: None,
                null_stream: false,
                memory: MemoryKind::Coarse,
            },
        })
    }
}
