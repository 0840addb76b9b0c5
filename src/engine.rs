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
use crate::testing::TestSwitches;
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
/// any of `comm_sizes` ranks.
pub fn buffer_bytes(combos: &[Combination], size: u64, comm_sizes: &[usize]) -> u64 {
    combos
        .iter()
        .flat_map(|c| {
            comm_sizes.iter().map(move |&n| {
                let s = c.collective.shape(size, c.dtype.size(), n);
                s.buffer_bytes(c.dtype.size())
            })
        })
        .max()
        .unwrap_or(0)
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
                            self.switches.before_row(self.world.rank(), row_index);
                            if self.world.rank() == 0 {
                                sink.starting(&format!(
                                    "{} {} {}",
                                    combo.collective,
                                    combo.dtype,
                                    HumanSize(size)
                                ));
                            }
                            let row = self.measure_row(*combo, root, size, cycle, layout)?;
                            if self.world.rank() == 0 {
                                sink.row(&row)?;
                            }
                            // No rank starts the next row before rank 0 has saved this one: a rank that
                            // fails next cannot take a measured row down with the job.
                            self.world.barrier()?;
                            row_index += 1;
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
    ) -> Result<Row> {
        let n = layout.comm.size;
        let shape = combo.collective.shape(size, combo.dtype.size(), n);
        let factor = combo.collective.bus_factor(n);
        let mut placements = [None, None];
        // Every collective has an in-place form (sendrecv's sends and receives through one buffer).
        for (slot, in_place) in placements.iter_mut().zip([false, true]) {
            let desc = OpDesc {
                collective: combo.collective,
                dtype: combo.dtype,
                op: combo.op,
                root,
                shape,
                in_place,
                shift_bytes: 0,
                comm: layout.comm,
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
            layout: layout.report(),
        })
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

    /// Enqueues timed iteration `i`: `-m` operations in one group, at nccl-tests' rotating offset
    /// (iteration i starts i footprints into the buffers, wrapping where the next would not fit).
    fn enqueue_iteration(&mut self, desc: &OpDesc, i: u64) -> Result<()> {
        let footprint = desc.shape.buffer_bytes(desc.dtype.size());
        let steps = self.buffer_bytes.checked_div(footprint).unwrap_or(1).max(1);
        let shifted = OpDesc {
            shift_bytes: footprint * (i % steps),
            ..*desc
        };
        self.backend.group_start()?;
        for _ in 0..self.plan.agg_iters {
            self.backend.enqueue(&shifted)?;
        }
        self.backend.group_end()
    }

    /// `iters` timed iterations of `-m` operations: host microseconds around the whole batch (nccl-tests'
    /// time) and each iteration's microseconds per operation on this rank. Allocates nothing.
    fn timed_batch(&mut self, desc: &OpDesc, iters: u64) -> Result<(f64, Vec<f64>)> {
        let plan = self.plan;
        let iters = iters as usize;
        self.backend.reserve_marks(iters + 1)?;
        let delay = self.switches.delay_for(self.world.rank());
        let start = Instant::now();
        self.backend.mark(0)?;
        for i in 0..iters {
            self.enqueue_iteration(desc, i as u64)?;
            if plan.blocking {
                self.backend.wait()?;
            }
            self.backend.mark(i + 1)?;
        }
        self.backend.wait()?;
        if let Some(d) = delay {
            // A rank that sees its operations complete late: the others do not wait for it.
            std::thread::sleep(d * iters as u32);
        }
        let elapsed_us = start.elapsed().as_secs_f64() * 1e6;
        let per_op = plan.agg_iters as f64;
        let samples = self
            .backend
            .mark_intervals_us(iters)?
            .into_iter()
            .map(|t| t / per_op)
            .collect();
        Ok((elapsed_us, samples))
    }

    /// `-G R`: the `iters` iterations captured once into a graph, then R replays timed like nccl-tests'
    /// graph mode. Returns the host microseconds around the replays and each replay's microseconds per
    /// operation.
    fn timed_graph(&mut self, desc: &OpDesc, iters: u64, replays: u64) -> Result<(f64, Vec<f64>)> {
        let plan = self.plan;
        self.backend.begin_capture()?;
        for i in 0..iters {
            self.enqueue_iteration(desc, i)?;
        }
        self.backend.end_capture()?;
        // One replay outside the timing: the first launch of a graph uploads it.
        self.backend.replay()?;
        self.backend.wait()?;
        self.world.barrier()?;

        let replays_n = replays as usize;
        self.backend.reserve_marks(replays_n + 1)?;
        let start = Instant::now();
        self.backend.mark(0)?;
        for r in 0..replays_n {
            self.backend.replay()?;
            self.backend.mark(r + 1)?;
        }
        self.backend.wait()?;
        let elapsed_us = start.elapsed().as_secs_f64() * 1e6;
        let per_op = (iters * plan.agg_iters) as f64;
        let samples = self
            .backend
            .mark_intervals_us(replays_n)?
            .into_iter()
            .map(|t| t / per_op)
            .collect();
        Ok((elapsed_us, samples))
    }

    /// `-n auto`: batches of growing size until the 95 % confidence half-width of the mean is within the
    /// target or the time cap is spent. Every rank decides from the same rank-combined samples, so all
    /// ranks run the same number of iterations.
    fn adaptive(
        &mut self,
        desc: &OpDesc,
        ci_target: f64,
        min: u64,
        cap_s: f64,
    ) -> Result<(f64, Vec<f64>, u64)> {
        let mut elapsed_us = 0.0;
        let mut samples: Vec<f64> = Vec::new();
        let mut batch = min;
        loop {
            let (elapsed, mut batch_samples) = self.timed_batch(desc, batch)?;
            self.world
                .all_reduce_f64(&mut batch_samples, Combine::Max)?;
            elapsed_us += elapsed;
            samples.extend(batch_samples);
            let spent_s = samples.iter().sum::<f64>() * self.plan.agg_iters as f64 / 1e6;
            let ci = Stats::from_samples(&samples).map_or(f64::INFINITY, |s| s.ci95_percent);
            if ci <= ci_target || spent_s >= cap_s {
                return Ok((elapsed_us, samples.clone(), samples.len() as u64));
            }
            // Double the count, but do not plan past the time cap.
            let per_iteration_s = spent_s / samples.len() as f64;
            let affordable = ((cap_s - spent_s) / per_iteration_s.max(1e-9)).ceil() as u64;
            batch = (samples.len() as u64).min(affordable).max(1);
        }
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
        let (elapsed_us, per_iteration, iterations) = match plan.iters {
            Iterations::Fixed(n) if plan.cudagraph_replays > 0 => {
                let replays = plan.cudagraph_replays;
                let (elapsed, mut samples) = self.timed_graph(desc, n, replays)?;
                self.world.all_reduce_f64(&mut samples, Combine::Max)?;
                (elapsed, samples, n * replays)
            }
            Iterations::Fixed(n) => {
                let (elapsed, mut samples) = self.timed_batch(desc, n)?;
                // Iteration i took as long as its slowest rank.
                self.world.all_reduce_f64(&mut samples, Combine::Max)?;
                (elapsed, samples, n)
            }
            Iterations::Auto {
                ci_target_percent,
                min,
                cap_s,
            } => self.adaptive(desc, ci_target_percent, min, cap_s)?,
        };
        let local_time_us = elapsed_us / (iterations * plan.agg_iters) as f64;

        self.watchdog
            .arm(|| Self::label(desc, "combining times across ranks"));
        let rank_time_us: Vec<f64> = all_gather_value(self.world, &local_time_us)?;

        let wrong = if plan.check_iters > 0 {
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
            iterations,
            stats: Stats::from_samples(&per_iteration),
            rank_time_us,
            groups: layout.spec.map(|_| groups),
            slowest_group: layout.spec.map(|_| slowest),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The engine's own arithmetic, on a one-rank world and a host-memory backend that records what it is
    //! asked to do (graphs included, which no real backend here can do without a GPU).

    use super::*;
    use crate::backend::{DeviceInfo, LibraryVersion, PathTaken};
    use crate::cli::RunArgs;
    use crate::world::solo::SoloWorld;
    use clap::Parser;

    #[derive(Default)]
    struct Recorder {
        send: Vec<u8>,
        recv: Vec<u8>,
        capturing: bool,
        captured: usize,
        executed: usize,
        replays: usize,
        shifts: Vec<u64>,
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
        fn allocate(&mut self, bytes: u64) -> Result<()> {
            self.send = vec![0; bytes as usize];
            self.recv = vec![0; bytes as usize];
            Ok(())
        }
        fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()> {
            let b = if buffer == BufferId::Send {
                &mut self.send
            } else {
                &mut self.recv
            };
            b[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()> {
            let b = if buffer == BufferId::Send {
                &self.send
            } else {
                &self.recv
            };
            out.copy_from_slice(&b[offset as usize..offset as usize + out.len()]);
            Ok(())
        }
        fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()> {
            let b = if buffer == BufferId::Send {
                &mut self.send
            } else {
                &mut self.recv
            };
            b[..len as usize].fill(byte);
            Ok(())
        }
        fn enqueue(&mut self, desc: &OpDesc) -> Result<()> {
            self.shifts.push(desc.shift_bytes);
            if self.capturing {
                self.captured += 1;
            } else {
                self.executed += 1;
            }
            Ok(())
        }
        fn wait(&mut self) -> Result<()> {
            Ok(())
        }
        fn reserve_marks(&mut self, _count: usize) -> Result<()> {
            Ok(())
        }
        fn mark(&mut self, _index: usize) -> Result<()> {
            Ok(())
        }
        fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>> {
            Ok(vec![10.0; count])
        }
        fn supports_graphs(&self) -> bool {
            true
        }
        fn begin_capture(&mut self) -> Result<()> {
            self.capturing = true;
            Ok(())
        }
        fn end_capture(&mut self) -> Result<()> {
            self.capturing = false;
            Ok(())
        }
        fn replay(&mut self) -> Result<()> {
            self.replays += 1;
            self.executed += self.captured;
            Ok(())
        }
    }

    fn measure(args: &str, buffer_bytes: u64) -> (Recorder, Measurement) {
        let argv = std::iter::once("collbench").chain(args.split_whitespace());
        let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
        let world = SoloWorld::new();
        let mut backend = Recorder::default();
        backend.allocate(buffer_bytes).unwrap();
        let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
        let mut engine = Engine {
            plan: &plan,
            world: &world,
            backend: &mut backend,
            watchdog: &watchdog,
            switches: TestSwitches::default(),
            buffer_bytes,
        };
        let desc = OpDesc {
            collective: Collective::AllReduce,
            dtype: DataType::Float,
            op: Some(ReduceOp::Sum),
            root: None,
            shape: Collective::AllReduce.shape(1024, 4, 1),
            in_place: false,
            shift_bytes: 0,
            comm: crate::backend::Comm::whole(0, 1),
        };
        let layout = Layout::whole(&["test".to_string()], 0);
        let m = engine.measure(&desc, 0.0, &layout).unwrap();
        (backend, m)
    }

    #[test]
    fn graphs_capture_the_loop_once_and_replay_it() {
        let (b, m) = measure("all_reduce -n 4 -m 2 -G 3 -w 1 -c 0", 1024);
        // One capture of 4 iterations x 2 operations; one untimed replay, then 3 timed ones.
        assert_eq!(b.captured, 8);
        assert_eq!(b.replays, 4);
        assert_eq!(b.executed, 1 + 4 * 8);
        assert_eq!(m.iterations, 12);
        let stats = m.stats.unwrap();
        assert_eq!(stats.samples, 3);
        // 10 us per replay of 8 operations.
        assert_eq!(stats.mean_us, 10.0 / 8.0);
    }

    #[test]
    fn timed_iterations_rotate_through_the_buffers_and_wrap() {
        // 1 KiB operations in 3 KiB buffers: offsets 0, 1K, 2K, then back to 0.
        let (b, m) = measure("all_reduce -n 5 -w 0 -c 0", 3 * 1024);
        assert_eq!(b.shifts, vec![0, 1024, 2048, 0, 1024]);
        assert_eq!(m.iterations, 5);
        assert_eq!(m.stats.unwrap().samples, 5);
    }
}
