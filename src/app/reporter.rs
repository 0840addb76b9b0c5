//! Rank 0's reporters, fed row by row: the terminal table, the JSON document, the CSV file and the
//! progress bar.

use crate::engine::RowSink;
use crate::error::{Error, Result};
use crate::fleet::csv::CsvWriter;
use crate::report::model::{Row, RunDocument, RunStatus};
use crate::report::{json, table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

pub struct Reporter {
    pub doc: RunDocument,
    json: Option<json::JsonWriter>,
    csv: Option<CsvWriter>,
    layout: table::Layout,
    last_title: Option<String>,
    progress: Option<ProgressBar>,
}

impl Reporter {
    pub fn new(
        doc: RunDocument,
        json_path: Option<&std::path::Path>,
        csv_path: Option<&std::path::Path>,
        layout: table::Layout,
        total_rows: Option<u64>,
        progress: bool,
    ) -> Result<Reporter> {
        let csv = csv_path.map(CsvWriter::create).transpose()?;
        // Only where a person watches: a bar in a log file or a pipe is noise.
        let progress = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(total_rows, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows, {eta} left: {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let reporter = Reporter {
            doc,
            json: json_path.map(json::JsonWriter::new),
            csv,
            layout,
            last_title: None,
            progress,
        };
        reporter.save()?;
        Ok(reporter)
    }

    pub fn save(&self) -> Result<()> {
        self.json.as_ref().map_or(Ok(()), |j| j.write(&self.doc))
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

    /// Records why the run stopped; the measured rows are already on disk.
    pub fn fail(&mut self, error: &Error) {
        self.finish_progress();
        self.doc.status = RunStatus::Failed;
        self.doc.error = Some(error.to_string());
        let _ = self.save();
    }
}

fn print_flushed(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

impl RowSink for Reporter {
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
            out.push_str(&self.layout.heading());
            self.last_title = Some(title);
        }
        out.push_str(&self.layout.line(row));
        self.print(&out);
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
        if let Some(csv) = &mut self.csv {
            csv.row(row)?;
        }
        self.doc.rows.push(row.clone());
        self.save()
    }
}
