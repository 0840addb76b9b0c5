//! Link rates by generation and product: NVLink per link and direction, AMD xGMI per link. Discovery
//! (topo::gpu) fills links with them and the peak model (topo::peak) sums them.

/// NVLink data bandwidth per link and direction, GB/s, by generation: 1 P100, 2 V100, 3 A100,
/// 4 H100, 5 B200 (NVIDIA architecture white papers and data sheets; see docs/METRICS.md).
pub fn nvlink_gbps_per_direction(generation: u32) -> Option<f64> {
    match generation {
        1 => Some(20.0),
        2..=4 => Some(25.0),
        5 => Some(50.0),
        _ => None,
    }
}

/// NVLink rate of one link of GPU `product` at `generation`. GA102 boards (RTX 3090, RTX A6000,
/// A40) have NVLink3 with x4 links: 14.0625 GB/s per direction (NVIDIA GA102 architecture white
/// paper), not the A100's 25.
pub fn nvlink_link_gbps(generation: u32, product: Option<&str>) -> Option<f64> {
    let ga102 = ["3090", "A6000", "A40", "A5000"];
    if generation == 3 && product.is_some_and(|p| ga102.iter().any(|m| p.contains(m))) {
        return Some(14.0625);
    }
    nvlink_gbps_per_direction(generation)
}

/// (Infinity Fabric generation, GB/s per xGMI link and direction) by AMD product name:
/// MI300X/MI325X 16 lanes x 32 Gb/s = 64 GB/s; MI250(X) 16 lanes x 25 Gb/s = 50 GB/s.
pub fn xgmi_gbps_per_direction(product: &str) -> Option<(u32, f64)> {
    let p = product.to_ascii_uppercase();
    if ["MI300X", "MI325X", "MI300A"].iter().any(|m| p.contains(m)) {
        Some((4, 64.0))
    } else if p.contains("MI250") {
        Some((3, 50.0))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        assert_eq!(nvlink_gbps_per_direction(4), Some(25.0));
        assert_eq!(nvlink_gbps_per_direction(5), Some(50.0));
        assert_eq!(
            nvlink_link_gbps(3, Some("NVIDIA A100-SXM4-80GB")),
            Some(25.0)
        );
        assert_eq!(
            nvlink_link_gbps(3, Some("NVIDIA GeForce RTX 3090")),
            Some(14.0625)
        );
        assert_eq!(
            xgmi_gbps_per_direction("AMD Instinct MI300X"),
            Some((4, 64.0))
        );
    }
}
