//! The NVML source behind a trait: the live library through `nvml-wrapper` (loaded at run time,
//! absent on machines without the NVIDIA driver), or a recorded machine's answers (nvml.json).
//! Calls mirror NVML's own, one question each, so a fixture records exactly what NVML said.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// NVML's answer, or the name of the NVML error (e.g. "NotSupported" for NVLink on a PCIe card,
/// "InvalidArg" for a link index past the device's last link).
pub type Answer<T> = Result<T, String>;

/// The NVLink remote end as NVML reports it (nvmlDeviceGetNvLinkRemotePciInfo_v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePci {
    /// "00000000:05:00.0" as NVML writes it.
    pub bus_id: String,
    /// Device id in the high 16 bits, vendor id in the low 16 bits (nvmlPciInfo_t.pciDeviceId).
    pub pci_device_id: u32,
}

pub trait NvmlSource {
    /// Where the answers come from, for `collbench topo` ("NVML, driver 550.54.15").
    /// Err: why there are none ("NVML not found: ...").
    fn open(&self) -> Answer<String>;
    fn device_count(&self) -> Answer<u32>;
    fn name(&self, dev: u32) -> Answer<String>;
    fn bus_id(&self, dev: u32) -> Answer<String>;
    /// nvmlDeviceArchitecture_t: 7 Ampere, 8 Ada, 9 Hopper, 10 Blackwell.
    fn architecture(&self, dev: u32) -> Answer<u32>;
    /// (generation, width) the link can reach in this system (nvmlDeviceGetMaxPcieLink*).
    fn max_pcie(&self, dev: u32) -> Answer<(u32, u32)>;
    /// (generation, width) now (nvmlDeviceGetCurrPcieLink*).
    fn current_pcie(&self, dev: u32) -> Answer<(u32, u32)>;
    fn nvlink_active(&self, dev: u32, link: u32) -> Answer<bool>;
    /// Bytes of device memory (nvmlDeviceGetMemoryInfo_v2's total).
    fn memory_total(&self, dev: u32) -> Answer<u64>;
    /// nvmlDeviceGetNvLinkVersion: an nvmlNvlinkVersion_t, not the marketing number.
    fn nvlink_version(&self, dev: u32, link: u32) -> Answer<u32>;
    fn nvlink_remote_pci(&self, dev: u32, link: u32) -> Answer<RemotePci>;
}

/// NVML_NVLINK_MAX_LINKS in nvml.h: no device has more links than this.
pub const NVLINK_MAX_LINKS: u32 = 18;

/// A recorded machine's NVML answers. Format (tests/fixtures/*/nvml.json):
/// `{"driver_version": "...", "devices": [{"name", "bus_id", "architecture",
///   "max_pcie": [gen, width], "current_pcie": [gen, width],
///   "nvlinks": [{"state": 1, "version": 6, "remote_bus_id", "remote_pci_device_id": "0x22a310de"}]}]}`
/// A field left out is answered "NotSupported", a link past the list "InvalidArg", and
/// `"init_error"` stands for an NVML that fails to initialise.
#[derive(Debug, Clone, Deserialize)]
pub struct FixtureNvml {
    #[serde(default)]
    pub driver_version: Option<String>,
    #[serde(default)]
    pub init_error: Option<String>,
    #[serde(default)]
    pub devices: Vec<FixtureDevice>,
    #[serde(skip)]
    origin: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FixtureDevice {
    pub name: Option<String>,
    pub bus_id: Option<String>,
    pub architecture: Option<u32>,
    pub max_pcie: Option<(u32, u32)>,
    pub current_pcie: Option<(u32, u32)>,
    #[serde(default)]
    pub memory_total: Option<u64>,
    /// Errors per call name, to record a device that answers e.g. "Unknown" to one call.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    pub nvlinks: Option<Vec<FixtureLink>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FixtureLink {
    /// nvmlEnableState_t: 1 enabled (active), 0 disabled.
    pub state: u32,
    pub version: Option<u32>,
    pub remote_bus_id: Option<String>,
    pub remote_pci_device_id: Option<String>,
}

const NOT_SUPPORTED: &str = "NotSupported";

impl FixtureNvml {
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut f: FixtureNvml =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        f.origin = path.display().to_string();
        Ok(f)
    }

    /// A machine with no NVML at all, as the live source reports it.
    pub fn absent(why: &str) -> Self {
        FixtureNvml {
            driver_version: None,
            init_error: Some(why.to_string()),
            devices: Vec::new(),
            origin: String::new(),
        }
    }

    fn dev(&self, dev: u32) -> Answer<&FixtureDevice> {
        self.devices
            .get(dev as usize)
            .ok_or_else(|| "InvalidArg".to_string())
    }

    fn field<T: Clone>(
        &self,
        dev: u32,
        call: &str,
        get: impl Fn(&FixtureDevice) -> Option<T>,
    ) -> Answer<T> {
        let d = self.dev(dev)?;
        if let Some(e) = d.errors.get(call) {
            return Err(e.clone());
        }
        get(d).ok_or_else(|| NOT_SUPPORTED.to_string())
    }

    fn link(&self, dev: u32, link: u32) -> Answer<&FixtureLink> {
        let links = self
            .dev(dev)?
            .nvlinks
            .as_ref()
            .ok_or_else(|| NOT_SUPPORTED.to_string())?;
        links
            .get(link as usize)
            .ok_or_else(|| "InvalidArg".to_string())
    }
}

impl NvmlSource for FixtureNvml {
    fn open(&self) -> Answer<String> {
        if let Some(e) = &self.init_error {
            return Err(e.clone());
        }
        Ok(format!(
            "NVML answers recorded in {}, driver {}",
            self.origin,
            self.driver_version.as_deref().unwrap_or("?")
        ))
    }
    fn device_count(&self) -> Answer<u32> {
        self.open()?;
        Ok(self.devices.len() as u32)
    }
    fn name(&self, dev: u32) -> Answer<String> {
        self.field(dev, "name", |d| d.name.clone())
    }
    fn bus_id(&self, dev: u32) -> Answer<String> {
        self.field(dev, "bus_id", |d| d.bus_id.clone())
    }
    fn architecture(&self, dev: u32) -> Answer<u32> {
        self.field(dev, "architecture", |d| d.architecture)
    }
    fn max_pcie(&self, dev: u32) -> Answer<(u32, u32)> {
        self.field(dev, "max_pcie", |d| d.max_pcie)
    }
    fn current_pcie(&self, dev: u32) -> Answer<(u32, u32)> {
        self.field(dev, "current_pcie", |d| d.current_pcie)
    }
    fn memory_total(&self, dev: u32) -> Answer<u64> {
        self.field(dev, "memory_total", |d| d.memory_total)
    }
    fn nvlink_active(&self, dev: u32, link: u32) -> Answer<bool> {
        Ok(self.link(dev, link)?.state == 1)
    }
    fn nvlink_version(&self, dev: u32, link: u32) -> Answer<u32> {
        self.link(dev, link)?
            .version
            .ok_or_else(|| NOT_SUPPORTED.to_string())
    }
    fn nvlink_remote_pci(&self, dev: u32, link: u32) -> Answer<RemotePci> {
        let l = self.link(dev, link)?;
        let bus_id = l
            .remote_bus_id
            .clone()
            .ok_or_else(|| NOT_SUPPORTED.to_string())?;
        let id = l.remote_pci_device_id.as_deref().unwrap_or("0");
        let pci_device_id =
            u32::from_str_radix(id.trim_start_matches("0x").trim_start_matches("0X"), 16)
                .map_err(|e| format!("bad remote_pci_device_id {id}: {e}"))?;
        Ok(RemotePci {
            bus_id,
            pci_device_id,
        })
    }
}

/// The live NVML, through nvml-wrapper. Loading libnvidia-ml.so happens in `new`, quietly (what it
/// prints goes into the failure); on a machine without the driver that fails and every answer is that
/// failure.
pub struct LiveNvml {
    nvml: Result<nvml_wrapper::Nvml, String>,
}

impl LiveNvml {
    pub fn new() -> Self {
        Self::quietly(nvml_wrapper::Nvml::init)
    }

    /// NVML from a given file instead of the loader's libnvidia-ml.so.1.
    pub fn with_library(path: &str) -> Self {
        Self::quietly(|| {
            nvml_wrapper::Nvml::builder()
                .lib_path(std::ffi::OsStr::new(path))
                .init()
        })
    }

    fn quietly(
        init: impl FnOnce() -> Result<nvml_wrapper::Nvml, nvml_wrapper::error::NvmlError>,
    ) -> Self {
        let (nvml, printed) = crate::ffi::quiet::quietly(&[], init);
        LiveNvml {
            nvml: nvml.map_err(|e| format!("{}{}", init_error(e), printed.as_suffix("NVML"))),
        }
    }

    fn nvml(&self) -> Answer<&nvml_wrapper::Nvml> {
        self.nvml.as_ref().map_err(|e| e.clone())
    }

    fn device(&self, dev: u32) -> Answer<nvml_wrapper::Device<'_>> {
        self.nvml()?.device_by_index(dev).map_err(err)
    }
}

impl Default for LiveNvml {
    fn default() -> Self {
        Self::new()
    }
}

/// A library that cannot be loaded is "not found" (the caller reports "skipped: NVML not
/// found"); one that loads and fails says how.
fn init_error(e: nvml_wrapper::error::NvmlError) -> String {
    match e {
        nvml_wrapper::error::NvmlError::LibloadingError(l) => format!("NVML not found ({l})"),
        other => format!("NVML did not initialise: {other}"),
    }
}

/// NVML errors by their variant name ("NotSupported"), the same words a fixture uses.
fn err(e: nvml_wrapper::error::NvmlError) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{']).next().unwrap_or(&s).to_string()
}

impl NvmlSource for LiveNvml {
    fn open(&self) -> Answer<String> {
        let nvml = self.nvml()?;
        Ok(format!(
            "NVML, driver {}",
            nvml.sys_driver_version().unwrap_or_else(|_| "?".into())
        ))
    }
    fn device_count(&self) -> Answer<u32> {
        self.nvml()?.device_count().map_err(err)
    }
    fn name(&self, dev: u32) -> Answer<String> {
        self.device(dev)?.name().map_err(err)
    }
    fn bus_id(&self, dev: u32) -> Answer<String> {
        Ok(self.device(dev)?.pci_info().map_err(err)?.bus_id)
    }
    fn architecture(&self, dev: u32) -> Answer<u32> {
        Ok(self.device(dev)?.architecture().map_err(err)?.as_c())
    }
    fn max_pcie(&self, dev: u32) -> Answer<(u32, u32)> {
        let d = self.device(dev)?;
        Ok((
            d.max_pcie_link_gen().map_err(err)?,
            d.max_pcie_link_width().map_err(err)?,
        ))
    }
    fn current_pcie(&self, dev: u32) -> Answer<(u32, u32)> {
        let d = self.device(dev)?;
        Ok((
            d.current_pcie_link_gen().map_err(err)?,
            d.current_pcie_link_width().map_err(err)?,
        ))
    }
    fn memory_total(&self, dev: u32) -> Answer<u64> {
        Ok(self.device(dev)?.memory_info().map_err(err)?.total)
    }
    fn nvlink_active(&self, dev: u32, link: u32) -> Answer<bool> {
        self.device(dev)?
            .link_wrapper_for(link)
            .is_active()
            .map_err(err)
    }
    fn nvlink_version(&self, dev: u32, link: u32) -> Answer<u32> {
        self.device(dev)?
            .link_wrapper_for(link)
            .version()
            .map_err(err)
    }
    fn nvlink_remote_pci(&self, dev: u32, link: u32) -> Answer<RemotePci> {
        // nvml-wrapper's remote_device_type() returns Unknown whatever NVML says (it reads a
        // temporary), so the remote end is classified from its PCI identity instead.
        let p = self
            .device(dev)?
            .link_wrapper_for(link)
            .remote_pci_info()
            .map_err(err)?;
        Ok(RemotePci {
            bus_id: p.bus_id,
            pci_device_id: p.pci_device_id,
        })
    }
}
