//! How every command meets its launcher: usage errors said once, MPI started with a panic hook and the
//! `-T` watchdog, and the rule that a failure on any rank ends the whole job with its exit code.

use super::record;
use super::reporter::Reporter;
use crate::error::{Error, ExitCode};
use crate::world::World;
use std::io::Write;

/// A command line clap refused, said once under a launcher; returns its exit code.
pub fn usage_error_from_clap(e: clap::Error) -> i32 {
    if launcher_rank().is_none_or(|r| r == 0) {
        let _ = e.print();
    } else {
        let_the_speaker_speak();
    }
    e.exit_code()
}

/// A command line that failed validation, before MPI starts: every rank finds the same error, and one
/// copy of the message is enough. Returns its exit code.
pub fn usage_error(e: &Error) -> i32 {
    if launcher_rank().is_none_or(|r| r == 0) {
        eprintln!("collbench: error: {e}");
    } else {
        let_the_speaker_speak();
    }
    e.exit_code().code()
}

/// A silent rank leaving with a usage error waits a moment first: mpirun ends the whole job as soon as
/// one process exits with an error, and rank 0, which says why, could be killed before it has.
fn let_the_speaker_speak() {
    std::thread::sleep(std::time::Duration::from_secs(1));
}

/// Prints an error of a command that runs no ranks (compare, plot) and returns its exit code.
pub fn report_error(error: &Error) -> i32 {
    eprintln!("collbench: error: {error}");
    error.exit_code().code()
}

/// This process's rank as the launcher numbered it, before MPI starts.
fn launcher_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_RANK",
        "PMI_RANK",
        "PMIX_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Whether a launcher (mpirun, srun) started this process as one of several.
pub fn launched_with_ranks() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "SLURM_NTASKS",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| {
        std::env::var(v)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .is_some_and(|n| n > 1)
    })
}

/// How every command under mpirun begins: MPI started, a panic hook that ends the whole job, and the
/// `-T` watchdog, which calls `on_timeout`. Err is the exit code of an MPI that would not start (said).
#[cfg(feature = "mpi")]
pub fn start_mpi(
    timeout_s: Option<f64>,
    on_timeout: fn(&str) -> !,
) -> std::result::Result<(crate::world::MpiWorld, crate::watchdog::Watchdog), i32> {
    let world = crate::world::MpiWorld::init().map_err(|e| {
        eprintln!("collbench: cannot start MPI: {e}");
        e.exit_code().code()
    })?;
    install_panic_hook(
        world.rank(),
        world.host().to_string(),
        crate::world::mpi::abort_job,
    );
    let watchdog = crate::watchdog::Watchdog::start(
        timeout_s,
        world.rank(),
        world.host().to_string(),
        on_timeout,
    );
    Ok((world, watchdog))
}

/// What `-T` does under mpirun: says why, marks the document failed and ends every rank.
#[cfg(feature = "mpi")]
pub fn end_job_on_timeout(message: &str) -> ! {
    eprintln!("{message}");
    record::fail(message, ExitCode::Timeout.code(), None);
    crate::world::mpi::abort_job(ExitCode::Timeout.code())
}

/// What `-T` does without MPI: says why, marks the document failed and ends the process.
pub fn exit_on_timeout(message: &str) -> ! {
    eprintln!("{message}");
    record::fail(message, ExitCode::Timeout.code(), None);
    std::process::exit(ExitCode::Timeout.code())
}

/// The correctness check runs in parallel on host cores; the ranks of a host share them, and a rank
/// that spun up one thread per core would take them from its neighbours' MPI progress.
#[cfg(feature = "mpi")]
pub fn share_cores(ranks_on_host: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / ranks_on_host.max(1)).max(1);
    // Fails only if a pool already exists, which then stays as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// A panic on any rank is a bug: say where it happened and end the whole job instead of hanging it
/// in MPI_Finalize.
pub fn install_panic_hook(rank: usize, host: String, abort: fn(i32) -> !) {
    std::panic::set_hook(Box::new(move |info| {
        let message = format!("internal error on rank {rank} ({host}): {info}");
        eprintln!("collbench: {message}; aborting the job");
        record::fail(&message, ExitCode::Internal.code(), Some(rank));
        abort(ExitCode::Internal.code());
    }));
}

/// Reports a fatal error on this rank and ends the job: every rank stops, not just this one.
///
/// A usage error found after MPI started (what the backend cannot run, a root outside the job) is found
/// by every rank at the same point, from the same plan: rank 0 says it and every rank leaves normally,
/// without MPI_Abort's noise.
pub fn fail_job(world: &dyn World, reporter: Option<&mut Reporter>, error: Error) -> i32 {
    let code = error.exit_code().code();
    let everyone_knows = matches!(error, Error::Usage(_));
    if !everyone_knows || world.rank() == 0 {
        eprintln!("collbench: {error}");
    }
    match reporter {
        Some(r) => r.fail(&error, world.rank()),
        // Another rank's document: marked on disk where this rank can see it, before the job ends. Rank 0
        // of a command without a reporter marks its own, a usage error too.
        None if !everyone_knows => record::fail(&error.to_string(), code, Some(world.rank())),
        None if world.rank() == 0 => record::fail(&error.to_string(), code, None),
        None => {}
    }
    let _ = std::io::stdout().flush();
    if world.size() > 1 && !everyone_knows {
        world.abort(code);
    }
    code
}
