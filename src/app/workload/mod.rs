//! `collbench workload`: the command from argv to exit code. Every rank derives the same layouts and
//! message list from the model; the engine measures each distinct message once on its layout's groups
//! (every group at once; a pipeline's stage boundaries as directed point-to-point on the whole job), with
//! each rank's GPU energy counter read around the timed loops; rank 0 keeps the document, writes it
//! after every message, judges each layout's fit against the GPUs' memory, ranks and prints.

// Without MPI only the refusal is built; the rest is the MPI path.
#![cfg_attr(not(feature = "mpi"), allow(dead_code, unused_imports))]

use super::document;
use super::launch::fail_job;
use crate::backend::{Backend, Comm, Exchange, OpDesc};
pub use crate::cli::workload::WorkloadArgs;
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::engine::Engine;
use crate::error::{Error, ExitCode, Result};
use crate::layout::{GroupSpec, Layout};
use crate::report::document::DocumentHeader;
use crate::size::HumanSize;
use crate::testing::TestSwitches;
use crate::watchdog::Watchdog;
use crate::workload::document::{LayoutEntry, MeasuredMessage, WorkloadDocument, KIND};
use crate::workload::messages::{
    LayoutChoice, Load, MessageKey, Phase, PhaseKind, COUNTED, NOT_COUNTED,
};
use crate::workload::ranking::Candidate;
use crate::workload::{candidates, fit, ranking, render, routing};
use crate::world::{all_gather_value, World};
use std::io::Write;
use std::sync::Arc;

mod plan;
use plan::{router_note, validate, WorkloadPlan};

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
        let steps = phase_candidates(plan, &layouts, hosts.len())?;
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
        candidates::Asked {
            tp: plan.tp.as_deref(),
            ep: plan.ep.as_deref(),
            pp: plan.pp.as_deref(),
        },
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
    /// Every phase's candidates: each layout's replicas, tokens, messages and (unjudged) fit.
    steps: PhaseTable,
}

type PhaseTable = Vec<(Phase, Vec<Candidate>)>;

/// The candidates of every phase on a job of `ranks` ranks; a job load a layout's replicas cannot share
/// is refused here, on every rank alike, before anything is measured.
fn phase_candidates(
    plan: &WorkloadPlan,
    layouts: &[LayoutChoice],
    ranks: usize,
) -> Result<PhaseTable> {
    plan.phases
        .iter()
        .map(|&phase| {
            let flag = match (phase.load, phase.kind) {
                (Load::PerReplica, _) => "",
                (Load::PerJob, PhaseKind::Decode) => "--job-batch ",
                (Load::PerJob, PhaseKind::Prefill) => "--job-prefill ",
            };
            ranking::candidates(
                &plan.model,
                phase,
                layouts,
                ranks,
                &plan.options,
                plan.context,
                None,
            )
            .map(|c| (phase, c))
            .map_err(|e| Error::usage(format!("{flag}{}: {e}", phase.tokens)))
        })
        .collect()
}

/// Where a message is measured: on one of the layouts' communicator sets (every group at once), or,
/// for a pipeline's stage boundaries, point-to-point on the whole job judged per replica.
enum On {
    Groups(usize),
    Replicas(Layout),
}

/// A distinct message ready to measure: what the engine is asked, and where.
struct Planned {
    key: MessageKey,
    desc: OpDesc,
    on: On,
}

impl Job<'_> {
    /// Every distinct message of every phase and layout, in first-use order.
    fn distinct_messages(&self) -> Vec<MessageKey> {
        let mut keys: Vec<MessageKey> = Vec::new();
        for s in self
            .steps
            .iter()
            .flat_map(|(_, c)| c)
            .flat_map(|c| &c.messages)
        {
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
        // One communicator set per group size: TPk and EPk run on the same blocks of k ranks. Stage
        // boundaries run on the whole job's.
        let mut sizes: Vec<usize> = keys
            .iter()
            .filter(|k| k.boundary.is_none())
            .map(|k| k.group_size)
            .collect();
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
        // The memory the fit is judged against: each host's first rank reads its GPUs.
        let gpu_memory = if plan.model.architecture.is_none() {
            None
        } else if plan.args.gpu_memory.is_some() || backend.name() == "mpi" {
            Some(fit::gpu_memory(
                &[],
                &[],
                backend.name(),
                plan.args.gpu_memory,
            ))
        } else {
            self.watchdog
                .arm(|| "reading each host's GPUs for their memory".into());
            let nodes = super::topology::gather_nodes(self.world)?;
            self.watchdog.disarm();
            Some(fit::gpu_memory(
                &nodes,
                &super::topology::placements(&ranks),
                backend.name(),
                None,
            ))
        };
        self.watchdog
            .arm(|| "opening each rank's GPU telemetry".into());
        let (mut telemetry, telemetry_header) = crate::telemetry::Telemetry::start(
            self.world,
            &backend.device(),
            !plan.args.no_telemetry,
        )?;
        self.watchdog.disarm();
        if let Some(d) = doc.as_mut() {
            document::backend_opened(&mut d.header, backend, reason, self.world, ranks);
            d.layouts = self.layout_entries(&layouts, &layout_of);
            d.messages = measured_messages(&planned);
            d.notes = notes;
            d.gpu_memory = gpu_memory;
            d.notes
                .extend(telemetry_header.as_ref().and_then(|t| t.energy_note()));
            d.telemetry = telemetry_header;
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
        .with_switches(switches.clone())
        .observed_by(&mut telemetry);
        let mut measured = Vec::with_capacity(planned.len());
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
            let m = match &p.on {
                On::Groups(l) => engine.measure_on(&p.desc, &layouts[*l])?,
                On::Replicas(replicas) => engine.measure_on(&p.desc, replicas)?,
            };
            measured.push(ranking::Measured {
                index: i,
                time_us: m.time_us,
                joules: m.energy.as_ref().map(|e| e.joules_per_op),
            });
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
        let gpu_bytes = d.gpu_memory.as_ref().and_then(|g| g.bytes);
        d.ranking = self
            .steps
            .iter()
            .map(|(phase, candidates)| {
                let mut judged = candidates.clone();
                for c in &mut judged {
                    if let Some(f) = c.fit.as_mut() {
                        f.fits = gpu_bytes.map(|m| f.needs_bytes <= m);
                    }
                }
                ranking::rank(*phase, judged, |key| {
                    let i = keys.iter().position(|k| k == key).unwrap_or(0);
                    measured[i]
                })
            })
            .collect();
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
                // A group is a replica: TP1 and EP1 every rank alone, TPk x PPm its k x m ranks.
                groups: if choice.size < 2 || choice.stages > 1 {
                    replicas(choice, &self.hosts, self.world.rank())
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
            let (dtype, note) = measured_dtype(backend, key.collective, model.dtype, key.bytes);
            if let Some(n) = note.filter(|n| !notes.contains(n)) {
                notes.push(n);
            }
            if let Some(b) = key.boundary {
                let me = self.world.rank();
                let (to, from) = b.partners(me);
                let desc = OpDesc {
                    collective: Collective::SendRecv,
                    dtype,
                    op: None,
                    root: None,
                    shape: Collective::SendRecv.shape(key.bytes, dtype.size(), self.world.size()),
                    in_place: false,
                    shift_bytes: 0,
                    comm: Comm::whole(me, self.world.size()),
                    counts: None,
                    peer: Exchange::Directed { to, from },
                };
                let on = On::Replicas(replicas(
                    LayoutChoice::tp_pp(b.tp, b.stages),
                    &self.hosts,
                    me,
                )?);
                planned.push(Planned { key, desc, on });
                continue;
            }
            let layout = layout_of(key.group_size);
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
            planned.push(Planned {
                key,
                desc,
                on: On::Groups(layout),
            });
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
        fit_counted: fit::COUNTED.map(String::from).to_vec(),
        fit_not_counted: fit::NOT_COUNTED.map(String::from).to_vec(),
        notes: Vec::new(),
        context_tokens: plan.context,
        gpu_memory: None,
        telemetry: None,
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
            measured_as: match (p.key.route, p.key.boundary) {
                (Some(r), _) => format!("all_to_allv, MoE router {}", r.half.name()),
                (None, Some(b)) => format!(
                    "sendrecv, pipeline stage boundaries of TP{}xPP{}: each rank to the rank {} on, every boundary at once",
                    b.tp, b.stages, b.tp
                ),
                (None, None) => p.key.collective.name().into(),
            },
            imbalance: p.desc.counts.as_ref().map(|m| m.imbalance()),
            measurement: None,
        })
        .collect()
}

/// The replicas of `choice` on this job as groups (each replica's ranks), for their figures.
fn replicas(choice: LayoutChoice, hosts: &[String], rank: usize) -> Result<Layout> {
    Layout::resolve(GroupSpec::Blocks(choice.replica_ranks()), hosts, rank)
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
