//! Topology of the nodes a communicator runs on, and the speed of light it implies: which GPUs,
//! NVLink/xGMI links, PCIe links and RDMA NICs a node has, found without ever failing (what
//! cannot be found is reported as unknown, with the reason).

//!
//! How a run uses it: every rank calls [`discover_live`] (cheap: sysfs reads and a few NVML
//! calls), the ranks all-gather their `NodeTopology` as JSON (one per host is enough), each rank's
//! [`RankPlacement`] (host, local device, PCI bus id) is gathered too, and rank 0 asks
//! [`communicator_peak`] for the speed of light of the communicator, unless `--peak` gave one
//! ([`Peak::from_override`]). [`peak::percent_of_peak`] formats the %peak column, and [`render()`]
//! is `collbench topo`. The model is described in docs/METRICS.md.

pub mod amd;
pub mod gpu;
pub mod net;
pub mod nvml;
pub mod pcie;
pub mod peak;
pub mod port_counters;
pub mod rates;
pub mod render;
pub mod sysroot;

pub use amd::{AmdSource, FixtureAmd, LiveAmd};
pub use gpu::{Gpu, GpuLink, LinkKind, Remote, Vendor};
pub use net::{NetInterface, RdmaNic, RdmaPort};
pub use nvml::{FixtureNvml, LiveNvml, NvmlSource};
pub use pcie::PcieLink;
pub use peak::{communicator_peak, Peak, RankPlacement};
pub use render::render;
pub use sysroot::SysRoot;

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything discovery learnt about one node. Travels between ranks as JSON (rank 0 gathers
/// every node's) and goes into the results JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTopology {
    pub host: String,
    pub gpus: Vec<Gpu>,
    /// PCI addresses of the NVSwitches visible on this node.
    pub nvswitches: Vec<String>,
    /// Some(true) when an NVSwitch was seen (on the PCI bus or at the end of an NVLink),
    /// Some(false) when NVLinks were read and none ends at a switch, None when nothing says.
    pub nvswitch_present: Option<bool>,
    pub rdma_nics: Vec<RdmaNic>,
    pub net_interfaces: Vec<NetInterface>,
    /// For each GPU, how close each RDMA NIC is.
    pub affinity: Vec<GpuNicAffinity>,
    /// Which sources answered (sysfs, NVML, ROCm SMI) and which did not, with why.
    pub sources: Vec<Source>,
    /// What could not be found, and why.
    pub unknown: Vec<Unknown>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub ok: bool,
    /// What answered ("NVML, driver 550.54.15") or why nothing did ("skipped: NVML not found").
    pub detail: String,
}

impl Source {
    pub fn ok(name: &str, detail: String) -> Self {
        Source {
            name: name.to_string(),
            ok: true,
            detail,
        }
    }
    pub fn missing(name: &str, detail: String) -> Self {
        Source {
            name: name.to_string(),
            ok: false,
            detail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    pub what: String,
    pub why: String,
}

impl Unknown {
    pub fn new(what: &str, why: String) -> Self {
        Unknown {
            what: what.to_string(),
            why,
        }
    }
}

/// How close a NIC is to a GPU, closest first (the order nvidia-smi topo uses: PIX/PXB, PHB,
/// NODE, SYS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Affinity {
    /// Below the same PCIe switch: traffic never crosses the CPU.
    SamePcieSwitch,
    /// Same PCIe root complex (host bridge), no common switch.
    SameRootComplex,
    /// Same NUMA node, different root complexes.
    SameNumaNode,
    /// Different NUMA nodes: traffic crosses the inter-socket link.
    CrossNuma,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuNicAffinity {
    pub gpu: u32,
    pub gpu_bus_id: String,
    pub nic: String,
    pub affinity: Affinity,
}

/// Closeness of two PCI devices from their /sys/devices paths and NUMA nodes.
pub fn affinity(
    a_path: Option<&str>,
    a_numa: Option<i32>,
    b_path: Option<&str>,
    b_numa: Option<i32>,
) -> Affinity {
    if let (Some(a), Some(b)) = (a_path, b_path) {
        let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
        let common: Vec<&str> = pa
            .iter()
            .zip(&pb)
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| *x)
            .collect();
        // A PCI device above both (a root port or a switch port) means they share a switch:
        // a root port alone has one link, so two devices below it sit behind a switch.
        if common.iter().any(|c| pcie::is_bdf(c)) {
            return Affinity::SamePcieSwitch;
        }
        if common.last().is_some_and(|c| c.starts_with("pci")) {
            return Affinity::SameRootComplex;
        }
    }
    match (a_numa, b_numa) {
        (Some(x), Some(y)) if x == y => Affinity::SameNumaNode,
        (Some(_), Some(_)) => Affinity::CrossNuma,
        _ => Affinity::Unknown,
    }
}

/// Discovers one node through `root` (sysfs, procfs), `nvml` and `amd`. Never fails: whatever
/// is missing is listed in `unknown` and `sources`.
pub fn discover(root: &SysRoot, nvml: &dyn NvmlSource, amd: &dyn AmdSource) -> NodeTopology {
    let mut unknown = Vec::new();
    let mut sources = Vec::new();
    let host = root
        .read("/proc/sys/kernel/hostname")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            if root.is_live() {
                crate::world::host_name()
            } else {
                "unknown-host".to_string()
            }
        });

    let pci = gpu::scan_pci(root, &mut unknown);
    sources.push(if pci.is_empty() {
        Source::missing(
            "sysfs",
            format!(
                "no PCI devices under {}",
                root.path("/sys/bus/pci/devices").display()
            ),
        )
    } else {
        Source::ok(
            "sysfs",
            format!(
                "{} PCI devices under {}",
                pci.len(),
                root.path("/sys").display()
            ),
        )
    });
    let gpus = gpu::discover_gpus(root, &pci, nvml, amd, &mut sources, &mut unknown);
    let nvswitches = gpu::nvswitches(&pci);
    let nvidia_links_read = gpus
        .iter()
        .any(|g| g.vendor == Vendor::Nvidia && g.links_known);
    let nvswitch_present = if !nvswitches.is_empty()
        || gpus
            .iter()
            .flat_map(|g| &g.links)
            .any(|l| l.remote == Remote::Switch)
    {
        Some(true)
    } else if nvidia_links_read
        || (!pci.is_empty() && !gpus.iter().any(|g| g.vendor == Vendor::Nvidia))
    {
        // NVLinks read and none ends at a switch, or a PCI bus without NVIDIA GPUs.
        Some(false)
    } else {
        None
    };

    let rdma_nics = net::rdma_nics(root, &mut unknown);
    let net_interfaces = net::net_interfaces(root, &rdma_nics, &mut unknown);
    let affinity = gpus
        .iter()
        .flat_map(|g| {
            rdma_nics.iter().map(move |n| GpuNicAffinity {
                gpu: g.index,
                gpu_bus_id: g.bus_id.clone(),
                nic: n.name.clone(),
                affinity: affinity(
                    g.device_path.as_deref(),
                    g.numa_node,
                    n.device_path.as_deref(),
                    n.numa_node,
                ),
            })
        })
        .collect();

    NodeTopology {
        host,
        gpus,
        nvswitches,
        nvswitch_present,
        rdma_nics,
        net_interfaces,
        affinity,
        sources,
        unknown,
    }
}

/// This machine's root: "/", or the folder of the test switch COLLBENCH_TEST_TOPO_ROOT.
pub fn live_root() -> SysRoot {
    crate::testing::topo_root()
        .map(SysRoot::at)
        .unwrap_or_else(SysRoot::live)
}

/// This machine: its root and the NVML and ROCm SMI libraries if they load (ROCm SMI only when the PCI
/// bus has an AMD GPU).
pub fn discover_live() -> NodeTopology {
    discover(&live_root(), &LiveNvml::new(), &LiveAmd::new())
}

/// Whether the PCI bus under `root` says there is no AMD GPU: Some(false) when it lists devices and
/// none is one, Some(true) when one is, None when the bus cannot be read (a sandbox hiding sysfs), where
/// only asking the libraries can tell.
pub fn amd_gpu_on_pci(root: &SysRoot) -> Option<bool> {
    let devices = gpu::scan_pci(root, &mut Vec::new());
    if devices.is_empty() {
        return None;
    }
    Some(devices.iter().any(gpu::is_amd_gpu))
}

/// A recorded machine: `dir` laid out as "/" (sys/, proc/), with NVML's answers in
/// `dir/nvml.json` and ROCm SMI's in `dir/amdsmi.json` when the machine has them.
pub fn discover_fixture(dir: &Path) -> NodeTopology {
    let nvml = match dir.join("nvml.json") {
        p if p.exists() => FixtureNvml::from_file(&p).unwrap_or_else(|e| FixtureNvml::absent(&e)),
        _ => FixtureNvml::absent("NVML not found (no nvml.json in the fixture)"),
    };
    let amd = match dir.join("amdsmi.json") {
        p if p.exists() => FixtureAmd::from_file(&p).unwrap_or_else(|e| FixtureAmd::absent(&e)),
        _ => FixtureAmd::absent("AMD SMI / ROCm SMI not found (no amdsmi.json in the fixture)"),
    };
    discover(&SysRoot::at(dir), &nvml, &amd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_from_device_paths() {
        let gpu = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0";
        let nic = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:19:00.0";
        let far = "/sys/devices/pci0000:9a/0000:9a:01.0/0000:9b:00.0";
        assert_eq!(
            affinity(Some(gpu), Some(0), Some(nic), Some(0)),
            Affinity::SamePcieSwitch
        );
        assert_eq!(
            affinity(Some(gpu), Some(0), Some(far), Some(1)),
            Affinity::CrossNuma
        );
        assert_eq!(
            affinity(Some(gpu), Some(0), Some(far), Some(0)),
            Affinity::SameNumaNode
        );
        assert_eq!(affinity(None, None, Some(far), Some(0)), Affinity::Unknown);
    }
}
