//! A collbench run written as nccl-tests' `-J` document (file version 3), so that nccl-tests' own
//! tools (tools/analyze_perf_json.py: --straggler, --spikes, --nodes) and a team's dashboards read it.
//! `-J FILE --json-format nccl-tests` writes it through `NcclTestsFile`, which also carries our own
//! document under the key `collbench` (its status and error when the run fails, every field of ours),
//! so that collbench reads the file back whole and a failing rank can still mark it.
//!
//! Where collbench and nccl-tests differ, the document says what collbench did:
//! - one `devices` entry and one `per_process_max_times_us` row per rank (collbench runs a process
//!   per rank; nccl-tests has one per process, the slowest of its GPUs at each iteration);
//! - the per-iteration times are collbench's sampled pass (`-I 1`: as many iterations as -n, after the
//!   timed loop, between timer marks), not events inside the timed loop; the statistics beside them
//!   are computed here as nccl-tests computes them (population stdev, nearest-rank percentiles, after
//!   -K leading iterations);
//! - `out_of_bounds.count` counts measurements with wrong elements (nccl-tests counts each rank's
//!   failed checks).

use super::document::{
    self, AverageBusBandwidth, Config, Device, Document, OutOfBounds, PerIteration, Placement,
};
use crate::report::document::{
    Document as OurDocument, DocumentHeader, Measurement, RunDocument, RunLife, RunStatus,
};
use crate::report::growing::Growing;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What the writer takes from the plan as recorded (`plan.requested`): the keys it knows, with
/// nccl-tests' defaults for those a plan does not have.
fn requested_u64(run: &RunDocument, key: &str) -> Option<u64> {
    run.plan.requested.get(key).and_then(|v| v.as_u64())
}

fn requested_bool(run: &RunDocument, key: &str) -> bool {
    run.plan
        .requested
        .get(key)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn config(run: &RunDocument) -> Config {
    let requested = &run.plan.requested;
    let step = requested.get("step");
    let by = step.and_then(|s| s.get("by")).and_then(|b| b.as_u64());
    let factor = step.and_then(|s| s.get("kind")).and_then(|k| k.as_str()) == Some("factor");
    let iterations = match requested.get("iters").and_then(|i| i.get("fixed")) {
        Some(n) => n.as_i64().unwrap_or(0),
        // -n auto: the most any measurement ran.
        None => run
            .rows
            .iter()
            .flat_map(|r| [&r.out_of_place, &r.in_place])
            .flatten()
            .map(|m| m.iterations as i64)
            .max()
            .unwrap_or(0),
    };
    let sizes = &run.plan.sizes;
    Config {
        nthreads: requested_u64(run, "threads").unwrap_or(1) as i64,
        ngpus: requested_u64(run, "gpus_per_thread").unwrap_or(1) as i64,
        minimum_bytes: sizes
            .first()
            .copied()
            .or(requested_u64(run, "min_bytes"))
            .unwrap_or(0),
        maximum_bytes: sizes
            .last()
            .copied()
            .or(requested_u64(run, "max_bytes"))
            .unwrap_or(0),
        step_factor: if factor { by } else { None },
        step_bytes: if factor { None } else { by.or(Some(0)) },
        warmup_iters: requested_u64(run, "warmup_iters").unwrap_or(0) as i64,
        iterations,
        aggregated_iterations: requested_u64(run, "agg_iters").unwrap_or(1) as i64,
        validation: requested_u64(run, "check_iters").unwrap_or(0) as i64,
        graph: requested_u64(run, "cudagraph_replays").unwrap_or(0) as i64,
        blocking_collectives: requested_bool(run, "blocking"),
        per_iter_timing: Some(measurements(run).any(|m| m.iteration_times_us.is_some())),
        per_iter_skip: Some(requested_u64(run, "per_iter_skip").unwrap_or(0) as i64),
        parallel_init: requested_bool(run, "parallel_init"),
        devices: run
            .header
            .ranks
            .iter()
            .map(|r| Device {
                rank: r.rank as i64,
                group: 0,
                pid: r.pid as i64,
                hostname: r.host.clone(),
                device: r.device.index.map(|i| i as i64).unwrap_or(-1),
                device_hex: r.device.pci_bus_id.clone().unwrap_or_default(),
                device_info: r.device.name.clone(),
            })
            .collect(),
    }
}

fn measurements(run: &RunDocument) -> impl Iterator<Item = &Measurement> {
    run.rows
        .iter()
        .flat_map(|r| [&r.out_of_place, &r.in_place])
        .flatten()
}

/// nccl-tests' computeIterStats over `times` (one per iteration): min, max, p50 = sorted[n/2], p95 and
/// p99 by its nearest-rank index, the mean and the population stdev.
pub fn iteration_stats(times: &[f64]) -> Option<(f64, f64, f64, f64, f64, f64, f64)> {
    if times.is_empty() {
        return None;
    }
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let index = |percentile: usize| (n - 1).min((n * percentile).div_ceil(100).saturating_sub(1));
    let avg = sorted.iter().sum::<f64>() / n as f64;
    let stdev = (sorted.iter().map(|t| (t - avg).powi(2)).sum::<f64>() / n as f64).sqrt();
    Some((
        sorted[0],
        sorted[n - 1],
        avg,
        sorted[n / 2],
        sorted[index(95)],
        sorted[index(99)],
        stdev,
    ))
}

fn per_iteration(m: &Measurement, skip: usize) -> Option<PerIteration> {
    let times = m.iteration_times_us.as_ref()?;
    let skip = skip.min(times.len().saturating_sub(1));
    let (min, max, avg, p50, p95, p99, stdev) = iteration_stats(&times[skip..])?;
    Some(PerIteration {
        skipped_iterations: skip as i64,
        min_us: min,
        max_us: max,
        avg_us: avg,
        p50_us: p50,
        p95_us: p95,
        p99_us: p99,
        stdev_us: stdev,
        cv_pct: if avg > 0.0 { 100.0 * stdev / avg } else { 0.0 },
        times_us: times.clone(),
        // nccl-tests writes process rows only when there are several processes.
        per_process_max_times_us: m
            .rank_iteration_times_us
            .clone()
            .filter(|rows| rows.len() > 1),
    })
}

fn placement(m: &Measurement, cpu_time: bool) -> Placement {
    Placement {
        time: (!cpu_time).then_some(m.time_us),
        cpu_time: cpu_time.then_some(m.time_us),
        alg_bw: m.algbw_gbps,
        bus_bw: m.busbw_gbps,
        nwrong: m.wrong.map(|w| w as f64),
    }
}

/// The run as nccl-tests' document, without our own copy (see `NcclTestsFile` for the file).
pub fn document(run: &RunDocument) -> Document {
    document_around(run, results(run))
}

/// nccl-tests' `results`: one per row.
fn results(run: &RunDocument) -> Vec<document::Result> {
    let skip = requested_u64(run, "per_iter_skip").unwrap_or(0) as usize;
    let cpu_time = requested_bool(run, "report_cputime");
    run.rows
        .iter()
        .map(|row| document::Result {
            size: row.size_bytes,
            count: row.count,
            dtype: row.dtype.name().to_string(),
            redop: row
                .op
                .map(|o| o.name().to_string())
                .unwrap_or_else(|| "none".into()),
            root: format!("{:6}", row.root.map(|r| r as i64).unwrap_or(-1)),
            out_of_place: row.out_of_place.as_ref().map(|m| placement(m, cpu_time)),
            out_of_place_per_iter: row
                .out_of_place
                .as_ref()
                .and_then(|m| per_iteration(m, skip)),
            in_place: row.in_place.as_ref().map(|m| placement(m, cpu_time)),
            in_place_per_iter: row.in_place.as_ref().and_then(|m| per_iteration(m, skip)),
            actual_iterations: row
                .out_of_place
                .as_ref()
                .or(row.in_place.as_ref())
                .map(|m| m.iterations as i64),
            experiment_name: Some(String::new()),
        })
        .collect()
}

/// nccl-tests' document of the run around `results`, which the caller holds.
fn document_around(run: &RunDocument, results: Vec<document::Result>) -> Document {
    let ended = run.header.life.status != RunStatus::Running;
    let wrong = measurements(run)
        .filter(|m| m.wrong.unwrap_or(0) > 0)
        .count() as i64;
    let busbws: Vec<f64> = measurements(run).map(|m| m.busbw_gbps).collect();
    let average = run
        .summary
        .as_ref()
        .and_then(|s| s.avg_busbw.as_ref())
        .map(|a| a.gbps)
        .unwrap_or_else(|| busbws.iter().sum::<f64>() / busbws.len().max(1) as f64);
    let min_bw = run
        .plan
        .requested
        .get("min_bw_gbps")
        .and_then(|v| v.as_f64());
    Document {
        version: document::FILE_VERSION,
        start_time: crate::ffi::clock::local_time(run.header.started_unix_s),
        args: run.header.command_line.clone(),
        env: run
            .header
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        nccl_version: run
            .header
            .backend
            .libraries
            .iter()
            .find(|l| l.library == "NCCL")
            .and_then(|l| super::version_code(&l.version)),
        config: Some(config(run)),
        results,
        out_of_bounds: ended.then_some(OutOfBounds {
            count: wrong,
            okay: wrong == 0,
        }),
        average_bus_bandwidth: ended.then(|| AverageBusBandwidth {
            bandwidth: average,
            okay: match min_bw {
                None => "unchecked".into(),
                Some(min) => (average >= 0.9 * min).to_string(),
            },
        }),
        errors: ended.then(|| run.header.life.error.iter().cloned().collect()),
        end_time: ended
            .then(|| crate::ffi::clock::local_time(run.header.life.heartbeat_unix_s))
            .flatten(),
        collbench: None,
    }
}

/// A run document as `-J FILE --json-format nccl-tests` writes it: nccl-tests' document with ours under
/// `collbench` (the per-iteration times only once, in nccl-tests' part), and the run's life at the top
/// level, last, where `-J`'s writer, a failing rank and the signal handler rewrite it (growing.rs).
/// `results` is the list that grows; ours under `collbench` is rewritten at every save, so this format
/// costs what the whole document holds per save, not what a row adds: the fleet's format is ours.
#[derive(Debug, Clone)]
pub struct NcclTestsFile(pub RunDocument, Vec<document::Result>);

impl NcclTestsFile {
    pub fn new(run: RunDocument) -> NcclTestsFile {
        let results = results(&run);
        NcclTestsFile(run, results)
    }
}

impl Growing for NcclTestsFile {
    type Item = document::Result;
    const LIST: &'static str = "results";
    fn items(&self) -> &[document::Result] {
        &self.1
    }
    fn items_mut(&mut self) -> &mut Vec<document::Result> {
        &mut self.1
    }
}

impl OurDocument for NcclTestsFile {
    fn header(&self) -> &DocumentHeader {
        &self.0.header
    }
    fn header_mut(&mut self) -> &mut DocumentHeader {
        &mut self.0.header
    }
}

impl Serialize for NcclTestsFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The list as the writer holds it (taken out while the document around it is cut).
        let mut doc = document_around(&self.0, self.1.clone());
        let mut ours = self.0.clone();
        for row in &mut ours.rows {
            for m in [&mut row.out_of_place, &mut row.in_place]
                .into_iter()
                .flatten()
            {
                m.iteration_times_us = None;
                m.rank_iteration_times_us = None;
            }
        }
        doc.collbench = Some(serde_json::to_value(&ours).map_err(serde::ser::Error::custom)?);
        doc.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NcclTestsFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let doc = Document::deserialize(&value).map_err(serde::de::Error::custom)?;
        // The life at the top level is the latest: a signal or a failing rank rewrites only that one.
        let life = value
            .get("status")
            .is_some()
            .then(|| RunLife::deserialize(&value).ok())
            .flatten();
        let ours = doc.collbench.clone().ok_or_else(|| {
            serde::de::Error::custom(
                "an nccl-tests document without collbench's own (key `collbench`)",
            )
        })?;
        let mut run = RunDocument::deserialize(ours).map_err(serde::de::Error::custom)?;
        reattach(&mut run, &doc);
        if let Some(life) = life {
            run.header.life = life;
        }
        Ok(NcclTestsFile(run, doc.results))
    }
}

/// Puts the per-iteration times of nccl-tests' part back into our rows (one result per row, in order).
pub fn reattach(run: &mut RunDocument, doc: &Document) {
    for (row, result) in run.rows.iter_mut().zip(&doc.results) {
        for (m, per) in [
            (&mut row.out_of_place, &result.out_of_place_per_iter),
            (&mut row.in_place, &result.in_place_per_iter),
        ] {
            if let (Some(m), Some(per)) = (m.as_mut(), per) {
                m.iteration_times_us = Some(per.times_us.clone());
                m.rank_iteration_times_us = per.per_process_max_times_us.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::report::testdata::{measurement, rank, row};

    fn run() -> RunDocument {
        let mut rows = vec![
            row(Collective::AllReduce, 1024, 2, 10.0),
            row(Collective::Broadcast, 2048, 2, 20.0),
        ];
        let m = rows[0].out_of_place.as_mut().unwrap();
        m.iteration_times_us = Some(vec![12.0, 10.0, 11.0, 9.0]);
        m.rank_iteration_times_us = Some(vec![
            vec![12.0, 9.0, 11.0, 9.0],
            vec![11.0, 10.0, 10.0, 8.0],
        ]);
        rows[1].in_place = Some(measurement(2048, 2, 21.0, None));
        let mut doc = crate::report::testdata::document(rows);
        doc.header.ranks = vec![rank(0, "node1"), rank(1, "node2")];
        // testdata's document is complete; this one is still running.
        doc.header.life.status = RunStatus::Running;
        doc.header.life.exit_code = None;
        doc.plan.requested = serde_json::json!({
            "threads": 1, "gpus_per_thread": 1, "step": {"kind": "factor", "by": 2},
            "iters": {"fixed": 4}, "warmup_iters": 1, "agg_iters": 1, "check_iters": 1,
            "cudagraph_replays": 0, "blocking": false, "per_iter_skip": 1
        });
        doc.plan.sizes = vec![1024, 2048];
        doc
    }

    #[test]
    fn nccl_tests_statistics_follow_compute_iter_stats() {
        // 1..=100: p50 = sorted[50] = 51, p95 = sorted[94] = 95, p99 = sorted[98] = 99.
        let times: Vec<f64> = (1..=100).map(f64::from).collect();
        let (min, max, avg, p50, p95, p99, stdev) = iteration_stats(&times).unwrap();
        assert_eq!(
            (min, max, avg, p50, p95, p99),
            (1.0, 100.0, 50.5, 51.0, 95.0, 99.0)
        );
        assert!((stdev - 28.86607004772212).abs() < 1e-9, "population stdev");
        // Three samples: p99's index is min(2, ceil(297/100) - 1) = 2.
        assert_eq!(iteration_stats(&[3.0, 1.0, 2.0]).unwrap().5, 3.0);
        assert!(iteration_stats(&[]).is_none());
    }

    #[test]
    fn a_run_as_nccl_tests_writes_it() {
        let mut run = run();
        run.header.life.complete(0);
        let doc = document(&run);
        assert_eq!(doc.version, 3);
        let config = doc.config.as_ref().unwrap();
        assert_eq!((config.step_factor, config.step_bytes), (Some(2), None));
        assert_eq!(config.iterations, 4);
        assert_eq!(config.per_iter_timing, Some(true));
        assert_eq!(config.devices[1].hostname, "node2");
        let r = &doc.results[0];
        assert_eq!(
            (r.dtype.as_str(), r.redop.as_str(), r.root.as_str()),
            ("float", "sum", "    -1")
        );
        let per = r.out_of_place_per_iter.as_ref().unwrap();
        // -K 1 leaves the first iteration out of the statistics, not out of times_us.
        assert_eq!(per.skipped_iterations, 1);
        assert_eq!(per.times_us.len(), 4);
        assert_eq!((per.min_us, per.max_us), (9.0, 11.0));
        assert_eq!(per.per_process_max_times_us.as_ref().unwrap().len(), 2);
        assert!(r.in_place_per_iter.is_none());
        assert_eq!(doc.results[1].redop, "none");
        assert_eq!(doc.results[1].root, "     0");
        assert_eq!(doc.out_of_bounds.as_ref().unwrap().count, 0);
        assert_eq!(
            doc.average_bus_bandwidth.as_ref().unwrap().okay,
            "unchecked"
        );
        assert_eq!(doc.errors.as_deref(), Some(&[][..]));
    }

    #[test]
    fn a_running_document_has_no_footer_and_a_failed_one_says_why() {
        let mut run = run();
        let doc = document(&run);
        assert!(doc.out_of_bounds.is_none() && doc.errors.is_none() && doc.end_time.is_none());
        run.header
            .life
            .fail("NCCL error: unhandled system error", 3, Some(1));
        let doc = document(&run);
        assert_eq!(
            doc.errors.unwrap(),
            ["NCCL error: unhandled system error".to_string()]
        );
    }

    #[test]
    fn the_life_at_the_top_level_wins_over_the_nested_copy_when_read_back() {
        // -J's writer puts the life last at the top level (growing.rs) and a signal rewrites only that
        // one: reading the file back must take it over the nested copy.
        let mut value = serde_json::to_value(NcclTestsFile::new(run())).unwrap();
        assert_ne!(value["collbench"]["status"], "interrupted");
        value["status"] = "interrupted".into();
        value["error"] = "interrupted by a signal".into();
        let back: NcclTestsFile = serde_json::from_value(value).unwrap();
        assert_eq!(back.0.header.life.status, RunStatus::Interrupted);
        assert_eq!(
            back.0.header.life.error.as_deref(),
            Some("interrupted by a signal")
        );
    }

    #[test]
    fn the_file_reads_back_whole_with_its_times_stored_once() {
        let file = NcclTestsFile::new(run());
        let text = serde_json::to_string(&file).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ours = &value["collbench"]["rows"][0]["out_of_place"];
        assert!(
            ours.get("iteration_times_us").is_none(),
            "stored once, in nccl-tests' part"
        );
        let back: NcclTestsFile = serde_json::from_str(&text).unwrap();
        let m = back.0.rows[0].out_of_place.as_ref().unwrap();
        assert_eq!(
            m.iteration_times_us.as_deref(),
            Some(&[12.0, 10.0, 11.0, 9.0][..])
        );
        assert_eq!(m.rank_iteration_times_us.as_ref().unwrap()[1][3], 8.0);
        assert_eq!(back.0.header.life.status, RunStatus::Running);
        // A document nccl-tests wrote has no copy of ours.
        let plain = serde_json::to_string(&document(&run())).unwrap();
        assert!(serde_json::from_str::<NcclTestsFile>(&plain).is_err());
    }
}
