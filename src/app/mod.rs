//! One benchmark run from argv to exit code: parse and validate, start the World (MPI ranks, threads for
//! -g, or one rank), pick the backend, run the sweep, and the rule that a failure on any rank ends the
//! whole job with its exit code.

mod backend_choice;
mod header;
mod job;
mod pairs;
mod port_counters;
mod record;
pub mod reporter;
mod topology;
mod workload;

pub use job::fit_sizes;
pub use pairs::pairs_main;
pub use workload::workload_main;

use crate::backend::Backend;
use crate::cli::RunArgs;
use crate::error::{Error, ExitCode, Result};
use crate::plan::{BackendChoice, Plan};
use crate::watchdog::Watchdog;
use crate::world::World;
use backend_choice::gpu_backend_only;
use reporter::Reporter;
use std::io::Write;

/// Parses, validates and runs; returns the process exit code. Usage errors end here, before MPI starts.
pub fn main_with_args(argv: Vec<String>) -> i32 {
    use clap::Parser;
    let args = match RunArgs::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => return usage_error_from_clap(e),
    };
    let plan = match Plan::from_args(&args).and_then(|p| check_launch(&p).map(|_| p)) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    if plan.gpus_per_thread * plan.threads > 1 {
        with_threads(&plan, &argv)
    } else {
        with_world(&plan, &argv)
    }
}

/// A command line clap refused, said once under a launcher; returns its exit code.
fn usage_error_from_clap(e: clap::Error) -> i32 {
    if launcher_rank().is_none_or(|r| r == 0) {
        let _ = e.print();
    } else {
        let_the_speaker_speak();
    }
    e.exit_code()
}

/// A plan that failed validation, before MPI starts: every rank finds the same error, and one copy of
/// the message is enough. Returns its exit code.
fn usage_error(e: &Error) -> i32 {
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

/// The run plan a subcommand measures with: `argv` (a collective and the timing flags the subcommand
/// maps onto the run's), plus the library paths it was given.
fn run_plan(
    mut argv: Vec<String>,
    nccl_lib: &Option<std::path::PathBuf>,
    rccl_lib: &Option<std::path::PathBuf>,
) -> Result<Plan> {
    use clap::Parser;
    for (flag, path) in [("--nccl-lib", nccl_lib), ("--rccl-lib", rccl_lib)] {
        if let Some(p) = path {
            argv.extend([flag.to_string(), p.to_string_lossy().into_owned()]);
        }
    }
    let run_args = RunArgs::try_parse_from(&argv).map_err(|e| Error::usage(e.to_string()))?;
    Plan::from_args(&run_args)
}

/// `collbench topo`: what each host's GPUs, links and NICs are, and their peak, without running a
/// collective. Under mpirun it covers every host of the job.
pub fn topo_main(argv: &[String]) -> i32 {
    use clap::Parser;
    /// Print the GPUs, NVLink/xGMI/PCIe links, RDMA NICs and affinities discovered on each host, and the
    /// speed of light of a communicator over all of a host's GPUs.
    #[derive(Parser)]
    #[command(name = "collbench topo")]
    struct TopoArgs {
        /// Also write what was discovered as JSON.
        #[arg(short = 'J', long = "json", value_name = "FILE")]
        json: Option<std::path::PathBuf>,
    }
    let args = match TopoArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let nodes = match topo_nodes() {
        Ok(Some(nodes)) => nodes,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("collbench: {e}");
            return e.exit_code().code();
        }
    };
    print!("{}", crate::topo::render(&nodes));
    print!("{}", topology::host_peak_lines(&nodes));
    if let Some(path) = args.json {
        let text = serde_json::to_vec_pretty(&nodes).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("collbench: --json {}: cannot write: {e}", path.display());
            return ExitCode::Io.code();
        }
    }
    0
}

/// Every host's topology on rank 0 (None on the other ranks).
fn topo_nodes() -> Result<Option<Vec<crate::topo::NodeTopology>>> {
    #[cfg(feature = "mpi")]
    if launched_with_ranks() {
        let world = crate::world::MpiWorld::init()?;
        let nodes = topology::gather_nodes(&world)?;
        return Ok((world.rank() == 0).then_some(nodes));
    }
    Ok(Some(vec![crate::topo::discover_live()]))
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
fn launched_with_ranks() -> bool {
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

/// How every command under mpirun begins: MPI started, a panic hook that ends the whole job, and the
/// `-T` watchdog, which calls `on_timeout`. Err is the exit code of an MPI that would not start (said).
#[cfg(feature = "mpi")]
fn start_mpi(
    timeout_s: Option<f64>,
    on_timeout: fn(&str) -> !,
) -> std::result::Result<(crate::world::MpiWorld, Watchdog), i32> {
    let world = crate::world::MpiWorld::init().map_err(|e| {
        eprintln!("collbench: cannot start MPI: {e}");
        e.exit_code().code()
    })?;
    install_panic_hook(
        world.rank(),
        world.host().to_string(),
        crate::world::mpi::abort_job,
    );
    let watchdog = Watchdog::start(
        timeout_s,
        world.rank(),
        world.host().to_string(),
        on_timeout,
    );
    Ok((world, watchdog))
}

/// What `-T` does under mpirun: says why, marks the document failed and ends every rank.
#[cfg(feature = "mpi")]
fn end_job_on_timeout(message: &str) -> ! {
    eprintln!("{message}");
    record::fail(message, ExitCode::Timeout.code(), None);
    crate::world::mpi::abort_job(ExitCode::Timeout.code())
}

#[cfg(feature = "mpi")]
fn with_world(plan: &Plan, argv: &[String]) -> i32 {
    let (world, watchdog) = match start_mpi(plan.timeout_s, end_job_on_timeout) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let mut reporter = match start_record(plan, argv, &world) {
        Ok(r) => r,
        Err(e) => return fail_job(&world, None, e),
    };
    share_cores(world.local_size());
    let backend = backend_choice::backend_under_mpi(plan, &world, &watchdog);
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
        Err(e) => return fail_job(&world, None, e),
    };
    let watchdog = Watchdog::start(plan.timeout_s, 0, world.host().to_string(), exit_on_timeout);
    match gpu_backend_only(plan, &world, &watchdog) {
        Ok(b) => run_job(plan, &world, b, &watchdog, &mut reporter),
        Err(e) => fail_job(&world, reporter.as_mut(), e),
    }
}

fn exit_on_timeout(message: &str) -> ! {
    eprintln!("{message}");
    record::fail(message, ExitCode::Timeout.code(), None);
    std::process::exit(ExitCode::Timeout.code())
}

/// Every rank learns the run's id and where its document is; rank 0 writes the document now, before
/// anything that can fail, so that every outcome leaves one.
fn start_record(plan: &Plan, argv: &[String], world: &dyn World) -> Result<Option<Reporter>> {
    let run_id = share_run_id(world, plan.json.as_deref())?;
    if world.rank() != 0 {
        return Ok(None);
    }
    let doc = job::initial_document(plan, argv, &run_id);
    Reporter::start(doc, plan.json.as_deref(), plan.csv.as_deref()).map(Some)
}

/// Every rank of any command that writes a document to `json`: agrees on the run's id and learns where
/// the document is, so that whatever ends the run marks it (src/app/record.rs).
fn share_run_id(world: &dyn World, json: Option<&std::path::Path>) -> Result<String> {
    let mut id = if world.rank() == 0 {
        record::new_run_id(world.host()).into_bytes()
    } else {
        Vec::new()
    };
    world.broadcast_bytes(0, &mut id)?;
    let run_id = String::from_utf8_lossy(&id).into_owned();
    record::know(json, &run_id);
    Ok(run_id)
}

/// Every rank of a subcommand with its own document of type `D` (pairs, workload): the run's id, and
/// rank 0 takes charge of `-J`'s target before anything is measured. Err is the exit code of a failure,
/// already reported. Only rank 0 can fail to take the target, so it ends the job itself: the others are
/// not waiting to hear of it.
#[cfg(feature = "mpi")]
fn start_document(
    world: &dyn World,
    json: Option<&std::path::Path>,
) -> std::result::Result<String, i32> {
    let run_id = share_run_id(world, json).map_err(|e| fail_job(world, None, e))?;
    if world.rank() != 0 {
        return Ok(run_id);
    }
    let owned = json
        .map(crate::report::json::JsonWriter::new)
        .transpose()
        .and_then(record::own);
    match owned {
        Ok(()) => Ok(run_id),
        Err(e) => {
            let code = fail_job(world, None, e);
            if world.size() > 1 {
                world.abort(code);
            }
            Err(code)
        }
    }
}

/// `-g N` (and `-t`): one process drives N GPUs, a thread per GPU, each a rank of a thread world.
fn with_threads(plan: &Plan, argv: &[String]) -> i32 {
    let size = plan.gpus_per_thread * plan.threads;
    let host = crate::world::host_name();
    install_panic_hook(0, host.clone(), |code| std::process::exit(code));
    let codes = crate::world::threads::run_threads(size, |world| {
        let mut reporter = match start_record(plan, argv, world) {
            Ok(r) => r,
            Err(e) => return Ok(fail_job(world, None, e)),
        };
        let watchdog = Watchdog::start(plan.timeout_s, world.rank(), host.clone(), exit_on_timeout);
        Ok(match gpu_backend_only(plan, world, &watchdog) {
            Ok(b) => run_job(plan, world, b, &watchdog, &mut reporter),
            Err(e) => fail_job(world, reporter.as_mut(), e),
        })
    });
    codes
        .into_iter()
        .map(|c| c.unwrap_or_else(|e| e.exit_code().code()))
        .max()
        .unwrap_or(0)
}

/// The correctness check runs in parallel on host cores; the ranks of a host share them, and a rank
/// that spun up one thread per core would take them from its neighbours' MPI progress.
#[cfg(feature = "mpi")]
fn share_cores(ranks_on_host: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / ranks_on_host.max(1)).max(1);
    // Fails only if a pool already exists, which then stays as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// A panic on any rank is a bug: say where it happened and end the whole job instead of hanging it
/// in MPI_Finalize.
fn install_panic_hook(rank: usize, host: String, abort: fn(i32) -> !) {
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
fn fail_job(world: &dyn World, reporter: Option<&mut Reporter>, error: Error) -> i32 {
    let code = error.exit_code().code();
    let everyone_knows = matches!(error, Error::Usage(_));
    if !everyone_knows || world.rank() == 0 {
        eprintln!("collbench: {error}");
    }
    match reporter {
        Some(r) => r.fail(&error, world.rank()),
        // Another rank's document: marked on disk where this rank can see it, before the job ends. Rank 0
        // of a subcommand without a reporter marks its own, a usage error too.
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

fn run_job(
    plan: &Plan,
    world: &dyn World,
    backend: (Box<dyn Backend + '_>, String),
    watchdog: &Watchdog,
    reporter: &mut Option<Reporter>,
) -> i32 {
    let (mut backend, reason) = backend;
    match job::sweep(plan, world, backend.as_mut(), &reason, watchdog, reporter) {
        Ok(code) => code,
        Err(e) => fail_job(world, reporter.as_mut(), e),
    }
}
