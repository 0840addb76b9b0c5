//! The end of a run: wrong elements in total, the average and peak bus bandwidth with exactly the rows
//! they cover, and the footer lines that say so.

use super::model::{BusBwFigure, Row, Summary};
use crate::size::HumanSize;

/// Every (row, placement name, busbw) measured.
fn busbw_values(rows: &[Row]) -> Vec<(&Row, &'static str, f64)> {
    rows.iter()
        .flat_map(|r| {
            [("out-of-place", &r.out_of_place), ("in-place", &r.in_place)]
                .into_iter()
                .filter_map(move |(name, m)| m.as_ref().map(|m| (r, name, m.busbw_gbps)))
        })
        .collect()
}

pub fn summarise(rows: &[Row], check_on: bool) -> Summary {
    let wrong_total: Option<u64> = check_on.then(|| {
        rows.iter()
            .flat_map(|r| [&r.out_of_place, &r.in_place])
            .filter_map(|m| m.as_ref().and_then(|m| m.wrong))
            .sum()
    });
    let values = busbw_values(rows);
    let avg_busbw = (!values.is_empty()).then(|| {
        let mut collectives: Vec<&str> = rows.iter().map(|r| r.collective.name()).collect();
        collectives.dedup();
        let min = rows.iter().map(|r| r.size_bytes).min().unwrap_or(0);
        let max = rows.iter().map(|r| r.size_bytes).max().unwrap_or(0);
        BusBwFigure {
            gbps: values.iter().map(|v| v.2).sum::<f64>() / values.len() as f64,
            values: values.len(),
            covers: format!(
                "mean of all {} busbw values (every row, out-of-place and in-place) of {}, sizes {} to {}, as nccl-tests",
                values.len(),
                collectives.join(" "),
                HumanSize(min),
                HumanSize(max)
            ),
        }
    });
    let peak_busbw =
        values
            .iter()
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(row, placement, gbps)| BusBwFigure {
                gbps: *gbps,
                values: 1,
                covers: format!(
                    "{} {} {} {}, {}",
                    row.collective,
                    row.dtype,
                    row.op.map(|o| o.name()).unwrap_or(""),
                    HumanSize(row.size_bytes),
                    placement
                )
                .replace("  ", " "),
            });
    Summary {
        check_passed: wrong_total.map(|w| w == 0),
        wrong_total,
        avg_busbw,
        peak_busbw,
        exit_code: 0,
        slow_ranks: None,
        gate: None,
        telemetry: None,
        link_probe: None,
        link_errors: None,
        min_bw: None,
    }
}

pub fn footer(summary: &Summary) -> String {
    let mut out = String::new();
    match summary.wrong_total {
        Some(0) => out.push_str("# Out of bounds values : 0 OK\n"),
        Some(w) => out.push_str(&format!("# Out of bounds values : {w} FAILED\n")),
        None => out.push_str("# Out of bounds values : not checked (-c 0)\n"),
    }
    // nccl-tests' verdict under NCCL_TESTS_MIN_BW ends the line: OK, or FAILED below 0.9 x the value.
    let verdict = summary.min_bw.as_ref().map(|m| {
        if m.passed {
            format!(
                " OK (NCCL_TESTS_MIN_BW={}: at least {:.3})",
                m.required_gbps, m.threshold_gbps
            )
        } else {
            format!(
                " FAILED (NCCL_TESTS_MIN_BW={}: below 0.9 x, {:.3})",
                m.required_gbps, m.threshold_gbps
            )
        }
    });
    match (&summary.avg_busbw, verdict) {
        (Some(avg), verdict) => out.push_str(&format!(
            "# Avg bus bandwidth    : {:.3} GB/s ({}){}\n",
            avg.gbps,
            avg.covers,
            verdict.unwrap_or_default()
        )),
        (None, Some(verdict)) => out.push_str(&format!(
            "# Avg bus bandwidth    : none measured{verdict}\n"
        )),
        (None, None) => {}
    }
    if let Some(peak) = &summary.peak_busbw {
        out.push_str(&format!(
            "# Peak bus bandwidth   : {:.3} GB/s ({})\n",
            peak.gbps, peak.covers
        ));
    }
    out.push_str("#\n");
    out
}
