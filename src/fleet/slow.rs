//! Per-rank attribution: which rank was slowest in each measurement, whether it stands out from the
//! median rank, and the suspect ranks and hosts of a whole sweep.

use crate::metrics::median;
use crate::report::document::{Measurement, RankInfo, Row};
// The stored form lives in the report layer so that report/ never depends on fleet/.
pub use crate::report::verdicts::{FlaggedMeasurement, SlowRankReport, SuspectHost, SuspectRank};
use crate::size::HumanSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rank is named when its own mean time exceeds the median rank's by more than this (percent).
pub const DEFAULT_THRESHOLD_PERCENT: f64 = 10.0;

/// The slowest rank of one measurement and how far it lies above the median rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowestRank {
    pub rank: usize,
    pub time_us: f64,
    pub median_us: f64,
    /// (time - median) / median, in percent.
    pub excess_percent: f64,
}

/// The slowest rank of one measurement, whatever its excess; None with fewer than two finite rank times
/// (one rank has nobody to be slower than).
pub fn slowest_rank(rank_time_us: &[f64]) -> Option<SlowestRank> {
    if rank_time_us.len() < 2 || rank_time_us.iter().any(|t| !t.is_finite()) {
        return None;
    }
    let (rank, &time_us) = rank_time_us
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let median_us = median(rank_time_us);
    let excess_percent = if median_us > 0.0 {
        100.0 * (time_us - median_us) / median_us
    } else {
        0.0
    };
    Some(SlowestRank {
        rank,
        time_us,
        median_us,
        excess_percent,
    })
}

/// The slowest rank when it exceeds the median by more than `threshold_percent`.
pub fn slow_rank(measurement: &Measurement, threshold_percent: f64) -> Option<SlowestRank> {
    slowest_rank(&measurement.rank_time_us).filter(|s| s.excess_percent > threshold_percent)
}

fn host_of(ranks: &[RankInfo], rank: usize) -> String {
    ranks
        .iter()
        .find(|r| r.rank == rank)
        .map(|r| r.host.clone())
        .unwrap_or_else(|| "unknown host".into())
}

fn device_of(ranks: &[RankInfo], rank: usize) -> String {
    ranks
        .iter()
        .find(|r| r.rank == rank)
        .map(|r| {
            let d = &r.device;
            match d.index {
                Some(i) => format!("{} {} {}", d.kind, i, d.name),
                None => d.name.clone(),
            }
        })
        .unwrap_or_default()
}

/// A measurement's name as a user finds it in the table.
pub fn describe(row: &Row, placement: &str) -> String {
    let mut parts = vec![
        row.collective.name().to_string(),
        row.dtype.name().to_string(),
    ];
    if let Some(op) = row.op {
        parts.push(op.name().to_string());
    }
    if let Some(root) = row.root {
        parts.push(format!("root {root}"));
    }
    parts.push(HumanSize(row.size_bytes).to_string());
    if row.cycle > 0 {
        parts.push(format!("cycle {}", row.cycle));
    }
    format!("{} {placement}", parts.join(" "))
}

/// Every (row, placement name, measurement) present.
pub fn measurements(rows: &[Row]) -> impl Iterator<Item = (&Row, &'static str, &Measurement)> {
    rows.iter().flat_map(|r| {
        [("out-of-place", &r.out_of_place), ("in-place", &r.in_place)]
            .into_iter()
            .filter_map(move |(name, m)| m.as_ref().map(|m| (r, name, m)))
    })
}

/// Judges every measurement of the sweep and gathers the suspects.
pub fn attribute(rows: &[Row], ranks: &[RankInfo], threshold_percent: f64) -> SlowRankReport {
    let mut judged = 0;
    let mut flagged = Vec::new();
    for (row, placement, m) in measurements(rows) {
        let Some(slowest) = slowest_rank(&m.rank_time_us) else {
            continue;
        };
        judged += 1;
        if slowest.excess_percent > threshold_percent {
            flagged.push(FlaggedMeasurement {
                what: describe(row, placement),
                size_bytes: row.size_bytes,
                placement: placement.to_string(),
                rank: slowest.rank,
                host: host_of(ranks, slowest.rank),
                time_us: slowest.time_us,
                median_us: slowest.median_us,
                excess_percent: slowest.excess_percent,
            });
        }
    }

    let mut by_rank: BTreeMap<usize, SuspectRank> = BTreeMap::new();
    for f in &flagged {
        let entry = by_rank.entry(f.rank).or_insert_with(|| SuspectRank {
            rank: f.rank,
            host: f.host.clone(),
            device: device_of(ranks, f.rank),
            flagged_in: 0,
            worst_excess_percent: f64::NEG_INFINITY,
            worst_in: String::new(),
            consistency: crate::fleet::blame::by_majority(0, 0),
        });
        entry.flagged_in += 1;
        if f.excess_percent > entry.worst_excess_percent {
            entry.worst_excess_percent = f.excess_percent;
            entry.worst_in = f.what.clone();
        }
    }
    // Blame is earned: a rank that was the slowest once in a long sweep is noise, not a suspect.
    let ranks_judged = measurements(rows)
        .map(|(_, _, m)| m.rank_time_us.len())
        .max()
        .unwrap_or(0);
    let mut suspect_ranks: Vec<SuspectRank> = by_rank
        .into_values()
        .map(|mut s| {
            s.consistency = crate::fleet::blame::against_chance(
                s.flagged_in,
                judged,
                1.0 / ranks_judged.max(1) as f64,
            );
            s
        })
        .filter(|s| s.consistency.earned())
        .collect();
    suspect_ranks.sort_by(|a, b| {
        b.flagged_in
            .cmp(&a.flagged_in)
            .then(b.worst_excess_percent.total_cmp(&a.worst_excess_percent))
    });

    let mut by_host: BTreeMap<String, SuspectHost> = BTreeMap::new();
    for s in &suspect_ranks {
        let entry = by_host
            .entry(s.host.clone())
            .or_insert_with(|| SuspectHost {
                host: s.host.clone(),
                ranks: Vec::new(),
                flagged_in: 0,
                worst_excess_percent: f64::NEG_INFINITY,
            });
        entry.ranks.push(s.rank);
        entry.flagged_in += s.flagged_in;
        entry.worst_excess_percent = entry.worst_excess_percent.max(s.worst_excess_percent);
    }
    let mut suspect_hosts: Vec<SuspectHost> = by_host.into_values().collect();
    for h in &mut suspect_hosts {
        h.ranks.sort_unstable();
    }
    suspect_hosts.sort_by_key(|h| std::cmp::Reverse(h.flagged_in));

    SlowRankReport {
        threshold_percent,
        judged,
        flagged,
        suspect_ranks,
        suspect_hosts,
    }
}

/// The end-of-sweep lines, nccl-tests style ('#' comments), naming suspects or saying there are none.
pub fn render(report: &SlowRankReport) -> String {
    let mut out = String::new();
    if report.judged == 0 {
        out.push_str("# Slow ranks           : not judged (fewer than two ranks)\n");
        return out;
    }
    if report.suspect_ranks.is_empty() {
        out.push_str(&format!(
            "# Slow ranks           : none (no rank above the median rank by more than {}% in most of {} measurements; {} measurement(s) had one)\n",
            report.threshold_percent, report.judged, report.flagged.len()
        ));
        return out;
    }
    out.push_str(&format!(
        "# Slow ranks           : {} suspect rank(s) above the median rank by more than {}% (of {} measurements)\n",
        report.suspect_ranks.len(),
        report.threshold_percent,
        report.judged
    ));
    for s in &report.suspect_ranks {
        out.push_str(&format!(
            "#   rank {} on {} ({}): slowest in {}, worst +{:.1}% in {}\n",
            s.rank,
            s.host,
            s.device,
            s.consistency.describe("measurements"),
            s.worst_excess_percent,
            s.worst_in
        ));
    }
    for h in &report.suspect_hosts {
        let ranks: Vec<String> = h.ranks.iter().map(|r| r.to_string()).collect();
        out.push_str(&format!(
            "#   host {}: rank(s) {} flagged {} time(s), worst +{:.1}%\n",
            h.host,
            ranks.join(" "),
            h.flagged_in,
            h.worst_excess_percent
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{rank, row_with_rank_times};

    #[test]
    fn names_the_slowest_rank_against_the_median() {
        let s = slowest_rank(&[100.0, 101.0, 150.0, 99.0]).unwrap();
        assert_eq!(s.rank, 2);
        assert_eq!(s.median_us, 100.5);
        assert!((s.excess_percent - 100.0 * 49.5 / 100.5).abs() < 1e-9);
        let odd = slowest_rank(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!((odd.rank, odd.median_us), (1, 20.0));
    }

    #[test]
    fn one_rank_or_broken_times_are_not_judged() {
        assert!(slowest_rank(&[]).is_none());
        assert!(slowest_rank(&[5.0]).is_none());
        assert!(slowest_rank(&[5.0, f64::NAN]).is_none());
    }

    #[test]
    fn threshold_decides_whether_a_rank_is_named() {
        let row = row_with_rank_times(&[100.0, 100.0, 109.0, 100.0]);
        let m = row.out_of_place.as_ref().unwrap();
        assert!(slow_rank(m, 10.0).is_none());
        assert_eq!(slow_rank(m, 5.0).unwrap().rank, 2);
    }

    #[test]
    fn sweep_summary_names_only_a_consistently_slow_rank() {
        let ranks = vec![rank(0, "a"), rank(1, "a"), rank(2, "b"), rank(3, "b")];
        let rows = vec![
            row_with_rank_times(&[100.0, 100.0, 130.0, 100.0]),
            row_with_rank_times(&[100.0, 100.0, 150.0, 100.0]),
            row_with_rank_times(&[100.0, 100.0, 125.0, 100.0]),
            row_with_rank_times(&[100.0, 120.0, 100.0, 100.0]),
        ];
        let report = attribute(&rows, &ranks, DEFAULT_THRESHOLD_PERCENT);
        // Each row has both placements with the same times.
        assert_eq!(report.judged, 8);
        assert_eq!(report.flagged.len(), 8);
        // Rank 2: slowest in 6 of 8; rank 1 in 2 of 8, which is no more than chance.
        assert_eq!(report.suspect_ranks.len(), 1);
        let top = &report.suspect_ranks[0];
        assert_eq!((top.rank, top.host.as_str(), top.flagged_in), (2, "b", 6));
        assert!((top.worst_excess_percent - 50.0).abs() < 1e-9);
        assert!(top.consistency.earned());
        assert_eq!(report.suspect_hosts.len(), 1);
        assert_eq!(report.suspect_hosts[0].host, "b");
        let text = render(&report);
        assert!(text.contains("rank 2 on b"), "{text}");
        assert!(text.contains("6 of 8 measurements"), "{text}");
        assert!(text.contains("+50.0%"), "{text}");
        let json = serde_json::to_string(&report).unwrap();
        let back: SlowRankReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn one_slow_row_in_many_names_nobody() {
        // The quiet run of issue 11: one rank slowest beyond the threshold in 1 row of many.
        let ranks = vec![rank(0, "a"), rank(1, "a"), rank(2, "b"), rank(3, "b")];
        let mut rows = vec![row_with_rank_times(&[100.0, 100.0, 123.0, 100.0])];
        rows.extend((0..20).map(|_| row_with_rank_times(&[100.0, 101.0, 100.0, 102.0])));
        let report = attribute(&rows, &ranks, DEFAULT_THRESHOLD_PERCENT);
        assert_eq!(report.flagged.len(), 2);
        assert!(report.suspect_ranks.is_empty(), "{}", render(&report));
        assert!(report.suspect_hosts.is_empty());
        assert!(render(&report).contains("none"), "{}", render(&report));
    }

    #[test]
    fn quiet_sweep_says_none() {
        let ranks = vec![rank(0, "a"), rank(1, "a")];
        let rows = vec![row_with_rank_times(&[100.0, 101.0])];
        let report = attribute(&rows, &ranks, 10.0);
        assert!(report.suspect_ranks.is_empty());
        assert!(render(&report).contains("none"));
        let solo = attribute(&[row_with_rank_times(&[100.0])], &ranks, 10.0);
        assert!(render(&solo).contains("not judged"));
    }
}
