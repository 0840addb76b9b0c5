//! The validated plan of a run: what the command line asked for, typed and checked before anything runs.

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
use crate::traffic::moe::MoeParams;
use crate::traffic::spread::spread_from_env;
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

/// rccl-tests' own flags (-O, -q, -E, -F, -A, -Z with -X, and -Y against the backend and --alloc),
/// checked: (placements, delay in microseconds, rotating tensor, algo columns, results file).
#[allow(clippy::type_complexity)]
fn rccl_tests_flags(
    args: &RunArgs,
    backend: BackendChoice,
) -> Result<(Placements, u64, bool, bool, Option<(RcclFormat, PathBuf)>)> {
    let placements = match args.out_of_place {
        None => Placements::BOTH,
        Some(1) => Placements {
            out_of_place: true,
            in_place: false,
        },
        Some(0) => Placements {
            out_of_place: false,
            in_place: true,
        },
        Some(o) => {
            return Err(Error::usage(format!(
                "-O/--out_of_place {o}: use 1 (out-of-place only) or 0 (in-place only), or leave it out for both"
            )))
        }
    };
    let delay = match &args.delay_inout_place {
        None => 0,
        Some(None) => {
            return Err(Error::usage(
                "-q is rccl-tests' delay between the out-of-place and in-place measurements: give it in microseconds (-q 100); collbench's quiet output (only the table) is --quiet",
            ))
        }
        Some(Some(us)) => us.trim().parse().map_err(|_| {
            Error::usage(format!(
                "-q/--delay_inout_place '{us}': give the delay in microseconds (rccl-tests' -q); only the table is --quiet"
            ))
        })?,
    };
    if delay > 0 && placements != Placements::BOTH {
        return Err(Error::usage(
            "-q delays the in-place measurement after the out-of-place one, but -O measures only one of them: drop -q or -O",
        ));
    }
    let flag = |name: &str, v: u8| match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::usage(format!("{name} {other}: use 0 or 1"))),
    };
    let rotating = flag("-E/--rotating_tensor", args.rotating_tensor)?;
    let algo_columns = flag("-A/--output_algo_proto_channels", args.algo_columns)?;
    if args.cache_flush > 0 {
        return Err(Error::Unsupported(format!(
            "-F {} (rccl-tests' instruction-cache flush every {} iterations) is not implemented: rccl-tests \
             launches a GPU kernel of its own for it, which collbench, built without a GPU compiler, does not \
             have; -E 1 keeps small sizes out of the data caches instead. Run without -F",
            args.cache_flush, args.cache_flush
        )));
    }
    let output = match (&args.rccl_output_format, &args.rccl_output_file) {
        (None, None) => None,
        (Some(f), Some(file)) => {
            let format = match f.trim().to_ascii_lowercase().as_str() {
                "csv" => RcclFormat::Csv,
                "json" => RcclFormat::Json,
                other => {
                    return Err(Error::usage(format!(
                        "-Z/--rccl_output_format '{other}': use csv or json"
                    )))
                }
            };
            if file.as_os_str().is_empty() {
                return Err(Error::usage("-X/--rccl_output_file: give a file name"));
            }
            Some((format, file.clone()))
        }
        (Some(f), None) => {
            return Err(Error::usage(format!(
                "-Z {f} writes rccl-tests' results file to the file -X names: add -X FILE"
            )))
        }
        (None, Some(file)) => {
            return Err(Error::usage(format!(
                "-X {} is where rccl-tests' results file goes, in the format -Z gives: add -Z csv or -Z json",
                file.display()
            )))
        }
    };
    if args.memory_type != MemoryKind::Coarse {
        if backend == BackendChoice::Mpi {
            return Err(Error::usage(format!(
                "-Y {}: -Y chooses GPU memory, and the mpi backend moves host memory: drop -Y or use a GPU backend",
                args.memory_type.name()
            )));
        }
        if args.alloc == Some(Allocator::Nccl) {
            return Err(Error::usage(format!(
                "-Y {} and --alloc nccl both choose the buffers' memory (ncclMemAlloc gives its own): choose one",
                args.memory_type.name()
            )));
        }
        if args.local_register == 2 {
            return Err(Error::usage(format!(
                "-Y {} and -R 2 both choose the buffers' memory (symmetric windows need ncclMemAlloc's): choose one",
                args.memory_type.name()
            )));
        }
    }
    Ok((placements, delay, rotating, algo_columns, output))
}

/// The traffic the command line asks for: `--matrix` or `--moe`, else `--spread`, else the spread of
/// NCCL_TESTS_ALLTOALLV_SPREAD. A fixed source applies to all_to_allv alone.
fn traffic_from_args(args: &RunArgs, collectives: &[Collective]) -> Result<Traffic, String> {
    if let (Some(_), Some(other)) = (
        &args.spread,
        args.matrix
            .as_ref()
            .map(|_| "--matrix")
            .or(args.moe.as_ref().map(|_| "--moe")),
    ) {
        return Err(format!(
            "--spread and {other} both give all_to_allv's per-peer bytes: choose one"
        ));
    }
    if args.spread.is_some() && !collectives.contains(&Collective::AllToAllv) {
        return Err(
            "--spread shapes all_to_allv's per-peer bytes: run all_to_allv (or all) with it, or leave it out"
                .into(),
        );
    }
    let traffic = match (&args.matrix, &args.moe) {
        (Some(_), Some(_)) => {
            return Err(
                "--matrix and --moe both give all_to_allv's per-peer bytes: choose one".into(),
            )
        }
        (Some(path), None) => Traffic::matrix_file(path)?,
        (None, Some(spec)) => {
            Traffic::Moe(MoeParams::parse(spec).map_err(|e| format!("--moe: {e}"))?)
        }
        (None, None) => match (args.spread.as_deref(), matrix_from_env(collectives)?) {
            (Some(rule), _) => Traffic::spread_rule(rule)?,
            (None, Some(matrix)) => matrix,
            (None, None) => Traffic::Spread(spread_from_env()?),
        },
    };
    if traffic.fixed() && collectives != [Collective::AllToAllv] {
        return Err(format!(
            "{} gives all_to_allv's per-peer bytes: run `collbench all_to_allv` with it, and other collectives in another run",
            traffic.flag()
        ));
    }
    Ok(traffic)
}

/// NCCL_TESTS_ALLTOALLV_MATRIX_FILE (times NCCL_TESTS_ALLTOALLV_MATRIX_SCALE), when all_to_allv runs: as
/// in nccl-tests, only the all-to-all-v test reads it, and it takes precedence over the spread.
fn matrix_from_env(collectives: &[Collective]) -> Result<Option<Traffic>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(path) = env("NCCL_TESTS_ALLTOALLV_MATRIX_FILE") else {
        return Ok(None);
    };
    if !collectives.contains(&Collective::AllToAllv) {
        return Ok(None);
    }
    let scale = match env("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE") {
        None => 1.0,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                format!("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE={text}: give a factor of 0 or more (1 keeps the file's bytes), or unset it")
            })?,
    };
    Traffic::matrix_env(std::path::Path::new(path.trim()), scale).map(Some)
}

/// The layouts of --groups, else of NCCL_TESTS_SPLIT_MASK (nccl-tests' `rank & mask`, the mask in hex),
/// else of NCCL_TESTS_SPLIT: nccl-tests reads the mask first and the rule only without it.
fn groups_from(args: &RunArgs) -> Result<(Vec<GroupSpec>, Option<String>)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (specs, from) = if let Some(text) = &args.groups {
        let specs =
            crate::layout::parse_list(text).map_err(|e| Error::usage(format!("--groups: {e}")))?;
        (specs, format!("--groups {text}"))
    } else if let Some(mask) = env("NCCL_TESTS_SPLIT_MASK") {
        let spec = crate::layout::parse_split_mask(&mask)
            .map_err(|e| Error::usage(format!("NCCL_TESTS_SPLIT_MASK: {e}; or unset it")))?;
        (vec![spec], format!("NCCL_TESTS_SPLIT_MASK={mask}"))
    } else if let Some(rule) = env("NCCL_TESTS_SPLIT") {
        let spec = crate::layout::parse_split(&rule)
            .map_err(|e| Error::usage(format!("NCCL_TESTS_SPLIT: {e}; or unset it")))?;
        (vec![spec], format!("NCCL_TESTS_SPLIT={rule}"))
    } else {
        return Ok((Vec::new(), None));
    };
    if args.ngpus > 1 || args.nthreads > 1 {
        return Err(Error::usage(format!(
            "{from}: groups split MPI ranks (one GPU per rank, as nccl-tests), not -g/-t: run one rank per GPU under mpirun"
        )));
    }
    Ok((specs, Some(from)))
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

/// nccl-tests' flags and variables that shape a run beyond the sweep, validated together.
struct NcclTestsFlags {
    register: Registration,
    alloc: Allocator,
    samples: Option<u64>,
    per_iter_timing: bool,
    per_iter_skip: u64,
    min_bw_gbps: Option<f64>,
    alltoallv_summary: bool,
}

impl NcclTestsFlags {
    fn of(args: &RunArgs, iters: Iterations) -> Result<NcclTestsFlags> {
        if args.device_implementation > 0 {
            return Err(Error::usage(format!(
                "-D/--device_implementation {}: nccl-tests' device implementations are CUDA kernels built against NCCL's device API (nccl_device.h, NCCL 2.28+) by a CUDA compiler; collbench has no CUDA compiler and carries no device kernels, so it cannot run them: leave -D out (NCCL's own implementation, -D 0), or run nccl-tests for -D",
                args.device_implementation
            )));
        }
        if let Some(v) = args.device_cta_count {
            return Err(Error::usage(format!(
                "-V/--device_cta_count {v}: it sets the CTAs of -D's device implementation, which collbench cannot run (see -D): leave -V out"
            )));
        }
        let register = match args.local_register {
            0 => Registration::None,
            1 => Registration::Local,
            _ => Registration::Symmetric,
        };
        let alloc = match (args.alloc, register) {
            (Some(Allocator::Device), Registration::Symmetric) => {
                return Err(Error::usage(
                    "-R 2 registers symmetric windows, which need buffers from ncclMemAlloc: drop --alloc device (-R allocates with ncclMemAlloc, as nccl-tests)",
                ))
            }
            (Some(a), _) => a,
            // -Y's memory is allocated by the device runtime; -R 1 registers it as it is.
            (None, _) if args.memory_type != MemoryKind::Coarse => Allocator::Device,
            // nccl-tests allocates with ncclMemAlloc (2.19+), which registration wants.
            (None, Registration::None) => Allocator::Device,
            (None, _) => Allocator::Nccl,
        };
        let per_iter_timing = args.per_iter_timing == Some(1);
        let samples = match (args.per_iter_timing, args.samples, iters) {
            (Some(_), Some(n), _) => {
                return Err(Error::usage(format!(
                "-I/--per_iter_timing and --samples {n} both set the per-iteration pass: give one"
            )))
            }
            (Some(1), None, Iterations::Fixed(n)) => Some(n),
            (Some(0), None, _) => Some(0),
            _ => None,
        };
        let per_iter_skip = match args.per_iter_skip {
            None | Some(0) => 0,
            Some(k) if !per_iter_timing => {
                return Err(Error::usage(format!(
                    "-K/--per_iter_skip {k} leaves iterations out of -I 1's statistics: add -I 1"
                )))
            }
            Some(k) => match iters {
                Iterations::Fixed(n) if k >= n => {
                    return Err(Error::usage(format!(
                        "-K/--per_iter_skip {k} leaves no iteration of -n {n} to summarise: give fewer than {n}"
                    )))
                }
                _ => k,
            },
        };
        if args.json_format == crate::report::json::JsonFormat::NcclTests && args.json.is_none() {
            return Err(Error::usage(
                "--json-format nccl-tests says how -J writes its file: give -J FILE too",
            ));
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let min_bw_gbps = match env("NCCL_TESTS_MIN_BW") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|b| b.is_finite() && *b >= 0.0)
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "NCCL_TESTS_MIN_BW={v}: give the average bus bandwidth to reach in GB/s (the run fails below 0.9 x it), or unset it"
                        ))
                    })?,
            ),
        };
        let alltoallv_summary = match env("NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY") {
            None => false,
            Some(v) => v.trim().parse::<i64>().map(|n| n != 0).map_err(|_| {
                Error::usage(format!(
                    "NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY={v}: give 1 to print each rank's bytes and bandwidth under every all_to_allv row, or 0"
                ))
            })?,
        };
        Ok(NcclTestsFlags {
            register,
            alloc,
            samples,
            per_iter_timing,
            per_iter_skip,
            min_bw_gbps,
            alltoallv_summary,
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Plan> {
        let mut argv = vec!["collbench"];
        argv.extend_from_slice(args);
        Plan::from_args(&RunArgs::try_parse_from(argv).expect("clap accepts"))
    }

    fn usage_message(args: &[&str]) -> String {
        match plan(args) {
            Err(Error::Usage(m)) => m,
            other => panic!("expected a usage error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_mission_sweep() {
        let p = plan(&["all_reduce"]).unwrap();
        assert_eq!((p.min_bytes, p.max_bytes), (32 << 10, 16u64 << 30));
        assert_eq!(p.step, Step::Factor(2));
        assert_eq!(
            (p.iters, p.warmup_iters, p.check_iters),
            (Iterations::Fixed(20), 1, 1)
        );
        assert_eq!(p.dtypes, vec![DataType::Float]);
        assert_eq!(p.ops, vec![ReduceOp::Sum]);
        assert_eq!(p.sizes(p.max_bytes).len(), 20);
    }

    #[test]
    fn all_expands_and_duplicates_collapse() {
        let p = plan(&["all", "-d", "all", "-o", "all", "-r", "all"]).unwrap();
        assert_eq!(p.collectives.len(), 9);
        assert_eq!(p.dtypes.len(), 12);
        assert_eq!(
            p.ops.len(),
            6,
            "nccl-tests' all: sum prod max min avg mulsum"
        );
        assert_eq!(
            p.roots_for(Collective::Broadcast, 3),
            vec![Some(0), Some(1), Some(2)]
        );
        assert_eq!(p.roots_for(Collective::AllReduce, 3), vec![None]);
        let p = plan(&["allreduce", "all_reduce", "-d", "float,int32", "-r", "-1"]).unwrap();
        assert_eq!(p.collectives, vec![Collective::AllReduce]);
        assert_eq!(p.dtypes, vec![DataType::Float, DataType::Int32]);
        assert_eq!(p.roots, Roots::All);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        assert!(usage_message(&["all_reduce", "-b", "64M", "-e", "32K"]).contains("-b/--minbytes"));
        assert!(usage_message(&["no_such_collective"]).contains("no_such_collective"));
        assert!(usage_message(&["all_reduce", "-b", "12Q"]).contains("12Q"));
        assert!(usage_message(&["all_reduce", "-n", "0"]).contains("-n/--iters"));
        assert!(usage_message(&["all_reduce", "-d", "float128"]).contains("-d/--datatype"));
        assert!(usage_message(&["all_reduce", "-o", "mean"]).contains("-o/--op"));
        assert!(usage_message(&["all_reduce", "-r", "x"]).contains("-r/--root"));
        assert!(usage_message(&["all_reduce", "-a", "7"]).contains("-a/--average"));
        assert!(usage_message(&["all_reduce", "-m", "0"]).contains("-m/--agg_iters"));
        assert!(
            usage_message(&["all_reduce", "-f", "1", "-b", "1K", "-e", "1M"])
                .contains("-f/--stepfactor")
        );
        assert!(usage_message(&["all_reduce", "--backend", "gloo"]).contains("--backend"));
        assert!(usage_message(&["all_reduce", "-T", "-1"]).contains("-T/--timeout"));
        assert!(usage_message(&["all_reduce", "-n", "many"]).contains("-n/--iters"));
        assert!(
            usage_message(&["all_reduce", "-n", "auto", "--ci-target", "0"])
                .contains("--ci-target")
        );
        assert!(usage_message(&["all_reduce", "--expect", "busbw>>3"]).contains("--expect"));
        assert!(usage_message(&["all_reduce", "--peak", "-3"]).contains("--peak"));
        assert!(usage_message(&["all_reduce", "-G", "5", "-n", "auto"]).contains("-G"));
        assert!(usage_message(&["all_reduce", "-G", "5", "-z", "1"]).contains("-G and -z 1"));
    }

    #[test]
    fn auto_iterations_take_their_targets() {
        let p = plan(&[
            "all_reduce",
            "-n",
            "auto",
            "--ci-target",
            "2",
            "--min-iters",
            "5",
            "--size-time-cap",
            "3",
        ])
        .unwrap();
        assert_eq!(
            p.iters,
            Iterations::Auto {
                ci_target_percent: 2.0,
                min: 5,
                cap_s: 3.0
            }
        );
    }

    #[test]
    fn step_bytes_replaces_the_factor() {
        let p = plan(&["sendrecv", "-b", "1M", "-e", "4M", "-i", "1M"]).unwrap();
        assert_eq!(
            p.sizes(p.max_bytes),
            vec![1 << 20, 2 << 20, 3 << 20, 4 << 20]
        );
    }

    #[test]
    fn rccl_tests_q_is_a_delay_and_quiet_is_long_only() {
        assert_eq!(
            plan(&["all_reduce", "-q", "250"])
                .unwrap()
                .delay_inout_place_us,
            250
        );
        assert!(plan(&["all_reduce", "--quiet"]).unwrap().quiet);
        let m = usage_message(&["all_reduce", "-q"]);
        assert!(m.contains("microseconds") && m.contains("--quiet"), "{m}");
        let m = usage_message(&["all_reduce", "-q", "soon"]);
        assert!(m.contains("-q/--delay_inout_place 'soon'"), "{m}");
        let m = usage_message(&["all_reduce", "-q", "10", "-O", "1"]);
        assert!(m.contains("-O measures only one"), "{m}");
    }

    #[test]
    fn rccl_tests_o_picks_one_placement() {
        assert_eq!(plan(&["all_reduce"]).unwrap().placements, Placements::BOTH);
        let out = plan(&["all_reduce", "-O", "1"]).unwrap().placements;
        assert!(out.out_of_place && !out.in_place);
        let inp = plan(&["all_reduce", "-O", "0"]).unwrap().placements;
        assert!(!inp.out_of_place && inp.in_place);
        assert!(
            usage_message(&["all_reduce", "-O", "2"]).contains("use 1 (out-of-place only) or 0")
        );
    }

    #[test]
    fn rccl_tests_e_a_take_zero_or_one_and_e_grows_the_buffers() {
        let p = plan(&["all_reduce", "-E", "1", "-A", "1"]).unwrap();
        assert!(p.rotating_tensor && p.algo_columns);
        assert_eq!(p.extra_buffer_bytes(), ROTATING_TENSOR_BYTES);
        assert_eq!(plan(&["all_reduce"]).unwrap().extra_buffer_bytes(), 0);
        assert!(usage_message(&["all_reduce", "-E", "2"]).contains("-E/--rotating_tensor 2"));
        assert!(
            usage_message(&["all_reduce", "-A", "3"]).contains("-A/--output_algo_proto_channels 3")
        );
    }

    #[test]
    fn rccl_tests_f_is_refused_with_the_reason() {
        match plan(&["all_reduce", "-F", "10"]) {
            Err(Error::Unsupported(m)) => {
                assert!(m.contains("-F 10") && m.contains("kernel"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(plan(&["all_reduce", "-F", "0"]).is_ok());
    }

    #[test]
    fn rccl_tests_z_needs_x_and_the_reverse() {
        let p = plan(&["all_reduce", "-Z", "json", "-X", "out.json"]).unwrap();
        assert_eq!(
            p.rccl_output,
            Some((RcclFormat::Json, PathBuf::from("out.json")))
        );
        assert!(usage_message(&["all_reduce", "-Z", "csv"]).contains("add -X FILE"));
        assert!(usage_message(&["all_reduce", "-X", "f.csv"]).contains("add -Z csv or -Z json"));
        assert!(usage_message(&["all_reduce", "-Z", "xml", "-X", "f"])
            .contains("'xml': use csv or json"));
    }

    #[test]
    fn rccl_tests_y_is_gpu_memory_for_the_gpu_backends() {
        let p = plan(&["all_reduce", "-Y", "fine", "--backend", "rccl"]).unwrap();
        assert_eq!(p.backend_request().gpu.memory, MemoryKind::Fine);
        assert_eq!(plan(&["all_reduce"]).unwrap().memory, MemoryKind::Coarse);
        let m = usage_message(&["all_reduce", "-Y", "host", "--backend", "mpi"]);
        assert!(m.contains("mpi backend moves host memory"), "{m}");
        let m = usage_message(&["all_reduce", "-Y", "managed", "--alloc", "nccl"]);
        assert!(m.contains("--alloc nccl"), "{m}");
    }
}
