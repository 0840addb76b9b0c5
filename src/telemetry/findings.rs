//! What the readings say at the end of a run: which ranks were throttled and why, and the evidence behind
//! each slow rank ("SM clock 1410 of 1980 MHz, reason thermal slowdown"). What they produce is stored as
//! report/gpu_readings.rs's types (re-exported here), with the table's cells.

use super::{reasons, GpuLimits, RankTelemetry, TelemetryHeader};
use crate::fleet::slow::{describe, measurements, SlowRankReport};
use crate::report::document::{RankInfo, Row};
use crate::report::gpu_readings::widest;
pub use crate::report::gpu_readings::{SlowRankEvidence, TelemetrySummary, ThrottledRank};

/// Every rank with a throttle reason, in rank order.
pub fn throttled_ranks(
    rows: &[Row],
    ranks: &[RankInfo],
    header: &TelemetryHeader,
) -> Vec<ThrottledRank> {
    let mut out = Vec::new();
    for source in &header.ranks {
        let r = source.rank;
        let readings: Vec<&RankTelemetry> = rows
            .iter()
            .filter_map(|row| row.rank_telemetry(r))
            .collect();
        let throttled: Vec<&&RankTelemetry> = readings.iter().filter(|t| t.throttled()).collect();
        if throttled.is_empty() {
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        for t in &throttled {
            for n in &t.throttle_reasons {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let limits = source.limits.clone().unwrap_or_default();
        out.push(ThrottledRank {
            rank: r,
            host: host_of(ranks, r),
            gpu: limits.name.clone(),
            rows_throttled: throttled.len(),
            rows_sampled: readings.len(),
            reasons: names,
            min_sm_clock_mhz: widest(
                throttled
                    .iter()
                    .filter_map(|t| t.sm_clock_mhz.map(|c| c.min)),
                f64::min,
            ),
            max_sm_clock_mhz: limits.max_sm_clock_mhz,
            max_temperature_c: widest(
                readings
                    .iter()
                    .filter_map(|t| t.temperature_c.map(|c| c.max)),
                f64::max,
            ),
            max_power_w: widest(
                readings.iter().filter_map(|t| t.power_w.map(|c| c.max)),
                f64::max,
            ),
            power_limit_w: limits.power_limit_w,
        });
    }
    out
}

fn host_of(ranks: &[RankInfo], rank: usize) -> String {
    ranks
        .iter()
        .find(|r| r.rank == rank)
        .map(|r| r.host.clone())
        .unwrap_or_else(|| "unknown host".into())
}

fn reason_words(names: &[String]) -> String {
    let words: Vec<&str> = names.iter().map(|n| reasons::words(n)).collect();
    words.join(" and ")
}

/// "SM clock 1410 of 1980 MHz, reason thermal slowdown" from one row's readings.
pub fn evidence(t: &RankTelemetry, limits: Option<&GpuLimits>) -> String {
    let clock = match (t.sm_clock_mhz, limits.and_then(|l| l.max_sm_clock_mhz)) {
        (Some(c), Some(max)) => format!("SM clock {:.0} of {max} MHz", c.min),
        (Some(c), None) => format!("SM clock {:.0} MHz", c.min),
        (None, _) => "SM clock unknown".to_string(),
    };
    let why = if t.throttled() {
        format!("reason {}", reason_words(&t.throttle_reasons))
    } else {
        "no throttle reason".to_string()
    };
    format!("{clock}, {why}")
}

/// For each suspect of the slow-rank report, its readings where it was slowest.
pub fn slow_rank_evidence(
    slow: &SlowRankReport,
    rows: &[Row],
    header: &TelemetryHeader,
) -> Vec<SlowRankEvidence> {
    slow.suspect_ranks
        .iter()
        .filter_map(|s| {
            let (row, _, _) = measurements(rows)
                .find(|(row, placement, _)| describe(row, placement) == s.worst_in)?;
            let t = row.rank_telemetry(s.rank)?;
            Some(SlowRankEvidence {
                rank: s.rank,
                host: s.host.clone(),
                excess_percent: s.worst_excess_percent,
                measurement: s.worst_in.clone(),
                evidence: evidence(t, header.limits(s.rank)),
            })
        })
        .collect()
}

/// Everything the summary records; None when no rank was read.
pub fn summarise(
    rows: &[Row],
    ranks: &[RankInfo],
    header: &TelemetryHeader,
    slow: &SlowRankReport,
) -> Option<TelemetrySummary> {
    header.any().then(|| TelemetrySummary {
        ranks_sampled: header.ranks.iter().filter(|r| r.source.is_some()).count(),
        throttled: throttled_ranks(rows, ranks, header),
        slow_rank_evidence: slow_rank_evidence(slow, rows, header),
    })
}

fn number(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v:.0}{unit}"))
        .unwrap_or_else(|| format!("?{unit}"))
}

/// The footer lines: slow ranks with their evidence, then throttled ranks (or none).
pub fn render(s: &TelemetrySummary, rows_total: usize) -> String {
    let mut out = String::new();
    for e in &s.slow_rank_evidence {
        out.push_str(&format!(
            "#   rank {} on {} slow by {:.0} %: {}\n",
            e.rank, e.host, e.excess_percent, e.evidence
        ));
    }
    if s.throttled.is_empty() {
        out.push_str(&format!(
            "# Throttled GPUs       : none (readings of {} rank(s) in {rows_total} row(s))\n",
            s.ranks_sampled
        ));
        return out;
    }
    out.push_str(&format!(
        "# Throttled GPUs       : {} of {} rank(s)\n",
        s.throttled.len(),
        s.ranks_sampled
    ));
    for t in &s.throttled {
        let clock = match t.max_sm_clock_mhz {
            Some(max) => format!("{} of {max} MHz", number(t.min_sm_clock_mhz, "")),
            None => number(t.min_sm_clock_mhz, " MHz"),
        };
        let power = match t.power_limit_w {
            Some(limit) => format!("{} of {limit:.0} W", number(t.max_power_w, "")),
            None => number(t.max_power_w, " W"),
        };
        out.push_str(&format!(
            "#   rank {} on {}{}: {} in {} of {} row(s); SM clock down to {clock}, up to {}, {power}\n",
            t.rank,
            t.host,
            t.gpu.as_ref().map(|g| format!(" ({g})")).unwrap_or_default(),
            reason_words(&t.reasons),
            t.rows_throttled,
            t.rows_sampled,
            number(t.max_temperature_c, " C"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::slow::attribute;
    use crate::report::testdata::{rank, row_with_rank_times};
    use crate::telemetry::{Range, RankSource};

    fn readings(min_sm: f64, temp: f64, throttle: &[&str]) -> RankTelemetry {
        RankTelemetry {
            samples: 3,
            sm_clock_mhz: Some(Range {
                min: min_sm,
                max: 1980.0,
            }),
            temperature_c: Some(Range {
                min: 50.0,
                max: temp,
            }),
            power_w: Some(Range {
                min: 300.0,
                max: 650.0,
            }),
            throttle_reasons: throttle.iter().map(|s| s.to_string()).collect(),
            ..RankTelemetry::default()
        }
    }

    fn header(n: usize) -> TelemetryHeader {
        TelemetryHeader {
            interval_ms: 50,
            ranks: (0..n)
                .map(|rank| RankSource {
                    rank,
                    source: Some("recorded".into()),
                    unavailable: None,
                    limits: Some(GpuLimits {
                        name: Some("NVIDIA H100 80GB HBM3".into()),
                        max_sm_clock_mhz: Some(1980),
                        power_limit_w: Some(700.0),
                        ..GpuLimits::default()
                    }),
                    energy_counter: false,
                })
                .collect(),
        }
    }

    #[test]
    fn the_slow_throttled_rank_is_named_with_its_clock_and_reason() {
        let ranks: Vec<RankInfo> = (0..4)
            .map(|r| rank(r, if r < 2 { "node06" } else { "node07" }))
            .collect();
        let mut row = row_with_rank_times(&[100.0, 100.0, 118.0, 100.0]);
        row.telemetry = Some(vec![
            Some(readings(1980.0, 60.0, &[])),
            Some(readings(1975.0, 61.0, &[])),
            Some(readings(1410.0, 88.0, &["sw_thermal_slowdown"])),
            None,
        ]);
        // Blame is earned: a rank is named only when it is slow in most measurements.
        let rows = vec![row; 6];
        let slow = attribute(&rows, &ranks, 10.0);
        let s = summarise(&rows, &ranks, &header(4), &slow).unwrap();
        assert_eq!(s.slow_rank_evidence.len(), 1);
        let text = render(&s, rows.len());
        assert!(
            text.contains(
                "rank 2 on node07 slow by 18 %: SM clock 1410 of 1980 MHz, reason thermal slowdown"
            ),
            "{text}"
        );
        assert_eq!(s.throttled.len(), 1);
        let t = &s.throttled[0];
        assert_eq!((t.rank, t.rows_throttled, t.rows_sampled), (2, 6, 6));
        assert!(
            text.contains("rank 2 on node07 (NVIDIA H100 80GB HBM3): thermal slowdown in 6 of 6 row(s); SM clock down to 1410 of 1980 MHz, up to 88 C, 650 of 700 W"),
            "{text}"
        );
        assert_eq!(rows[0].telemetry_cells(), ["1410", "88", "650"]);
    }

    #[test]
    fn no_throttle_says_none_and_a_rank_without_readings_has_no_evidence() {
        let ranks = vec![rank(0, "a"), rank(1, "a")];
        let mut row = row_with_rank_times(&[100.0, 130.0]);
        row.telemetry = Some(vec![Some(readings(1980.0, 60.0, &[])), None]);
        let rows = vec![row; 6];
        let slow = attribute(&rows, &ranks, 10.0);
        assert_eq!(slow.suspect_ranks[0].rank, 1);
        let s = summarise(&rows, &ranks, &header(2), &slow).unwrap();
        assert!(s.slow_rank_evidence.is_empty());
        assert!(render(&s, 6).contains("Throttled GPUs       : none"));
        let plain = row_with_rank_times(&[1.0, 1.0]);
        assert_eq!(plain.telemetry_cells(), ["-", "-", "-"]);
        let quiet = TelemetryHeader {
            interval_ms: 50,
            ranks: vec![RankSource::default()],
        };
        assert!(summarise(&rows, &ranks, &quiet, &slow).is_none());
    }
}
