//! The terminal table: nccl-tests' columns, one line per row as soon as it is measured, aligned by tabled.
//! A %peak column follows busbw when the peak is known, energy per operation and GB per joule follow
//! #wrong when some rank's GPU has an energy counter, --stats adds p50, p99 and cv%, and --telemetry
//! ends the line with the GPUs' lowest SM clock, highest temperature and power over the ranks.

use super::document::{Measurement, Row};
use crate::topo::peak::{percent_of_peak, Peak};
use tabled::builder::Builder;
use tabled::settings::{Alignment, Padding, Style};

/// Widths of size, count, type, redop, root.
const LEADING: [usize; 5] = [12, 12, 9, 6, 5];

/// Which optional columns the table has.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub peak: Option<Peak>,
    pub stats: bool,
    pub telemetry: bool,
    /// --groups: a last column names each row's layout ("2x4": two groups of four ranks).
    pub groups: bool,
    /// -C 1: the time column is the enqueue loop's host time (`cputime`).
    pub cputime: bool,
    /// -I 1: nccl-tests' per-iteration columns (i_min, i_max, i_p99, i_cv%) after each placement's.
    pub per_iteration: bool,
    /// -S 1: each line ends with the local time it was printed.
    pub timestamps: bool,
    /// NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY: nccl-tests' per-rank lines under each all_to_allv row.
    pub alltoallv_summary: bool,
    /// Some rank's GPU has an energy counter: each placement gets the job's millijoules per operation
    /// and the GB one GPU moves per joule.
    pub energy: bool,
    /// -A: the algorithm, protocol and channels the library chose, after the GPU columns.
    pub algo: bool,
}

/// The --telemetry columns, once per row (not per placement): (heading, unit, width).
const TELEMETRY_COLUMNS: [(&str, &str, usize); 3] = [
    ("minSM", "(MHz)", 6),
    ("maxT", "(C)", 5),
    ("maxP", "(W)", 6),
];

/// rccl-tests' -A columns, once per row: (heading, unit, width).
const ALGO_COLUMNS: [(&str, &str, usize); 3] =
    [("algo", "", 8), ("proto", "", 8), ("channels", "", 10)];

/// Width of the --groups layout column.
const LAYOUT_WIDTH: usize = 9;

impl Columns {
    /// Columns of one placement: (heading, unit, width).
    fn placement_columns(&self) -> Vec<(&'static str, &'static str, usize)> {
        let mut cols = vec![
            (if self.cputime { "cputime" } else { "time" }, "(us)", 10),
            ("algbw", "(GB/s)", 7),
            ("busbw", "(GB/s)", 7),
        ];
        if self.peak.is_some() {
            cols.push(("%peak", "", 6));
        }
        cols.push(("#wrong", "", 6));
        if self.energy {
            cols.extend([("energy", "(mJ/op)", 9), ("eff", "(GB/J)", 7)]);
        }
        if self.stats {
            cols.extend([("p50", "(us)", 10), ("p99", "(us)", 10), ("cv%", "", 6)]);
        }
        if self.per_iteration {
            cols.extend([
                ("i_min", "(us)", 10),
                ("i_max", "(us)", 10),
                ("i_p99", "(us)", 10),
                ("i_cv%", "(%)", 7),
            ]);
        }
        cols
    }

    /// The --telemetry columns, then -A's, then -S's timestamp, once per row.
    fn row_columns(&self) -> Vec<(&'static str, &'static str, usize)> {
        let mut cols = Vec::new();
        if self.telemetry {
            cols.extend(TELEMETRY_COLUMNS);
        }
        if self.algo {
            cols.extend(ALGO_COLUMNS);
        }
        if self.timestamps {
            cols.push(("timestamp", "%Y-%m-%d %H:%M:%S", 19));
        }
        cols
    }

    fn widths(&self) -> Vec<usize> {
        let per = self.placement_columns();
        LEADING
            .iter()
            .copied()
            .chain(per.iter().chain(per.iter()).map(|c| c.2))
            .chain(self.row_columns().iter().map(|c| c.2))
            .chain(self.groups.then_some(LAYOUT_WIDTH))
            .collect()
    }

    fn render(&self, records: Vec<Vec<String>>) -> String {
        let widths = self.widths();
        let mut builder = Builder::default();
        for r in records {
            // Fixed widths keep rows printed one at a time aligned with the heading printed before them.
            builder.push_record(r.iter().zip(&widths).map(|(cell, w)| format!("{cell:>w$}")));
        }
        let mut table = builder.build();
        table
            .with(Style::empty())
            .with(Padding::new(1, 0, 0, 0))
            .with(Alignment::right());
        table.to_string()
    }

    /// The column headings, nccl-tests style (lines start with '#'): the placement names centred over
    /// their columns, then names and units.
    pub fn heading(&self) -> String {
        let per = self.placement_columns();
        let mut names: Vec<String> = ["size", "count", "type", "redop", "root"]
            .map(String::from)
            .to_vec();
        let mut units: Vec<String> = ["(B)", "(elements)", "", "", ""].map(String::from).to_vec();
        for _ in 0..2 {
            names.extend(per.iter().map(|c| c.0.to_string()));
            units.extend(per.iter().map(|c| c.1.to_string()));
        }
        names.extend(self.row_columns().iter().map(|c| c.0.to_string()));
        units.extend(self.row_columns().iter().map(|c| c.1.to_string()));
        if self.groups {
            names.push("layout".into());
            units.push("(groups)".into());
        }
        // Each cell is its width plus one space of padding.
        let leading: usize = LEADING.iter().map(|w| w + 1).sum();
        let group: usize = per.iter().map(|c| c.2 + 1).sum();
        let gpus: usize = if self.telemetry {
            TELEMETRY_COLUMNS.iter().map(|c| c.2 + 1).sum()
        } else {
            0
        };
        let title = format!(
            "{}{:^group$}{:^group$}{:^gpus$}",
            " ".repeat(leading),
            "out-of-place",
            "in-place",
            if self.telemetry { "GPUs" } else { "" }
        );
        let lines = self.render(vec![names, units]);
        std::iter::once(title.trim_end().to_string())
            .chain(lines.lines().map(|l| l.trim_end().to_string()))
            .map(|l| format!("#{}\n", &l[1.min(l.len())..]))
            .collect()
    }

    fn placement(&self, m: &Option<Measurement>) -> Vec<String> {
        let n = self.placement_columns().len();
        let Some(m) = m else {
            return vec!["-".to_string(); n];
        };
        let time = if self.cputime {
            m.cpu_time_us.unwrap_or(m.time_us)
        } else {
            m.time_us
        };
        let mut cells = vec![
            format_time(time),
            format!("{:.2}", m.algbw_gbps),
            format!("{:.2}", m.busbw_gbps),
        ];
        if let Some(peak) = &self.peak {
            // With --groups, the slowest group's busbw against that group's own peak.
            let own = m
                .slowest_group
                .and_then(|i| m.groups.as_ref()?.get(i)?.peak_percent)
                .map(|percent| crate::topo::peak::PercentOfPeak {
                    percent,
                    above_peak: percent > 100.0,
                });
            cells.push(
                own.or_else(|| percent_of_peak(m.busbw_gbps, peak))
                    .map(|p| p.short())
                    .unwrap_or_else(|| "-".into()),
            );
        }
        cells.push(
            m.wrong
                .map(|w| w.to_string())
                .unwrap_or_else(|| "N/A".into()),
        );
        if self.energy {
            match &m.energy {
                Some(e) => cells.extend([
                    significant(e.joules_per_op * 1e3),
                    significant(e.gb_per_joule),
                ]),
                None => cells.extend(["-".to_string(), "-".to_string()]),
            }
        }
        if self.stats {
            match &m.stats {
                Some(s) => cells.extend([
                    format_time(s.p50_us),
                    format_time(s.p99_us),
                    format!("{:.1}", s.cv_percent),
                ]),
                None => cells.extend(["-".to_string(), "-".to_string(), "-".to_string()]),
            }
        }
        if self.per_iteration {
            match &m.stats {
                Some(s) => cells.extend([
                    format_time(s.min_us),
                    format_time(s.max_us),
                    format_time(s.p99_us),
                    format!("{:.2}", s.cv_percent),
                ]),
                None => cells.extend(std::iter::repeat_n("-".to_string(), 4)),
            }
        }
        cells
    }

    /// One table line for a measured row.
    pub fn line(&self, row: &Row) -> String {
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
        record.extend(self.placement(&row.out_of_place));
        record.extend(self.placement(&row.in_place));
        if self.telemetry {
            record.extend(row.telemetry_cells());
        }
        if self.algo {
            // N/A where the library does not tell, as rccl-tests prints it.
            record.extend(match &row.algorithm {
                Some(a) => [
                    a.algorithm.clone(),
                    a.protocol.clone(),
                    a.channels.to_string(),
                ],
                None => ["N/A".to_string(), "N/A".to_string(), "N/A".to_string()],
            });
        }
        if self.timestamps {
            record.push(
                crate::ffi::clock::local_time(super::document::unix_now_s()).unwrap_or_default(),
            );
        }
        if self.groups {
            record.push(
                row.layout
                    .as_ref()
                    .map_or_else(|| "-".into(), |l| l.label.clone()),
            );
        }
        self.render(vec![record]) + "\n"
    }
}

/// Three significant digits without an exponent down to 0.001 (energies and efficiencies span
/// decades between a small and a large size).
pub fn significant(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        let decimals = (2.0 - a.log10().floor()) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.2e}")
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

/// The comment line under an all_to_allv row: its traffic's phase and source, the imbalance, and the
/// range of every rank's sent and received bytes (a `#` line, so nccl-tests parsers skip it).
pub fn traffic_line(t: &crate::traffic::TrafficReport) -> String {
    let range = |v: &[u64]| {
        let (lo, hi) = (v.iter().min(), v.iter().max());
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo == hi => format!("{lo} B"),
            (Some(lo), Some(hi)) => format!("{lo} to {hi} B"),
            _ => "-".into(),
        }
    };
    format!(
        "#   ^ {}{}: imbalance {:.3} (busiest rank's bytes over the mean); each rank sends {}, receives {}\n",
        t.phase.as_deref().map(|p| format!("{p}, ")).unwrap_or_default(),
        t.source,
        t.imbalance,
        range(&t.rank_sent_bytes),
        range(&t.rank_received_bytes)
    )
}

/// The title line printed before a collective's rows.
pub fn collective_title(row: &Row) -> String {
    if row.layout.is_some() {
        // One title over every layout, so a size's layouts stay adjacent.
        return format!(
            "#\n# {} (--groups: every group of a layout at once; each row is its slowest group; {})\n",
            row.collective, row.path
        );
    }
    let mut title = format!(
        "#\n# {} ({} ranks, bus factor {:.4}, {})\n",
        row.collective, row.ranks, row.bus_factor, row.path
    );
    if row.bus_factor == 0.0 {
        title.push_str("# (one rank: busbw is 0, there is no bus to measure)\n");
    }
    title
}

/// nccl-tests' NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY lines for one all_to_allv row, once per placement
/// measured, in its format: the traffic's mode and the placement's time, then each rank's bytes and
/// bandwidths (its own max(sent, received) over the row's time; busbw x (n-1)/n). `total_bytes` is the
/// size column.
pub fn alltoallv_summary(row: &Row) -> String {
    let Some(t) = &row.traffic else {
        return String::new();
    };
    let n = t.rank_sent_bytes.len();
    let factor = if n > 0 {
        (n as f64 - 1.0) / n as f64
    } else {
        0.0
    };
    let mode = match t.source.strip_prefix("spread ") {
        Some(spread) if spread.parse::<f64>().is_ok() => format!(
            "mode=generated nranks={n} total_bytes={} spread={:.3}",
            row.size_bytes,
            spread.parse::<f64>().unwrap_or(1.0)
        ),
        _ => {
            let scale = t
                .source
                .split("scale ")
                .nth(1)
                .and_then(|v| v.trim_end_matches(')').parse::<f64>().ok())
                .unwrap_or(1.0);
            format!("mode=matrix nranks={n} matrix_dim={n} scale={scale:.3}")
        }
    };
    let mut out = String::new();
    for m in [&row.out_of_place, &row.in_place].into_iter().flatten() {
        out.push_str(&format!(
            "# NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY: {mode} time_usec={:.2}\n",
            m.time_us
        ));
        for (rank, (&sent, &received)) in t
            .rank_sent_bytes
            .iter()
            .zip(&t.rank_received_bytes)
            .enumerate()
        {
            let algbw = sent.max(received) as f64 / 1e3 / m.time_us;
            out.push_str(&format!(
                "#   rank={rank} send_bytes={sent} recv_bytes={received} alg_bw={algbw:.2} bus_bw={:.2}\n",
                algbw * factor
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::dtype::{DataType, ReduceOp};

    fn row(busbw: f64) -> Row {
        let m = Measurement {
            time_us: 12.5,
            algbw_gbps: busbw / 1.5,
            busbw_gbps: busbw,
            wrong: Some(0),
            check_skipped: None,
            iterations: 20,
            stats: None,
            rank_time_us: vec![12.5; 4],
            rank_wrong: Vec::new(),
            groups: None,
            slowest_group: None,
            iteration_times_us: None,
            rank_iteration_times_us: None,
            cpu_time_us: None,
            energy: None,
        };
        Row {
            collective: Collective::AllReduce,
            dtype: DataType::Float,
            op: Some(ReduceOp::Sum),
            root: None,
            size_bytes: 1 << 20,
            count: 1 << 18,
            ranks: 4,
            cycle: 0,
            bus_factor: 1.5,
            path: "native".into(),
            out_of_place: Some(m.clone()),
            in_place: Some(m),
            telemetry: None,
            layout: None,
            traffic: None,
            algorithm: None,
        }
    }

    #[test]
    fn cputime_per_iteration_and_timestamp_columns_say_what_nccl_tests_does() {
        let columns = Columns {
            cputime: true,
            per_iteration: true,
            timestamps: true,
            ..Columns::default()
        };
        let heading = columns.heading();
        for name in ["cputime", "i_min", "i_max", "i_p99", "i_cv%", "timestamp"] {
            assert!(heading.contains(name), "{name} missing from {heading}");
        }
        assert!(!heading.contains(" time "), "{heading}");
        let mut r = row(90.0);
        r.out_of_place.as_mut().unwrap().cpu_time_us = Some(3.25);
        let line = columns.line(&r);
        let cells: Vec<&str> = line.split_whitespace().collect();
        // size count type redop root, then cputime first.
        assert_eq!(cells[5], "3.25", "{line}");
        // The timestamp ends the line: a date and a time.
        let n = cells.len();
        assert_eq!(cells[n - 2].len(), 10, "{line}");
        assert_eq!(cells[n - 1].len(), 8, "{line}");
    }

    #[test]
    fn lines_align_with_the_heading() {
        for layout in [
            Columns::default(),
            Columns {
                peak: Some(Peak::from_override(100.0)),
                stats: true,
                telemetry: true,
                energy: true,
                algo: true,
                ..Columns::default()
            },
            Columns {
                groups: true,
                ..Columns::default()
            },
            // nccl-tests' -C 1, -I 1 and -S 1 columns.
            Columns {
                cputime: true,
                per_iteration: true,
                timestamps: true,
                algo: true,
                ..Columns::default()
            },
        ] {
            let heading = layout.heading();
            let line = layout.line(&row(90.0));
            let width = |s: &str| s.lines().map(|l| l.trim_end().len()).max().unwrap();
            assert_eq!(
                heading.lines().nth(1).unwrap().trim_end().len(),
                line.trim_end().len(),
                "{heading}{line}"
            );
            assert!(width(&heading) <= line.len());
        }
    }

    #[test]
    fn percent_of_peak_beside_busbw_and_marked_above_the_peak() {
        let layout = Columns {
            peak: Some(Peak::from_override(100.0)),
            ..Columns::default()
        };
        assert!(layout.heading().contains("%peak"));
        let cells: Vec<String> = layout
            .line(&row(90.0))
            .split_whitespace()
            .map(String::from)
            .collect();
        // size count type redop root | time algbw busbw %peak #wrong
        assert_eq!(cells[7], "90.00");
        assert_eq!(cells[8], "90%");
        assert!(layout.line(&row(112.0)).contains("112%*"));
        assert!(!Columns::default().heading().contains("%peak"));
    }

    #[test]
    fn energy_columns_follow_wrong_where_a_counter_was_read() {
        let layout = Columns {
            energy: true,
            ..Columns::default()
        };
        assert!(layout.heading().contains("(mJ/op)") && layout.heading().contains("(GB/J)"));
        let mut r = row(90.0);
        // 4 ranks at 0.25 J over 100 operations of 1 MiB: 10 mJ per operation for the job, 2.5 mJ per
        // rank, 1048576 / 2.5e-3 / 1e9 = 0.42 GB per joule.
        r.out_of_place.as_mut().unwrap().energy =
            crate::report::document::Energy::from_ranks(vec![Some(0.25); 4], 100, 1 << 20);
        let cells: Vec<String> = layout
            .line(&r)
            .split_whitespace()
            .map(String::from)
            .collect();
        // size count type redop root | time algbw busbw #wrong energy eff | in-place ...
        assert_eq!(cells[9], "10.0");
        assert_eq!(cells[10], "0.419");
        assert_eq!(significant(0.000230117), "2.30e-4");
        assert_eq!(significant(0.0258), "0.0258");
        assert_eq!(significant(2278.35), "2278");
        assert_eq!(cells[15], "-", "in-place read no counter");
        assert!(!Columns::default().heading().contains("GB/J"));
    }

    #[test]
    fn minus_a_names_the_librarys_choice_or_says_n_a() {
        let layout = Columns {
            algo: true,
            ..Columns::default()
        };
        let heading = layout.heading();
        assert!(
            heading.contains("algo") && heading.contains("proto") && heading.contains("channels")
        );
        let cells = |r: &Row| -> Vec<String> {
            layout
                .line(r)
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        let mut chosen = row(90.0);
        chosen.algorithm = Some(crate::backend::AlgoChoice {
            algorithm: "RING".into(),
            protocol: "LL128".into(),
            channels: 32,
        });
        assert_eq!(cells(&chosen)[13..], ["RING", "LL128", "32"]);
        assert_eq!(cells(&row(90.0))[13..], ["N/A", "N/A", "N/A"]);
    }
}
