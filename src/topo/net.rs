//! Network adapters: RDMA ports from /sys/class/infiniband (InfiniBand and RoCE) and Ethernet
//! interfaces from /sys/class/net, with the PCI device each one sits on.

use super::pcie::{self, PcieLink};
use super::sysroot::SysRoot;
use super::Unknown;
use serde::{Deserialize, Serialize};

/// One RDMA device (e.g. mlx5_0) and its ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdmaNic {
    pub name: String,
    /// PCI address ("0000:1a:00.0") and device path under /sys/devices, when known.
    pub bus_id: Option<String>,
    pub device_path: Option<String>,
    pub numa_node: Option<i32>,
    pub pcie: Option<PcieLink>,
    pub ports: Vec<RdmaPort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdmaPort {
    pub port: u32,
    /// The kernel's words: "400 Gb/sec (4X NDR)", "4: ACTIVE", "InfiniBand" / "Ethernet".
    pub rate: Option<String>,
    pub state: Option<String>,
    pub link_layer: Option<String>,
    /// Data rate in Gb/s parsed from `rate`.
    pub gbit_per_s: Option<f64>,
    pub active: bool,
}

impl RdmaNic {
    /// Sum of the active ports' rates, in Gb/s.
    pub fn active_gbit(&self) -> f64 {
        self.ports
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| p.gbit_per_s)
            .sum()
    }
}

/// An Ethernet (or other) network interface backed by a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetInterface {
    pub name: String,
    /// Mb/s as `/sys/class/net/<if>/speed` says; None when the link is down (the kernel answers
    /// EINVAL or -1 then).
    pub speed_mbit: Option<u64>,
    pub operstate: Option<String>,
    pub bus_id: Option<String>,
    /// The RDMA device on the same PCI function (a RoCE port), if any.
    pub rdma_device: Option<String>,
}

/// "400 Gb/sec (4X NDR)" -> 400; "2.5 Gb/sec (1X SDR)" -> 2.5.
pub fn parse_rate(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let n: f64 = it.next()?.parse().ok()?;
    (it.next()? == "Gb/sec").then_some(n)
}

/// "4: ACTIVE" is the state the kernel writes for a port that can carry traffic.
pub fn state_is_active(s: &str) -> bool {
    s.split_once(':').map(|(n, _)| n.trim()) == Some("4") || s.trim().ends_with("ACTIVE")
}

/// The PCI device a class entry (`/sys/class/<cls>/<name>`) sits on: its `device` link.
pub fn class_device(root: &SysRoot, class_entry: &str) -> Option<(String, String)> {
    let path = root.resolve(&format!("{class_entry}/device"))?;
    let last = path.rsplit('/').next()?.to_string();
    pcie::is_bdf(&last).then_some((last, path))
}

pub fn numa_node(root: &SysRoot, device_path: &str) -> Option<i32> {
    root.read(&format!("{device_path}/numa_node"))
        .ok()?
        .parse()
        .ok()
        .filter(|&n: &i32| n >= 0)
}

pub fn rdma_nics(root: &SysRoot, unknown: &mut Vec<Unknown>) -> Vec<RdmaNic> {
    let names = match root.list("/sys/class/infiniband") {
        Ok(n) => n,
        Err(e) => {
            unknown.push(Unknown::new("RDMA NICs", format!("no RDMA devices ({e})")));
            return Vec::new();
        }
    };
    if names.is_empty() {
        unknown.push(Unknown::new(
            "RDMA NICs",
            "no RDMA devices in /sys/class/infiniband".to_string(),
        ));
    }
    names
        .into_iter()
        .map(|name| {
            let entry = format!("/sys/class/infiniband/{name}");
            let dev = class_device(root, &entry);
            let ports_dir = format!("{entry}/ports");
            let ports = root
                .list(&ports_dir)
                .unwrap_or_else(|e| {
                    unknown.push(Unknown::new(&format!("{name} ports"), e));
                    Vec::new()
                })
                .into_iter()
                .filter_map(|p| {
                    let port: u32 = p.parse().ok()?;
                    let attr = |a: &str| root.read(&format!("{ports_dir}/{p}/{a}")).ok();
                    let rate = attr("rate");
                    let state = attr("state");
                    Some(RdmaPort {
                        port,
                        gbit_per_s: rate.as_deref().and_then(parse_rate),
                        active: state.as_deref().is_some_and(state_is_active),
                        rate,
                        state,
                        link_layer: attr("link_layer"),
                    })
                })
                .collect();
            RdmaNic {
                numa_node: dev.as_ref().and_then(|(_, p)| numa_node(root, p)),
                pcie: dev.as_ref().and_then(|(_, p)| pcie::sysfs_link(root, p)),
                bus_id: dev.as_ref().map(|(b, _)| b.clone()),
                device_path: dev.map(|(_, p)| p),
                name,
                ports,
            }
        })
        .collect()
}

/// Interfaces with a device behind them (virtual ones such as lo, bridges and veths have none).
pub fn net_interfaces(
    root: &SysRoot,
    rdma: &[RdmaNic],
    unknown: &mut Vec<Unknown>,
) -> Vec<NetInterface> {
    let names = match root.list("/sys/class/net") {
        Ok(n) => n,
        Err(e) => {
            unknown.push(Unknown::new("network interfaces", e));
            return Vec::new();
        }
    };
    names
        .into_iter()
        .filter_map(|name| {
            let entry = format!("/sys/class/net/{name}");
            let (bus_id, _) = class_device(root, &entry)?;
            let speed_mbit = root
                .read(&format!("{entry}/speed"))
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            Some(NetInterface {
                speed_mbit: speed_mbit.filter(|&s| s > 0).map(|s| s as u64),
                operstate: root.read(&format!("{entry}/operstate")).ok(),
                rdma_device: rdma
                    .iter()
                    .find(|n| n.bus_id.as_deref() == Some(&bus_id))
                    .map(|n| n.name.clone()),
                bus_id: Some(bus_id),
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_rate_and_state_strings() {
        assert_eq!(parse_rate("400 Gb/sec (4X NDR)"), Some(400.0));
        assert_eq!(parse_rate("2.5 Gb/sec (1X SDR)"), Some(2.5));
        assert_eq!(parse_rate("invalid"), None);
        assert!(state_is_active("4: ACTIVE"));
        assert!(!state_is_active("1: DOWN"));
    }
}
