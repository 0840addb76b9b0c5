//! ROCm SMI's description of the GPUs and the links between them: how many, their PCI addresses and
//! names, and how two of them are joined (PCIe or xGMI, and the hops).

use super::{sys, RocmSmi};
use crate::ffi::c_text;
use std::ffi::c_char;

impl RocmSmi {
    pub fn device_count(&self) -> Result<u32, String> {
        let f = symbol!(self, rsmi_num_monitor_devices);
        let mut n: u32 = 0;
        // SAFETY: n is a valid out-pointer.
        self.check(unsafe { f(&mut n) }, "rsmi_num_monitor_devices")?;
        Ok(n)
    }

    /// The GPU's PCI address in sysfs' form.
    pub fn bus_id(&self, dev: u32) -> Result<String, String> {
        let f = symbol!(self, rsmi_dev_pci_id_get);
        let mut bdf: u64 = 0;
        // SAFETY: bdf is a valid out-pointer.
        self.check(unsafe { f(dev, &mut bdf) }, "rsmi_dev_pci_id_get")?;
        Ok(decode_bdfid(bdf))
    }

    pub fn name(&self, dev: u32) -> Result<String, String> {
        let f = symbol!(self, rsmi_dev_name_get);
        let mut buf = [0 as c_char; 256];
        // SAFETY: the library writes a NUL-terminated string of at most buf.len() bytes.
        self.check(
            unsafe { f(dev, buf.as_mut_ptr(), buf.len()) },
            "rsmi_dev_name_get",
        )?;
        buf[buf.len() - 1] = 0;
        Ok(c_text(buf.as_ptr()).unwrap_or_default())
    }

    /// (link type, hops) between two GPUs.
    pub fn link_type(&self, src: u32, dst: u32) -> Result<(LinkType, u64), String> {
        let f = symbol!(self, rsmi_topo_get_link_type);
        let (mut hops, mut kind) = (0u64, sys::RSMI_IO_LINK_TYPE::RSMI_IOLINK_TYPE_UNDEFINED);
        // SAFETY: both are valid out-pointers (the enum is 32 bits wide, as its largest value says).
        self.check(
            unsafe { f(src, dst, &mut hops, &mut kind) },
            "rsmi_topo_get_link_type",
        )?;
        let link = match kind {
            sys::RSMI_IO_LINK_TYPE::RSMI_IOLINK_TYPE_PCIEXPRESS => LinkType::Pcie,
            sys::RSMI_IO_LINK_TYPE::RSMI_IOLINK_TYPE_XGMI => LinkType::Xgmi,
            _ => LinkType::Undefined,
        };
        Ok((link, hops))
    }

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
}

/// How two GPUs are joined, as ROCm SMI says (RSMI_IO_LINK_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Pcie,
    Xgmi,
    Undefined,
}

/// rsmi_dev_pci_id_get's BDFID: domain in bits 32-63, bus 8-15, device 3-7, function 0-2 (ROCm 6.1
/// puts a partition id in bits 28-31, which is not part of the address).
pub fn decode_bdfid(bdf: u64) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        (bdf >> 32) & 0xffff,
        (bdf >> 8) & 0xff,
        (bdf >> 3) & 0x1f,
        bdf & 0x7
    )
}
