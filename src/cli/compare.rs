//! `collbench compare`'s command line.

use clap::Args;
use std::path::PathBuf;

/// Compare two collbench results files (written by --json) and report regressions.
///
/// Rows are matched by collective, data type, operator, root, size, placement and rank count. A row is a
/// regression when its busbw fell (or its time rose) by more than the tolerance AND the change of time
/// exceeds twice the combined per-iteration standard deviation of both runs (when both carry
/// statistics), so that noise alone is not reported as a regression.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 no regression, 2 usage error or files that cannot be compared, 9 regression found, 10 a file could not be read or written."
)]
pub struct CompareArgs {
    /// The reference run.
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,
    /// The run to judge against it.
    #[arg(value_name = "NEW.json")]
    pub new: PathBuf,
    /// Changes up to this much are not regressions: a percentage such as 5% (or 5).
    #[arg(long, default_value = "5%", value_name = "PERCENT")]
    pub tolerance: String,
    /// Also write the comparison as JSON to this file.
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
}
