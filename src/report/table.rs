//! The terminal table: nccl-tests' columns, one line per row as soon as it is measured, aligned by tabled.

use super::model::{Measurement, Row};
use tabled::builder::Builder;
use tabled::settings::{Alignment, Padding, Style};

/// Widths of size, count, type, redop, root, then per placement time, algbw, busbw, #wrong.
const WIDTHS: [usize; 13] = [12, 12, 9, 6, 5, 10, 7, 7, 6, 10, 7, 7, 6];

fn render_lines(records: Vec<Vec<String>>) -> String {
    let mut builder = Builder::default();
    for r in records {
        // Fixed widths keep rows printed one at a time aligned with the heading printed before them.
        builder.push_record(r.iter().zip(WIDTHS).map(|(cell, w)| format!("{cell:>w$}")));
    }
    let mut table = builder.build();
    table
        .with(Style::empty())
        .with(Padding::new(1, 0, 0, 0))
        .with(Alignment::right());
    table.to_string()
}

/// The column headings, nccl-tests style (lines start with '#').
pub fn heading() -> String {
    let cols = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let lines = render_lines(vec![
        cols(&[
            "",
            "",
            "",
            "",
            "",
            "out-of-place",
            "",
            "",
            "",
            "in-place",
            "",
            "",
            "",
        ]),
        cols(&[
            "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time",
            "algbw", "busbw", "#wrong",
        ]),
        cols(&[
            "(B)",
            "(elements)",
            "",
            "",
            "",
            "(us)",
            "(GB/s)",
            "(GB/s)",
            "",
            "(us)",
            "(GB/s)",
            "(GB/s)",
            "",
        ]),
    ]);
    lines
        .lines()
        .map(|l| format!("#{}\n", &l[1.min(l.len())..]))
        .collect()
}

fn placement(m: &Option<Measurement>) -> [String; 4] {
    match m {
        None => ["-".into(), "-".into(), "-".into(), "-".into()],
        Some(m) => [
            format_time(m.time_us),
            format!("{:.2}", m.algbw_gbps),
            format!("{:.2}", m.busbw_gbps),
            m.wrong
                .map(|w| w.to_string())
                .unwrap_or_else(|| "N/A".into()),
        ],
    }
}

/// Times as nccl-tests prints them: two decimals below 10 ms, one below 1 s, none above.
fn format_time(us: f64) -> String {
    if us < 10_000.0 {
        format!("{us:.2}")
    } else if us < 1_000_000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// One table line for a measured row.
pub fn line(row: &Row) -> String {
    let mut record = vec![
        row.size_bytes.to_string(),
        row.count.to_string(),
        row.dtype.name().to_string(),
        row.op
            .map(|o| o.name().to_string())
            .unwrap_or_else(|| "none".into()),
        row.root
            .map(|r| r.to_string())
            .unwrap_or_else(|| "-1".into()),
    ];
    record.extend(placement(&row.out_of_place));
    record.extend(placement(&row.in_place));
    render_lines(vec![record]) + "\n"
}

/// The title line printed before a collective's rows.
pub fn collective_title(row: &Row) -> String {
    format!(
        "#\n# {} ({} ranks, bus factor {:.4}, {})\n",
        row.collective, row.ranks, row.bus_factor, row.path
    )
}
