//! `collbench workload`: the command from argv to exit code. Every rank derives the same layouts and
//! message list from the model; the engine measures each distinct message once on its layout's groups
//! (every group at once); rank 0 keeps the document, writes it after every message, ranks and prints.

// Without MPI only the refusal is built; the rest is the MPI path.
#![cfg_attr(not(feature = "mpi"), allow(dead_code, unused_imports))]

use crate::backend::{Backend, OpDesc};
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::engine::Engine;
use crate::error::{Error, ExitCode, Result};
use crate::layout::{GroupSpec, Layout};
use crate::plan::Plan;
use crate::report::model::{BackendReport, RankInfo, RunLife};
use crate::size::{parse_size, HumanSize};
use crate::testing::TestSwitches;
use crate::watchdog::Watchdog;
use crate::workload::document::{LayoutEntry, MeasuredMessage, WorkloadDocument, KIND};
use crate::workload::messages::{
    step_messages, Half, LayoutChoice, MessageKey, Phase, PhaseKind, StepMessage, StepOptions,
    COUNTED, NOT_COUNTED,
};
use crate::workload::model::{self, ModelSpec};
use crate::workload::{candidates, ranking, render, routing};
use crate::world::{all_gather_value, World};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Measure the messages one step of a model moves, on candidate TP and EP layouts, and rank the
/// layouts by communication time per step.
///
/// MODEL is a preset (llama-3.1-8b, llama-3.1-70b, llama-3.1-405b, mixtral-8x7b, qwen3-235b-a22b,
/// deepseek-v3) or the path of a Hugging Face config.json. Each layout runs as concurrent groups of
/// consecutive ranks (a TP4 layout on 8 ranks is --groups 4). Counted: TP all_reduce (2 per layer),
/// EP dispatch and combine (1 each per MoE layer), DP-attention all_gather/reduce_scatter with
/// --dp-attention. Not counted: overlap with compute, pipeline bubbles (docs/WORKLOAD.md).
#[derive(Debug, Parser)]
#[command(
    name = "collbench workload",
    after_help = "Examples:\n  mpirun -np 8 collbench workload llama-3.1-70b --batch 1,64 --prefill 8K\n  mpirun -np 16 collbench workload deepseek-v3 --tp 8 --ep 8,16 -J ds.json\n  mpirun -np 8 collbench workload ./config.json --tp 2,4,8 --prefill none\n\nExit codes: 0 done, 2 usage error, 3 library error, 4 timeout (-T), 5 unsupported, 7 a message failed its correctness check, 10 a file could not be written."
)]
pub struct WorkloadArgs {
    /// A preset name or the path of a Hugging Face config.json.
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Decode phases: tokens per step per model replica, comma-separated; none to skip decode.
    #[arg(long, default_value = "1,8,64,256")]
    pub batch: String,
    /// Prefill phases: tokens per chunk per model replica (K = 1024), comma-separated; none to skip.
    #[arg(long, default_value = "2K,8K,16K")]
    pub prefill: String,
    /// Tensor-parallel group sizes to measure (default: every size that divides the job and fits the
    /// hosts).
    #[arg(long, value_name = "SIZES")]
    pub tp: Option<String>,
    /// Expert-parallel group sizes to measure, MoE models only (default: every size that divides the
    /// job, fits the hosts and spreads the experts evenly).
    #[arg(long, value_name = "SIZES")]
    pub ep: Option<String>,
    /// TP layouts run attention data-parallel: an all_gather before each MLP and a reduce_scatter after
    /// it replace the two all_reduce.
    #[arg(long = "dp-attention", action = clap::ArgAction::SetTrue)]
    pub dp_attention: bool,
    /// EP routing: the MoE router's hot-rank ratio, rank 0's experts chosen this many times as often as
    /// any other (1: uniform; DeepEP's "unbalanced ratio").
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,
    /// EP routing: the router's seed (where the choices that do not divide evenly go).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Timed iterations per message, or auto (iterate to --ci-target precision).
    #[arg(short = 'n', long = "iters", default_value = "auto")]
    pub iters: String,
    /// With -n auto: the 95 % confidence half-width to reach, as a percentage of the mean.
    #[arg(long = "ci-target", value_name = "PERCENT", default_value_t = 1.0)]
    pub ci_target: f64,
    /// With -n auto: seconds of timed iterations after which a message stops, reached or not.
    #[arg(long = "size-time-cap", value_name = "SECONDS", default_value_t = 2.0)]
    pub size_time_cap: f64,
    /// Warm-up iterations per message.
    #[arg(short = 'w', long = "warmup-iters", default_value_t = 5)]
    pub warmup_iters: u64,
    /// Correctness-check iterations per message; 0 turns the check off.
    #[arg(short = 'c', long = "check", default_value_t = 1)]
    pub check: u64,
    /// Write the results as one JSON document, rewritten after every message.
    #[arg(short = 'J', long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Communication backend: nccl, rccl, mpi (host memory), or auto.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Seconds before a stuck message or barrier ends the job; 0 waits forever.
    #[arg(short = 'T', long = "timeout", default_value_t = 0.0)]
    pub timeout: f64,
    /// Path of libnccl.so.2 to load.
    #[arg(long = "nccl-lib", value_name = "PATH")]
    pub nccl_lib: Option<PathBuf>,
    /// Path of librccl.so.1 to load.
    #[arg(long = "rccl-lib", value_name = "PATH")]
    pub rccl_lib: Option<PathBuf>,
}

/// Everything the command needs that does not depend on the job, validated before MPI starts.
struct WorkloadPlan {
    args: WorkloadArgs,
    run: Plan,
    model: ModelSpec,
    phases: Vec<Phase>,
    tp: Option<Vec<usize>>,
    ep: Option<Vec<usize>>,
    options: StepOptions,
}

/// How EP traffic is routed, for the notes.
fn half_name(half: Half) -> &'static str {
    match half {
        Half::Dispatch => "dispatch",
        Half::Combine => "combine",
    }
}

fn router_note(options: &StepOptions) -> String {
    format!(
        "EP dispatch and combine are all_to_allv with the MoE router's matrices (skew {}, seed {}): every rank routes ceil(tokens/k) tokens, so a batch smaller than k routes one token on every rank",
        options.skew, options.seed
    )
}

fn validate(args: WorkloadArgs) -> Result<WorkloadPlan> {
    if let Some(path) = &args.json {
        // Every rank refuses a folder alike, before MPI starts.
        crate::report::json::Target::of(path)?;
    }
    let model = model::load(&args.model)?;
    if !(args.skew.is_finite() && args.skew >= 1.0) {
        return Err(Error::usage(format!(
            "--skew {}: give a hot-rank ratio of at least 1 (1 is uniform routing)",
            args.skew
        )));
    }
    let options = StepOptions {
        dp_attention: args.dp_attention,
        skew: args.skew,
        seed: args.seed,
    };
    let mut phases = token_list("--batch", &args.batch, PhaseKind::Decode)?;
    phases.extend(token_list("--prefill", &args.prefill, PhaseKind::Prefill)?);
    if phases.is_empty() {
        return Err(Error::usage(
            "--batch none --prefill none: nothing to measure: give decode batches or prefill chunks",
        ));
    }
    let tp = args
        .tp
        .as_deref()
        .map(|t| candidates::parse_sizes("--tp", t))
        .transpose()?;
    let ep = args
        .ep
        .as_deref()
        .map(|t| candidates::parse_sizes("--ep", t))
        .transpose()?;
    // The engine measures messages from a run plan of the same settings; sizes come from the model.
    let argv: Vec<String> = [
        "collbench workload",
        "all_reduce",
        "-n",
        &args.iters,
        "--ci-target",
        &args.ci_target.to_string(),
        "--size-time-cap",
        &args.size_time_cap.to_string(),
        "-w",
        &args.warmup_iters.to_string(),
        "-c",
        &args.check.to_string(),
        "--backend",
        &args.backend,
        "-T",
        &args.timeout.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let run = super::run_plan(argv, &args.nccl_lib, &args.rccl_lib)?;
    Ok(WorkloadPlan {
        args,
        run,
        model,
        phases,
        tp,
        ep,
        options,
    })
}

/// "1,8,64" or "2K,8K" as token counts; "none" for no phase of this kind.
fn token_list(flag: &str, text: &str, kind: PhaseKind) -> Result<Vec<Phase>> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|t| match parse_size(t) {
            Ok(tokens) if tokens > 0 => Ok(Phase { kind, tokens }),
            Ok(_) => Err(Error::usage(format!(
                "{flag} {text}: 0 tokens: give at least one token per step, or none"
            ))),
            Err(e) => Err(Error::usage(format!(
                "{flag} {text}: {t:?}: {e}: give token counts such as 1,8,64 or 2K,8K"
            ))),
        })
        .collect()
}

/// `collbench workload ...`; argv[0] is the command's name. Returns the exit code.
pub fn workload_main(argv: &[String]) -> i32 {
    let plan = match WorkloadArgs::try_parse_from(argv) {
        Ok(a) => validate(a),
        Err(e) => return super::usage_error_from_clap(e),
    };
    match plan {
        Ok(p) => with_world(&p, argv),
        Err(e) => super::usage_error(&e),
    }
}

#[cfg(not(feature = "mpi"))]
fn with_world(_plan: &WorkloadPlan, _argv: &[String]) -> i32 {
    eprintln!("collbench: error: workload needs MPI ranks: this collbench was built without MPI; rebuild with default features and run under mpirun");
    ExitCode::Unsupported.code()
}

#[cfg(feature = "mpi")]
fn with_world(plan: &WorkloadPlan, argv: &[String]) -> i32 {
    let (world, watchdog) = match super::start_mpi(plan.run.timeout_s, super::end_job_on_timeout) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let run_id = match super::start_document(&world, plan.args.json.as_deref()) {
        Ok(id) => id,
        Err(code) => return code,
    };
    // The layouts depend only on the job's shape: refused on every rank alike, before any backend.
    let result = job_layouts(plan, &world, &watchdog).and_then(|(hosts, layouts)| {
        let (mut backend, reason) =
            super::backend_choice::backend_under_mpi(&plan.run, &world, &watchdog)?;
        let steps = step_table(plan, &layouts)?;
        let job = Job {
            plan,
            argv,
            run_id,
            world: &world,
            watchdog: &watchdog,
            hosts,
            choices: layouts,
            steps,
        };
        job.run(backend.as_mut(), &reason)
    });
    match result {
        Ok(code) => code,
        Err(e) => super::fail_job(&world, None, e),
    }
}

/// Every rank's host, and the layouts this job measures.
fn job_layouts(
    plan: &WorkloadPlan,
    world: &dyn World,
    watchdog: &Watchdog,
) -> Result<(Vec<String>, Vec<LayoutChoice>)> {
    watchdog.arm(|| "gathering host names".into());
    let hosts: Vec<String> = all_gather_value(world, &world.host().to_string())?;
    watchdog.disarm();
    let per_host: Vec<usize> = distinct(&hosts)
        .iter()
        .map(|h| hosts.iter().filter(|x| *x == h).count())
        .collect();
    let ranks_per_host = per_host
        .iter()
        .all(|&c| c == per_host[0])
        .then_some(per_host[0]);
    let layouts = candidates::choose(
        &plan.model,
        hosts.len(),
        ranks_per_host,
        plan.tp.as_deref(),
        plan.ep.as_deref(),
    )?;
    Ok((hosts, layouts))
}

fn distinct(hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hosts {
        if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

struct Job<'a> {
    plan: &'a WorkloadPlan,
    argv: &'a [String],
    /// The run's id, shared by every rank (src/app/record.rs).
    run_id: String,
    world: &'a dyn World,
    watchdog: &'a Watchdog,
    hosts: Vec<String>,
    choices: Vec<LayoutChoice>,
    /// Every (phase, layout)'s messages.
    steps: StepTable,
}

type StepTable = Vec<((Phase, LayoutChoice), Vec<StepMessage>)>;

/// The messages of every phase on every layout.
fn step_table(plan: &WorkloadPlan, layouts: &[LayoutChoice]) -> Result<StepTable> {
    let mut table = Vec::new();
    for &phase in &plan.phases {
        for &layout in layouts {
            let messages = step_messages(&plan.model, phase, layout, &plan.options)
                .map_err(|e| Error::usage(format!("{layout}: {e}")))?;
            table.push(((phase, layout), messages));
        }
    }
    Ok(table)
}

/// A distinct message ready to measure: what the engine is asked, and on which layout.
struct Planned {
    key: MessageKey,
    desc: OpDesc,
    layout: usize,
}

impl Job<'_> {
    fn steps(&self, phase: Phase, layout: LayoutChoice) -> Vec<StepMessage> {
        self.steps
            .iter()
            .find(|(at, _)| *at == (phase, layout))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Every distinct message of every phase and layout, in first-use order.
    fn distinct_messages(&self) -> Vec<MessageKey> {
        let mut keys: Vec<MessageKey> = Vec::new();
        for s in self.steps.iter().flat_map(|(_, m)| m) {
            if !keys.contains(&s.key) {
                keys.push(s.key);
            }
        }
        keys
    }

    fn run(&self, backend: &mut dyn Backend, reason: &str) -> Result<i32> {
        let me = self.world.rank();
        let plan = self.plan;
        let keys = self.distinct_messages();
        // One communicator set per group size: TPk and EPk run on the same blocks of k ranks.
        let mut sizes: Vec<usize> = keys.iter().map(|k| k.group_size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let specs: Vec<GroupSpec> = sizes.iter().map(|&k| GroupSpec::Blocks(k)).collect();
        self.watchdog
            .arm(|| "making each layout's communicators".into());
        let layouts = crate::layout::create(&specs, &self.hosts, self.world, backend)?;
        self.watchdog.disarm();
        let layout_of = |k: usize| sizes.iter().position(|&s| s == k).unwrap_or(0);

        let (planned, notes) = self.plan_messages(&keys, backend, &layouts, &layout_of)?;
        let buffer = planned
            .iter()
            .map(|p| p.desc.shape.buffer_bytes(p.desc.dtype.size()))
            .max()
            .unwrap_or(0)
            .max(16);
        let free = backend.free_memory()?;
        if buffer.saturating_mul(2) > free {
            return Err(Error::Unsupported(format!(
                "the largest message needs two buffers of {} on rank {me} ({}), which has {} free: drop the largest --prefill or --batch",
                HumanSize(buffer),
                self.world.host(),
                HumanSize(free)
            )));
        }
        self.watchdog
            .arm(|| format!("allocating buffers of {}", HumanSize(buffer)));
        backend.allocate(buffer)?;
        self.watchdog.disarm();

        let info = RankInfo {
            rank: me,
            host: self.world.host().to_string(),
            pid: std::process::id(),
            local_rank: self.world.local_rank(),
            device: backend.device(),
        };
        let ranks: Vec<RankInfo> = all_gather_value(self.world, &info)?;
        let mut doc = (me == 0).then(|| {
            let entries = self.layout_entries(&layouts, &layout_of);
            self.new_document(backend, reason, ranks, &planned, notes, entries)
        });
        if let Some(d) = &doc {
            print!("{}", render::header(d, distinct(&self.hosts).len()));
            let _ = std::io::stdout().flush();
        }

        let mut engine = Engine {
            plan: &plan.run,
            world: self.world,
            backend,
            watchdog: self.watchdog,
            switches: TestSwitches::from_env(),
            buffer_bytes: buffer,
            observer: &mut crate::telemetry::NoTelemetry,
        };
        let mut times = Vec::with_capacity(planned.len());
        let mut wrong = 0u64;
        for (i, p) in planned.iter().enumerate() {
            if let Some(d) = doc.as_mut() {
                d.in_flight = Some(format!(
                    "{} {} on groups of {}",
                    p.key.collective,
                    HumanSize(p.desc.shape.size_bytes),
                    p.key.group_size
                ));
                super::record::save(d)?;
            }
            engine.switches.before_row(me, i);
            // A failure ends the job through fail_job, which marks the document on disk: it keeps every
            // message measured so far and names the one in flight.
            let m = engine.measure_on(&p.desc, &layouts[p.layout])?;
            times.push(m.time_us);
            wrong += m.wrong.unwrap_or(0);
            if let Some(d) = doc.as_mut() {
                d.messages[i].measurement = Some(m);
                print!("{}", render::measured(&d.messages[i]));
                let _ = std::io::stdout().flush();
            }
        }
        let Some(mut d) = doc else {
            return Ok(if wrong > 0 {
                ExitCode::CheckFailed.code()
            } else {
                0
            });
        };
        d.ranking = ranking::rank(
            &plan.phases,
            &self.choices,
            |phase, layout| self.steps(phase, layout),
            |key| {
                let i = keys.iter().position(|k| k == key).unwrap_or(0);
                (i, times[i])
            },
        );
        for r in &d.ranking {
            print!("{}", render::ranking(r));
        }
        let code = if wrong > 0 {
            println!("# {wrong} wrong element(s) in the correctness check: these times are not trustworthy");
            ExitCode::CheckFailed
        } else {
            ExitCode::Success
        };
        d.in_flight = None;
        d.life.complete(code.code());
        super::record::save(&mut d)?;
        Ok(code.code())
    }
}

impl Job<'_> {
    /// Each layout with its groups (TP1 and EP1: every rank alone).
    fn layout_entries(
        &self,
        layouts: &[Layout],
        layout_of: &dyn Fn(usize) -> usize,
    ) -> Vec<LayoutEntry> {
        self.choices
            .iter()
            .map(|&choice| LayoutEntry {
                choice,
                name: choice.to_string(),
                groups: if choice.size < 2 {
                    Layout::resolve(GroupSpec::Blocks(1), &self.hosts, self.world.rank())
                        .map(|l| l.groups)
                        .unwrap_or_default()
                } else {
                    layouts[layout_of(choice.size)].groups.clone()
                },
            })
            .collect()
    }

    /// Rank 0's document before the first message: the model, the job, the layouts' groups and every
    /// message still to measure.
    fn new_document(
        &self,
        backend: &dyn Backend,
        reason: &str,
        ranks: Vec<RankInfo>,
        planned: &[Planned],
        notes: Vec<String>,
        layouts: Vec<LayoutEntry>,
    ) -> WorkloadDocument {
        let plan = self.plan;
        WorkloadDocument {
            kind: KIND.into(),
            schema_version: 1,
            collbench_version: env!("CARGO_PKG_VERSION").into(),
            command_line: self.argv.to_vec(),
            started_unix_s: crate::report::model::unix_now_s(),
            life: RunLife::running(&self.run_id),
            backend: BackendReport {
                name: backend.name().into(),
                reason: reason.into(),
                libraries: backend.versions(),
            },
            model: plan.model.clone(),
            ranks,
            counted: COUNTED.map(String::from).to_vec(),
            not_counted: NOT_COUNTED.map(String::from).to_vec(),
            notes,
            phases: plan.phases.clone(),
            layouts,
            messages: planned
                .iter()
                .map(|p| MeasuredMessage {
                    key: p.key,
                    dtype: p.desc.dtype,
                    measured_bytes: p.desc.shape.size_bytes,
                    measured_as: match p.key.route {
                        Some(r) => format!("all_to_allv, MoE router {}", half_name(r.half)),
                        None => p.key.collective.name().into(),
                    },
                    imbalance: p.desc.counts.as_ref().map(|m| m.imbalance()),
                    measurement: None,
                })
                .collect(),
            in_flight: None,
            ranking: Vec::new(),
            step_options: plan.options,
        }
    }

    /// Each distinct message as the engine is asked for it, on its layout's communicator, and the notes
    /// that qualify the figures.
    fn plan_messages(
        &self,
        keys: &[MessageKey],
        backend: &dyn Backend,
        layouts: &[Layout],
        layout_of: &dyn Fn(usize) -> usize,
    ) -> Result<(Vec<Planned>, Vec<String>)> {
        let model = &self.plan.model;
        let mut notes: Vec<String> = Vec::new();
        let mut planned = Vec::new();
        for &key in keys {
            let layout = layout_of(key.group_size);
            let (dtype, note) = measured_dtype(backend, key.collective, model.dtype, key.bytes);
            if let Some(n) = note.filter(|n| !notes.contains(n)) {
                notes.push(n);
            }
            let comm = layouts[layout].comm;
            let desc = match key.route {
                Some(route) => {
                    let matrix = routing::matrix(model, &route, key.group_size, &self.plan.options)
                        .map_err(|e| Error::usage(format!("--ep {}: {e}", key.group_size)))?;
                    OpDesc::all_to_allv(Arc::new(matrix), dtype, comm, false)
                }
                None => OpDesc {
                    collective: key.collective,
                    dtype,
                    op: key.collective.reduces().then_some(ReduceOp::Sum),
                    root: None,
                    shape: key
                        .collective
                        .shape(key.bytes, dtype.size(), key.group_size),
                    in_place: false,
                    shift_bytes: 0,
                    comm,
                    counts: None,
                },
            };
            planned.push(Planned { key, layout, desc });
        }
        if keys.iter().any(|k| k.route.is_some()) {
            notes.push(router_note(&self.plan.options));
        }
        Ok((planned, notes))
    }
}

/// The element type a message is measured in: the model's where the backend can run it, else one of
/// the same bytes it can (the mpi backend has no bf16 reductions), with a note saying so.
fn measured_dtype(
    backend: &dyn Backend,
    collective: Collective,
    wanted: DataType,
    bytes: u64,
) -> (DataType, Option<String>) {
    let op = collective.reduces().then_some(ReduceOp::Sum);
    if backend.unsupported(collective, wanted, op).is_none() {
        return (wanted, None);
    }
    let alternative = [DataType::Float, DataType::Uint8]
        .into_iter()
        .find(|&t| bytes % t.size() as u64 == 0 && backend.unsupported(collective, t, op).is_none())
        .unwrap_or(DataType::Uint8);
    (
        alternative,
        Some(format!(
            "the {} backend cannot run {collective} on {wanted}: measured on {alternative} with the same bytes (the time of moving the bytes, not of reducing {wanted})",
            backend.name()
        )),
    )
}
