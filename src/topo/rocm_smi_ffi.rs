//! The one place that calls ROCm SMI (`unsafe`): opening it with dlopen, the functions that describe
//! GPUs and the links between them (topology), and those that read a GPU's clocks, power, temperature,
//! PCIe link, ECC and throttle status (telemetry). Declarations from rocm_smi.h.

use libloading::{Library, Symbol};
use std::ffi::{c_char, c_int};

/// rsmi_status_t; 0 is RSMI_STATUS_SUCCESS.
type Status = c_int;

pub struct RocmSmi {
    lib: Library,
    path: String,
    amd_smi_present: bool,
}

const ROCM_SMI_NAMES: [&str; 3] = [
    "librocm_smi64.so",
    "librocm_smi64.so.7",
    "/opt/rocm/lib/librocm_smi64.so",
];
const AMD_SMI_NAMES: [&str; 2] = ["libamd_smi.so", "/opt/rocm/lib/libamd_smi.so"];

fn loads(name: &str) -> Option<Library> {
    // SAFETY: loading runs the library's constructors; ROCm SMI's only initialise its own state.
    unsafe { Library::new(name).ok() }
}

impl RocmSmi {
    pub fn open() -> Result<Self, String> {
        Self::open_from(&ROCM_SMI_NAMES)
    }

    /// The first of `names` that loads (names or paths, as dlopen takes them).
    pub fn open_from(names: &[&str]) -> Result<Self, String> {
        let amd_smi_present = AMD_SMI_NAMES.iter().any(|n| loads(n).is_some());
        let found = names
            .iter()
            .find_map(|n| loads(n).map(|l| (l, n.to_string())));
        let Some((lib, path)) = found else {
            return Err(if amd_smi_present {
                "AMD SMI found but ROCm SMI (librocm_smi64.so) not found: xGMI links unknown"
                    .to_string()
            } else {
                format!(
                    "AMD SMI / ROCm SMI not found (no libamd_smi.so, no {})",
                    names.join(", no ")
                )
            });
        };
        let smi = RocmSmi {
            lib,
            path,
            amd_smi_present,
        };
        // SAFETY: rsmi_status_t rsmi_init(uint64_t init_flags), flags 0 = defaults.
        let rc = unsafe {
            let init: Symbol<unsafe extern "C" fn(u64) -> Status> = smi.sym(b"rsmi_init\0")?;
            init(0)
        };
        if rc != 0 {
            return Err(format!("ROCm SMI rsmi_init failed with status {rc}"));
        }
        Ok(smi)
    }

    /// SAFETY: the caller names the symbol with its C type.
    unsafe fn sym<T>(&self, name: &[u8]) -> Result<Symbol<'_, T>, String> {
        self.lib
            .get(name)
            .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(&name[..name.len() - 1])))
    }

    pub fn describe(&self) -> String {
        let also = if self.amd_smi_present {
            " (AMD SMI also present)"
        } else {
            ""
        };
        format!("ROCm SMI ({}){also}", self.path)
    }

    pub fn device_count(&self) -> Result<u32, String> {
        let mut n: u32 = 0;
        // SAFETY: rsmi_status_t rsmi_num_monitor_devices(uint32_t *num_devices).
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(*mut u32) -> Status> =
                self.sym(b"rsmi_num_monitor_devices\0")?;
            f(&mut n)
        };
        check(rc, "rsmi_num_monitor_devices").map(|_| n)
    }

    /// rsmi_dev_pci_id_get packs domain << 32 | bus << 8 | device << 3 | function.
    pub fn bus_id(&self, dev: u32) -> Result<String, String> {
        let mut bdf: u64 = 0;
        // SAFETY: rsmi_status_t rsmi_dev_pci_id_get(uint32_t dv_ind, uint64_t *bdfid).
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_pci_id_get\0")?;
            f(dev, &mut bdf)
        };
        check(rc, "rsmi_dev_pci_id_get")?;
        Ok(decode_bdfid(bdf))
    }

    pub fn name(&self, dev: u32) -> Result<String, String> {
        let mut buf = [0 as c_char; 256];
        // SAFETY: rsmi_status_t rsmi_dev_name_get(uint32_t dv_ind, char *name, size_t len);
        // it writes a NUL-terminated string of at most len bytes.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, *mut c_char, usize) -> Status> =
                self.sym(b"rsmi_dev_name_get\0")?;
            f(dev, buf.as_mut_ptr(), buf.len())
        };
        check(rc, "rsmi_dev_name_get")?;
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// (RSMI_IO_LINK_TYPE, hops) between two GPUs: 1 PCI Express, 2 xGMI.
    pub fn link_type(&self, src: u32, dst: u32) -> Result<(u32, u64), String> {
        let (mut hops, mut kind) = (0u64, 0u32);
        // SAFETY: rsmi_status_t rsmi_topo_get_link_type(uint32_t src, uint32_t dst,
        // uint64_t *hops, RSMI_IO_LINK_TYPE *type); the enum is 32 bits wide (its largest value
        // is 0xFFFFFFFF).
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, u32, *mut u64, *mut u32) -> Status> =
                self.sym(b"rsmi_topo_get_link_type\0")?;
            f(src, dst, &mut hops, &mut kind)
        };
        check(rc, "rsmi_topo_get_link_type").map(|_| (kind, hops))
    }
}

/// rsmi_clk_type_t: the clock domains telemetry reads.
#[derive(Debug, Clone, Copy)]
pub enum ClockDomain {
    /// RSMI_CLK_TYPE_SYS, the graphics (shader) clock.
    System = 0,
    /// RSMI_CLK_TYPE_MEM.
    Memory = 4,
}

/// RSMI_MAX_NUM_FREQUENCIES as of ROCm 6 (librocm_smi64.so.7).
const MAX_FREQUENCIES: usize = 33;

/// rsmi_frequencies_t as of ROCm 6: the supported levels and the index of the current one. ROCm 5
/// had no `has_deep_sleep` and 32 levels; that layout is not read here.
#[repr(C)]
struct Frequencies {
    has_deep_sleep: bool,
    num_supported: u32,
    current: u32,
    frequency: [u64; MAX_FREQUENCIES],
}

impl Frequencies {
    fn empty() -> Self {
        Frequencies {
            has_deep_sleep: false,
            num_supported: 0,
            current: 0,
            frequency: [0; MAX_FREQUENCIES],
        }
    }

    /// (current, highest supported), None when the library's answer is out of its own bounds.
    fn current_and_max(&self) -> Option<(u64, u64)> {
        let n = (self.num_supported as usize).min(MAX_FREQUENCIES);
        let supported = &self.frequency[..n];
        let current = *supported.get(self.current as usize)?;
        Some((current, supported.iter().copied().max()?))
    }
}

/// rsmi_pcie_bandwidth_t: transfer rates (T/s) and, at the same index, lane counts.
#[repr(C)]
struct PcieBandwidth {
    transfer_rate: Frequencies,
    lanes: [u32; MAX_FREQUENCIES],
}

/// rsmi_gpu_block_t's RAS blocks, RSMI_GPU_BLOCK_UMC (0x1) to RSMI_GPU_BLOCK_FUSE (0x2000).
const ECC_BLOCKS: u32 = 14;

impl RocmSmi {
    /// The monitor index of the GPU at `bus` ("0000:11:00.0", any case).
    pub fn device_by_bus_id(&self, bus: &str) -> Result<u32, String> {
        let wanted = bus.to_ascii_lowercase();
        for dev in 0..self.device_count()? {
            if self.bus_id(dev)? == wanted {
                return Ok(dev);
            }
        }
        Err(format!("ROCm SMI does not know the GPU at {bus}"))
    }

    /// (current, highest supported) clock of `domain`, in MHz.
    pub fn clock_mhz(&self, dev: u32, domain: ClockDomain) -> Result<(u32, u32), String> {
        let mut f = Frequencies::empty();
        // SAFETY: rsmi_status_t rsmi_dev_gpu_clk_freq_get(uint32_t dv_ind, rsmi_clk_type_t clk_type,
        // rsmi_frequencies_t *f); the enum is an int, `Frequencies` is the ROCm 6 struct.
        let rc = unsafe {
            let get: Symbol<unsafe extern "C" fn(u32, c_int, *mut Frequencies) -> Status> =
                self.sym(b"rsmi_dev_gpu_clk_freq_get\0")?;
            get(dev, domain as c_int, &mut f)
        };
        check(rc, "rsmi_dev_gpu_clk_freq_get")?;
        let hz_to_mhz = |hz: u64| (hz / 1_000_000) as u32;
        f.current_and_max()
            .map(|(now, max)| (hz_to_mhz(now), hz_to_mhz(max)))
            .ok_or_else(|| "rsmi_dev_gpu_clk_freq_get: current level out of range".to_string())
    }

    /// Power drawn now in watts: the socket power (MI300 and later), else the average power.
    pub fn power_w(&self, dev: u32) -> Result<f64, String> {
        let mut microwatts: u64 = 0;
        // SAFETY: rsmi_status_t rsmi_dev_current_socket_power_get(uint32_t dv_ind,
        // uint64_t *socket_power), in microwatts.
        let socket = unsafe {
            self.sym::<unsafe extern "C" fn(u32, *mut u64) -> Status>(
                b"rsmi_dev_current_socket_power_get\0",
            )
            .map(|f| f(dev, &mut microwatts))
        };
        if socket == Ok(0) {
            return Ok(microwatts as f64 / 1e6);
        }
        // SAFETY: rsmi_status_t rsmi_dev_power_ave_get(uint32_t dv_ind, uint32_t sensor_ind,
        // uint64_t *power), in microwatts; sensor 0.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, u32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_power_ave_get\0")?;
            f(dev, 0, &mut microwatts)
        };
        check(rc, "rsmi_dev_power_ave_get").map(|_| microwatts as f64 / 1e6)
    }

    /// The GPU's energy counter in microjoules: the accumulated count times its resolution
    /// (rsmi_dev_energy_count_get).
    pub fn energy_uj(&self, dev: u32) -> Result<f64, String> {
        let (mut count, mut resolution, mut timestamp) = (0u64, 0f32, 0u64);
        // SAFETY: rsmi_status_t rsmi_dev_energy_count_get(uint32_t dv_ind, uint64_t *power,
        // float *counter_resolution, uint64_t *timestamp): the count, microjoules per count, and when.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, *mut u64, *mut f32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_energy_count_get\0")?;
            f(dev, &mut count, &mut resolution, &mut timestamp)
        };
        check(rc, "rsmi_dev_energy_count_get").map(|_| count as f64 * f64::from(resolution))
    }

    /// Bytes of VRAM (rsmi_dev_memory_total_get with RSMI_MEM_TYPE_VRAM, 0).
    pub fn memory_total(&self, dev: u32) -> Result<u64, String> {
        let mut total = 0u64;
        // SAFETY: rsmi_status_t rsmi_dev_memory_total_get(uint32_t dv_ind, rsmi_memory_type_t
        // mem_type, uint64_t *total); the enum is an int, RSMI_MEM_TYPE_VRAM its first value.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, i32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_memory_total_get\0")?;
            f(dev, 0, &mut total)
        };
        check(rc, "rsmi_dev_memory_total_get").map(|_| total)
    }

    /// The power cap enforced now, in watts.
    pub fn power_cap_w(&self, dev: u32) -> Result<f64, String> {
        let mut microwatts: u64 = 0;
        // SAFETY: rsmi_status_t rsmi_dev_power_cap_get(uint32_t dv_ind, uint32_t sensor_ind,
        // uint64_t *cap), in microwatts; sensor 0.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, u32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_power_cap_get\0")?;
            f(dev, 0, &mut microwatts)
        };
        check(rc, "rsmi_dev_power_cap_get").map(|_| microwatts as f64 / 1e6)
    }

    /// The board's default power cap, in watts.
    pub fn default_power_cap_w(&self, dev: u32) -> Result<f64, String> {
        let mut microwatts: u64 = 0;
        // SAFETY: rsmi_status_t rsmi_dev_power_cap_default_get(uint32_t dv_ind,
        // uint64_t *default_cap), in microwatts.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_power_cap_default_get\0")?;
            f(dev, &mut microwatts)
        };
        check(rc, "rsmi_dev_power_cap_default_get").map(|_| microwatts as f64 / 1e6)
    }

    /// The current temperature in whole degrees C: the edge sensor, else the junction (hotspot)
    /// sensor, which MI300 reports instead.
    pub fn temperature_c(&self, dev: u32) -> Result<u32, String> {
        const EDGE: c_int = 0; // RSMI_TEMP_TYPE_EDGE
        const JUNCTION: c_int = 1; // RSMI_TEMP_TYPE_JUNCTION
        const CURRENT: c_int = 0; // RSMI_TEMP_CURRENT
        let mut rc = -1;
        let mut millidegrees: i64 = 0;
        for sensor in [EDGE, JUNCTION] {
            // SAFETY: rsmi_status_t rsmi_dev_temp_metric_get(uint32_t dv_ind, uint32_t sensor_type,
            // rsmi_temperature_metric_t metric, int64_t *temperature), in millidegrees C.
            rc = unsafe {
                let f: Symbol<unsafe extern "C" fn(u32, c_int, c_int, *mut i64) -> Status> =
                    self.sym(b"rsmi_dev_temp_metric_get\0")?;
                f(dev, sensor, CURRENT, &mut millidegrees)
            };
            if rc == 0 {
                break;
            }
        }
        check(rc, "rsmi_dev_temp_metric_get").map(|_| (millidegrees.max(0) / 1000) as u32)
    }

    /// The trained PCIe link: (generation, lanes).
    pub fn pcie_link(&self, dev: u32) -> Result<(u32, u32), String> {
        let mut b = PcieBandwidth {
            transfer_rate: Frequencies::empty(),
            lanes: [0; MAX_FREQUENCIES],
        };
        // SAFETY: rsmi_status_t rsmi_dev_pci_bandwidth_get(uint32_t dv_ind,
        // rsmi_pcie_bandwidth_t *bandwidth); `PcieBandwidth` is the ROCm 6 struct.
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, *mut PcieBandwidth) -> Status> =
                self.sym(b"rsmi_dev_pci_bandwidth_get\0")?;
            f(dev, &mut b)
        };
        check(rc, "rsmi_dev_pci_bandwidth_get")?;
        let current = b.transfer_rate.current as usize;
        let (rate, _) = b
            .transfer_rate
            .current_and_max()
            .ok_or("rsmi_dev_pci_bandwidth_get: current level out of range")?;
        let generation = pcie_generation(rate).ok_or_else(|| {
            format!("rsmi_dev_pci_bandwidth_get: {rate} T/s is no PCIe generation")
        })?;
        Ok((generation, b.lanes[current]))
    }

    /// ECC errors (corrected, uncorrected) summed over the RAS blocks that count them; an error when
    /// no block does.
    pub fn ecc_counts(&self, dev: u32) -> Result<(u64, u64), String> {
        let (mut corrected, mut uncorrected, mut answered) = (0u64, 0u64, false);
        for bit in 0..ECC_BLOCKS {
            // rsmi_error_count_t is { correctable_err, uncorrectable_err, deferred_err } in ROCm 6,
            // without the last before: three words hold either.
            let mut counts = [0u64; 3];
            // SAFETY: rsmi_status_t rsmi_dev_ecc_count_get(uint32_t dv_ind, rsmi_gpu_block_t block,
            // rsmi_error_count_t *ec); the block enum is a 64-bit bit flag.
            let rc = unsafe {
                let f: Symbol<unsafe extern "C" fn(u32, u64, *mut u64) -> Status> =
                    self.sym(b"rsmi_dev_ecc_count_get\0")?;
                f(dev, 1u64 << bit, counts.as_mut_ptr())
            };
            if rc == 0 {
                answered = true;
                corrected += counts[0];
                uncorrected += counts[1];
            }
        }
        if answered {
            Ok((corrected, uncorrected))
        } else {
            Err("rsmi_dev_ecc_count_get: no RAS block counts ECC errors".into())
        }
    }

    /// The firmware's ASIC-independent throttle status (the kernel's SMU_THROTTLER_* bits).
    pub fn throttle_status(&self, dev: u32) -> Result<u64, String> {
        let mut bits: u64 = 0;
        // SAFETY: rsmi_status_t rsmi_dev_metrics_indep_throttle_status_get(uint32_t dv_ind,
        // uint64_t *indep_throttle_status) (ROCm 6.1 and later).
        let rc = unsafe {
            let f: Symbol<unsafe extern "C" fn(u32, *mut u64) -> Status> =
                self.sym(b"rsmi_dev_metrics_indep_throttle_status_get\0")?;
            f(dev, &mut bits)
        };
        check(rc, "rsmi_dev_metrics_indep_throttle_status_get").map(|_| bits)
    }
}

/// A PCIe transfer rate (T/s) as its generation: 2.5 GT/s is gen 1, each generation doubles it from
/// gen 3's 8 GT/s.
fn pcie_generation(transfers_per_second: u64) -> Option<u32> {
    let gt = transfers_per_second as f64 / 1e9;
    [2.5, 5.0, 8.0, 16.0, 32.0, 64.0, 128.0]
        .iter()
        .position(|&g| (gt - g).abs() < g * 0.1)
        .map(|i| i as u32 + 1)
}

impl Drop for RocmSmi {
    fn drop(&mut self) {
        // SAFETY: rsmi_status_t rsmi_shut_down(void), paired with the successful rsmi_init.
        unsafe {
            if let Ok(f) = self.sym::<unsafe extern "C" fn() -> Status>(b"rsmi_shut_down\0") {
                f();
            }
        }
    }
}

/// rsmi_dev_pci_id_get's BDFID: domain in bits 32-63, bus 8-15, device 3-7, function 0-2.
pub fn decode_bdfid(bdf: u64) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        (bdf >> 32) & 0xffff,
        (bdf >> 8) & 0xff,
        (bdf >> 3) & 0x1f,
        bdf & 0x7
    )
}

fn check(rc: Status, call: &str) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{call} failed with rsmi_status_t {rc}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bdfid_fields() {
        assert_eq!(super::decode_bdfid(0x11 << 8), "0000:11:00.0");
        assert_eq!(
            super::decode_bdfid((1 << 32) | (0x8b << 8) | (5 << 3) | 1),
            "0001:8b:05.1"
        );
    }

    #[test]
    fn transfer_rates_name_pcie_generations() {
        assert_eq!(super::pcie_generation(2_500_000_000), Some(1));
        assert_eq!(super::pcie_generation(16_000_000_000), Some(4));
        assert_eq!(super::pcie_generation(32_000_000_000), Some(5));
        assert_eq!(super::pcie_generation(1_000_000), None);
    }
}
