//! ROCm SMI's readings of one GPU: clocks, the trained PCIe link, power, energy, memory, power caps,
//! temperature, ECC counts and the throttle status, each in the struct layout of the library's release.

use super::{sys, ClockDomain, Layout, RocmSmi, Throttle};

impl RocmSmi {
    /// The supported levels of a clock (or of the PCIe link rate) and the current one, in the layout of
    /// this library's release.
    fn levels(
        &self,
        call: &str,
        fill: impl FnOnce(*mut std::ffi::c_void) -> Result<sys::rsmi_status_t, String>,
    ) -> Result<Levels, String> {
        match self.layout {
            Layout::Rocm5 => {
                let mut b = zeroed_bandwidth5();
                self.check(
                    fill((&mut b as *mut sys::collbench_rsmi5_pcie_bandwidth).cast())?,
                    call,
                )?;
                Ok(Levels::from_rocm5(&b))
            }
            Layout::Rocm6 => {
                let mut b = zeroed_bandwidth6();
                self.check(
                    fill((&mut b as *mut sys::collbench_rsmi6_pcie_bandwidth).cast())?,
                    call,
                )?;
                Ok(Levels::from_rocm6(&b))
            }
        }
    }

    /// (current, highest supported) clock of `domain`, in MHz.
    pub fn clock_mhz(&self, dev: u32, domain: ClockDomain) -> Result<(u32, u32), String> {
        let f = symbol!(self, rsmi_dev_gpu_clk_freq_get);
        let kind = match domain {
            ClockDomain::System => sys::rsmi_clk_type_t::RSMI_CLK_TYPE_SYS,
            ClockDomain::Memory => sys::rsmi_clk_type_t::RSMI_CLK_TYPE_MEM,
        };
        // The frequencies struct is the first member of the PCIe bandwidth struct of the same release,
        // so one buffer of the larger serves both calls.
        // SAFETY: the buffer holds this release's rsmi_frequencies_t (`levels` chose its layout).
        let levels = self.levels("rsmi_dev_gpu_clk_freq_get", |p| {
            Ok(unsafe { f(dev, kind, p.cast()) })
        })?;
        let hz_to_mhz = |hz: u64| (hz / 1_000_000) as u32;
        levels
            .current_and_max()
            .map(|(now, max)| (hz_to_mhz(now), hz_to_mhz(max)))
            .ok_or_else(|| "rsmi_dev_gpu_clk_freq_get: current level out of range".to_string())
    }

    /// The trained PCIe link: (generation, lanes).
    pub fn pcie_link(&self, dev: u32) -> Result<(u32, u32), String> {
        let f = symbol!(self, rsmi_dev_pci_bandwidth_get);
        // SAFETY: the buffer is this release's rsmi_pcie_bandwidth_t.
        let levels = self.levels("rsmi_dev_pci_bandwidth_get", |p| {
            Ok(unsafe { f(dev, p.cast()) })
        })?;
        let (rate, _) = levels
            .current_and_max()
            .ok_or("rsmi_dev_pci_bandwidth_get: current level out of range")?;
        let generation = pcie_generation(rate).ok_or_else(|| {
            format!("rsmi_dev_pci_bandwidth_get: {rate} T/s is no PCIe generation")
        })?;
        Ok((generation, levels.current_lanes().unwrap_or(0)))
    }

    /// Watts from a call that writes microwatts.
    fn watts(
        &self,
        call: &str,
        read: impl FnOnce(&mut u64) -> sys::rsmi_status_t,
    ) -> Result<f64, String> {
        let mut microwatts: u64 = 0;
        self.check(read(&mut microwatts), call)?;
        Ok(microwatts as f64 / 1e6)
    }

    /// Power drawn now in watts: the socket power (ROCm 6, MI300 and later), else the average power.
    pub fn power_w(&self, dev: u32) -> Result<f64, String> {
        if let Ok(f) = self.lib.rsmi_dev_current_socket_power_get.as_ref() {
            // SAFETY: the out-pointer is valid.
            if let Ok(w) = self.watts("rsmi_dev_current_socket_power_get", |p| unsafe {
                f(dev, p)
            }) {
                return Ok(w);
            }
        }
        let f = symbol!(self, rsmi_dev_power_ave_get);
        // SAFETY: sensor 0; the out-pointer is valid.
        self.watts("rsmi_dev_power_ave_get", |p| unsafe { f(dev, 0, p) })
    }

    /// The GPU's energy counter in microjoules: the accumulated count times its resolution
    /// (rsmi_dev_energy_count_get).
    pub fn energy_uj(&self, dev: u32) -> Result<f64, String> {
        let f = symbol!(self, rsmi_dev_energy_count_get);
        let (mut count, mut resolution, mut timestamp) = (0u64, 0f32, 0u64);
        // SAFETY: the three out-pointers are valid.
        let rc = unsafe { f(dev, &mut count, &mut resolution, &mut timestamp) };
        self.check(rc, "rsmi_dev_energy_count_get")?;
        Ok(count as f64 * f64::from(resolution))
    }

    /// Bytes of VRAM (rsmi_dev_memory_total_get).
    pub fn memory_total(&self, dev: u32) -> Result<u64, String> {
        let f = symbol!(self, rsmi_dev_memory_total_get);
        let mut total = 0u64;
        // SAFETY: the out-pointer is valid.
        let rc = unsafe { f(dev, sys::rsmi_memory_type_t::RSMI_MEM_TYPE_VRAM, &mut total) };
        self.check(rc, "rsmi_dev_memory_total_get")?;
        Ok(total)
    }

    /// The power cap enforced now, in watts.
    pub fn power_cap_w(&self, dev: u32) -> Result<f64, String> {
        let f = symbol!(self, rsmi_dev_power_cap_get);
        // SAFETY: sensor 0; the out-pointer is valid.
        self.watts("rsmi_dev_power_cap_get", |p| unsafe { f(dev, 0, p) })
    }

    /// The board's default power cap, in watts.
    pub fn default_power_cap_w(&self, dev: u32) -> Result<f64, String> {
        let f = symbol!(self, rsmi_dev_power_cap_default_get);
        // SAFETY: the out-pointer is valid.
        self.watts("rsmi_dev_power_cap_default_get", |p| unsafe { f(dev, p) })
    }

    /// The current temperature in whole degrees C: the edge sensor, else the junction (hotspot) sensor,
    /// which MI300 reports instead.
    pub fn temperature_c(&self, dev: u32) -> Result<u32, String> {
        let f = symbol!(self, rsmi_dev_temp_metric_get);
        let mut last = Err(String::new());
        for sensor in [
            sys::rsmi_temperature_type_t::RSMI_TEMP_TYPE_EDGE,
            sys::rsmi_temperature_type_t::RSMI_TEMP_TYPE_JUNCTION,
        ] {
            let mut millidegrees: i64 = 0;
            // SAFETY: millidegrees is a valid out-pointer.
            let rc = unsafe {
                f(
                    dev,
                    sensor.0,
                    sys::rsmi_temperature_metric_t::RSMI_TEMP_CURRENT,
                    &mut millidegrees,
                )
            };
            last = self
                .check(rc, "rsmi_dev_temp_metric_get")
                .map(|_| (millidegrees.max(0) / 1000) as u32);
            if last.is_ok() {
                break;
            }
        }
        last
    }

    /// ECC errors (corrected, uncorrected) summed over the RAS blocks that count them; an error when no
    /// block does.
    pub fn ecc_counts(&self, dev: u32) -> Result<(u64, u64), String> {
        let f = symbol!(self, rsmi_dev_ecc_count_get);
        let (mut corrected, mut uncorrected, mut answered) = (0u64, 0u64, false);
        let mut block = sys::rsmi_gpu_block_t::RSMI_GPU_BLOCK_UMC.0;
        while block <= sys::rsmi_gpu_block_t::RSMI_GPU_BLOCK_FUSE.0 {
            let mut counts = sys::rsmi_error_count_t {
                correctable_err: 0,
                uncorrectable_err: 0,
            };
            // SAFETY: counts is a valid out-pointer of the declared (every release's) layout.
            let rc = unsafe { f(dev, sys::rsmi_gpu_block_t(block), &mut counts) };
            if rc == sys::rsmi_status_t::RSMI_STATUS_SUCCESS {
                answered = true;
                corrected += counts.correctable_err;
                uncorrected += counts.uncorrectable_err;
            }
            block <<= 1;
        }
        if answered {
            Ok((corrected, uncorrected))
        } else {
            Err("rsmi_dev_ecc_count_get: no RAS block counts ECC errors".into())
        }
    }

    /// The firmware's throttle status from the GPU metrics, as this library's release gives it.
    pub fn throttle_status(&self, dev: u32) -> Result<Throttle, String> {
        let f = symbol!(self, rsmi_dev_gpu_metrics_info_get);
        let mut buffer = MetricsBuffer::new();
        // SAFETY: the buffer is larger than any release's rsmi_gpu_metrics_t (tests/abi.rs checks it
        // against the real headers), and 8-byte aligned.
        let rc = unsafe { f(dev, buffer.as_mut_ptr().cast()) };
        self.check(rc, "rsmi_dev_gpu_metrics_info_get")?;
        buffer
            .throttle(self.layout)
            .ok_or_else(|| "rsmi_dev_gpu_metrics_info_get: no throttle status".into())
    }
}

fn zeroed_bandwidth5() -> sys::collbench_rsmi5_pcie_bandwidth {
    // SAFETY: integers and arrays of integers, for which all zeros is a value.
    unsafe { std::mem::zeroed() }
}

fn zeroed_bandwidth6() -> sys::collbench_rsmi6_pcie_bandwidth {
    // SAFETY: integers, arrays of integers and a bool, for which all zeros is a value (false).
    unsafe { std::mem::zeroed() }
}

/// Supported levels (Hz or T/s), the current one's index, and the lanes at each level (PCIe only),
/// whatever the layout they were read in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Levels {
    supported: Vec<u64>,
    current: usize,
    lanes: Vec<u32>,
}

impl Levels {
    fn new(num_supported: u32, current: u32, frequency: &[u64], lanes: &[u32]) -> Levels {
        let n = (num_supported as usize).min(frequency.len());
        Levels {
            supported: frequency[..n].to_vec(),
            current: current as usize,
            lanes: lanes[..n.min(lanes.len())].to_vec(),
        }
    }

    fn from_rocm5(b: &sys::collbench_rsmi5_pcie_bandwidth) -> Levels {
        let f = &b.transfer_rate;
        Levels::new(f.num_supported, f.current, &f.frequency, &b.lanes)
    }

    fn from_rocm6(b: &sys::collbench_rsmi6_pcie_bandwidth) -> Levels {
        let f = &b.transfer_rate;
        Levels::new(f.num_supported, f.current, &f.frequency, &b.lanes)
    }

    /// (current, highest supported), None when the library's answer is out of its own bounds.
    fn current_and_max(&self) -> Option<(u64, u64)> {
        let current = *self.supported.get(self.current)?;
        Some((current, self.supported.iter().copied().max()?))
    }

    fn current_lanes(&self) -> Option<u32> {
        self.lanes.get(self.current).copied()
    }
}

/// Room for rsmi_gpu_metrics_t of any release, 8-byte aligned.
struct MetricsBuffer(Vec<u64>);

impl MetricsBuffer {
    fn new() -> MetricsBuffer {
        MetricsBuffer(vec![0; sys::COLLBENCH_RSMI_GPU_METRICS_BUFFER as usize / 8])
    }

    fn as_mut_ptr(&mut self) -> *mut u64 {
        self.0.as_mut_ptr()
    }

    /// The throttle status at the place `layout` keeps it; None where the library marks the field as
    /// not given (all ones).
    fn throttle(&self, layout: Layout) -> Option<Throttle> {
        let base = self.0.as_ptr();
        match layout {
            Layout::Rocm5 => {
                // SAFETY: the buffer is larger than the head and aligned for it.
                let head = unsafe { &*base.cast::<sys::collbench_rsmi5_gpu_metrics_head>() };
                (head.throttle_status != u32::MAX)
                    .then_some(Throttle::AsicSpecific(head.throttle_status))
            }
            Layout::Rocm6 => {
                // SAFETY: as above.
                let head = unsafe { &*base.cast::<sys::collbench_rsmi6_gpu_metrics_head>() };
                (head.indep_throttle_status != u64::MAX)
                    .then_some(Throttle::Independent(head.indep_throttle_status))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_rates_name_pcie_generations() {
        assert_eq!(pcie_generation(2_500_000_000), Some(1));
        assert_eq!(pcie_generation(16_000_000_000), Some(4));
        assert_eq!(pcie_generation(32_000_000_000), Some(5));
        assert_eq!(pcie_generation(1_000_000), None);
    }

    /// PCIe gen 1 x1 and gen 5 x16, the second current, in each release's layout: the same answer.
    #[test]
    fn both_layouts_read_the_same_levels() {
        let mut five = zeroed_bandwidth5();
        five.transfer_rate.num_supported = 2;
        five.transfer_rate.current = 1;
        five.transfer_rate.frequency[..2].copy_from_slice(&[2_500_000_000, 32_000_000_000]);
        five.lanes[..2].copy_from_slice(&[1, 16]);
        let mut six = zeroed_bandwidth6();
        six.transfer_rate.has_deep_sleep = true;
        six.transfer_rate.num_supported = 2;
        six.transfer_rate.current = 1;
        six.transfer_rate.frequency[..2].copy_from_slice(&[2_500_000_000, 32_000_000_000]);
        six.lanes[..2].copy_from_slice(&[1, 16]);
        for levels in [Levels::from_rocm5(&five), Levels::from_rocm6(&six)] {
            assert_eq!(
                levels.current_and_max(),
                Some((32_000_000_000, 32_000_000_000))
            );
            assert_eq!(levels.current_lanes(), Some(16));
        }
        // The two layouts differ where the releases do: 32 levels against 33 after a bool.
        assert_eq!(five.transfer_rate.frequency.len(), 32);
        assert_eq!(six.transfer_rate.frequency.len(), 33);
        assert_eq!(std::mem::size_of_val(&five.transfer_rate), 264);
        assert_eq!(std::mem::size_of_val(&six.transfer_rate), 280);
    }

    #[test]
    fn levels_out_of_their_own_bounds_answer_nothing() {
        let mut five = zeroed_bandwidth5();
        five.transfer_rate.num_supported = 40; // more than the struct holds: clipped to 32
        five.transfer_rate.current = 35;
        assert_eq!(Levels::from_rocm5(&five).current_and_max(), None);
    }

    #[test]
    fn the_throttle_status_is_read_where_each_release_keeps_it() {
        let mut buffer = MetricsBuffer::new();
        // throttle_status at byte 68 and indep_throttle_status at byte 112 in every release (checked
        // against the real headers by tests/abi.rs).
        let bytes: &mut [u8] = bytemuck_bytes(&mut buffer.0);
        bytes[68..72].copy_from_slice(&0x24u32.to_ne_bytes());
        bytes[112..120].copy_from_slice(&(1u64 << 36).to_ne_bytes());
        assert_eq!(
            buffer.throttle(Layout::Rocm5),
            Some(Throttle::AsicSpecific(0x24))
        );
        assert_eq!(
            buffer.throttle(Layout::Rocm6),
            Some(Throttle::Independent(1 << 36))
        );
        // All ones: the library says the field is not given.
        let bytes: &mut [u8] = bytemuck_bytes(&mut buffer.0);
        bytes[112..120].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(buffer.throttle(Layout::Rocm6), None);
    }

    fn bytemuck_bytes(words: &mut [u64]) -> &mut [u8] {
        // SAFETY: u64s viewed as their bytes, for the length of the slice.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
    }
}
