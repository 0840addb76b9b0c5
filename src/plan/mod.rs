//! The validated plan of a run: what the command line asked for, typed and checked before anything runs.
//!
//! The files: `tool_flags` checks nccl-tests' and rccl-tests' flags beyond the sweep, `traffic_flags`
//! the all_to_allv traffic and the --groups layouts; this file has the Plan and its building.

#[cfg(test)]
mod tests;
mod tool_flags;
mod traffic_flags;

use tool_flags::{rccl_tests_flags, NcclTestsFlags};
use traffic_flags::{groups_from, traffic_from_args};

pub use crate::backend::BackendChoice;
pub use crate::backend::Registration;
use crate::backend::{Allocator, BackendRequest, GpuOptions, MemoryKind};
use crate::cli::RunArgs;
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::layout::GroupSpec;
pub use crate::metrics::Average;
pub use crate::report::rccl_results::RcclFormat;
use crate::size::{parse_size, sweep, Step};
use crate::traffic::Traffic;
use serde::Serialize;
use std::path::PathBuf;

/// How many timed iterations each size gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Iterations {
    Fixed(u64),
    /// Until the 95 % confidence half-width of the mean is within `ci_target_percent`, at least `min`
    /// iterations, at most `cap_s` seconds of timed iterations per size.
    Auto {
        ci_target_percent: f64,
        min: u64,
        cap_s: f64,
    },
}

/// Which placements each size measures (rccl-tests' -O): both unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Placements {
    pub out_of_place: bool,
    pub in_place: bool,
}

impl Placements {
    pub const BOTH: Placements = Placements {
        out_of_place: true,
        in_place: true,
    };

    /// Whether the placement `in_place` is measured.
    pub fn measures(self, in_place: bool) -> bool {
        if in_place {
            self.in_place
        } else {
            self.out_of_place
        }
    }
}

/// rccl-tests' -E 1 rotates timed iterations between offsets this far apart (its `cache_bytes`: larger
/// than an MI300X's 256 MB Infinity Cache is not needed, as the two halves are never both hot), and every
/// buffer grows by as much.
pub const ROTATING_TENSOR_BYTES: u64 = 192 << 20;

/// Roots of rooted collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Roots {
    One(usize),
    All,
}

/// nccl-tests' -z: what a timed iteration waits for before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocking {
    /// -z 0: iterations are enqueued back to back; one wait ends the loop.
    #[default]
    Off,
    /// -z 1: each iteration is waited for, then every rank meets at a barrier (inside the time).
    WaitAndBarrier,
    /// -z 2: each iteration is waited for; no barrier.
    Wait,
    /// -z 3: each iteration is waited for and the ranks meet at a barrier, the barrier left out of the
    /// time (the time is the sum of the iterations' own).
    WaitAndBarrierUntimed,
}

impl Blocking {
    /// nccl-tests' -z number.
    pub fn code(self) -> u8 {
        match self {
            Blocking::Off => 0,
            Blocking::WaitAndBarrier => 1,
            Blocking::Wait => 2,
            Blocking::WaitAndBarrierUntimed => 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub collectives: Vec<Collective>,
    pub dtypes: Vec<DataType>,
    pub ops: Vec<ReduceOp>,
    pub roots: Roots,
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub step: Step,
    pub iters: Iterations,
    pub warmup_iters: u64,
    pub agg_iters: u64,
    pub check_iters: u64,
    pub average: Average,
    pub blocking: Blocking,
    pub cudagraph_replays: u64,
    /// Iterations of the separate sampled pass that gives the per-iteration distribution; None: as many
    /// as the timed loop ran, at most `DEFAULT_MAX_SAMPLES`.
    pub samples: Option<u64>,
    pub timeout_s: Option<f64>,
    pub run_cycles: u64,
    pub gpus_per_thread: usize,
    pub threads: usize,
    pub backend: BackendChoice,
    pub nccl_lib: Option<PathBuf>,
    pub rccl_lib: Option<PathBuf>,
    pub alloc: Allocator,
    pub seed: u64,
    pub expect: Vec<crate::fleet::gate::Rule>,
    pub slow_threshold_percent: f64,
    pub peak_override_gbps: Option<f64>,
    /// Each rank reads its GPU while rows run (off with --no-telemetry).
    pub telemetry: bool,
    /// --groups layouts (or NCCL_TESTS_SPLIT's one), in order; empty for the whole job.
    pub groups: Vec<GroupSpec>,
    /// Where the layouts came from ("--groups 8,4" or "NCCL_TESTS_SPLIT=MOD2"), for the header.
    pub groups_from: Option<String>,
    /// Where all_to_allv's per-peer bytes come from (spread, --matrix, --moe).
    #[serde(skip)]
    pub traffic: Traffic,
    #[serde(skip)]
    pub stats_columns: bool,
    #[serde(skip)]
    pub telemetry_columns: bool,
    #[serde(skip)]
    pub progress: bool,
    #[serde(skip)]
    pub csv: Option<PathBuf>,
    #[serde(skip)]
    pub json: Option<PathBuf>,
    #[serde(skip)]
    pub quiet: bool,
    /// Probe the links between hosts after the sweep when the job spans several (off with --no-link-probe).
    pub link_probe: bool,
    /// -R: the buffers registered with the communicator.
    pub register: Registration,
    /// -x: the communicator's CTA policy.
    pub cta_policy: Option<u8>,
    /// -C 1: the table's time column is the enqueue loop's host time.
    pub report_cputime: bool,
    /// -S 1: a timestamp at the end of every row of the table.
    #[serde(skip)]
    pub timestamps: bool,
    /// -p 1 (collbench's threads initialise in parallel either way).
    pub parallel_init: bool,
    /// -y 1: the legacy default stream.
    pub null_stream: bool,
    /// -M 1: the GPU memory report.
    pub memory_report: bool,
    /// -u: elements by which both buffers are misaligned.
    pub unalign: u64,
    /// -I 1: every iteration's time kept (the sampled pass covers all -n iterations).
    pub per_iter_timing: bool,
    /// -K: leading iterations left out of the per-iteration statistics.
    pub per_iter_skip: u64,
    /// --json-format: what -J writes.
    pub json_format: crate::report::json::JsonFormat,
    /// NCCL_TESTS_MIN_BW: the average bus bandwidth must reach 0.9 x this (GB/s).
    pub min_bw_gbps: Option<f64>,
    /// NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY: nccl-tests' per-rank lines under every all_to_allv row.
    #[serde(skip)]
    pub alltoallv_summary: bool,
    /// -O: the placements each size measures.
    pub placements: Placements,
    /// -q: microseconds between a size's out-of-place and in-place measurements.
    pub delay_inout_place_us: u64,
    /// -Y: what memory the GPU buffers are.
    pub memory: MemoryKind,
    /// -E 1: timed iterations alternate between offsets `ROTATING_TENSOR_BYTES` apart.
    pub rotating_tensor: bool,
    /// -A 1: the algo, proto and channels the library chooses, per size.
    pub algo_columns: bool,
    /// -Z/-X: rccl-tests' own results file.
    pub rccl_output: Option<(RcclFormat, PathBuf)>,
}

fn list<T>(
    text: &str,
    flag: &str,
    all: &[T],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>>
where
    T: Copy + PartialEq,
{
    if text.eq_ignore_ascii_case("all") {
        return Ok(all.to_vec());
    }
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let value = parse(part).map_err(|e| Error::usage(format!("{flag}: {e}")))?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    if out.is_empty() {
        return Err(Error::usage(format!("{flag}: no value given")));
    }
    Ok(out)
}

/// `-n`: a number of timed iterations, or auto with its targets (--ci-target, --min-iters,
/// --size-time-cap), for every command that measures.
pub fn iterations(text: &str, ci_target: f64, min_iters: u64, cap_s: f64) -> Result<Iterations> {
    if text.trim().eq_ignore_ascii_case("auto") {
        if !(ci_target > 0.0 && ci_target.is_finite()) {
            return Err(Error::usage(
                "--ci-target must be a percentage above 0, e.g. 1 for +-1 %",
            ));
        }
        if !(cap_s > 0.0 && cap_s.is_finite()) {
            return Err(Error::usage(
                "--size-time-cap must be a number of seconds above 0",
            ));
        }
        return Ok(Iterations::Auto {
            ci_target_percent: ci_target,
            min: min_iters.max(2),
            cap_s,
        });
    }
    match text.trim().parse::<u64>() {
        Ok(0) => Err(Error::usage(
            "-n/--iters must be at least 1: zero timed iterations measure nothing",
        )),
        Ok(n) => Ok(Iterations::Fixed(n)),
        Err(_) => Err(Error::usage(format!(
            "-n/--iters '{text}' is not a number of iterations: give a whole number, or auto"
        ))),
    }
}

/// `-T`: seconds, 0 for none, for every command.
pub fn timeout(seconds: f64) -> Result<Option<f64>> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(Error::usage(
            "-T/--timeout: give a number of seconds, 0 for none",
        ));
    }
    Ok((seconds > 0.0).then_some(seconds))
}

pub use crate::cli::run::DEFAULT_MIN_ITERS;

/// The default cap on the sampled pass: enough for a p99, short beside any timed loop worth running.
pub const DEFAULT_MAX_SAMPLES: u64 = 1000;

impl Plan {
    /// What this plan asks of the backends.
    pub fn backend_request(&self) -> BackendRequest {
        BackendRequest {
            choice: self.backend,
            gpu: GpuOptions {
                nccl_lib: self.nccl_lib.clone(),
                rccl_lib: self.rccl_lib.clone(),
                timeout_s: self.timeout_s,
                alloc: self.alloc,
                register: self.register,
                cta_policy: self.cta_policy.map(i32::from),
                null_stream: self.null_stream,
                memory: self.memory,
            },
        }
    }

    /// The flags given that only a GPU backend can honour, as they were typed (for the mpi backend's
    /// refusal).
    pub fn gpu_only_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.register != Registration::None {
            let r = if self.register == Registration::Local {
                1
            } else {
                2
            };
            flags.push(format!("-R {r}"));
        }
        if let Some(x) = self.cta_policy {
            flags.push(format!("-x {x}"));
        }
        if self.null_stream {
            flags.push("-y 1".into());
        }
        if self.memory_report {
            flags.push("-M 1".into());
        }
        flags
    }

    pub fn from_args(args: &RunArgs) -> Result<Plan> {
        let mut collectives = Vec::new();
        for name in &args.collectives {
            if crate::cli::is_command(name) {
                return Err(Error::usage(format!(
                    "'{name}' is a command, not a collective: give it first, before any flag (collbench {name} ...)"
                )));
            }
            let named = list(name, "collective", &Collective::ALL, |s| s.parse())?;
            for c in named {
                if !collectives.contains(&c) {
                    collectives.push(c);
                }
            }
        }
        let dtypes = list(&args.datatype, "-d/--datatype", &DataType::ALL, |s| {
            s.parse()
        })?;
        let ops = list(&args.op, "-o/--op", &ReduceOp::ALL, |s| s.parse())?;
        let roots = match args.root.trim() {
            "all" | "-1" => Roots::All,
            r => Roots::One(r.parse().map_err(|_| {
                Error::usage(format!("-r/--root: '{r}' is not a rank: give a rank number, or all (-1) for every root"))
            })?),
        };
        let min_bytes =
            parse_size(&args.min_bytes).map_err(|e| Error::usage(format!("-b/--minbytes: {e}")))?;
        let max_bytes =
            parse_size(&args.max_bytes).map_err(|e| Error::usage(format!("-e/--maxbytes: {e}")))?;
        if min_bytes > max_bytes {
            return Err(Error::usage(format!(
                "-b/--minbytes ({}) is larger than -e/--maxbytes ({}): swap them or lower -b",
                args.min_bytes, args.max_bytes
            )));
        }
        let step = match (&args.step_bytes, args.step_factor) {
            (Some(bytes), _) => {
                let b = parse_size(bytes).map_err(|e| Error::usage(format!("-i/--stepbytes: {e}")))?;
                if b == 0 {
                    return Err(Error::usage("-i/--stepbytes must be at least 1 byte"));
                }
                Step::Bytes(b)
            }
            (None, Some(f)) if f < 2 && min_bytes != max_bytes => {
                return Err(Error::usage(format!(
                    "-f/--stepfactor {f} would never reach -e: use a factor of 2 or more, or -i to add bytes"
                )))
            }
            (None, f) => Step::Factor(f.unwrap_or(2).max(2)),
        };
        let iters = iterations(
            &args.iters,
            args.ci_target,
            args.min_iters,
            args.size_time_cap,
        )?;
        if args.cudagraph > 0 && matches!(iters, Iterations::Auto { .. }) {
            return Err(Error::usage(
                "-G replays a captured loop of -n iterations: give a number with -n, not auto",
            ));
        }
        if args.samples.is_some() && matches!(iters, Iterations::Auto { .. }) {
            return Err(Error::usage(
                "--samples: with -n auto the per-iteration samples are what decides the count, so their number is not set by hand: drop --samples or give -n a number",
            ));
        }
        if args.cudagraph > 0 && args.blocking != 0 {
            return Err(Error::usage(format!(
                "-G and -z {} exclude each other: a captured graph cannot wait between operations; drop one",
                args.blocking
            )));
        }
        if let Some(path) = &args.json {
            // A folder or a missing folder is a usage error now, not a write error after the sweep.
            crate::report::json::Target::of(path)?;
        }
        let expect = crate::fleet::gate::parse_rules(&args.expect)?;
        if args.no_telemetry {
            if let Some(rule) = expect.iter().find(|r| r.metric.needs_telemetry()) {
                return Err(Error::usage(format!(
                    "--expect '{rule}' judges GPU telemetry, which --no-telemetry turns off: drop one of them"
                )));
            }
        }
        if !(args.slow_threshold >= 0.0 && args.slow_threshold.is_finite()) {
            return Err(Error::usage(
                "--slow-threshold must be a percentage of 0 or more",
            ));
        }
        if let Some(p) = args.peak {
            if !(p > 0.0 && p.is_finite()) {
                return Err(Error::usage(format!(
                    "--peak {p}: give the peak in GB/s, above 0"
                )));
            }
        }
        if args.agg_iters == 0 {
            return Err(Error::usage("-m/--agg_iters must be at least 1"));
        }
        let average = match args.average {
            0 => Average::Rank0,
            1 => Average::Mean,
            2 => Average::Min,
            3 => Average::Max,
            a => {
                return Err(Error::usage(format!(
                    "-a/--average {a}: use 0 (rank 0), 1 (mean), 2 (min) or 3 (max)"
                )))
            }
        };
        let blocking = match args.blocking {
            0 => Blocking::Off,
            1 => Blocking::WaitAndBarrier,
            2 => Blocking::Wait,
            3 => Blocking::WaitAndBarrierUntimed,
            z => {
                return Err(Error::usage(format!(
                    "-z/--blocking {z}: use 0 (none), 1 (wait and barrier), 2 (wait) or 3 (wait and barrier, barrier untimed)"
                )))
            }
        };
        let nccl_tests = NcclTestsFlags::of(args, iters)?;
        let timeout_s = timeout(args.timeout)?;
        if args.ngpus == 0 || args.nthreads == 0 {
            return Err(Error::usage(
                "-g/--ngpus and -t/--nthreads must be at least 1",
            ));
        }
        let backend = args.library.backend_choice()?;
        let (groups, groups_from) = groups_from(args)?;
        let traffic = traffic_from_args(args, &collectives).map_err(Error::usage)?;
        // A fixed matrix moves the bytes it says: the sweep is that one size.
        let (min_bytes, max_bytes) = traffic
            .fixed_size()
            .map_or((min_bytes, max_bytes), |b| (b, b));
        // --moe's tokens move in its own type.
        let dtypes = traffic.dtype().map_or(dtypes, |d| vec![d]);
        if let Some(json) = &args.json {
            if json.as_os_str().is_empty() {
                return Err(Error::usage("-J/--json: give a file name"));
            }
        }
        let (placements, delay_inout_place_us, rotating_tensor, algo_columns, rccl_output) =
            rccl_tests_flags(args, backend)?;
        Ok(Plan {
            collectives,
            dtypes,
            ops,
            roots,
            min_bytes,
            max_bytes,
            step,
            iters,
            warmup_iters: args.warmup_iters,
            agg_iters: args.agg_iters,
            check_iters: args.check,
            average,
            blocking,
            cudagraph_replays: args.cudagraph,
            samples: nccl_tests.samples.or(args.samples),
            timeout_s,
            run_cycles: args.run_cycles,
            gpus_per_thread: args.ngpus,
            threads: args.nthreads,
            backend,
            nccl_lib: args.library.nccl_lib.clone(),
            rccl_lib: args.library.rccl_lib.clone(),
            alloc: nccl_tests.alloc,
            seed: args.seed,
            expect,
            slow_threshold_percent: args.slow_threshold,
            peak_override_gbps: args.peak,
            groups,
            groups_from,
            traffic,
            stats_columns: args.stats,
            telemetry: !args.no_telemetry,
            telemetry_columns: args.telemetry,
            progress: !args.no_progress && !args.quiet,
            csv: args.csv.clone(),
            json: args.json.clone(),
            quiet: args.quiet,
            link_probe: !args.no_link_probe,
            register: nccl_tests.register,
            cta_policy: args.cta_policy,
            report_cputime: args.report_cputime == 1,
            timestamps: args.report_timestamps == 1,
            parallel_init: args.parallel_init == 1,
            null_stream: args.stream_null == 1,
            memory_report: args.memory == 1,
            unalign: args.unalign,
            per_iter_timing: nccl_tests.per_iter_timing,
            per_iter_skip: nccl_tests.per_iter_skip,
            json_format: args.json_format,
            min_bw_gbps: nccl_tests.min_bw_gbps,
            alltoallv_summary: nccl_tests.alltoallv_summary,
            placements,
            delay_inout_place_us,
            memory: args.memory_type,
            rotating_tensor,
            algo_columns,
            rccl_output,
        })
    }

    /// Bytes each buffer needs beyond the largest operation's: -E's second offset, and -u's
    /// misalignment, 8 bytes (the largest element) per element of it, as nccl-tests.
    pub fn extra_buffer_bytes(&self) -> u64 {
        let rotating = if self.rotating_tensor {
            ROTATING_TENSOR_BYTES
        } else {
            0
        };
        rotating + 8 * self.unalign
    }

    /// The sizes of the sweep, up to `max` (the -e value, or the memory cap when lower).
    pub fn sizes(&self, max: u64) -> Vec<u64> {
        sweep(self.min_bytes.min(max), max, self.step)
    }

    /// The roots to run for a collective on `n` ranks.
    pub fn roots_for(&self, collective: Collective, n: usize) -> Vec<Option<usize>> {
        if !collective.rooted() {
            return vec![None];
        }
        match self.roots {
            Roots::One(r) => vec![Some(r)],
            Roots::All => (0..n).map(Some).collect(),
        }
    }

    /// The operators to run for a collective (one placeholder for collectives that do not reduce).
    pub fn ops_for(&self, collective: Collective) -> Vec<Option<ReduceOp>> {
        if collective.reduces() {
            self.ops.iter().copied().map(Some).collect()
        } else {
            vec![None]
        }
    }
}
