//! The timed passes of one measurement: nccl-tests' timed loop (the backend sees only the enqueues and
//! one wait), the separate sampled pass between timer marks, -G's captured graph and its replays, and
//! -n auto's batches.

use super::Engine;
use crate::backend::OpDesc;
use crate::error::Result;
use crate::plan::Blocking;
use crate::report::document::Stats;
use crate::world::{all_gather_value, Combine};
use std::time::Instant;

impl Engine<'_> {
    /// The rotation of a pass's timed iterations, at nccl-tests' rotating offset: iteration i starts i
    /// footprints into the buffers (after the operation's own offset), wrapping where the next would
    /// not fit. rccl-tests' -E instead alternates between the operation's offset and one 192 MiB
    /// further, past the caches.
    fn rotation(&self, desc: &OpDesc) -> Result<Rotation> {
        let footprint = desc.shape.buffer_bytes(desc.dtype.size());
        // The room after the operation's own offset (-u's misalignment).
        let room = self.buffer_bytes.saturating_sub(desc.shift_bytes);
        if let Some(offset) = self.settings.rccl_tests.rotating_offset {
            if offset + footprint > room {
                return Err(crate::error::Error::Internal(format!(
                    "-E: buffers of {} bytes have no room for a second offset {offset} bytes further",
                    self.buffer_bytes
                )));
            }
            return Ok(Rotation {
                base: desc.shift_bytes,
                step: offset,
                end: 2 * offset,
                at: 0,
            });
        }
        let steps = room.checked_div(footprint).unwrap_or(1).max(1);
        Ok(Rotation {
            base: desc.shift_bytes,
            step: footprint,
            end: footprint * steps,
            at: 0,
        })
    }

    /// Readies `desc` for a pass of timed iterations: the backend works out once what every iteration
    /// shares, for rotations up to the pass's largest.
    fn prepare_pass(&mut self, desc: &OpDesc) -> Result<Rotation> {
        let rotation = self.rotation(desc)?;
        self.backend.prepare(desc, rotation.max_shift())?;
        Ok(rotation)
    }

    /// Launches the next prepared timed iteration. With -m > 1 its operations go in one group, as
    /// nccl-tests; a single operation is launched bare, so the library sees no group call around it.
    #[inline]
    fn launch_iteration(&mut self, rotation: &mut Rotation) -> Result<()> {
        let shift = rotation.next_shift();
        if self.settings.agg_iters == 1 {
            return self.backend.launch(shift);
        }
        self.backend.group_start()?;
        for _ in 0..self.settings.agg_iters {
            self.backend.launch(shift)?;
        }
        self.backend.group_end()
    }

    /// One step of a pass: a timed iteration, or a replay of the captured graph.
    #[inline]
    fn step(&mut self, rotation: &mut Rotation, how: Step) -> Result<()> {
        match how {
            Step::Iteration => self.launch_iteration(rotation)?,
            Step::Replay => self.graphs()?.replay()?,
        }
        match self.settings.blocking {
            Blocking::Off => {}
            Blocking::Wait => self.backend.wait()?,
            Blocking::WaitAndBarrier => {
                self.backend.wait()?;
                self.world.barrier()?;
            }
            // The pass itself waits and meets each iteration, outside the time (see `timed_pass`).
            Blocking::WaitAndBarrierUntimed => self.backend.wait()?,
        }
        Ok(())
    }

    /// nccl-tests' timed loop: the host clock around `count` steps enqueued back to back and their
    /// completion. The backend sees the launches and the final wait, nothing else: no timer mark, no
    /// group call with -m 1. With -z 3 each step is waited for and the ranks meet after it, the meeting
    /// left out of the time. The observer reads the GPU's energy counter just before the clock starts
    /// and just after it stops, never between. Returns the microseconds until completion and until the
    /// last launch returned (nccl-tests' -C 1 time), and the joules this rank's GPU used meanwhile where
    /// it has a counter.
    fn timed_pass(&mut self, desc: &OpDesc, how: Step, count: u64) -> Result<Passed> {
        let delay = self.switches.delay_for(self.world.rank());
        let mut rotation = self.prepare_for(desc, how)?;
        if let Some(o) = self.observer.as_deref_mut() {
            o.timed_loop_starting();
        }
        let passed = if self.settings.blocking == Blocking::WaitAndBarrierUntimed {
            let mut own = std::time::Duration::ZERO;
            for _ in 0..count {
                let start = Instant::now();
                self.step(&mut rotation, how)?;
                own += start.elapsed();
                self.world.barrier()?;
            }
            // As nccl-tests: the time and the CPU time are the iterations' own.
            let us = own.as_secs_f64() * 1e6;
            Passed {
                elapsed_us: us,
                cpu_us: us,
                joules: None,
            }
        } else {
            let start = Instant::now();
            if how == Step::Iteration
                && self.settings.agg_iters == 1
                && self.settings.blocking == Blocking::Off
            {
                // nccl-tests' default loop, and nothing else: one launch per iteration.
                for _ in 0..count {
                    self.backend.launch(rotation.next_shift())?;
                }
            } else {
                for _ in 0..count {
                    self.step(&mut rotation, how)?;
                }
            }
            let cpu_us = start.elapsed().as_secs_f64() * 1e6;
            self.backend.wait()?;
            Passed {
                elapsed_us: start.elapsed().as_secs_f64() * 1e6,
                cpu_us,
                joules: None,
            }
        };
        let passed = Passed {
            joules: self
                .observer
                .as_deref_mut()
                .and_then(|o| o.timed_loop_finished()),
            ..passed
        };
        if let Some(d) = delay {
            // A rank that sees its operations complete late: the others do not wait for it.
            std::thread::sleep(d * count as u32);
            let late = (d * count as u32).as_secs_f64() * 1e6;
            return Ok(Passed {
                elapsed_us: passed.elapsed_us + late,
                ..passed
            });
        }
        Ok(passed)
    }

    /// What a pass prepares before its clock starts: the iteration's operation, or nothing for the
    /// replays of a graph (captured already).
    fn prepare_for(&mut self, desc: &OpDesc, how: Step) -> Result<Rotation> {
        match how {
            Step::Iteration => self.prepare_pass(desc),
            Step::Replay => self.rotation(desc),
        }
    }

    /// `count` steps, each bounded by timer marks (device events on GPUs), for the distribution: never
    /// part of the reported time. Returns each step's microseconds per operation, slowest rank at each
    /// step, identical on every rank; and, when the settings keep them, every rank's own.
    fn sampled_pass(
        &mut self,
        desc: &OpDesc,
        how: Step,
        count: u64,
        ops_per_step: u64,
    ) -> Result<Sampled> {
        let count = count as usize;
        let mut rotation = self.prepare_for(desc, how)?;
        self.backend.reserve_marks(count + 1)?;
        self.backend.mark(0)?;
        for i in 0..count {
            self.step(&mut rotation, how)?;
            self.backend.mark(i + 1)?;
        }
        self.backend.wait()?;
        let mine: Vec<f64> = self
            .backend
            .mark_intervals_us(count)?
            .into_iter()
            .map(|t| t / ops_per_step as f64)
            .collect();
        // nccl-tests' per-process rows (-I 1 into its JSON format): every rank's, on every rank.
        let ranks = if self.settings.rank_iteration_times {
            Some(all_gather_value(self.world, &mine)?)
        } else {
            None
        };
        let mut samples = mine;
        // Step i took as long as its slowest rank.
        self.world.all_reduce_f64(&mut samples, Combine::Max)?;
        Ok(Sampled { samples, ranks })
    }

    /// The timing of `iters` timed iterations of -m operations each.
    fn iterations_timing(
        &self,
        passed: Passed,
        iters: u64,
        sampled: Sampled,
        source: String,
    ) -> Timing {
        Timing {
            elapsed_us: passed.elapsed_us,
            cpu_us: passed.cpu_us,
            joules: passed.joules,
            ops: iters * self.settings.agg_iters,
            iterations: iters,
            samples: sampled.samples,
            rank_samples: sampled.ranks,
            source,
        }
    }

    /// `-n N`: the timed loop, then (after a barrier) the sampled pass.
    pub(super) fn fixed(&mut self, desc: &OpDesc, iters: u64) -> Result<Timing> {
        let passed = self.timed_pass(desc, Step::Iteration, iters)?;
        let count = self.settings.sample_iters(iters);
        let sampled = if count > 0 {
            self.watchdog.arm(|| Self::label(desc, "sampled pass"));
            self.world.barrier()?;
            self.sampled_pass(desc, Step::Iteration, count, self.settings.agg_iters)?
        } else {
            Sampled::default()
        };
        let source = format!(
            "a separate pass of {count} iterations after the timed loop, each between timer marks"
        );
        Ok(self.iterations_timing(passed, iters, sampled, source))
    }

    /// `-G R`: the `iters` iterations captured once into a graph, one untimed replay (the first launch
    /// uploads the graph), R timed replays, then the sampled replays; the graph is released last, outside
    /// any capture.
    pub(super) fn graph(&mut self, desc: &OpDesc, iters: u64, replays: u64) -> Result<Timing> {
        // Prepared before the capture begins: only the launches go into the graph.
        let mut rotation = self.prepare_pass(desc)?;
        self.graphs()?.begin_capture()?;
        for _ in 0..iters {
            self.launch_iteration(&mut rotation)?;
        }
        self.graphs()?.end_capture()?;
        self.graphs()?.replay()?;
        self.backend.wait()?;
        self.world.barrier()?;

        let passed = self.timed_pass(desc, Step::Replay, replays)?;
        let ops_per_replay = iters * self.settings.agg_iters;
        let count = self.settings.sample_iters(replays);
        let sampled = if count > 0 {
            self.watchdog.arm(|| Self::label(desc, "sampled pass"));
            self.world.barrier()?;
            self.sampled_pass(desc, Step::Replay, count, ops_per_replay)?
        } else {
            Sampled::default()
        };
        self.graphs()?.release_graph()?;
        Ok(Timing {
            elapsed_us: passed.elapsed_us,
            cpu_us: passed.cpu_us,
            joules: passed.joules,
            ops: replays * ops_per_replay,
            iterations: iters * replays,
            samples: sampled.samples,
            rank_samples: sampled.ranks,
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
        let mut ranks: Option<Vec<Vec<f64>>> = None;
        let mut batch = min;
        loop {
            let sampled =
                self.sampled_pass(desc, Step::Iteration, batch, self.settings.agg_iters)?;
            samples.extend(sampled.samples);
            if let Some(more) = sampled.ranks {
                let all = ranks.get_or_insert_with(|| vec![Vec::new(); more.len()]);
                for (rank, times) in all.iter_mut().zip(more) {
                    rank.extend(times);
                }
            }
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
        let passed = self.timed_pass(desc, Step::Iteration, iters)?;
        let source = format!(
            "the -n auto batches ({iters} iterations between timer marks) that decided the count, before the timed loop"
        );
        Ok(self.iterations_timing(passed, iters, Sampled { samples, ranks }, source))
    }
}

/// What a pass repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Host microseconds until its last launch returned (-C 1's time).
    pub(super) cpu_us: f64,
    /// Joules this rank's GPU used over the timed loop; None without an energy counter.
    pub(super) joules: Option<f64>,
    /// Operations in the timed loop.
    pub(super) ops: u64,
    /// Iterations reported (-n, or -n x -G replays).
    pub(super) iterations: u64,
    /// Per-step microseconds per operation, slowest rank at each step.
    pub(super) samples: Vec<f64>,
    /// Every rank's own, in rank order, when the settings keep them.
    pub(super) rank_samples: Option<Vec<Vec<f64>>>,
    /// Where the samples came from, for the JSON.
    pub(super) source: String,
}

/// Where a pass's timed iterations put their operations: iteration i goes `base` + (i * `step` mod
/// `end`) in (`step` a footprint, or -E's offset); `at` is the next iteration's place.
#[derive(Debug, Clone, Copy)]
struct Rotation {
    base: u64,
    step: u64,
    end: u64,
    at: u64,
}

impl Rotation {
    /// The next iteration's shift; it moves on a step, wrapping at the end.
    #[inline(always)]
    fn next_shift(&mut self) -> u64 {
        let shift = self.base + self.at;
        self.at += self.step;
        if self.at >= self.end {
            self.at = 0;
        }
        shift
    }

    /// The largest shift any iteration gets.
    fn max_shift(self) -> u64 {
        self.base + self.end.saturating_sub(self.step)
    }
}

/// What a timed pass measured on this rank, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Passed {
    /// Until every operation had completed.
    elapsed_us: f64,
    /// Until the last launch returned: the host's cost of enqueueing (nccl-tests' -C 1).
    cpu_us: f64,
    /// Joules this rank's GPU used over the loop; None without an energy counter.
    joules: Option<f64>,
}

/// What a sampled pass measured: per step, the slowest rank's microseconds per operation, and each
/// rank's own when kept.
#[derive(Debug, Clone, Default)]
struct Sampled {
    samples: Vec<f64>,
    ranks: Option<Vec<Vec<f64>>>,
}
