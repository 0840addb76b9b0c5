//! `collbench compare BASE.json NEW.json`: the two files read, compared (src/fleet/compare.rs), the
//! table printed and the report written; exit 9 on a regression.

use crate::cli::compare::CompareArgs;
use crate::error::{ExitCode, Result};
use crate::fleet::compare::{compare, parse_tolerance, render, write_json};
use crate::report::json;

pub fn main(args: &CompareArgs) -> i32 {
    match run(args) {
        Ok(code) => code.code(),
        Err(e) => super::launch::report_error(&e),
    }
}

fn run(args: &CompareArgs) -> Result<ExitCode> {
    let tolerance = parse_tolerance(&args.tolerance)?;
    let base = json::read(&args.base)?;
    let new = json::read(&args.new)?;
    let report = compare(
        &base,
        &args.base.display().to_string(),
        &new,
        &args.new.display().to_string(),
        tolerance,
    )?;
    print!("{}", render(&report));
    if let Some(out) = &args.json {
        write_json(out, &report)?;
    }
    Ok(report.exit_code())
}
