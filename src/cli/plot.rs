//! `collbench plot`'s command line.

pub use crate::fleet::plot::PlotPlacement;
use clap::Args;
use std::path::PathBuf;

/// Plot one or more collbench results files (written by --json): busbw and time against size.
#[derive(Debug, Args)]
#[command(
    after_help = "The output format follows the file name: .svg or .png.\nExit codes: 0 written, 2 usage error or a file that is not a collbench results file, 10 a file could not be read or written."
)]
pub struct PlotArgs {
    /// Results files; each becomes one line per collective.
    #[arg(value_name = "RUN.json", required = true)]
    pub runs: Vec<PathBuf>,
    /// The picture to write: FILE.svg or FILE.png.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Peak bus bandwidth in GB/s to draw as a line (default: the peak recorded in the runs, if any).
    #[arg(long, value_name = "GBPS")]
    pub peak: Option<f64>,
    /// Which placement to draw.
    #[arg(long, value_enum, default_value_t = PlotPlacement::OutOfPlace)]
    pub placement: PlotPlacement,
    /// Draw only these collectives (repeat the flag); default every collective in the runs.
    #[arg(long = "collective", value_name = "NAME")]
    pub collectives: Vec<String>,
}
