//! The sweep engine: for each collective, type, operator, root and size it prepares buffers, warms up,
//! runs the timed loop, verifies, and combines the numbers of every rank into a Row. It never knows
//! which backend it drives.

mod combinations;
mod settings;
mod timing;

use combinations::phases_of;
pub use combinations::{buffer_bytes, check_traffic, combinations, row_count, Combination};
pub use settings::{EngineSettings, RcclTestsHabits};

use crate::backend::{Backend, BufferId, OpDesc};
use crate::check::pattern::Pattern;
use crate::check::verify;
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::layout::figures::group_figures;
use crate::layout::Layout;
use crate::metrics::{algbw_gbps, busbw_gbps, combine_rank_times};
use crate::plan::{Iterations, Plan};
use crate::report::document::{Measurement, Row, Stats};
use crate::size::HumanSize;
use crate::telemetry::RowObserver;
use crate::testing::TestSwitches;
use crate::traffic::{Traffic, TrafficPhase, TrafficReport};
use crate::watchdog::Watchdog;
use crate::world::{all_gather_value, World};

/// Receives each row as soon as it is measured (rank 0's reporters).
pub trait RowSink {
    /// A row is about to be measured (for progress displays).
    fn starting(&mut self, _what: &str) {}
    fn row(&mut self, row: &Row) -> Result<()>;
    /// Something worth saying about the run that is not a row (a fallback the library made).
    fn note(&mut self, _text: &str) {}
}

/// A sink for the ranks that report nothing.
pub struct NullSink;

impl RowSink for NullSink {
    fn row(&mut self, _row: &Row) -> Result<()> {
        Ok(())
    }
}

pub struct Engine<'a> {
    settings: EngineSettings,
    world: &'a dyn World,
    backend: &'a mut dyn Backend,
    watchdog: &'a Watchdog,
    switches: TestSwitches,
    /// Bytes of each buffer, for rotating offsets between timed iterations.
    buffer_bytes: u64,
    /// Told when each row starts and ends (GPU telemetry); never called inside a row.
    observer: Option<&'a mut dyn RowObserver>,
}

impl<'a> Engine<'a> {
    /// An engine on `backend`, whose buffers hold `buffer_bytes` each, with the test switches of the
    /// environment (docs/TESTING.md) and nobody watching its rows.
    pub fn new(
        settings: EngineSettings,
        world: &'a dyn World,
        backend: &'a mut dyn Backend,
        watchdog: &'a Watchdog,
        buffer_bytes: u64,
    ) -> Engine<'a> {
        Engine {
            settings,
            world,
            backend,
            watchdog,
            switches: TestSwitches::from_env(),
            buffer_bytes,
            observer: None,
        }
    }

    /// Tells `observer` when each row of the sweep starts and ends.
    pub fn observed_by(mut self, observer: &'a mut dyn RowObserver) -> Engine<'a> {
        self.observer = Some(observer);
        self
    }

    /// Acts on these test switches instead of the environment's.
    pub fn with_switches(mut self, switches: TestSwitches) -> Engine<'a> {
        self.switches = switches;
        self
    }

    /// Checked operations of the measurements that follow (0: none): a command that measures several
    /// kinds of operation checks only some.
    pub fn set_check_iters(&mut self, iters: u64) {
        self.settings.check_iters = iters;
    }

    pub fn world(&self) -> &'a dyn World {
        self.world
    }

    /// The backend's free memory now (-M's before and after the rows).
    pub fn free_memory(&self) -> Result<u64> {
        self.backend.free_memory()
    }

    /// Runs the whole sweep over `sizes` for every combination, each size once per layout (adjacent rows,
    /// every group of a layout at once); rank 0 passes each row to `sink`.
    pub fn run(
        &mut self,
        plan: &Plan,
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
        // -R: registered before the first row, with every communicator the rows use.
        if let Some(note) = self.backend.register_buffers(plan.register)? {
            if self.world.rank() == 0 {
                sink.note(&note);
            }
        }
        while plan.run_cycles == 0 || cycle < plan.run_cycles {
            for combo in combos {
                for root in plan.roots_for(combo.collective, n) {
                    for &size in sizes {
                        for layout in layouts {
                            let phases = phases_of(&plan.traffic, combo, size, layout.comm.size)?;
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
                                if let Some(o) = self.observer.as_mut() {
                                    o.row_starting();
                                }
                                let mut row = self.measure_row(
                                    &plan.traffic,
                                    RowAt {
                                        combo: *combo,
                                        root,
                                        size,
                                        cycle,
                                    },
                                    layout,
                                    phase.as_ref(),
                                )?;
                                if let Some(o) = self.observer.as_mut() {
                                    row.telemetry = o.row_finished(self.world)?;
                                }
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
        // And deregistered after the last.
        self.backend.deregister_buffers()
    }

    fn measure_row(
        &mut self,
        traffic: &Traffic,
        at: RowAt,
        layout: &Layout,
        phase: Option<&TrafficPhase>,
    ) -> Result<Row> {
        let RowAt {
            combo,
            root,
            size,
            cycle,
        } = at;
        let n = layout.comm.size;
        let elt = combo.dtype.size();
        let shape = match phase {
            Some(p) => p.matrix.shape(elt),
            None => combo.collective.shape(size, elt, n),
        };
        let factor = combo.collective.bus_factor(n);
        let counts = phase.map(|p| p.matrix.clone());
        // A library whose in-place all_to_allv sends what it receives has none for an asymmetric matrix.
        let no_in_place = counts.as_ref().is_some_and(|m| {
            self.backend.capabilities().in_place_v_needs_symmetry && !m.symmetric()
        });
        let mut placements = [None, None];
        let mut last = None;
        // Every collective has an in-place form (sendrecv's sends and receives through one buffer);
        // -O measures one of the two.
        for (slot, in_place) in placements.iter_mut().zip([false, true]) {
            if (in_place && no_in_place) || !self.settings.rccl_tests.placements.measures(in_place)
            {
                continue;
            }
            if in_place
                && last.is_some()
                && !self.settings.rccl_tests.delay_between_placements.is_zero()
            {
                // rccl-tests' -q: a pause between the two measurements, in neither's timing.
                std::thread::sleep(self.settings.rccl_tests.delay_between_placements);
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
                peer: crate::backend::Exchange::Ring,
            };
            *slot = Some(self.measure(&desc, factor, layout)?);
            last = Some(desc);
        }
        let [out_of_place, in_place] = placements;
        // rccl-tests' -A: what the library chose for this size, asked after both timings.
        let algorithm = match (&last, self.settings.rccl_tests.algo_columns) {
            (Some(desc), true) => self.backend.algo_choice(desc)?,
            _ => None,
        };
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
            path: self
                .backend
                .capabilities()
                .path(combo.collective)
                .to_string(),
            out_of_place,
            in_place,
            telemetry: None,
            layout: layout.report(),
            traffic: phase.map(|p| TrafficReport::new(traffic, p)),
            algorithm,
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
            seed: self.settings.seed.wrapping_add(check_iteration),
            shape: desc.shape,
            counts: desc.counts.clone(),
        }
    }

    /// Where this rank's input goes and its output comes from, in (buffer, byte offset): the backend
    /// puts both buffers `desc.shift_bytes` on (-u's misalignment), and so does the check.
    fn locations(&self, desc: &OpDesc) -> ((BufferId, u64), (BufferId, u64)) {
        let elt = desc.dtype.size() as u64;
        let base = desc.shift_bytes;
        if desc.in_place {
            let layout = self.backend.capabilities().in_place_layout(
                desc.collective,
                &desc.shape,
                desc.comm.rank,
            );
            (
                (BufferId::Recv, base + layout.input_offset * elt),
                (BufferId::Recv, base + layout.output_offset * elt),
            )
        } else {
            ((BufferId::Send, base), (BufferId::Recv, base))
        }
    }

    /// Puts fresh inputs in place and poisons the rest of the receive buffer, so that an operation that
    /// writes nothing cannot pass the check on stale results.
    fn prepare(&mut self, desc: &OpDesc, pattern: &Pattern) -> Result<()> {
        let rank = desc.comm.rank;
        let ((in_buf, in_off), _) = self.locations(desc);
        let span = desc.shift_bytes + desc.shape.buffer_bytes(desc.dtype.size());
        self.backend.fill(BufferId::Recv, span, 0xFF)?;
        verify::write_input(self.backend, pattern, rank, in_buf, in_off)
    }

    /// The backend's graph capture, which -G was validated against before the first row.
    fn graphs(&mut self) -> Result<&mut dyn crate::backend::GraphCapture> {
        let name = self.backend.name();
        self.backend.graphs().ok_or_else(|| {
            Error::Internal(format!(
                "-G reached the {name} backend, which has no graphs"
            ))
        })
    }

    /// `iters` checked operations on fresh inputs; each rank's count of output elements that differ from
    /// the exact expected ones, in job rank order. Every rank takes part: a sendrecv rank that waits while
    /// other pairs exchange receives nothing and counts nothing.
    fn check(&mut self, desc: &OpDesc, iters: u64) -> Result<Vec<u64>> {
        let mut local = 0u64;
        let (_, (out_buf, out_off)) = self.locations(desc);
        // The fault switch names job ranks.
        let corrupt = verify::corrupt_count_from_env(self.world.rank()).unwrap_or(0);
        let receives_as = if desc.collective == Collective::SendRecv {
            desc.peer.checked_as(desc.comm.rank, desc.comm.size)
        } else {
            Some(desc.comm.rank)
        };
        for c in 0..iters {
            let pattern = self.pattern(desc, c);
            self.prepare(desc, &pattern)?;
            self.world.barrier()?;
            self.backend.enqueue(desc)?;
            self.backend.wait()?;
            if let Some(as_rank) = receives_as {
                local += verify::count_wrong(
                    self.backend,
                    &pattern,
                    as_rank,
                    out_buf,
                    out_off,
                    corrupt,
                )?;
            }
        }
        all_gather_value(self.world, &local)
    }

    fn measure(&mut self, desc: &OpDesc, factor: f64, layout: &Layout) -> Result<Measurement> {
        let settings = self.settings.clone();
        // -u: every use of the buffers, the check's included, starts that many elements in.
        let misaligned = OpDesc {
            shift_bytes: desc.shift_bytes + settings.unalign * desc.dtype.size() as u64,
            ..desc.clone()
        };
        let desc = &misaligned;
        let first = self.pattern(desc, 0);
        self.prepare(desc, &first)?;

        self.watchdog.arm(|| Self::label(desc, "warm-up"));
        for _ in 0..settings.warmup_iters {
            self.backend.enqueue(desc)?;
        }
        self.backend.wait()?;
        self.watchdog
            .arm(|| Self::label(desc, "barrier before the timed loop"));
        self.world.barrier()?;

        self.watchdog.arm(|| Self::label(desc, "timed loop"));
        let timing = match settings.iters {
            Iterations::Fixed(n) if settings.graph_replays > 0 => {
                self.graph(desc, n, settings.graph_replays)?
            }
            Iterations::Fixed(n) => self.fixed(desc, n)?,
            Iterations::Auto {
                ci_target_percent,
                min,
                cap_s,
            } => self.adaptive(desc, ci_target_percent, min, cap_s)?,
        };
        let ops = timing.ops as f64;
        let local = (timing.elapsed_us / ops, timing.cpu_us / ops);

        self.watchdog
            .arm(|| Self::label(desc, "combining times across ranks"));
        // The energy travels in the times' gather: no collective more per measurement.
        let rank_figures: Vec<(f64, f64, Option<f64>)> =
            all_gather_value(self.world, &(local.0, local.1, timing.joules))?;
        let rank_time_us: Vec<f64> = rank_figures.iter().map(|f| f.0).collect();
        let rank_cpu_us: Vec<f64> = rank_figures.iter().map(|f| f.1).collect();
        let energy = crate::report::document::Energy::from_ranks(
            rank_figures.iter().map(|f| f.2).collect(),
            timing.ops,
            desc.shape.size_bytes,
        );

        let check_skipped = if desc.in_place {
            self.backend
                .capabilities()
                .in_place_undefined(desc.collective)
                .map(str::to_string)
        } else {
            None
        };
        let wrong = if settings.check_iters > 0 && check_skipped.is_none() {
            self.watchdog.arm(|| Self::label(desc, "correctness check"));
            Some(self.check(desc, settings.check_iters)?)
        } else {
            None
        };
        self.watchdog.disarm();

        let skip = settings.iteration_skip as usize;
        // The whole job is one group; with --groups the row is the slowest group's.
        let (groups, slowest) = group_figures(
            layout,
            settings.average,
            &rank_time_us,
            wrong.as_deref(),
            desc.shape.size_bytes,
            |n| desc.collective.bus_factor(n),
        );
        let time_us = if layout.spec.is_some() {
            groups[slowest].time_us
        } else {
            combine_rank_times(settings.average, &rank_time_us)
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
            wrong: wrong.as_ref().map(|w| w.iter().sum()),
            rank_wrong: wrong.unwrap_or_default(),
            check_skipped: (settings.check_iters > 0)
                .then_some(check_skipped)
                .flatten(),
            iterations: timing.iterations,
            // -K: the leading samples stay in the series, out of the statistics.
            stats: Stats::from_samples(&timing.samples[skip.min(timing.samples.len())..]).map(
                |s| Stats {
                    source: if skip > 0 {
                        format!("{}, the first {skip} left out (-K)", timing.source)
                    } else {
                        timing.source
                    },
                    ..s
                },
            ),
            cpu_time_us: Some(combine_rank_times(settings.average, &rank_cpu_us)),
            rank_time_us,
            groups: layout.spec.map(|_| groups),
            slowest_group: layout.spec.map(|_| slowest),
            iteration_times_us: settings.keep_iteration_times.then_some(timing.samples),
            rank_iteration_times_us: timing.rank_samples,
            energy,
        })
    }
}

/// Where a row sits in the sweep.
#[derive(Debug, Clone, Copy)]
struct RowAt {
    combo: Combination,
    root: Option<usize>,
    size: u64,
    cycle: u64,
}

#[cfg(test)]
mod tests;
