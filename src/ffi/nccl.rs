//! The safe layer over a loaded NCCL or RCCL library: version, unique ids, communicators, collectives,
//! point-to-point, groups and memory, each call returning `Result` with NCCL's own words
//! (ncclGetErrorString and ncclGetLastError), the rank and the host.

use super::nccl_sys as sys;
use super::quiet::quietly;
use super::search::{self, Attempt, Candidate, Family};
use super::{c_text, DeviceAddr, StreamHandle};
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of an ncclUniqueId.
pub const UNIQUE_ID_BYTES: usize = sys::NCCL_UNIQUE_ID_BYTES as usize;

/// NCCL's and RCCL's logging switch: when set, their lines are the user's to see.
const LOGGING_VARIABLES: [&str; 1] = ["NCCL_DEBUG"];

/// Which library of the NCCL API family is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Nccl,
    Rccl,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Nccl => "NCCL",
            Flavor::Rccl => "RCCL",
        }
    }

    fn family(self) -> Family {
        match self {
            Flavor::Nccl => Family::Nccl,
            Flavor::Rccl => Family::Rccl,
        }
    }
}

/// Decodes NCCL_VERSION_CODE: X*1000+Y*100+Z up to 2.8, X*10000+Y*100+Z after.
pub fn version_from_code(code: i32) -> (i32, i32, i32) {
    if code >= 10000 {
        (code / 10000, (code % 10000) / 100, code % 100)
    } else {
        (code / 1000, (code % 1000) / 100, code % 100)
    }
}

/// The code of version x.y.z, for comparisons (NCCL_VERSION).
pub const fn version_code(x: i32, y: i32, z: i32) -> i32 {
    if x <= 2 && y <= 8 {
        x * 1000 + y * 100 + z
    } else {
        x * 10000 + y * 100 + z
    }
}

/// Collectives that older libraries lack and nccl-tests then runs as grouped send/recv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optional {
    AllToAll,
    Gather,
    Scatter,
    MemAlloc,
    /// ncclCommSplit (NCCL 2.18 and later).
    CommSplit,
    /// RCCL 7's tuning queries (rcclGetAlgoInfo, rcclGetAlgoName, rcclGetProtocolName), for -A.
    AlgoInfo,
    /// RCCL's ncclAllToAllv. Only RCCL's counts: an NCCL build that exports the name (a fork) is left on
    /// grouped send/recv, so NCCL's numbers stay those of nccl-tests' alltoallv_perf.
    AllToAllv,
    /// ncclCommRegister and ncclCommDeregister (NCCL 2.19 and later): -R 1.
    Register,
    /// ncclCommWindowRegister and ncclCommWindowDeregister (NCCL 2.27 and later): -R 2.
    Window,
    /// ncclCommInitRankConfig (NCCL 2.14 and later): communicator options such as the CTA policy.
    InitRankConfig,
    /// ncclRedOpCreatePreMulSum and ncclRedOpDestroy (NCCL 2.11 and later): -o mulsum.
    PreMulSum,
}

/// Communicator options collbench sets (ncclConfig_t); None leaves a field to the library.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommConfig {
    /// NCCL_CTA_POLICY_DEFAULT (0), _EFFICIENCY (1) or _ZERO (2): -x (NCCL 2.27; 2 needs 2.28).
    pub cta_policy: Option<i32>,
    /// 1 on NCCL 2.28 and later, as nccl-tests sets it.
    pub nvlink_centric_sched: Option<i32>,
}

impl CommConfig {
    /// The struct ncclCommInitRankConfig reads: NCCL_CONFIG_INITIALIZER's values (every option left to
    /// the library) with ours set, in the 2.28 layout that `version` names.
    fn raw(&self) -> sys::ncclConfigPrefix_v22800 {
        // NCCL_CONFIG_UNDEF_INT is INT_MIN, which bindgen does not evaluate.
        let undef = std::ffi::c_int::MIN;
        sys::ncclConfigPrefix_v22800 {
            size: std::mem::size_of::<sys::ncclConfigPrefix_v22800>(),
            magic: sys::NCCL_API_MAGIC,
            version: version_code(2, 28, 0) as u32,
            blocking: undef,
            cgaClusterSize: undef,
            minCTAs: undef,
            maxCTAs: undef,
            netName: std::ptr::null(),
            splitShare: undef,
            trafficClass: undef,
            commName: std::ptr::null(),
            collnetEnable: undef,
            CTAPolicy: self.cta_policy.unwrap_or(undef),
            shrinkShare: undef,
            nvlsCTAs: undef,
            nChannelsPerNetPeer: undef,
            nvlinkCentricSched: self.nvlink_centric_sched.unwrap_or(undef),
        }
    }
}

/// NCCL_WIN_COLL_SYMMETRIC: a window registered for symmetric collectives (-R 2).
pub const WINDOW_COLL_SYMMETRIC: i32 = sys::NCCL_WIN_COLL_SYMMETRIC as i32;

/// A reduction operator as the library takes it: a built-in one, or one made by
/// `NcclComm::pre_mul_sum` (destroyed with `NcclComm::destroy_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedOp(sys::ncclRedOp_t);

impl RedOp {
    /// The library's built-in operator for `op`; None for one the library makes on request (mulsum).
    pub fn builtin(op: ReduceOp) -> Option<RedOp> {
        nccl_op(op).map(RedOp)
    }
}

/// A loaded NCCL or RCCL library.
pub struct Nccl {
    lib: sys::NcclLib,
    flavor: Flavor,
    path: PathBuf,
    version: i32,
    rank: usize,
    host: String,
}

/// A symbol the library must have; `Err` when an old or foreign library lacks it.
macro_rules! required {
    ($self:expr, $name:ident) => {
        match $self.lib.$name.as_ref() {
            Ok(f) => f,
            Err(e) => return Err($self.missing(stringify!($name), e)),
        }
    };
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

    fn open_loud(
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

    fn try_open(
        flavor: Flavor,
        candidates: &[Candidate],
        rank: usize,
        host: &str,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Option<Arc<Nccl>>> {
        for candidate in candidates {
            // SAFETY: the symbols are typed by our declarations, which tests/abi.rs checks against the
            // real nccl.h.
            let opened = super::open_resident(&candidate.target)
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

    fn query_version(&self) -> Result<i32> {
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

    fn missing(&self, name: &str, e: &libloading::Error) -> Error {
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

    fn error(&self, code: u32, call: &str, comm: Option<sys::ncclComm_t>) -> Error {
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

    fn check(&self, r: sys::ncclResult_t, call: &str, comm: Option<sys::ncclComm_t>) -> Result<()> {
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

fn to_int(v: usize) -> Result<std::ffi::c_int> {
    std::ffi::c_int::try_from(v).map_err(|_| Error::Internal(format!("{v} does not fit a C int")))
}

fn to_size(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::Internal(format!("{v} does not fit size_t")))
}

/// One rank's side of an all-to-all with per-peer counts, in elements: what it sends to each peer and
/// where that piece starts in its send buffer, what it receives from each and where that lands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCounts {
    pub send_counts: Vec<usize>,
    pub send_displs: Vec<usize>,
    pub recv_counts: Vec<usize>,
    pub recv_displs: Vec<usize>,
}

impl PeerCounts {
    /// The library reads one entry per rank of the communicator from each list: a shorter list would
    /// be read past its end.
    fn fits(&self, ranks: usize) -> Result<()> {
        let lists = [
            ("send counts", &self.send_counts),
            ("send displacements", &self.send_displs),
            ("receive counts", &self.recv_counts),
            ("receive displacements", &self.recv_displs),
        ];
        match lists.iter().find(|(_, l)| l.len() != ranks) {
            Some((what, l)) => Err(Error::Internal(format!(
                "all_to_allv has {} {what} for a communicator of {ranks} ranks",
                l.len()
            ))),
            None => Ok(()),
        }
    }
}

/// NCCL's data type for ours.
pub fn nccl_type(d: DataType) -> sys::ncclDataType_t {
    use sys::ncclDataType_t as T;
    match d {
        DataType::Int8 => T::ncclInt8,
        DataType::Uint8 => T::ncclUint8,
        DataType::Int32 => T::ncclInt32,
        DataType::Uint32 => T::ncclUint32,
        DataType::Int64 => T::ncclInt64,
        DataType::Uint64 => T::ncclUint64,
        DataType::Half => T::ncclFloat16,
        DataType::Float => T::ncclFloat32,
        DataType::Double => T::ncclFloat64,
        DataType::Bfloat16 => T::ncclBfloat16,
        DataType::F8e4m3 => T::ncclFloat8e4m3,
        DataType::F8e5m2 => T::ncclFloat8e5m2,
    }
}

/// NCCL's built-in operator for ours; None for mulsum, which the library makes per communicator.
pub fn nccl_op(op: ReduceOp) -> Option<sys::ncclRedOp_t> {
    use sys::ncclRedOp_t as O;
    Some(match op {
        ReduceOp::Sum => O::ncclSum,
        ReduceOp::Prod => O::ncclProd,
        ReduceOp::Max => O::ncclMax,
        ReduceOp::Min => O::ncclMin,
        ReduceOp::Avg => O::ncclAvg,
        ReduceOp::MulSum => return None,
    })
}

/// The collectives RCCL's tuner answers for (its ncclFunc_t), the others have no tuned choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunedFunc {
    Broadcast,
    Reduce,
    AllGather,
    ReduceScatter,
    AllReduce,
}

impl TunedFunc {
    fn code(self) -> std::ffi::c_int {
        (match self {
            TunedFunc::Broadcast => sys::COLLBENCH_RCCL_FUNC_BROADCAST,
            TunedFunc::Reduce => sys::COLLBENCH_RCCL_FUNC_REDUCE,
            TunedFunc::AllGather => sys::COLLBENCH_RCCL_FUNC_ALL_GATHER,
            TunedFunc::ReduceScatter => sys::COLLBENCH_RCCL_FUNC_REDUCE_SCATTER,
            TunedFunc::AllReduce => sys::COLLBENCH_RCCL_FUNC_ALL_REDUCE,
        }) as std::ffi::c_int
    }
}

/// What RCCL's tuner picks for one collective (rccl-tests' -A columns).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlgoChoice {
    pub algorithm: String,
    pub protocol: String,
    pub channels: u32,
}

/// A communicator. Destroyed on drop, or aborted when it failed (a failed communicator may hang in
/// ncclCommDestroy).
pub struct NcclComm {
    nccl: Arc<Nccl>,
    raw: sys::ncclComm_t,
    rank: usize,
    size: usize,
    broken: bool,
}

/// The state an asynchronous communicator reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncState {
    Ok,
    InProgress,
}

impl NcclComm {
    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn library(&self) -> &Arc<Nccl> {
        &self.nccl
    }

    fn check(&mut self, r: sys::ncclResult_t, call: &str) -> Result<()> {
        if r == sys::ncclResult_t::ncclSuccess {
            return Ok(());
        }
        self.broken = true;
        Err(self.nccl.error(r.0, call, Some(self.raw)))
    }

    /// Checks the communicator for an error raised by work in flight (nccl-tests polls this while it
    /// waits on the stream).
    pub fn async_error(&mut self) -> Result<AsyncState> {
        let nccl = Arc::clone(&self.nccl);
        let f = required!(nccl, ncclCommGetAsyncError);
        let mut state = sys::ncclResult_t::ncclSuccess;
        // SAFETY: raw is a live communicator; state is a valid out-pointer.
        let r = unsafe { f(self.raw, &mut state) };
        self.check(r, "ncclCommGetAsyncError")?;
        match state {
            sys::ncclResult_t::ncclSuccess => Ok(AsyncState::Ok),
            sys::ncclResult_t::ncclInProgress => Ok(AsyncState::InProgress),
            other => {
                self.broken = true;
                Err(self.nccl.error(
                    other.0,
                    "asynchronous error (ncclCommGetAsyncError)",
                    Some(self.raw),
                ))
            }
        }
    }

    /// The communicator of this rank's group, split from this one (ncclCommSplit, NCCL 2.18+): every rank
    /// of this communicator calls it together; ranks of equal `color` form a group, ordered by `key`.
    /// The new communicator inherits this one's configuration.
    pub fn split(&mut self, color: usize, key: usize, group_size: usize) -> Result<NcclComm> {
        let nccl = Arc::clone(&self.nccl);
        let f = required!(nccl, ncclCommSplit);
        let mut raw: sys::ncclComm_t = std::ptr::null_mut();
        // SAFETY: self.raw is a live communicator; raw is a valid out-pointer; a null config asks for
        // the parent's.
        let r = unsafe {
            f(
                self.raw,
                to_int(color)?,
                to_int(key)?,
                &mut raw,
                std::ptr::null_mut(),
            )
        };
        self.check(r, "ncclCommSplit")?;
        Ok(NcclComm {
            nccl,
            raw,
            rank: key,
            size: group_size,
            broken: false,
        })
    }

    /// The algorithm, protocol and channels RCCL picks for `func` of `count` elements of `d` on this
    /// communicator (rcclGetAlgoInfo with no CollNet and no NVLS, one operation in the group, as
    /// rccl-tests asks); None where the library has no such query.
    pub fn algo_choice(
        &mut self,
        func: TunedFunc,
        count: u64,
        d: DataType,
    ) -> Result<Option<AlgoChoice>> {
        let nccl = Arc::clone(&self.nccl);
        if !nccl.has(Optional::AlgoInfo) {
            return Ok(None);
        }
        let f = required!(nccl, rcclGetAlgoInfo);
        let (mut algo, mut proto, mut channels) = (0, 0, 0);
        // SAFETY: raw is a live communicator; the three are valid out-pointers.
        let r = unsafe {
            f(
                self.raw,
                func.code(),
                count,
                nccl_type(d),
                0,
                0,
                1,
                &mut algo,
                &mut proto,
                &mut channels,
            )
        };
        self.check(r, "rcclGetAlgoInfo")?;
        let name = |what: &str,
                    code: std::ffi::c_int,
                    r: sys::ncclResult_t,
                    text: *const std::ffi::c_char| {
            if r == sys::ncclResult_t::ncclSuccess {
                c_text(text).unwrap_or_else(|| format!("{what} {code}"))
            } else {
                format!("{what} {code}")
            }
        };
        let (mut algo_text, mut proto_text) = (std::ptr::null(), std::ptr::null());
        let (fa, fp) = (
            required!(nccl, rcclGetAlgoName),
            required!(nccl, rcclGetProtocolName),
        );
        // SAFETY: the library writes pointers to its static names.
        let (ra, rp) = unsafe { (fa(algo, &mut algo_text), fp(proto, &mut proto_text)) };
        Ok(Some(AlgoChoice {
            algorithm: name("algorithm", algo, ra, algo_text),
            protocol: name("protocol", proto, rp, proto_text),
            channels: channels.max(0) as u32,
        }))
    }

    /// Aborts the communicator now (after a timeout or an asynchronous error); it is not destroyed later.
    pub fn abort(&mut self) -> Result<()> {
        if self.raw.is_null() {
            return Ok(());
        }
        let nccl = Arc::clone(&self.nccl);
        let f = required!(nccl, ncclCommAbort);
        // SAFETY: raw is a live communicator, released exactly once (nulled below).
        let r = unsafe { f(self.raw) };
        self.raw = std::ptr::null_mut();
        nccl.check(r, "ncclCommAbort", None)
    }

    /// The device this communicator runs on (ncclCommCuDevice).
    pub fn device(&mut self) -> Result<usize> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclCommCuDevice);
        let mut d = 0;
        // SAFETY: raw is a live communicator; d is a valid out-pointer.
        let r = unsafe { f(self.raw, &mut d) };
        self.check(r, "ncclCommCuDevice")?;
        Ok(d.max(0) as usize)
    }

    /// Rank and size as the library sees them (ncclCommUserRank, ncclCommCount).
    pub fn rank_and_count(&mut self) -> Result<(usize, usize)> {
        let nccl = Arc::clone(&self.nccl);
        let (fr, fc) = (
            required!(nccl, ncclCommUserRank),
            required!(nccl, ncclCommCount),
        );
        let (mut r, mut c) = (0, 0);
        // SAFETY: raw is a live communicator; r and c are valid out-pointers.
        let res = unsafe { fr(self.raw, &mut r) };
        self.check(res, "ncclCommUserRank")?;
        // SAFETY: as above.
        let res = unsafe { fc(self.raw, &mut c) };
        self.check(res, "ncclCommCount")?;
        Ok((r.max(0) as usize, c.max(0) as usize))
    }

    /// Registers a buffer with the communicator (ncclCommRegister), for -R.
    pub fn register(&mut self, addr: DeviceAddr, bytes: u64) -> Result<Registration> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclCommRegister);
        let mut handle: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: addr..addr+bytes is device memory owned by the caller; handle is a valid out-pointer.
        let r = unsafe { f(self.raw, addr.as_ptr(), to_size(bytes)?, &mut handle) };
        self.check(r, "ncclCommRegister")?;
        Ok(Registration(handle))
    }

    pub fn deregister(&mut self, registration: Registration) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclCommDeregister);
        // SAFETY: the handle came from ncclCommRegister on this communicator and is consumed here.
        let r = unsafe { f(self.raw, registration.0) };
        self.check(r, "ncclCommDeregister")
    }

    /// Registers a buffer as a window of the communicator (ncclCommWindowRegister, NCCL 2.27+), for -R 2
    /// with `WINDOW_COLL_SYMMETRIC`. Every rank of the communicator calls it together.
    pub fn window_register(&mut self, addr: DeviceAddr, bytes: u64, flags: i32) -> Result<Window> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclCommWindowRegister);
        let mut window: sys::ncclWindow_t = std::ptr::null_mut();
        // SAFETY: addr..addr+bytes is device memory owned by the caller (from ncclMemAlloc, as windows
        // require); window is a valid out-pointer.
        let r = unsafe { f(self.raw, addr.as_ptr(), to_size(bytes)?, &mut window, flags) };
        self.check(r, "ncclCommWindowRegister")?;
        Ok(Window(window))
    }

    pub fn window_deregister(&mut self, window: Window) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclCommWindowDeregister);
        // SAFETY: the window came from ncclCommWindowRegister on this communicator and is consumed here.
        let r = unsafe { f(self.raw, window.0) };
        self.check(r, "ncclCommWindowDeregister")
    }

    /// A pre-multiplied sum (ncclRedOpCreatePreMulSum, NCCL 2.11+): each rank's input times `scalar`
    /// (one element of `d`, its bytes), summed. Valid on this communicator until `destroy_op`.
    pub fn pre_mul_sum(&mut self, scalar: &[u8], d: DataType) -> Result<RedOp> {
        if scalar.len() != d.size() {
            return Err(Error::Internal(format!(
                "a {d} scalar of {} bytes",
                scalar.len()
            )));
        }
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclRedOpCreatePreMulSum);
        let mut op = sys::ncclRedOp_t(0);
        let mut value = [0u8; 8];
        value[..scalar.len()].copy_from_slice(scalar);
        // SAFETY: op is a valid out-pointer; the scalar is read from host memory at once
        // (ncclScalarHostImmediate), from a buffer at least one element long.
        let r = unsafe {
            f(
                &mut op,
                value.as_mut_ptr().cast(),
                nccl_type(d),
                sys::ncclScalarResidence_t::ncclScalarHostImmediate,
                self.raw,
            )
        };
        self.check(r, "ncclRedOpCreatePreMulSum")?;
        Ok(RedOp(op))
    }

    pub fn destroy_op(&mut self, op: RedOp) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclRedOpDestroy);
        // SAFETY: op was made on this communicator by ncclRedOpCreatePreMulSum and is destroyed once.
        let r = unsafe { f(op.0, self.raw) };
        self.check(r, "ncclRedOpDestroy")
    }

    pub fn all_reduce(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        op: RedOp,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclAllReduce);
        // SAFETY (all collectives below): the buffers are device allocations sized by the backend for
        // this shape; raw is a live communicator; the stream belongs to the communicator's device.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                op.0,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclAllReduce")
    }

    pub fn all_gather(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclAllGather);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclAllGather")
    }

    pub fn reduce_scatter(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        op: RedOp,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclReduceScatter);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                op.0,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclReduceScatter")
    }

    pub fn broadcast(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclBroadcast);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclBroadcast")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn reduce(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        op: RedOp,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclReduce);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                op.0,
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclReduce")
    }

    /// Native all-to-all (ncclAlltoAll in NCCL 2.28+, ncclAllToAll in RCCL); `count` elements per peer.
    pub fn all_to_all(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        s: StreamHandle,
    ) -> Result<()> {
        let nccl = Arc::clone(&self.nccl);
        let (f, name) = match (
            nccl.lib.ncclAlltoAll.as_ref(),
            nccl.lib.ncclAllToAll.as_ref(),
        ) {
            (Ok(f), _) => (f, "ncclAlltoAll"),
            (_, Ok(f)) => (f, "ncclAllToAll"),
            (Err(e), _) => return Err(nccl.missing("ncclAlltoAll", e)),
        };
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, name)
    }

    pub fn gather(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclGather);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclGather")
    }

    pub fn scatter(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        count: u64,
        d: DataType,
        root: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclScatter);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                send.as_ptr(),
                recv.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(root)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclScatter")
    }

    /// RCCL's ncclAllToAllv: each rank's pieces for and from every peer, as `counts` places them.
    pub fn all_to_allv(
        &mut self,
        send: DeviceAddr,
        recv: DeviceAddr,
        counts: &PeerCounts,
        d: DataType,
        s: StreamHandle,
    ) -> Result<()> {
        counts.fits(self.size)?;
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclAllToAllv);
        // SAFETY: see all_reduce; each list holds one entry per rank of this communicator (checked above),
        // as many as the library reads.
        let r = unsafe {
            f(
                send.as_ptr(),
                counts.send_counts.as_ptr(),
                counts.send_displs.as_ptr(),
                recv.as_ptr(),
                counts.recv_counts.as_ptr(),
                counts.recv_displs.as_ptr(),
                nccl_type(d),
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclAllToAllv")
    }

    pub fn send(
        &mut self,
        buf: DeviceAddr,
        count: u64,
        d: DataType,
        peer: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclSend);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                buf.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(peer)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclSend")
    }

    pub fn recv(
        &mut self,
        buf: DeviceAddr,
        count: u64,
        d: DataType,
        peer: usize,
        s: StreamHandle,
    ) -> Result<()> {
        // The function is copied out: no reference to the library is held across the call.
        let f = *required!(self.nccl, ncclRecv);
        // SAFETY: see all_reduce.
        let r = unsafe {
            f(
                buf.as_ptr(),
                to_size(count)?,
                nccl_type(d),
                to_int(peer)?,
                self.raw,
                s.0.cast(),
            )
        };
        self.check(r, "ncclRecv")
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        if self.raw.is_null() {
            return;
        }
        // A communicator that reported an error is aborted: destroying it could wait forever on peers.
        let f = if self.broken {
            self.nccl.lib.ncclCommAbort.as_ref()
        } else {
            self.nccl.lib.ncclCommDestroy.as_ref()
        };
        if let Ok(f) = f {
            // SAFETY: raw is a live communicator released exactly once, here. Errors at teardown have
            // no one left to report to.
            let _ = unsafe { f(self.raw) };
        }
    }
}

/// A buffer registration handle (ncclCommRegister).
pub struct Registration(*mut std::ffi::c_void);

/// A symmetric-memory window (ncclCommWindowRegister).
pub struct Window(sys::ncclWindow_t);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_codes_decode_both_schemes() {
        assert_eq!(version_from_code(23203), (2, 32, 3));
        assert_eq!(version_from_code(2804), (2, 8, 4));
        assert_eq!(version_from_code(21903), (2, 19, 3));
        assert_eq!(version_code(2, 24, 0), 22400);
        assert_eq!(version_code(2, 8, 4), 2804);
        assert!(version_code(2, 10, 0) > version_code(2, 8, 4));
    }

    #[test]
    fn the_config_says_its_layout_and_leaves_the_rest_to_the_library() {
        let raw = CommConfig {
            cta_policy: Some(1),
            nvlink_centric_sched: None,
        }
        .raw();
        assert_eq!(
            raw.size,
            std::mem::size_of::<sys::ncclConfigPrefix_v22800>()
        );
        assert_eq!(raw.magic, 0xcafebeef);
        assert_eq!(raw.version, 22800);
        assert_eq!(raw.CTAPolicy, 1);
        assert_eq!(raw.nvlinkCentricSched, i32::MIN);
        assert_eq!(raw.blocking, i32::MIN);
        assert!(raw.netName.is_null());
    }

    #[test]
    fn data_type_codes_match_nccl() {
        let codes: Vec<u32> = DataType::ALL.iter().map(|&d| nccl_type(d).0).collect();
        // DataType::ALL is in nccl-tests order, which is NCCL's numbering.
        assert_eq!(codes, (0..12).collect::<Vec<u32>>());
        let ops: Vec<Option<u32>> = ReduceOp::ALL
            .iter()
            .map(|&o| nccl_op(o).map(|o| o.0))
            .collect();
        assert_eq!(ops, [Some(0), Some(1), Some(2), Some(3), Some(4), None]);
    }

    #[test]
    fn all_to_allv_lists_must_cover_every_rank_the_library_reads() {
        let counts = PeerCounts {
            send_counts: vec![1, 2, 3],
            send_displs: vec![0, 1, 3],
            recv_counts: vec![4, 5, 6],
            recv_displs: vec![0, 4, 9],
        };
        assert!(counts.fits(3).is_ok());
        let short = counts.fits(4).unwrap_err().to_string();
        assert!(
            short.contains("3 send counts for a communicator of 4 ranks"),
            "{short}"
        );
        let torn = PeerCounts {
            recv_displs: vec![0, 4],
            ..counts
        };
        let err = torn.fits(3).unwrap_err().to_string();
        assert!(err.contains("2 receive displacements"), "{err}");
    }
}
