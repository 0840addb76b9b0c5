//! One benchmark run from argv to exit code: plan, world, backend, memory cap, sweep, reports, and the
//! rule that a failure on any rank ends the whole job with its exit code.

use crate::backend::Backend;
use crate::cli::RunArgs;
use crate::engine::{buffer_bytes, combinations, Engine, RowSink};
use crate::error::{Error, ExitCode, Result};
use crate::plan::{BackendChoice, Plan};
use crate::report::model::{
    BackendReport, MemoryCap, PlanReport, RankInfo, Row, RunDocument, RunStatus, SCHEMA_VERSION,
};
use crate::report::{header, json, summary, table};
use crate::size::HumanSize;
use crate::testing::TestSwitches;
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, Combine, World};
use std::io::Write;

/// Room left for the check's host pieces and the library's own allocations.
const HEADROOM_BYTES: u64 = 256 << 20;

/// Rank 0's reporters: the terminal table and the JSON file, fed row by row.
struct Reporter {
    doc: RunDocument,
    json: Option<json::JsonWriter>,
    last_title: Option<String>,
}

impl Reporter {
    fn save(&self) -> Result<()> {
        self.json.as_ref().map_or(Ok(()), |j| j.write(&self.doc))
    }

    fn fail(&mut self, error: &Error) {
        self.doc.status = RunStatus::Failed;
        self.doc.error = Some(error.to_string());
        // The measured rows are already on disk; this only records why the run stopped.
        let _ = self.save();
    }
}

impl RowSink for Reporter {
    fn row(&mut self, row: &Row) -> Result<()> {
        let title = table::collective_title(row);
        let mut out = String::new();
        if self.last_title.as_deref() != Some(&title) {
            out.push_str(&title);
            out.push_str(&table::heading());
            self.last_title = Some(title);
        }
        out.push_str(&table::line(row));
        print!("{out}");
        let _ = std::io::stdout().flush();
        self.doc.rows.push(row.clone());
        self.save()
    }
}

/// Parses, validates and runs; returns the process exit code. Usage errors end here, before MPI starts.
pub fn main_with_args(argv: Vec<String>) -> i32 {
    use clap::Parser;
    let args = match RunArgs::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let plan = match Plan::from_args(&args).and_then(|p| check_launch(&p).map(|_| p)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("collbench: error: {e}");
            return e.exit_code().code();
        }
    };
    if plan.gpus_per_thread * plan.threads > 1 {
        with_threads(&plan, &argv)
    } else {
        with_world(&plan, &argv)
    }
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

#[cfg(feature = "mpi")]
fn with_world(plan: &Plan, argv: &[String]) -> i32 {
    let world = match crate::world::MpiWorld::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("collbench: cannot start MPI: {e}");
            return e.exit_code().code();
        }
    };
    install_panic_hook(
        world.rank(),
        world.host().to_string(),
        crate::world::mpi::abort_job,
    );
    let watchdog = Watchdog::start(
        plan.timeout_s,
        world.rank(),
        world.host().to_string(),
        |m| {
            eprintln!("{m}");
            crate::world::mpi::abort_job(ExitCode::Timeout.code())
        },
    );
    let backend = choose_backend(plan, &world, &watchdog).and_then(|(choice, reason)| {
        let backend: Box<dyn Backend + '_> =
            match create_gpu_backend(choice, plan, &world, &watchdog)? {
                Some(gpu) => gpu,
                None => Box::new(crate::backend::mpi::MpiBackend::new(&world)),
            };
        Ok((backend, reason))
    });
    match backend {
        Ok(b) => run_job(plan, argv, &world, b, &watchdog),
        Err(e) => fail_job(&world, None, e),
    }
}

#[cfg(not(feature = "mpi"))]
fn with_world(plan: &Plan, argv: &[String]) -> i32 {
    let world = crate::world::solo::SoloWorld::new();
    install_panic_hook(0, world.host().to_string(), |code| std::process::exit(code));
    let watchdog = Watchdog::start(plan.timeout_s, 0, world.host().to_string(), exit_on_timeout);
    match gpu_backend_only(plan, &world, &watchdog) {
        Ok(b) => run_job(plan, argv, &world, b, &watchdog),
        Err(e) => fail_job(&world, None, e),
    }
}

fn exit_on_timeout(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(ExitCode::Timeout.code())
}

/// `-g N` (and `-t`): one process drives N GPUs, a thread per GPU, each a rank of a thread world.
fn with_threads(plan: &Plan, argv: &[String]) -> i32 {
    let size = plan.gpus_per_thread * plan.threads;
    let host = crate::world::host_name();
    install_panic_hook(0, host.clone(), |code| std::process::exit(code));
    let codes = crate::world::threads::run_threads(size, |world| {
        let watchdog = Watchdog::start(plan.timeout_s, world.rank(), host.clone(), exit_on_timeout);
        Ok(match gpu_backend_only(plan, world, &watchdog) {
            Ok(b) => run_job(plan, argv, world, b, &watchdog),
            Err(e) => fail_job(world, None, e),
        })
    });
    codes
        .into_iter()
        .map(|c| c.unwrap_or_else(|e| e.exit_code().code()))
        .max()
        .unwrap_or(0)
}

/// A panic on any rank is a bug: say where it happened and end the whole job instead of hanging it
/// in MPI_Finalize.
fn install_panic_hook(rank: usize, host: String, abort: fn(i32) -> !) {
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("collbench: internal error on rank {rank} ({host}): {info}; aborting the job");
        abort(ExitCode::Internal.code());
    }));
}

/// The backend the plan asks for (auto: what this machine has), the same on every rank, with the reason
/// it was chosen.
fn choose_backend(
    plan: &Plan,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<(BackendChoice, String)> {
    let (choice, reason) = match plan.backend {
        BackendChoice::Auto => crate::backend::select::probe_auto(plan),
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
fn create_gpu_backend(
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
    let backend = crate::backend::gpu::create_gpu_backend(vendor, plan, world)?;
    watchdog.disarm();
    Ok(Some(backend))
}

/// Where no MPI runs (threads, or a build without MPI) only a GPU backend can carry the collectives.
fn gpu_backend_only(
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

/// Reports a fatal error on this rank and ends the job: every rank stops, not just this one.
fn fail_job(world: &dyn World, reporter: Option<&mut Reporter>, error: Error) -> i32 {
    let code = error.exit_code().code();
    eprintln!("collbench: {error}");
    if let Some(r) = reporter {
        r.fail(&error);
    }
    let _ = std::io::stdout().flush();
    if world.size() > 1 {
        world.abort(code);
    }
    code
}

fn run_job(
    plan: &Plan,
    argv: &[String],
    world: &dyn World,
    backend: (Box<dyn Backend + '_>, String),
    watchdog: &Watchdog,
) -> i32 {
    let (mut backend, reason) = backend;
    let mut reporter = None;
    match sweep(
        plan,
        argv,
        world,
        backend.as_mut(),
        &reason,
        watchdog,
        &mut reporter,
    ) {
        Ok(code) => code,
        Err(e) => fail_job(world, reporter.as_mut(), e),
    }
}

fn sweep(
    plan: &Plan,
    argv: &[String],
    world: &dyn World,
    backend: &mut dyn Backend,
    reason: &str,
    watchdog: &Watchdog,
    reporter: &mut Option<Reporter>,
) -> Result<i32> {
    let n = world.size();
    let rank = world.rank();
    let (combos, mut notes) = combinations(plan, backend)?;

    // The largest size every rank can hold.
    watchdog.arm(|| "gathering free memory from every rank".into());
    let mut free = [backend.free_memory()? as f64];
    world.all_reduce_f64(&mut free, Combine::Min)?;
    let usable = (free[0] as u64).saturating_sub(HEADROOM_BYTES);
    let requested = plan.sizes(plan.max_bytes);
    let sizes: Vec<u64> = requested
        .iter()
        .copied()
        .filter(|&s| 2 * buffer_bytes(&combos, s, n) <= usable)
        .collect();
    let memory_cap = (sizes.len() < requested.len()).then(|| {
        let capped = sizes.last().copied().unwrap_or(0);
        MemoryCap {
            requested_max_bytes: plan.max_bytes,
            capped_max_bytes: capped,
            reason: format!(
                "the largest size needs two buffers of {} bytes per rank, but the rank with the least has {} bytes free ({} on the {} backend, less {} of headroom)",
                buffer_bytes(&combos, plan.max_bytes, n),
                free[0] as u64,
                if backend.name() == "mpi" { "host memory shared by the ranks of a host" } else { "device memory" },
                backend.name(),
                HumanSize(HEADROOM_BYTES)
            ),
        }
    });
    if let Some(cap) = &memory_cap {
        notes.push(format!(
            "-e capped from {} to {}: {}",
            HumanSize(cap.requested_max_bytes),
            HumanSize(cap.capped_max_bytes),
            cap.reason
        ));
    }
    if sizes.is_empty() {
        return Err(Error::Unsupported(format!(
            "not even -b {} fits in the memory free on every rank: lower -b",
            HumanSize(plan.min_bytes)
        )));
    }
    let largest = *sizes.last().unwrap_or(&0);
    backend.allocate(buffer_bytes(&combos, largest, n))?;

    let device = backend.device();
    let me = RankInfo {
        rank,
        host: world.host().to_string(),
        pid: std::process::id(),
        local_rank: world.local_rank(),
        device,
    };
    let ranks: Vec<RankInfo> = all_gather_value(world, &me)?;
    watchdog.disarm();

    if rank == 0 {
        let mut libraries = backend.versions();
        if let Some(v) = world.library_version() {
            if !libraries.iter().any(|l| l.library == "MPI") {
                libraries.push(crate::backend::LibraryVersion {
                    library: "MPI".into(),
                    version: v,
                });
            }
        }
        let doc = RunDocument {
            schema_version: SCHEMA_VERSION,
            collbench_version: env!("CARGO_PKG_VERSION").to_string(),
            command_line: argv.to_vec(),
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            status: RunStatus::Running,
            error: None,
            environment: json::relevant_environment(),
            backend: BackendReport {
                name: backend.name().to_string(),
                reason: reason.to_string(),
                libraries,
            },
            plan: PlanReport {
                requested: serde_json::to_value(plan).unwrap_or(serde_json::Value::Null),
                sizes: sizes.clone(),
                memory_cap,
            },
            ranks,
            notes,
            rows: Vec::new(),
            summary: None,
        };
        if !plan.quiet {
            print!("{}", header::render(&doc, plan));
        }
        let r = Reporter {
            doc,
            json: plan.json.as_deref().map(json::JsonWriter::new),
            last_title: None,
        };
        r.save()?;
        *reporter = Some(r);
    }

    let mut sink = NullSink;
    let mut engine = Engine {
        plan,
        world,
        backend,
        watchdog,
        switches: TestSwitches::from_env(),
    };
    match reporter.as_mut() {
        Some(r) => engine.run(&combos, &sizes, r)?,
        None => engine.run(&combos, &sizes, &mut sink)?,
    }

    // Every rank agrees on the outcome through rank 0's summary.
    let mut code = [0.0];
    if let Some(r) = reporter.as_mut() {
        let mut s = summary::summarise(&r.doc.rows, plan.check_iters > 0);
        let exit = if s.check_passed == Some(false) {
            ExitCode::CheckFailed
        } else {
            ExitCode::Success
        };
        s.exit_code = exit.code();
        print!("{}", summary::footer(&s));
        r.doc.summary = Some(s);
        r.doc.status = RunStatus::Complete;
        r.save()?;
        code[0] = exit.code() as f64;
    }
    world.all_reduce_f64(&mut code, Combine::Max)?;
    Ok(code[0] as i32)
}

struct NullSink;

impl RowSink for NullSink {
    fn row(&mut self, _row: &Row) -> Result<()> {
        Ok(())
    }
}
