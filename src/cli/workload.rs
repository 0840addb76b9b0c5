//! `collbench workload`'s command line.

use super::library::LibraryArgs;
use clap::Args;
use std::path::PathBuf;

/// Measure the messages one step of a model moves, on candidate TP, EP and TP x PP layouts, say what
/// one GPU of each holds, and rank the layouts by communication time per step.
///
/// MODEL is a preset (llama-3.1-8b, llama-3.1-70b, llama-3.1-405b, mixtral-8x7b, qwen3-235b-a22b,
/// deepseek-v3) or the path of a Hugging Face config.json. Each layout runs as concurrent groups of
/// consecutive ranks (a TP4 layout on 8 ranks is --groups 4: two replicas). Counted: TP all_reduce (2
/// per layer), EP dispatch and combine (1 each per MoE layer), DP-attention all_gather/reduce_scatter
/// with --dp-attention, a pipeline's stage boundaries (point-to-point); weights and KV cache per GPU
/// against its memory (a layout that does not fit never wins); each timed loop's energy where the GPU
/// has a counter. Not counted: overlap with compute, micro-batching and pipeline bubbles
/// (docs/WORKLOAD.md).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mpirun -np 8 collbench workload llama-3.1-70b --batch 1,64 --prefill 8K\n  mpirun -np 8 collbench workload qwen3-235b-a22b --tp 4,8 --job-batch 16,64 --gpu-memory 80\n  mpirun -np 16 --map-by ppr:8:node collbench workload llama-3.1-405b --tp 8,16 --pp 2\n  mpirun -np 16 collbench workload deepseek-v3 --tp 8 --ep 8,16 -J ds.json\n  mpirun -np 8 collbench workload ./config.json --tp 2,4,8 --prefill none\n\nExit codes: 0 done, 2 usage error, 3 library error, 4 timeout (-T), 5 unsupported, 7 a message failed its correctness check, 10 a file could not be written."
)]
pub struct WorkloadArgs {
    /// A preset name or the path of a Hugging Face config.json.
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Decode phases: tokens per step per model replica, comma-separated; none to skip decode.
    #[arg(long, default_value = "1,8,64,256")]
    pub batch: String,
    /// Prefill phases: tokens per chunk per model replica (K = 1024), comma-separated; none to skip.
    #[arg(long, default_value = "2K,8K,16K")]
    pub prefill: String,
    /// Decode phases at equal load: tokens per step for the whole job, shared by each layout's replicas
    /// (TP8 on 8 ranks serves them with one replica, TP4 with two of half as many), comma-separated.
    #[arg(long = "job-batch", value_name = "TOKENS")]
    pub job_batch: Option<String>,
    /// Prefill phases at equal load: tokens per chunk for the whole job, shared by each layout's
    /// replicas (K = 1024), comma-separated.
    #[arg(long = "job-prefill", value_name = "TOKENS")]
    pub job_prefill: Option<String>,
    /// Tensor-parallel group sizes to measure (default: every size that divides the job and fits the
    /// hosts).
    #[arg(long, value_name = "SIZES")]
    pub tp: Option<String>,
    /// Expert-parallel group sizes to measure, MoE models only (default: every size that divides the
    /// job, fits the hosts and spreads the experts evenly).
    #[arg(long, value_name = "SIZES")]
    pub ep: Option<String>,
    /// Pipeline stage counts: each TP size (given, or every size inside a host) times each, e.g. 2 for
    /// TP8 x PP2 on two hosts of 8 (default: on several alike hosts, TP over a host x PP over hosts).
    #[arg(long, value_name = "STAGES")]
    pub pp: Option<String>,
    /// Tokens each sequence holds in the KV cache, for the fit (K = 1024).
    #[arg(long, value_name = "TOKENS", default_value = "8K")]
    pub context: String,
    /// GB (1e9 bytes) of memory per GPU to judge the fit against, instead of what the topology reads
    /// (the mpi backend has no GPU: without it the check is skipped).
    #[arg(long = "gpu-memory", value_name = "GB")]
    pub gpu_memory: Option<f64>,
    /// Read no GPU: no energy per message and no power limit in the document.
    #[arg(long = "no-telemetry", action = clap::ArgAction::SetTrue)]
    pub no_telemetry: bool,
    /// TP layouts run attention data-parallel: an all_gather before each MLP and a reduce_scatter after
    /// it replace the two all_reduce.
    #[arg(long = "dp-attention", action = clap::ArgAction::SetTrue)]
    pub dp_attention: bool,
    /// EP routing: the MoE router's hot-rank ratio, rank 0's experts chosen this many times as often as
    /// any other (1: uniform; DeepEP's "unbalanced ratio").
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,
    /// EP routing: the router's seed (where the choices that do not divide evenly go).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Timed iterations per message, or auto (iterate to --ci-target precision).
    #[arg(short = 'n', long = "iters", default_value = "auto")]
    pub iters: String,
    /// With -n auto: the 95 % confidence half-width to reach, as a percentage of the mean.
    #[arg(long = "ci-target", value_name = "PERCENT", default_value_t = 1.0)]
    pub ci_target: f64,
    /// With -n auto: seconds of timed iterations after which a message stops, reached or not.
    #[arg(long = "size-time-cap", value_name = "SECONDS", default_value_t = 2.0)]
    pub size_time_cap: f64,
    /// Warm-up iterations per message.
    #[arg(short = 'w', long = "warmup-iters", default_value_t = 5)]
    pub warmup_iters: u64,
    /// Correctness-check iterations per message; 0 turns the check off.
    #[arg(short = 'c', long = "check", default_value_t = 1)]
    pub check: u64,
    /// Write the results as one JSON document, rewritten after every message.
    #[arg(short = 'J', long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub library: LibraryArgs,
    /// Seconds before a stuck message or barrier ends the job; 0 waits forever.
    #[arg(short = 'T', long = "timeout", default_value_t = 0.0)]
    pub timeout: f64,
}
