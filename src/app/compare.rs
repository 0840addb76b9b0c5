//! `collbench compare BASE.json NEW.json`: the two files read (collbench's, or nccl-tests' JSON or stdout
//! log: report/formats.rs), compared (src/fleet/compare.rs), the
//! table printed and the report written; exit 9 on a regression.

use crate::cli::compare::CompareArgs;
use crate::error::{ExitCode, Result};
use crate::fleet::compare::{compare, parse_tolerance, render, write_json};
use crate::report::formats;

pub fn main(args: &CompareArgs) -> i32 {
    match run(args) {
        Ok(code) => code.code(),
        Err(e) => super::launch::report_error(&e),
    }
}

fn run(args: &CompareArgs) -> Result<ExitCode> {
    let tolerance = parse_tolerance(&args.tolerance)?;
    let base = formats::read(&args.base)?;
    let new = formats::read(&args.new)?;
    let mut report = compare(
        &base.doc,
        &args.base.display().to_string(),
        &new.doc,
        &args.new.display().to_string(),
        tolerance,
    )?;
    // What reading nccl-tests' output made of it (columns, a run cut short, rows left out).
    for loaded in [&base, &new] {
        if loaded.format.from_nccl_tests() {
            report.notes.extend(loaded.doc.notes.iter().cloned());
        }
    }
    print!("{}", render(&report));
    if let Some(out) = &args.json {
        write_json(out, &report)?;
    }
    Ok(report.exit_code())
}
