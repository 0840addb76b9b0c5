//! `--csv` on a recorded run: a header, one line per (row, placement), the JSON's numbers exactly, and
//! every line on disk as soon as its row is written.

use collbench::report::csv::{CsvWriter, COLUMNS};
use collbench::report::json;
use std::path::Path;

#[test]
fn every_measurement_of_a_recorded_run_round_trips() {
    let doc =
        json::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/base_4ranks.json"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.csv");
    let mut writer = CsvWriter::create(&path).unwrap();
    let mut expected_lines = 1;
    for row in &doc.rows {
        writer.row(row).unwrap();
        expected_lines += row.out_of_place.is_some() as usize + row.in_place.is_some() as usize;
        // Already on disk while the writer is open.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), expected_lines);
    }
    drop(writer);

    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    let measurements = doc.rows.iter().flat_map(|r| {
        [("out_of_place", &r.out_of_place), ("in_place", &r.in_place)]
            .into_iter()
            .filter_map(move |(p, m)| m.as_ref().map(|m| (r, p, m)))
    });
    for ((row, placement, m), line) in measurements.zip(lines) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), COLUMNS.len(), "{line}");
        assert_eq!(f[col("collective")], row.collective.name());
        assert_eq!(f[col("size_bytes")].parse::<u64>().unwrap(), row.size_bytes);
        assert_eq!(f[col("ranks")].parse::<usize>().unwrap(), row.ranks);
        assert_eq!(f[col("placement")], placement);
        assert_eq!(f[col("time_us")].parse::<f64>().unwrap(), m.time_us);
        assert_eq!(f[col("busbw_gbps")].parse::<f64>().unwrap(), m.busbw_gbps);
        assert_eq!(f[col("wrong")].parse::<u64>().ok(), m.wrong);
        let stats = m.stats.as_ref().unwrap();
        assert_eq!(f[col("p99_us")].parse::<f64>().unwrap(), stats.p99_us);
        assert_eq!(
            f[col("cv_percent")].parse::<f64>().unwrap(),
            stats.cv_percent
        );
    }
}
