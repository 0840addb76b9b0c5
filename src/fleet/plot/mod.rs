//! `collbench plot RUN.json [MORE.json ...] -o FILE.svg|.png`: bus bandwidth and time against size on
//! log axes, one line per run and collective, with the peak bandwidth as a horizontal line when known;
//! where the runs recorded energy, a third panel draws busbw against each GPU's energy per operation,
//! each run labelled with the power limit it ran at (runs made at different limits side by side).
//! Text is drawn with the bundled font (fleet/font.rs): no fontconfig, no system fonts.

use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::report::document::{Measurement, RunDocument};
use crate::report::formats;
use crate::size::HumanSize;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fleet::font::{register_font, FAMILY};

/// Which placement a plot draws (`--placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlotPlacement {
    OutOfPlace,
    InPlace,
}

/// One line of the plot: a run's collective (with type, operator and root when the runs hold several).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// (size in bytes, busbw GB/s, time us), sizes ascending; several cycles averaged.
    pub points: Vec<(f64, f64, f64)>,
    /// (one GPU's millijoules per operation, busbw GB/s) at the sizes whose energy was read, sizes
    /// ascending; empty without an energy counter.
    pub energy: Vec<(f64, f64)>,
}

/// A results file read for plotting: the typed document and the peak it records, if any.
pub struct PlottedRun {
    pub label: String,
    pub doc: RunDocument,
    pub peak_gbps: Option<f64>,
}

/// Reads a results file of any format collbench knows (its own, nccl-tests' JSON or stdout log) as
/// the typed document and its recorded peak.
pub fn read_run(path: &Path) -> Result<(RunDocument, Option<f64>)> {
    let loaded = formats::read(path)?;
    Ok((loaded.doc, loaded.peak_gbps))
}

fn measurement_of(
    row: &crate::report::document::Row,
    placement: PlotPlacement,
) -> Option<&Measurement> {
    match placement {
        PlotPlacement::OutOfPlace => row.out_of_place.as_ref(),
        PlotPlacement::InPlace => row.in_place.as_ref(),
    }
}

/// The busbw and time values measured at one size (several with several cycles), and the (energy,
/// busbw) pairs where energy was read.
type SizeValues = (Vec<f64>, Vec<f64>, Vec<(f64, f64)>);

/// " (limit 300 W)", or a range over the ranks, from the telemetry header: the power limit in force
/// when the run started (collbench never sets it). Empty where no rank read it.
fn power_limit_label(doc: &RunDocument) -> String {
    let limits: Vec<f64> = doc
        .telemetry
        .iter()
        .flat_map(|t| &t.ranks)
        .filter_map(|r| r.limits.as_ref()?.power_limit_w)
        .collect();
    let lo = limits.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = limits.iter().copied().fold(0.0, f64::max);
    match limits.len() {
        0 => String::new(),
        _ if lo == hi => format!(" (limit {lo:.0} W)"),
        _ => format!(" (limits {lo:.0}-{hi:.0} W)"),
    }
}

/// The lines to draw, in the order of the runs and of first appearance within each.
pub fn series(runs: &[PlottedRun], placement: PlotPlacement, only: &[Collective]) -> Vec<Series> {
    // Name type, operator and root in labels only when they vary, to keep the legend short.
    let rows = || runs.iter().flat_map(|r| r.doc.rows.iter());
    // Rows without an operator (or root) say nothing about whether operators vary.
    let varies = |f: &dyn Fn(&crate::report::document::Row) -> Option<String>| {
        let mut seen: Vec<String> = rows().filter_map(f).collect();
        seen.sort();
        seen.dedup();
        seen.len() > 1
    };
    let show_dtype = varies(&|r| Some(r.dtype.name().to_string()));
    let show_op = varies(&|r| r.op.map(|o| o.name().to_string()));
    let show_root = varies(&|r| r.root.map(|r| r.to_string()));

    let any_energy =
        rows().any(|r| measurement_of(r, placement).is_some_and(|m| m.energy.is_some()));
    let mut out = Vec::new();
    for run in runs {
        let limit = if any_energy {
            power_limit_label(&run.doc)
        } else {
            String::new()
        };
        let mut order: Vec<String> = Vec::new();
        let mut points: BTreeMap<String, BTreeMap<u64, SizeValues>> = BTreeMap::new();
        for row in &run.doc.rows {
            if !only.is_empty() && !only.contains(&row.collective) {
                continue;
            }
            let Some(m) = measurement_of(row, placement) else {
                continue;
            };
            let mut label = format!("{} {}", run.label, row.collective.name());
            if show_dtype {
                label.push_str(&format!(" {}", row.dtype.name()));
            }
            if show_op {
                if let Some(op) = row.op {
                    label.push_str(&format!(" {}", op.name()));
                }
            }
            if show_root {
                if let Some(root) = row.root {
                    label.push_str(&format!(" root {root}"));
                }
            }
            label.push_str(&limit);
            if !points.contains_key(&label) {
                order.push(label.clone());
            }
            let at = points
                .entry(label)
                .or_default()
                .entry(row.size_bytes)
                .or_default();
            at.0.push(m.busbw_gbps);
            at.1.push(m.time_us);
            if let Some(e) = &m.energy {
                let per_gpu_mj = e.joules_per_op * 1e3 / e.ranks_read.max(1) as f64;
                at.2.push((per_gpu_mj, m.busbw_gbps));
            }
        }
        for label in order {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let pts = points[&label]
                .iter()
                .map(|(size, (bw, t, _))| (*size as f64, mean(bw), mean(t)))
                .collect();
            let energy = points[&label]
                .values()
                .filter(|(_, _, e)| !e.is_empty())
                .map(|(_, _, e)| {
                    let (mj, bw): (Vec<f64>, Vec<f64>) = e.iter().copied().unzip();
                    (mean(&mj), mean(&bw))
                })
                .collect();
            out.push(Series {
                label,
                points: pts,
                energy,
            });
        }
    }
    out
}

/// Run labels: the file stems, or the whole paths when two stems are alike.
pub fn labels(paths: &[PathBuf]) -> Vec<String> {
    let stems: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        })
        .collect();
    let unique = stems
        .iter()
        .enumerate()
        .all(|(i, s)| !stems[..i].contains(s));
    if unique {
        stems
    } else {
        paths.iter().map(|p| p.display().to_string()).collect()
    }
}

/// Numbers on the value axes: three significant digits, no exponent for the usual range.
fn short_number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A positive range around the values, for a log axis; None when none is positive.
fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (hi > 0.0).then_some((lo / 1.5, hi * 1.5))
}

/// Data lines are this wide; axes and ticks are 1 pixel, which tells them apart in the SVG.
pub const SERIES_WIDTH: u32 = 2;
const PEAK_COLOR: RGBColor = RGBColor(90, 90, 90);

struct Panel<'a> {
    title: &'a str,
    y_desc: &'a str,
    value: fn(&(f64, f64, f64)) -> f64,
    peaks: &'a [(String, f64)],
    /// Where the lines usually are not: busbw rises with size (upper left is free), time too (lower right).
    legend_at: SeriesLabelPosition,
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    panel: &Panel,
) -> std::result::Result<(), String> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = log_range(xs).ok_or("no positive size to draw")?;
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(panel.value))
        .chain(panel.peaks.iter().map(|p| p.1));
    // busbw is 0 for all_reduce on one rank: draw the empty panel and say why rather than fail.
    let (caption, (y_lo, y_hi)) = match log_range(ys) {
        Some(range) => (panel.title.to_string(), range),
        None => (
            format!("{} (no value above 0 to draw)", panel.title),
            (0.1, 10.0),
        ),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo..x_hi).log_scale().base(2.0), (y_lo..y_hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("size (bytes)")
        .y_desc(panel.y_desc)
        .x_labels(12)
        .x_label_formatter(&|x| HumanSize(x.round() as u64).to_string())
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (p.0, (panel.value)(p)))
            .filter(|(x, y)| *x > 0.0 && y.is_finite() && *y > 0.0)
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(SERIES_WIDTH)))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            // A filled square, not a line: keeps the legend out of the count of drawn lines.
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    for (label, peak) in panel.peaks {
        chart
            .draw_series(LineSeries::new(
                [(x_lo, *peak), (x_hi, *peak)],
                PEAK_COLOR.stroke_width(SERIES_WIDTH),
            ))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(|(x, y)| Rectangle::new([(x, y - 1), (x + 14, y + 1)], PEAK_COLOR.filled()));
    }
    chart
        .configure_series_labels()
        .position(panel.legend_at.clone())
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// busbw against one GPU's energy per operation, one line per run and collective over its sizes: the
/// runs at different power limits show what each limit buys and costs.
fn draw_energy_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> std::result::Result<(), String> {
    let points = || series.iter().flat_map(|s| s.energy.iter());
    let (x_lo, x_hi) = log_range(points().map(|p| p.0)).ok_or("no energy above 0 to draw")?;
    let (y_lo, y_hi) = log_range(points().map(|p| p.1)).unwrap_or((0.1, 10.0));
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Bus bandwidth against energy (power limit in force per run)",
            (FAMILY, 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("energy per operation, one GPU (mJ)")
        .y_desc("busbw (GB/s)")
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = s
            .energy
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(SERIES_WIDTH)))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[Series],
    peaks: &[(String, f64)],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = if has_energy(series) {
        let (sizes, energy) = root.split_vertically(root.dim_in_pixel().1 * 2 / 3);
        draw_energy_panel(&energy, series)?;
        sizes
    } else {
        root
    };
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
    draw_panel(
        &top,
        series,
        &Panel {
            title: "Bus bandwidth",
            y_desc: "busbw (GB/s)",
            value: |p| p.1,
            peaks,
            legend_at: SeriesLabelPosition::UpperLeft,
        },
    )?;
    draw_panel(
        &bottom,
        series,
        &Panel {
            title: "Time per operation",
            y_desc: "time (us)",
            value: |p| p.2,
            peaks: &[],
            legend_at: SeriesLabelPosition::LowerRight,
        },
    )?;
    root.present().map_err(|e| e.to_string())
}

/// The picture size in pixels (SVG user units); with the energy panel a third taller.
pub const SIZE: (u32, u32) = (1200, 1000);

fn has_energy(series: &[Series]) -> bool {
    series.iter().any(|s| !s.energy.is_empty())
}

/// Draws the series and peaks to `output`, SVG or PNG by its extension.
pub fn render(output: &Path, series: &[Series], peaks: &[(String, f64)]) -> Result<()> {
    if series.is_empty() {
        return Err(Error::Usage(
            "nothing to plot: the runs hold no measured row of the chosen collectives and placement".into(),
        ));
    }
    if !series.iter().flat_map(|s| &s.points).any(|p| p.0 > 0.0) {
        return Err(Error::Usage(
            "nothing to plot: every measured size is 0 bytes, which a log axis cannot show".into(),
        ));
    }
    register_font()?;
    let extension = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let size = if has_energy(series) {
        (SIZE.0, SIZE.1 * 3 / 2)
    } else {
        SIZE
    };
    let result = match extension.as_deref() {
        Some("svg") => draw(
            SVGBackend::new(output, size).into_drawing_area(),
            series,
            peaks,
        ),
        Some("png") => draw(
            BitMapBackend::new(output, size).into_drawing_area(),
            series,
            peaks,
        ),
        _ => {
            return Err(Error::Usage(format!(
                "-o {}: the file name must end in .svg or .png",
                output.display()
            )))
        }
    };
    result.map_err(|e| {
        Error::io(
            format!("-o {}: cannot draw the plot", output.display()),
            std::io::Error::other(e),
        )
    })
}

#[cfg(test)]
mod tests;
