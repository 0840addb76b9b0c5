//! `collbench compare BASE.json NEW.json`: matches the rows of two runs, reports the change of time and
//! busbw of each, and calls a change a regression only when it exceeds both the tolerance and the
//! measured noise (docs/FLEET.md).

use crate::error::{Error, ExitCode, Result};
use crate::fleet::slow::measurements;
use crate::report::document::{RunDocument, RunStatus, SCHEMA_VERSION};
use crate::size::HumanSize;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

/// What the comparison concluded for one matched measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Within the tolerance.
    Same,
    /// Beyond the tolerance but not beyond the measured noise.
    WithinNoise,
    Improvement,
    Regression,
    /// A time that is zero, negative or not a number in either file.
    NotComparable,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::WithinNoise => "noise",
            Change::Improvement => "better",
            Change::Regression => "REGRESSION",
            Change::NotComparable => "not comparable",
        }
    }
}

/// One matched measurement of both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    pub collective: String,
    pub dtype: String,
    pub op: Option<String>,
    pub root: Option<usize>,
    pub size_bytes: u64,
    pub placement: String,
    pub ranks: usize,
    pub base_time_us: f64,
    pub new_time_us: f64,
    /// (new - base) / base, percent.
    pub time_change_percent: Option<f64>,
    pub base_busbw_gbps: f64,
    pub new_busbw_gbps: f64,
    /// None when the base busbw is 0 (e.g. all_reduce on one rank).
    pub busbw_change_percent: Option<f64>,
    /// 2 x sqrt(base stdev² + new stdev²) of per-iteration times; None without statistics in both.
    pub noise_us: Option<f64>,
    pub change: Change,
}

/// The whole comparison; what `--json OUT` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub base: String,
    pub new: String,
    pub tolerance_percent: f64,
    pub compared: Vec<Compared>,
    /// Measurements of one file without a match in the other, described as in the table.
    pub only_in_base: Vec<String>,
    pub only_in_new: Vec<String>,
    pub regressions: usize,
    pub improvements: usize,
    /// Things worth knowing about the inputs (an unfinished run, several cycles averaged).
    pub notes: Vec<String>,
}

impl CompareReport {
    pub fn exit_code(&self) -> ExitCode {
        if self.regressions > 0 {
            ExitCode::Regression
        } else {
            ExitCode::Success
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    collective: String,
    dtype: String,
    op: Option<String>,
    root: Option<usize>,
    size_bytes: u64,
    placement: &'static str,
    ranks: usize,
}

impl Key {
    fn describe(&self) -> String {
        let mut parts = vec![self.collective.clone(), self.dtype.clone()];
        parts.extend(self.op.clone());
        if let Some(r) = self.root {
            parts.push(format!("root {r}"));
        }
        parts.push(HumanSize(self.size_bytes).to_string());
        parts.push(self.placement.to_string());
        parts.push(format!("{} ranks", self.ranks));
        parts.join(" ")
    }
}

/// The measurements of one key: several when the run had several cycles (-N).
#[derive(Debug, Default)]
struct Pooled {
    times: Vec<f64>,
    busbws: Vec<f64>,
    stdevs: Vec<Option<f64>>,
}

impl Pooled {
    fn time(&self) -> f64 {
        mean(&self.times)
    }
    fn busbw(&self) -> f64 {
        mean(&self.busbws)
    }
    /// The largest per-iteration stdev of the cycles: noise is not averaged away by repeating.
    fn stdev(&self) -> Option<f64> {
        self.stdevs
            .iter()
            .copied()
            .collect::<Option<Vec<f64>>>()
            .map(|s| s.into_iter().fold(0.0, f64::max))
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Keys in first-seen order, and their pooled measurements.
fn pool(doc: &RunDocument) -> (Vec<Key>, HashMap<Key, Pooled>) {
    let mut order = Vec::new();
    let mut pooled: HashMap<Key, Pooled> = HashMap::new();
    for (row, placement, m) in measurements(&doc.rows) {
        let key = Key {
            collective: row.collective.name().to_string(),
            dtype: row.dtype.name().to_string(),
            op: row.op.map(|o| o.name().to_string()),
            root: row.root,
            size_bytes: row.size_bytes,
            placement,
            ranks: row.ranks,
        };
        let entry = pooled.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Pooled::default()
        });
        entry.times.push(m.time_us);
        entry.busbws.push(m.busbw_gbps);
        entry.stdevs.push(m.stats.as_ref().map(|s| s.stdev_us));
    }
    (order, pooled)
}

/// Parses "5%", "5" or "0.5%" as a percentage in [0, 100).
pub fn parse_tolerance(text: &str) -> Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..100.0).contains(&v) => Ok(v),
        _ => Err(Error::Usage(format!(
            "--tolerance '{text}': give a percentage from 0 to below 100, e.g. --tolerance 5%"
        ))),
    }
}

fn percent_change(base: f64, new: f64) -> Option<f64> {
    (base.is_finite() && new.is_finite() && base > 0.0).then(|| 100.0 * (new - base) / base)
}

fn judge(
    base: &Pooled,
    new: &Pooled,
    tolerance: f64,
) -> (Option<f64>, Option<f64>, Option<f64>, Change) {
    let (bt, nt) = (base.time(), new.time());
    let time_change = percent_change(bt, nt);
    let busbw_change = percent_change(base.busbw(), new.busbw());
    let noise = match (base.stdev(), new.stdev()) {
        (Some(a), Some(b)) => Some(2.0 * (a * a + b * b).sqrt()),
        _ => None,
    };
    let Some(tc) = time_change.filter(|_| nt > 0.0) else {
        return (time_change, busbw_change, noise, Change::NotComparable);
    };
    let slower = tc > tolerance || busbw_change.is_some_and(|c| c < -tolerance);
    let faster = tc < -tolerance || busbw_change.is_some_and(|c| c > tolerance);
    let beyond_noise = noise.is_none_or(|n| (nt - bt).abs() > n);
    let change = match (slower, faster, beyond_noise) {
        (true, _, true) => Change::Regression,
        (false, true, true) => Change::Improvement,
        (true, _, false) | (_, true, false) => Change::WithinNoise,
        _ => Change::Same,
    };
    (time_change, busbw_change, noise, change)
}

fn configuration(doc: &RunDocument) -> String {
    let ranks: BTreeSet<usize> = doc.rows.iter().map(|r| r.ranks).collect();
    let mut collectives: Vec<&str> = Vec::new();
    for r in &doc.rows {
        if !collectives.contains(&r.collective.name()) {
            collectives.push(r.collective.name());
        }
    }
    let ranks: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
    format!(
        "{} on {} rank(s)",
        if collectives.is_empty() {
            "no rows".to_string()
        } else {
            collectives.join(" ")
        },
        if ranks.is_empty() {
            "no".to_string()
        } else {
            ranks.join(", ")
        }
    )
}

/// Compares two documents; refuses those that cannot be compared.
pub fn compare(
    base: &RunDocument,
    base_name: &str,
    new: &RunDocument,
    new_name: &str,
    tolerance_percent: f64,
) -> Result<CompareReport> {
    for (doc, name) in [(base, base_name), (new, new_name)] {
        if doc.header.schema_version != SCHEMA_VERSION {
            return Err(Error::Usage(format!(
                "{name} has schema_version {} but this collbench reads schema_version {SCHEMA_VERSION}: compare files written by the same collbench schema (re-run the benchmark with this version)",
                doc.header.schema_version
            )));
        }
    }
    let (base_keys, base_pool) = pool(base);
    let (new_keys, new_pool) = pool(new);
    let mut report = CompareReport {
        base: base_name.to_string(),
        new: new_name.to_string(),
        tolerance_percent,
        compared: Vec::new(),
        only_in_base: Vec::new(),
        only_in_new: Vec::new(),
        regressions: 0,
        improvements: 0,
        notes: Vec::new(),
    };
    for (doc, name) in [(base, base_name), (new, new_name)] {
        if doc.header.life.status != RunStatus::Complete {
            report.notes.push(format!(
                "{name} is not a complete run (status {:?}): only its measured rows are compared",
                doc.header.life.status
            ));
        }
        if doc.rows.iter().any(|r| r.cycle > 0) {
            report.notes.push(format!(
                "{name} holds several cycles (-N): each configuration's times are averaged over them"
            ));
        }
    }
    for key in &base_keys {
        let Some(n) = new_pool.get(key) else {
            report.only_in_base.push(key.describe());
            continue;
        };
        let b = &base_pool[key];
        let (time_change, busbw_change, noise, change) = judge(b, n, tolerance_percent);
        report.compared.push(Compared {
            collective: key.collective.clone(),
            dtype: key.dtype.clone(),
            op: key.op.clone(),
            root: key.root,
            size_bytes: key.size_bytes,
            placement: key.placement.to_string(),
            ranks: key.ranks,
            base_time_us: b.time(),
            new_time_us: n.time(),
            time_change_percent: time_change,
            base_busbw_gbps: b.busbw(),
            new_busbw_gbps: n.busbw(),
            busbw_change_percent: busbw_change,
            noise_us: noise,
            change,
        });
    }
    report.only_in_new = new_keys
        .iter()
        .filter(|k| !base_pool.contains_key(k))
        .map(Key::describe)
        .collect();
    if report.compared.is_empty() {
        return Err(Error::Usage(format!(
            "{base_name} and {new_name} have no configuration in common ({base_name}: {}; {new_name}: {}): compare runs of the same collectives, sizes, types and rank counts",
            configuration(base),
            configuration(new)
        )));
    }
    report.regressions = count(&report, Change::Regression);
    report.improvements = count(&report, Change::Improvement);
    Ok(report)
}

fn count(report: &CompareReport, change: Change) -> usize {
    report
        .compared
        .iter()
        .filter(|c| c.change == change)
        .count()
}

fn signed(v: Option<f64>) -> String {
    v.map(|p| format!("{p:+.1}%")).unwrap_or_else(|| "-".into())
}

/// The table and the lines that follow it.
pub fn render(report: &CompareReport) -> String {
    let mut builder = Builder::default();
    builder.push_record([
        "collective",
        "type",
        "redop",
        "root",
        "size",
        "placement",
        "ranks",
        "base time (us)",
        "new time (us)",
        "time",
        "base busbw (GB/s)",
        "new busbw (GB/s)",
        "busbw",
        "noise (us)",
        "verdict",
    ]);
    for c in &report.compared {
        builder.push_record([
            c.collective.clone(),
            c.dtype.clone(),
            c.op.clone().unwrap_or_else(|| "-".into()),
            c.root.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            HumanSize(c.size_bytes).to_string(),
            c.placement.clone(),
            c.ranks.to_string(),
            format!("{:.2}", c.base_time_us),
            format!("{:.2}", c.new_time_us),
            signed(c.time_change_percent),
            format!("{:.2}", c.base_busbw_gbps),
            format!("{:.2}", c.new_busbw_gbps),
            signed(c.busbw_change_percent),
            c.noise_us
                .map(|n| format!("{n:.2}"))
                .unwrap_or_else(|| "-".into()),
            c.change.word().to_string(),
        ]);
    }
    let mut table = builder.build();
    table
        .with(Style::sharp())
        .modify(Columns::new(7..14), Alignment::right());
    let mut out = format!("{table}\n");
    for (name, only) in [
        (&report.base, &report.only_in_base),
        (&report.new, &report.only_in_new),
    ] {
        if !only.is_empty() {
            out.push_str(&format!("Only in {name} ({}):\n", only.len()));
            for o in only {
                out.push_str(&format!("  {o}\n"));
            }
        }
    }
    for n in &report.notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    out.push_str(&format!(
        "{} regression(s), {} improvement(s) in {} matched measurement(s); tolerance {}%, noise 2 x combined per-iteration stdev\n",
        report.regressions,
        report.improvements,
        report.compared.len(),
        report.tolerance_percent
    ));
    out
}

/// Writes the comparison as JSON (`--json OUT`).
pub fn write_json(path: &Path, report: &CompareReport) -> Result<()> {
    let text = serde_json::to_vec_pretty(report).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| Error::io(format!("--json {}: cannot write", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::report::document::Row;
    use crate::report::testdata::{measurement, row};

    fn doc(rows: Vec<Row>) -> RunDocument {
        crate::report::testdata::document(rows)
    }

    fn one(time: f64, stdev: Option<f64>) -> RunDocument {
        let mut r = row(Collective::AllReduce, 1 << 20, 4, time);
        r.out_of_place = Some(measurement(1 << 20, 4, time, stdev));
        r.in_place = None;
        doc(vec![r])
    }

    #[test]
    fn a_run_against_itself_has_no_change() {
        let d = doc(vec![
            row(Collective::AllReduce, 1 << 20, 4, 10.0),
            row(Collective::AllGather, 1 << 20, 4, 20.0),
        ]);
        let r = compare(&d, "a", &d, "a", 5.0).unwrap();
        assert_eq!(r.compared.len(), 4);
        assert!(r.compared.iter().all(|c| c.change == Change::Same));
        assert_eq!(r.exit_code(), ExitCode::Success);
        assert!(r.only_in_base.is_empty() && r.only_in_new.is_empty());
    }

    #[test]
    fn slower_beyond_tolerance_and_noise_is_a_regression() {
        let r = compare(
            &one(100.0, Some(1.0)),
            "b",
            &one(120.0, Some(1.0)),
            "n",
            5.0,
        )
        .unwrap();
        let c = &r.compared[0];
        assert_eq!(c.change, Change::Regression);
        assert!((c.time_change_percent.unwrap() - 20.0).abs() < 1e-9);
        assert!(c.busbw_change_percent.unwrap() < -16.0);
        assert!((c.noise_us.unwrap() - 2.0 * 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(r.exit_code().code(), 9);
        assert!(render(&r).contains("REGRESSION"));
    }

    #[test]
    fn noisy_runs_do_not_regress() {
        // 20 % slower, but each run's iterations spread by 15 us: 2 x sqrt(2) x 15 = 42 > 20.
        let r = compare(
            &one(100.0, Some(15.0)),
            "b",
            &one(120.0, Some(15.0)),
            "n",
            5.0,
        )
        .unwrap();
        assert_eq!(r.compared[0].change, Change::WithinNoise);
        assert_eq!(r.exit_code(), ExitCode::Success);
    }

    #[test]
    fn tolerance_and_improvement() {
        let r = compare(
            &one(100.0, Some(0.1)),
            "b",
            &one(103.0, Some(0.1)),
            "n",
            5.0,
        )
        .unwrap();
        assert_eq!(r.compared[0].change, Change::Same);
        // Without stats the tolerance alone decides.
        let r = compare(&one(100.0, None), "b", &one(80.0, None), "n", 5.0).unwrap();
        assert_eq!(r.compared[0].change, Change::Improvement);
        assert_eq!(r.improvements, 1);
        let r = compare(&one(100.0, None), "b", &one(0.0, None), "n", 5.0).unwrap();
        assert_eq!(r.compared[0].change, Change::NotComparable);
    }

    #[test]
    fn unmatched_rows_are_listed_and_nothing_in_common_is_refused() {
        let base = doc(vec![
            row(Collective::AllReduce, 1 << 20, 4, 10.0),
            row(Collective::AllReduce, 2 << 20, 4, 20.0),
        ]);
        let new = doc(vec![
            row(Collective::AllReduce, 1 << 20, 4, 10.0),
            row(Collective::AllGather, 1 << 20, 4, 20.0),
        ]);
        let r = compare(&base, "b", &new, "n", 5.0).unwrap();
        assert_eq!(r.compared.len(), 2);
        assert_eq!(r.only_in_base.len(), 2);
        assert!(r.only_in_base[0].contains("2M"));
        assert!(r.only_in_new[0].starts_with("all_gather"));

        let other_ranks = doc(vec![row(Collective::AllReduce, 1 << 20, 2, 10.0)]);
        let e = compare(&base, "b", &other_ranks, "n", 5.0).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("on 4 rank(s)"), "{e}");
        assert!(e.to_string().contains("on 2 rank(s)"), "{e}");
    }

    #[test]
    fn other_schema_is_refused() {
        let mut old = one(1.0, None);
        old.header.schema_version = SCHEMA_VERSION + 1;
        let e = compare(&old, "old.json", &one(1.0, None), "n", 5.0).unwrap_err();
        assert!(e.to_string().contains("old.json has schema_version"), "{e}");
    }

    #[test]
    fn cycles_are_averaged() {
        let mut a = row(Collective::AllReduce, 1 << 20, 4, 10.0);
        let mut b = a.clone();
        b.cycle = 1;
        b.out_of_place = Some(measurement(1 << 20, 4, 30.0, Some(2.0)));
        a.in_place = None;
        b.in_place = None;
        let d = doc(vec![a, b]);
        let r = compare(&d, "b", &d, "n", 5.0).unwrap();
        assert_eq!(r.compared.len(), 1);
        assert_eq!(r.compared[0].base_time_us, 20.0);
        assert!((r.compared[0].noise_us.unwrap() - 2.0 * 8f64.sqrt()).abs() < 1e-9);
        assert!(r.notes[0].contains("cycles"));
    }

    #[test]
    fn tolerance_forms() {
        assert_eq!(parse_tolerance("5%").unwrap(), 5.0);
        assert_eq!(parse_tolerance(" 2.5 ").unwrap(), 2.5);
        for bad in ["-1%", "100", "x", ""] {
            let e = parse_tolerance(bad).unwrap_err();
            assert!(e.to_string().contains("--tolerance"));
        }
    }
}
