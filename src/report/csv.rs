//! The `--csv` file: one line per (row, placement) under a header line, appended and flushed as each row
//! is measured so that a crash keeps every row already measured. No field can hold a comma, quote or
//! newline (names, numbers and fixed words only), so no quoting is needed and no csv crate either.

use crate::error::{Error, Result};
use crate::report::document::{Measurement, Row};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The columns, in order (docs/FLEET.md describes each).
pub const COLUMNS: [&str; 20] = [
    "collective",
    "dtype",
    "op",
    "root",
    "size_bytes",
    "count",
    "ranks",
    "cycle",
    "placement",
    "time_us",
    "algbw_gbps",
    "busbw_gbps",
    "wrong",
    "min_us",
    "p50_us",
    "p95_us",
    "p99_us",
    "max_us",
    "stdev_us",
    "cv_percent",
];

/// Writes the header at creation, then one line per placement of each row.
pub struct CsvWriter {
    path: PathBuf,
    file: File,
}

fn number(v: f64) -> String {
    // Rust's shortest round-trip form; a non-finite value is left empty rather than written as "NaN".
    if v.is_finite() {
        v.to_string()
    } else {
        String::new()
    }
}

fn optional<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The CSV lines of one row (one per measured placement), each ending in a newline.
pub fn lines(row: &Row) -> String {
    let mut out = String::new();
    for (placement, m) in [
        ("out_of_place", &row.out_of_place),
        ("in_place", &row.in_place),
    ] {
        let Some(m) = m else { continue };
        out.push_str(&line(row, placement, m));
        out.push('\n');
    }
    out
}

fn line(row: &Row, placement: &str, m: &Measurement) -> String {
    let stats = m.stats.as_ref();
    let stat = |f: fn(&crate::report::document::Stats) -> f64| {
        stats.map(f).map(number).unwrap_or_default()
    };
    let fields = [
        row.collective.name().to_string(),
        row.dtype.name().to_string(),
        optional(row.op.map(|o| o.name())),
        optional(row.root),
        row.size_bytes.to_string(),
        row.count.to_string(),
        row.ranks.to_string(),
        row.cycle.to_string(),
        placement.to_string(),
        number(m.time_us),
        number(m.algbw_gbps),
        number(m.busbw_gbps),
        optional(m.wrong),
        stat(|s| s.min_us),
        stat(|s| s.p50_us),
        stat(|s| s.p95_us),
        stat(|s| s.p99_us),
        stat(|s| s.max_us),
        stat(|s| s.stdev_us),
        stat(|s| s.cv_percent),
    ];
    fields.join(",")
}

impl CsvWriter {
    /// Creates (or truncates) the file and writes the header line.
    pub fn create(path: &Path) -> Result<CsvWriter> {
        let file = File::create(path).map_err(|e| {
            Error::io(
                format!("--csv {}: cannot create the file", path.display()),
                e,
            )
        })?;
        let mut writer = CsvWriter {
            path: path.to_path_buf(),
            file,
        };
        writer.append(&(COLUMNS.join(",") + "\n"))?;
        Ok(writer)
    }

    fn append(&mut self, text: &str) -> Result<()> {
        let context = || format!("--csv {}: cannot write", self.path.display());
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(context(), e))?;
        self.file.flush().map_err(|e| Error::io(context(), e))
    }

    /// Appends the row's lines and flushes them to the file.
    pub fn row(&mut self, row: &Row) -> Result<()> {
        let text = lines(row);
        self.append(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::report::testdata::row;

    #[test]
    fn one_line_per_placement_with_every_column() {
        let mut r = row(Collective::AllReduce, 1 << 20, 4, 10.0);
        r.in_place.as_mut().unwrap().stats = None;
        r.in_place.as_mut().unwrap().wrong = None;
        let text = lines(&r);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(lines.len(), 2);
        for l in &lines {
            assert_eq!(l.len(), COLUMNS.len());
        }
        let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
        let out = &lines[0];
        assert_eq!(out[col("collective")], "all_reduce");
        assert_eq!(out[col("op")], "sum");
        assert_eq!(out[col("root")], "");
        assert_eq!(out[col("size_bytes")], "1048576");
        assert_eq!(out[col("placement")], "out_of_place");
        assert_eq!(out[col("time_us")].parse::<f64>().unwrap(), 10.0);
        let busbw: f64 = out[col("busbw_gbps")].parse().unwrap();
        assert_eq!(busbw, r.out_of_place.as_ref().unwrap().busbw_gbps);
        assert_eq!(out[col("p50_us")].parse::<f64>().unwrap(), 10.0);
        let inp = &lines[1];
        assert_eq!(inp[col("placement")], "in_place");
        assert_eq!(inp[col("wrong")], "");
        assert_eq!(inp[col("cv_percent")], "");
    }

    #[test]
    fn rows_reach_the_file_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.csv");
        let mut w = CsvWriter::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            COLUMNS.join(",") + "\n"
        );
        w.row(&row(Collective::Broadcast, 4096, 2, 3.5)).unwrap();
        // Read while the writer is still open: what a crash would leave.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("broadcast,float,,0,4096,"));
        assert!(CsvWriter::create(&dir.path().join("missing/dir/x.csv")).is_err());
    }
}
