//! The matrix as a heatmap (SVG): one cell per pair, coloured by its share of the best pair's
//! bandwidth, labelled with GB/s, so a bad host shows as a dark cross and a bad link as a dark cell.

use super::model::{PairFigure, Participant};
use crate::error::{Error, Result};
use crate::fleet::plot::{register_font, FAMILY};
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

/// Writes the heatmap of the bandwidth matrix to `output` (.svg).
pub fn heatmap(output: &Path, participants: &[Participant], figures: &[PairFigure]) -> Result<()> {
    if output.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(Error::Usage(format!(
            "--plot {}: the heatmap is written as SVG: give a file name ending in .svg",
            output.display()
        )));
    }
    register_font()?;
    let n = participants.len();
    let best = figures.iter().map(|f| f.bandwidth_gbps).fold(0.0, f64::max);
    let cell = 110u32;
    let margin = 180u32;
    let size = (margin + cell * n as u32 + 20, margin + cell * n as u32 + 60);
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(output, size).into_drawing_area();
        root.fill(&WHITE)?;
        let title = (
            "Pair bandwidth, GB/s each way (bidirectional sendrecv)",
            (FAMILY, 20),
        );
        root.draw(&Text::new(title.0, (20, 20), title.1.into_font()))?;
        let label = (FAMILY, 15).into_font();
        for (i, p) in participants.iter().enumerate() {
            let at = (margin + cell * i as u32 + 5) as i32;
            root.draw(&Text::new(
                p.name.clone(),
                (at, margin as i32 - 25),
                label.clone(),
            ))?;
            root.draw(&Text::new(
                p.name.clone(),
                (10, at + cell as i32 / 2 - 8),
                label.clone(),
            ))?;
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
                ))?;
                if let Some(f) = found {
                    root.draw(&Text::new(
                        format!("{:.3}", f.bandwidth_gbps),
                        (x + 20, y + cell as i32 / 2 - 8),
                        label.clone(),
                    ))?;
                }
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| {
        Error::io(
            format!("--plot {}: cannot draw the heatmap", output.display()),
            std::io::Error::other(e.to_string()),
        )
    })
}
