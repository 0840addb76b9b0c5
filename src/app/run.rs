//! A benchmark run from its parsed arguments to exit code: validate, start the World (MPI ranks,
//! threads for -g, or one rank), write the document, pick the backend and run the sweep.

use super::backend_choice::gpu_backend_only;
use super::launch::{exit_on_timeout, fail_job, install_panic_hook, launched_with_ranks};
use super::reporter::Reporter;
use crate::backend::Backend;
use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::plan::{BackendChoice, Plan};
use crate::report::document::{kind, RunDocument};
use crate::report::json::JsonFormat;
use crate::report::nccl_tests::export::NcclTestsFile;
use crate::watchdog::Watchdog;
use crate::world::World;

/// Validates and runs; returns the process exit code. Usage errors end here, before MPI starts.
pub fn main(args: &RunArgs, argv: &[String]) -> i32 {
    let plan = match Plan::from_args(args).and_then(|p| check_launch(&p).map(|_| p)) {
        Ok(p) => p,
        Err(e) => return super::launch::usage_error(&e),
    };
    if plan.gpus_per_thread * plan.threads > 1 {
        with_threads(&plan, argv)
    } else {
        with_world(&plan, argv)
    }
}

fn check_launch(plan: &Plan) -> Result<()> {
    let threads = plan.gpus_per_thread * plan.threads;
    if threads > 1 && launched_with_ranks() {
        return Err(Error::usage(format!(
            "-g/-t: {threads} GPUs per process under a launcher is not supported yet: start one process per GPU (mpirun -np <GPUs>) and leave -g and -t at 1"
        )));
    }
    if threads > 1 && plan.backend == BackendChoice::Mpi {
        return Err(Error::usage(
            "-g/-t drive GPUs from threads; the mpi backend runs on host memory with one process per rank: use mpirun -np N with --backend mpi, or --backend nccl/rccl with -g",
        ));
    }
    Ok(())
}

#[cfg(feature = "mpi")]
fn with_world(plan: &Plan, argv: &[String]) -> i32 {
    let (world, watchdog) =
        match super::launch::start_mpi(plan.timeout_s, super::launch::end_job_on_timeout) {
            Ok(started) => started,
            Err(code) => return code,
        };
    let mut reporter = match start_record(plan, argv, &world) {
        Ok(r) => r,
        Err(code) => return code,
    };
    super::launch::share_cores(world.local_size());
    let backend =
        super::backend_choice::backend_under_mpi(&plan.backend_request(), &world, &watchdog);
    match backend {
        Ok(b) => run_job(plan, &world, b, &watchdog, &mut reporter),
        Err(e) => fail_job(&world, reporter.as_mut(), e),
    }
}

#[cfg(not(feature = "mpi"))]
fn with_world(plan: &Plan, argv: &[String]) -> i32 {
    let world = crate::world::solo::SoloWorld::new();
    install_panic_hook(0, world.host().to_string(), |code| std::process::exit(code));
    let mut reporter = match start_record(plan, argv, &world) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let watchdog = Watchdog::start(plan.timeout_s, 0, world.host().to_string(), exit_on_timeout);
    match gpu_backend_only(&plan.backend_request(), false, &world, &watchdog) {
        Ok(b) => run_job(plan, &world, b, &watchdog, &mut reporter),
        Err(e) => fail_job(&world, reporter.as_mut(), e),
    }
}

/// Every rank learns the run's id and where its document is; rank 0 writes the document now, before
/// anything that can fail, so that every outcome leaves one. Err is the exit code of a failure, said.
fn start_record(
    plan: &Plan,
    argv: &[String],
    world: &dyn World,
) -> std::result::Result<Option<Reporter>, i32> {
    let requested = super::job::backend_asked(plan);
    let header = |run_id: &str| super::document::header(kind::RUN, argv, &requested, run_id);
    // The document's type says how every rank writes it, its failure and interruption included.
    let doc = match plan.json_format {
        JsonFormat::Collbench => {
            super::document::start(world, plan.json.as_deref(), header, |h| {
                super::job::initial_document(plan, h)
            })?
        }
        JsonFormat::NcclTests => {
            super::document::start(world, plan.json.as_deref(), header, |h| {
                NcclTestsFile::new(super::job::initial_document(plan, h))
            })?
            .map(|file| file.0)
        }
    };
    doc.map(|d: RunDocument| {
        Reporter::start(
            d,
            plan.json_format,
            plan.csv.as_deref(),
            plan.rccl_output.as_ref(),
        )
    })
    .transpose()
    .map_err(|e| fail_job(world, None, e))
}

/// `-g N` (and `-t`): one process drives N GPUs, a thread per GPU, each a rank of a thread world.
fn with_threads(plan: &Plan, argv: &[String]) -> i32 {
    let size = plan.gpus_per_thread * plan.threads;
    let host = crate::world::host_name();
    install_panic_hook(0, host.clone(), |code| std::process::exit(code));
    let codes = crate::world::threads::run_threads(size, |world| {
        let mut reporter = match start_record(plan, argv, world) {
            Ok(r) => r,
            Err(code) => return Ok(code),
        };
        let watchdog = Watchdog::start(plan.timeout_s, world.rank(), host.clone(), exit_on_timeout);
        Ok(
            match gpu_backend_only(&plan.backend_request(), true, world, &watchdog) {
                Ok(b) => run_job(plan, world, b, &watchdog, &mut reporter),
                Err(e) => fail_job(world, reporter.as_mut(), e),
            },
        )
    });
    codes
        .into_iter()
        .map(|c| c.unwrap_or_else(|e| e.exit_code().code()))
        .max()
        .unwrap_or(0)
}

fn run_job(
    plan: &Plan,
    world: &dyn World,
    backend: (Box<dyn Backend + '_>, String),
    watchdog: &Watchdog,
    reporter: &mut Option<Reporter>,
) -> i32 {
    let (mut backend, reason) = backend;
    match super::job::sweep(plan, world, backend.as_mut(), &reason, watchdog, reporter) {
        Ok(code) => code,
        Err(e) => fail_job(world, reporter.as_mut(), e),
    }
}
