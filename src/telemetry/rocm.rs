//! Readings of an AMD GPU through ROCm SMI (`ffi::rocm_smi`), found by the PCI bus id the backend
//! reports, mapped into the readings NVML fills; the firmware's ASIC-independent throttle bits (ROCm 6)
//! become the nearest NVML clock-event reasons.

use super::{reasons, GpuLimits, Reading, TelemetrySource, Which};
use crate::ffi::rocm_smi::{ClockDomain, RocmSmi, Throttle};

/// One GPU read through ROCm SMI.
pub struct RocmGpu {
    smi: RocmSmi,
    index: u32,
    description: String,
}

impl RocmGpu {
    /// Loads ROCm SMI (from `library` or the usual names) and finds the GPU.
    pub fn open(library: Option<&str>, which: Which) -> Result<RocmGpu, String> {
        let smi = RocmSmi::open(library.map(std::path::Path::new))?;
        let index = match &which {
            Which::BusId(bus) => smi.device_by_bus_id(bus)?,
            Which::Index(i) => {
                let count = smi.device_count()?;
                if *i >= count {
                    return Err(format!("ROCm SMI has no GPU {i} (it sees {count})"));
                }
                *i
            }
        };
        let bus = smi.bus_id(index).unwrap_or_else(|_| "?".into());
        let description = format!("{}, GPU {index} {bus}", smi.describe());
        Ok(RocmGpu {
            smi,
            index,
            description,
        })
    }
}

impl TelemetrySource for RocmGpu {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn limits(&self) -> GpuLimits {
        let d = self.index;
        GpuLimits {
            name: self.smi.name(d).ok(),
            max_sm_clock_mhz: self.smi.clock_mhz(d, ClockDomain::System).ok().map(|c| c.1),
            max_mem_clock_mhz: self.smi.clock_mhz(d, ClockDomain::Memory).ok().map(|c| c.1),
            power_limit_w: self.smi.power_cap_w(d).ok(),
            default_power_limit_w: self.smi.default_power_cap_w(d).ok(),
        }
    }

    fn energy_mj(&self) -> Option<u64> {
        self.smi
            .energy_uj(self.index)
            .ok()
            .map(|uj| (uj / 1000.0) as u64)
    }

    fn sample(&self) -> Reading {
        let d = self.index;
        let link = self.smi.pcie_link(d).ok();
        let ecc = self.smi.ecc_counts(d).ok();
        Reading {
            sm_clock_mhz: self.smi.clock_mhz(d, ClockDomain::System).ok().map(|c| c.0),
            mem_clock_mhz: self.smi.clock_mhz(d, ClockDomain::Memory).ok().map(|c| c.0),
            power_w: self.smi.power_w(d).ok(),
            power_limit_w: self.smi.power_cap_w(d).ok(),
            temperature_c: self.smi.temperature_c(d).ok(),
            reasons: self.smi.throttle_status(d).ok().and_then(throttle_reasons),
            pcie_gen: link.map(|l| l.0),
            pcie_width: link.map(|l| l.1),
            ecc_corrected: ecc.map(|e| e.0),
            ecc_uncorrected: ecc.map(|e| e.1),
        }
    }
}

/// NVML's reasons for a throttle status: ROCm 6's ASIC-independent bits map onto them; ROCm 5's bits
/// mean something else on every chip, so only "none set" is known.
pub fn throttle_reasons(status: Throttle) -> Option<u64> {
    match status {
        Throttle::Independent(bits) => Some(nvml_reasons(bits)),
        Throttle::AsicSpecific(0) => Some(0),
        Throttle::AsicSpecific(_) => None,
    }
}

/// The kernel's SMU_THROTTLER_* bits (kgd_pp_interface.h), by group: package power and current limits
/// (bits 0-23), temperatures (32-43), VR hot and PROCHOT signals (44-47), platform limits (56-63).
const AMD_POWER: u64 = 0x00ff_ffff;
const AMD_TEMPERATURE: u64 = 0x0fff << 32;
const AMD_HARDWARE: u64 = 0xf << 44;
const AMD_PLATFORM: u64 = 0xff << 56;

/// ROCm SMI's throttle status as NVML's reasons: power limits are a power cap, temperatures a thermal
/// slowdown, hardware signals and platform limits a hardware slowdown.
pub fn nvml_reasons(amd: u64) -> u64 {
    [
        (AMD_POWER, reasons::SW_POWER_CAP),
        (AMD_TEMPERATURE, reasons::SW_THERMAL_SLOWDOWN),
        (AMD_HARDWARE | AMD_PLATFORM, reasons::HW_SLOWDOWN),
    ]
    .iter()
    .filter(|(group, _)| amd & group != 0)
    .fold(0, |bits, (_, nvml)| bits | nvml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd_throttle_groups_become_nvml_reasons() {
        assert_eq!(nvml_reasons(0), 0);
        assert_eq!(nvml_reasons(1 << 0), reasons::SW_POWER_CAP);
        assert_eq!(nvml_reasons(1 << 36), reasons::SW_THERMAL_SLOWDOWN);
        assert_eq!(
            nvml_reasons((1 << 46) | (1 << 16)),
            reasons::HW_SLOWDOWN | reasons::SW_POWER_CAP
        );
        // Bits 24-31 and 48-55 are unassigned: they throttle nothing.
        assert_eq!(nvml_reasons((1 << 24) | (1 << 50)), 0);
    }

    #[test]
    fn only_rocm_6_names_its_throttle_reasons() {
        assert_eq!(
            throttle_reasons(Throttle::Independent(1 << 36)),
            Some(reasons::SW_THERMAL_SLOWDOWN)
        );
        assert_eq!(throttle_reasons(Throttle::AsicSpecific(0)), Some(0));
        assert_eq!(throttle_reasons(Throttle::AsicSpecific(1 << 3)), None);
    }
}
