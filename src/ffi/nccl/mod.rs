//! The safe layer over a loaded NCCL or RCCL library: version, unique ids, communicators, collectives,
//! point-to-point, groups and memory, each call returning `Result` with NCCL's own words
//! (ncclGetErrorString and ncclGetLastError), the rank and the host.
//!
//! The files: `library` loads it and holds what the library itself answers (version, ids, groups,
//! memory); `comm` a communicator's life, registration and operators; `collectives` the collectives and
//! point-to-point calls. This file has the types and conversions they share.

use super::nccl_sys as sys;
use super::search::Family;
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};

/// A symbol the library must have; `Err` when an old or foreign library lacks it.
macro_rules! required {
    ($self:expr, $name:ident) => {
        match $self.lib.$name.as_ref() {
            Ok(f) => f,
            Err(e) => return Err($self.missing(stringify!($name), e)),
        }
    };
}

mod collectives;
mod comm;
mod library;
#[cfg(test)]
mod tests;

pub use comm::{AsyncState, NcclComm, Registration, Window};
pub use library::Nccl;

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
