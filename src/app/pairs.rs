//! `collbench pairs`: the command from argv to exit code. Every rank walks the same schedule of rounds;
//! in each, the ranks of a pair exchange with each other and the others wait, and the engine measures
//! the round as it measures any row. Rank 0 keeps the document, writes it after every round, and judges.

// Without MPI only the refusal is built; the rest is the MPI path.
#![cfg_attr(not(feature = "mpi"), allow(dead_code, unused_imports))]

use super::document;
use super::launch::fail_job;
use crate::backend::{Backend, BackendRequest};
use crate::cli::pairs::DEFAULT_REPEATS;
pub use crate::cli::pairs::{By, PairsArgs};
use crate::collective::Collective;
use crate::dtype::DataType;
use crate::engine::{Engine, EngineSettings};
use crate::error::{Error, ExitCode, Result};
use crate::fleet::gate::{self, GateReport, Rule};
use crate::pairs::document::{self as pairs_document, PairFigure, PairsDocument, Participant};
use crate::pairs::{expect, plot, render, rounds, rounds_plot, schedule, search, verdict};
use crate::plan::Iterations;
use crate::report::document::{DocumentHeader, Measurement, Row};
use crate::size::{parse_size, HumanSize};
use crate::testing::TestSwitches;
use crate::watchdog::Watchdog;
use crate::world::World;
use std::io::Write;
use std::sync::Mutex;

/// Everything the command needs, validated before MPI starts.
struct PairsPlan {
    args: PairsArgs,
    request: BackendRequest,
    timeout_s: Option<f64>,
    /// How every exchange is measured (the check's count is set per exchange).
    settings: EngineSettings,
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
    if args.rounds == Some(0) {
        return Err(Error::usage("--rounds 0: measure every pair at least once"));
    }
    if args.max_rounds == Some(0) {
        return Err(Error::usage(
            "--max-rounds 0: the search needs at least one round",
        ));
    }
    if args.full || args.one_at_a_time {
        let every_pair = if args.full {
            "--full"
        } else {
            "--one-at-a-time"
        };
        for (flag, given) in [
            ("--max-rounds", args.max_rounds.is_some()),
            ("--seed", args.seed.is_some()),
        ] {
            if given {
                return Err(Error::usage(format!(
                    "{flag} is the search's, and {every_pair} measures every pair instead: drop one of them"
                )));
            }
        }
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
    if args.iters == 0 {
        return Err(Error::usage(
            "-n/--iters must be at least 1: zero timed iterations measure nothing",
        ));
    }
    let timeout_s = crate::plan::timeout(args.timeout)?;
    let request = args.library.backend_request(timeout_s)?;
    let settings =
        EngineSettings::plain(Iterations::Fixed(args.iters), args.warmup_iters, args.check);
    Ok(PairsPlan {
        args,
        request,
        timeout_s,
        settings,
        size,
        latency_size,
        rules,
        verdict_rules,
    })
}

/// `collbench pairs ...` from its parsed arguments; returns the exit code.
pub fn main(args: PairsArgs, argv: &[String]) -> i32 {
    match validate(args) {
        Ok(plan) => with_world(&plan, argv),
        Err(e) => super::launch::usage_error(&e),
    }
}

#[cfg(not(feature = "mpi"))]
fn with_world(_plan: &PairsPlan, _argv: &[String]) -> i32 {
    eprintln!("collbench: error: pairs needs MPI ranks: this collbench was built without MPI; rebuild with default features and run under mpirun");
    ExitCode::Unsupported.code()
}

#[cfg(feature = "mpi")]
fn with_world(plan: &PairsPlan, argv: &[String]) -> i32 {
    let (world, watchdog) = match super::launch::start_mpi(plan.timeout_s, timeout_with_context) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let doc = match document::start(
        &world,
        plan.args.json.as_deref(),
        |run_id| {
            document::header(
                pairs_document::KIND,
                argv,
                &plan.args.library.backend,
                run_id,
            )
        },
        |header| initial_document(plan, header),
    ) {
        Ok(doc) => doc,
        Err(code) => return code,
    };
    let backend = super::backend_choice::backend_under_mpi(&plan.request, &world, &watchdog);
    let result =
        backend.and_then(|(mut b, reason)| run(plan, doc, &world, b.as_mut(), &reason, &watchdog));
    match result {
        Ok(code) => code,
        Err(e) => fail_job(&world, None, e),
    }
}

/// The document as rank 0 writes it before the backend opens: what was asked for, and that it runs.
fn initial_document(plan: &PairsPlan, header: DocumentHeader) -> PairsDocument {
    PairsDocument {
        header,
        by: format!("{:?}", plan.args.by).to_lowercase(),
        method: String::new(),
        concurrent: !plan.args.one_at_a_time,
        repeats: plan.args.rounds.unwrap_or(DEFAULT_REPEATS),
        size_bytes: plan.size,
        latency_size_bytes: plan.latency_size,
        iterations: plan.args.iters,
        all_gpus: plan.args.all_gpus,
        check_iterations: plan.args.check,
        wrong_total: None,
        participants: Vec::new(),
        samples: Vec::new(),
        in_flight: None,
        matrix: None,
        verdict: None,
        search: None,
        gate: None,
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
    super::launch::end_job_on_timeout(&format!("{message}; {context}"))
}

fn run(
    plan: &PairsPlan,
    mut doc: Option<PairsDocument>,
    world: &dyn World,
    backend: &mut dyn Backend,
    reason: &str,
    watchdog: &Watchdog,
) -> Result<i32> {
    let me = world.rank();
    let ranks = document::gather_ranks(world, backend, watchdog)?;
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
    let method = Method::choose(plan, people.len())?;
    let per_buffer = plan.size.max(plan.latency_size);
    watchdog.arm(|| format!("allocating buffers of {}", HumanSize(per_buffer)));
    backend.allocate(per_buffer)?;
    watchdog.disarm();
    let seed = match &method {
        Method::Search => Some(agree_on_seed(plan, world, doc.as_ref())?),
        Method::Full(_) => None,
    };

    if let Some(d) = doc.as_mut() {
        document::backend_opened(&mut d.header, backend, reason, world, ranks.clone());
        d.participants = people.clone();
    }
    let repeats = match method {
        Method::Full(_) => plan.args.rounds.unwrap_or(DEFAULT_REPEATS),
        Method::Search => 1,
    };
    if let Some(d) = doc.as_mut() {
        d.method = method.name().into();
        d.repeats = repeats;
        super::record::save(d)?;
    }
    let max_rounds = plan.args.max_rounds.unwrap_or(search::DEFAULT_MAX_ROUNDS);
    if let Some(d) = &doc {
        let how = match &method {
            Method::Full(rounds) => format!(
                "{} round(s) x {} repeat(s), {}",
                rounds.len(),
                repeats,
                if d.concurrent { "disjoint pairs together" } else { "one pair at a time" }
            ),
            Method::Search => format!(
                "search: rounds of disjoint pairs until every host is named or cleared, at most {max_rounds} (--full for every pair)"
            ),
        };
        println!(
            "# collbench pairs: {} {}s{}, {} each way (latency at {}), {how}, backend {}",
            people.len(),
            d.by,
            if d.all_gpus {
                " (every GPU of a host with the same local rank of the other, at once)"
            } else {
                ""
            },
            HumanSize(plan.size),
            HumanSize(plan.latency_size),
            d.header.backend.name
        );
    }

    // The test switches act per round here (docs/TESTING.md): a round is what a row is to a sweep.
    let switches = TestSwitches::from_env();
    let mut engine = Engine::new(plan.settings.clone(), world, backend, watchdog, per_buffer)
        .with_switches(switches.clone());
    let exchanges = rounds::Exchanges {
        people: &people,
        size: plan.size,
        latency_size: plan.latency_size,
        check_iters: plan.args.check,
    };
    let list_pairs = people.len() <= render::MATRIX_UP_TO;
    let per_repeat = match &method {
        Method::Full(rounds) => rounds.len(),
        Method::Search => 0,
    };
    let before_round = |at: &rounds::RoundStart| {
        let what = match &method {
            Method::Full(rounds) => format!(
                "repeat {}/{repeats} round {}/{}",
                at.repeat + 1,
                at.round + 1,
                rounds.len()
            ),
            Method::Search => format!("round {} (at most {max_rounds})", at.round + 1),
        };
        let pairs = exchanges.describe(at.pairs);
        if let Some(d) = doc.as_mut() {
            d.samples = at.samples_so_far.to_vec();
            d.in_flight = Some(format!("{what}: {pairs}"));
            super::record::save(d)?;
        }
        switches.before_row(me, at.repeat * per_repeat + at.round);
        if me == 0 {
            if list_pairs {
                println!("# {what}: {pairs}");
            } else {
                println!("# {what}: {} pairs", at.pairs.len());
            }
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
    };
    let started = std::time::Instant::now();
    let measured = match &method {
        Method::Full(rounds) => {
            Measured::Full(exchanges.measure(&mut engine, rounds, repeats, before_round)?)
        }
        Method::Search => {
            let settings = search::Settings {
                threshold_percent: plan.args.slow_threshold,
                max_rounds,
                seed: seed.unwrap_or(search::DEFAULT_SEED),
            };
            let outcome = exchanges.search(&mut engine, &settings, before_round)?;
            Measured::Search(Box::new(outcome), settings)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    set_context(String::new());

    let Some(mut d) = doc else {
        return Ok(0);
    };
    let v = match measured {
        Measured::Full(samples) => {
            d.samples = samples;
            verdict::judge(&d.samples, &people, plan.args.slow_threshold)
        }
        Measured::Search(outcome, settings) => {
            let per_round = seconds / outcome.rounds.max(1) as f64;
            let (v, report) = search::report::stored(&outcome, &people, &settings, Some(per_round));
            d.samples = outcome.samples;
            d.search = Some(report);
            v
        }
    };
    let figures = pairs_document::matrix(&d.samples);
    let mut text = render::summary(&people, &figures, d.search.as_ref(), &v);
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
        let marked = plot::marked(&people, &v);
        // A search's matrix is mostly pairs it never measured: above a few hosts its rounds show more.
        if d.search.is_some() && people.len() > plot::LABELLED {
            rounds_plot::rounds_map(path, &people, &d.samples, &marked)?;
        } else {
            plot::heatmap(path, &people, &figures, &marked)?;
        }
    }
    d.matrix = Some(figures);
    d.verdict = Some(v);
    d.in_flight = None;
    d.header.life.complete(code.code());
    super::record::save(&mut d)?;
    Ok(code.code())
}

/// How the pairs are chosen: every pair by the circle method (its rounds), or the search.
enum Method {
    Full(Vec<schedule::Round>),
    Search,
}

impl Method {
    /// The search from SEARCH_FROM participants up unless --full or --one-at-a-time asks for every
    /// pair. Every rank decides alike, from the same participants.
    fn choose(plan: &PairsPlan, participants: usize) -> Result<Method> {
        if plan.args.one_at_a_time {
            return Ok(Method::Full(schedule::one_at_a_time(participants)));
        }
        if plan.args.full || participants < search::SEARCH_FROM {
            return Ok(Method::Full(schedule::circle_rounds(participants)));
        }
        if let Some(repeats) = plan.args.rounds {
            return Err(Error::Usage(format!(
                "--rounds {repeats} repeats the full matrix, and from {} participants up pairs searches instead ({participants} here): add --full to measure every pair {repeats} times, or bound the search with --max-rounds",
                search::SEARCH_FROM
            )));
        }
        Ok(Method::Search)
    }

    fn name(&self) -> &'static str {
        match self {
            Method::Full(_) => "full",
            Method::Search => "search",
        }
    }
}

/// What was measured: every pair's samples, or the search's outcome.
enum Measured {
    Full(Vec<pairs_document::PairSample>),
    Search(Box<search::Outcome>, search::Settings),
}

/// The search's seed, the same on every rank: --seed, else one drawn by rank 0 from its run id and
/// clock, so that runs one after another meet other pairs first.
fn agree_on_seed(plan: &PairsPlan, world: &dyn World, doc: Option<&PairsDocument>) -> Result<u64> {
    if let Some(seed) = plan.args.seed {
        return Ok(seed);
    }
    let mut bytes = Vec::new();
    if let Some(d) = doc {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        d.header.life.run_id.hash(&mut hasher);
        crate::report::document::unix_now_s()
            .to_bits()
            .hash(&mut hasher);
        bytes = hasher.finish().to_le_bytes().to_vec();
    }
    world.broadcast_bytes(0, &mut bytes)?;
    let seed: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Internal("the search's seed did not arrive from rank 0".into()))?;
    Ok(u64::from_le_bytes(seed))
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
            algorithm: None,
            out_of_place: Some(Measurement {
                time_us,
                algbw_gbps: algbw,
                busbw_gbps: algbw,
                wrong: None,
                check_skipped: None,
                iterations: plan.args.iters,
                stats: None,
                rank_time_us: Vec::new(),
                rank_wrong: Vec::new(),
                groups: None,
                slowest_group: None,
                iteration_times_us: None,
                rank_iteration_times_us: None,
                cpu_time_us: None,
                energy: None,
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
