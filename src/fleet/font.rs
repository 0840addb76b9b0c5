//! The font every picture collbench draws (plot, the pairs heatmap) writes its text in: DejaVu Sans,
//! bundled (assets/) and registered with plotters through ab_glyph, so no fontconfig or system font is
//! needed at build or run time.

use crate::error::{Error, Result};
use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name pictures ask for.
pub const FAMILY: &str = "sans-serif";

/// Registers the bundled font once per process; every picture calls it before drawing text.
pub fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    ok.then_some(())
        .ok_or_else(|| Error::Internal("the bundled font could not be loaded".into()))
}
