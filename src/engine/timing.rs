//! The timed passes of one measurement: nccl-tests' timed loop (the backend sees only the enqueues and
//! one wait), the separate sampled pass between timer marks, -G's captured graph and its replays, and
//! -n auto's batches.

use super::Engine;
use crate::backend::OpDesc;
use crate::error::Result;
use crate::report::model::Stats;
use crate::world::Combine;
use std::time::Instant;

impl Engine<'_> {
    /// Enqueues timed iteration `i` at nccl-tests' rotating offset (iteration i starts i footprints into
    /// the buffers, wrapping where the next would not fit). With -m > 1 its operations go in one group, as
    /// nccl-tests; a single operation is enqueued bare, so the library sees no group call around it.
    /// `desc` is the pass's own copy: only its shift changes, so the loop clones nothing.
    /// rccl-tests' -E instead alternates between offset 0 and one 192 MiB further, past the caches.
    fn enqueue_iteration(&mut self, desc: &mut OpDesc, i: u64) -> Result<()> {
        desc.shift_bytes = match self.settings.rccl_tests.rotating_offset {
            Some(offset) => {
                let footprint = desc.shape.buffer_bytes(desc.dtype.size());
                if offset + footprint > self.buffer_bytes {
                    return Err(crate::error::Error::Internal(format!(
                        "-E: buffers of {} bytes have no room for a second offset {offset} bytes further",
                        self.buffer_bytes
                    )));
                }
                offset * (i % 2)
            }
            None => {
                let footprint = desc.shape.buffer_bytes(desc.dtype.size());
                let steps = self.buffer_bytes.checked_div(footprint).unwrap_or(1).max(1);
                footprint * (i % steps)
            }
        };
        if self.settings.agg_iters == 1 {
            return self.backend.enqueue(desc);
        }
        self.backend.group_start()?;
        for _ in 0..self.settings.agg_iters {
            self.backend.enqueue(desc)?;
        }
        self.backend.group_end()
    }

    /// One step of a pass: a timed iteration, or a replay of the captured graph.
    fn step(&mut self, desc: &mut OpDesc, how: Step, i: u64) -> Result<()> {
        match how {
            Step::Iteration => self.enqueue_iteration(desc, i)?,
            Step::Replay => self.graphs()?.replay()?,
        }
        if self.settings.blocking {
            self.backend.wait()?;
        }
        Ok(())
    }

    /// nccl-tests' timed loop: the host clock around `count` steps enqueued back to back and their
    /// completion. The backend sees the enqueues and the final wait, nothing else: no timer mark, no
    /// group call with -m 1. The observer reads the GPU's energy counter just before the clock starts
    /// and just after it stops, never between. Returns microseconds, and the joules this rank's GPU used
    /// meanwhile where it has a counter.
    fn timed_pass(&mut self, desc: &OpDesc, how: Step, count: u64) -> Result<TimedPass> {
        let delay = self.switches.delay_for(self.world.rank());
        let mut shifted = desc.clone();
        if let Some(o) = self.observer.as_deref_mut() {
            o.timed_loop_starting();
        }
        let start = Instant::now();
        for i in 0..count {
            self.step(&mut shifted, how, i)?;
        }
        self.backend.wait()?;
        if let Some(d) = delay {
            // A rank that sees its operations complete late: the others do not wait for it.
            std::thread::sleep(d * count as u32);
        }
        let elapsed_us = start.elapsed().as_secs_f64() * 1e6;
        let joules = self
            .observer
            .as_deref_mut()
            .and_then(|o| o.timed_loop_finished());
        Ok(TimedPass { elapsed_us, joules })
    }

    /// `count` steps, each bounded by timer marks (device events on GPUs), for the distribution: never
    /// part of the reported time. Returns each step's microseconds per operation, slowest rank at each
    /// step, identical on every rank.
    fn sampled_pass(
        &mut self,
        desc: &OpDesc,
        how: Step,
        count: u64,
        ops_per_step: u64,
    ) -> Result<Vec<f64>> {
        let count = count as usize;
        let mut shifted = desc.clone();
        self.backend.reserve_marks(count + 1)?;
        self.backend.mark(0)?;
        for i in 0..count {
            self.step(&mut shifted, how, i as u64)?;
            self.backend.mark(i + 1)?;
        }
        self.backend.wait()?;
        let mut samples: Vec<f64> = self
            .backend
            .mark_intervals_us(count)?
            .into_iter()
            .map(|t| t / ops_per_step as f64)
            .collect();
        // Step i took as long as its slowest rank.
        self.world.all_reduce_f64(&mut samples, Combine::Max)?;
        Ok(samples)
    }

    /// The timing of `iters` timed iterations of -m operations each.
    fn iterations_timing(
        &self,
        pass: TimedPass,
        iters: u64,
        samples: Vec<f64>,
        source: String,
    ) -> Timing {
        Timing {
            elapsed_us: pass.elapsed_us,
            joules: pass.joules,
            ops: iters * self.settings.agg_iters,
            iterations: iters,
            samples,
            source,
        }
    }

    /// `-n N`: the timed loop, then (after a barrier) the sampled pass.
    pub(super) fn fixed(&mut self, desc: &OpDesc, iters: u64) -> Result<Timing> {
        let pass = self.timed_pass(desc, Step::Iteration, iters)?;
        let count = self.settings.sample_iters(iters);
        let samples = if count > 0 {
            self.watchdog.arm(|| Self::label(desc, "sampled pass"));
            self.world.barrier()?;
            self.sampled_pass(desc, Step::Iteration, count, self.settings.agg_iters)?
        } else {
            Vec::new()
        };
        let source = format!(
            "a separate pass of {count} iterations after the timed loop, each between timer marks"
        );
        Ok(self.iterations_timing(pass, iters, samples, source))
    }

    /// `-G R`: the `iters` iterations captured once into a graph, one untimed replay (the first launch
    /// uploads the graph), R timed replays, then the sampled replays; the graph is released last, outside
    /// any capture.
    pub(super) fn graph(&mut self, desc: &OpDesc, iters: u64, replays: u64) -> Result<Timing> {
        let mut shifted = desc.clone();
        self.graphs()?.begin_capture()?;
        for i in 0..iters {
            self.enqueue_iteration(&mut shifted, i)?;
        }
        self.graphs()?.end_capture()?;
        self.graphs()?.replay()?;
        self.backend.wait()?;
        self.world.barrier()?;

        let pass = self.timed_pass(desc, Step::Replay, replays)?;
        let ops_per_replay = iters * self.settings.agg_iters;
        let count = self.settings.sample_iters(replays);
        let samples = if count > 0 {
            self.watchdog.arm(|| Self::label(desc, "sampled pass"));
            self.world.barrier()?;
            self.sampled_pass(desc, Step::Replay, count, ops_per_replay)?
        } else {
            Vec::new()
        };
        self.graphs()?.release_graph()?;
        Ok(Timing {
            elapsed_us: pass.elapsed_us,
            joules: pass.joules,
            ops: replays * ops_per_replay,
            iterations: iters * replays,
            samples,
            source: format!(
                "a separate pass of {count} graph replays after the timed replays, each between timer marks"
            ),
        })
    }

    /// `-n auto`: sampled batches of growing size until the 95 % confidence half-width of the mean is
    /// within the target or the time cap is spent (every rank decides from the same rank-combined
    /// samples, so all run the same count); then the timed loop runs that many iterations unmarked.
    pub(super) fn adaptive(
        &mut self,
        desc: &OpDesc,
        ci_target: f64,
        min: u64,
        cap_s: f64,
    ) -> Result<Timing> {
        let mut samples: Vec<f64> = Vec::new();
        let mut batch = min;
        loop {
            let batch_samples =
                self.sampled_pass(desc, Step::Iteration, batch, self.settings.agg_iters)?;
            samples.extend(batch_samples);
            let spent_s = samples.iter().sum::<f64>() * self.settings.agg_iters as f64 / 1e6;
            let ci = Stats::from_samples(&samples).map_or(f64::INFINITY, |s| s.ci95_percent);
            if ci <= ci_target || spent_s >= cap_s {
                break;
            }
            // Double the count, but do not plan past the time cap.
            let per_iteration_s = spent_s / samples.len() as f64;
            let affordable = ((cap_s - spent_s) / per_iteration_s.max(1e-9)).ceil() as u64;
            batch = (samples.len() as u64).min(affordable).max(1);
        }
        let iters = samples.len() as u64;
        self.watchdog.arm(|| Self::label(desc, "timed loop"));
        self.world.barrier()?;
        let pass = self.timed_pass(desc, Step::Iteration, iters)?;
        let source = format!(
            "the -n auto batches ({iters} iterations between timer marks) that decided the count, before the timed loop"
        );
        Ok(self.iterations_timing(pass, iters, samples, source))
    }
}

/// The timed loop on this rank: its host microseconds and its GPU's joules.
struct TimedPass {
    elapsed_us: f64,
    joules: Option<f64>,
}

/// What a pass repeats.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    /// One timed iteration of -m operations.
    Iteration,
    /// One replay of the captured graph.
    Replay,
}

/// The outcome of the timed loop and the sampled pass of one measurement.
pub(super) struct Timing {
    /// Host microseconds around the timed loop on this rank.
    pub(super) elapsed_us: f64,
    /// Joules this rank's GPU used over the timed loop; None without an energy counter.
    pub(super) joules: Option<f64>,
    /// Operations in the timed loop.
    pub(super) ops: u64,
    /// Iterations reported (-n, or -n x -G replays).
    pub(super) iterations: u64,
    /// Per-step microseconds per operation, slowest rank at each step.
    pub(super) samples: Vec<f64>,
    /// Where the samples came from, for the JSON.
    pub(super) source: String,
}
