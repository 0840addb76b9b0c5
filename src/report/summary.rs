//! The end of a run: wrong elements in total, the average and peak bus bandwidth with exactly the rows
//! they cover, and the footer lines that say so.

use super::document::{BusBwFigure, Row, Summary};
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
        min_bw: None,
        memory: None,
    }
}

/// nccl-tests' getMemString: B, KB, MB or GB of 1024, with 2 decimals below 10, 1 below 100, else none.
pub fn memory_text(bytes: u64) -> String {
    let mut amount = bytes as f64;
    let mut unit = "B";
    for (next, limit) in [("GB", 1u64 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
        if bytes >= limit {
            amount = bytes as f64 / limit as f64;
            unit = next;
            break;
        }
    }
    let decimals = if amount < 10.0 {
        2
    } else if amount < 100.0 {
        1
    } else {
        0
    };
    format!("{amount:.decimals$} {unit}")
}

/// The footer's `GPU memory usage` line, as nccl-tests prints it.
pub fn memory_line(m: &super::document::MemoryReport) -> String {
    let total = m.initialization_bytes + m.user_allocated_bytes + m.collective_bytes;
    format!(
        "# GPU memory usage     : Initialization {} | User-Allocated {} | Collective {} | Total  {}\n",
        memory_text(m.initialization_bytes),
        memory_text(m.user_allocated_bytes),
        memory_text(m.collective_bytes),
        memory_text(total)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_as_nccl_tests_prints_it() {
        assert_eq!(memory_text(512), "512 B");
        assert_eq!(memory_text(1536), "1.50 KB");
        assert_eq!(memory_text(20 << 20), "20.0 MB");
        assert_eq!(memory_text(300 << 30), "300 GB");
        let line = memory_line(&super::super::document::MemoryReport {
            initialization_bytes: 600 << 20,
            user_allocated_bytes: 2 << 30,
            collective_bytes: 0,
        });
        assert_eq!(
            line,
            "# GPU memory usage     : Initialization 600 MB | User-Allocated 2.00 GB | Collective 0.00 B | Total  2.59 GB\n"
        );
    }
}
