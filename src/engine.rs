//! The sweep engine: for each collective, type, operator, root and size it prepares buffers, warms up,
//! runs the timed loop, verifies, and combines the numbers of every rank into a Row. It never knows
//! which backend it drives.

use crate::backend::{Backend, BufferId, OpDesc};
use crate::check::pattern::Pattern;
use crate::check::verify;
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::layout::figures::group_figures;
use crate::layout::Layout;
use crate::metrics::{algbw_gbps, busbw_gbps, combine_rank_times};
use crate::plan::{Iterations, Plan};
use crate::report::model::{Measurement, Row, Stats};
use crate::size::HumanSize;
use crate::telemetry::RowObserver;
use crate::testing::TestSwitches;
use crate::traffic::{Phase, Traffic, TrafficReport};
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, Combine, World};
use std::time::Instant;

/// Receives each row as soon as it is measured (rank 0's reporters).
pub trait RowSink {
    /// A row is about to be measured (for progress displays).
    fn starting(&mut self, _what: &str) {}
    fn row(&mut self, row: &Row) -> Result<()>;
}

/// A sink for the ranks that report nothing.
pub struct NullSink;

impl RowSink for NullSink {
    fn row(&mut self, _row: &Row) -> Result<()> {
        Ok(())
    }
}

/// One (collective, type, operator) the backend can run.
#[derive(Debug, Clone, Copy)]
pub struct Combination {
    pub collective: Collective,
    pub dtype: DataType,
    pub op: Option<ReduceOp>,
}

/// The combinations of the plan the backend supports, and a note for each it does not. A plan with
/// nothing runnable is a usage error naming why.
pub fn combinations(
    plan: &Plan,
    backend: &dyn Backend,
    ranks: usize,
) -> Result<(Vec<Combination>, Vec<String>)> {
    if let crate::plan::Roots::One(r) = plan.roots {
        if r >= ranks && plan.collectives.iter().any(|c| c.rooted()) {
            return Err(Error::Usage(format!(
                "-r/--root {r} is not a rank of this {ranks}-rank job: use 0 to {}, or all",
                ranks - 1
            )));
        }
    }
    if plan.cudagraph_replays > 0 && !backend.supports_graphs() {
        return Err(Error::Usage(format!(
            "-G {}: the {} backend cannot capture graphs; -G needs the nccl backend on NVIDIA GPUs: run without -G",
            plan.cudagraph_replays,
            backend.name()
        )));
    }
    let mut runnable = Vec::new();
    let mut notes = Vec::new();
    for &collective in &plan.collectives {
        for &dtype in &plan.dtypes {
            for op in plan.ops_for(collective) {
                match backend.unsupported(collective, dtype, op) {
                    None => runnable.push(Combination {
                        collective,
                        dtype,
                        op,
                    }),
                    Some(why) => notes.push(format!("skipped: {why}")),
                }
            }
        }
    }
    if runnable.is_empty() {
        return Err(Error::Usage(
            notes
                .first()
                .cloned()
                .unwrap_or_else(|| "nothing to run".into()),
        ));
    }
    Ok((runnable, notes))
}

/// Bytes each of the two buffers needs for the largest operation of `size` bytes on communicators of
/// any of `comm_sizes` ranks (all_to_allv's from its traffic's matrices, checked by `check_traffic`).
pub fn buffer_bytes(
    combos: &[Combination],
    size: u64,
    comm_sizes: &[usize],
    traffic: &Traffic,
) -> u64 {
    combos
        .iter()
        .flat_map(|c| {
            comm_sizes.iter().map(move |&n| {
                let elt = c.dtype.size();
                if c.collective == Collective::AllToAllv {
                    let phases = traffic.phases(size, n, elt).unwrap_or_default();
                    return phases
                        .iter()
                        .map(|p| p.matrix.shape(elt).buffer_bytes(elt))
                        .max()
                        .unwrap_or(0);
                }
                c.collective.shape(size, elt, n).buffer_bytes(elt)
            })
        })
        .max()
        .unwrap_or(0)
}

/// A usage error when the plan's all_to_allv traffic does not fit a communicator of the job (a matrix
/// of another size, entries that are not whole elements of a type).
pub fn check_traffic(plan: &Plan, combos: &[Combination], comm_sizes: &[usize]) -> Result<()> {
    for c in combos
        .iter()
        .filter(|c| c.collective == Collective::AllToAllv)
    {
        for &n in comm_sizes {
            plan.traffic
                .phases(plan.min_bytes, n, c.dtype.size())
                .map_err(Error::Usage)?;
        }
    }
    Ok(())
}

/// The all_to_allv operations a row step measures (one per phase), or one plain operation.
fn phases_of(
    traffic: &Traffic,
    combo: &Combination,
    size: u64,
    n: usize,
) -> Result<Vec<Option<Phase>>> {
    if combo.collective != Collective::AllToAllv {
        return Ok(vec![None]);
    }
    let phases = traffic
        .phases(size, n, combo.dtype.size())
        .map_err(Error::Usage)?;
    Ok(phases.into_iter().map(Some).collect())
}

/// Rows the sweep will produce (None when -N 0 repeats forever). `ranks` is the smallest communicator
/// (it bounds the roots); every size is measured once per layout.
pub fn row_count(
    plan: &Plan,
    combos: &[Combination],
    sizes: usize,
    ranks: usize,
    layouts: usize,
) -> Option<u64> {
    let per_cycle: usize = combos
        .iter()
        .map(|c| plan.roots_for(c.collective, ranks).len() * sizes * layouts)
        .sum();
    (plan.run_cycles > 0).then(|| per_cycle as u64 * plan.run_cycles)
}

pub struct Engine<'a> {
    pub plan: &'a Plan,
    pub world: &'a dyn World,
    pub backend: &'a mut dyn Backend,
    pub watchdog: &'a Watchdog,
    pub switches: TestSwitches,
    /// Bytes of each buffer, for rotating offsets between timed iterations.
    pub buffer_bytes: u64,
    /// Told when each row starts and ends (GPU telemetry); never called inside a row.
    pub observer: &'a mut dyn RowObserver,
}

impl Engine<'_> {
    /// Runs the whole sweep over `sizes` for every combination, each size once per layout (adjacent rows,
    /// every group of a layout at once); rank 0 passes each row to `sink`.
    pub fn run(
        &mut self,
        combos: &[Combination],
        layouts: &[Layout],
        sizes: &[u64],
        sink: &mut dyn RowSink,
    ) -> Result<()> {
        // Roots must exist in every group of every layout.
        let n = layouts
            .iter()
            .map(Layout::smallest_group)
            .min()
            .unwrap_or(self.world.size());
        let mut row_index = 0usize;
        let mut cycle = 0u64;
        while self.plan.run_cycles == 0 || cycle < self.plan.run_cycles {
            for combo in combos {
                for root in self.plan.roots_for(combo.collective, n) {
                    for &size in sizes {
                        for layout in layouts {
                            let phases =
                                phases_of(&self.plan.traffic, combo, size, layout.comm.size)?;
                            for phase in &phases {
                                self.switches.before_row(self.world.rank(), row_index);
                                if self.world.rank() == 0 {
                                    sink.starting(&format!(
                                        "{} {} {}",
                                        combo.collective,
                                        combo.dtype,
                                        HumanSize(size)
                                    ));
                                }
                                self.observer.row_starting();
                                let mut row = self.measure_row(
                                    *combo,
                                    root,
                                    size,
                                    cycle,
                                    layout,
                                    phase.as_ref(),
                                )?;
                                row.telemetry = self.observer.row_finished(self.world)?;
                                if self.world.rank() == 0 {
                                    sink.row(&row)?;
                                }
                                // No rank starts the next row before rank 0 has saved this one: a rank
                                // that fails next cannot take a measured row down with the job.
                                self.world.barrier()?;
                                row_index += 1;
                            }
                        }
                    }
                }
            }
            cycle += 1;
        }
        Ok(())
    }

    fn measure_row(
        &mut self,
        combo: Combination,
        root: Option<usize>,
        size: u64,
        cycle: u64,
        layout: &Layout,
        phase: Option<&Phase>,
    ) -> Result<Row> {
        let n = layout.comm.size;
        let elt = combo.dtype.size();
        let shape = match phase {
            Some(p) => p.matrix.shape(elt),
            None => combo.collective.shape(size, elt, n),
        };
        let factor = combo.collective.bus_factor(n);
        let counts = phase.map(|p| p.matrix.clone());
        // A library whose in-place all_to_allv sends what it receives has none for an asymmetric matrix.
        let no_in_place = counts
            .as_ref()
            .is_some_and(|m| self.backend.in_place_v_needs_symmetry() && !m.symmetric());
        let mut placements = [None, None];
        // Every collective has an in-place form (sendrecv's sends and receives through one buffer).
        for (slot, in_place) in placements.iter_mut().zip([false, true]) {
            if in_place && no_in_place {
                continue;
            }
            let desc = OpDesc {
                collective: combo.collective,
                dtype: combo.dtype,
                op: combo.op,
                root,
                shape,
                in_place,
                shift_bytes: 0,
                comm: layout.comm,
                counts: counts.clone(),
            };
            *slot = Some(self.measure(&desc, factor, layout)?);
        }
        let [out_of_place, in_place] = placements;
        Ok(Row {
            collective: combo.collective,
            dtype: combo.dtype,
            op: combo.op,
            root,
            size_bytes: shape.size_bytes,
            count: shape.count,
            ranks: n,
            cycle,
            bus_factor: factor,
            path: self.backend.path(combo.collective).to_string(),
            out_of_place,
            in_place,
            telemetry: None,
            layout: layout.report(),
            traffic: phase.map(|p| TrafficReport::new(&self.plan.traffic, p)),
        })
    }

    /// Measures one operation outside the sweep (a round of `collbench pairs`): the same warm-up, timed
    /// loop, check and combination across ranks as every row.
    pub fn measure_op(&mut self, desc: &OpDesc) -> Result<Measurement> {
        let factor = desc.collective.bus_factor(self.world.size());
        // The whole job, no --groups: the layout's host names are only reported for groups.
        let whole = Layout::whole(&vec![String::new(); self.world.size()], self.world.rank());
        self.measure(desc, factor, &whole)
    }

    /// Measures one operation on every group of `layout` at once (a message of `collbench workload`):
    /// the figures are the slowest group's, as for a `--groups` row.
    pub fn measure_on(&mut self, desc: &OpDesc, layout: &Layout) -> Result<Measurement> {
        let factor = desc.collective.bus_factor(desc.comm.size);
        self.measure(desc, factor, layout)
    }

    fn label(desc: &OpDesc, step: &str) -> String {
        format!(
            "{} {} {}{}{} {}, {step}",
            desc.collective,
            HumanSize(desc.shape.size_bytes),
            desc.dtype,
            desc.op.map(|o| format!(" {o}")).unwrap_or_default(),
            desc.root.map(|r| format!(" root {r}")).unwrap_or_default(),
            if desc.in_place {
                "in-place"
            } else {
                "out-of-place"
            }
        )
    }

    fn pattern(&self, desc: &OpDesc, check_iteration: u64) -> Pattern {
        Pattern {
            collective: desc.collective,
            dtype: desc.dtype,
            op: desc.op,
            root: desc.root.unwrap_or(0),
            ranks: desc.comm.size,
            seed: self.plan.seed.wrapping_add(check_iteration),
            shape: desc.shape,
            counts: desc.counts.clone(),
        }
    }

    /// Where this rank's input goes and its output comes from, in (buffer, byte offset).
    fn locations(&self, desc: &OpDesc) -> ((BufferId, u64), (BufferId, u64)) {
        let elt = desc.dtype.size() as u64;
        if desc.in_place {
            let layout = self
                .backend
                .in_place_layout(desc.collective, &desc.shape, desc.comm.rank);
            (
                (BufferId::Recv, layout.input_offset * elt),
                (BufferId::Recv, layout.output_offset * elt),
            )
        } else {
            ((BufferId::Send, 0), (BufferId::Recv, 0))
        }
    }

    /// Puts fresh inputs in place and poisons the rest of the receive buffer, so that an operation that
    /// writes nothing cannot pass the check on stale results.
    fn prepare(&mut self, desc: &OpDesc, pattern: &Pattern) -> Result<()> {
        let rank = desc.comm.rank;
        let ((in_buf, in_off), _) = self.locations(desc);
        let span = desc.shape.buffer_bytes(desc.dtype.size());
        self.backend.fill(BufferId::Recv, span, 0xFF)?;
        verify::write_input(self.backend, pattern, rank, in_buf, in_off)
    }

    /// Enqueues timed iteration `i` at nccl-tests' rotating offset (iteration i starts i footprints into
    /// the buffers, wrapping where the next would not fit). With -m > 1 its operations go in one group, as
    /// nccl-tests; a single operation is enqueued bare, so the library sees no group call around it.
    /// `desc` is the pass's own copy: only its shift changes, so the loop clones nothing.
    fn enqueue_iteration(&mut self, desc: &mut OpDesc, i: u64) -> Result<()> {
        let footprint = desc.shape.buffer_bytes(desc.dtype.size());
        let steps = self.buffer_bytes.checked_div(footprint).unwrap_or(1).max(1);
        desc.shift_bytes = footprint * (i % steps);
        if self.plan.agg_iters == 1 {
            return self.backend.enqueue(desc);
        }
        self.backend.group_start()?;
        for _ in 0..self.plan.agg_iters {
            self.backend.enqueue(desc)?;
        }
        self.backend.group_end()
    }

    /// One step of a pass: a timed iteration, or a replay of the captured graph.
    fn step(&mut self, desc: &mut OpDesc, how: Step, i: u64) -> Result<()> {
        match how {
            Step::Iteration => self.enqueue_iteration(desc, i)?,
            Step::Replay => self.backend.replay()?,
        }
        if self.plan.blocking {
            self.backend.wait()?;
        }
        Ok(())
    }

    /// nccl-tests' timed loop: the host clock around `count` steps enqueued back to back and their
    /// completion. The backend sees the enqueues and the final wait, nothing else: no timer mark, no
    /// group call with -m 1. Returns microseconds.
    fn timed_pass(&mut self, desc: &OpDesc, how: Step, count: u64) -> Result<f64> {
        let delay = self.switches.delay_for(self.world.rank());
        let mut shifted = desc.clone();
        let start = Instant::now();
        for i in 0..count {
            self.step(&mut shifted, how, i)?;
        }
        self.backend.wait()?;
        if let Some(d) = delay {
            // A rank that sees its operations complete late: the others do not wait for it.
            std::thread::sleep(d * count as u32);
        }
        Ok(start.elapsed().as_secs_f64() * 1e6)
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
        elapsed_us: f64,
        iters: u64,
        samples: Vec<f64>,
        source: String,
    ) -> Timing {
        Timing {
            elapsed_us,
            ops: iters * self.plan.agg_iters,
            iterations: iters,
            samples,
            source,
        }
    }

    /// `-n N`: the timed loop, then (after a barrier) the sampled pass.
    fn fixed(&mut self, desc: &OpDesc, iters: u64) -> Result<Timing> {
        let elapsed_us = self.timed_pass(desc, Step::Iteration, iters)?;
        let count = self.plan.sample_iters(iters);
        let samples = if count > 0 {
            self.watchdog.arm(|| Self::label(desc, "sampled pass"));
            self.world.barrier()?;
            self.sampled_pass(desc, Step::Iteration, count, self.plan.agg_iters)?
        } else {
            Vec::new()
        };
        let source = format!(
            "a separate pass of {count} iterations after the timed loop, each between timer marks"
        );
        Ok(self.iterations_timing(elapsed_us, iters, samples, source))
    }

    /// `-G R`: the `iters` iterations captured once into a graph, one untimed replay (the first launch
    /// uploads the graph), R timed replays, then the sampled replays; the graph is released last, outside
    /// any capture.
    fn graph(&mut self, desc: &OpDesc, iters: u64, replays: u64) -> Result<Timing> {
        let mut shifted = desc.clone();
        self.backend.begin_capture()?;
        for i in 0..iters {
            self.enqueue_iteration(&mut shifted, i)?;
        }
        self.backend.end_capture()?;
        self.backend.replay()?;
        self.backend.wait()?;
        self.world.barrier()?;

        let elapsed_us = self.timed_pass(desc, Step::Replay, replays)?;
        let ops_per_replay = iters * self.plan.agg_iters;
        let count = self.plan.sample_iters(replays);
        let samples = if count > 0 {
            self.watchdog.arm(|| Self::label(desc, "sampled pass"));
            self.world.barrier()?;
            self.sampled_pass(desc, Step::Replay, count, ops_per_replay)?
        } else {
            Vec::new()
        };
        self.backend.release_graph()?;
        Ok(Timing {
            elapsed_us,
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
    fn adaptive(&mut self, desc: &OpDesc, ci_target: f64, min: u64, cap_s: f64) -> Result<Timing> {
        let mut samples: Vec<f64> = Vec::new();
        let mut batch = min;
        loop {
            let batch_samples =
                self.sampled_pass(desc, Step::Iteration, batch, self.plan.agg_iters)?;
            samples.extend(batch_samples);
            let spent_s = samples.iter().sum::<f64>() * self.plan.agg_iters as f64 / 1e6;
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
        let elapsed_us = self.timed_pass(desc, Step::Iteration, iters)?;
        let source = format!(
            "the -n auto batches ({iters} iterations between timer marks) that decided the count, before the timed loop"
        );
        Ok(self.iterations_timing(elapsed_us, iters, samples, source))
    }

    fn measure(&mut self, desc: &OpDesc, factor: f64, layout: &Layout) -> Result<Measurement> {
        let plan = self.plan;
        let rank = desc.comm.rank;
        let first = self.pattern(desc, 0);
        self.prepare(desc, &first)?;

        self.watchdog.arm(|| Self::label(desc, "warm-up"));
        for _ in 0..plan.warmup_iters {
            self.backend.enqueue(desc)?;
        }
        self.backend.wait()?;
        self.watchdog
            .arm(|| Self::label(desc, "barrier before the timed loop"));
        self.world.barrier()?;

        self.watchdog.arm(|| Self::label(desc, "timed loop"));
        let timing = match plan.iters {
            Iterations::Fixed(n) if plan.cudagraph_replays > 0 => {
                self.graph(desc, n, plan.cudagraph_replays)?
            }
            Iterations::Fixed(n) => self.fixed(desc, n)?,
            Iterations::Auto {
                ci_target_percent,
                min,
                cap_s,
            } => self.adaptive(desc, ci_target_percent, min, cap_s)?,
        };
        let local_time_us = timing.elapsed_us / timing.ops as f64;

        self.watchdog
            .arm(|| Self::label(desc, "combining times across ranks"));
        let rank_time_us: Vec<f64> = all_gather_value(self.world, &local_time_us)?;

        let check_skipped = if desc.in_place {
            self.backend.in_place_undefined(desc.collective)
        } else {
            None
        };
        let wrong = if plan.check_iters > 0 && check_skipped.is_none() {
            self.watchdog.arm(|| Self::label(desc, "correctness check"));
            let mut local = 0u64;
            let (_, (out_buf, out_off)) = self.locations(desc);
            // The fault switch names job ranks.
            let corrupt = verify::corrupt_count_from_env(self.world.rank()).unwrap_or(0);
            for c in 0..plan.check_iters {
                let pattern = self.pattern(desc, c);
                self.prepare(desc, &pattern)?;
                self.world.barrier()?;
                self.backend.enqueue(desc)?;
                self.backend.wait()?;
                local +=
                    verify::count_wrong(self.backend, &pattern, rank, out_buf, out_off, corrupt)?;
            }
            Some(all_gather_value(self.world, &local)?)
        } else {
            None
        };
        self.watchdog.disarm();

        // The whole job is one group; with --groups the row is the slowest group's.
        let (groups, slowest) = group_figures(
            layout,
            plan.average,
            &rank_time_us,
            wrong.as_deref(),
            desc.shape.size_bytes,
            |n| desc.collective.bus_factor(n),
        );
        let time_us = if layout.spec.is_some() {
            groups[slowest].time_us
        } else {
            combine_rank_times(plan.average, &rank_time_us)
        };
        let algbw = algbw_gbps(desc.shape.size_bytes, time_us);
        let busbw = if layout.spec.is_some() {
            groups[slowest].busbw_gbps
        } else {
            busbw_gbps(algbw, factor)
        };
        Ok(Measurement {
            time_us,
            algbw_gbps: algbw,
            busbw_gbps: busbw,
            wrong: wrong.map(|w| w.iter().sum()),
            check_skipped: (plan.check_iters > 0).then_some(check_skipped).flatten(),
            iterations: timing.iterations,
            stats: Stats::from_samples(&timing.samples).map(|s| Stats {
                source: timing.source,
                ..s
            }),
            rank_time_us,
            groups: layout.spec.map(|_| groups),
            slowest_group: layout.spec.map(|_| slowest),
            energy: None,
        })
    }
}

/// What a pass repeats.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// One timed iteration of -m operations.
    Iteration,
    /// One replay of the captured graph.
    Replay,
}

/// The outcome of the timed loop and the sampled pass of one measurement.
struct Timing {
    /// Host microseconds around the timed loop on this rank.
    elapsed_us: f64,
    /// Operations in the timed loop.
    ops: u64,
    /// Iterations reported (-n, or -n x -G replays).
    iterations: u64,
    /// Per-step microseconds per operation, slowest rank at each step.
    samples: Vec<f64>,
    /// Where the samples came from, for the JSON.
    source: String,
}

#[cfg(test)]
mod tests {
    //! The engine's own arithmetic and call sequence, on a one-rank world and a host-memory test double
    //! that records every backend call and enforces the rules CUDA imposes on a real GPU backend (graph
    //! capture among them, which no backend here can do without a GPU).

    use super::*;
    use crate::backend::{DeviceInfo, LibraryVersion, PathTaken};
    use crate::cli::RunArgs;
    use crate::world::solo::SoloWorld;
    use clap::Parser;

    /// A backend call as the test double saw it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Call {
        Fill,
        Write,
        Read,
        GroupStart,
        GroupEnd,
        Enqueue,
        Wait,
        BeginCapture,
        EndCapture,
        Replay,
        ReleaseGraph,
        ReserveMarks,
        Mark,
        MarkIntervals,
    }

    #[derive(Default)]
    struct Recorder {
        send: Vec<u8>,
        recv: Vec<u8>,
        calls: Vec<Call>,
        capturing: bool,
        graph_held: bool,
        captured: usize,
        executed: usize,
        replays: usize,
        shifts: Vec<u64>,
        /// Collectives whose in-place form this "library" leaves undefined.
        undefined_in_place: Vec<Collective>,
        /// Every call that reaches the library, with its thread, when a test watches the order of events.
        thread_log: Option<Log>,
        /// How long each wait lasts, to give a row some duration.
        wait: std::time::Duration,
    }

    type Log = std::sync::Arc<std::sync::Mutex<Vec<(&'static str, std::thread::ThreadId)>>>;

    fn note(log: &Option<Log>, what: &'static str) {
        if let Some(log) = log {
            log.lock()
                .unwrap()
                .push((what, std::thread::current().id()));
        }
    }

    impl Recorder {
        /// Records a call, failing it as CUDA would: while a stream captures, only the enqueues (and the
        /// library's group calls around them) may run; an event, a copy, a sync, a graph launch or a
        /// graph destroyed there invalidates the capture (CUDA_ERROR_STREAM_CAPTURE_INVALIDATED).
        fn call(&mut self, call: Call) -> Result<()> {
            self.calls.push(call);
            note(&self.thread_log, "backend");
            let allowed_in_capture = matches!(
                call,
                Call::Enqueue | Call::GroupStart | Call::GroupEnd | Call::EndCapture
            );
            if self.capturing && !allowed_in_capture {
                return Err(Error::Internal(format!(
                    "CUDA rule broken: {call:?} while the stream is capturing invalidates the capture"
                )));
            }
            Ok(())
        }

        fn buffer(&mut self, buffer: BufferId) -> &mut Vec<u8> {
            if buffer == BufferId::Send {
                &mut self.send
            } else {
                &mut self.recv
            }
        }
    }

    impl Backend for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn versions(&self) -> Vec<LibraryVersion> {
            Vec::new()
        }
        fn device(&self) -> DeviceInfo {
            DeviceInfo::default()
        }
        fn free_memory(&self) -> Result<u64> {
            Ok(1 << 30)
        }
        fn unsupported(&self, _: Collective, _: DataType, _: Option<ReduceOp>) -> Option<String> {
            None
        }
        fn path(&self, _: Collective) -> PathTaken {
            "native"
        }
        fn in_place_undefined(&self, collective: Collective) -> Option<String> {
            self.undefined_in_place
                .contains(&collective)
                .then(|| format!("the recorder defines no in-place {collective}"))
        }
        fn allocate(&mut self, bytes: u64) -> Result<()> {
            self.send = vec![0; bytes as usize];
            self.recv = vec![0; bytes as usize];
            Ok(())
        }
        fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()> {
            self.call(Call::Write)?;
            let b = self.buffer(buffer);
            b[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()> {
            self.call(Call::Read)?;
            let b = self.buffer(buffer);
            out.copy_from_slice(&b[offset as usize..offset as usize + out.len()]);
            Ok(())
        }
        fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()> {
            self.call(Call::Fill)?;
            self.buffer(buffer)[..len as usize].fill(byte);
            Ok(())
        }
        fn group_start(&mut self) -> Result<()> {
            self.call(Call::GroupStart)
        }
        fn group_end(&mut self) -> Result<()> {
            self.call(Call::GroupEnd)
        }
        fn enqueue(&mut self, desc: &OpDesc) -> Result<()> {
            self.call(Call::Enqueue)?;
            self.shifts.push(desc.shift_bytes);
            if self.capturing {
                self.captured += 1;
            } else {
                self.executed += 1;
                // A one-rank all_reduce: the output is the input.
                let len = desc.shape.buffer_bytes(desc.dtype.size()) as usize;
                if !desc.in_place {
                    let input = self.send[..len].to_vec();
                    self.recv[..len].copy_from_slice(&input);
                }
            }
            Ok(())
        }
        fn wait(&mut self) -> Result<()> {
            std::thread::sleep(self.wait);
            self.call(Call::Wait)
        }
        fn reserve_marks(&mut self, _count: usize) -> Result<()> {
            self.call(Call::ReserveMarks)
        }
        fn mark(&mut self, _index: usize) -> Result<()> {
            self.call(Call::Mark)
        }
        fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>> {
            self.call(Call::MarkIntervals)?;
            Ok(vec![10.0; count])
        }
        fn supports_graphs(&self) -> bool {
            true
        }
        fn begin_capture(&mut self) -> Result<()> {
            self.call(Call::BeginCapture)?;
            if self.graph_held {
                return Err(Error::Internal(
                    "a new capture began while the last graph was still held".into(),
                ));
            }
            self.capturing = true;
            Ok(())
        }
        fn end_capture(&mut self) -> Result<()> {
            self.call(Call::EndCapture)?;
            self.capturing = false;
            self.graph_held = true;
            Ok(())
        }
        fn replay(&mut self) -> Result<()> {
            self.call(Call::Replay)?;
            self.replays += 1;
            self.executed += self.captured;
            Ok(())
        }
        fn release_graph(&mut self) -> Result<()> {
            self.call(Call::ReleaseGraph)?;
            self.graph_held = false;
            self.captured = 0;
            Ok(())
        }
    }

    fn engine_measure(
        args: &str,
        buffer_bytes: u64,
        backend: &mut Recorder,
        desc: &OpDesc,
    ) -> Result<Measurement> {
        let argv = std::iter::once("collbench").chain(args.split_whitespace());
        let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
        let world = SoloWorld::new();
        backend.allocate(buffer_bytes).unwrap();
        let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
        let mut engine = Engine {
            plan: &plan,
            world: &world,
            backend,
            watchdog: &watchdog,
            switches: TestSwitches::default(),
            buffer_bytes,
            observer: &mut crate::telemetry::NoTelemetry,
        };
        let layout = Layout::whole(&["test".to_string()], 0);
        engine.measure(desc, 0.0, &layout)
    }

    fn all_reduce_1k(in_place: bool) -> OpDesc {
        OpDesc {
            collective: Collective::AllReduce,
            dtype: DataType::Float,
            op: Some(ReduceOp::Sum),
            root: None,
            shape: Collective::AllReduce.shape(1024, 4, 1),
            in_place,
            shift_bytes: 0,
            comm: crate::backend::Comm::whole(0, 1),
            counts: None,
        }
    }

    fn measure(args: &str, buffer_bytes: u64) -> (Recorder, Measurement) {
        let mut backend = Recorder::default();
        let m = engine_measure(args, buffer_bytes, &mut backend, &all_reduce_1k(false)).unwrap();
        (backend, m)
    }

    /// The calls of the timed loop: after the warm-up's wait, up to and including the next wait.
    fn timed_loop_calls(calls: &[Call]) -> &[Call] {
        let waits: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == Call::Wait)
            .map(|(i, _)| i)
            .collect();
        &calls[waits[0] + 1..=waits[1]]
    }

    #[test]
    fn the_timed_loop_shows_the_backend_only_its_enqueues() {
        let (b, m) = measure("all_reduce -n 5 -w 2 -c 0", 1024);
        // nccl-tests' loop with -m 1: enqueues back to back, then the wait; no mark, no group call.
        let timed = timed_loop_calls(&b.calls);
        assert_eq!(
            timed,
            [[Call::Enqueue; 5].as_slice(), &[Call::Wait]].concat()
        );
        assert!(!b.calls.contains(&Call::GroupStart), "{:?}", b.calls);
        // The distribution comes from a separate marked pass after it, as many iterations as -n.
        let marks = b.calls.iter().filter(|c| **c == Call::Mark).count();
        assert_eq!(marks, 6);
        let first_mark = b.calls.iter().position(|c| *c == Call::Mark).unwrap();
        let last_timed =
            b.calls.len() - b.calls.iter().rev().position(|c| *c == Call::Wait).unwrap();
        assert!(first_mark < last_timed);
        let stats = m.stats.expect("stats from the sampled pass");
        assert_eq!(stats.samples, 5);
        assert!(
            stats.source.contains("separate pass of 5"),
            "{}",
            stats.source
        );
        assert_eq!(m.iterations, 5);
    }

    #[test]
    fn several_operations_per_iteration_go_in_one_group() {
        let (b, _) = measure("all_reduce -n 3 -m 2 -w 1 -c 0 --samples 0", 1024);
        let timed = timed_loop_calls(&b.calls);
        let group = [
            Call::GroupStart,
            Call::Enqueue,
            Call::Enqueue,
            Call::GroupEnd,
        ];
        assert_eq!(timed, [&group[..], &group, &group, &[Call::Wait]].concat());
        assert!(!b.calls.contains(&Call::Mark), "--samples 0 marks nothing");
    }

    #[test]
    fn samples_flag_sets_the_sampled_pass_and_zero_turns_it_off() {
        let (_, m) = measure("all_reduce -n 50 -w 0 -c 0 --samples 7", 1024);
        assert_eq!(m.stats.unwrap().samples, 7);
        assert_eq!(m.iterations, 50);
        let (_, m) = measure("all_reduce -n 50 -w 0 -c 0 --samples 0", 1024);
        assert!(m.stats.is_none());
    }

    #[test]
    fn graphs_capture_the_loop_once_and_replay_it() {
        let (b, m) = measure("all_reduce -n 4 -m 2 -G 3 -w 1 -c 0", 1024);
        // One capture of 4 iterations x 2 operations; one untimed replay, 3 timed, 3 sampled.
        assert_eq!(b.replays, 7);
        assert_eq!(b.executed, 1 + 7 * 8);
        assert_eq!(m.iterations, 12);
        let stats = m.stats.unwrap();
        assert_eq!(stats.samples, 3);
        // 10 us per replay of 8 operations.
        assert_eq!(stats.mean_us, 10.0 / 8.0);
        // The graph is released after its last replay, outside the capture.
        assert_eq!(b.calls.last(), Some(&Call::ReleaseGraph));
        assert!(!b.graph_held);
    }

    #[test]
    fn graphs_of_successive_measurements_each_start_a_clean_capture() {
        let mut b = Recorder::default();
        for in_place in [false, true] {
            engine_measure(
                "all_reduce -n 2 -G 2 -w 0 -c 1",
                1024,
                &mut b,
                &all_reduce_1k(in_place),
            )
            .expect("the capture rules hold across measurements");
        }
        assert_eq!(
            b.calls.iter().filter(|c| **c == Call::BeginCapture).count(),
            2
        );
    }

    #[test]
    fn the_capture_rules_fail_the_order_that_broke_g_on_a_gpu() {
        // What main did on an H200: the previous graph destroyed while the new capture was open, and
        // any other call inside a capture, fail here as they failed there.
        let desc = all_reduce_1k(false);
        let mut b = Recorder::default();
        b.allocate(1024).unwrap();
        b.begin_capture().unwrap();
        b.enqueue(&desc).unwrap();
        assert!(b.release_graph().is_err());
        let mut b = Recorder::default();
        b.begin_capture().unwrap();
        assert!(b.mark(0).is_err());
        assert!(b.wait().is_err());
        // And a capture that begins while the last graph is held is refused too.
        let mut b = Recorder::default();
        b.begin_capture().unwrap();
        b.end_capture().unwrap();
        assert!(b.begin_capture().is_err());
    }

    #[test]
    fn timed_iterations_rotate_through_the_buffers_and_wrap() {
        // 1 KiB operations in 3 KiB buffers: offsets 0, 1K, 2K, then back to 0.
        let (b, m) = measure("all_reduce -n 5 -w 0 -c 0 --samples 0", 3 * 1024);
        assert_eq!(b.shifts, vec![0, 1024, 2048, 0, 1024]);
        assert_eq!(m.iterations, 5);
    }

    #[test]
    fn an_in_place_form_the_library_leaves_undefined_is_timed_but_not_checked() {
        let mut b = Recorder {
            undefined_in_place: vec![Collective::AllReduce],
            ..Recorder::default()
        };
        let m = engine_measure(
            "all_reduce -n 3 -w 0 -c 2",
            1024,
            &mut b,
            &all_reduce_1k(true),
        )
        .unwrap();
        assert_eq!(m.wrong, None);
        assert!(m.check_skipped.unwrap().contains("in-place all_reduce"));
        // 3 timed + 3 sampled enqueues, and no check iteration, which would read the output back.
        assert_eq!(b.executed, 6);
        assert!(!b.calls.contains(&Call::Read));
        // The out-of-place form is checked as ever.
        let m = engine_measure(
            "all_reduce -n 3 -w 0 -c 2",
            1024,
            &mut b,
            &all_reduce_1k(false),
        )
        .unwrap();
        assert_eq!(m.wrong, Some(0));
        assert_eq!(m.check_skipped, None);
    }

    /// The sampler as the engine's row observer, logging its row boundaries into the same log as the
    /// backend's calls.
    struct Watched {
        sampler: crate::telemetry::sampler::Sampler,
        log: Log,
        rows: Vec<crate::telemetry::RankTelemetry>,
    }

    impl RowObserver for Watched {
        fn row_starting(&mut self) {
            note(&Some(self.log.clone()), "row begins");
            self.sampler.begin_row();
        }
        fn row_finished(
            &mut self,
            _world: &dyn World,
        ) -> Result<Option<Vec<Option<crate::telemetry::RankTelemetry>>>> {
            note(&Some(self.log.clone()), "row ends");
            self.rows.push(self.sampler.end_row());
            Ok(None)
        }
    }

    #[test]
    fn telemetry_is_read_on_its_own_thread_and_the_engine_only_marks_row_boundaries() {
        let log: Log = Default::default();
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let for_source = log.clone();
        let source = crate::telemetry::sampler::tests::Counting {
            reads: reads.clone(),
            on_read: Some(Box::new(move || {
                note(&Some(for_source.clone()), "GPU read");
            })),
        };
        let mut observer = Watched {
            sampler: crate::telemetry::sampler::Sampler::start(
                Box::new(source),
                std::time::Duration::from_millis(10),
            ),
            log: log.clone(),
            rows: Vec::new(),
        };
        let argv = "collbench all_reduce -b 1K -e 2K -n 40 -w 1 -c 1 -z 1".split_whitespace();
        let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
        let world = SoloWorld::new();
        let mut backend = Recorder {
            thread_log: Some(log.clone()),
            wait: std::time::Duration::from_millis(1),
            ..Recorder::default()
        };
        backend.allocate(4096).unwrap();
        let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
        let combos = [Combination {
            collective: Collective::AllReduce,
            dtype: DataType::Float,
            op: Some(ReduceOp::Sum),
        }];
        Engine {
            plan: &plan,
            world: &world,
            backend: &mut backend,
            watchdog: &watchdog,
            switches: TestSwitches::default(),
            buffer_bytes: 4096,
            observer: &mut observer,
        }
        .run(
            &combos,
            &[Layout::whole(&["test".to_string()], 0)],
            &[1024, 2048],
            &mut NullSink,
        )
        .unwrap();

        let events = log.lock().unwrap().clone();
        let engine = std::thread::current().id();
        assert!(
            events.iter().all(|(w, t)| *w != "backend" || *t == engine),
            "every library call comes from the engine's thread"
        );
        // On the engine's thread a row is: its boundary, library calls only, its boundary.
        let mine: Vec<&str> = events
            .iter()
            .filter(|(_, t)| *t == engine)
            .map(|(w, _)| *w)
            .collect();
        let mut inside = false;
        for w in &mine {
            match *w {
                "row begins" => inside = true,
                "row ends" => inside = false,
                "GPU read" => assert!(!inside, "the engine read the GPU inside a row: {mine:?}"),
                _ => assert!(inside, "a library call outside a row: {mine:?}"),
            }
        }
        assert_eq!(mine.iter().filter(|w| **w == "row begins").count(), 2);
        // The sampling thread read the GPU while library calls were going on (each row lasts 80+ ms).
        let first_call = events.iter().position(|(w, _)| *w == "backend").unwrap();
        let last_call = events.iter().rposition(|(w, _)| *w == "backend").unwrap();
        let concurrent = events[first_call..last_call]
            .iter()
            .filter(|(w, t)| *w == "GPU read" && *t != engine)
            .count();
        assert!(concurrent >= 2, "{events:?}");
        assert_eq!(observer.rows.len(), 2);
        assert!(observer.rows.iter().all(|r| r.samples >= 1));
    }
}
