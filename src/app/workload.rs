//! `collbench workload`: the command from argv to exit code. Every rank derives the same layouts and
//! message list from the model; the engine measures each distinct message once on its layout's groups
//! (every group at once); rank 0 keeps the document, writes it after every message, ranks and prints.

// Without MPI only the refusal is built; the rest is the MPI path.
#![cfg_attr(not(feature = "mpi"), allow(dead_code, unused_imports))]

use super::document;
use super::launch::fail_job;
use crate::backend::{Allocator, Backend, BackendRequest, OpDesc};
pub use crate::cli::workload::WorkloadArgs;
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::engine::{Engine, EngineSettings};
use crate::error::{Error, ExitCode, Result};
use crate::layout::{GroupSpec, Layout};
use crate::report::model::DocumentHeader;
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
use std::io::Write;
use std::sync::Arc;

/// Everything the command needs that does not depend on the job, validated before MPI starts.
struct WorkloadPlan {
    args: WorkloadArgs,
    request: BackendRequest,
    timeout_s: Option<f64>,
    settings: EngineSettings,
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
    let timeout_s = crate::plan::timeout(args.timeout)?;
    let request = BackendRequest {
        choice: args.library.backend_choice()?,
        gpu: crate::backend::GpuOptions {
            nccl_lib: args.library.nccl_lib.clone(),
            rccl_lib: args.library.rccl_lib.clone(),
            timeout_s,
            alloc: Allocator::Device,
            memory: crate::backend::MemoryKind::Coarse,
        },
    };
    // Sizes come from the model; the timing is a sweep's, with its default fewest auto iterations.
    let settings = EngineSettings {
        iters: crate::plan::iterations(
            &args.iters,
            args.ci_target,
            crate::plan::DEFAULT_MIN_ITERS,
            args.size_time_cap,
        )?,
        warmup_iters: args.warmup_iters,
        agg_iters: 1,
        check_iters: args.check,
        blocking: false,
        graph_replays: 0,
        samples: None,
        average: crate::metrics::Average::Mean,
        seed: 0,
        rccl_tests: Default::default(),
    };
    Ok(WorkloadPlan {
        args,
        request,
        timeout_s,
        settings,
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

/// `collbench workload ...` from its parsed arguments; returns the exit code.
pub fn main(args: WorkloadArgs, argv: &[String]) -> i32 {
    match validate(args) {
        Ok(p) => with_world(&p, argv),
        Err(e) => super::launch::usage_error(&e),
    }
}

#[cfg(not(feature = "mpi"))]
fn with_world(_plan: &WorkloadPlan, _argv: &[String]) -> i32 {
    eprintln!("collbench: error: workload needs MPI ranks: this collbench was built without MPI; rebuild with default features and run under mpirun");
    ExitCode::Unsupported.code()
}

#[cfg(feature = "mpi")]
fn with_world(plan: &WorkloadPlan, argv: &[String]) -> i32 {
    let (world, watchdog) =
        match super::launch::start_mpi(plan.timeout_s, super::launch::end_job_on_timeout) {
            Ok(started) => started,
            Err(code) => return code,
        };
    let doc = match document::start(
        &world,
        plan.args.json.as_deref(),
        |run_id| document::header(KIND, argv, &plan.args.library.backend, run_id),
        |header| initial_document(plan, header),
    ) {
        Ok(doc) => doc,
        Err(code) => return code,
    };
    // The layouts depend only on the job's shape: refused on every rank alike, before any backend.
    let result = job_layouts(plan, &world, &watchdog).and_then(|(hosts, layouts)| {
        let (mut backend, reason) =
            super::backend_choice::backend_under_mpi(&plan.request, &world, &watchdog)?;
        let steps = step_table(plan, &layouts)?;
        let job = Job {
            plan,
            world: &world,
            watchdog: &watchdog,
            hosts,
            choices: layouts,
            steps,
        };
        job.run(doc, backend.as_mut(), &reason)
    });
    match result {
        Ok(code) => code,
        Err(e) => fail_job(&world, None, e),
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

    fn run(
        &self,
        mut doc: Option<WorkloadDocument>,
        backend: &mut dyn Backend,
        reason: &str,
    ) -> Result<i32> {
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

        let ranks = document::gather_ranks(self.world, backend, self.watchdog)?;
        if let Some(d) = doc.as_mut() {
            document::backend_opened(&mut d.header, backend, reason, self.world, ranks);
            d.layouts = self.layout_entries(&layouts, &layout_of);
            d.messages = measured_messages(&planned);
            d.notes = notes;
            super::record::save(d)?;
            print!("{}", render::header(d, distinct(&self.hosts).len()));
            let _ = std::io::stdout().flush();
        }

        let switches = TestSwitches::from_env();
        let mut engine = Engine::new(
            plan.settings.clone(),
            self.world,
            backend,
            self.watchdog,
            buffer,
        )
        .with_switches(switches.clone());
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
            switches.before_row(me, i);
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
        d.header.life.complete(code.code());
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
                    let matrix = routing::matrix(
                        model,
                        &route,
                        key.group_size,
                        self.plan.options.skew,
                        self.plan.options.seed,
                    )
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
                    peer: crate::backend::Exchange::Ring,
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

/// The document as rank 0 writes it before the backend opens: the model, its phases and what the step
/// model counts; the layouts' groups and the messages come once the job is known.
fn initial_document(plan: &WorkloadPlan, header: DocumentHeader) -> WorkloadDocument {
    WorkloadDocument {
        header,
        model: plan.model.clone(),
        counted: COUNTED.map(String::from).to_vec(),
        not_counted: NOT_COUNTED.map(String::from).to_vec(),
        notes: Vec::new(),
        phases: plan.phases.clone(),
        layouts: Vec::new(),
        messages: Vec::new(),
        in_flight: None,
        ranking: Vec::new(),
        step_options: plan.options,
    }
}

/// Every message still to measure, as the document lists it.
fn measured_messages(planned: &[Planned]) -> Vec<MeasuredMessage> {
    planned
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
        .collect()
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
