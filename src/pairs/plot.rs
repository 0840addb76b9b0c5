//! The matrix as a heatmap (SVG or PNG): one cell per pair, coloured by its share of the best pair's
//! bandwidth, labelled with GB/s, so a bad host shows as a dark cross and a bad link as a dark cell.

use super::model::{PairFigure, Participant};
use crate::error::{Error, Result};
use crate::fleet::font::{register_font, FAMILY};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Red (slow) through yellow to green (the best pair), by `share` of the best bandwidth (0 to 1).
fn colour(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
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
enum Format {
    Svg,
    Png,
}

fn format_of(output: &Path) -> Result<Format> {
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

/// Writes the heatmap of the bandwidth matrix to `output`, SVG or PNG by its extension.
pub fn heatmap(output: &Path, participants: &[Participant], figures: &[PairFigure]) -> Result<()> {
    let format = format_of(output)?;
    register_font()?;
    let n = participants.len() as u32;
    let size = (MARGIN + CELL * n + 20, MARGIN + CELL * n + 60);
    let result = match format {
        Format::Svg => draw(
            SVGBackend::new(output, size).into_drawing_area(),
            participants,
            figures,
        ),
        Format::Png => draw(
            BitMapBackend::new(output, size).into_drawing_area(),
            participants,
            figures,
        ),
    };
    result.map_err(|e| {
        Error::io(
            format!("--plot {}: cannot draw the heatmap", output.display()),
            std::io::Error::other(e),
        )
    })
}

const CELL: u32 = 110;
const MARGIN: u32 = 180;

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    participants: &[Participant],
    figures: &[PairFigure],
) -> std::result::Result<(), String> {
    let n = participants.len();
    let best = figures.iter().map(|f| f.bandwidth_gbps).fold(0.0, f64::max);
    let (cell, margin) = (CELL, MARGIN);
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(fail)?;
    let title = (
        "Pair bandwidth, GB/s each way (bidirectional sendrecv)",
        (FAMILY, 20),
    );
    root.draw(&Text::new(title.0, (20, 20), title.1.into_font()))
        .map_err(fail)?;
    let label = (FAMILY, 15).into_font();
    for (i, p) in participants.iter().enumerate() {
        let at = (margin + cell * i as u32 + 5) as i32;
        root.draw(&Text::new(
            p.name.clone(),
            (at, margin as i32 - 25),
            label.clone(),
        ))
        .map_err(fail)?;
        root.draw(&Text::new(
            p.name.clone(),
            (10, at + cell as i32 / 2 - 8),
            label.clone(),
        ))
        .map_err(fail)?;
    }
    for i in 0..n {
        for j in 0..n {
            let x = (margin + cell * j as u32) as i32;
            let y = (margin + cell * i as u32) as i32;
            let found = figures
                .iter()
                .find(|f| i != j && (f.a, f.b) == (i.min(j), i.max(j)));
            let fill = match found {
                Some(f) if best > 0.0 => colour(f.bandwidth_gbps / best),
                _ => RGBColor(235, 235, 235),
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32 - 2, y + cell as i32 - 2)],
                fill.filled(),
            ))
            .map_err(fail)?;
            if let Some(f) = found {
                root.draw(&Text::new(
                    format!("{:.3}", f.bandwidth_gbps),
                    (x + 20, y + cell as i32 / 2 - 8),
                    label.clone(),
                ))
                .map_err(fail)?;
            }
        }
    }
    root.present().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Vec<Participant> {
        ["h0", "h1", "h2"]
            .iter()
            .enumerate()
            .map(|(i, n)| Participant {
                name: n.to_string(),
                host: n.to_string(),
                rank: i,
                members: vec![i],
            })
            .collect()
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
        heatmap(&svg, &people(), &figures()).expect("svg");
        let text = std::fs::read_to_string(&svg).expect("svg text");
        assert!(text.contains("<svg") && text.contains("h2") && text.contains("0.200"));
        let png = dir.path().join("m.PNG");
        heatmap(&png, &people(), &figures()).expect("png");
        let bytes = std::fs::read(&png).expect("png bytes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
        // The PNG header's width is the heatmap's.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(width, MARGIN + CELL * 3 + 20);
        let e = heatmap(&dir.path().join("m.jpg"), &people(), &figures()).unwrap_err();
        assert!(e.to_string().contains(".svg or .png"), "{e}");
        assert!(check_extension(&dir.path().join("m.gif")).is_err());
    }
}
