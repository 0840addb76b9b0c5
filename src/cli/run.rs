//! The command line of a benchmark run, as nccl-tests users type it (clap derive). Validation lives in plan.rs.

use super::library::LibraryArgs;
pub use crate::backend::{Allocator, MemoryKind};
pub use crate::report::json::JsonFormat;
use clap::{ArgAction, Parser};
use std::path::PathBuf;

/// Measure collective communication (NCCL, RCCL or MPI) the way nccl-tests does, and more.
///
/// Launch one process per GPU with mpirun or srun; without a launcher collbench is one rank.
/// Sizes take K, M, G suffixes (powers of 1024). Flags follow nccl-tests; where the meaning differs,
/// this help says so.
#[derive(Debug, Parser)]
#[command(name = "collbench", after_help = AFTER_HELP)]
pub struct RunArgs {
    /// Collectives to run: all_reduce all_gather reduce_scatter broadcast reduce all_to_all sendrecv
    /// gather scatter, or all; all_to_allv and hypercube besides. nccl-tests spellings (allreduce,
    /// alltoall, ...) are accepted.
    #[arg(required = true, value_name = "COLLECTIVE")]
    pub collectives: Vec<String>,

    /// Smallest message size (nccl-tests default 32M; ours 32K, the start of the mission's sweep).
    #[arg(
        short = 'b',
        long = "minbytes",
        visible_alias = "min-bytes",
        default_value = "32K"
    )]
    pub min_bytes: String,

    /// Largest message size, capped by the memory free on every rank (nccl-tests default 32M; ours 16G).
    #[arg(
        short = 'e',
        long = "maxbytes",
        visible_alias = "max-bytes",
        default_value = "16G"
    )]
    pub max_bytes: String,

    /// Multiply the size by this factor at each step (default 2 unless -i is given).
    #[arg(
        short = 'f',
        long = "stepfactor",
        visible_alias = "step-factor",
        conflicts_with = "step_bytes"
    )]
    pub step_factor: Option<u64>,

    /// Add this many bytes at each step instead of multiplying.
    #[arg(short = 'i', long = "stepbytes", visible_alias = "step-bytes")]
    pub step_bytes: Option<String>,

    /// Timed iterations per size, or auto: iterate until the 95 % confidence interval of the mean time
    /// is within --ci-target, or --size-time-cap is reached (at least --min-iters).
    #[arg(short = 'n', long = "iters", default_value = "20")]
    pub iters: String,

    /// Per-iteration samples for the distribution (percentiles, cv%): a separate pass of this many
    /// iterations after the timed loop, each bounded by timer marks (CUDA events on GPUs). The timed loop
    /// itself carries no marks, as in nccl-tests. Default: as many as -n, at most 1000; 0 turns it off.
    #[arg(long = "samples", value_name = "N")]
    pub samples: Option<u64>,

    /// With -n auto: the 95 % confidence half-width to reach, as a percentage of the mean.
    #[arg(long = "ci-target", value_name = "PERCENT", default_value_t = 1.0)]
    pub ci_target: f64,

    /// With -n auto: the fewest timed iterations per size.
    #[arg(long = "min-iters", default_value_t = DEFAULT_MIN_ITERS)]
    pub min_iters: u64,

    /// With -n auto: seconds of timed iterations after which a size stops, reached or not.
    #[arg(long = "size-time-cap", value_name = "SECONDS", default_value_t = 5.0)]
    pub size_time_cap: f64,

    /// Warm-up iterations per size, not timed.
    #[arg(
        short = 'w',
        long = "warmup_iters",
        visible_alias = "warmup-iters",
        default_value_t = 1
    )]
    pub warmup_iters: u64,

    /// Operations per timed iteration (aggregated in one group call on GPU backends).
    #[arg(
        short = 'm',
        long = "agg_iters",
        visible_alias = "agg-iters",
        default_value_t = 1
    )]
    pub agg_iters: u64,

    /// Correctness-check iterations per size and placement; 0 turns the check off.
    #[arg(short = 'c', long = "check", default_value_t = 1)]
    pub check: u64,

    /// Data types, comma-separated, or all.
    #[arg(short = 'd', long = "datatype", default_value = "float")]
    pub datatype: String,

    /// Reduction operators, comma-separated, or all (only used by reducing collectives): sum prod max min
    /// avg mulsum.
    #[arg(short = 'o', long = "op", default_value = "sum")]
    pub op: String,

    /// Root rank for rooted collectives; all (or -1) runs every root in turn.
    #[arg(
        short = 'r',
        long = "root",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub root: String,

    /// GPUs driven by each process (one thread per GPU); no MPI needed on one node.
    #[arg(short = 'g', long = "ngpus", default_value_t = 1)]
    pub ngpus: usize,

    /// Threads per process, each driving -g GPUs.
    #[arg(short = 't', long = "nthreads", default_value_t = 1)]
    pub nthreads: usize,

    /// How the time is combined across ranks: 0 rank 0, 1 mean, 2 min, 3 max.
    #[arg(short = 'a', long = "average", default_value_t = 1)]
    pub average: u8,

    /// nccl-tests' blocking modes: 1 wait and barrier after every iteration, 2 wait after every
    /// iteration (no barrier), 3 wait and barrier after every iteration with the barrier left out of the
    /// time; 0 none.
    #[arg(
        short = 'z',
        long = "blocking",
        default_value_t = 0,
        value_name = "0-3"
    )]
    pub blocking: u8,

    /// 1: report the host time of the enqueue loop (column `cputime`, nccl-tests' -C 1) instead of the
    /// completion time; algbw and busbw stay the completion time's, as there. The JSON has both.
    #[arg(short = 'C', long = "report_cputime", default_value_t = 0, value_name = "0|1",
        value_parser = clap::value_parser!(u8).range(0..=1))]
    pub report_cputime: u8,

    /// 1: end every row of the table with the local time it was measured (nccl-tests' -S 1).
    #[arg(short = 'S', long = "report_timestamps", default_value_t = 0, value_name = "0|1",
        value_parser = clap::value_parser!(u8).range(0..=1))]
    pub report_timestamps: u8,

    /// nccl-tests' parallel init of -t threads' communicators: collbench's threads always create
    /// theirs at once, so 0 and 1 both do that (the header says so with -p 1, as nccl-tests).
    #[arg(short = 'p', long = "parallel_init", default_value_t = 0, value_name = "0|1",
        value_parser = clap::value_parser!(u8).range(0..=1))]
    pub parallel_init: u8,

    /// 1: enqueue on the legacy default (null) stream instead of a non-blocking one (nccl-tests' -y 1;
    /// GPU backends).
    #[arg(short = 'y', long = "stream_null", default_value_t = 0, value_name = "0|1",
        value_parser = clap::value_parser!(u8).range(0..=1))]
    pub stream_null: u8,

    /// 1: report the GPU memory the run used, as nccl-tests' -M 1: communicator initialisation, the
    /// buffers (and their registration), and what the collectives allocated (GPU backends).
    #[arg(short = 'M', long = "memory", default_value_t = 0, value_name = "0|1",
        value_parser = clap::value_parser!(u8).range(0..=1))]
    pub memory: u8,

    /// Misalign both buffers by this many elements of the type (nccl-tests' -u).
    #[arg(
        short = 'u',
        long = "unalign",
        default_value_t = 0,
        value_name = "ELEMENTS"
    )]
    pub unalign: u64,

    /// Register the buffers with the communicator: 1 ncclCommRegister (NCCL 2.19+), 2 a symmetric
    /// window, ncclCommWindowRegister with NCCL_WIN_COLL_SYMMETRIC (NCCL 2.27+; below that 1, and the
    /// run says so), both on buffers from ncclMemAlloc, as nccl-tests' -R; deregistered after the last
    /// row. GPU backends.
    #[arg(short = 'R', long = "local_register", default_value_t = 0, value_name = "0|1|2",
        value_parser = clap::value_parser!(u8).range(0..=2))]
    pub local_register: u8,

    /// The communicator's CTA policy (ncclConfig_t.CTAPolicy, nccl-tests' -x): 0 default, 1 efficiency
    /// (NCCL 2.27+), 2 zero (NCCL 2.28+); an older NCCL is refused. GPU backends.
    #[arg(short = 'x', long = "cta_policy", value_name = "0|1|2",
        value_parser = clap::value_parser!(u8).range(0..=2))]
    pub cta_policy: Option<u8>,

    /// nccl-tests' device implementations (-D N > 0) are CUDA kernels compiled against NCCL's device API;
    /// collbench has no CUDA compiler or kernels, so it refuses any but 0 (NCCL's own implementation).
    #[arg(
        short = 'D',
        long = "device_implementation",
        default_value_t = 0,
        value_name = "N"
    )]
    pub device_implementation: u32,

    /// The CTAs of -D's device implementation (nccl-tests' -V): refused, as -D is.
    #[arg(short = 'V', long = "device_cta_count", value_name = "N")]
    pub device_cta_count: Option<u32>,

    /// nccl-tests' per-iteration timing: 1 times every one of the -n iterations in collbench's sampled
    /// pass (after the timed loop, between timer marks, so the timed loop stays unmarked) and keeps
    /// each iteration's time in the JSON; 0 turns the pass off (as --samples 0).
    #[arg(short = 'I', long = "per_iter_timing", value_name = "0|1",
        value_parser = clap::value_parser!(u8).range(0..=1))]
    pub per_iter_timing: Option<u8>,

    /// With -I 1: leave this many leading iterations out of the statistics (nccl-tests' -K); the JSON
    /// keeps every iteration's time.
    #[arg(short = 'K', long = "per_iter_skip", value_name = "N")]
    pub per_iter_skip: Option<u64>,

    /// Capture the timed loop in a CUDA graph and replay it this many times (GPU backends).
    #[arg(short = 'G', long = "cudagraph", default_value_t = 0)]
    pub cudagraph: u64,

    /// Seconds before a stuck operation, barrier or initialisation aborts the job; 0 waits forever.
    #[arg(
        short = 'T',
        long = "timeout",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub timeout: f64,

    /// Repeat the whole sweep this many times (0 = forever).
    #[arg(
        short = 'N',
        long = "run_cycles",
        visible_alias = "run-cycles",
        default_value_t = 1
    )]
    pub run_cycles: u64,

    /// Write the results as one JSON document, rewritten after every row.
    #[arg(
        short = 'J',
        long = "json",
        visible_alias = "output_file",
        value_name = "FILE"
    )]
    pub json: Option<PathBuf>,

    /// The format -J writes: collbench's document, or nccl-tests' -J document (file version 3, which its
    /// tools/analyze_perf_json.py reads; collbench's own document rides along under `collbench`).
    #[arg(long = "json-format", value_enum, default_value_t = JsonFormat::Collbench)]
    pub json_format: JsonFormat,

    /// Also write one CSV line per row and placement, as rows are measured.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Show the per-iteration distribution (p50, p99, cv%) in the table.
    #[arg(long, action = ArgAction::SetTrue)]
    pub stats: bool,

    /// Add GPU telemetry columns to the table: lowest SM clock (MHz), highest temperature (C) and power (W)
    /// over the ranks while the row ran. The JSON has every rank's readings with or without it.
    #[arg(long, action = ArgAction::SetTrue, conflicts_with = "no_telemetry")]
    pub telemetry: bool,

    /// Do not read the GPUs while measuring (no telemetry thread, nothing in the JSON).
    #[arg(long = "no-telemetry", action = ArgAction::SetTrue)]
    pub no_telemetry: bool,

    /// A pass/fail rule judged after the run, e.g. 'all_reduce:busbw>=180@1G-16G', 'busbw>=0.9peak@64M-',
    /// 'time<=50us@-64K' (docs/FLEET.md). Repeatable; any failed rule exits 8.
    #[arg(long, value_name = "RULE", action = ArgAction::Append)]
    pub expect: Vec<String>,

    /// Name a rank whose mean time is this many percent above the median rank's.
    #[arg(long = "slow-threshold", value_name = "PERCENT", default_value_t = crate::fleet::slow::DEFAULT_THRESHOLD_PERCENT)]
    pub slow_threshold: f64,

    /// The hardware's peak bus bandwidth in GB/s per GPU and direction, instead of the detected one.
    #[arg(long, value_name = "GBPS", allow_negative_numbers = true)]
    pub peak: Option<f64>,

    #[command(flatten)]
    pub library: LibraryArgs,

    /// How GPU buffers are allocated: device (the runtime's allocator) or nccl (ncclMemAlloc, which NVLS
    /// and registration prefer, as nccl-tests allocates them). Default: nccl with -R, else device.
    #[arg(long = "alloc", value_enum)]
    pub alloc: Option<Allocator>,

    /// Seed of the correctness-check inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Split the job into groups that measure at the same time, each on its own communicator: K (blocks
    /// of K consecutive ranks), stride:K, host, or nccl-tests:MOD4-style rules; comma-separated layouts
    /// (8,4,2) are measured side by side at each size. NCCL_TESTS_SPLIT is honoured when this is absent.
    #[arg(long, value_name = "SPEC")]
    pub groups: Option<String>,

    /// all_to_allv's per-peer bytes from a file: a square whitespace matrix, row i the bytes rank i sends
    /// to each rank (nccl-tests' NCCL_TESTS_ALLTOALLV_MATRIX_FILE format). Without it (and --moe),
    /// all_to_allv spreads each size as nccl-tests does (NCCL_TESTS_ALLTOALLV_SPREAD, default 1).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<std::path::PathBuf>,

    /// How all_to_allv spreads each size over the peers: nccl-tests' factor S from 0 (even) to 1 (farther
    /// peers more; NCCL_TESTS_ALLTOALLV_SPREAD, default 1), or rccl-tests (rccl-tests' alltoallv counts,
    /// to compare with its alltoallv_perf).
    #[arg(long, value_name = "S|rccl-tests")]
    pub spread: Option<String>,

    /// all_to_allv's per-peer bytes from a seeded MoE router, dispatch and combine as their own rows:
    /// tokens=T (per rank),hidden=H,topk=K,experts=E[,dtype=bf16][,skew=S (rank 0's experts chosen S
    /// times as often)][,seed=N]. The all_to_allv runs in the router's dtype.
    #[arg(long, value_name = "SPEC")]
    pub moe: Option<String>,

    /// Print only the table (no notes or progress). Long only: -q is rccl-tests' delay.
    #[arg(long, action = ArgAction::SetTrue)]
    pub quiet: bool,

    /// rccl-tests' -q: microseconds to wait between the out-of-place and the in-place measurement of
    /// each size (outside both timings). Before collbench followed rccl-tests, -q was --quiet.
    #[arg(
        short = 'q',
        long = "delay_inout_place",
        visible_alias = "delay",
        value_name = "US",
        num_args = 0..=1
    )]
    pub delay_inout_place: Option<Option<String>>,

    /// rccl-tests' -Y: what memory the GPU buffers are: coarse (hipMalloc / cuMemAlloc), fine
    /// (AMD's fine-grained device memory, hipExtMallocWithFlags), host (pinned host memory mapped for
    /// the GPU) or managed (hipMallocManaged / cuMemAllocManaged).
    #[arg(
        short = 'Y',
        long = "memory_type",
        visible_alias = "memory-type",
        value_enum,
        default_value_t = MemoryKind::Coarse
    )]
    pub memory_type: MemoryKind,

    /// rccl-tests' -O: 1 measures out-of-place only, 0 in-place only; without it, both.
    #[arg(
        short = 'O',
        long = "out_of_place",
        visible_alias = "out-of-place",
        value_name = "0|1"
    )]
    pub out_of_place: Option<u8>,

    /// rccl-tests' -E 1: timed iterations alternate between two buffer offsets 192 MiB apart, so a
    /// size smaller than the GPU's caches is not measured from them (the buffers grow by 192 MiB).
    #[arg(
        short = 'E',
        long = "rotating_tensor",
        visible_alias = "rotating-tensor",
        value_name = "0|1",
        default_value_t = 0
    )]
    pub rotating_tensor: u8,

    /// rccl-tests' -F N: flush the GPU's instruction cache every N iterations. Not implemented (the
    /// flush is a kernel of rccl-tests' own); any N above 0 is refused with the reason.
    #[arg(
        short = 'F',
        long = "cache_flush",
        visible_alias = "cache-flush",
        value_name = "N",
        default_value_t = 0
    )]
    pub cache_flush: u64,

    /// rccl-tests' -A 1: algo, proto and channels columns after each size: the algorithm, protocol and
    /// channel count RCCL chooses for it, where the library tells (RCCL 7's rcclGetAlgoInfo), else N/A.
    #[arg(
        short = 'A',
        long = "output_algo_proto_channels",
        visible_alias = "algo-columns",
        value_name = "0|1",
        default_value_t = 0
    )]
    pub algo_columns: u8,

    /// rccl-tests' -Z csv|json: also write rccl-tests' own results file (with -X), in its columns.
    #[arg(
        short = 'Z',
        long = "rccl_output_format",
        visible_alias = "output_format",
        value_name = "csv|json"
    )]
    pub rccl_output_format: Option<String>,

    /// rccl-tests' -X FILE: where -Z's file goes.
    #[arg(short = 'X', long = "rccl_output_file", value_name = "FILE")]
    pub rccl_output_file: Option<PathBuf>,

    /// No progress bar (it is shown only when stderr is a terminal).
    #[arg(long = "no-progress", action = ArgAction::SetTrue)]
    pub no_progress: bool,

    /// Skip the link probe that follows the sweep when the job spans several hosts (a short pairs
    /// exchange between the hosts' first ranks, naming a slow host or link in the summary).
    #[arg(long = "no-link-probe", action = ArgAction::SetTrue)]
    pub no_link_probe: bool,
}

/// With -n auto, the fewest timed iterations per size unless --min-iters says otherwise.
pub const DEFAULT_MIN_ITERS: u64 = 10;

pub const AFTER_HELP: &str = "\
Examples:
  mpirun -np 8 collbench all_reduce -b 8 -e 8G -f 2
  mpirun -np 16 --hostfile hosts collbench all -J run.json
  collbench all_to_all -g 8 -b 1M -e 1G
  mpirun -np 8 collbench all_reduce --groups 8,4,2 -b 1M -e 1G   TP8, 2xTP4, 4xTP2 side by side
  mpirun -np 4 collbench all_to_allv --matrix bytes.txt          per-peer bytes from a file
  mpirun -np 8 collbench all_to_allv --moe tokens=128,hidden=7168,topk=8,experts=256,skew=2

nccl-tests' variables: NCCL_TESTS_SPLIT, NCCL_TESTS_SPLIT_MASK (hexadecimal; wins over the rule),
NCCL_TESTS_DEVICE, NCCL_TESTS_MIN_BW, NCCL_TESTS_ALLTOALLV_SPREAD, NCCL_TESTS_ALLTOALLV_MATRIX_FILE,
_MATRIX_SCALE, _PRINT_SUMMARY (README).

Exit codes: 0 ok, 1 internal error, 2 usage error, 3 library error (NCCL, RCCL, CUDA, HIP, MPI),
4 timeout, 5 not enough devices or unsupported, 7 correctness check failed (or below
NCCL_TESTS_MIN_BW), 8 --expect gate failed, 9 compare found a regression, 10 results file could not
be written or read.";
