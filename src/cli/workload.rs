//! `collbench workload`'s command line.

use super::library::LibraryArgs;
use clap::Args;
use std::path::PathBuf;

/// Measure the messages one step of a model moves, on candidate TP and EP layouts, and rank the
/// layouts by communication time per step.
///
/// MODEL is a preset (llama-3.1-8b, llama-3.1-70b, llama-3.1-405b, mixtral-8x7b, qwen3-235b-a22b,
/// deepseek-v3) or the path of a Hugging Face config.json. Each layout runs as concurrent groups of
/// consecutive ranks (a TP4 layout on 8 ranks is --groups 4). Counted: TP all_reduce (2 per layer),
/// EP dispatch and combine (1 each per MoE layer), DP-attention all_gather/reduce_scatter with
/// --dp-attention. Not counted: overlap with compute, pipeline bubbles (docs/WORKLOAD.md).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mpirun -np 8 collbench workload llama-3.1-70b --batch 1,64 --prefill 8K\n  mpirun -np 16 collbench workload deepseek-v3 --tp 8 --ep 8,16 -J ds.json\n  mpirun -np 8 collbench workload ./config.json --tp 2,4,8 --prefill none\n\nExit codes: 0 done, 2 usage error, 3 library error, 4 timeout (-T), 5 unsupported, 7 a message failed its correctness check, 10 a file could not be written."
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
    /// Tensor-parallel group sizes to measure (default: every size that divides the job and fits the
    /// hosts).
    #[arg(long, value_name = "SIZES")]
    pub tp: Option<String>,
    /// Expert-parallel group sizes to measure, MoE models only (default: every size that divides the
    /// job, fits the hosts and spreads the experts evenly).
    #[arg(long, value_name = "SIZES")]
    pub ep: Option<String>,
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
