//! Text for `collbench topo`: per host, the GPUs and their links, the NICs, GPU-to-NIC
//! affinity, and what could not be found.

use super::gpu::{LinkKind, Remote};
use super::{Affinity, NodeTopology};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Human-readable description of every node, in the order given.
pub fn render(nodes: &[NodeTopology]) -> String {
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_node(&mut out, n);
    }
    out
}

fn render_node(out: &mut String, n: &NodeTopology) {
    let _ = writeln!(out, "host {}", n.host);
    for s in &n.sources {
        let _ = writeln!(
            out,
            "  source {:<9} {}{}",
            s.name,
            if s.ok || s.detail.starts_with("skipped") {
                ""
            } else {
                "unavailable: "
            },
            s.detail
        );
    }
    let _ = writeln!(out, "  GPUs: {}", n.gpus.len());
    for g in &n.gpus {
        let pcie = g.pcie.as_ref().map_or("PCIe unknown".to_string(), |p| {
            format!("PCIe {}", p.describe())
        });
        let numa = g.numa_node.map_or("?".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "    {:?} {} {} {} NUMA {numa} {pcie}",
            g.vendor,
            g.index,
            g.bus_id,
            g.name.as_deref().unwrap_or("(name unknown)"),
        );
        if !g.links_known {
            let _ = writeln!(out, "      links: unknown");
            continue;
        }
        if g.links.is_empty() {
            let _ = writeln!(out, "      links: none (PCIe only)");
            continue;
        }
        // Group identical links: "18 x NVLink4 (25 GB/s per direction) to NVSwitch".
        let mut groups: BTreeMap<String, usize> = BTreeMap::new();
        for l in &g.links {
            let kind = match l.kind {
                LinkKind::NvLink => format!(
                    "NVLink{}",
                    l.generation.map_or("?".into(), |v| v.to_string())
                ),
                LinkKind::Xgmi => "xGMI".to_string(),
            };
            let rate = l
                .gbps_per_direction
                .map_or("rate unknown".into(), |r| format!("{r} GB/s per direction"));
            let to = match &l.remote {
                Remote::Switch => "NVSwitch".to_string(),
                Remote::Gpu(b) => format!("GPU {b}"),
                Remote::Other(Some(b)) => format!("device {b}"),
                Remote::Other(None) => "remote unknown".to_string(),
            };
            *groups
                .entry(format!("{kind} ({rate}) to {to}"))
                .or_default() += 1;
        }
        for (what, count) in groups {
            let _ = writeln!(out, "      {count} x {what}");
        }
    }
    let sw = match n.nvswitch_present {
        Some(true) => format!("yes ({} on the PCI bus)", n.nvswitches.len()),
        Some(false) => "no".to_string(),
        None => "unknown".to_string(),
    };
    let _ = writeln!(out, "  NVSwitch: {sw}");
    let _ = writeln!(out, "  RDMA NICs: {}", n.rdma_nics.len());
    for nic in &n.rdma_nics {
        let pcie = nic.pcie.as_ref().map_or("PCIe unknown".to_string(), |p| {
            format!("PCIe {}", p.describe())
        });
        let _ = writeln!(
            out,
            "    {} {} NUMA {} {pcie}",
            nic.name,
            nic.bus_id.as_deref().unwrap_or("(PCI address unknown)"),
            nic.numa_node.map_or("?".to_string(), |v| v.to_string()),
        );
        for p in &nic.ports {
            let _ = writeln!(
                out,
                "      port {}: {} {} {}",
                p.port,
                p.rate.as_deref().unwrap_or("rate unknown"),
                p.state.as_deref().unwrap_or("state unknown"),
                p.link_layer.as_deref().unwrap_or("link layer unknown"),
            );
        }
    }
    if !n.net_interfaces.is_empty() {
        let _ = writeln!(out, "  network interfaces:");
        for i in &n.net_interfaces {
            let speed = i.speed_mbit.map_or("speed unknown".to_string(), |s| {
                format!("{} Gb/s", s as f64 / 1000.0)
            });
            let rdma = i
                .rdma_device
                .as_deref()
                .map_or(String::new(), |r| format!(" (RDMA {r})"));
            let _ = writeln!(
                out,
                "    {} {} {speed}{rdma}",
                i.name,
                i.operstate.as_deref().unwrap_or("?")
            );
        }
    }
    if !n.affinity.is_empty() {
        let _ = writeln!(out, "  GPU-NIC affinity (closest NICs):");
        let mut by_gpu: BTreeMap<u32, Vec<&super::GpuNicAffinity>> = BTreeMap::new();
        for a in &n.affinity {
            by_gpu.entry(a.gpu).or_default().push(a);
        }
        for (gpu, list) in by_gpu {
            let best = list
                .iter()
                .map(|a| a.affinity)
                .min()
                .unwrap_or(Affinity::Unknown);
            let names: Vec<&str> = list
                .iter()
                .filter(|a| a.affinity == best)
                .map(|a| a.nic.as_str())
                .collect();
            let _ = writeln!(out, "    GPU {gpu}: {} ({best:?})", names.join(", "));
        }
    }
    if n.unknown.is_empty() {
        let _ = writeln!(out, "  unknown: nothing");
    } else {
        let _ = writeln!(out, "  unknown:");
        for u in &n.unknown {
            let _ = writeln!(out, "    {}: {}", u.what, u.why);
        }
    }
}
