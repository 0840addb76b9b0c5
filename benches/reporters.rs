//! What rank 0's reporters cost at fleet size: synthetic rows of RANKS ranks, each with every rank's time
//! in both placements and every rank's GPU readings, fed through the reporter that the sweep feeds (table
//! line, JSON document on disk), then the final save. Prints the bytes the process wrote (/proc/self/io
//! `wchar`: the document's writes, with a table line a row to stdout), its peak memory (VmHWM), the time,
//! and the document's size.
//!
//!   cargo bench --bench reporters -- [RANKS [ROWS [FOLDER]]]   (default 8192 ranks, 200 rows, /tmp)
//!   BEFORE=main scripts/bench-reporters.sh [RANKS [ROWS [FOLDER]]]   (also an older revision's code)
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it feeds 64 ranks x 5 rows, to stay built
//! and working.

use collbench::app::record;
use collbench::app::reporter::Reporter;
use collbench::collective::Collective;
use collbench::engine::RowSink;
use collbench::report::document::*;
use collbench::report::gpu_readings::{
    GpuLimits, Range, RankSource, RankTelemetry, TelemetryHeader,
};
use collbench::report::json::{JsonFormat, JsonWriter};
use std::time::Instant;

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn wchar() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn device(rank: usize) -> collbench::backend::DeviceInfo {
    collbench::backend::DeviceInfo {
        kind: "cuda".into(),
        index: Some(rank % 8),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: Some(format!("0000:{:02x}:00.0", 0x18 + (rank % 8) * 0x10)),
    }
}

fn document(ranks: usize) -> RunDocument {
    let host = |r: usize| format!("node{:04}", r / 8);
    let mut header = DocumentHeader::starting(
        kind::RUN,
        &[
            "collbench".into(),
            "all_reduce".into(),
            "-b".into(),
            "8".into(),
        ],
        "bench-1-1.0",
        "nccl",
        Default::default(),
    );
    header.backend.reason = "requested".into();
    header.ranks = (0..ranks)
        .map(|r| RankInfo {
            rank: r,
            host: host(r),
            pid: 10_000 + r as u32,
            local_rank: r % 8,
            device: device(r),
        })
        .collect();
    RunDocument {
        header,
        plan: PlanReport {
            requested: serde_json::json!({}),
            sizes: vec![],
            memory_cap: None,
        },
        notes: Vec::new(),
        topology: None,
        peak_gbps: Some(450.0),
        telemetry: Some(TelemetryHeader {
            interval_ms: 50,
            ranks: (0..ranks)
                .map(|r| RankSource {
                    rank: r,
                    source: Some(format!("NVML, driver 550.54.15, GPU {}", r % 8)),
                    unavailable: None,
                    limits: Some(GpuLimits {
                        name: Some("NVIDIA H100 80GB HBM3".into()),
                        max_sm_clock_mhz: Some(1980),
                        max_mem_clock_mhz: Some(2619),
                        power_limit_w: Some(700.0),
                        default_power_limit_w: Some(700.0),
                    }),
                    // No energy per loop (issue 20's per-rank joules): the rows stay those of the
                    // figures in docs/FLEET.md, measured before it, on both sides of the comparison.
                    energy_counter: false,
                })
                .collect(),
        }),
        rows: Vec::new(),
        summary: None,
    }
}

fn range(lo: f64, hi: f64) -> Option<Range> {
    Some(Range { min: lo, max: hi })
}

fn row(ranks: usize, i: usize) -> Row {
    let size = 8u64 << (i % 28);
    let times: Vec<f64> = (0..ranks)
        .map(|r| 100.0 + (r * 7919 + i * 104_729) as f64 % 13.0 / 7.0)
        .collect();
    let time_us = times.iter().cloned().fold(0.0, f64::max);
    let measurement = || Measurement {
        time_us,
        algbw_gbps: size as f64 / time_us / 1e3,
        busbw_gbps: size as f64 / time_us / 1e3 * 2.0,
        wrong: Some(0),
        check_skipped: None,
        iterations: 20,
        cpu_time_us: None,
        iteration_times_us: None,
        rank_iteration_times_us: None,
        stats: Some(Stats {
            samples: 20,
            min_us: time_us * 0.98,
            p50_us: time_us,
            p95_us: time_us * 1.02,
            p99_us: time_us * 1.03,
            max_us: time_us * 1.05,
            mean_us: time_us,
            stdev_us: time_us * 0.01,
            cv_percent: 1.0,
            ci95_percent: 0.5,
            source: "sampled pass".into(),
        }),
        rank_time_us: times.clone(),
        rank_wrong: Vec::new(),
        groups: None,
        slowest_group: None,
        energy: None,
    };
    let telemetry = (0..ranks)
        .map(|r| {
            let t = r as f64 % 10.0;
            Some(RankTelemetry {
                samples: 3,
                sm_clock_mhz: range(1755.0 + t, 1980.0),
                mem_clock_mhz: range(2619.0, 2619.0),
                power_w: range(310.5 + t, 512.25 + t),
                power_limit_w: range(700.0, 700.0),
                temperature_c: range(41.0 + t, 44.0 + t),
                pcie_gen: range(5.0, 5.0),
                pcie_width: range(16.0, 16.0),
                ecc_corrected: range(0.0, 0.0),
                ecc_uncorrected: range(0.0, 0.0),
                reasons: vec!["gpu_idle".into()],
                throttle_reasons: Vec::new(),
                sm_clock_of_max: Some((1755.0 + t) / 1980.0),
            })
        })
        .collect();
    Row {
        collective: Collective::AllReduce,
        dtype: collbench::dtype::DataType::Float,
        op: Some(collbench::dtype::ReduceOp::Sum),
        root: None,
        size_bytes: size,
        count: size / 4,
        ranks,
        cycle: (i / 28) as u64,
        bus_factor: 2.0 * (ranks - 1) as f64 / ranks as f64,
        path: "native".into(),
        out_of_place: Some(measurement()),
        in_place: Some(measurement()),
        telemetry: Some(telemetry),
        layout: None,
        traffic: None,
        algorithm: None,
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    args.retain(|a| !a.starts_with("--"));
    let (default_ranks, default_rows) = if full { (8192, 200) } else { (64, 5) };
    let ranks: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_ranks);
    let rows: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_rows);
    let folder = args.get(2).cloned().unwrap_or_else(|| "/tmp".into());
    let dir = tempfile::tempdir_in(&folder).expect("a temporary folder");
    let json = dir.path().join("run.json");
    let made: Vec<Row> = (0..rows.min(28)).map(|i| row(ranks, i)).collect();
    let (wrote_before, started) = (wchar(), Instant::now());
    // As app/document.rs does on rank 0: the writer taken in charge, the first document written.
    let writer = JsonWriter::new(&json).expect("a writer for the document");
    record::own(Some(writer)).expect("the document taken in charge");
    let mut doc = document(ranks);
    record::save(&mut doc).expect("the first document");
    let mut reporter =
        Reporter::start(doc, JsonFormat::Collbench, None, None).expect("the reporter");
    for i in 0..rows {
        let mut r = made[i % made.len()].clone();
        r.cycle = (i / made.len()) as u64;
        reporter.row(&r).expect("a row saved");
    }
    reporter.doc.header.life.complete(0);
    reporter.save().expect("the final save");
    let elapsed = started.elapsed().as_secs_f64();
    let written = wchar() - wrote_before;
    let size = std::fs::metadata(&json).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "ranks {ranks} rows {rows}: wrote {written} bytes ({:.1} MB, {:.2} x the document), document {size} bytes ({:.1} MB), peak memory {:.0} MB, {elapsed:.1} s",
        written as f64 / 1e6,
        written as f64 / size.max(1) as f64,
        size as f64 / 1e6,
        status_kb("VmHWM:") as f64 / 1024.0,
    );
}
