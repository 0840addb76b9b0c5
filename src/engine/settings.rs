//! How the engine measures: the timing and check settings, whichever command gives them.

use crate::metrics::Average;
use crate::plan::{Iterations, Plan, DEFAULT_MAX_SAMPLES};

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
    /// -z: wait after every operation.
    pub blocking: bool,
    /// -G: replays of the captured timed loop; 0 runs it directly.
    pub graph_replays: u64,
    /// Iterations of the sampled pass; None: as many as the timed loop ran, at most
    /// `DEFAULT_MAX_SAMPLES`.
    pub samples: Option<u64>,
    /// How ranks' times combine (-a).
    pub average: Average,
    /// Seed of the check's inputs.
    pub seed: u64,
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
        }
    }

    /// Iterations of the sampled pass after a timed loop of `timed` iterations.
    pub fn sample_iters(&self, timed: u64) -> u64 {
        self.samples
            .unwrap_or_else(|| timed.min(DEFAULT_MAX_SAMPLES))
    }
}
