//! Which backend a command uses: what --backend asks for, or what `auto` finds on this machine, the same
//! on every rank; and creating the GPU backends with the watchdog around their initialisation.

use crate::backend::{Backend, BackendChoice, BackendRequest};
use crate::error::{Error, Result};
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};

/// The backend `request` asks for (auto: what this machine has), the same on every rank, with the
/// reason it was chosen.
pub fn choose_backend(
    request: &BackendRequest,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<(BackendChoice, String)> {
    let (choice, reason) = match request.choice {
        BackendChoice::Auto => crate::backend::select::probe_auto(request.choice),
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
    request: &BackendRequest,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<Option<Box<dyn Backend>>> {
    let Some(vendor) = crate::backend::select::gpu_vendor(choice) else {
        return Ok(None);
    };
    // ncclCommInitRank blocks until every rank has joined and has no timeout of its own.
    watchdog.arm(|| format!("{choice:?} communicator initialisation"));
    let backend = crate::backend::gpu::create_gpu_backend(vendor, &request.gpu, world)?;
    watchdog.disarm();
    Ok(Some(backend))
}

/// Where no MPI runs (threads, or a build without MPI) only a GPU backend can carry the collectives.
/// `threads`: the world is the threads of -g/-t.
pub fn gpu_backend_only(
    request: &BackendRequest,
    threads: bool,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<(Box<dyn Backend>, String)> {
    let (choice, reason) = choose_backend(request, world, watchdog)?;
    match create_gpu_backend(choice, request, world, watchdog)? {
        Some(b) => Ok((b, reason)),
        None if threads => Err(Error::Unsupported(format!(
            "-g/-t drive GPUs from threads, but {reason}: run where GPUs are visible, or use mpirun -np N for MPI ranks on host memory"
        ))),
        None => Err(Error::Unsupported(format!(
            "the mpi backend needs MPI ({reason}): this collbench was built without it; rebuild with default features and run under mpirun, or run where GPUs are visible"
        ))),
    }
}

/// The backend of a command under MPI ranks: the GPU backend chosen, or the mpi backend on host memory,
/// with the reason it was chosen.
#[cfg(feature = "mpi")]
pub fn backend_under_mpi<'w>(
    request: &BackendRequest,
    world: &'w crate::world::MpiWorld,
    watchdog: &Watchdog,
) -> Result<(Box<dyn Backend + 'w>, String)> {
    let (choice, reason) = choose_backend(request, world, watchdog)?;
    let backend: Box<dyn Backend + 'w> = match create_gpu_backend(choice, request, world, watchdog)?
    {
        Some(gpu) => gpu,
        None => Box::new(crate::backend::mpi::MpiBackend::new(world)),
    };
    Ok((backend, reason))
}
