//! This rank's GPU, opened through CUDA or HIP, and when there is none, why: the runtime's words and
//! the library's own answer to a one-rank communicator.

use super::GpuVendor;
use crate::device::{select_ordinals, GpuDevice, Placement};
use crate::error::{Error, Result};
use crate::ffi::cuda::{self, CudaDevice};
use crate::ffi::hip::{Hip, HipDevice};
use crate::ffi::nccl::{Flavor, Nccl};
use crate::world::World;
use std::sync::Arc;

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
pub(super) fn open_device(
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
