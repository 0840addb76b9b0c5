//! The typed results of a run: one document holding the plan, the ranks and every measured row.
//! It is what `--json` writes (schema in docs/JSON.md) and what compare and plot read.

use crate::backend::{DeviceInfo, LibraryVersion};
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a field changes meaning or disappears; adding a field keeps the version.
pub const SCHEMA_VERSION: u32 = 1;

/// What every results document (a run's, `collbench pairs`', `collbench workload`'s) begins with, at
/// its top level: which document and command, when, its life on disk, the backend and its libraries, and
/// the ranks. It is written before the backend opens, so that every outcome leaves a document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentHeader {
    /// "run", "pairs" or "workload"; empty in run documents from before it was recorded.
    #[serde(default)]
    pub kind: String,
    pub schema_version: u32,
    pub collbench_version: String,
    pub command_line: Vec<String>,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: f64,
    /// run_id, status, error, exit_code, failed_rank and heartbeat_unix_s, at the top level.
    #[serde(flatten)]
    pub life: RunLife,
    /// Variables that change how the libraries behave (NCCL_*, RCCL_*, OMPI_*, UCX_*, *_VISIBLE_DEVICES).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// The backend ("not chosen yet" until it opens) and every library it loaded, MPI's included.
    pub backend: BackendReport,
    /// Every rank: host, process, device; empty until the backend has opened.
    #[serde(default)]
    pub ranks: Vec<RankInfo>,
}

/// The kinds of results document, for `DocumentHeader::kind`.
pub mod kind {
    pub const RUN: &str = "run";
    pub const PAIRS: &str = "pairs";
    pub const WORKLOAD: &str = "workload";
}

impl DocumentHeader {
    /// The header of a `kind` document that starts now, for `command_line`, before any backend exists:
    /// `backend` names the one asked for.
    pub fn starting(
        kind: &str,
        command_line: &[String],
        run_id: &str,
        backend: &str,
        environment: BTreeMap<String, String>,
    ) -> DocumentHeader {
        let now = unix_now_s();
        DocumentHeader {
            kind: kind.to_string(),
            schema_version: SCHEMA_VERSION,
            collbench_version: env!("CARGO_PKG_VERSION").to_string(),
            command_line: command_line.to_vec(),
            started_unix_s: now,
            life: RunLife {
                heartbeat_unix_s: now,
                ..RunLife::running(run_id)
            },
            environment,
            backend: BackendReport {
                name: backend.to_string(),
                reason: "not chosen yet".into(),
                libraries: Vec::new(),
            },
            ranks: Vec::new(),
        }
    }
}

/// A results document of any kind: its header, for the code that keeps every document's life.
pub trait Document {
    fn header(&self) -> &DocumentHeader;
    fn header_mut(&mut self) -> &mut DocumentHeader;
}

impl<D: Document> HasLife for D {
    fn life(&self) -> &RunLife {
        &self.header().life
    }
    fn life_mut(&mut self) -> &mut RunLife {
        &mut self.header_mut().life
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDocument {
    /// kind "run", versions, command line, start, life, environment, backend and ranks, at the top level.
    #[serde(flatten)]
    pub header: DocumentHeader,
    pub plan: PlanReport,
    pub notes: Vec<String>,
    /// What each node's GPUs, links and NICs are, and the speed of light of the communicator.
    #[serde(default)]
    pub topology: Option<TopologyReport>,
    /// The peak busbw is compared with (GB/s per GPU and direction), from --peak or the topology.
    #[serde(default)]
    pub peak_gbps: Option<f64>,
    /// Each rank's GPU telemetry source and limits (max clocks, power limit); null with --no-telemetry.
    #[serde(default)]
    pub telemetry: Option<super::gpu_readings::TelemetryHeader>,
    pub rows: Vec<Row>,
    /// Null until the sweep has finished.
    pub summary: Option<Summary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopologyReport {
    /// One entry per host, as discovered by its first rank.
    pub nodes: Vec<crate::topo::NodeTopology>,
    /// Each rank's host and GPU.
    pub placements: Vec<crate::topo::peak::RankPlacement>,
    /// The communicator's peak (all ranks), or null with `peak_unknown` saying why.
    pub peak: Option<crate::topo::peak::Peak>,
    pub peak_unknown: Option<String>,
    /// The peak of each host's ranks on their own (the intra-node fabric).
    pub host_peaks: BTreeMap<String, Option<crate::topo::peak::Peak>>,
}

/// How a run stands and how it ended: the fields every results document (run, pairs, workload) carries
/// at its top level, which src/app/record.rs keeps true on disk whatever ends the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLife {
    /// Names this run, so that a rank updating the file knows it is its own run's document.
    #[serde(default)]
    pub run_id: String,
    /// running (still measuring; see `heartbeat_unix_s`), complete, failed (with `error` and
    /// `exit_code`) or interrupted (a signal: Ctrl-C, the launcher or a scheduler ending the job).
    pub status: RunStatus,
    #[serde(default)]
    pub error: Option<String>,
    /// The process exit code the run ended with; null while running.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The rank whose failure ended the run, when one did and it is known.
    #[serde(default)]
    pub failed_rank: Option<usize>,
    /// Seconds since the Unix epoch of the last update. A running document is rewritten at least every
    /// `HEARTBEAT_S` seconds: one whose heartbeat is much older belongs to a run that died unannounced.
    #[serde(default)]
    pub heartbeat_unix_s: f64,
}

impl RunLife {
    /// A run that starts now.
    pub fn running(run_id: &str) -> RunLife {
        RunLife {
            run_id: run_id.to_string(),
            status: RunStatus::Running,
            error: None,
            exit_code: None,
            failed_rank: None,
            heartbeat_unix_s: unix_now_s(),
        }
    }

    /// The run has ended as it should, with `exit_code`.
    pub fn complete(&mut self, exit_code: i32) {
        self.status = RunStatus::Complete;
        self.exit_code = Some(exit_code);
    }

    /// The run failed: `error` in the library's or our words, the exit code it ends with, and the rank
    /// whose failure ended it where that is known.
    pub fn fail(&mut self, error: &str, exit_code: i32, rank: Option<usize>) {
        self.status = RunStatus::Failed;
        self.error = Some(error.to_string());
        self.exit_code = Some(exit_code);
        self.failed_rank = rank;
        self.heartbeat_unix_s = unix_now_s();
    }
}

/// A results document with a life on disk: any of collbench's, for src/app/record.rs.
pub trait HasLife {
    fn life(&self) -> &RunLife;
    fn life_mut(&mut self) -> &mut RunLife;
}

impl Document for RunDocument {
    fn header(&self) -> &DocumentHeader {
        &self.header
    }
    fn header_mut(&mut self) -> &mut DocumentHeader {
        &mut self.header
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Complete,
    Failed,
    Interrupted,
}

/// How often a running document's heartbeat is refreshed on disk, in seconds.
pub const HEARTBEAT_S: f64 = 15.0;

/// Seconds since the Unix epoch, now.
pub fn unix_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendReport {
    pub name: String,
    /// Why this backend was used (what --backend auto found, or "requested").
    pub reason: String,
    pub libraries: Vec<LibraryVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    /// The validated command-line plan.
    pub requested: serde_json::Value,
    /// The sizes measured, in bytes, after any memory cap.
    pub sizes: Vec<u64>,
    /// The largest size, when the memory free on some rank lowered it below -e.
    pub memory_cap: Option<MemoryCap>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryCap {
    pub requested_max_bytes: u64,
    pub capped_max_bytes: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankInfo {
    pub rank: usize,
    pub host: String,
    pub pid: u32,
    pub local_rank: usize,
    pub device: DeviceInfo,
}

/// One line of the table: a collective at one size, type, operator and root, in both placements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub collective: Collective,
    pub dtype: DataType,
    /// Null for collectives that do not reduce.
    pub op: Option<ReduceOp>,
    /// Null for collectives without a root.
    pub root: Option<usize>,
    /// The `size` column: bytes that algbw divides by time.
    pub size_bytes: u64,
    /// The `count` column: elements passed to the library call.
    pub count: u64,
    pub ranks: usize,
    /// Which repetition of the sweep (-N), from 0.
    pub cycle: u64,
    /// busbw / algbw for this collective and rank count.
    pub bus_factor: f64,
    /// How the library carried the collective ("native", "grouped send/recv").
    pub path: String,
    pub out_of_place: Option<Measurement>,
    pub in_place: Option<Measurement>,
    /// Each rank's GPU readings while the row ran (min/max of each, throttle reasons), in rank order,
    /// null for a rank without telemetry; null when no rank has any.
    #[serde(default)]
    pub telemetry: Option<Vec<Option<super::gpu_readings::RankTelemetry>>>,
    /// The layout of --groups this row measured (every group at once); absent for the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutReport>,
    /// all_to_allv's per-peer traffic (its source, phase, imbalance, each rank's bytes); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<crate::traffic::TrafficReport>,
    /// -A: the algorithm, protocol and channels the library chose for this size, where it tells (RCCL
    /// 7's rcclGetAlgoInfo); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<crate::backend::AlgoChoice>,
}

impl Row {
    /// One rank's GPU readings in this row, when it has some.
    pub fn rank_telemetry(&self, rank: usize) -> Option<&super::gpu_readings::RankTelemetry> {
        self.telemetry.as_ref()?.get(rank)?.as_ref()
    }

    /// The `--telemetry` table cells of this row, over every rank: lowest SM clock (MHz), highest
    /// temperature (C), highest power (W); "-" where no rank has the reading.
    pub fn telemetry_cells(&self) -> [String; 3] {
        use super::gpu_readings::{widest, RankTelemetry};
        let all: Vec<&RankTelemetry> = self.telemetry.iter().flatten().flatten().collect();
        let pick = |get: fn(&RankTelemetry) -> Option<f64>, f: fn(f64, f64) -> f64| {
            widest(all.iter().filter_map(|t| get(t)), f)
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".into())
        };
        [
            pick(|t| t.sm_clock_mhz.map(|r| r.min), f64::min),
            pick(|t| t.temperature_c.map(|r| r.max), f64::max),
            pick(|t| t.power_w.map(|r| r.max), f64::max),
        ]
    }
}

/// A --groups layout: its spec, its label ("2x4": two groups of four) and every group's members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutReport {
    pub spec: String,
    pub label: String,
    pub groups: Vec<Group>,
}

/// One group of a layout: its members (job ranks, in group-rank order) and their hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub members: Vec<usize>,
    pub hosts: Vec<String>,
}

/// One group's own figures in one placement: its time combined over its members by -a, and its bandwidth.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupFigures {
    pub time_us: f64,
    pub algbw_gbps: f64,
    pub busbw_gbps: f64,
    /// busbw over the group's own peak, when its peak is known.
    #[serde(default)]
    pub peak_percent: Option<f64>,
    pub wrong: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// nccl-tests' time: host clock around the timed loop divided by iterations, combined over ranks by -a.
    pub time_us: f64,
    /// size / time, in GB/s (1 GB = 1e9 bytes).
    pub algbw_gbps: f64,
    /// algbw x bus factor.
    pub busbw_gbps: f64,
    /// Wrong elements summed over ranks and check iterations; null when the check is off or the library
    /// does not define this form (see `check_skipped`).
    pub wrong: Option<u64>,
    /// Why this measurement was timed but not checked though the check is on: the library leaves the
    /// in-place form undefined (NCCL's all_to_all and sendrecv). Left out of the check's verdict.
    #[serde(default)]
    pub check_skipped: Option<String>,
    /// Timed iterations (each of -m operations).
    pub iterations: u64,
    /// Distribution of per-iteration times (slowest rank at each iteration).
    pub stats: Option<Stats>,
    /// Each rank's own mean time per operation, in rank order.
    pub rank_time_us: Vec<f64>,
    /// The host time of the timed loop's launches per operation (until the last returned, before the
    /// wait), combined over ranks as `time_us`: what nccl-tests' -C 1 reports. Absent in documents from
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_us: Option<f64>,
    /// Each rank's wrong elements over the check iterations, in rank order, for a caller that blames a
    /// pair or a rank (`collbench pairs`); not stored: `wrong` is their sum.
    #[serde(skip)]
    pub rank_wrong: Vec<u64>,
    /// With --groups: each group's figures, in the layout's group order; the row's figures are those of
    /// the slowest group (an iteration lasts until its last group is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupFigures>>,
    /// With --groups: the index of the slowest group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_group: Option<usize>,
    /// Every sampled iteration's time per operation, the slowest rank at each, in order; kept only when
    /// asked (`-I 1`), since `stats` summarises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration_times_us: Option<Vec<f64>>,
    /// Each rank's own sampled iteration times, in rank order (nccl-tests' per-process rows); kept only
    /// with `-I 1 --json-format nccl-tests`, whose analysis tool reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_iteration_times_us: Option<Vec<Vec<f64>>>,
    /// The energy the timed loop used, where some rank's GPU has an energy counter; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<Energy>,
}

/// The energy of a measurement's timed loop, from each rank's GPU energy counter read just before the
/// loop's clock starts and just after it stops (never inside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// Each rank's joules over its timed loop, in rank order; null for a rank whose GPU has no counter.
    pub rank_joules: Vec<Option<f64>>,
    /// Ranks whose counter was read.
    pub ranks_read: usize,
    /// Joules of one operation summed over the ranks that read: the job's energy per operation.
    pub joules_per_op: f64,
    /// The size column's bytes over one rank's joules per operation (the mean over the ranks that
    /// read), in GB (1e9 bytes) per joule: what one GPU moves per joule, algbw over its power.
    pub gb_per_joule: f64,
}

impl Energy {
    /// The figures of `rank_joules` over a timed loop of `ops` operations of `size_bytes`; None when no
    /// rank read a counter.
    pub fn from_ranks(rank_joules: Vec<Option<f64>>, ops: u64, size_bytes: u64) -> Option<Energy> {
        let read: Vec<f64> = rank_joules.iter().flatten().copied().collect();
        if read.is_empty() || ops == 0 {
            return None;
        }
        let job = read.iter().sum::<f64>() / ops as f64;
        let per_rank = job / read.len() as f64;
        Some(Energy {
            ranks_read: read.len(),
            joules_per_op: job,
            gb_per_joule: if per_rank > 0.0 {
                size_bytes as f64 / per_rank / 1e9
            } else {
                0.0
            },
            rank_joules,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub samples: usize,
    pub min_us: f64,
    pub p50_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    pub stdev_us: f64,
    pub cv_percent: f64,
    /// Half-width of the 95 % confidence interval of the mean, as a percentage of the mean
    /// (1.96 x stdev / sqrt(samples)); what `-n auto` drives down.
    #[serde(default)]
    pub ci95_percent: f64,
    /// Where the samples came from: a separate pass after the timed loop (whose time carries no
    /// per-iteration marks), or the -n auto batches. Empty in documents from before it was recorded.
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Wrong elements over every row; null when the check was off.
    pub wrong_total: Option<u64>,
    pub check_passed: Option<bool>,
    pub avg_busbw: Option<BusBwFigure>,
    pub peak_busbw: Option<BusBwFigure>,
    pub exit_code: i32,
    /// Ranks and hosts slower than the median rank beyond --slow-threshold.
    #[serde(default)]
    pub slow_ranks: Option<super::verdicts::SlowRankReport>,
    /// The verdicts of the --expect rules, when any were given.
    #[serde(default)]
    pub gate: Option<super::verdicts::GateReport>,
    /// Throttled ranks and the readings behind each slow rank; null when no GPU was read.
    #[serde(default)]
    pub telemetry: Option<super::gpu_readings::TelemetrySummary>,
    /// The link probe after the sweep (jobs over several hosts): pair figures and who is to blame.
    #[serde(default)]
    pub link_probe: Option<super::link_probe::LinkProbe>,
    /// Each host's RDMA port error counters read before and after the run, and those that rose (or
    /// were reset) meanwhile; null when no host had a readable counter.
    #[serde(default)]
    pub link_errors: Option<super::port_errors::LinkErrorReport>,
    /// NCCL_TESTS_MIN_BW's verdict on the average bus bandwidth; absent without the variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bw: Option<super::verdicts::MinBwCheck>,
    /// -M 1: the GPU memory the run used, the most of any rank; absent without -M.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
}

/// nccl-tests' -M report: device memory taken by creating the communicators, by the buffers (with their
/// registration), and by the collectives while the rows ran, each the most of any rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReport {
    pub initialization_bytes: u64,
    pub user_allocated_bytes: u64,
    pub collective_bytes: u64,
}

/// A bus-bandwidth figure and exactly which rows it covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusBwFigure {
    pub gbps: f64,
    /// Number of busbw values (row x placement) it is made of.
    pub values: usize,
    pub covers: String,
}
