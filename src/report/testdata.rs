//! Small hand-made rows and ranks of the results model for unit tests (report, fleet, telemetry).

use crate::backend::DeviceInfo;
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::metrics::{algbw_gbps, busbw_gbps};
use crate::report::document::{
    DocumentHeader, Measurement, PlanReport, RankInfo, Row, RunDocument, RunStatus, Stats,
};

pub fn rank(rank: usize, host: &str) -> RankInfo {
    RankInfo {
        rank,
        host: host.into(),
        pid: 1000 + rank as u32,
        local_rank: rank,
        device: DeviceInfo {
            kind: "host".into(),
            index: None,
            name: "host memory".into(),
            pci_bus_id: None,
        },
    }
}

/// A measurement of `size` bytes taking `time_us`, with the bus factor of all_reduce on `ranks` ranks.
pub fn measurement(size: u64, ranks: usize, time_us: f64, stdev_us: Option<f64>) -> Measurement {
    let algbw = algbw_gbps(size, time_us);
    Measurement {
        time_us,
        algbw_gbps: algbw,
        busbw_gbps: busbw_gbps(algbw, Collective::AllReduce.bus_factor(ranks)),
        wrong: Some(0),
        check_skipped: None,
        iterations: 20,
        stats: stdev_us.map(|s| Stats {
            samples: 20,
            min_us: time_us - s,
            p50_us: time_us,
            p95_us: time_us + s,
            p99_us: time_us + 2.0 * s,
            max_us: time_us + 3.0 * s,
            mean_us: time_us,
            stdev_us: s,
            cv_percent: 100.0 * s / time_us,
            ci95_percent: 100.0 * 1.96 * s / 20f64.sqrt() / time_us,
            source: "test data".into(),
        }),
        rank_time_us: vec![time_us; ranks],
        rank_wrong: Vec::new(),
        groups: None,
        slowest_group: None,
        iteration_times_us: None,
        rank_iteration_times_us: None,
        cpu_time_us: None,
        energy: None,
    }
}

/// An all_reduce float sum row measured the same in both placements.
pub fn row(collective: Collective, size: u64, ranks: usize, time_us: f64) -> Row {
    Row {
        collective,
        dtype: DataType::Float,
        op: collective.reduces().then_some(ReduceOp::Sum),
        root: collective.rooted().then_some(0),
        size_bytes: size,
        count: size / 4,
        ranks,
        cycle: 0,
        bus_factor: collective.bus_factor(ranks),
        path: "native".into(),
        out_of_place: Some(measurement(size, ranks, time_us, Some(time_us * 0.01))),
        in_place: Some(measurement(size, ranks, time_us, Some(time_us * 0.01))),
        telemetry: None,
        layout: None,
        traffic: None,
        algorithm: None,
    }
}

/// A 1 MiB all_reduce row whose ranks took these times (mean as the row's time).
pub fn row_with_rank_times(times: &[f64]) -> Row {
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let mut r = row(Collective::AllReduce, 1 << 20, times.len(), mean);
    for m in [&mut r.out_of_place, &mut r.in_place].into_iter().flatten() {
        m.rank_time_us = times.to_vec();
    }
    r
}

/// A complete run document of these rows, from the mpi backend.
pub fn document(rows: Vec<Row>) -> RunDocument {
    let mut header = DocumentHeader::starting(
        crate::report::document::kind::RUN,
        &[],
        "test",
        "mpi",
        Default::default(),
    );
    header.collbench_version = "test".into();
    header.started_unix_s = 0.0;
    header.life.status = RunStatus::Complete;
    header.life.exit_code = Some(0);
    header.backend.reason = "test".into();
    RunDocument {
        header,
        plan: PlanReport {
            requested: serde_json::Value::Null,
            sizes: vec![],
            memory_cap: None,
        },
        notes: vec![],
        topology: None,
        peak_gbps: None,
        telemetry: None,
        rows,
        summary: None,
    }
}

/// A running document of four ranks on two hosts, before its first row.
pub fn running_document() -> RunDocument {
    let mut doc = document(Vec::new());
    doc.header.life = crate::report::document::RunLife::running("host-1-1700000000.0");
    doc.header.ranks = (0..4).map(|r| rank(r, ["a", "b"][r / 2])).collect();
    doc.notes = vec!["a note".into()];
    doc
}
