//! nccl-tests' own output formats, read into collbench's results model and written from it: its `-J`
//! JSON document (document.rs), its stdout table (text.rs), the reading of either into a
//! `RunDocument` (this file), and the writing of a run as nccl-tests' document (export.rs).

pub mod document;
pub mod export;
pub mod text;

use crate::backend::{DeviceInfo, LibraryVersion};
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::report::document::{
    kind, BackendReport, DocumentHeader, Measurement, PlanReport, RankInfo, Row, RunDocument,
    RunStatus, Stats,
};
use std::collections::{BTreeSet, HashMap};

/// One test's output: its header, its rows and whether its footer came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub nccl_tests_version: Option<String>,
    /// ncclGetVersion's code (22703 for 2.27.3).
    pub nccl_version: Option<i64>,
    /// The test's binary ("all_reduce_perf", or argv[0] of the JSON).
    pub program: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub iterations: Option<u64>,
    pub warmup_iterations: Option<u64>,
    pub agg_iterations: Option<u64>,
    pub validation: Option<u64>,
    pub graph: Option<u64>,
    pub threads: Option<u64>,
    pub gpus: Option<u64>,
    /// -K: leading iterations the per-iteration statistics leave out.
    pub per_iter_skip: Option<u64>,
    /// The rank lines: every rank in a log, the first of each process in the JSON.
    pub ranks: Vec<RankLine>,
    /// Ranks per entry of `ranks` (the JSON's threads x GPUs per process; 1 in a log).
    pub ranks_per_line: usize,
    pub rows: Vec<ResultRow>,
    /// The footer came: the test ran to its end.
    pub complete: bool,
    /// "Out of bounds values": checks that found wrong elements.
    pub wrong_checks: Option<u64>,
    pub avg_busbw_gbps: Option<f64>,
    /// NCCL_TESTS_MIN_BW's verdict said FAILED.
    pub min_bw_failed: bool,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    /// Lines inside the table that were not rows.
    pub skipped_lines: usize,
}

/// "#  Rank  0 Group  0 Pid 4242 on node1 device  0 [0000:18:00] NVIDIA H200".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankLine {
    pub rank: usize,
    pub group: i64,
    pub pid: u32,
    pub host: String,
    pub device: usize,
    pub bus_id: String,
    pub name: String,
}

/// One row as nccl-tests wrote it, its names still nccl-tests' words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultRow {
    pub size: u64,
    pub count: u64,
    pub dtype: String,
    pub redop: String,
    pub root: i64,
    pub out_of_place: Option<Timing>,
    pub in_place: Option<Timing>,
    /// Timed iterations (the per-iteration statistics' samples in a log, after -K).
    pub iterations: Option<u64>,
}

/// One placement's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    pub time_us: f64,
    /// -C 1: the time is the enqueue (CPU) time, not the completion time.
    pub cpu_time: bool,
    pub algbw_gbps: f64,
    pub busbw_gbps: f64,
    pub wrong: Option<f64>,
    pub stats: Option<Stats>,
    pub iteration_times_us: Option<Vec<f64>>,
    pub process_iteration_times_us: Option<Vec<Vec<f64>>>,
}

/// The per-iteration statistics of a log's -I 1 columns: what is printed (i_min, i_max, i_p99, i_cv%),
/// the mean taken from the time column and the stdev from the cv; p50 and p95 are not printed.
pub fn printed_stats(
    min: f64,
    max: f64,
    p99: f64,
    cv: f64,
    time_us: f64,
    iterations: Option<u64>,
) -> Stats {
    let samples = iterations.unwrap_or(0) as usize;
    let stdev = cv * time_us / 100.0;
    Stats {
        samples,
        min_us: min,
        p50_us: f64::NAN,
        p95_us: f64::NAN,
        p99_us: p99,
        max_us: max,
        mean_us: time_us,
        stdev_us: stdev,
        cv_percent: cv,
        ci95_percent: ci95(stdev, time_us, samples),
        source: "nccl-tests -I 1 columns of a stdout log (i_min i_max i_p99 i_cv%, CUDA events inside its timed loop): p50 and p95 are not printed, the mean is the time column and the stdev i_cv% of it".into(),
    }
}

fn ci95(stdev: f64, mean: f64, samples: usize) -> f64 {
    if mean > 0.0 && samples > 0 {
        100.0 * 1.96 * stdev / (samples as f64).sqrt() / mean
    } else {
        0.0
    }
}

/// The sections of nccl-tests' JSON document (one test per document).
pub fn from_document(doc: document::Document, repairs: &document::Repairs) -> Section {
    let config = doc.config.clone().unwrap_or_default();
    let mut section = Section {
        nccl_tests_version: None,
        nccl_version: doc.nccl_version,
        program: doc.args.first().cloned(),
        args: doc.args.clone(),
        env: doc.env.clone(),
        iterations: u64::try_from(config.iterations).ok(),
        warmup_iterations: u64::try_from(config.warmup_iters).ok(),
        agg_iterations: u64::try_from(config.aggregated_iterations).ok(),
        validation: u64::try_from(config.validation).ok(),
        graph: u64::try_from(config.graph).ok(),
        threads: u64::try_from(config.nthreads).ok(),
        gpus: u64::try_from(config.ngpus).ok(),
        per_iter_skip: config.per_iter_skip.and_then(|k| u64::try_from(k).ok()),
        ranks: config
            .devices
            .iter()
            .map(|d| RankLine {
                rank: d.rank.max(0) as usize,
                group: d.group,
                pid: d.pid.max(0) as u32,
                host: d.hostname.clone(),
                device: d.device.max(0) as usize,
                bus_id: d.device_hex.clone(),
                name: d.device_info.clone(),
            })
            .collect(),
        ranks_per_line: (config.nthreads.max(1) * config.ngpus.max(1)) as usize,
        complete: doc.out_of_bounds.is_some(),
        wrong_checks: doc
            .out_of_bounds
            .as_ref()
            .and_then(|o| u64::try_from(o.count).ok()),
        avg_busbw_gbps: doc.average_bus_bandwidth.as_ref().map(|a| a.bandwidth),
        min_bw_failed: doc
            .average_bus_bandwidth
            .as_ref()
            .is_some_and(|a| a.okay == "false"),
        errors: doc
            .errors
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect(),
        ..Section::default()
    };
    if repairs.bare_words > 0 {
        section.notes.push(format!(
            "{} bare inf/nan value(s) (C's \"%lf\" of a value that is not finite, not JSON) were read as not a number",
            repairs.bare_words
        ));
    }
    if repairs.truncated {
        section.notes.push(
            "the document was not closed (nccl-tests closes it at the end of the run: the run died); it is read up to its last complete value".into(),
        );
    }
    let timing = |p: &Option<document::Placement>, per: &Option<document::PerIteration>| {
        p.as_ref().map(|p| Timing {
            time_us: p.time.or(p.cpu_time).unwrap_or(f64::NAN),
            cpu_time: p.time.is_none() && p.cpu_time.is_some(),
            algbw_gbps: p.alg_bw,
            busbw_gbps: p.bus_bw,
            wrong: p.nwrong,
            stats: per.as_ref().map(recorded_stats),
            iteration_times_us: per.as_ref().map(|i| i.times_us.clone()),
            process_iteration_times_us: per
                .as_ref()
                .and_then(|i| i.per_process_max_times_us.clone()),
        })
    };
    for r in &doc.results {
        section.rows.push(ResultRow {
            size: r.size,
            count: r.count,
            dtype: r.dtype.clone(),
            redop: r.redop.clone(),
            root: r.root.trim().parse().unwrap_or(-1),
            out_of_place: timing(&r.out_of_place, &r.out_of_place_per_iter),
            in_place: timing(&r.in_place, &r.in_place_per_iter),
            iterations: r
                .actual_iterations
                .and_then(|i| u64::try_from(i).ok())
                .or(section.iterations),
        });
    }
    section
}

/// The statistics nccl-tests recorded with -I 1 (over the iterations after -K).
fn recorded_stats(p: &document::PerIteration) -> Stats {
    let samples = p
        .times_us
        .len()
        .saturating_sub(p.skipped_iterations.max(0) as usize);
    Stats {
        samples,
        min_us: p.min_us,
        p50_us: p.p50_us,
        p95_us: p.p95_us,
        p99_us: p.p99_us,
        max_us: p.max_us,
        mean_us: p.avg_us,
        stdev_us: p.stdev_us,
        cv_percent: p.cv_pct,
        ci95_percent: ci95(p.stdev_us, p.avg_us, samples),
        source: "nccl-tests -I 1 (CUDA events around each iteration inside its timed loop; population stdev, nearest-rank percentiles)".into(),
    }
}

/// The collective a test's binary measures: "all_reduce_perf", "./build/alltoall_perf",
/// "sendrecv_perf_mpi".
pub fn collective_of(program: &str) -> Option<Collective> {
    let base = program.rsplit(['/', '\\']).next().unwrap_or(program);
    if let Ok(c) = base.parse::<Collective>() {
        return Some(c);
    }
    let key: String = base
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    // Longer names first: reduce_scatter holds "reduce" and "scatter", all_gather "gather".
    const NAMES: [(&str, Collective); 11] = [
        ("hypercube", Collective::Hypercube),
        ("reducescatter", Collective::ReduceScatter),
        ("allreduce", Collective::AllReduce),
        ("allgather", Collective::AllGather),
        ("alltoallv", Collective::AllToAllv),
        ("alltoall", Collective::AllToAll),
        ("broadcast", Collective::Broadcast),
        ("sendrecv", Collective::SendRecv),
        ("scatter", Collective::Scatter),
        ("gather", Collective::Gather),
        ("reduce", Collective::Reduce),
    ];
    NAMES
        .iter()
        .find(|(name, _)| key.contains(name))
        .map(|(_, c)| *c)
}

/// "2.27.3" from ncclGetVersion's code (major*10000 + minor*100 + patch since 2.9, major*1000 +
/// minor*100 + patch before).
pub fn version_text(code: i64) -> String {
    if code >= 20900 {
        format!("{}.{}.{}", code / 10000, (code % 10000) / 100, code % 100)
    } else {
        format!("{}.{}.{}", code / 1000, (code % 1000) / 100, code % 100)
    }
}

/// ncclGetVersion's code of "2.27.3".
pub fn version_code(text: &str) -> Option<i64> {
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let major: i64 = parts.next()?.parse().ok()?;
    let minor: i64 = parts.next()?.parse().ok()?;
    let patch: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(if major > 2 || (major == 2 && minor >= 9) {
        major * 10000 + minor * 100 + patch
    } else {
        major * 1000 + minor * 100 + patch
    })
}

/// One placement as collbench's measurement.
fn measurement(t: &Timing, iterations: Option<u64>) -> Measurement {
    Measurement {
        time_us: t.time_us,
        algbw_gbps: t.algbw_gbps,
        busbw_gbps: t.busbw_gbps,
        wrong: t.wrong.map(|w| w.max(0.0).round() as u64),
        check_skipped: None,
        iterations: iterations.unwrap_or(0),
        stats: t.stats.clone(),
        rank_time_us: Vec::new(),
        rank_wrong: Vec::new(),
        groups: None,
        slowest_group: None,
        iteration_times_us: t.iteration_times_us.clone(),
        rank_iteration_times_us: t.process_iteration_times_us.clone(),
        cpu_time_us: t.cpu_time.then_some(t.time_us),
        energy: None,
    }
}

/// Ranks of each communicator: every rank line's ranks, divided among NCCL_TESTS_SPLIT's groups.
fn communicator_ranks(section: &Section) -> usize {
    let total = section.ranks.len() * section.ranks_per_line.max(1);
    let groups: BTreeSet<i64> = section.ranks.iter().map(|r| r.group).collect();
    if groups.len() > 1 {
        total / groups.len()
    } else {
        total
    }
}

/// A row's configuration: collective, type, operator, root and size.
type ConfigKey = (Collective, DataType, Option<ReduceOp>, Option<usize>, u64);

/// nccl-tests' output (one or more sections) as collbench's results document. `what` names the file
/// and its format for the notes; `fallback` is the name to take the collective from when the output
/// does not say (logs before 2.13 do not print the test's name).
pub fn into_run_document(
    sections: &[Section],
    what: &str,
    fallback: &str,
) -> Result<RunDocument, String> {
    if sections.is_empty() {
        return Err(format!(
            "{what} holds no table of nccl-tests: neither a heading line ('#  size  count  type ...') with rows under it nor a footer"
        ));
    }
    let mut notes = vec![format!("read from {what}")];
    let mut rows = Vec::new();
    // How many times each configuration has come so far: its next row's cycle (-N).
    let mut seen: HashMap<ConfigKey, u64> = HashMap::new();
    let mut skipped: Vec<String> = Vec::new();
    for section in sections {
        let path = section.program.as_deref().unwrap_or(fallback);
        let program = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let Some(collective) = collective_of(program) else {
            skipped.push(format!(
                "{} row(s) of {program}: not a collective collbench measures",
                section.rows.len()
            ));
            continue;
        };
        let ranks = communicator_ranks(section);
        if ranks == 0 {
            notes.push(format!(
                "{program}: no rank lines ('#  Rank  0 Group ...'): the rank count is unknown (0), so it matches no collbench run"
            ));
        }
        if section
            .ranks
            .iter()
            .map(|r| r.group)
            .collect::<BTreeSet<_>>()
            .len()
            > 1
        {
            notes.push(format!(
                "{program}: NCCL_TESTS_SPLIT groups ran at once; each row is one group of {ranks} rank(s)"
            ));
        }
        if section
            .rows
            .iter()
            .flat_map(|r| [&r.out_of_place, &r.in_place])
            .flatten()
            .any(|t| t.cpu_time)
        {
            notes.push(format!(
                "{program}: -C 1 (report_cputime): its times are the enqueue (CPU) time, not the completion time"
            ));
        }
        notes.extend(section.notes.iter().map(|n| format!("{program}: {n}")));
        notes.extend(
            section
                .errors
                .iter()
                .map(|e| format!("{program}: nccl-tests reported: {e}")),
        );
        for r in &section.rows {
            let dtype: DataType = match r.dtype.parse() {
                Ok(t) => t,
                Err(_) => {
                    skipped.push(format!("a {} row of type {}", collective, r.dtype));
                    continue;
                }
            };
            let op = if collective.reduces() {
                match r.redop.parse::<ReduceOp>() {
                    Ok(op) => Some(op),
                    Err(_) => {
                        skipped.push(format!(
                            "a {collective} row with operator '{}' (collbench has no such operator)",
                            r.redop
                        ));
                        continue;
                    }
                }
            } else {
                None
            };
            let root = (collective.rooted() && r.root >= 0).then_some(r.root as usize);
            let cycle = seen
                .entry((collective, dtype, op, root, r.size))
                .or_insert(0);
            rows.push(Row {
                collective,
                dtype,
                op,
                root,
                size_bytes: r.size,
                count: r.count,
                ranks,
                cycle: *cycle,
                bus_factor: collective.bus_factor(ranks),
                path: "nccl-tests".into(),
                out_of_place: r
                    .out_of_place
                    .as_ref()
                    .map(|t| measurement(t, r.iterations)),
                in_place: r.in_place.as_ref().map(|t| measurement(t, r.iterations)),
                telemetry: None,
                layout: None,
                traffic: None,
                algorithm: None,
            });
            *cycle += 1;
        }
    }
    if !skipped.is_empty() {
        notes.push(format!("left out: {}", skipped.join("; ")));
    }
    let first = &sections[0];
    let complete = sections.iter().all(|s| s.complete);
    let wrong = sections.iter().any(|s| s.wrong_checks.unwrap_or(0) > 0);
    let mut header = DocumentHeader::starting(
        kind::RUN,
        &first.args,
        &format!("nccl-tests:{what}"),
        "nccl",
        first
            .env
            .iter()
            .filter_map(|e| e.split_once('='))
            .filter(|(k, _)| crate::report::json::relevant(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    header.collbench_version = format!(
        "none: nccl-tests {}",
        first
            .nccl_tests_version
            .as_deref()
            .unwrap_or("(version not recorded)")
    );
    header.started_unix_s = 0.0;
    let life = &mut header.life;
    life.heartbeat_unix_s = 0.0;
    if complete {
        life.complete(if wrong || sections.iter().any(|s| s.min_bw_failed) {
            7
        } else {
            0
        });
    } else {
        life.status = RunStatus::Failed;
        life.error = Some(
            "nccl-tests' output ends before its footer ('# Out of bounds values'): the run did not finish"
                .into(),
        );
    }
    let mut libraries = Vec::new();
    if let Some(v) = &first.nccl_tests_version {
        libraries.push(LibraryVersion {
            library: "nccl-tests".into(),
            version: v.clone(),
        });
    }
    if let Some(code) = first.nccl_version {
        libraries.push(LibraryVersion {
            library: "NCCL".into(),
            version: version_text(code),
        });
    }
    let sizes: BTreeSet<u64> = rows.iter().map(|r| r.size_bytes).collect();
    header.backend = BackendReport {
        name: "nccl".into(),
        reason: "measured by nccl-tests".into(),
        libraries,
    };
    header.ranks = first
        .ranks
        .iter()
        .map(|r| RankInfo {
            rank: r.rank,
            host: r.host.clone(),
            pid: r.pid,
            local_rank: r.device,
            device: DeviceInfo {
                kind: "cuda".into(),
                index: Some(r.device),
                name: r.name.clone(),
                pci_bus_id: (!r.bus_id.is_empty()).then(|| r.bus_id.clone()),
            },
        })
        .collect();
    Ok(RunDocument {
        header,
        plan: PlanReport {
            requested: serde_json::json!({
                "nccl_tests": {
                    "iterations": first.iterations,
                    "warmup_iters": first.warmup_iterations,
                    "aggregated_iterations": first.agg_iterations,
                    "validation": first.validation,
                    "graph": first.graph,
                    "nthreads": first.threads,
                    "ngpus": first.gpus,
                    "per_iter_skip": first.per_iter_skip,
                }
            }),
            sizes: sizes.into_iter().collect(),
            memory_cap: None,
        },
        notes,
        topology: None,
        peak_gbps: None,
        telemetry: None,
        rows,
        summary: None,
    })
}

#[cfg(test)]
mod tests;
