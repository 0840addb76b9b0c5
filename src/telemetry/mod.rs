//! GPU telemetry beside every row: each rank samples its own GPU (clocks, power, temperature, clock-event
//! reasons, PCIe link, ECC) on a thread of its own while a row is measured, and the row records each
//! rank's lowest and highest readings. The engine sees it only as a [`RowObserver`] called between rows.
//!
//! - reasons.rs: NVML's clock-event (throttle) reasons, which of them lower the clocks, their words
//! - mod.rs: a reading, what a source of readings is (`TelemetrySource`), how its GPU is found (`Which`)
//! - source.rs: where readings come from (NVML through nvml-wrapper, or rocm.rs), chosen per rank
//! - rocm.rs: readings of AMD GPUs through ROCm SMI, throttle bits as NVML's reasons (it names
//!   nothing of source.rs)
//! - sampler.rs: the sampling thread, started and stopped at row boundaries
//! - findings.rs: what the end of the run says (throttled ranks, evidence for slow ranks)
//! - nvlink.rs: the GPU's NVLink error counters, read before and after the run (not per row)
//!
//! The readings as stored (header, per-row ranges, summary) are report/gpu_readings.rs's, re-exported here.

pub mod findings;
pub mod nvlink;
pub mod reasons;
pub mod rocm;
pub mod sampler;
pub mod source;

use crate::error::Result;
pub use crate::report::gpu_readings::{
    GpuLimits, Range, RankSource, RankTelemetry, TelemetryHeader,
};
use crate::world::{all_gather_value, gather_value, World};

/// A GPU that can be read from the sampling thread.
pub trait TelemetrySource: Send {
    /// What answers, for the header ("NVML, driver 550.54.15, GPU 0000:41:00.0").
    fn describe(&self) -> String;
    /// What the GPU can do at best, read once.
    fn limits(&self) -> GpuLimits;
    /// One reading now. Never fails: what the library cannot say stays None.
    fn sample(&self) -> Reading;
    /// The GPU's energy counter now, in millijoules since some origin (NVML: since the driver
    /// loaded); None where the GPU has none.
    fn energy_mj(&self) -> Option<u64> {
        None
    }
}

/// How the GPU is found in NVML or ROCm SMI.
#[derive(Debug, Clone)]
pub enum Which {
    BusId(String),
    Index(u32),
}

/// How often a rank reads its GPU while a row runs.
pub const INTERVAL_MS: u64 = 50;

/// Told by the engine when a row starts and ends, and when a timed loop's clock starts and stops,
/// never inside either: whatever it does while the row runs happens on another thread.
pub trait RowObserver {
    /// Every rank, just before the row's first operation.
    fn row_starting(&mut self);
    /// Every rank, right after the row's last operation (collective: every rank must call it). What each
    /// rank observed during the row, in rank order, on rank 0 (which reports the row); None on the other
    /// ranks, and when no rank observes anything.
    fn row_finished(&mut self, world: &dyn World) -> Result<Option<Vec<Option<RankTelemetry>>>>;
    /// This rank, just before a timed loop's clock starts: the GPU's energy counter, first reading.
    fn timed_loop_starting(&mut self) {}
    /// This rank, just after that timed loop's clock stopped: the joules its GPU used meanwhile; None
    /// without a counter, or when the counter went back (a reset).
    fn timed_loop_finished(&mut self) -> Option<f64> {
        None
    }
}

/// The joules between two readings of an energy counter in millijoules; None when either is missing
/// or the counter went back.
pub fn joules_between(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if a >= b => Some((a - b) as f64 / 1000.0),
        _ => None,
    }
}

/// Observes nothing: rows carry no telemetry.
pub struct NoTelemetry;

impl RowObserver for NoTelemetry {
    fn row_starting(&mut self) {}
    fn row_finished(&mut self, _world: &dyn World) -> Result<Option<Vec<Option<RankTelemetry>>>> {
        Ok(None)
    }
}

/// One reading of a GPU; a field is None where the library does not give it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub power_w: Option<f64>,
    /// The power limit enforced now (it can be lowered while running).
    pub power_limit_w: Option<f64>,
    pub temperature_c: Option<u32>,
    /// Clock-event reasons in NVML's bit encoding (`reasons.rs`).
    pub reasons: Option<u64>,
    pub pcie_gen: Option<u32>,
    pub pcie_width: Option<u32>,
    /// Volatile (since the driver loaded) ECC error counts.
    pub ecc_corrected: Option<u64>,
    pub ecc_uncorrected: Option<u64>,
}

/// Widens a reading's range to take in one more value (none: unchanged).
fn widen(range: &mut Option<Range>, value: Option<f64>) {
    if let Some(v) = value {
        *range = Some(match *range {
            Some(r) => Range {
                min: r.min.min(v),
                max: r.max.max(v),
            },
            None => Range { min: v, max: v },
        });
    }
}

/// Readings of one row folded as they come.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    summary: RankTelemetry,
    reason_bits: u64,
}

impl Accumulator {
    pub fn add(&mut self, r: &Reading) {
        let s = &mut self.summary;
        s.samples += 1;
        widen(&mut s.sm_clock_mhz, r.sm_clock_mhz.map(f64::from));
        widen(&mut s.mem_clock_mhz, r.mem_clock_mhz.map(f64::from));
        widen(&mut s.power_w, r.power_w);
        widen(&mut s.power_limit_w, r.power_limit_w);
        widen(&mut s.temperature_c, r.temperature_c.map(f64::from));
        widen(&mut s.pcie_gen, r.pcie_gen.map(f64::from));
        widen(&mut s.pcie_width, r.pcie_width.map(f64::from));
        widen(&mut s.ecc_corrected, r.ecc_corrected.map(|v| v as f64));
        widen(&mut s.ecc_uncorrected, r.ecc_uncorrected.map(|v| v as f64));
        self.reason_bits |= r.reasons.unwrap_or(0);
    }

    pub fn samples(&self) -> u32 {
        self.summary.samples
    }

    /// The row's summary, the lowest SM clock set against the GPU's maximum.
    pub fn finish(self, limits: &GpuLimits) -> RankTelemetry {
        let mut s = self.summary;
        s.reasons = reasons::names(self.reason_bits);
        s.throttle_reasons = reasons::names(self.reason_bits & reasons::THROTTLING);
        s.sm_clock_of_max = match (s.sm_clock_mhz, limits.max_sm_clock_mhz) {
            (Some(r), Some(max)) if max > 0 => Some(r.min / f64::from(max)),
            _ => None,
        };
        s
    }
}

/// The engine's observer on one rank: its sampler when its GPU answers, and whether any rank's does
/// (then every rank takes part in gathering the readings after each row).
pub struct Telemetry {
    sampler: Option<sampler::Sampler>,
    gather: bool,
    /// The energy counter as the current timed loop started.
    energy_before: Option<u64>,
}

impl Telemetry {
    /// Opens this rank's source, tells every rank what the others have (collective) and starts the
    /// sampling thread. `enabled` false (--no-telemetry) opens nothing and returns no header.
    pub fn start(
        world: &dyn World,
        device: &crate::backend::DeviceInfo,
        enabled: bool,
    ) -> Result<(Telemetry, Option<TelemetryHeader>)> {
        if !enabled {
            return Ok((
                Telemetry {
                    sampler: None,
                    gather: false,
                    energy_before: None,
                },
                None,
            ));
        }
        let rank = world.rank();
        let opened = source::open(device, world.local_rank());
        let mine = match &opened {
            Ok(s) => RankSource {
                rank,
                source: Some(s.describe()),
                unavailable: None,
                limits: Some(s.limits()),
                energy_counter: s.energy_mj().is_some(),
            },
            Err(why) => RankSource {
                rank,
                source: None,
                unavailable: Some(why.clone()),
                limits: None,
                energy_counter: false,
            },
        };
        let header = TelemetryHeader {
            interval_ms: INTERVAL_MS,
            ranks: all_gather_value(world, &mine)?,
        };
        let sampler = opened
            .ok()
            .map(|s| sampler::Sampler::start(s, std::time::Duration::from_millis(INTERVAL_MS)));
        Ok((
            Telemetry {
                sampler,
                gather: header.any(),
                energy_before: None,
            },
            Some(header),
        ))
    }
}

impl RowObserver for Telemetry {
    fn row_starting(&mut self) {
        if let Some(s) = &self.sampler {
            s.begin_row();
        }
    }

    fn row_finished(&mut self, world: &dyn World) -> Result<Option<Vec<Option<RankTelemetry>>>> {
        let mine = self.sampler.as_ref().map(|s| s.end_row());
        if !self.gather {
            return Ok(None);
        }
        // Only rank 0 reports a row: the others send their readings and receive nothing, so a rank's
        // cost per row does not grow with the job.
        gather_value(world, &mine)
    }

    fn timed_loop_starting(&mut self) {
        self.energy_before = self.sampler.as_ref().and_then(|s| s.energy_mj());
    }

    fn timed_loop_finished(&mut self) -> Option<f64> {
        let after = self.sampler.as_ref().and_then(|s| s.energy_mj());
        joules_between(self.energy_before.take(), after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_between_two_counter_readings_and_a_reset_is_none() {
        assert_eq!(joules_between(Some(1_000), Some(3_500)), Some(2.5));
        assert_eq!(joules_between(Some(3_500), Some(1_000)), None, "reset");
        assert_eq!(joules_between(None, Some(1)), None);
        assert_eq!(joules_between(Some(1), None), None);
    }

    #[test]
    fn a_row_keeps_the_range_of_each_reading_and_every_reason() {
        let mut acc = Accumulator::default();
        let base = Reading {
            sm_clock_mhz: Some(1980),
            temperature_c: Some(60),
            power_w: Some(500.0),
            reasons: Some(reasons::GPU_IDLE),
            ..Reading::default()
        };
        acc.add(&base);
        acc.add(&Reading {
            sm_clock_mhz: Some(1410),
            temperature_c: Some(88),
            power_w: Some(610.5),
            reasons: Some(reasons::SW_THERMAL_SLOWDOWN),
            ..base
        });
        let limits = GpuLimits {
            max_sm_clock_mhz: Some(1980),
            ..GpuLimits::default()
        };
        let t = acc.finish(&limits);
        assert_eq!(t.samples, 2);
        assert_eq!(
            t.sm_clock_mhz,
            Some(Range {
                min: 1410.0,
                max: 1980.0
            })
        );
        assert_eq!(t.temperature_c.unwrap().max, 88.0);
        assert_eq!(t.power_w.unwrap().max, 610.5);
        assert!(t.mem_clock_mhz.is_none(), "never answered");
        assert_eq!(t.reasons, ["gpu_idle", "sw_thermal_slowdown"]);
        assert_eq!(t.throttle_reasons, ["sw_thermal_slowdown"]);
        assert!(t.throttled());
        assert!((t.sm_clock_of_max.unwrap() - 1410.0 / 1980.0).abs() < 1e-12);
    }
}
