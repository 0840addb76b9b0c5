//! The search's rounds as a picture (`--plot` of a search above plot::LABELLED participants): one row
//! per participant, one column per round, each cell its sample's share of the best pair, so that at
//! 1,024 hosts a bad host is a red row, a flaky one a broken row and a bad link a few red cells in two
//! rows. Rows sorted by each participant's median sample, slowest first; the named ones marked. The
//! pair matrix of a search is mostly pairs never measured; this shows every sample it took.

use super::document::{PairSample, Participant};
use super::plot::{colour, format_of, legend, mark_rows, slowest_first, Format};
use crate::error::{Error, Result};
use crate::fleet::font::{register_font, FAMILY};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// About this many pixels for all the rows, and for all the columns.
const ROWS_PIXELS: u32 = 2048;
const COLUMNS_PIXELS: u32 = 1400;
const MARGIN: u32 = 200;

/// Writes the picture of `samples` to `output` (SVG or PNG by its extension).
pub fn rounds_map(
    output: &Path,
    participants: &[Participant],
    samples: &[PairSample],
    marked: &[usize],
) -> Result<()> {
    let format = format_of(output)?;
    register_font()?;
    let grid = Grid::of(participants.len(), samples);
    let size = grid.size();
    let result = match format {
        Format::Svg => draw(
            SVGBackend::new(output, size).into_drawing_area(),
            participants,
            samples,
            marked,
            &grid,
        ),
        Format::Png => draw(
            BitMapBackend::new(output, size).into_drawing_area(),
            participants,
            samples,
            marked,
            &grid,
        ),
    };
    result.map_err(|e| {
        Error::io(
            format!(
                "--plot {}: cannot draw the search's rounds",
                output.display()
            ),
            std::io::Error::other(e),
        )
    })
}

/// Each participant's row and the size of a cell.
struct Grid {
    row_height: u32,
    column_width: u32,
    rounds: usize,
    /// `row[i]`: participant i's row, slowest median sample first.
    row: Vec<usize>,
}

impl Grid {
    fn of(participants: usize, samples: &[PairSample]) -> Grid {
        let rounds = samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
        let mut mine: Vec<Vec<f64>> = vec![Vec::new(); participants];
        for s in samples {
            mine[s.a].push(s.bandwidth_gbps);
            mine[s.b].push(s.bandwidth_gbps);
        }
        let order = slowest_first(&mine);
        let mut row = vec![0; participants];
        for (k, &i) in order.iter().enumerate() {
            row[i] = k;
        }
        Grid {
            row_height: (ROWS_PIXELS / participants.max(1) as u32).clamp(2, 40),
            column_width: (COLUMNS_PIXELS / rounds.max(1) as u32).clamp(8, 80),
            rounds,
            row,
        }
    }

    fn size(&self) -> (u32, u32) {
        (
            MARGIN + self.column_width * self.rounds as u32 + 20,
            MARGIN + self.row_height * self.row.len() as u32 + 60,
        )
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    participants: &[Participant],
    samples: &[PairSample],
    marked: &[usize],
    grid: &Grid,
) -> std::result::Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let best = samples.iter().map(|s| s.bandwidth_gbps).fold(0.0, f64::max);
    let (h, w, margin) = (
        grid.row_height as i32,
        grid.column_width as i32,
        MARGIN as i32,
    );
    let (width, height) = (w * grid.rounds as i32, h * participants.len() as i32);
    root.fill(&WHITE).map_err(fail)?;
    root.draw(&Text::new(
        format!(
            "The search's rounds: each of {} participants' sample, share of the best pair ({best:.3} GB/s each way)",
            participants.len()
        ),
        (20, 20),
        (FAMILY, 20).into_font(),
    ))
    .map_err(fail)?;
    root.draw(&Text::new(
        "a row per participant, sorted by its median sample, slowest first; a column per round; grey: sat out; red: named by the verdict",
        (20, 48),
        (FAMILY, 16).into_font(),
    ))
    .map_err(fail)?;
    root.draw(&Rectangle::new(
        [(margin, margin), (margin + width, margin + height)],
        RGBColor(235, 235, 235).filled(),
    ))
    .map_err(fail)?;
    let label = (FAMILY, 15).into_font();
    for round in 0..grid.rounds as i32 {
        if w >= 20 || round % 5 == 0 {
            root.draw(&Text::new(
                format!("{}", round + 1),
                (margin + w * round + 2, margin - 40),
                label.clone(),
            ))
            .map_err(fail)?;
        }
    }
    for s in samples {
        let fill = colour(if best > 0.0 {
            s.bandwidth_gbps / best
        } else {
            0.0
        });
        let x = margin + w * s.round as i32;
        for i in [s.a, s.b] {
            let y = margin + h * grid.row[i] as i32;
            root.draw(&Rectangle::new(
                [(x, y), (x + w - 2, y + h - 1)],
                fill.filled(),
            ))
            .map_err(fail)?;
        }
    }
    let rows: Vec<(usize, i32)> = marked
        .iter()
        .map(|&i| (i, margin + h * grid.row[i] as i32 + h / 2))
        .collect();
    mark_rows(&root, participants, &rows, margin, h, width).map_err(fail)?;
    legend(&root, margin, margin + height + 20).map_err(fail)?;
    root.present().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::document::test_fleet;

    #[test]
    fn the_search_of_1024_hosts_draws_a_row_each_slowest_first_with_the_bad_host_marked() {
        // The simulator's fabric with host 700 at half rate, searched as the command would.
        use crate::pairs::search::sim::{Fabric, Fault, INFINIBAND};
        use crate::pairs::search::{search, Settings, DEFAULT_MAX_ROUNDS, DEFAULT_SEED};
        let mut fabric = Fabric::healthy(1024, INFINIBAND, 5).with(Fault::BadHost(700));
        let settings = Settings {
            threshold_percent: INFINIBAND.threshold_percent,
            max_rounds: DEFAULT_MAX_ROUNDS,
            seed: DEFAULT_SEED,
        };
        let outcome = search(1024, &settings, &mut fabric).expect("rounds");
        let grid = Grid::of(1024, &outcome.samples);
        assert_eq!(grid.row[700], 0, "the bad host's row comes first");
        assert_eq!(grid.rounds, outcome.rounds);
        let dir = tempfile::tempdir().expect("a folder");
        let png = dir.path().join("rounds.png");
        rounds_map(&png, &test_fleet(1024), &outcome.samples, &[700]).expect("png");
        let bytes = std::fs::read(&png).expect("png bytes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(height, MARGIN + 2 * 1024 + 60);
        assert!(width <= MARGIN + COLUMNS_PIXELS + 20, "{width}");
        assert!(bytes.len() < 2 << 20, "{} bytes", bytes.len());
        let svg = dir.path().join("rounds.svg");
        rounds_map(&svg, &test_fleet(1024), &outcome.samples, &[700]).expect("svg");
        let text = std::fs::read_to_string(&svg).expect("svg text");
        assert!(text.contains("node0700") && !text.contains("node0699"));
        assert!(text.len() < 8 << 20, "{} bytes", text.len());
    }
}
