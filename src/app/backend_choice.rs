//! Which backend a run uses: what --backend asks for, or what `auto` finds on this machine, the same on
//! every rank; and creating the GPU backends with the watchdog around their initialisation.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::plan::{BackendChoice, Plan};
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};

/// The backend the plan asks for (auto: what this machine has), the same on every rank, with the reason
/// it was chosen.
pub fn choose_backend(
    plan: &Plan,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<(BackendChoice, String)> {
    let (choice, reason) = match plan.backend {
        BackendChoice::Auto => crate::backend::select::probe_auto(plan.backend),
        c => (c, "requested".to_string()),
    };
    // Ranks that probed differently (a node without its driver) must not start different backends.
    watchdog.arm(|| "agreeing on the backend across ranks".into());
    let choices: Vec<String> = all_gather_value(world, &format!("{choice:?}"))?;
    watchdog.disarm();
    if let Some(other) = choices.iter().position(|c| *c != choices[0]) {
        return Err(Error::Unsupported(format!(
            "--backend auto chose {} on rank 0 but {} on rank {other}: a node lacks its GPU driver or library; fix it or give --backend",
            choices[0], choices[other]
        )));
    }
    Ok((choice, reason))
}

/// The NCCL or RCCL backend when `choice` is one; None for mpi.
pub fn create_gpu_backend(
    choice: BackendChoice,
    plan: &Plan,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<Option<Box<dyn Backend>>> {
    let Some(vendor) = crate::backend::select::gpu_vendor(choice) else {
        return Ok(None);
    };
    // ncclCommInitRank blocks until every rank has joined and has no timeout of its own.
    watchdog.arm(|| format!("{choice:?} communicator initialisation"));
    let backend = crate::backend::gpu::create_gpu_backend(vendor, &plan.gpu_options(), world)?;
    watchdog.disarm();
    Ok(Some(backend))
}

/// Where no MPI runs (threads, or a build without MPI) only a GPU backend can carry the collectives.
pub fn gpu_backend_only(
    plan: &Plan,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<(Box<dyn Backend>, String)> {
    let (choice, reason) = choose_backend(plan, world, watchdog)?;
    match create_gpu_backend(choice, plan, world, watchdog)? {
        Some(b) => Ok((b, reason)),
        None if plan.gpus_per_thread * plan.threads > 1 => Err(Error::Unsupported(format!(
            "-g/-t drive GPUs from threads, but {reason}: run where GPUs are visible, or use mpirun -np N for MPI ranks on host memory"
        ))),
        None => Err(Error::Unsupported(format!(
            "the mpi backend needs MPI ({reason}): this collbench was built without it; rebuild with default features and run under mpirun, or run where GPUs are visible"
        ))),
    }
}

/// The backend of a run under MPI ranks: the GPU backend chosen, or the mpi backend on host memory,
/// with the reason it was chosen.
#[cfg(feature = "mpi")]
pub fn backend_under_mpi<'w>(
    plan: &Plan,
    world: &'w crate::world::MpiWorld,
    watchdog: &Watchdog,
) -> Result<(Box<dyn Backend + 'w>, String)> {
    let (choice, reason) = choose_backend(plan, world, watchdog)?;
    let backend: Box<dyn Backend + 'w> = match create_gpu_backend(choice, plan, world, watchdog)? {
        Some(gpu) => gpu,
        None => Box::new(crate::backend::mpi::MpiBackend::new(world)),
    };
    Ok((backend, reason))
}
