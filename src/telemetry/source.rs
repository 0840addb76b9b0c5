//! Where a rank's readings come from: its own GPU through NVML (nvml-wrapper, loaded at run time) or,
//! for an AMD GPU, ROCm SMI (`rocm.rs`), found by the PCI bus id the backend reports. Every question
//! NVML cannot answer leaves its reading empty; a rank with no GPU or no NVML gets the reason instead
//! of a source.

use super::rocm::RocmGpu;
use super::{GpuLimits, Reading, TelemetrySource, Which};
use crate::backend::DeviceInfo;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::Nvml;

/// The test switch (docs/TESTING.md): NVML from this file, each rank reading the GPU of its local rank,
/// whatever the backend.
pub const TEST_NVML_VARIABLE: &str = "COLLBENCH_TEST_NVML";
/// The same with ROCm SMI from this file.
pub const TEST_ROCM_SMI_VARIABLE: &str = "COLLBENCH_TEST_ROCM_SMI";

/// This rank's source: NVML for a CUDA device, ROCm SMI for a HIP one; the reason when there is none.
pub fn open(device: &DeviceInfo, local_rank: usize) -> Result<Box<dyn TelemetrySource>, String> {
    if let Ok(library) = std::env::var(TEST_NVML_VARIABLE) {
        let gpu = NvmlGpu::open(Some(&library), Which::Index(local_rank as u32))?;
        return Ok(Box::new(gpu));
    }
    if let Ok(library) = std::env::var(TEST_ROCM_SMI_VARIABLE) {
        let gpu = RocmGpu::open(Some(&library), Which::Index(local_rank as u32))?;
        return Ok(Box::new(gpu));
    }
    match device.kind.as_str() {
        "cuda" => Ok(Box::new(NvmlGpu::open(
            None,
            which(device, "CUDA", "NVML")?,
        )?)),
        "hip" => Ok(Box::new(RocmGpu::open(
            None,
            which(device, "HIP", "ROCm SMI")?,
        )?)),
        _ => Err(format!(
            "this backend moves {}: there is no GPU to read",
            if device.name.is_empty() {
                "host memory"
            } else {
                &device.name
            }
        )),
    }
}

/// This rank's GPU in NVML, for reads outside the rows (its NVLink error counters): the GPU of its
/// local rank under the test switch, the backend's CUDA device otherwise; None where there is no NVIDIA
/// GPU (the mpi backend, a HIP device), Err when NVML does not answer for it.
pub fn open_nvml(device: &DeviceInfo, local_rank: usize) -> Option<Result<NvmlGpu, String>> {
    if let Ok(library) = std::env::var(TEST_NVML_VARIABLE) {
        return Some(NvmlGpu::open(
            Some(&library),
            Which::Index(local_rank as u32),
        ));
    }
    (device.kind == "cuda").then(|| NvmlGpu::open(None, which(device, "CUDA", "NVML")?))
}

/// How `library` finds the backend's device: by PCI bus id, else by index.
fn which(device: &DeviceInfo, kind: &str, library: &str) -> Result<Which, String> {
    match (&device.pci_bus_id, device.index) {
        (Some(bus), _) => Ok(Which::BusId(bus.clone())),
        (None, Some(i)) => Ok(Which::Index(i as u32)),
        (None, None) => Err(format!(
            "the {kind} device has no PCI bus id to find it in {library}"
        )),
    }
}

/// One GPU read through NVML.
pub struct NvmlGpu {
    nvml: Nvml,
    index: u32,
    /// As the backend or NVML wrote it.
    bus_id: String,
    description: String,
}

fn words(e: nvml_wrapper::error::NvmlError) -> String {
    match e {
        nvml_wrapper::error::NvmlError::LibloadingError(l) => format!("NVML not found ({l})"),
        other => other.to_string(),
    }
}

impl NvmlGpu {
    /// Loads NVML (from `library` or the loader's libnvidia-ml.so.1) and finds the GPU.
    pub fn open(library: Option<&str>, which: Which) -> Result<NvmlGpu, String> {
        let mut builder = Nvml::builder();
        if let Some(path) = library {
            builder.lib_path(std::ffi::OsStr::new(path));
        }
        let (nvml, printed) = crate::ffi::quiet::quietly(&[], || builder.init());
        let nvml = nvml.map_err(|e| {
            let why = match e {
                nvml_wrapper::error::NvmlError::LibloadingError(_) => words(e),
                other => format!("NVML did not initialise: {other}"),
            };
            format!("{why}{}", printed.as_suffix("NVML"))
        })?;
        let (index, bus_id) = match &which {
            Which::BusId(bus) => {
                let d = nvml
                    .device_by_pci_bus_id(bus.as_str())
                    .map_err(|e| format!("NVML does not know the GPU at {bus}: {}", words(e)))?;
                (d.index().map_err(words)?, bus.clone())
            }
            Which::Index(i) => {
                let d = nvml
                    .device_by_index(*i)
                    .map_err(|e| format!("NVML has no GPU {i}: {}", words(e)))?;
                (
                    *i,
                    d.pci_info()
                        .map(|p| p.bus_id)
                        .unwrap_or_else(|_| "?".into()),
                )
            }
        };
        let driver = nvml.sys_driver_version().unwrap_or_else(|_| "?".into());
        Ok(NvmlGpu {
            nvml,
            index,
            description: format!("NVML, driver {driver}, GPU {index} {bus_id}"),
            bus_id,
        })
    }

    /// "GPU 0 (0000:18:00.0)": NVML's index and the PCI address in sysfs' form.
    pub fn name(&self) -> String {
        format!(
            "GPU {} ({})",
            self.index,
            crate::topo::pcie::normalize_bus_id(&self.bus_id)
        )
    }

    pub(crate) fn device(&self) -> Option<nvml_wrapper::Device<'_>> {
        self.nvml.device_by_index(self.index).ok()
    }
}

fn watts(milliwatts: u32) -> f64 {
    f64::from(milliwatts) / 1000.0
}

impl TelemetrySource for NvmlGpu {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn limits(&self) -> GpuLimits {
        let Some(d) = self.device() else {
            return GpuLimits::default();
        };
        GpuLimits {
            name: d.name().ok(),
            max_sm_clock_mhz: d.max_clock_info(Clock::SM).ok(),
            max_mem_clock_mhz: d.max_clock_info(Clock::Memory).ok(),
            power_limit_w: d.enforced_power_limit().ok().map(watts),
            default_power_limit_w: d.power_management_limit_default().ok().map(watts),
        }
    }

    fn energy_mj(&self) -> Option<u64> {
        self.device()?.total_energy_consumption().ok()
    }

    fn sample(&self) -> Reading {
        let Some(d) = self.device() else {
            return Reading::default();
        };
        Reading {
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            power_w: d.power_usage().ok().map(watts),
            power_limit_w: d.enforced_power_limit().ok().map(watts),
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            reasons: d.current_throttle_reasons().ok().map(|r| r.bits()),
            pcie_gen: d.current_pcie_link_gen().ok(),
            pcie_width: d.current_pcie_link_width().ok(),
            ecc_corrected: d
                .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
                .ok(),
            ecc_uncorrected: d
                .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .ok(),
        }
    }
}
