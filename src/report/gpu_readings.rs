//! The GPU readings a results document stores: each rank's telemetry source and limits (the header), one
//! rank's ranges of readings during a row, the summary's throttled ranks and slow-rank evidence, and the
//! `--telemetry` table cells. Data and their small methods only: reading the GPUs and judging the readings
//! live in telemetry/, which depends on this module and never the other way round.

use serde::{Deserialize, Serialize};

/// What a GPU can do at best, read once: the header's reference for the readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuLimits {
    pub name: Option<String>,
    pub max_sm_clock_mhz: Option<u32>,
    pub max_mem_clock_mhz: Option<u32>,
    /// The power limit enforced when the run started.
    pub power_limit_w: Option<f64>,
    /// The board's default limit (a lower enforced limit means someone capped it).
    pub default_power_limit_w: Option<f64>,
}

/// Each rank's telemetry source, for the header of the JSON document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankSource {
    pub rank: usize,
    /// What answers ("NVML, driver 550.54.15, GPU 0000:41:00.0"); null when nothing does.
    pub source: Option<String>,
    /// Why this rank has no telemetry.
    pub unavailable: Option<String>,
    pub limits: Option<GpuLimits>,
    /// The GPU answered its energy counter when the run started (each measurement then records the
    /// energy of its timed loop).
    #[serde(default)]
    pub energy_counter: bool,
}

/// The header's telemetry section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryHeader {
    /// Milliseconds between two readings of a rank's GPU while a row runs.
    pub interval_ms: u64,
    /// One per rank, in rank order.
    pub ranks: Vec<RankSource>,
}

impl TelemetryHeader {
    /// True when at least one rank samples its GPU.
    pub fn any(&self) -> bool {
        self.ranks.iter().any(|r| r.source.is_some())
    }

    /// True when at least one rank's GPU has an energy counter.
    pub fn any_energy(&self) -> bool {
        self.ranks.iter().any(|r| r.energy_counter)
    }

    pub fn limits(&self, rank: usize) -> Option<&GpuLimits> {
        self.ranks.get(rank).and_then(|r| r.limits.as_ref())
    }

    /// Says what the energy figures cover where ranks sample their GPUs but not every GPU has an energy
    /// counter: nothing when none has one, only some ranks' joules when some have; None otherwise.
    pub fn energy_note(&self) -> Option<String> {
        if !self.any() {
            return None;
        }
        let ranks = self.ranks.len();
        match self.ranks.iter().filter(|r| r.energy_counter).count() {
            0 => Some("no rank's GPU answered an energy counter: the messages carry no energy".into()),
            read if read < ranks => Some(format!(
                "energy from the GPU counters of {read} of {ranks} ranks (the other GPUs answered none): every energy figure counts only those ranks"
            )),
            _ => None,
        }
    }

    /// Says once why ranks have no telemetry, ranks grouped by reason; None when every rank has some.
    pub fn missing_note(&self) -> Option<String> {
        let mut by_reason: Vec<(&str, Vec<usize>)> = Vec::new();
        for r in &self.ranks {
            if let Some(why) = r.unavailable.as_deref() {
                match by_reason.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, ranks)) => ranks.push(r.rank),
                    None => by_reason.push((why, vec![r.rank])),
                }
            }
        }
        if by_reason.is_empty() {
            return None;
        }
        let parts: Vec<String> = by_reason
            .iter()
            .map(|(why, ranks)| {
                let list: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
                format!("rank(s) {}: {why}", list.join(" "))
            })
            .collect();
        Some(format!(
            "no GPU telemetry on {} of {} rank(s) ({}); the run goes on without it",
            by_reason.iter().map(|(_, r)| r.len()).sum::<usize>(),
            self.ranks.len(),
            parts.join("; ")
        ))
    }
}

/// The lowest and highest of one reading during a row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// One rank's readings during one row: the range of each, and every clock-event reason seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankTelemetry {
    pub samples: u32,
    pub sm_clock_mhz: Option<Range>,
    pub mem_clock_mhz: Option<Range>,
    pub power_w: Option<Range>,
    pub power_limit_w: Option<Range>,
    pub temperature_c: Option<Range>,
    pub pcie_gen: Option<Range>,
    pub pcie_width: Option<Range>,
    pub ecc_corrected: Option<Range>,
    pub ecc_uncorrected: Option<Range>,
    /// Every clock-event reason seen in a reading (e.g. "gpu_idle", "sw_thermal_slowdown").
    pub reasons: Vec<String>,
    /// Those of them that lower the clocks below what the GPU can do: power cap, thermal, slowdown.
    pub throttle_reasons: Vec<String>,
    /// The lowest SM clock as a fraction of the GPU's maximum, when both are known.
    pub sm_clock_of_max: Option<f64>,
}

impl RankTelemetry {
    pub fn throttled(&self) -> bool {
        !self.throttle_reasons.is_empty()
    }
}

/// A rank whose GPU gave a throttle reason in at least one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottledRank {
    pub rank: usize,
    pub host: String,
    pub gpu: Option<String>,
    /// Rows in which a reading carried a throttle reason, of the rows with readings.
    pub rows_throttled: usize,
    pub rows_sampled: usize,
    /// Every throttle reason seen (JSON names, e.g. "sw_thermal_slowdown").
    pub reasons: Vec<String>,
    pub min_sm_clock_mhz: Option<f64>,
    /// The GPU's maximum SM clock (header).
    pub max_sm_clock_mhz: Option<u32>,
    pub max_temperature_c: Option<f64>,
    pub max_power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
}

/// The readings of a slow rank in the measurement where it was slowest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRankEvidence {
    pub rank: usize,
    pub host: String,
    pub excess_percent: f64,
    /// The measurement (as in the slow-rank report's `worst_in`).
    pub measurement: String,
    /// "SM clock 1410 of 1980 MHz, reason thermal slowdown".
    pub evidence: String,
}

/// The telemetry part of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySummary {
    /// Ranks whose GPU was read.
    pub ranks_sampled: usize,
    pub throttled: Vec<ThrottledRank>,
    pub slow_rank_evidence: Vec<SlowRankEvidence>,
}

/// The lowest or highest (by `pick`) of some readings; None when there are none.
pub(crate) fn widest(values: impl Iterator<Item = f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    values.reduce(pick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_without_a_source_are_said_once_grouped_by_reason() {
        let header = TelemetryHeader {
            interval_ms: 50,
            ranks: vec![
                RankSource {
                    rank: 0,
                    unavailable: Some("NVML not found".into()),
                    ..RankSource::default()
                },
                RankSource {
                    rank: 1,
                    source: Some("NVML".into()),
                    ..RankSource::default()
                },
                RankSource {
                    rank: 2,
                    unavailable: Some("NVML not found".into()),
                    ..RankSource::default()
                },
            ],
        };
        assert!(header.any());
        let note = header.missing_note().unwrap();
        assert!(
            note.contains("2 of 3 rank(s) (rank(s) 0 2: NVML not found)"),
            "{note}"
        );
        let all = TelemetryHeader {
            ranks: vec![header.ranks[1].clone()],
            ..header
        };
        assert!(all.missing_note().is_none());
    }

    #[test]
    fn energy_is_said_to_count_only_the_ranks_whose_gpu_has_a_counter() {
        let rank = |rank: usize, energy_counter: bool| RankSource {
            rank,
            source: Some("NVML".into()),
            energy_counter,
            ..RankSource::default()
        };
        let header = |counters: &[bool]| TelemetryHeader {
            interval_ms: 50,
            ranks: counters
                .iter()
                .enumerate()
                .map(|(i, &c)| rank(i, c))
                .collect(),
        };
        assert_eq!(
            header(&[true, false, true, false]).energy_note().unwrap(),
            "energy from the GPU counters of 2 of 4 ranks (the other GPUs answered none): every energy figure counts only those ranks"
        );
        assert!(header(&[false, false])
            .energy_note()
            .unwrap()
            .starts_with("no rank's GPU answered an energy counter"));
        assert!(header(&[true, true]).energy_note().is_none());
        let unsampled = TelemetryHeader {
            interval_ms: 50,
            ranks: vec![RankSource::default()],
        };
        assert!(
            unsampled.energy_note().is_none(),
            "no telemetry: nothing to say of energy"
        );
    }
}
