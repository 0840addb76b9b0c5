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
    let plan = match Plan::from_args(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("collbench: error: {e}");
            return e.exit_code().code();
        }
    };
    with_world(&plan, &argv)
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
    let backend = match create_backend(plan, &world) {
        Ok(b) => b,
        Err(e) => return fail_job(&world, None, e),
    };
    run_job(plan, argv, &world, backend, &watchdog)
}

#[cfg(not(feature = "mpi"))]
fn with_world(plan: &Plan, argv: &[String]) -> i32 {
    let world = crate::world::solo::SoloWorld::new();
    install_panic_hook(0, world.host().to_string(), |code| std::process::exit(code));
    let watchdog = Watchdog::start(plan.timeout_s, 0, world.host().to_string(), |m| {
        eprintln!("{m}");
        std::process::exit(ExitCode::Timeout.code())
    });
    let backend = match create_backend(plan, &world) {
        Ok(b) => b,
        Err(e) => return fail_job(&world, None, e),
    };
    run_job(plan, argv, &world, backend, &watchdog)
}

/// A panic on any rank is a bug: say where it happened and end the whole job instead of hanging it
/// in MPI_Finalize.
fn install_panic_hook(rank: usize, host: String, abort: fn(i32) -> !) {
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("collbench: internal error on rank {rank} ({host}): {info}; aborting the job");
        abort(ExitCode::Internal.code());
    }));
}

#[cfg(feature = "mpi")]
fn create_backend<'w>(
    plan: &Plan,
    world: &'w crate::world::MpiWorld,
) -> Result<(Box<dyn Backend + 'w>, String)> {
    match plan.backend {
        BackendChoice::Mpi => Ok((
            Box::new(crate::backend::mpi::MpiBackend::new(world)),
            "requested".into(),
        )),
        BackendChoice::Auto => Ok((
            Box::new(crate::backend::mpi::MpiBackend::new(world)),
            "auto: no GPU backend found, using MPI on host memory".into(),
        )),
        BackendChoice::Nccl | BackendChoice::Rccl => Err(Error::Unsupported(format!(
            "--backend {:?}: not available in this build",
            plan.backend
        ))),
    }
}

#[cfg(not(feature = "mpi"))]
fn create_backend<'w>(
    plan: &Plan,
    _world: &'w dyn World,
) -> Result<(Box<dyn Backend + 'w>, String)> {
    Err(Error::Unsupported(format!(
        "--backend {:?}: this collbench was built without MPI and no GPU backend is available",
        plan.backend
    )))
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
