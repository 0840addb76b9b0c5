//! CUDA devices through cudarc's driver API (loaded at run time): presence of the driver, device count,
//! and one device with its primary context, a stream, events and memory, as a `GpuDevice`.
//!
//! cudarc panics when libcuda is missing or lacks a symbol, so every entry here first asks
//! `driver_status()`, and only symbols present in every CUDA 11+ driver are called.

use super::device::{DeviceGraphs, DeviceInfo, GpuDevice, LibraryVersion, MemoryKind};
use crate::error::{Error, Result};
use crate::ffi::{c_text, DeviceAddr, StreamHandle};
use cudarc::driver::sys;
use std::ffi::c_char;

/// Ok when the CUDA driver library can be loaded; otherwise the loader's reason.
pub fn driver_status() -> std::result::Result<(), String> {
    // SAFETY: is_culib_present only tries to dlopen libcuda under its usual names.
    if unsafe { sys::is_culib_present() } {
        return Ok(());
    }
    // cudarc says only yes or no; ask the loader ourselves for its words.
    let mut reasons = Vec::new();
    for name in ["libcuda.so.1", "libcuda.so"] {
        // SAFETY: loading the NVIDIA driver library runs no user-visible initialisation.
        match unsafe { libloading::Library::new(name) } {
            Ok(_) => return Ok(()),
            // The loader names the file in its message.
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(format!(
        "the CUDA driver library could not be loaded ({})",
        reasons.join("; ")
    ))
}

fn error_text(r: sys::CUresult) -> String {
    let mut name: *const c_char = std::ptr::null();
    let mut text: *const c_char = std::ptr::null();
    // SAFETY: both calls accept any code and write a pointer to a static string (or leave it NULL).
    unsafe {
        let _ = sys::cuGetErrorName(r, &mut name);
        let _ = sys::cuGetErrorString(r, &mut text);
    }
    match (c_text(name), c_text(text)) {
        (Some(n), Some(t)) => format!("{n}: {t}"),
        (Some(n), None) => n,
        _ => format!("{r:?}"),
    }
}

fn check(r: sys::CUresult, call: &str, rank: usize, host: &str) -> Result<()> {
    if r == sys::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    Err(Error::Library {
        library: "CUDA".into(),
        call: call.into(),
        detail: error_text(r),
        rank,
        host: host.into(),
    })
}

fn require_driver(rank: usize, host: &str) -> Result<()> {
    driver_status().map_err(|why| {
        Error::Unsupported(format!(
            "no usable NVIDIA GPU or driver was found on rank {rank} ({host}): {why}"
        ))
    })
}

/// Number of CUDA devices this process sees (after CUDA_VISIBLE_DEVICES).
pub fn device_count(rank: usize, host: &str) -> Result<usize> {
    require_driver(rank, host)?;
    // SAFETY: the driver is present (checked above); cuInit may be called any number of times.
    let r = unsafe { sys::cuInit(0) };
    if r == sys::CUresult::CUDA_ERROR_NO_DEVICE {
        return Ok(0);
    }
    check(r, "cuInit", rank, host)?;
    let mut n = 0;
    // SAFETY: n is a valid out-pointer.
    check(
        unsafe { sys::cuDeviceGetCount(&mut n) },
        "cuDeviceGetCount",
        rank,
        host,
    )?;
    Ok(n.max(0) as usize)
}

/// CUDA driver version as "12.8".
pub fn driver_version() -> Option<String> {
    driver_status().ok()?;
    let mut v = 0;
    // SAFETY: the driver is present; v is a valid out-pointer.
    (unsafe { sys::cuDriverGetVersion(&mut v) } == sys::CUresult::CUDA_SUCCESS)
        .then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// One CUDA device driven from the current thread.
pub struct CudaDevice {
    ordinal: usize,
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    events: Vec<sys::CUevent>,
    /// The instantiated graph of -G and the graph it came from.
    graph: Option<(sys::CUgraph, sys::CUgraphExec)>,
    name: String,
    pci_bus_id: Option<String>,
    compute_major: Option<i32>,
    rank: usize,
    host: String,
    /// Buffers from cuMemHostAlloc (-Y host), which cuMemFreeHost releases.
    host_buffers: std::collections::HashSet<u64>,
}

/// Managed memory any stream may touch.
const MEM_ATTACH_GLOBAL: u32 = sys::CUmemAttach_flags::CU_MEM_ATTACH_GLOBAL as u32;
/// Pinned host memory every context may use, mapped into the device's address space.
const HOST_ALLOC_PORTABLE_MAPPED: u32 =
    sys::CU_MEMHOSTALLOC_PORTABLE | sys::CU_MEMHOSTALLOC_DEVICEMAP;

impl CudaDevice {
    /// Opens device `ordinal` and makes its primary context current in this thread.
    /// Opens device `ordinal` with a non-blocking stream of its own, or the legacy default (null) stream
    /// when `null_stream` (nccl-tests' -y 1).
    pub fn open(ordinal: usize, rank: usize, host: &str, null_stream: bool) -> Result<CudaDevice> {
        let count = device_count(rank, host)?;
        if ordinal >= count {
            return Err(Error::Unsupported(format!(
                "host {host} has {count} CUDA device(s); rank {rank} asked for device {ordinal}"
            )));
        }
        let ck = |r, call: &str| check(r, call, rank, host);
        let mut dev: sys::CUdevice = 0;
        // SAFETY (all calls below): the driver is present and initialised (device_count); every pointer
        // is a valid out-pointer of the declared type.
        unsafe {
            ck(sys::cuDeviceGet(&mut dev, ordinal as i32), "cuDeviceGet")?;
            let mut ctx: sys::CUcontext = std::ptr::null_mut();
            ck(
                sys::cuDevicePrimaryCtxRetain(&mut ctx, dev),
                "cuDevicePrimaryCtxRetain",
            )?;
            let mut device = CudaDevice {
                ordinal,
                dev,
                ctx,
                stream: std::ptr::null_mut(),
                events: Vec::new(),
                graph: None,
                name: String::new(),
                pci_bus_id: None,
                compute_major: None,
                host_buffers: Default::default(),
                rank,
                host: host.to_string(),
            };
            // From here on, Drop releases what was acquired.
            ck(sys::cuCtxSetCurrent(ctx), "cuCtxSetCurrent")?;
            let mut stream: sys::CUstream = std::ptr::null_mut();
            // Non-blocking, as nccl-tests: no implicit synchronisation with the legacy default stream;
            // the null stream itself with -y 1 (never destroyed: `stream` stays null).
            if !null_stream {
                ck(
                    sys::cuStreamCreate(
                        &mut stream,
                        sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
                    ),
                    "cuStreamCreate",
                )?;
            }
            device.stream = stream;
            let mut buf = [0 as c_char; 256];
            if sys::cuDeviceGetName(buf.as_mut_ptr(), buf.len() as i32, dev)
                == sys::CUresult::CUDA_SUCCESS
            {
                device.name = c_text(buf.as_ptr()).unwrap_or_default();
            }
            let mut bus = [0 as c_char; 64];
            if sys::cuDeviceGetPCIBusId(bus.as_mut_ptr(), bus.len() as i32, dev)
                == sys::CUresult::CUDA_SUCCESS
            {
                device.pci_bus_id = c_text(bus.as_ptr());
            }
            let mut major = 0;
            if sys::cuDeviceGetAttribute(
                &mut major,
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                dev,
            ) == sys::CUresult::CUDA_SUCCESS
            {
                device.compute_major = Some(major);
            }
            Ok(device)
        }
    }

    fn check(&self, r: sys::CUresult, call: &str) -> Result<()> {
        check(r, call, self.rank, &self.host)
    }

    fn sync(&self) -> Result<()> {
        // SAFETY: the stream is live.
        self.check(
            unsafe { sys::cuStreamSynchronize(self.stream) },
            "cuStreamSynchronize",
        )
    }

    /// Compute capability major (9 = Hopper).
    pub fn compute_major(&self) -> Option<i32> {
        self.compute_major
    }
}

impl GpuDevice for CudaDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: "cuda".into(),
            index: Some(self.ordinal),
            name: self.name.clone(),
            pci_bus_id: self.pci_bus_id.clone(),
        }
    }

    fn versions(&self) -> Vec<LibraryVersion> {
        driver_version()
            .map(|v| {
                vec![LibraryVersion {
                    library: "CUDA driver".into(),
                    version: v,
                }]
            })
            .unwrap_or_default()
    }

    fn stream(&self) -> StreamHandle {
        StreamHandle(self.stream.cast())
    }

    fn alloc(&mut self, bytes: u64) -> Result<DeviceAddr> {
        let mut p: sys::CUdeviceptr = 0;
        // SAFETY: the context is current; p is a valid out-pointer.
        self.check(
            unsafe { sys::cuMemAlloc_v2(&mut p, bytes as usize) },
            &format!("cuMemAlloc({bytes} bytes)"),
        )?;
        Ok(DeviceAddr(p))
    }

    fn alloc_kind(&mut self, bytes: u64, kind: MemoryKind) -> Result<DeviceAddr> {
        match kind {
            MemoryKind::Coarse => self.alloc(bytes),
            MemoryKind::Managed => {
                let mut p: sys::CUdeviceptr = 0;
                // SAFETY: the context is current; p is a valid out-pointer.
                self.check(
                    unsafe { sys::cuMemAllocManaged(&mut p, bytes as usize, MEM_ATTACH_GLOBAL) },
                    &format!("cuMemAllocManaged({bytes} bytes, -Y managed)"),
                )?;
                Ok(DeviceAddr(p))
            }
            MemoryKind::Host => {
                let mut p: *mut std::ffi::c_void = std::ptr::null_mut();
                // Portable and mapped: with unified addressing the host pointer is the device's too.
                // SAFETY: the context is current; p is a valid out-pointer.
                self.check(
                    unsafe { sys::cuMemHostAlloc(&mut p, bytes as usize, HOST_ALLOC_PORTABLE_MAPPED) },
                    &format!("cuMemHostAlloc({bytes} bytes, -Y host)"),
                )?;
                self.host_buffers.insert(p as usize as u64);
                Ok(DeviceAddr(p as usize as u64))
            }
            MemoryKind::Fine => Err(Error::Unsupported(
                "-Y fine is AMD's fine-grained device memory (hipExtMallocWithFlags); CUDA has no such \
                 kind: use -Y coarse, host or managed on NVIDIA GPUs"
                    .into(),
            )),
        }
    }

    fn free(&mut self, addr: DeviceAddr) -> Result<()> {
        if self.host_buffers.remove(&addr.0) {
            // SAFETY: addr came from cuMemHostAlloc and is freed once by its owner.
            return self.check(
                unsafe { sys::cuMemFreeHost(addr.0 as usize as *mut std::ffi::c_void) },
                "cuMemFreeHost",
            );
        }
        // SAFETY: addr came from alloc and is freed once by its owner.
        self.check(unsafe { sys::cuMemFree_v2(addr.0) }, "cuMemFree")
    }

    fn copy_in(&mut self, dst: DeviceAddr, data: &[u8]) -> Result<()> {
        self.sync()?;
        // SAFETY: the caller keeps dst..dst+len inside its allocation; data is a valid host slice.
        self.check(
            unsafe { sys::cuMemcpyHtoD_v2(dst.0, data.as_ptr().cast(), data.len()) },
            "cuMemcpyHtoD",
        )
    }

    fn copy_out(&mut self, src: DeviceAddr, out: &mut [u8]) -> Result<()> {
        self.sync()?;
        // SAFETY: the caller keeps src..src+len inside its allocation; out is a valid host slice.
        self.check(
            unsafe { sys::cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), src.0, out.len()) },
            "cuMemcpyDtoH",
        )
    }

    fn memset(&mut self, dst: DeviceAddr, len: u64, byte: u8) -> Result<()> {
        // SAFETY: the caller keeps dst..dst+len inside its allocation; the stream is live.
        self.check(
            unsafe { sys::cuMemsetD8Async(dst.0, byte, len as usize, self.stream) },
            "cuMemsetD8Async",
        )?;
        self.sync()
    }

    fn copy_on_stream(&mut self, dst: DeviceAddr, src: DeviceAddr, len: u64) -> Result<()> {
        // SAFETY: the caller keeps both ranges inside its allocations; the stream is live.
        self.check(
            unsafe { sys::cuMemcpyDtoDAsync_v2(dst.0, src.0, len as usize, self.stream) },
            "cuMemcpyDtoDAsync",
        )
    }

    fn stream_done(&mut self) -> Result<bool> {
        // SAFETY: the stream is live.
        let r = unsafe { sys::cuStreamQuery(self.stream) };
        if r == sys::CUresult::CUDA_ERROR_NOT_READY {
            return Ok(false);
        }
        self.check(r, "cuStreamQuery").map(|_| true)
    }

    fn reserve_events(&mut self, count: usize) -> Result<()> {
        while self.events.len() < count {
            let mut e: sys::CUevent = std::ptr::null_mut();
            // SAFETY: e is a valid out-pointer; the context is current.
            self.check(
                unsafe { sys::cuEventCreate(&mut e, sys::CUevent_flags::CU_EVENT_DEFAULT as u32) },
                "cuEventCreate",
            )?;
            self.events.push(e);
        }
        Ok(())
    }

    fn record_event(&mut self, index: usize) -> Result<()> {
        self.reserve_events(index + 1)?;
        // SAFETY: the event and the stream are live.
        self.check(
            unsafe { sys::cuEventRecord(self.events[index], self.stream) },
            "cuEventRecord",
        )
    }

    fn elapsed_ms(&mut self, start: usize, end: usize) -> Result<f32> {
        let (Some(&a), Some(&b)) = (self.events.get(start), self.events.get(end)) else {
            return Err(Error::Internal(format!(
                "timer marks {start}..{end} were never recorded"
            )));
        };
        let mut ms = 0f32;
        // SAFETY: both events are live and were recorded on our stream.
        unsafe {
            self.check(sys::cuEventSynchronize(b), "cuEventSynchronize")?;
            self.check(sys::cuEventElapsedTime(&mut ms, a, b), "cuEventElapsedTime")?;
        }
        Ok(ms)
    }

    fn mem_info(&self) -> Result<(u64, u64)> {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers; the context is current.
        self.check(
            unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) },
            "cuMemGetInfo",
        )?;
        Ok((free as u64, total as u64))
    }

    fn supports_fp8(&self) -> Option<bool> {
        // FP8 reductions need Hopper (compute capability 9.0) or newer.
        self.compute_major.map(|m| m >= 9)
    }

    fn graphs(&mut self) -> Option<&mut dyn DeviceGraphs> {
        Some(self)
    }
}

/// CUDA graphs on the device's stream.
impl DeviceGraphs for CudaDevice {
    fn begin_capture(&mut self) -> Result<()> {
        // A graph the caller did not release (a row that failed half-way) goes now, before capturing:
        // destroying it during the capture would invalidate the capture.
        self.destroy_graph();
        // Thread-local mode: other threads' CUDA calls (other ranks of -g) do not break this capture.
        // SAFETY: the stream is live and not already capturing.
        self.check(
            unsafe {
                sys::cuStreamBeginCapture_v2(
                    self.stream,
                    sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
                )
            },
            "cuStreamBeginCapture",
        )
    }

    fn end_capture(&mut self) -> Result<()> {
        if self.graph.is_some() {
            return Err(Error::Internal(
                "-G: a graph was still held when its successor's capture ended".into(),
            ));
        }
        let mut graph: sys::CUgraph = std::ptr::null_mut();
        // SAFETY: the stream is capturing; graph is a valid out-pointer.
        self.check(
            unsafe { sys::cuStreamEndCapture(self.stream, &mut graph) },
            "cuStreamEndCapture",
        )?;
        let mut exec: sys::CUgraphExec = std::ptr::null_mut();
        // SAFETY: graph was just captured; exec is a valid out-pointer.
        let r = unsafe { sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0) };
        if let Err(e) = self.check(r, "cuGraphInstantiateWithFlags") {
            // SAFETY: the graph was created above and is not used again.
            unsafe { sys::cuGraphDestroy(graph) };
            return Err(e);
        }
        self.graph = Some((graph, exec));
        Ok(())
    }

    fn release_graph(&mut self) -> Result<()> {
        self.destroy_graph();
        Ok(())
    }

    fn launch_graph(&mut self) -> Result<()> {
        let Some((_, exec)) = self.graph else {
            return Err(Error::Internal("-G: no captured graph to launch".into()));
        };
        // SAFETY: exec is a live instantiated graph; the stream is live.
        self.check(
            unsafe { sys::cuGraphLaunch(exec, self.stream) },
            "cuGraphLaunch",
        )
    }
}

impl CudaDevice {
    fn destroy_graph(&mut self) {
        if let Some((graph, exec)) = self.graph.take() {
            // SAFETY: both were created by end_capture and are released once, outside any capture;
            // the engine releases them after waiting for the last replay, and teardown follows a wait.
            unsafe {
                let _ = sys::cuGraphExecDestroy(exec);
                let _ = sys::cuGraphDestroy(graph);
            }
        }
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        self.destroy_graph();
        // SAFETY: each handle was created by this value and is released exactly once; teardown errors
        // have no one to report to.
        unsafe {
            for &e in &self.events {
                let _ = sys::cuEventDestroy_v2(e);
            }
            if !self.stream.is_null() {
                let _ = sys::cuStreamDestroy_v2(self.stream);
            }
            if !self.ctx.is_null() {
                let _ = sys::cuDevicePrimaryCtxRelease_v2(self.dev);
            }
        }
    }
}
