//! The matrix as a heatmap (SVG or PNG): one cell per pair, coloured by its share of the best pair's
//! bandwidth, so a bad host shows as a red cross and a bad link as a red cell. A few hosts get
//! labelled cells; a fleet gets small cells sorted by each host's median pair, with the hosts the
//! verdict names marked, legible at 1,024 hosts.

use super::document::{PairFigure, Participant};
use super::verdict::PairsVerdict;
use crate::error::{Error, Result};
use crate::fleet::font::{register_font, FAMILY};
use crate::metrics::median;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The participants in order of their median sample, slowest first; those without one (NaN) last.
pub(crate) fn slowest_first(samples_of: &[Vec<f64>]) -> Vec<usize> {
    let typical: Vec<f64> = samples_of.iter().map(|v| median(v)).collect();
    let mut order: Vec<usize> = (0..samples_of.len()).collect();
    order.sort_by(|&x, &y| {
        typical[x]
            .is_nan()
            .cmp(&typical[y].is_nan())
            .then(typical[x].total_cmp(&typical[y]))
    });
    order
}

/// Red (half the best pair or less) through yellow (three quarters) to green (the best pair), by
/// `share` of the best bandwidth: a link at half its rate is a fault, so it must look like one.
pub(crate) fn colour(share: f64) -> RGBColor {
    let s = ((share - 0.5) / 0.5).clamp(0.0, 1.0);
    let (r, g) = if s < 0.5 {
        (220.0, 40.0 + 360.0 * s)
    } else {
        (220.0 - 360.0 * (s - 0.5), 220.0)
    };
    RGBColor(r as u8, g as u8, 60)
}

/// The picture's format, from the file name's extension; a usage error names --plot otherwise.
pub fn check_extension(output: &Path) -> Result<()> {
    format_of(output).map(|_| ())
}

#[derive(Clone, Copy)]
pub(crate) enum Format {
    Svg,
    Png,
}

pub(crate) fn format_of(output: &Path) -> Result<Format> {
    let extension = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(Error::Usage(format!(
            "--plot {}: the heatmap is written as SVG or PNG: give a file name ending in .svg or .png",
            output.display()
        ))),
    }
}

/// The participants the verdict names (bad, flaky, or at an end of a bad link), marked on the heatmap.
pub fn marked(participants: &[Participant], v: &PairsVerdict) -> Vec<usize> {
    let named: Vec<&str> = v
        .bad_hosts
        .iter()
        .chain(&v.flaky_hosts)
        .map(|h| h.name.as_str())
        .chain(
            v.bad_links
                .iter()
                .flat_map(|l| [l.a.as_str(), l.b.as_str()]),
        )
        .collect();
    (0..participants.len())
        .filter(|&i| named.contains(&participants[i].name.as_str()))
        .collect()
}

/// Writes the heatmap of the bandwidth matrix to `output`, SVG or PNG by its extension, with the
/// participants of `marked` marked. Up to LABELLED participants every cell carries its GB/s; above,
/// cells shrink to fit about 2,000 pixels, the rows and columns are sorted by each participant's
/// median pair (the slowest first, so bad hosts gather at the top left) and only marked rows are
/// named.
pub fn heatmap(
    output: &Path,
    participants: &[Participant],
    figures: &[PairFigure],
    marked: &[usize],
) -> Result<()> {
    let format = format_of(output)?;
    register_font()?;
    let layout = Layout::of(participants, figures);
    let size = layout.size();
    let result = match format {
        Format::Svg => draw(
            SVGBackend::new(output, size).into_drawing_area(),
            participants,
            figures,
            marked,
            &layout,
        ),
        Format::Png => draw(
            BitMapBackend::new(output, size).into_drawing_area(),
            participants,
            figures,
            marked,
            &layout,
        ),
    };
    result.map_err(|e| {
        Error::io(
            format!("--plot {}: cannot draw the heatmap", output.display()),
            std::io::Error::other(e),
        )
    })
}

/// Up to this many participants every cell is labelled and the order is the participants'.
pub const LABELLED: usize = 16;
const CELL: u32 = 110;
const MARGIN: u32 = 180;
/// Above LABELLED, the matrix is drawn about this many pixels wide.
const FLEET_PIXELS: u32 = 2048;
/// The smallest height of a mark beside a named row, pixels.
pub(crate) const MARK: i32 = 6;
/// Colours above LABELLED participants, in steps of a tenth of the best pair (the default slow
/// threshold's size): healthy pairs few percent apart share a shade, runs of equal cells become one
/// rectangle, and a slow row stands out.
const SHADES: f64 = 10.0;

/// Where each participant sits and how big a cell is.
struct Layout {
    cell: u32,
    margin: u32,
    /// `seat[i]`: the row and column of participant i.
    seat: Vec<usize>,
    /// `at[k]`: the participant in row and column k.
    at: Vec<usize>,
    labelled: bool,
}

impl Layout {
    fn of(participants: &[Participant], figures: &[PairFigure]) -> Layout {
        let n = participants.len();
        let labelled = n <= LABELLED;
        let mut at: Vec<usize> = (0..n).collect();
        if !labelled {
            let mut of_host: Vec<Vec<f64>> = vec![Vec::new(); n];
            for f in figures {
                of_host[f.a].push(f.bandwidth_gbps);
                of_host[f.b].push(f.bandwidth_gbps);
            }
            at = slowest_first(&of_host);
        }
        let mut seat = vec![0; n];
        for (k, &i) in at.iter().enumerate() {
            seat[i] = k;
        }
        let (cell, margin) = if labelled {
            (CELL, MARGIN)
        } else {
            ((FLEET_PIXELS / n.max(1) as u32).clamp(1, 40), 200)
        };
        Layout {
            cell,
            margin,
            seat,
            at,
            labelled,
        }
    }

    fn size(&self) -> (u32, u32) {
        let side = self.cell * self.at.len() as u32;
        (self.margin + side + 20, self.margin + side + 60)
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    participants: &[Participant],
    figures: &[PairFigure],
    marked: &[usize],
    layout: &Layout,
) -> std::result::Result<(), String> {
    let n = participants.len();
    let best = figures.iter().map(|f| f.bandwidth_gbps).fold(0.0, f64::max);
    let (cell, margin) = (layout.cell as i32, layout.margin as i32);
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(fail)?;
    let title = if layout.labelled {
        "Pair bandwidth, GB/s each way (bidirectional sendrecv)".to_string()
    } else {
        format!(
            "Pair bandwidth of {n} participants, share of the best pair ({best:.3} GB/s each way)"
        )
    };
    root.draw(&Text::new(title, (20, 20), (FAMILY, 20).into_font()))
        .map_err(fail)?;
    if !layout.labelled {
        root.draw(&Text::new(
            "sorted by each one's median pair, slowest first; grey: not measured; red: named by the verdict",
            (20, 48),
            (FAMILY, 16).into_font(),
        ))
        .map_err(fail)?;
    }
    let label = (FAMILY, 15).into_font();
    let side = cell * n as i32;
    // Unmeasured cells and the diagonal stay grey.
    root.draw(&Rectangle::new(
        [(margin, margin), (margin + side, margin + side)],
        RGBColor(235, 235, 235).filled(),
    ))
    .map_err(fail)?;
    if layout.labelled {
        for (i, p) in participants.iter().enumerate() {
            let at = margin + cell * i as i32 + 5;
            let colour = if marked.contains(&i) { RED } else { BLACK };
            let style = label.clone().color(&colour);
            root.draw(&Text::new(p.name.clone(), (at, margin - 25), style.clone()))
                .map_err(fail)?;
            root.draw(&Text::new(p.name.clone(), (10, at + cell / 2 - 8), style))
                .map_err(fail)?;
        }
        for f in figures {
            for (i, j) in [(f.a, f.b), (f.b, f.a)] {
                let (x, y) = (margin + cell * j as i32, margin + cell * i as i32);
                let fill = if best > 0.0 {
                    colour(f.bandwidth_gbps / best)
                } else {
                    RGBColor(235, 235, 235)
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 2, y + cell - 2)],
                    fill.filled(),
                ))
                .map_err(fail)?;
                root.draw(&Text::new(
                    format!("{:.3}", f.bandwidth_gbps),
                    (x + 20, y + cell / 2 - 8),
                    label.clone(),
                ))
                .map_err(fail)?;
            }
        }
        return root.present().map_err(fail);
    }
    // A fleet: each row's cells in seat order, equal shades joined into one rectangle.
    let mut rows: Vec<Vec<(usize, u8)>> = vec![Vec::new(); n];
    if best > 0.0 {
        for f in figures {
            let shade = ((f.bandwidth_gbps / best).clamp(0.0, 1.0) * SHADES).round() as u8;
            let (sa, sb) = (layout.seat[f.a], layout.seat[f.b]);
            rows[sa].push((sb, shade));
            rows[sb].push((sa, shade));
        }
    }
    for (k, row) in rows.iter_mut().enumerate() {
        row.sort_unstable();
        let y = margin + cell * k as i32;
        let mut run = 0;
        while run < row.len() {
            let (start, shade) = row[run];
            let mut end = run + 1;
            while end < row.len() && row[end] == (start + end - run, shade) {
                end += 1;
            }
            let x = margin + cell * start as i32;
            let width = cell * (end - run) as i32;
            root.draw(&Rectangle::new(
                [(x, y), (x + width - 1, y + cell - 1)],
                colour(f64::from(shade) / SHADES).filled(),
            ))
            .map_err(fail)?;
            run = end;
        }
    }
    // Marked rows and columns: a red bar beside the row and above the column.
    let rows: Vec<(usize, i32)> = marked
        .iter()
        .map(|&i| (i, margin + cell * layout.seat[i] as i32 + cell / 2))
        .collect();
    mark_rows(&root, participants, &rows, margin, cell, side).map_err(fail)?;
    for &(_, middle) in &rows {
        // The matrix is square: row k's column is centred at the same offset.
        let centre = middle;
        let half = (cell.max(MARK) + 1) / 2;
        root.draw(&Rectangle::new(
            [(centre - half, margin - 16), (centre + half, margin - 4)],
            RED.filled(),
        ))
        .map_err(fail)?;
    }
    legend(&root, margin, margin + side + 20).map_err(fail)?;
    root.present().map_err(fail)
}

/// Red bars left of the rows at `rows` (participant, the row's middle y), at least MARK pixels tall
/// so that a 2-pixel row shows, a red frame along each row `width` wide, and the rows' names in red, stacked apart with a leader line where
/// neighbours would overlap.
pub(crate) fn mark_rows<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    participants: &[Participant],
    rows: &[(usize, i32)],
    margin: i32,
    row_height: i32,
    width: i32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let label = (FAMILY, 15).into_font().color(&RED);
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|&(_, y)| y);
    let half = (row_height.max(MARK) + 1) / 2;
    let mut next_label_y = i32::MIN;
    for (i, middle) in sorted {
        root.draw(&Rectangle::new(
            [(margin - 16, middle - half), (margin - 4, middle + half)],
            RED.filled(),
        ))?;
        // A red frame along the whole row, so that a 2-pixel row reads as a band.
        let top = middle - row_height / 2 - 1;
        root.draw(&Rectangle::new(
            [
                (margin - 2, top),
                (margin + width + 2, top + row_height + 1),
            ],
            RED.stroke_width(1),
        ))?;
        let label_y = (middle - 8).max(next_label_y);
        next_label_y = label_y + 17;
        root.draw(&Text::new(
            participants[i].name.clone(),
            (10, label_y),
            label.clone(),
        ))?;
        if label_y != middle - 8 {
            root.draw(&PathElement::new(
                vec![(margin - 60, label_y + 8), (margin - 16, middle)],
                RED.stroke_width(1),
            ))?;
        }
    }
    Ok(())
}

/// The colour scale at (x, y): the share of the best pair, slow (red) to best (green).
pub(crate) fn legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    x: i32,
    y: i32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for step in 0..=20 {
        let at = x + step * 20;
        root.draw(&Rectangle::new(
            [(at, y), (at + 19, y + 14)],
            colour(0.5 + f64::from(step) / 40.0).filled(),
        ))?;
    }
    root.draw(&Text::new(
        "50 % or less ... 100 % of the best pair".to_string(),
        (x + 21 * 20 + 10, y),
        (FAMILY, 15).into_font(),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::document::{test_fleet, test_participants};

    fn people() -> Vec<Participant> {
        test_participants(&["h0", "h1", "h2"])
    }

    fn figures() -> Vec<PairFigure> {
        [(0, 1, 2.0), (0, 2, 0.2), (1, 2, 0.2)]
            .iter()
            .map(|&(a, b, bw)| PairFigure {
                a,
                b,
                bandwidth_gbps: bw,
                latency_us: 10.0,
            })
            .collect()
    }

    #[test]
    fn the_heatmap_is_written_as_svg_or_png_by_the_extension() {
        let dir = tempfile::tempdir().expect("a folder");
        let svg = dir.path().join("m.svg");
        heatmap(&svg, &people(), &figures(), &[]).expect("svg");
        let text = std::fs::read_to_string(&svg).expect("svg text");
        assert!(text.contains("<svg") && text.contains("h2") && text.contains("0.200"));
        let png = dir.path().join("m.PNG");
        heatmap(&png, &people(), &figures(), &[]).expect("png");
        let bytes = std::fs::read(&png).expect("png bytes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
        // The PNG header's width is the heatmap's.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(width, MARGIN + CELL * 3 + 20);
        let e = heatmap(&dir.path().join("m.jpg"), &people(), &figures(), &[]).unwrap_err();
        assert!(e.to_string().contains(".svg or .png"), "{e}");
        assert!(check_extension(&dir.path().join("m.gif")).is_err());
    }

    /// Every pair of 1,024 hosts: 48 GB/s give or take 3 %, host 700 at half of that.
    fn full_fleet_matrix(n: usize, bad: usize) -> Vec<PairFigure> {
        let mut figures = Vec::with_capacity(n * (n - 1) / 2);
        for a in 0..n {
            for b in a + 1..n {
                let spread = ((a * 31 + b * 17) % 7) as f64 * 0.005;
                let slow = if a == bad || b == bad { 0.5 } else { 1.0 };
                figures.push(PairFigure {
                    a,
                    b,
                    bandwidth_gbps: 48.0 * (1.0 - spread) * slow,
                    latency_us: 5.0,
                });
            }
        }
        figures
    }

    #[test]
    fn a_fleet_is_sorted_slowest_first_and_its_cells_fit_the_picture() {
        let people = test_fleet(1024);
        let figures = full_fleet_matrix(1024, 700);
        let layout = Layout::of(&people, &figures);
        assert!(!layout.labelled);
        assert_eq!(layout.at[0], 700, "the bad host's row comes first");
        assert_eq!(layout.seat[700], 0);
        assert_eq!(layout.cell, 2);
        let (w, h) = layout.size();
        assert!(w <= 2400 && h <= 2400, "{w} x {h}");
    }

    #[test]
    fn a_heatmap_of_1024_hosts_renders_at_a_sane_size_with_the_bad_host_marked() {
        let dir = tempfile::tempdir().expect("a folder");
        let people = test_fleet(1024);
        let figures = full_fleet_matrix(1024, 700);
        let png = dir.path().join("fleet.png");
        heatmap(&png, &people, &figures, &[700]).expect("png");
        let bytes = std::fs::read(&png).expect("png bytes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (200 + 2 * 1024 + 20, 200 + 2 * 1024 + 60));
        assert!(bytes.len() < 2 << 20, "{} bytes", bytes.len());
        // The search's sparse matrix as SVG: a few thousand cells, the marked host named.
        let sparse: Vec<PairFigure> = figures
            .into_iter()
            .filter(|f| (f.a * 7 + f.b) % 97 == 0 || f.a == 700 || f.b == 700)
            .collect();
        let svg = dir.path().join("fleet.svg");
        heatmap(&svg, &people, &sparse, &[700]).expect("svg");
        let text = std::fs::read_to_string(&svg).expect("svg text");
        assert!(text.contains("node0700"), "the marked host is named");
        assert!(!text.contains("node0699"), "unmarked hosts are not");
        assert!(text.len() < 8 << 20, "{} bytes", text.len());
    }
}
