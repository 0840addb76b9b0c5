//! The one place topology discovery uses `unsafe`: opening ROCm SMI with dlopen and calling the
//! five functions that describe GPUs and the links between them (declarations from rocm_smi.h).

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
}
