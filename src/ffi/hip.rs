//! The safe layer over the HIP runtime (libamdhip64, loaded at run time): device count, and one device
//! with a stream, events and memory, as a `GpuDevice` for RCCL runs.

use super::device::{DeviceInfo, GpuDevice, LibraryVersion, MemoryKind};
use super::hip_sys as sys;
use super::quiet::quietly;
use super::search::{self, Attempt, Family};
use super::{c_text, DeviceAddr, StreamHandle};
use crate::error::{Error, Result};
use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

/// The HIP runtime's own logging switch: when set, its lines are the user's to see.
const LOGGING_VARIABLES: [&str; 1] = ["AMD_LOG_LEVEL"];

/// A loaded HIP runtime.
pub struct Hip {
    lib: sys::HipLib,
    path: PathBuf,
    rank: usize,
    host: String,
}

macro_rules! required {
    ($self:ident, $name:ident) => {
        match $self.lib.$name.as_ref() {
            Ok(f) => f,
            Err(e) => {
                return Err(Error::Library {
                    library: "HIP".into(),
                    call: stringify!($name).into(),
                    detail: format!(
                        "{} has no {} ({e})",
                        $self.path.display(),
                        stringify!($name)
                    ),
                    rank: $self.rank,
                    host: $self.host.clone(),
                })
            }
        }
    };
}

impl Hip {
    /// Finds and opens libamdhip64 (see `search`), keeping what it prints meanwhile for the error.
    pub fn open(rank: usize, host: &str) -> Result<Arc<Hip>> {
        let (opened, printed) = quietly(&LOGGING_VARIABLES, || Self::open_loud(rank, host));
        opened.map_err(|e| printed.added_to(e, "HIP"))
    }

    fn open_loud(rank: usize, host: &str) -> Result<Arc<Hip>> {
        let mut attempts = Vec::new();
        for candidate in search::static_candidates(Family::Hip, None, &search::process_env) {
            // SAFETY: the symbols are typed by our declarations of the HIP ABI (sys/hip_api.h).
            let opened = super::open_resident(&candidate.target)
                .and_then(|l| unsafe { sys::HipLib::from_library(l) });
            match opened {
                Ok(lib) => {
                    let path = if candidate.target.is_absolute() {
                        candidate.target.clone()
                    } else {
                        search::mapped_path("libamdhip64.so").unwrap_or(candidate.target.clone())
                    };
                    return Ok(Arc::new(Hip {
                        lib,
                        path,
                        rank,
                        host: host.into(),
                    }));
                }
                Err(e) => attempts.push(Attempt {
                    candidate,
                    reason: e.to_string(),
                }),
            }
        }
        Err(Error::Library {
            library: "HIP".into(),
            call: "dlopen".into(),
            detail: search::not_found_message(Family::Hip, &attempts),
            rank,
            host: host.into(),
        })
    }

    /// Where the runtime was loaded from.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// "hipErrorNoDevice: no ROCm-capable device is detected", from the runtime itself.
    pub fn error_text(&self, code: sys::hipError_t) -> String {
        // SAFETY: both functions accept any code and return static strings.
        let name = self
            .lib
            .hipGetErrorName
            .as_ref()
            .ok()
            .and_then(|f| c_text(unsafe { f(code) }));
        let text = self
            .lib
            .hipGetErrorString
            .as_ref()
            .ok()
            .and_then(|f| c_text(unsafe { f(code) }));
        match (name, text) {
            (Some(n), Some(t)) if n != t => format!("{n}: {t}"),
            (Some(n), _) => n,
            (None, Some(t)) => t,
            (None, None) => format!("hipError_t {}", code.0),
        }
    }

    /// The runtime's name for an error code ("hipErrorNoDevice"), if it gives one.
    pub fn error_name(&self, code: u32) -> Option<String> {
        let f = self.lib.hipGetErrorName.as_ref().ok()?;
        // SAFETY: hipGetErrorName accepts any code and returns a static string.
        c_text(unsafe { f(sys::hipError_t(code)) })
    }

    fn check(&self, r: sys::hipError_t, call: &str) -> Result<()> {
        if r == sys::hipError_t::hipSuccess {
            return Ok(());
        }
        let detail = self.error_text(r);
        if r == sys::hipError_t::hipErrorNoDevice
            || r == sys::hipError_t::hipErrorInsufficientDriver
        {
            return Err(Error::Unsupported(format!(
                "no usable AMD GPU or driver was found on rank {} ({}): {call}: {detail}",
                self.rank, self.host
            )));
        }
        Err(Error::Library {
            library: "HIP".into(),
            call: call.into(),
            detail,
            rank: self.rank,
            host: self.host.clone(),
        })
    }

    /// Devices this process sees (after HIP_VISIBLE_DEVICES). No device is an `Unsupported` error
    /// carrying the runtime's words (hipErrorNoDevice), as the runtime reports it.
    pub fn device_count(&self) -> Result<usize> {
        let f = required!(self, hipGetDeviceCount);
        let mut n = 0;
        // The first call starts the runtime, which prints its own lines when it finds no GPU.
        // SAFETY: n is a valid out-pointer.
        let (rc, printed) = quietly(&LOGGING_VARIABLES, || unsafe { f(&mut n) });
        self.check(rc, "hipGetDeviceCount")
            .map_err(|e| printed.added_to(e, "HIP"))?;
        Ok(n.max(0) as usize)
    }

    /// The runtime's version as HIP_VERSION numbers it (major x 10^7 + minor x 10^5 + patch, e.g.
    /// 70253211 for 7.2.53211), if it says.
    pub fn runtime_version(&self) -> Option<i32> {
        let f = self.lib.hipRuntimeGetVersion.as_ref().ok()?;
        let mut v = 0;
        // SAFETY: v is a valid out-pointer.
        (unsafe { f(&mut v) } == sys::hipError_t::hipSuccess).then_some(v)
    }

    /// Whether this runtime exports the allocator of `kind` (-Y).
    pub fn has_memory_kind(&self, kind: MemoryKind) -> bool {
        match kind {
            MemoryKind::Coarse => self.lib.hipMalloc.is_ok() && self.lib.hipFree.is_ok(),
            MemoryKind::Fine => self.lib.hipExtMallocWithFlags.is_ok() && self.lib.hipFree.is_ok(),
            MemoryKind::Host => self.lib.hipHostMalloc.is_ok() && self.lib.hipHostFree.is_ok(),
            MemoryKind::Managed => self.lib.hipMallocManaged.is_ok() && self.lib.hipFree.is_ok(),
        }
    }

    /// Runtime and driver versions, as the runtime reports them (raw integers, e.g. 50221153).
    pub fn versions(&self) -> Vec<LibraryVersion> {
        let mut out = Vec::new();
        for (name, f) in [
            ("HIP runtime", self.lib.hipRuntimeGetVersion.as_ref()),
            ("HIP driver", self.lib.hipDriverGetVersion.as_ref()),
        ] {
            if let Ok(f) = f {
                let mut v = 0;
                // SAFETY: v is a valid out-pointer.
                if unsafe { f(&mut v) } == sys::hipError_t::hipSuccess {
                    out.push(LibraryVersion {
                        library: name.into(),
                        version: v.to_string(),
                    });
                }
            }
        }
        out
    }
}

/// One HIP device driven from the current thread.
pub struct HipDevice {
    hip: Arc<Hip>,
    ordinal: usize,
    stream: sys::hipStream_t,
    events: Vec<sys::hipEvent_t>,
    name: String,
    pci_bus_id: Option<String>,
    /// Buffers from hipHostMalloc, which hipHostFree releases (hipFree the others).
    host_buffers: std::collections::HashSet<u64>,
}

/// hipExtMallocWithFlags' flag for rccl-tests' -Y fine: uncached device memory from HIP 5.7 on,
/// fine-grained before (rccl-tests chooses by the HIP it was built with; we by the one loaded).
pub fn fine_grained_flag(runtime_version: Option<i32>) -> u32 {
    if runtime_version.is_some_and(|v| v >= 50_700_000) {
        sys::COLLBENCH_HIP_DEVICE_MALLOC_UNCACHED
    } else {
        sys::COLLBENCH_HIP_DEVICE_MALLOC_FINEGRAINED
    }
}

impl HipDevice {
    /// Makes device `ordinal` current in this thread and creates its stream.
    /// Opens device `ordinal` with a stream of its own, or the null stream when `null_stream` (-y 1).
    pub fn open(hip: &Arc<Hip>, ordinal: usize, null_stream: bool) -> Result<HipDevice> {
        let count = hip.device_count()?;
        if ordinal >= count {
            return Err(Error::Unsupported(format!(
                "host {} has {count} HIP device(s); rank {} asked for device {ordinal}",
                hip.host, hip.rank
            )));
        }
        let set = required!(hip, hipSetDevice);
        let create = required!(hip, hipStreamCreate);
        // SAFETY: ordinal < count.
        hip.check(unsafe { set(ordinal as i32) }, "hipSetDevice")?;
        let mut stream: sys::hipStream_t = std::ptr::null_mut();
        if !null_stream {
            // SAFETY: stream is a valid out-pointer; the device is current.
            hip.check(unsafe { create(&mut stream) }, "hipStreamCreate")?;
        }
        let mut device = HipDevice {
            hip: Arc::clone(hip),
            ordinal,
            stream,
            events: Vec::new(),
            name: String::new(),
            pci_bus_id: None,
            host_buffers: Default::default(),
        };
        let mut buf = [0 as c_char; 256];
        if let Ok(f) = hip.lib.hipDeviceGetName.as_ref() {
            // SAFETY: buf is writable for its length.
            if unsafe { f(buf.as_mut_ptr(), buf.len() as i32, ordinal as i32) }
                == sys::hipError_t::hipSuccess
            {
                device.name = c_text(buf.as_ptr()).unwrap_or_default();
            }
        }
        let mut bus = [0 as c_char; 64];
        if let Ok(f) = hip.lib.hipDeviceGetPCIBusId.as_ref() {
            // SAFETY: bus is writable for its length.
            if unsafe { f(bus.as_mut_ptr(), bus.len() as i32, ordinal as i32) }
                == sys::hipError_t::hipSuccess
            {
                device.pci_bus_id = c_text(bus.as_ptr());
            }
        }
        Ok(device)
    }

    fn sync(&self) -> Result<()> {
        let hip = &self.hip;
        let f = required!(hip, hipStreamSynchronize);
        // SAFETY: the stream is live.
        hip.check(unsafe { f(self.stream) }, "hipStreamSynchronize")
    }
}

impl GpuDevice for HipDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: "hip".into(),
            index: Some(self.ordinal),
            name: self.name.clone(),
            pci_bus_id: self.pci_bus_id.clone(),
        }
    }

    fn versions(&self) -> Vec<LibraryVersion> {
        self.hip.versions()
    }

    fn stream(&self) -> StreamHandle {
        StreamHandle(self.stream.cast())
    }

    fn alloc(&mut self, bytes: u64) -> Result<DeviceAddr> {
        let hip = &self.hip;
        let f = required!(hip, hipMalloc);
        let mut p: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: p is a valid out-pointer.
        hip.check(
            unsafe { f(&mut p, bytes as usize) },
            &format!("hipMalloc({bytes} bytes)"),
        )?;
        Ok(DeviceAddr(p as usize as u64))
    }

    fn alloc_kind(&mut self, bytes: u64, kind: MemoryKind) -> Result<DeviceAddr> {
        let hip = Arc::clone(&self.hip);
        let mut p: *mut std::ffi::c_void = std::ptr::null_mut();
        let size = bytes as usize;
        // SAFETY (each arm): p is a valid out-pointer; the flags are the real header's (tests/abi.rs).
        let (rc, call) = match kind {
            MemoryKind::Coarse => return self.alloc(bytes),
            MemoryKind::Fine => {
                let f = required!(hip, hipExtMallocWithFlags);
                let flag = fine_grained_flag(hip.runtime_version());
                (unsafe { f(&mut p, size, flag) }, "hipExtMallocWithFlags")
            }
            MemoryKind::Host => {
                let f = required!(hip, hipHostMalloc);
                let rc = unsafe { f(&mut p, size, sys::COLLBENCH_HIP_HOST_MALLOC_DEFAULT) };
                (rc, "hipHostMalloc")
            }
            MemoryKind::Managed => {
                let f = required!(hip, hipMallocManaged);
                let rc = unsafe { f(&mut p, size, sys::COLLBENCH_HIP_MEM_ATTACH_GLOBAL) };
                (rc, "hipMallocManaged")
            }
        };
        hip.check(rc, &format!("{call}({bytes} bytes, -Y {})", kind.name()))?;
        let addr = DeviceAddr(p as usize as u64);
        if kind == MemoryKind::Host {
            self.host_buffers.insert(addr.0);
        }
        Ok(addr)
    }

    fn free(&mut self, addr: DeviceAddr) -> Result<()> {
        let hip = &self.hip;
        if self.host_buffers.remove(&addr.0) {
            let f = required!(hip, hipHostFree);
            // SAFETY: addr came from hipHostMalloc and is freed once by its owner.
            return hip.check(unsafe { f(addr.as_ptr()) }, "hipHostFree");
        }
        let f = required!(hip, hipFree);
        // SAFETY: addr came from alloc and is freed once by its owner.
        hip.check(unsafe { f(addr.as_ptr()) }, "hipFree")
    }

    fn copy_in(&mut self, dst: DeviceAddr, data: &[u8]) -> Result<()> {
        self.sync()?;
        let hip = &self.hip;
        let f = required!(hip, hipMemcpy);
        // SAFETY: the caller keeps dst..dst+len inside its allocation; data is a valid host slice.
        hip.check(
            unsafe {
                f(
                    dst.as_ptr(),
                    data.as_ptr().cast(),
                    data.len(),
                    sys::hipMemcpyKind::hipMemcpyHostToDevice,
                )
            },
            "hipMemcpy",
        )
    }

    fn copy_out(&mut self, src: DeviceAddr, out: &mut [u8]) -> Result<()> {
        self.sync()?;
        let hip = &self.hip;
        let f = required!(hip, hipMemcpy);
        // SAFETY: the caller keeps src..src+len inside its allocation; out is a valid host slice.
        hip.check(
            unsafe {
                f(
                    out.as_mut_ptr().cast(),
                    src.as_ptr(),
                    out.len(),
                    sys::hipMemcpyKind::hipMemcpyDeviceToHost,
                )
            },
            "hipMemcpy",
        )
    }

    fn memset(&mut self, dst: DeviceAddr, len: u64, byte: u8) -> Result<()> {
        self.sync()?;
        let hip = &self.hip;
        let f = required!(hip, hipMemset);
        // SAFETY: the caller keeps dst..dst+len inside its allocation.
        hip.check(
            unsafe { f(dst.as_ptr(), byte as i32, len as usize) },
            "hipMemset",
        )
    }

    fn copy_on_stream(&mut self, dst: DeviceAddr, src: DeviceAddr, len: u64) -> Result<()> {
        let hip = &self.hip;
        let f = required!(hip, hipMemcpyAsync);
        // SAFETY: the caller keeps both ranges inside its allocations; the stream is live.
        hip.check(
            unsafe {
                f(
                    dst.as_ptr(),
                    src.as_ptr(),
                    len as usize,
                    sys::hipMemcpyKind::hipMemcpyDeviceToDevice,
                    self.stream,
                )
            },
            "hipMemcpyAsync",
        )
    }

    fn stream_done(&mut self) -> Result<bool> {
        let hip = &self.hip;
        let f = required!(hip, hipStreamQuery);
        // SAFETY: the stream is live.
        let r = unsafe { f(self.stream) };
        if r == sys::hipError_t::hipErrorNotReady {
            return Ok(false);
        }
        hip.check(r, "hipStreamQuery").map(|_| true)
    }

    fn reserve_events(&mut self, count: usize) -> Result<()> {
        let hip = Arc::clone(&self.hip);
        let f = required!(hip, hipEventCreate);
        while self.events.len() < count {
            let mut e: sys::hipEvent_t = std::ptr::null_mut();
            // SAFETY: e is a valid out-pointer.
            hip.check(unsafe { f(&mut e) }, "hipEventCreate")?;
            self.events.push(e);
        }
        Ok(())
    }

    fn record_event(&mut self, index: usize) -> Result<()> {
        self.reserve_events(index + 1)?;
        let hip = &self.hip;
        let f = required!(hip, hipEventRecord);
        // SAFETY: the event and the stream are live.
        hip.check(
            unsafe { f(self.events[index], self.stream) },
            "hipEventRecord",
        )
    }

    fn elapsed_ms(&mut self, start: usize, end: usize) -> Result<f32> {
        let (Some(&a), Some(&b)) = (self.events.get(start), self.events.get(end)) else {
            return Err(Error::Internal(format!(
                "timer marks {start}..{end} were never recorded"
            )));
        };
        let hip = &self.hip;
        let (sync, elapsed) = (
            required!(hip, hipEventSynchronize),
            required!(hip, hipEventElapsedTime),
        );
        let mut ms = 0f32;
        // SAFETY: both events are live and were recorded on our stream; ms is a valid out-pointer.
        hip.check(unsafe { sync(b) }, "hipEventSynchronize")?;
        hip.check(unsafe { elapsed(&mut ms, a, b) }, "hipEventElapsedTime")?;
        Ok(ms)
    }

    fn mem_info(&self) -> Result<(u64, u64)> {
        let hip = &self.hip;
        let f = required!(hip, hipMemGetInfo);
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers.
        hip.check(unsafe { f(&mut free, &mut total) }, "hipMemGetInfo")?;
        Ok((free as u64, total as u64))
    }

    fn supports_fp8(&self) -> Option<bool> {
        // The architecture (gfx942+ for FP8) is not read here; RCCL itself refuses what it cannot do.
        None
    }
}

impl Drop for HipDevice {
    fn drop(&mut self) {
        // SAFETY: each handle was created by this value and is released exactly once.
        unsafe {
            if let Ok(f) = self.hip.lib.hipEventDestroy.as_ref() {
                for &e in &self.events {
                    let _ = f(e);
                }
            }
            if let Ok(f) = self.hip.lib.hipStreamDestroy.as_ref() {
                if !self.stream.is_null() {
                    let _ = f(self.stream);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_memory_is_uncached_from_hip_5_7_on() {
        // Debian 12's HIP 5.2.3 reports 50221153; HIP 7.2's 70253211.
        assert_eq!(fine_grained_flag(Some(50_221_153)), 0x1);
        assert_eq!(fine_grained_flag(Some(50_700_000)), 0x3);
        assert_eq!(fine_grained_flag(Some(70_253_211)), 0x3);
        assert_eq!(fine_grained_flag(None), 0x1);
    }
}
