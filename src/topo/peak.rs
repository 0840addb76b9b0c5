//! The speed of light of a communicator: the per-GPU unidirectional bandwidth of the slowest
//! fabric its ring or tree must cross, and the %peak shown next to busbw. The arithmetic and the
//! sources of every figure are in docs/METRICS.md.

use super::gpu::{Gpu, LinkKind, Remote, Vendor};
use super::{pcie, Affinity, NodeTopology};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Where one rank runs: its host (as `NodeTopology::host`) and local device index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankPlacement {
    pub rank: usize,
    pub host: String,
    /// The GPU's index among the node's GPUs as NVML / ROCm SMI number them.
    pub local_device: u32,
    /// The GPU's PCI address, when the backend knows it ("0000:1b:00.0" or NVML's
    /// "00000000:1B:00.0"). Preferred over `local_device`, which CUDA_VISIBLE_DEVICES and
    /// CUDA_DEVICE_ORDER renumber.
    #[serde(default)]
    pub bus_id: Option<String>,
}

impl RankPlacement {
    /// A rank known by host and local device index only.
    pub fn new(rank: usize, host: &str, local_device: u32) -> Self {
        RankPlacement {
            rank,
            host: host.to_string(),
            local_device,
            bus_id: None,
        }
    }
}

/// A speed of light in GB/s (1 GB = 1e9 bytes, as busbw), per GPU and per direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub gbps: f64,
    /// The fabric that bounds it ("NVLink4", "PCIe Gen4 x16", "RDMA (InfiniBand)", "--peak").
    pub fabric: String,
    /// How the figure was obtained, e.g.
    /// "18 x NVLink4 at 25 GB/s per direction = 450 GB/s per GPU".
    pub derivation: String,
}

impl Peak {
    /// A figure given by the user (`--peak GBPS`), which replaces the model.
    pub fn from_override(gbps: f64) -> Peak {
        Peak {
            gbps,
            fabric: "--peak".to_string(),
            derivation: format!("given with --peak: {} GB/s", fmt_gbps(gbps)),
        }
    }
}

fn fmt_gbps(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// One bound on a GPU's bandwidth, with its explanation.
#[derive(Debug, Clone)]
struct Bound {
    gbps: f64,
    fabric: String,
    derivation: String,
}

fn pcie_bound(g: &Gpu) -> Option<Bound> {
    let p = g.pcie.as_ref()?;
    let (gen, width) = (p.max_gen?, p.max_width?);
    Some(Bound {
        gbps: pcie::gbps_per_direction(gen, width)?,
        fabric: format!("PCIe Gen{gen} x{width}"),
        derivation: pcie::derivation(gen, width)?,
    })
}

/// The bandwidth GPU `g` has towards `peers` (other GPUs of the communicator on its node):
/// its NVLink/xGMI links if they reach every peer (through a switch or directly), else PCIe.
fn intra_node_bound(g: &Gpu, peers: &[&str]) -> Result<Bound, String> {
    if !g.links_known {
        return Err(format!(
            "GPU {} ({}): its NVLink/xGMI links are unknown (no NVML/ROCm SMI answers)",
            g.index, g.bus_id
        ));
    }
    let reaches = |peer: &str| {
        g.links.iter().any(|l| match &l.remote {
            Remote::Switch | Remote::Other(_) => l.kind == LinkKind::NvLink,
            Remote::Gpu(b) => b == peer,
        })
    };
    let usable: Vec<_> = g
        .links
        .iter()
        .filter(|l| match &l.remote {
            Remote::Gpu(b) => peers.contains(&b.as_str()),
            _ => true,
        })
        .collect();
    if !usable.is_empty() && peers.iter().all(|p| reaches(p)) {
        // Group links by (kind, generation, rate) for the derivation text.
        let mut groups: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
        for l in &usable {
            let Some(rate) = l.gbps_per_direction else {
                return Err(format!(
                    "GPU {} ({}): link {} has no known rate",
                    g.index, g.bus_id, l.index
                ));
            };
            let name = match l.kind {
                LinkKind::NvLink => format!(
                    "NVLink{}",
                    l.generation.map_or("?".into(), |v| v.to_string())
                ),
                LinkKind::Xgmi => "xGMI".to_string(),
            };
            let e = groups.entry((name, fmt_gbps(rate))).or_insert((0, rate));
            e.0 += 1;
        }
        let total: f64 = groups.values().map(|(n, r)| *n as f64 * r).sum();
        let parts: Vec<String> = groups
            .iter()
            .map(|((name, r), (n, _))| format!("{n} x {name} at {r} GB/s per direction"))
            .collect();
        let fabric: Vec<&str> = groups.keys().map(|(n, _)| n.as_str()).collect();
        return Ok(Bound {
            gbps: total,
            fabric: fabric.join("+"),
            derivation: format!("{} = {} GB/s per GPU", parts.join(" + "), fmt_gbps(total)),
        });
    }
    pcie_bound(g).ok_or_else(|| format!("GPU {} ({}): PCIe link unknown", g.index, g.bus_id))
}

/// The node's network bandwidth in Gb/s, and its description. RDMA NICs that share a PCIe
/// switch with a GPU are the GPU NICs; when there are such, only they count (storage and
/// management NICs sit elsewhere). Without RDMA, Ethernet interfaces that are up count.
fn node_network(node: &NodeTopology) -> Option<(f64, String)> {
    let gpu_nics: Vec<&str> = node
        .affinity
        .iter()
        .filter(|a| a.affinity == Affinity::SamePcieSwitch)
        .map(|a| a.nic.as_str())
        .collect();
    let nics: Vec<_> = node
        .rdma_nics
        .iter()
        .filter(|n| {
            n.active_gbit() > 0.0 && (gpu_nics.is_empty() || gpu_nics.contains(&n.name.as_str()))
        })
        .collect();
    if !nics.is_empty() {
        let total: f64 = nics.iter().map(|n| n.active_gbit()).sum();
        let mut rates: BTreeMap<String, usize> = BTreeMap::new();
        for n in &nics {
            for p in n.ports.iter().filter(|p| p.active) {
                let layer = p.link_layer.clone().unwrap_or_else(|| "RDMA".into());
                *rates
                    .entry(format!(
                        "{} Gb/s {layer}",
                        fmt_gbps(p.gbit_per_s.unwrap_or(0.0))
                    ))
                    .or_default() += 1;
            }
        }
        let desc: Vec<String> = rates.iter().map(|(r, n)| format!("{n} x {r}")).collect();
        return Some((total, format!("{} RDMA ports", desc.join(" + "))));
    }
    let eth: Vec<_> = node
        .net_interfaces
        .iter()
        .filter(|i| i.operstate.as_deref() == Some("up") && i.speed_mbit.is_some())
        .collect();
    if eth.is_empty() {
        return None;
    }
    let total: f64 = eth
        .iter()
        .map(|i| i.speed_mbit.unwrap_or(0) as f64 / 1000.0)
        .sum();
    let names: Vec<&str> = eth.iter().map(|i| i.name.as_str()).collect();
    Some((
        total,
        format!("Ethernet without RDMA ({})", names.join(", ")),
    ))
}

/// The speed of light of the communicator made of `placement`'s ranks on `nodes`, per GPU and
/// per direction: what one rank can send while every rank sends, which is what ring and tree
/// busbw is measured against. None when a node, GPU or link it needs is unknown.
pub fn communicator_peak(nodes: &[NodeTopology], placement: &[RankPlacement]) -> Option<Peak> {
    communicator_peak_explained(nodes, placement).ok()
}

/// The GPU a rank runs on: by its PCI address where the backend knows it, else by its local index
/// among the node's GPUs of the node's main vendor.
pub fn gpu_on<'a>(node: &'a NodeTopology, r: &RankPlacement) -> Result<&'a Gpu, String> {
    let found = match &r.bus_id {
        Some(b) => {
            let b = pcie::normalize_bus_id(b);
            node.gpus.iter().find(|g| g.bus_id == b)
        }
        None => node
            .gpus
            .iter()
            .find(|g| g.index == r.local_device && g.vendor == primary_vendor(node)),
    };
    found.ok_or_else(|| match &r.bus_id {
        Some(b) => format!("{} has no GPU at {b} (rank {})", node.host, r.rank),
        None => format!(
            "{} has no GPU {} (rank {})",
            node.host, r.local_device, r.rank
        ),
    })
}

/// The GPU of every rank, in the order of `placement`: the first rank whose GPU is not found says so.
pub fn gpus_of<'a>(
    nodes: &'a [NodeTopology],
    placement: &[RankPlacement],
) -> Result<Vec<&'a Gpu>, String> {
    placement
        .iter()
        .map(|r| {
            let node = nodes
                .iter()
                .find(|n| n.host == r.host)
                .ok_or_else(|| format!("no topology for host {}", r.host))?;
            gpu_on(node, r)
        })
        .collect()
}

/// As `communicator_peak`, with the reason when there is no figure.
pub fn communicator_peak_explained(
    nodes: &[NodeTopology],
    placement: &[RankPlacement],
) -> Result<Peak, String> {
    if placement.is_empty() {
        return Err("no ranks".to_string());
    }
    let mut by_host: BTreeMap<&str, Vec<&RankPlacement>> = BTreeMap::new();
    for r in placement {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    let multi_node = by_host.len() > 1;
    let mut best: Option<(Bound, String)> = None;
    for (host, devices) in &by_host {
        let node = nodes
            .iter()
            .find(|n| n.host == *host)
            .ok_or_else(|| format!("no topology for host {host}"))?;
        let gpus: Vec<&Gpu> = devices
            .iter()
            .map(|r| gpu_on(node, r))
            .collect::<Result<_, _>>()?;
        let mut bounds: Vec<Bound> = Vec::new();
        if gpus.len() > 1 {
            for g in &gpus {
                let peers: Vec<&str> = gpus
                    .iter()
                    .filter(|p| p.bus_id != g.bus_id)
                    .map(|p| p.bus_id.as_str())
                    .collect();
                bounds.push(intra_node_bound(g, &peers)?);
            }
        }
        if multi_node {
            let (gbit, desc) =
                node_network(node).ok_or_else(|| format!("{host}: no active network port"))?;
            let k = gpus.len() as f64;
            let share = gbit / 8.0 / k;
            bounds.push(Bound {
                gbps: share,
                fabric: if desc.starts_with("Ethernet") {
                    "Ethernet".into()
                } else {
                    "RDMA".into()
                },
                derivation: format!(
                    "{desc} = {} Gb/s / 8 = {} GB/s shared by {} GPUs = {} GB/s per GPU",
                    fmt_gbps(gbit),
                    fmt_gbps(gbit / 8.0),
                    gpus.len(),
                    fmt_gbps(share)
                ),
            });
            // GPUDirect RDMA leaves the GPU over its own PCIe link.
            for g in &gpus {
                bounds.push(
                    pcie_bound(g)
                        .ok_or_else(|| format!("{host} GPU {}: PCIe link unknown", g.index))?,
                );
            }
        }
        if bounds.is_empty() {
            return Err(format!(
                "{host}: one GPU and no other node: nothing to cross"
            ));
        }
        let low = bounds
            .iter()
            .cloned()
            .fold(None::<Bound>, |acc, b| match acc {
                Some(a) if a.gbps <= b.gbps => Some(a),
                _ => Some(b),
            });
        let mut low = low.expect("bounds is not empty");
        // Name every kind of bound that was weighed, lowest per fabric: "min(NVLink4 450, RDMA 50,
        // PCIe Gen5 x16 63.02) = 50".
        let mut per_fabric: BTreeMap<&str, f64> = BTreeMap::new();
        for b in &bounds {
            let e = per_fabric.entry(b.fabric.as_str()).or_insert(b.gbps);
            *e = e.min(b.gbps);
        }
        if per_fabric.len() > 1 {
            let weighed: Vec<String> = per_fabric
                .iter()
                .map(|(f, g)| format!("{f} {}", fmt_gbps(*g)))
                .collect();
            low.derivation = format!(
                "min({}) = {}: {}",
                weighed.join(", "),
                fmt_gbps(low.gbps),
                low.derivation
            );
        }
        if best.as_ref().is_none_or(|(b, _)| low.gbps < b.gbps) {
            best = Some((low, host.to_string()));
        }
    }
    let (b, host) = best.expect("at least one host");
    let derivation = if by_host.len() == 1 {
        b.derivation
    } else {
        format!(
            "lowest over {} nodes, on {host}: {}",
            by_host.len(),
            b.derivation
        )
    };
    Ok(Peak {
        gbps: b.gbps,
        fabric: b.fabric,
        derivation,
    })
}

/// The GPUs a node's local device indices refer to: NVIDIA's if it has any, else AMD's.
fn primary_vendor(node: &NodeTopology) -> Vendor {
    if node.gpus.iter().any(|g| g.vendor == Vendor::Nvidia) {
        Vendor::Nvidia
    } else {
        Vendor::Amd
    }
}

/// busbw as a percentage of the peak. Ring and tree algorithms cannot exceed the link peak, but
/// NVLink SHARP (NVLS) and InfiniBand SHARP reduce inside the switch, so each GPU sends its data
/// once instead of 2(n-1)/n times and busbw (computed with the ring factor) can pass 100 %.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentOfPeak {
    pub percent: f64,
    pub above_peak: bool,
}

/// Marker and footnote for table cells: "112%*" with this line under the table.
pub const ABOVE_PEAK_FOOTNOTE: &str =
    "* above the link peak: the busbw formula assumes a ring; in-network reduction (NVLS, SHARP) sends less";

pub fn percent_of_peak(busbw_gbps: f64, peak: &Peak) -> Option<PercentOfPeak> {
    (peak.gbps > 0.0 && busbw_gbps.is_finite()).then(|| PercentOfPeak {
        percent: busbw_gbps / peak.gbps * 100.0,
        above_peak: busbw_gbps > peak.gbps,
    })
}

impl PercentOfPeak {
    /// "87%" or "112%*" (see ABOVE_PEAK_FOOTNOTE).
    pub fn short(&self) -> String {
        format!(
            "{:.0}%{}",
            self.percent,
            if self.above_peak { "*" } else { "" }
        )
    }
}

impl fmt::Display for PercentOfPeak {
    /// "87%" or "112% (above link peak: in-network reduction?)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.above_peak {
            write!(
                f,
                "{:.0}% (above link peak: in-network reduction?)",
                self.percent
            )
        } else {
            write!(f, "{:.0}%", self.percent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_marks_values_above_the_peak() {
        let p = Peak::from_override(400.0);
        let under = percent_of_peak(348.0, &p).unwrap();
        assert_eq!(under.to_string(), "87%");
        assert_eq!(under.short(), "87%");
        let over = percent_of_peak(448.0, &p).unwrap();
        assert_eq!(
            over.to_string(),
            "112% (above link peak: in-network reduction?)"
        );
        assert_eq!(over.short(), "112%*");
        assert!(percent_of_peak(1.0, &Peak::from_override(0.0)).is_none());
    }

    #[test]
    fn tables() {
        assert_eq!(fmt_gbps(31.507692), "31.51");
        assert_eq!(fmt_gbps(450.0), "450");
    }
}
