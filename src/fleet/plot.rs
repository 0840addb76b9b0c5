//! `collbench plot RUN.json [MORE.json ...] -o FILE.svg|.png`: bus bandwidth and time against size on
//! log axes, one line per run and collective, with the peak bandwidth as a horizontal line when known.
//! Text is drawn with the bundled font (fleet/font.rs): no fontconfig, no system fonts.

use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::report::model::{Measurement, RunDocument};
use crate::size::HumanSize;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;
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
}

/// A results file read for plotting: the typed document and the peak it records, if any.
pub struct PlottedRun {
    pub label: String,
    pub doc: RunDocument,
    pub peak_gbps: Option<f64>,
}

/// The peak bus bandwidth recorded in a results file, looked for where the writers put it:
/// `peak_gbps` at the top level, in `summary`, in `topology`, or `plan.requested.peak_gbps` (from
/// `--peak`). Tolerant on purpose: files written before the field existed simply have none.
pub fn peak_gbps_in(value: &serde_json::Value) -> Option<f64> {
    let candidates = [
        value.get("peak_gbps"),
        value.get("summary").and_then(|s| s.get("peak_gbps")),
        value.get("topology").and_then(|t| t.get("peak_gbps")),
        value
            .get("plan")
            .and_then(|p| p.get("requested"))
            .and_then(|r| r.get("peak_gbps")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_f64())
        .find(|p| p.is_finite() && *p > 0.0)
}

/// Reads a results file as the typed document and its recorded peak.
pub fn read_run(path: &Path) -> Result<(RunDocument, Option<f64>)> {
    let text =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let not_results = |e: serde_json::Error| {
        Error::Usage(format!(
            "{} is not a collbench results file: {e}",
            path.display()
        ))
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(not_results)?;
    let doc = RunDocument::deserialize(&value).map_err(not_results)?;
    Ok((doc, peak_gbps_in(&value)))
}

fn measurement_of(
    row: &crate::report::model::Row,
    placement: PlotPlacement,
) -> Option<&Measurement> {
    match placement {
        PlotPlacement::OutOfPlace => row.out_of_place.as_ref(),
        PlotPlacement::InPlace => row.in_place.as_ref(),
    }
}

/// The busbw and time values measured at one size (several with several cycles).
type SizeValues = (Vec<f64>, Vec<f64>);

/// The lines to draw, in the order of the runs and of first appearance within each.
pub fn series(runs: &[PlottedRun], placement: PlotPlacement, only: &[Collective]) -> Vec<Series> {
    // Name type, operator and root in labels only when they vary, to keep the legend short.
    let rows = || runs.iter().flat_map(|r| r.doc.rows.iter());
    // Rows without an operator (or root) say nothing about whether operators vary.
    let varies = |f: &dyn Fn(&crate::report::model::Row) -> Option<String>| {
        let mut seen: Vec<String> = rows().filter_map(f).collect();
        seen.sort();
        seen.dedup();
        seen.len() > 1
    };
    let show_dtype = varies(&|r| Some(r.dtype.name().to_string()));
    let show_op = varies(&|r| r.op.map(|o| o.name().to_string()));
    let show_root = varies(&|r| r.root.map(|r| r.to_string()));

    let mut out = Vec::new();
    for run in runs {
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
        }
        for label in order {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let pts = points[&label]
                .iter()
                .map(|(size, (bw, t))| (*size as f64, mean(bw), mean(t)))
                .collect();
            out.push(Series { label, points: pts });
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

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[Series],
    peaks: &[(String, f64)],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
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

/// The picture size in pixels (SVG user units).
pub const SIZE: (u32, u32) = (1200, 1000);

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
    let result = match extension.as_deref() {
        Some("svg") => draw(
            SVGBackend::new(output, SIZE).into_drawing_area(),
            series,
            peaks,
        ),
        Some("png") => draw(
            BitMapBackend::new(output, SIZE).into_drawing_area(),
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
mod tests {
    use super::*;
    use crate::report::testdata::row;
    use serde_json::json;

    #[test]
    fn finds_the_peak_where_writers_put_it() {
        assert_eq!(peak_gbps_in(&json!({"peak_gbps": 450.0})), Some(450.0));
        assert_eq!(
            peak_gbps_in(&json!({"summary": {"peak_gbps": 90}})),
            Some(90.0)
        );
        assert_eq!(
            peak_gbps_in(&json!({"topology": {"peak_gbps": 12.5}})),
            Some(12.5)
        );
        assert_eq!(peak_gbps_in(&json!({"peak_gbps": null})), None);
        assert_eq!(peak_gbps_in(&json!({"peak_gbps": -1})), None);
        assert_eq!(peak_gbps_in(&json!({})), None);
    }

    #[test]
    fn labels_are_stems_unless_alike() {
        let l = labels(&["a/base.json".into(), "b/new.json".into()]);
        assert_eq!(l, vec!["base", "new"]);
        let l = labels(&["a/run.json".into(), "b/run.json".into()]);
        assert_eq!(l, vec!["a/run.json", "b/run.json"]);
    }

    #[test]
    fn one_series_per_run_and_collective_with_cycles_averaged() {
        let mut rows = vec![
            row(Collective::AllReduce, 1 << 20, 4, 10.0),
            row(Collective::AllReduce, 2 << 20, 4, 20.0),
            row(Collective::AllGather, 1 << 20, 4, 10.0),
        ];
        let mut again = row(Collective::AllReduce, 1 << 20, 4, 30.0);
        again.cycle = 1;
        rows.push(again);
        let doc: RunDocument = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/base_4ranks.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let mut mine = doc.clone();
        mine.rows = rows;
        let runs = vec![PlottedRun {
            label: "x".into(),
            doc: mine,
            peak_gbps: None,
        }];
        let s = series(&runs, PlotPlacement::OutOfPlace, &[]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].label, "x all_reduce");
        assert_eq!(s[0].points.len(), 2);
        assert_eq!(s[0].points[0].2, 20.0);
        let only = series(&runs, PlotPlacement::InPlace, &[Collective::AllGather]);
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn refuses_unknown_formats_and_empty_plots() {
        let s = vec![Series {
            label: "a".into(),
            points: vec![(1024.0, 1.0, 1.0)],
        }];
        let e = render(Path::new("x.jpg"), &s, &[]).unwrap_err();
        assert!(e.to_string().contains(".svg or .png"));
        let e = render(Path::new("x.svg"), &[], &[]).unwrap_err();
        assert!(e.to_string().contains("nothing to plot"));
        let zero = vec![Series {
            label: "a".into(),
            points: vec![(0.0, 1.0, 1.0)],
        }];
        let e = render(Path::new("x.svg"), &zero, &[]).unwrap_err();
        assert!(e.to_string().contains("0 bytes"));
    }

    #[test]
    fn one_rank_all_reduce_has_no_busbw_but_still_plots() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("solo.svg");
        let s = vec![Series {
            label: "solo all_reduce".into(),
            points: vec![(1024.0, 0.0, 5.0), (2048.0, 0.0, 6.0)],
        }];
        render(&out, &s, &[]).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("no value above 0"));
        // Only the time panel has a line.
        assert_eq!(svg.matches("stroke-width=\"2\" points").count(), 1);
    }
}
