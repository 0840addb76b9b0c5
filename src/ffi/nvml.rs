//! The one NVML call nvml-wrapper 0.13 does not wrap: NVLink's DL_ECC_DATA error counter (its
//! `ErrorCounter` enum stops at DL_CRC_DATA). Everything else of NVML goes through nvml-wrapper.

use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::Device;

/// NVML_NVLINK_ERROR_DL_ECC_DATA in nvml.h's nvmlNvLinkErrorCounter_t.
const NVML_NVLINK_ERROR_DL_ECC_DATA: u32 = 4;

/// nvmlDeviceGetNvLinkErrorCounter(device, link, NVML_NVLINK_ERROR_DL_ECC_DATA): the data ECC errors
/// the link's receiver corrected. NotSupported where the driver or the GPU has no such counter.
pub fn nvlink_ecc_data_errors(device: &Device<'_>, link: u32) -> Result<u64, NvmlError> {
    let sym = nvml_sym(device.nvml().lib().nvmlDeviceGetNvLinkErrorCounter.as_ref())?;
    let mut value: std::os::raw::c_ulonglong = 0;
    // SAFETY: the handle belongs to a live Nvml (the borrow of `device` keeps it), and the
    // function writes one unsigned long long to the pointer, which is valid for that write.
    nvml_try(unsafe {
        sym(
            device.handle(),
            link,
            NVML_NVLINK_ERROR_DL_ECC_DATA,
            &mut value,
        )
    })?;
    Ok(value)
}
