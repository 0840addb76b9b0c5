//! GPUs on one node: found on the PCI bus (sysfs), named and linked by NVML (NVLink) or ROCm SMI
//! (xGMI), each source filling what it can and noting what it cannot.

use super::amd::AmdSource;
use super::nvml::{NvmlSource, NVLINK_MAX_LINKS};
use super::pcie::{self, PcieLink};
use super::sysroot::SysRoot;
use super::Unknown;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vendor {
    Nvidia,
    Amd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// Local device index: NVML's (or ROCm SMI's) order, else PCI order. This is the index a
    /// rank's `local device` refers to.
    pub index: u32,
    pub vendor: Vendor,
    pub name: Option<String>,
    /// PCI address in sysfs form ("0000:18:00.0").
    pub bus_id: String,
    /// Path under /sys/devices: the bridges and switches above the GPU.
    pub device_path: Option<String>,
    pub numa_node: Option<i32>,
    /// "Hopper", "Ampere", ... from NVML.
    pub architecture: Option<String>,
    pub pcie: Option<PcieLink>,
    /// NVLink or xGMI links, active ones only.
    pub links: Vec<GpuLink>,
    /// Whether the GPU's links could be asked about at all (false: NVML/ROCm SMI missing).
    pub links_known: bool,
    /// The GPU's index in NVML or ROCm SMI; None when the library does not see it (absent, or a
    /// container that exposes only some GPUs while /sys shows them all).
    pub library_index: Option<u32>,
    /// Bytes of device memory, as NVML (nvmlDeviceGetMemoryInfo_v2's total) or ROCm SMI (VRAM total)
    /// reports it; None where neither answers.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkKind {
    NvLink,
    Xgmi,
}

/// The far end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remote {
    /// An NVSwitch: reaches every GPU on the switch fabric.
    Switch,
    /// Another GPU, by PCI address (sysfs form).
    Gpu(String),
    /// Something else (a CPU on POWER, an unrecognised device), or not reported.
    Other(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuLink {
    pub kind: LinkKind,
    /// Link number on the GPU (NVLink), or the peer's device index (xGMI).
    pub index: u32,
    /// NVLink generation (2, 3, 4, 5) or xGMI's (3 on MI300X).
    pub generation: Option<u32>,
    /// What NVML answered to nvmlDeviceGetNvLinkVersion (an nvmlNvlinkVersion_t), kept as said.
    pub nvml_version: Option<u32>,
    /// Data bandwidth in one direction, GB/s, from the per-generation table in `peak`.
    pub gbps_per_direction: Option<f64>,
    pub remote: Remote,
}

/// PCI ids of devices discovery recognises: (vendor, device, name). Used for the name when no
/// management library answers; NVSwitches are recognised by class (0x0680) instead.
const KNOWN_DEVICES: &[(u32, u32, &str)] = &[
    (0x10de, 0x2330, "NVIDIA H100 80GB HBM3"),
    (0x10de, 0x2321, "NVIDIA H100 NVL"),
    (0x10de, 0x2335, "NVIDIA H200"),
    (0x10de, 0x2901, "NVIDIA B200"),
    (0x10de, 0x20b0, "NVIDIA A100-SXM4-40GB"),
    (0x10de, 0x20b2, "NVIDIA A100-SXM4-80GB"),
    (0x10de, 0x26b9, "NVIDIA L40S"),
    (0x1002, 0x74a1, "AMD Instinct MI300X"),
    (0x1002, 0x74a5, "AMD Instinct MI325X"),
];

/// nvmlDeviceArchitecture_t values.
fn architecture_name(a: u32) -> Option<&'static str> {
    Some(match a {
        2 => "Kepler",
        3 => "Maxwell",
        4 => "Pascal",
        5 => "Volta",
        6 => "Turing",
        7 => "Ampere",
        8 => "Ada",
        9 => "Hopper",
        10 => "Blackwell",
        _ => return None,
    })
}

/// NVLink generation of a GPU architecture: the most reliable key, since
/// nvmlDeviceGetNvLinkVersion returns an enum (A100 answers 4 or 5, "3.0"/"3.1") that drivers
/// have been seen to misreport (hwloc issue 658; vLLM works around H100 answering 7).
fn nvlink_generation_of_arch(a: u32) -> Option<u32> {
    match a {
        4 => Some(1),
        5 => Some(2),
        7 => Some(3),
        9 => Some(4),
        10 => Some(5),
        _ => None,
    }
}

/// nvmlNvlinkVersion_t -> generation: 1 "1.0", 2 "2.0", 3 "2.2", 4 "3.0", 5 "3.1", 6 "4.0", 7 "5.0".
fn nvlink_generation_of_version(v: u32) -> Option<u32> {
    match v {
        1 => Some(1),
        2 | 3 => Some(2),
        4 | 5 => Some(3),
        6 => Some(4),
        7 => Some(5),
        _ => None,
    }
}

/// A PCI device found by scanning /sys/bus/pci/devices.
#[derive(Debug, Clone)]
pub struct PciDevice {
    pub bus_id: String,
    pub vendor: u32,
    pub device: u32,
    pub class: u32,
    pub path: Option<String>,
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

pub fn scan_pci(root: &SysRoot, unknown: &mut Vec<Unknown>) -> Vec<PciDevice> {
    let names = match root.list("/sys/bus/pci/devices") {
        Ok(n) => n,
        Err(e) => {
            unknown.push(Unknown::new("PCI devices", e));
            return Vec::new();
        }
    };
    names
        .into_iter()
        .filter_map(|bus_id| {
            let dir = format!("/sys/bus/pci/devices/{bus_id}");
            let attr = |a: &str| {
                root.read(&format!("{dir}/{a}"))
                    .ok()
                    .as_deref()
                    .and_then(hex)
            };
            Some(PciDevice {
                vendor: attr("vendor")?,
                device: attr("device")?,
                class: attr("class")?,
                path: root.resolve(&dir),
                bus_id,
            })
        })
        .collect()
}

/// An AMD GPU (display controller or processing accelerator of vendor 0x1002).
pub fn is_amd_gpu(d: &PciDevice) -> bool {
    is_gpu(d) == Some(Vendor::Amd)
}

fn is_gpu(d: &PciDevice) -> Option<Vendor> {
    let base = d.class >> 16;
    match d.vendor {
        // Display controllers: VGA (0x0300) and 3D (0x0302, e.g. H100 and A100).
        0x10de if base == 0x03 => Some(Vendor::Nvidia),
        // AMD Instinct parts are "processing accelerators" (0x1200) or display controllers.
        0x1002 if base == 0x03 || base == 0x12 => Some(Vendor::Amd),
        _ => None,
    }
}

/// NVSwitches appear on the PCI bus as NVIDIA "other bridge" devices (class 0x0680).
pub fn nvswitches(pci: &[PciDevice]) -> Vec<String> {
    pci.iter()
        .filter(|d| d.vendor == 0x10de && d.class >> 8 == 0x0680)
        .map(|d| d.bus_id.clone())
        .collect()
}

fn gpu_from_pci(root: &SysRoot, d: &PciDevice, vendor: Vendor) -> Gpu {
    let name = KNOWN_DEVICES
        .iter()
        .find(|(v, id, _)| *v == d.vendor && *id == d.device)
        .map(|(_, _, n)| n.to_string());
    Gpu {
        index: 0,
        vendor,
        name,
        bus_id: d.bus_id.clone(),
        numa_node: d
            .path
            .as_deref()
            .and_then(|p| super::net::numa_node(root, p)),
        pcie: d.path.as_deref().and_then(|p| pcie::sysfs_link(root, p)),
        device_path: d.path.clone(),
        architecture: None,
        links: Vec::new(),
        links_known: false,
        library_index: None,
        memory_bytes: None,
    }
}

/// All GPUs: sysfs gives presence, place and PCIe; NVML and ROCm SMI add names and links.
pub fn discover_gpus(
    root: &SysRoot,
    pci: &[PciDevice],
    nvml: &dyn NvmlSource,
    amd: &dyn AmdSource,
    sources: &mut Vec<super::Source>,
    unknown: &mut Vec<Unknown>,
) -> Vec<Gpu> {
    let mut gpus: Vec<Gpu> = pci
        .iter()
        .filter_map(|d| is_gpu(d).map(|v| gpu_from_pci(root, d, v)))
        .collect();
    let switches = nvswitches(pci);

    let nvidia_in_sysfs = gpus.iter().any(|g| g.vendor == Vendor::Nvidia);
    match nvml.open() {
        Ok(what) => {
            sources.push(super::Source::ok("NVML", what));
            nvml_fill(nvml, &mut gpus, &switches, unknown);
        }
        Err(why) => {
            let status = if why.contains("not found") {
                format!("skipped: {why}")
            } else {
                why
            };
            if nvidia_in_sysfs {
                unknown.push(Unknown::new("NVIDIA GPU names, NVLink", status.clone()));
            }
            sources.push(super::Source::missing("NVML", status));
        }
    }

    let amd_in_sysfs = gpus.iter().any(|g| g.vendor == Vendor::Amd);
    // ROCm SMI is opened only for an AMD GPU on the PCI bus: on other machines (NVIDIA nodes with
    // Debian's Slurm, which brings librocm-smi64) it would only fail and print its own lines.
    let opened = if amd_in_sysfs {
        amd.open()
    } else {
        Err(format!(
            "skipped: no AMD GPU on the PCI bus ({})",
            root.path("/sys/bus/pci/devices").display()
        ))
    };
    match opened {
        Ok(what) => {
            sources.push(super::Source::ok("ROCm SMI", what));
            amd_fill(amd, &mut gpus, unknown);
        }
        Err(why) => {
            let status = if why.contains("not found") {
                format!("skipped: {why}")
            } else {
                why
            };
            if amd_in_sysfs {
                unknown.push(Unknown::new("AMD GPU names, xGMI", status.clone()));
            }
            sources.push(super::Source::missing("ROCm SMI", status));
        }
    }

    // Local indices: the library's numbering (what a process inside this container sees) when it
    // answered, the GPUs it does not see after those; else PCI order, as the libraries use.
    gpus.sort_by(|a, b| {
        let key = |g: &Gpu| {
            (
                g.vendor as u8,
                g.library_index.is_none(),
                g.library_index,
                g.bus_id.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let seen_by_library = |v: Vendor, gpus: &[Gpu]| {
        gpus.iter()
            .any(|g| g.vendor == v && g.library_index.is_some())
    };
    for g in gpus
        .iter()
        .filter(|g| g.library_index.is_none() && seen_by_library(g.vendor, &gpus))
    {
        unknown.push(Unknown::new(
            &format!("GPU {}", g.bus_id),
            "on the PCI bus but not visible to its management library (container or driver)"
                .to_string(),
        ));
    }
    for vendor in [Vendor::Nvidia, Vendor::Amd] {
        for (i, g) in gpus.iter_mut().filter(|g| g.vendor == vendor).enumerate() {
            g.index = i as u32;
        }
    }
    if gpus.is_empty() {
        unknown.push(Unknown::new(
            "GPUs",
            "no NVIDIA or AMD GPU on the PCI bus".to_string(),
        ));
    }
    gpus
}

fn nvml_fill(
    nvml: &dyn NvmlSource,
    gpus: &mut Vec<Gpu>,
    switches: &[String],
    unknown: &mut Vec<Unknown>,
) {
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            unknown.push(Unknown::new("NVML devices", e));
            return;
        }
    };
    // Bus ids first, so a link's far end can be recognised as another GPU.
    let ids: Vec<Option<String>> = (0..count)
        .map(|d| nvml.bus_id(d).ok().map(|b| pcie::normalize_bus_id(&b)))
        .collect();
    for dev in 0..count {
        let Some(bus_id) = ids[dev as usize].clone() else {
            unknown.push(Unknown::new(
                &format!("NVML device {dev}"),
                "no PCI bus id".to_string(),
            ));
            continue;
        };
        let pos = match gpus.iter().position(|g| g.bus_id == bus_id) {
            Some(p) => p,
            None => {
                // NVML sees a GPU sysfs did not show (e.g. a container with a partial /sys).
                gpus.push(Gpu {
                    index: 0,
                    vendor: Vendor::Nvidia,
                    name: None,
                    bus_id: bus_id.clone(),
                    device_path: None,
                    numa_node: None,
                    architecture: None,
                    pcie: None,
                    links: Vec::new(),
                    links_known: false,
                    library_index: None,
                    memory_bytes: None,
                });
                gpus.len() - 1
            }
        };
        let g = &mut gpus[pos];
        g.library_index = Some(dev);
        if let Ok(n) = nvml.name(dev) {
            g.name = Some(n);
        }
        let arch = nvml.architecture(dev).ok();
        g.architecture = arch.and_then(architecture_name).map(str::to_string);
        g.memory_bytes = nvml.memory_total(dev).ok();
        if let Ok((gen, width)) = nvml.max_pcie(dev) {
            let cur = nvml.current_pcie(dev).ok();
            g.pcie = Some(PcieLink {
                current_gen: cur.map(|c| c.0),
                current_width: cur.map(|c| c.1),
                max_gen: Some(gen),
                max_width: Some(width),
                source: "NVML".to_string(),
            });
        }
        g.links.clear();
        g.links_known = true;
        for link in 0..NVLINK_MAX_LINKS {
            match nvml.nvlink_active(dev, link) {
                Ok(true) => {}
                Ok(false) => continue,
                // Past the device's last link NVML says InvalidArg; a PCIe card says NotSupported.
                Err(e) if e == "InvalidArg" || e == "NotSupported" => break,
                Err(e) => {
                    unknown.push(Unknown::new(&format!("GPU {bus_id} NVLink {link}"), e));
                    continue;
                }
            }
            let version = nvml.nvlink_version(dev, link).ok();
            let generation = arch
                .and_then(nvlink_generation_of_arch)
                .or(version.and_then(nvlink_generation_of_version));
            let remote = match nvml.nvlink_remote_pci(dev, link) {
                Ok(r) => {
                    let rb = pcie::normalize_bus_id(&r.bus_id);
                    let vendor = r.pci_device_id & 0xffff;
                    let device = r.pci_device_id >> 16;
                    if ids.iter().flatten().any(|b| *b == rb) {
                        Remote::Gpu(rb)
                    } else if switches.contains(&rb)
                        || (vendor == 0x10de && NVSWITCH_IDS.contains(&device))
                    {
                        Remote::Switch
                    } else {
                        Remote::Other(Some(rb))
                    }
                }
                Err(_) => Remote::Other(None),
            };
            g.links.push(GpuLink {
                kind: LinkKind::NvLink,
                index: link,
                generation,
                nvml_version: version,
                gbps_per_direction: generation
                    .and_then(|gen| super::rates::nvlink_link_gbps(gen, g.name.as_deref())),
                remote,
            });
        }
    }
}

/// NVSwitch PCI device ids (NVIDIA vendor 0x10de): first generation (DGX-2), second (A100 HGX),
/// third (H100 HGX). Also recognised by PCI class when the switch is visible in sysfs.
const NVSWITCH_IDS: &[u32] = &[0x1ac0, 0x1ac1, 0x1ac2, 0x1af1, 0x22a3];

fn amd_fill(amd: &dyn AmdSource, gpus: &mut [Gpu], unknown: &mut Vec<Unknown>) {
    let listed = match amd.gpus() {
        Ok(l) => l,
        Err(e) => {
            unknown.push(Unknown::new("AMD GPUs", e));
            return;
        }
    };
    for (src, a) in listed.iter().enumerate() {
        let bus_id = pcie::normalize_bus_id(&a.bus_id);
        let Some(g) = gpus.iter_mut().find(|g| g.bus_id == bus_id) else {
            unknown.push(Unknown::new(
                &format!("AMD GPU {bus_id}"),
                "listed by ROCm SMI, not found in sysfs".into(),
            ));
            continue;
        };
        g.library_index = Some(src as u32);
        if a.name.is_some() {
            g.name = a.name.clone();
        }
        g.memory_bytes = a.memory_total;
        g.links_known = true;
        g.links.clear();
        let rate = g
            .name
            .as_deref()
            .and_then(super::rates::xgmi_gbps_per_direction);
        for (dst, peer) in listed.iter().enumerate() {
            if dst == src {
                continue;
            }
            match amd.link(src, dst) {
                // One hop over xGMI: a direct link (MI300X platforms are a full mesh, one link
                // to each of the seven peers).
                Ok(l) if l.link_type == "XGMI" && l.hops == 1 => g.links.push(GpuLink {
                    kind: LinkKind::Xgmi,
                    index: dst as u32,
                    generation: rate.map(|(gen, _)| gen),
                    nvml_version: None,
                    gbps_per_direction: rate.map(|(_, r)| r),
                    remote: Remote::Gpu(pcie::normalize_bus_id(&peer.bus_id)),
                }),
                Ok(_) => {}
                Err(e) => unknown.push(Unknown::new(
                    &format!("link {bus_id} -> {}", peer.bus_id),
                    e,
                )),
            }
        }
    }
}
