//! PCIe links: the kernel's link-speed strings, generation numbers, and the per-direction
//! bandwidth of a link after line encoding.

use super::sysroot::SysRoot;
use serde::{Deserialize, Serialize};

/// One device's PCIe link, as far as it is known. `max_*` is what the link can train to (the
/// lower of the device and the port above it), `current_*` what it runs at now: GPUs drop to
/// Gen1 when idle to save power, so the peak uses the max, never the idle current speed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PcieLink {
    pub current_gen: Option<u32>,
    pub current_width: Option<u32>,
    pub max_gen: Option<u32>,
    pub max_width: Option<u32>,
    /// Where the figures came from: "NVML" or "sysfs".
    pub source: String,
}

impl PcieLink {
    /// Unidirectional GB/s at the best generation and width the link can train to.
    pub fn max_gbps(&self) -> Option<f64> {
        gbps_per_direction(self.max_gen?, self.max_width?)
    }

    /// "Gen4 x16" (and the current state when it differs, e.g. idle downtraining).
    pub fn describe(&self) -> String {
        let g = |v: Option<u32>| v.map_or("?".to_string(), |v| v.to_string());
        let max = format!("Gen{} x{}", g(self.max_gen), g(self.max_width));
        let cur = format!("Gen{} x{}", g(self.current_gen), g(self.current_width));
        if cur == max || (self.current_gen.is_none() && self.current_width.is_none()) {
            max
        } else {
            format!("{max} (now {cur})")
        }
    }
}

/// Transfer rate in GT/s of each generation, and the fraction of bits that carry data.
/// Gen1/2: 8b/10b encoding; Gen3-5: 128b/130b; Gen6: 256-byte FLITs of which 242 carry
/// payload (PAM4, FEC and CRC take the rest). Sources: PCI Express Base Specification 1.0-6.0.
pub fn generation_rate(gen: u32) -> Option<(f64, f64, &'static str)> {
    match gen {
        1 => Some((2.5, 8.0 / 10.0, "8b/10b")),
        2 => Some((5.0, 8.0 / 10.0, "8b/10b")),
        3 => Some((8.0, 128.0 / 130.0, "128b/130b")),
        4 => Some((16.0, 128.0 / 130.0, "128b/130b")),
        5 => Some((32.0, 128.0 / 130.0, "128b/130b")),
        6 => Some((64.0, 242.0 / 256.0, "242B/256B FLIT")),
        _ => None,
    }
}

/// GB/s in one direction: GT/s x lanes x encoding efficiency / 8 bits per byte.
pub fn gbps_per_direction(gen: u32, width: u32) -> Option<f64> {
    let (gts, eff, _) = generation_rate(gen)?;
    Some(gts * width as f64 * eff / 8.0)
}

/// "PCIe Gen4 x16: 16 GT/s x 16 lanes x 128/130 (128b/130b) / 8 = 31.5 GB/s per direction".
pub fn derivation(gen: u32, width: u32) -> Option<String> {
    let (gts, _, enc) = generation_rate(gen)?;
    let frac = match gen {
        1 | 2 => "8/10",
        6 => "242/256",
        _ => "128/130",
    };
    Some(format!(
        "PCIe Gen{gen} x{width}: {gts} GT/s x {width} lanes x {frac} ({enc}) / 8 = {:.1} GB/s per direction",
        gbps_per_direction(gen, width)?
    ))
}

/// The generation for a kernel link-speed string: "16.0 GT/s PCIe" (kernels since 5.x),
/// "16 GT/s" or "8.0 GT/s" (older), "2.5 GT/s PCIe". "Unknown" (no link) gives None.
pub fn parse_link_speed(s: &str) -> Option<u32> {
    let gts: f64 = s.split_whitespace().next()?.parse().ok()?;
    [
        (2.5, 1),
        (5.0, 2),
        (8.0, 3),
        (16.0, 4),
        (32.0, 5),
        (64.0, 6),
    ]
    .iter()
    .find(|(rate, _)| (gts - rate).abs() < 0.01)
    .map(|&(_, g)| g)
}

/// The kernel writes the width as a plain number ("16"); some bridges say "0" when down.
pub fn parse_link_width(s: &str) -> Option<u32> {
    s.trim()
        .trim_start_matches('x')
        .parse()
        .ok()
        .filter(|&w| w > 0)
}

/// A PCI device's link from sysfs. The max is capped by the port above it when that port is
/// itself a PCI device, since a Gen5 card in a Gen4 slot trains at Gen4.
pub fn sysfs_link(root: &SysRoot, device_path: &str) -> Option<PcieLink> {
    let attr = |dir: &str, name: &str| root.read(&format!("{dir}/{name}")).ok();
    let link = PcieLink {
        current_gen: attr(device_path, "current_link_speed")
            .as_deref()
            .and_then(parse_link_speed),
        current_width: attr(device_path, "current_link_width")
            .as_deref()
            .and_then(parse_link_width),
        max_gen: attr(device_path, "max_link_speed")
            .as_deref()
            .and_then(parse_link_speed),
        max_width: attr(device_path, "max_link_width")
            .as_deref()
            .and_then(parse_link_width),
        source: "sysfs".to_string(),
    };
    if link
        == (PcieLink {
            source: "sysfs".to_string(),
            ..Default::default()
        })
    {
        return None;
    }
    let parent = device_path.rsplit_once('/').map(|(p, _)| p)?;
    let cap = |own: Option<u32>, up: Option<u32>| match (own, up) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if is_bdf(parent.rsplit('/').next().unwrap_or("")) {
        let up_gen = attr(parent, "max_link_speed")
            .as_deref()
            .and_then(parse_link_speed);
        let up_width = attr(parent, "max_link_width")
            .as_deref()
            .and_then(parse_link_width);
        return Some(PcieLink {
            max_gen: cap(link.max_gen, up_gen),
            max_width: cap(link.max_width, up_width),
            ..link
        });
    }
    Some(link)
}

/// Whether a path component is a PCI address such as "0000:18:00.0".
pub fn is_bdf(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

/// NVML writes bus ids as "00000000:18:00.0" (8-digit domain, upper case); sysfs as
/// "0000:18:00.0". Both become the sysfs form so the two sources can be joined.
pub fn normalize_bus_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    match id.split_once(':') {
        // Keep the domain's last four digits ("00000000" -> "0000").
        Some((domain, rest)) if domain.len() > 4 && domain.is_ascii() => {
            format!("{}:{rest}", &domain[domain.len() - 4..])
        }
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_speed_strings_give_generations() {
        assert_eq!(parse_link_speed("16.0 GT/s PCIe"), Some(4));
        assert_eq!(parse_link_speed("32.0 GT/s PCIe"), Some(5));
        assert_eq!(parse_link_speed("8 GT/s"), Some(3));
        assert_eq!(parse_link_speed("2.5 GT/s PCIe"), Some(1));
        assert_eq!(parse_link_speed("Unknown"), None);
        assert_eq!(parse_link_width("16"), Some(16));
        assert_eq!(parse_link_width("0"), None);
    }

    #[test]
    fn encoding_arithmetic() {
        let g4 = gbps_per_direction(4, 16).unwrap();
        assert!((g4 - 16.0 * 16.0 * 128.0 / 130.0 / 8.0).abs() < 1e-9);
        assert!((g4 - 31.5).abs() < 0.01);
        assert!((gbps_per_direction(5, 16).unwrap() - 63.0).abs() < 0.05);
        assert!((gbps_per_direction(2, 8).unwrap() - 4.0).abs() < 1e-9);
        assert!(derivation(4, 16).unwrap().contains("31.5 GB/s"));
    }

    #[test]
    fn bus_ids_are_joined_in_sysfs_form() {
        assert_eq!(normalize_bus_id("00000000:1B:00.0"), "0000:1b:00.0");
        assert_eq!(normalize_bus_id("0000:1b:00.0"), "0000:1b:00.0");
        assert!(is_bdf("0000:1b:00.0"));
        assert!(!is_bdf("pci0000:15"));
    }
}
