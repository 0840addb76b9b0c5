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
        // -O measures one placement: say which the mean covers.
        let placements = match (
            rows.iter().any(|r| r.out_of_place.is_some()),
            rows.iter().any(|r| r.in_place.is_some()),
        ) {
            (true, false) => "out-of-place only",
            (false, true) => "in-place only",
            _ => "out-of-place and in-place",
        };
        BusBwFigure {
            gbps: values.iter().map(|v| v.2).sum::<f64>() / values.len() as f64,
            values: values.len(),
            covers: format!(
                "mean of all {} busbw values (every row, {placements}) of {}, sizes {} to {}, as nccl-tests",
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
    }
}

pub fn footer(summary: &Summary) -> String {
    let mut out = String::new();
    match summary.wrong_total {
        Some(0) => out.push_str("# Out of bounds values : 0 OK\n"),
        Some(w) => out.push_str(&format!("# Out of bounds values : {w} FAILED\n")),
        None => out.push_str("# Out of bounds values : not checked (-c 0)\n"),
    }
    if let Some(avg) = &summary.avg_busbw {
        out.push_str(&format!(
            "# Avg bus bandwidth    : {:.3} GB/s ({})\n",
            avg.gbps, avg.covers
        ));
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
