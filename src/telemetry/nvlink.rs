//! The NVLink error counters of a rank's own GPU, read through NVML as a snapshot in the same shape
//! as an RDMA port's (device "GPU 0 (0000:18:00.0)", port = link index); fleet/link_errors.rs compares
//! two of them. docs/FLEET.md says what each counter means.

use super::source::NvmlGpu;
use crate::topo::nvml::NVLINK_MAX_LINKS;
use crate::topo::port_counters::PortCounters;
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;

/// nvmlDeviceGetNvLinkErrorCounter's counters that nvml-wrapper names, with ours.
const WRAPPED_COUNTERS: [(ErrorCounter, &str); 4] = [
    (ErrorCounter::DlReplay, "nvlink_replay"),
    (ErrorCounter::DlRecovery, "nvlink_recovery"),
    (ErrorCounter::DlCrcFlit, "nvlink_crc_flit"),
    (ErrorCounter::DlCrcData, "nvlink_crc_data"),
];

/// NVML_NVLINK_ERROR_DL_ECC_DATA, read through ffi/nvml.rs.
const ECC_DATA_COUNTER: &str = "nvlink_ecc_data";

/// Every active NVLink of the GPU with at least one counter NVML answered, by link index. Empty for
/// a GPU without NVLink (NVML answers NotSupported) or one NVML no longer finds. A counter NVML does
/// not answer is simply not counted.
pub fn read_error_counters(gpu: &NvmlGpu) -> Vec<PortCounters> {
    let Some(device) = gpu.device() else {
        return Vec::new();
    };
    let name = gpu.name();
    (0..NVLINK_MAX_LINKS)
        .filter(|&link| matches!(device.link_wrapper_for(link).is_active(), Ok(true)))
        .filter_map(|link| {
            let wrapper = device.link_wrapper_for(link);
            let mut counters: std::collections::BTreeMap<String, u64> = WRAPPED_COUNTERS
                .iter()
                .filter_map(|&(counter, name)| {
                    Some((name.to_string(), wrapper.error_counter(counter).ok()?))
                })
                .collect();
            if let Ok(v) = crate::ffi::nvml::nvlink_ecc_data_errors(&device, link) {
                counters.insert(ECC_DATA_COUNTER.to_string(), v);
            }
            (!counters.is_empty()).then(|| PortCounters {
                device: name.clone(),
                port: link,
                counters,
            })
        })
        .collect()
}
