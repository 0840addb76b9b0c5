//! `collbench plot RUN.json [MORE.json ...] -o FILE.svg|.png`: the runs read, their series and peaks
//! chosen, and the picture drawn (src/fleet/plot/).

use crate::cli::plot::PlotArgs;
use crate::collective::Collective;
use crate::error::{Error, ExitCode, Result};
use crate::fleet::plot::{labels, read_run, render, series, PlottedRun};

pub fn main(args: &PlotArgs) -> i32 {
    match run(args) {
        Ok(()) => ExitCode::Success.code(),
        Err(e) => super::launch::report_error(&e),
    }
}

fn run(args: &PlotArgs) -> Result<()> {
    let only = args
        .collectives
        .iter()
        .map(|c| {
            c.parse::<Collective>()
                .map_err(|e| Error::Usage(format!("--collective: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = args.peak {
        if !(p.is_finite() && p > 0.0) {
            return Err(Error::Usage(format!(
                "--peak {p}: give the peak bus bandwidth in GB/s, a number above 0"
            )));
        }
    }
    let names = labels(&args.runs);
    let mut runs = Vec::new();
    for (path, label) in args.runs.iter().zip(names) {
        let (doc, peak_gbps) = read_run(path)?;
        runs.push(PlottedRun {
            label,
            doc,
            peak_gbps,
        });
    }
    let peaks: Vec<(String, f64)> = match args.peak {
        Some(p) => vec![(format!("peak {p} GB/s"), p)],
        None => {
            let mut found: Vec<(String, f64)> = Vec::new();
            for r in &runs {
                if let Some(p) = r.peak_gbps {
                    if !found.iter().any(|f| f.1 == p) {
                        found.push((format!("peak {p} GB/s ({})", r.label), p));
                    }
                }
            }
            found
        }
    };
    let lines = series(&runs, args.placement, &only);
    render(&args.output, &lines, &peaks)
}
