//! How the engine measures: the timing and check settings, whichever command gives them.

use crate::metrics::Average;
use crate::plan::{
    Blocking, Iterations, Placements, Plan, DEFAULT_MAX_SAMPLES, ROTATING_TENSOR_BYTES,
};
use std::time::Duration;

/// How the engine measures every operation: nccl-tests' timing flags and the check's, whichever command
/// asks (a sweep's Plan, `collbench pairs`, `collbench workload`).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    pub iters: Iterations,
    pub warmup_iters: u64,
    /// Operations per timed iteration (-m), in one group where more than one.
    pub agg_iters: u64,
    /// Checked operations per measurement; 0 turns the check off.
    pub check_iters: u64,
    /// -z: what each timed iteration waits for.
    pub blocking: Blocking,
    /// -G: replays of the captured timed loop; 0 runs it directly.
    pub graph_replays: u64,
    /// Iterations of the sampled pass; None: as many as the timed loop ran, at most
    /// `DEFAULT_MAX_SAMPLES`.
    pub samples: Option<u64>,
    /// How ranks' times combine (-a).
    pub average: Average,
    /// Seed of the check's inputs.
    pub seed: u64,
    /// -u: elements by which every operation's buffers are misaligned.
    pub unalign: u64,
    /// -I 1: every sampled iteration's time kept in the measurement.
    pub keep_iteration_times: bool,
    /// And every rank's own (nccl-tests' per-process rows), gathered on every rank.
    pub rank_iteration_times: bool,
    /// -K: leading samples left out of the statistics.
    pub iteration_skip: u64,
    /// rccl-tests' -O, -q, -E and -A (a sweep's; other commands measure as nccl-tests).
    pub rccl_tests: RcclTestsHabits,
}

/// What rccl-tests' flags change in how a sweep measures.
#[derive(Debug, Clone, PartialEq)]
pub struct RcclTestsHabits {
    /// -O: which placements each size measures.
    pub placements: Placements,
    /// -q: the pause between a size's out-of-place and in-place measurements.
    pub delay_between_placements: Duration,
    /// -E: timed iterations alternate between offset 0 and this many bytes (the buffers hold that much
    /// more); None rotates through the buffers as nccl-tests does.
    pub rotating_offset: Option<u64>,
    /// -A: ask the backend what it chose for each row.
    pub algo_columns: bool,
}

impl Default for RcclTestsHabits {
    /// nccl-tests' way: both placements, no pause, nccl-tests' rotation, no algo columns.
    fn default() -> Self {
        RcclTestsHabits {
            placements: Placements::BOTH,
            delay_between_placements: Duration::ZERO,
            rotating_offset: None,
            algo_columns: false,
        }
    }
}

impl EngineSettings {
    /// A sweep's settings, from its plan.
    pub fn of(plan: &Plan) -> EngineSettings {
        EngineSettings {
            iters: plan.iters,
            warmup_iters: plan.warmup_iters,
            agg_iters: plan.agg_iters,
            check_iters: plan.check_iters,
            blocking: plan.blocking,
            graph_replays: plan.cudagraph_replays,
            samples: plan.samples,
            average: plan.average,
            seed: plan.seed,
            unalign: plan.unalign,
            keep_iteration_times: plan.per_iter_timing,
            rank_iteration_times: plan.per_iter_timing
                && plan.json_format == crate::report::json::JsonFormat::NcclTests,
            iteration_skip: plan.per_iter_skip,
            rccl_tests: RcclTestsHabits {
                placements: plan.placements,
                delay_between_placements: Duration::from_micros(plan.delay_inout_place_us),
                rotating_offset: plan.rotating_tensor.then_some(ROTATING_TENSOR_BYTES),
                algo_columns: plan.algo_columns,
            },
        }
    }

    /// The settings of a command that is not a sweep (`pairs`, `workload`): its iterations, warm-up and
    /// check, and nccl-tests' defaults for the rest (no -m, -z, -G, -u or per-iteration times).
    pub fn plain(iters: Iterations, warmup_iters: u64, check_iters: u64) -> EngineSettings {
        EngineSettings {
            iters,
            warmup_iters,
            agg_iters: 1,
            check_iters,
            blocking: crate::plan::Blocking::Off,
            graph_replays: 0,
            samples: None,
            average: Average::Mean,
            seed: 0,
            unalign: 0,
            keep_iteration_times: false,
            rank_iteration_times: false,
            iteration_skip: 0,
            rccl_tests: RcclTestsHabits::default(),
        }
    }

    /// Iterations of the sampled pass after a timed loop of `timed` iterations.
    pub fn sample_iters(&self, timed: u64) -> u64 {
        self.samples
            .unwrap_or_else(|| timed.min(DEFAULT_MAX_SAMPLES))
    }
}
