//! Foreign libraries: NCCL/RCCL, the HIP runtime, ROCm SMI and the CUDA driver (through cudarc), MPI's
//! raw calls, NVML's one unwrapped call and the signal handler, each behind a thin safe layer that turns
//! every call into a `Result` with the library's own words; quiet.rs keeps what the vendor libraries
//! print by themselves off the user's terminal.
//!
//! All `unsafe` code of collbench lives in this module tree (lib.rs denies it everywhere else). Everything above it handles device memory
//! as plain addresses (`DeviceAddr`) and streams as opaque handles (`StreamHandle`), which safe code
//! can pass around and offset but never dereference.

pub mod clock;
pub mod cuda;
pub mod device;
pub mod hip;
mod hip_sys;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod nccl;
mod nccl_sys;
pub mod nvml;
pub mod quiet;
pub mod rocm_smi;
mod rocm_smi_sys;
pub mod search;
pub mod signals;

/// A device memory address. Safe code may add byte offsets to it; only the libraries dereference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DeviceAddr(pub u64);

impl DeviceAddr {
    /// The address `bytes` further on.
    pub fn offset(self, bytes: u64) -> DeviceAddr {
        DeviceAddr(self.0 + bytes)
    }

    fn as_ptr(self) -> *mut std::ffi::c_void {
        self.0 as usize as *mut std::ffi::c_void
    }
}

/// A CUDA or HIP stream, as the communication library receives it (both are opaque pointers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHandle(*mut std::ffi::c_void);

impl StreamHandle {
    /// The default (null) stream.
    pub fn null() -> StreamHandle {
        StreamHandle(std::ptr::null_mut())
    }
}

/// Opens a shared library that stays mapped until the process exits (RTLD_NODELETE).
///
/// NCCL starts threads (ncclGetUniqueId starts its bootstrap listener) and HIP starts runtime threads
/// that outlive any handle we hold; unmapping their code on dlclose would crash the process later.
fn open_resident(path: &std::path::Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a library runs its initialisers; the GPU libraries we load have benign ones.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL | libc::RTLD_NODELETE) }
        .map(Into::into)
}

/// A text returned by a C library as `const char*`, copied; None for NULL.
fn c_text(ptr: *const std::ffi::c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the libraries return NUL-terminated static or thread-local strings; we copy at once.
    let text = unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .trim()
        .to_string();
    Some(text)
}
