//! `collbench pairs`: the command from argv to exit code. Every rank walks the same schedule of rounds;
//! in each, the ranks of a pair exchange with each other and the others wait, and the engine measures
//! the round as it measures any row. Rank 0 keeps the document, writes it after every round, and judges.

// Without MPI only the refusal is built; the rest is the MPI path.
#![cfg_attr(not(feature = "mpi"), allow(dead_code, unused_imports))]

use crate::backend::Backend;
use crate::collective::Collective;
use crate::dtype::DataType;
use crate::engine::Engine;
use crate::error::{Error, ExitCode, Result};
use crate::fleet::gate::{self, GateReport, Rule};
use crate::pairs::model::{self, PairFigure, PairsDocument, Participant};
use crate::pairs::{expect, plot, render, rounds, schedule, verdict};
use crate::plan::Plan;
use crate::report::model::{BackendReport, Measurement, RankInfo, Row, RunLife};
use crate::size::{parse_size, HumanSize};
use crate::testing::TestSwitches;
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// Measure every pair of hosts (or ranks) by bidirectional sendrecv: bandwidth at a large size and
/// latency at a small one, and name the bad host or link.
///
/// Run it under mpirun over the hosts to check. By default the circle method measures disjoint pairs at
/// the same time (n-1 rounds for n hosts), every pair once per repeat.
#[derive(Debug, Parser)]
#[command(
    name = "collbench pairs",
    after_help = "Examples:\n  mpirun -np 16 --map-by ppr:1:node collbench pairs -J pairs.json --plot pairs.svg\n  mpirun -np 64 collbench pairs --by rank --expect 'busbw>=20@4M'\n\nExit codes: 0 done (the verdict is printed and in the JSON), 2 usage error, 3 library error, 4 timeout (-T), 7 an exchange delivered wrong data, 8 a --expect rule failed, 10 a file could not be written."
)]
pub struct PairsArgs {
    /// Pair hosts (the first rank of each host stands for it) or every rank.
    #[arg(long, value_enum, default_value = "host")]
    pub by: By,
    /// With --by host: every GPU (rank) of one host exchanges with the same local rank of the other
    /// host, all at once; the pair's bandwidth is their aggregate.
    #[arg(long = "all-gpus", action = clap::ArgAction::SetTrue)]
    pub all_gpus: bool,
    /// Checked exchanges per round: every rank must receive exactly its peer's data (0: no check).
    #[arg(short = 'c', long = "check", default_value_t = 1)]
    pub check: u64,
    /// Bytes each way of the bandwidth exchange (judge TCP links at 4M or more).
    #[arg(short = 'b', long = "size", default_value = "4M")]
    pub size: String,
    /// Bytes each way of the latency exchange.
    #[arg(long = "latency-size", default_value = "8")]
    pub latency_size: String,
    /// One pair at a time instead of disjoint pairs together.
    #[arg(long = "one-at-a-time", action = clap::ArgAction::SetTrue)]
    pub one_at_a_time: bool,
    /// Measure every pair this many times; a pair is slow only when slow in most of them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Timed iterations per exchange.
    #[arg(short = 'n', long = "iters", default_value_t = 5)]
    pub iters: u64,
    /// Warm-up iterations per exchange.
    #[arg(short = 'w', long = "warmup-iters", default_value_t = 1)]
    pub warmup_iters: u64,
    /// A pair is slow below this many percent under the median pair.
    #[arg(long = "slow-threshold", value_name = "PERCENT", default_value_t = verdict::DEFAULT_THRESHOLD_PERCENT)]
    pub slow_threshold: f64,
    /// A rule every pair must pass, as for a sweep: 'busbw>=20@4M' (GB/s each way at the bandwidth
    /// size), 'time<=50us@-8' (the latency exchange); or on the verdict: 'no-bad-host', 'no-bad-link'.
    /// Repeatable; a failed rule exits 8.
    #[arg(long, value_name = "RULE", action = clap::ArgAction::Append)]
    pub expect: Vec<String>,
    /// Write the results as one JSON document, rewritten after every round.
    #[arg(short = 'J', long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the bandwidth matrix as a heatmap, SVG or PNG by the extension.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    pub plot: Option<PathBuf>,
    /// Communication backend: nccl, rccl, mpi (host memory), or auto.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Seconds before a stuck exchange or barrier ends the job; 0 waits forever.
    #[arg(short = 'T', long = "timeout", default_value_t = 0.0)]
    pub timeout: f64,
    /// Path of libnccl.so.2 to load.
    #[arg(long = "nccl-lib", value_name = "PATH")]
    pub nccl_lib: Option<PathBuf>,
    /// Path of librccl.so.1 to load.
    #[arg(long = "rccl-lib", value_name = "PATH")]
    pub rccl_lib: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Host,
    Rank,
}

/// Everything the command needs, validated before MPI starts.
struct PairsPlan {
    args: PairsArgs,
    run: Plan,
    size: u64,
    latency_size: u64,
    rules: Vec<Rule>,
    verdict_rules: Vec<expect::VerdictRule>,
}

fn validate(args: PairsArgs) -> Result<PairsPlan> {
    if let Some(path) = &args.json {
        // Every rank refuses a folder alike, before MPI starts.
        crate::report::json::Target::of(path)?;
    }
    let size = parse_size(&args.size).map_err(|e| Error::usage(format!("-b/--size: {e}")))?;
    let latency_size =
        parse_size(&args.latency_size).map_err(|e| Error::usage(format!("--latency-size: {e}")))?;
    for (flag, bytes) in [("-b/--size", size), ("--latency-size", latency_size)] {
        if bytes < 4 {
            return Err(Error::usage(format!(
                "{flag} {bytes}: an exchange moves floats: give at least 4 bytes"
            )));
        }
    }
    if let Some(path) = &args.plot {
        plot::check_extension(path)?;
    }
    if args.all_gpus && args.by != By::Host {
        return Err(Error::usage(
            "--all-gpus pairs the GPUs of two hosts: use it with --by host, or drop it",
        ));
    }
    if args.rounds == 0 {
        return Err(Error::usage("--rounds 0: measure every pair at least once"));
    }
    if !(args.slow_threshold > 0.0 && args.slow_threshold < 100.0) {
        return Err(Error::usage(format!(
            "--slow-threshold {}: give a percentage between 0 and 100",
            args.slow_threshold
        )));
    }
    let (verdict_rules, figure_rules) = expect::split(&args.expect);
    let rules = gate::parse_rules(&figure_rules)?;
    if let Some(rule) = rules.iter().find(|r| r.metric == gate::Metric::LinkErrors) {
        return Err(Error::usage(format!(
            "--expect '{rule}' judges the RDMA port error counters a sweep reads, which collbench pairs does not: give it to a sweep (collbench all_reduce ... --expect {rule})"
        )));
    }
    // The engine measures the exchanges from a run plan of the same settings; its check is the ring's,
    // so the peer exchange is checked by pairs/rounds.rs instead.
    let argv: Vec<String> = [
        "collbench pairs",
        "sendrecv",
        "-b",
        &size.to_string(),
        "-e",
        &size.to_string(),
        "-c",
        "0",
        "-n",
        &args.iters.to_string(),
        "-w",
        &args.warmup_iters.to_string(),
        "--backend",
        &args.backend,
        "-T",
        &args.timeout.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let run = super::run_plan(argv, &args.nccl_lib, &args.rccl_lib)?;
    Ok(PairsPlan {
        args,
        run,
        size,
        latency_size,
        rules,
        verdict_rules,
    })
}

/// `collbench pairs ...`; argv[0] is the command's name. Returns the exit code.
pub fn pairs_main(argv: &[String]) -> i32 {
    let plan = match PairsArgs::try_parse_from(argv) {
        Ok(a) => validate(a),
        Err(e) => return super::usage_error_from_clap(e),
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return super::usage_error(&e),
    };
    with_world(&plan, argv)
}

#[cfg(not(feature = "mpi"))]
fn with_world(_plan: &PairsPlan, _argv: &[String]) -> i32 {
    eprintln!("collbench: error: pairs needs MPI ranks: this collbench was built without MPI; rebuild with default features and run under mpirun");
    ExitCode::Unsupported.code()
}

#[cfg(feature = "mpi")]
fn with_world(plan: &PairsPlan, argv: &[String]) -> i32 {
    let (world, watchdog) = match super::start_mpi(plan.run.timeout_s, timeout_with_context) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let run_id = match super::start_document(&world, plan.args.json.as_deref()) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let backend = super::backend_choice::backend_under_mpi(&plan.run, &world, &watchdog);
    let result = backend.and_then(|(mut b, reason)| {
        run(plan, argv, &run_id, &world, b.as_mut(), &reason, &watchdog)
    });
    match result {
        Ok(code) => code,
        Err(e) => super::fail_job(&world, None, e),
    }
}

/// What this rank is doing in the current round, added to a -T message: the peer names the suspect.
static CONTEXT: Mutex<String> = Mutex::new(String::new());

fn set_context(text: String) {
    if let Ok(mut c) = CONTEXT.lock() {
        *c = text;
    }
}

#[cfg(feature = "mpi")]
fn timeout_with_context(message: &str) -> ! {
    let context = CONTEXT.lock().map(|c| c.clone()).unwrap_or_default();
    super::end_job_on_timeout(&format!("{message}; {context}"))
}

fn run(
    plan: &PairsPlan,
    argv: &[String],
    run_id: &str,
    world: &dyn World,
    backend: &mut dyn Backend,
    reason: &str,
    watchdog: &Watchdog,
) -> Result<i32> {
    let me = world.rank();
    watchdog.arm(|| "gathering rank information".into());
    let info = RankInfo {
        rank: me,
        host: world.host().to_string(),
        pid: std::process::id(),
        local_rank: world.local_rank(),
        device: backend.device(),
    };
    let ranks: Vec<RankInfo> = all_gather_value(world, &info)?;
    watchdog.disarm();
    let people = rounds::participants(plan.args.by == By::Host, plan.args.all_gpus, &ranks);
    if people.len() < 2 {
        return Err(Error::Usage(format!(
            "pairs needs at least two {}s, and this job has {} ({}): run under mpirun over more {}s{}",
            if plan.args.by == By::Host { "host" } else { "rank" },
            people.len(),
            people.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
            if plan.args.by == By::Host { "host" } else { "rank" },
            if plan.args.by == By::Host { ", or pair ranks with --by rank" } else { "" }
        )));
    }
    let rounds = if plan.args.one_at_a_time {
        schedule::one_at_a_time(people.len())
    } else {
        schedule::circle_rounds(people.len())
    };
    let per_buffer = plan.size.max(plan.latency_size);
    watchdog.arm(|| format!("allocating buffers of {}", HumanSize(per_buffer)));
    backend.allocate(per_buffer)?;
    watchdog.disarm();

    let mut doc = (me == 0).then(|| PairsDocument {
        kind: model::KIND.into(),
        schema_version: 1,
        collbench_version: env!("CARGO_PKG_VERSION").into(),
        command_line: argv.to_vec(),
        started_unix_s: crate::report::model::unix_now_s(),
        life: RunLife::running(run_id),
        backend: BackendReport {
            name: backend.name().into(),
            reason: reason.into(),
            libraries: backend.versions(),
        },
        by: format!("{:?}", plan.args.by).to_lowercase(),
        concurrent: !plan.args.one_at_a_time,
        repeats: plan.args.rounds,
        size_bytes: plan.size,
        latency_size_bytes: plan.latency_size,
        iterations: plan.args.iters,
        all_gpus: plan.args.all_gpus,
        check_iterations: plan.args.check,
        wrong_total: None,
        participants: people.clone(),
        ranks: ranks.clone(),
        samples: Vec::new(),
        in_flight: None,
        matrix: None,
        verdict: None,
        gate: None,
    });
    if let Some(d) = &doc {
        println!(
            "# collbench pairs: {} {}s{}, {} each way (latency at {}), {} round(s) x {} repeat(s), {}, backend {}",
            people.len(),
            d.by,
            if d.all_gpus {
                " (every GPU of a host with the same local rank of the other, at once)"
            } else {
                ""
            },
            HumanSize(plan.size),
            HumanSize(plan.latency_size),
            rounds.len(),
            plan.args.rounds,
            if d.concurrent { "disjoint pairs together" } else { "one pair at a time" },
            d.backend.name
        );
    }

    // The test switches act per round here (docs/TESTING.md): a round is what a row is to a sweep.
    let switches = TestSwitches::from_env();
    let mut engine = Engine {
        plan: &plan.run,
        world,
        backend,
        watchdog,
        switches: switches.clone(),
        buffer_bytes: per_buffer,
        observer: &mut crate::telemetry::NoTelemetry,
    };
    let exchanges = rounds::Exchanges {
        people: &people,
        rounds: &rounds,
        repeats: plan.args.rounds,
        size: plan.size,
        latency_size: plan.latency_size,
        check_iters: plan.args.check,
    };
    let samples = exchanges.measure(&mut engine, |at| {
        let what = format!(
            "repeat {}/{} round {}/{}: {}",
            at.repeat + 1,
            plan.args.rounds,
            at.round + 1,
            rounds.len(),
            at.pairs
        );
        if let Some(d) = doc.as_mut() {
            d.samples = at.samples_so_far.to_vec();
            d.in_flight = Some(what.clone());
            super::record::save(d)?;
        }
        switches.before_row(me, at.repeat * rounds.len() + at.round);
        if me == 0 {
            println!("# {what}");
            let _ = std::io::stdout().flush();
        }
        set_context(match at.peer {
            Some(p) => format!(
                "pairs {what}: rank {me} ({}) was exchanging with rank {p} ({})",
                world.host(),
                ranks[p].host
            ),
            None => format!("pairs {what}: rank {me} was waiting for these pairs"),
        });
        Ok(())
    })?;
    set_context(String::new());

    let Some(mut d) = doc else {
        return Ok(0);
    };
    d.samples = samples;
    let figures = model::matrix(&d.samples);
    let v = verdict::judge(&d.samples, &people, plan.args.slow_threshold);
    let mut text = render::matrices(&people, &figures);
    text.push_str("#\n");
    text.push_str(&render::verdict(&v));
    d.wrong_total = (plan.args.check > 0).then(|| d.samples.iter().filter_map(|s| s.wrong).sum());
    text.push_str(&render::check(&d.samples, &people, plan.args.check));
    // A failed check comes first, as in a sweep: figures of a broken exchange mean little.
    let mut code = if d.wrong_total.unwrap_or(0) > 0 {
        ExitCode::CheckFailed
    } else {
        ExitCode::Success
    };
    if !plan.rules.is_empty() || !plan.verdict_rules.is_empty() {
        let mut report = judge_pairs(&plan.rules, &people, &figures, plan);
        report
            .verdicts
            .extend(plan.verdict_rules.iter().map(|r| r.judge(&v)));
        report.passed = report.verdicts.iter().all(|v| v.passed);
        text.push_str(&gate::render(&report));
        if code == ExitCode::Success {
            code = report.exit_code();
        }
        d.gate = Some(report);
    }
    print!("{text}");
    if let Some(path) = &plan.args.plot {
        plot::heatmap(path, &people, &figures)?;
    }
    d.matrix = Some(figures);
    d.verdict = Some(v);
    d.in_flight = None;
    d.life.complete(code.code());
    super::record::save(&mut d)?;
    Ok(code.code())
}

/// The gate over pair figures: every rule judged on each pair's bandwidth row and latency row, so a
/// failure names the pair.
fn judge_pairs(
    rules: &[Rule],
    people: &[Participant],
    figures: &[PairFigure],
    plan: &PairsPlan,
) -> GateReport {
    let row = |size: u64, time_us: f64| {
        let algbw = crate::metrics::algbw_gbps(size, time_us);
        let shape = Collective::SendRecv.shape(size, DataType::Float.size(), 2);
        Row {
            collective: Collective::SendRecv,
            dtype: DataType::Float,
            op: None,
            root: None,
            size_bytes: shape.size_bytes,
            count: shape.count,
            ranks: 2,
            cycle: 0,
            bus_factor: 1.0,
            path: "peer exchange".into(),
            traffic: None,
            out_of_place: Some(Measurement {
                time_us,
                algbw_gbps: algbw,
                busbw_gbps: algbw,
                wrong: None,
                check_skipped: None,
                iterations: plan.args.iters,
                stats: None,
                rank_time_us: Vec::new(),
                groups: None,
                slowest_group: None,
            }),
            in_place: None,
            telemetry: None,
            layout: None,
        }
    };
    let mut verdicts = Vec::new();
    for rule in rules {
        for f in figures {
            let rows = [
                row(plan.size, plan.size as f64 / (f.bandwidth_gbps * 1e3)),
                row(plan.latency_size, f.latency_us),
            ];
            let mut v = rule.judge(&rows, None);
            let pair = format!("{} <-> {}", people[f.a].name, people[f.b].name);
            v.worst_at = Some(match v.worst_at {
                Some(at) => format!("{pair}: {at}"),
                None => pair,
            });
            verdicts.push(v);
        }
    }
    GateReport {
        passed: verdicts.iter().all(|v| v.passed),
        verdicts,
    }
}
