//! A loaded NCCL or RCCL: found and opened, its version, its words for an error, and the calls that
//! need no communicator (unique ids, communicator creation, groups, ncclMemAlloc).

use super::*;
use crate::error::{Error, Result};
use crate::ffi::nccl_sys as sys;
use crate::ffi::quiet::quietly;
use crate::ffi::search::{self, Attempt, Candidate};
use crate::ffi::{c_text, DeviceAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded NCCL or RCCL library.
pub struct Nccl {
    pub(super) lib: sys::NcclLib,
    pub(super) flavor: Flavor,
    pub(super) path: PathBuf,
    pub(super) version: i32,
    pub(super) rank: usize,
    pub(super) host: String,
}

impl Nccl {
    /// Finds and opens the library (see `search`), on behalf of `rank` on `host` (for error messages);
    /// what it prints meanwhile goes into the error.
    pub fn open(
        flavor: Flavor,
        explicit: Option<&Path>,
        rank: usize,
        host: &str,
    ) -> Result<Arc<Nccl>> {
        let (opened, printed) = quietly(&LOGGING_VARIABLES, || {
            Self::open_loud(flavor, explicit, rank, host)
        });
        opened.map_err(|e| printed.added_to(e, flavor.name()))
    }

    pub(super) fn open_loud(
        flavor: Flavor,
        explicit: Option<&Path>,
        rank: usize,
        host: &str,
    ) -> Result<Arc<Nccl>> {
        let env = search::process_env;
        let mut attempts = Vec::new();
        let first = search::static_candidates(flavor.family(), explicit, &env);
        if let Some(lib) = Self::try_open(flavor, &first, rank, host, &mut attempts)? {
            return Ok(lib);
        }
        if flavor == Flavor::Nccl && explicit.is_none() {
            let python = search::python_candidates(&search::python_site_dirs(&env));
            if let Some(lib) = Self::try_open(flavor, &python, rank, host, &mut attempts)? {
                return Ok(lib);
            }
        }
        Err(Error::Library {
            library: flavor.name().into(),
            call: "dlopen".into(),
            detail: search::not_found_message(flavor.family(), &attempts),
            rank,
            host: host.into(),
        })
    }

    pub(super) fn try_open(
        flavor: Flavor,
        candidates: &[Candidate],
        rank: usize,
        host: &str,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Option<Arc<Nccl>>> {
        for candidate in candidates {
            // SAFETY: the symbols are typed by our declarations, which tests/abi.rs checks against the
            // real nccl.h.
            let opened = crate::ffi::open_resident(&candidate.target)
                .and_then(|l| unsafe { sys::NcclLib::from_library(l) });
            match opened {
                Ok(lib) => {
                    let stem = if flavor == Flavor::Nccl {
                        "libnccl.so"
                    } else {
                        "librccl.so"
                    };
                    let path = if candidate.target.is_absolute() {
                        candidate.target.clone()
                    } else {
                        search::mapped_path(stem).unwrap_or_else(|| candidate.target.clone())
                    };
                    let mut nccl = Nccl {
                        lib,
                        flavor,
                        path,
                        version: 0,
                        rank,
                        host: host.to_string(),
                    };
                    nccl.version = nccl.query_version()?;
                    return Ok(Some(Arc::new(nccl)));
                }
                Err(e) => attempts.push(Attempt {
                    candidate: candidate.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(None)
    }

    pub(super) fn query_version(&self) -> Result<i32> {
        let f = required!(self, ncclGetVersion);
        let mut v = 0;
        // SAFETY: v is a valid out-pointer.
        let r = unsafe { f(&mut v) };
        self.check(r, "ncclGetVersion", None)?;
        Ok(v)
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// NCCL_VERSION_CODE of the loaded library.
    pub fn version_code(&self) -> i32 {
        self.version
    }

    /// "2.32.3".
    pub fn version_string(&self) -> String {
        let (x, y, z) = version_from_code(self.version);
        format!("{x}.{y}.{z}")
    }

    /// Whether the library has an optional entry point.
    pub fn has(&self, what: Optional) -> bool {
        match what {
            Optional::AllToAll => self.lib.ncclAlltoAll.is_ok() || self.lib.ncclAllToAll.is_ok(),
            Optional::Gather => self.lib.ncclGather.is_ok(),
            Optional::Scatter => self.lib.ncclScatter.is_ok(),
            Optional::MemAlloc => self.lib.ncclMemAlloc.is_ok() && self.lib.ncclMemFree.is_ok(),
            Optional::CommSplit => self.lib.ncclCommSplit.is_ok(),
            Optional::AllToAllv => self.flavor == Flavor::Rccl && self.lib.ncclAllToAllv.is_ok(),
            Optional::Register => {
                self.lib.ncclCommRegister.is_ok() && self.lib.ncclCommDeregister.is_ok()
            }
            Optional::Window => {
                self.lib.ncclCommWindowRegister.is_ok() && self.lib.ncclCommWindowDeregister.is_ok()
            }
            Optional::InitRankConfig => self.lib.ncclCommInitRankConfig.is_ok(),
            Optional::PreMulSum => {
                self.lib.ncclRedOpCreatePreMulSum.is_ok() && self.lib.ncclRedOpDestroy.is_ok()
            }
            Optional::AlgoInfo => {
                self.flavor == Flavor::Rccl
                    && self.lib.rcclGetAlgoInfo.is_ok()
                    && self.lib.rcclGetAlgoName.is_ok()
                    && self.lib.rcclGetProtocolName.is_ok()
            }
        }
    }

    pub(super) fn missing(&self, name: &str, e: &libloading::Error) -> Error {
        Error::Library {
            library: self.flavor.name().into(),
            call: name.into(),
            detail: format!(
                "{} {} at {} has no {name} ({e}); collbench needs NCCL 2.7 or newer",
                self.flavor.name(),
                self.version_string(),
                self.path.display()
            ),
            rank: self.rank,
            host: self.host.clone(),
        }
    }

    /// The library's own description of a result code.
    pub fn error_string(&self, code: u32) -> String {
        match self.lib.ncclGetErrorString.as_ref() {
            // SAFETY: ncclGetErrorString accepts any code and returns a static string.
            Ok(f) => c_text(unsafe { f(sys::ncclResult_t(code)) }).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The library's last error message (ncclGetLastError, NCCL 2.13+), if it has one.
    pub fn last_error(&self, comm: Option<sys::ncclComm_t>) -> Option<String> {
        let f = self.lib.ncclGetLastError.as_ref().ok()?;
        // SAFETY: a NULL comm is allowed and means the last error of any communicator of this thread.
        c_text(unsafe { f(comm.unwrap_or(std::ptr::null_mut())) }).filter(|s| !s.is_empty())
    }

    pub(super) fn error(&self, code: u32, call: &str, comm: Option<sys::ncclComm_t>) -> Error {
        let mut detail = format!("{} (ncclResult_t {code})", self.error_string(code));
        if let Some(last) = self.last_error(comm) {
            detail.push_str(&format!(": {last}"));
        }
        Error::Library {
            library: self.flavor.name().into(),
            call: call.into(),
            detail,
            rank: self.rank,
            host: self.host.clone(),
        }
    }

    pub(super) fn check(
        &self,
        r: sys::ncclResult_t,
        call: &str,
        comm: Option<sys::ncclComm_t>,
    ) -> Result<()> {
        if r == sys::ncclResult_t::ncclSuccess {
            Ok(())
        } else {
            Err(self.error(r.0, call, comm))
        }
    }

    /// A new unique id (rank 0 makes it; every rank of the communicator must receive it).
    pub fn unique_id(&self) -> Result<Vec<u8>> {
        let f = required!(self, ncclGetUniqueId);
        let mut id = sys::ncclUniqueId {
            internal: [0; UNIQUE_ID_BYTES],
        };
        // The first call starts the device runtime (RCCL: HIP and ROCm SMI, which print their own
        // lines on a machine without an AMD GPU).
        // SAFETY: id is a valid out-pointer of the declared size.
        let (rc, printed) = quietly(&LOGGING_VARIABLES, || unsafe { f(&mut id) });
        self.check(rc, "ncclGetUniqueId", None)
            .map_err(|e| printed.added_to(e, self.flavor.name()))?;
        Ok(id.internal.iter().map(|&c| c as u8).collect())
    }

    /// Joins communicator `id` as `rank` of `nranks`, on the device current in this thread.
    pub fn init_rank(self: &Arc<Self>, nranks: usize, id: &[u8], rank: usize) -> Result<NcclComm> {
        self.init_rank_with(nranks, id, rank, None)
    }

    /// As `init_rank`, with communicator options (ncclCommInitRankConfig) when `config` is given.
    pub fn init_rank_with(
        self: &Arc<Self>,
        nranks: usize,
        id: &[u8],
        rank: usize,
        config: Option<&CommConfig>,
    ) -> Result<NcclComm> {
        if id.len() != UNIQUE_ID_BYTES {
            return Err(Error::Internal(format!(
                "unique id of {} bytes, expected {UNIQUE_ID_BYTES}",
                id.len()
            )));
        }
        let mut uid = sys::ncclUniqueId {
            internal: [0; UNIQUE_ID_BYTES],
        };
        for (d, s) in uid.internal.iter_mut().zip(id) {
            *d = *s as std::ffi::c_char;
        }
        let mut raw: sys::ncclComm_t = std::ptr::null_mut();
        match config {
            None => {
                let f = required!(self, ncclCommInitRank);
                // SAFETY: raw is a valid out-pointer; the id is passed by value as NCCL declares it.
                let r = unsafe { f(&mut raw, to_int(nranks)?, uid, to_int(rank)?) };
                self.check(r, "ncclCommInitRank", None)?;
            }
            Some(config) => {
                let f = required!(self, ncclCommInitRankConfig);
                let mut options = config.raw();
                // SAFETY: as above; `options` is a complete ncclConfig_t prefix whose `size` says how
                // many bytes NCCL may read, and it outlives the call (NCCL copies it).
                let r = unsafe {
                    f(
                        &mut raw,
                        to_int(nranks)?,
                        uid,
                        to_int(rank)?,
                        (&mut options as *mut sys::ncclConfigPrefix_v22800).cast(),
                    )
                };
                self.check(r, "ncclCommInitRankConfig", None)?;
            }
        }
        Ok(NcclComm {
            nccl: Arc::clone(self),
            raw,
            rank,
            size: nranks,
            broken: false,
        })
    }

    /// One communicator per listed device, in one process (ncclCommInitAll).
    pub fn init_all(self: &Arc<Self>, devices: &[usize]) -> Result<Vec<NcclComm>> {
        let f = required!(self, ncclCommInitAll);
        let list: Vec<std::ffi::c_int> =
            devices.iter().map(|&d| to_int(d)).collect::<Result<_>>()?;
        let mut raws: Vec<sys::ncclComm_t> = vec![std::ptr::null_mut(); devices.len()];
        // SAFETY: raws has room for one communicator per device in list.
        let r = unsafe { f(raws.as_mut_ptr(), to_int(devices.len())?, list.as_ptr()) };
        self.check(r, "ncclCommInitAll", None)?;
        let n = devices.len();
        Ok(raws
            .into_iter()
            .enumerate()
            .map(|(rank, raw)| NcclComm {
                nccl: Arc::clone(self),
                raw,
                rank,
                size: n,
                broken: false,
            })
            .collect())
    }

    pub fn group_start(&self) -> Result<()> {
        let f = required!(self, ncclGroupStart);
        // SAFETY: no arguments.
        self.check(unsafe { f() }, "ncclGroupStart", None)
    }

    pub fn group_end(&self) -> Result<()> {
        let f = required!(self, ncclGroupEnd);
        // SAFETY: no arguments.
        self.check(unsafe { f() }, "ncclGroupEnd", None)
    }

    /// Device memory from ncclMemAlloc (NCCL 2.19+), which suits NVLS and registration; None when the
    /// library has no ncclMemAlloc.
    pub fn mem_alloc(&self, bytes: u64) -> Result<Option<DeviceAddr>> {
        let Ok(f) = self.lib.ncclMemAlloc.as_ref() else {
            return Ok(None);
        };
        let mut ptr: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: ptr is a valid out-pointer.
        self.check(
            unsafe { f(&mut ptr, to_size(bytes)?) },
            &format!("ncclMemAlloc({bytes} bytes)"),
            None,
        )?;
        Ok(Some(DeviceAddr(ptr as usize as u64)))
    }

    pub fn mem_free(&self, addr: DeviceAddr) -> Result<()> {
        let f = required!(self, ncclMemFree);
        // SAFETY: addr came from ncclMemAlloc and is freed once (the backend owns it).
        self.check(unsafe { f(addr.as_ptr()) }, "ncclMemFree", None)
    }
}
