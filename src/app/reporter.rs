//! Rank 0's reporters, fed row by row: the terminal table, the JSON document, the CSV file and the
//! progress bar.

use crate::engine::RowSink;
use crate::error::{Error, Result};
use crate::report::csv::CsvWriter;
use crate::report::document::{Row, RunDocument};
use crate::report::json::JsonFormat;
use crate::report::nccl_tests::export::NcclTestsFile;
use crate::report::rccl_results::{JobShape, RcclFormat, RcclResults};
use crate::report::table;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

pub struct Reporter {
    pub doc: RunDocument,
    /// What `-J` writes: collbench's document or nccl-tests' (with ours inside).
    format: JsonFormat,
    csv: Option<CsvWriter>,
    /// -Z/-X: rccl-tests' own results file.
    rccl: Option<RcclResults>,
    columns: table::Columns,
    last_title: Option<String>,
    progress: Option<ProgressBar>,
}

impl Reporter {
    /// Rank 0 at the start of the run, its document already on disk (`--json`, app/document.rs).
    pub fn start(
        doc: RunDocument,
        format: JsonFormat,
        csv_path: Option<&std::path::Path>,
        rccl: Option<&(RcclFormat, std::path::PathBuf)>,
    ) -> Result<Reporter> {
        let csv = csv_path.map(CsvWriter::create).transpose()?;
        let rccl = rccl
            .map(|(format, path)| RcclResults::create(*format, path))
            .transpose()?;
        Ok(Reporter {
            doc,
            format,
            csv,
            rccl,
            columns: table::Columns::default(),
            last_title: None,
            progress: None,
        })
    }

    /// The table's columns and the progress bar, once the sweep is known.
    pub fn begin_table(
        &mut self,
        columns: table::Columns,
        total_rows: Option<u64>,
        progress: bool,
    ) {
        self.columns = columns;
        // Only where a person watches: a bar in a log file or a pipe is noise.
        self.progress = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(total_rows, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows, {eta} left: {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
    }

    pub fn save(&mut self) -> Result<()> {
        match self.format {
            JsonFormat::Collbench => super::record::save(&mut self.doc),
            JsonFormat::NcclTests => {
                // The record keeps the life it saved (heartbeat, another rank's ending): take it back.
                let mut file = NcclTestsFile::new(self.doc.clone());
                let saved = super::record::save(&mut file);
                self.doc = file.0;
                saved
            }
        }
    }

    /// Prints text without tearing the progress bar.
    pub fn print(&self, text: &str) {
        match &self.progress {
            Some(bar) => bar.suspend(|| print_flushed(text)),
            None => print_flushed(text),
        }
    }

    pub fn finish_progress(&mut self) {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
    }

    /// Completes rccl-tests' results file (-Z json is written now), when there is one.
    pub fn finish_rccl_results(&mut self) -> Result<()> {
        match self.rccl.as_mut() {
            Some(r) => r.finish(),
            None => Ok(()),
        }
    }

    /// The job's shape in rccl-tests' terms, from the ranks the document lists.
    fn job_shape(&self) -> JobShape {
        let hosts: Vec<&str> = self
            .doc
            .header
            .ranks
            .iter()
            .map(|r| r.host.as_str())
            .collect();
        JobShape::of(&hosts, 1)
    }

    /// Records why the run stopped, with its exit code; the measured rows are already on disk.
    pub fn fail(&mut self, error: &Error, rank: usize) {
        self.finish_progress();
        let code = error.exit_code().code();
        // Which rank failed is known when the error says so; a usage error is every rank's.
        let failed_rank = match error {
            Error::Usage(_) => None,
            _ => failing_rank(error).or(Some(rank)),
        };
        self.doc
            .header
            .life
            .fail(&error.to_string(), code, failed_rank);
        let _ = self.save();
        // The rows measured before the failure, as rccl-tests would have left none.
        let _ = self.finish_rccl_results();
    }
}

/// The rank an error names, when it names one.
fn failing_rank(error: &Error) -> Option<usize> {
    match error {
        Error::Library { rank, .. } | Error::Timeout { rank, .. } => Some(*rank),
        _ => None,
    }
}

fn print_flushed(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

impl RowSink for Reporter {
    fn note(&mut self, text: &str) {
        self.print(&format!("# Note: {text}\n"));
        self.doc.notes.push(text.to_string());
    }

    fn starting(&mut self, what: &str) {
        if let Some(bar) = &self.progress {
            bar.set_message(what.to_string());
        }
    }

    fn row(&mut self, row: &Row) -> Result<()> {
        let title = table::collective_title(row);
        let mut out = String::new();
        if self.last_title.as_deref() != Some(&title) {
            out.push_str(&title);
            out.push_str(&self.columns.heading());
            self.last_title = Some(title);
        }
        out.push_str(&self.columns.line(row));
        if let Some(t) = &row.traffic {
            out.push_str(&table::traffic_line(t));
            if self.columns.alltoallv_summary {
                out.push_str(&table::alltoallv_summary(row));
            }
        }
        self.print(&out);
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
        if let Some(csv) = &mut self.csv {
            csv.row(row)?;
        }
        let shape = self.job_shape();
        if let Some(rccl) = &mut self.rccl {
            rccl.row(row, shape)?;
        }
        self.doc.rows.push(row.clone());
        self.save()
    }
}
