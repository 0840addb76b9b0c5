//! What a loaded NCCL or RCCL allows, as functions of its version and symbols: the communicator's
//! config, -R's registration, the types and operators, the in-place forms left undefined, each
//! collective's path and the tuner's names.

use crate::backend::options::Registration;
use crate::backend::{Capabilities, InPlaceConvention, PathTaken};
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::ffi::nccl::{version_code, CommConfig, Flavor, Nccl, Optional, TunedFunc};

/// The communicator options passed at creation (ncclCommInitRankConfig): -x's CTA policy (NCCL 2.27+,
/// 2 = NCCL_CTA_POLICY_ZERO 2.28+), and on NCCL 2.28+ nvlinkCentricSched = 1, as nccl-tests sets it;
/// None where there is nothing to set (plain ncclCommInitRank). A CTA policy the library cannot take
/// is refused with what is missing.
pub fn comm_config(
    cta_policy: Option<i32>,
    flavor: Flavor,
    code: i32,
    has_config: bool,
) -> std::result::Result<Option<CommConfig>, String> {
    let (x, y, z) = crate::ffi::nccl::version_from_code(code);
    let lib = flavor.name();
    if let Some(policy) = cta_policy {
        let needs = if policy >= 2 { (2, 28) } else { (2, 27) };
        if code < version_code(needs.0, needs.1, 0) || !has_config {
            return Err(format!(
                "-x {policy}: the CTA policy is an option of ncclCommInitRankConfig from NCCL {}.{} ({}), and {lib} {x}.{y}.{z} is older: leave -x out or load a newer library (--nccl-lib)",
                needs.0,
                needs.1,
                if policy >= 2 {
                    "NCCL_CTA_POLICY_ZERO"
                } else {
                    "ncclConfig_t.CTAPolicy"
                }
            ));
        }
    }
    let nvlink_centric_sched =
        (flavor == Flavor::Nccl && code >= version_code(2, 28, 0) && has_config).then_some(1);
    if cta_policy.is_none() && nvlink_centric_sched.is_none() {
        return Ok(None);
    }
    Ok(Some(CommConfig {
        cta_policy,
        nvlink_centric_sched,
    }))
}

/// How -R's registration is done with this library: -R 1 needs ncclCommRegister (NCCL 2.19+); -R 2 a
/// symmetric window (ncclCommWindowRegister, NCCL 2.27+), else, as nccl-tests does, -R 1 with a note
/// saying so. What cannot be done at all is refused with what is missing.
pub fn registration_for(
    asked: Registration,
    flavor: Flavor,
    code: i32,
    has_register: bool,
    has_window: bool,
) -> std::result::Result<(Registration, Option<String>), String> {
    let (x, y, z) = crate::ffi::nccl::version_from_code(code);
    let lib = flavor.name();
    let local = || {
        if has_register {
            Ok(Registration::Local)
        } else {
            Err(format!(
                "-R: {lib} {x}.{y}.{z} has no ncclCommRegister (NCCL 2.19 and later have it): leave -R out or load a newer library (--nccl-lib)"
            ))
        }
    };
    match asked {
        Registration::None => Ok((Registration::None, None)),
        Registration::Local => local().map(|r| (r, None)),
        Registration::Symmetric if has_window && code >= version_code(2, 27, 0) => {
            Ok((Registration::Symmetric, None))
        }
        Registration::Symmetric => local().map(|r| {
            (
                r,
                Some(format!(
                    "-R 2: symmetric windows (ncclCommWindowRegister) need NCCL 2.27, and {lib} {x}.{y}.{z} has none: the buffers are registered with ncclCommRegister instead (-R 1), as nccl-tests does"
                )),
            )
        }),
    }
}

/// Why a library version or device cannot run a data type or operator, if it cannot.
pub fn version_limits(
    flavor: Flavor,
    code: i32,
    fp8_device: Option<bool>,
    dtype: DataType,
    op: Option<ReduceOp>,
) -> Option<String> {
    let (x, y, z) = crate::ffi::nccl::version_from_code(code);
    let lib = flavor.name();
    if matches!(dtype, DataType::Bfloat16) && code < version_code(2, 10, 0) {
        return Some(format!("{lib} {x}.{y}.{z} has no bfloat16 (added in 2.10)"));
    }
    if op == Some(ReduceOp::MulSum) && code < version_code(2, 11, 0) {
        return Some(format!(
            "{lib} {x}.{y}.{z} has no pre-multiplied sum for -o mulsum (added in 2.11)"
        ));
    }
    if op == Some(ReduceOp::Avg) && code < version_code(2, 10, 0) {
        return Some(format!(
            "{lib} {x}.{y}.{z} has no avg reduction (added in 2.10)"
        ));
    }
    if matches!(dtype, DataType::F8e4m3 | DataType::F8e5m2) {
        if flavor == Flavor::Nccl && code < version_code(2, 24, 0) {
            return Some(format!(
                "{lib} {x}.{y}.{z} has no FP8 types (added in 2.24)"
            ));
        }
        if fp8_device == Some(false) {
            return Some(format!("{dtype} needs a GPU with FP8 support (NVIDIA Hopper, compute capability 9.0, or newer)"));
        }
    }
    None
}

/// Where NCCL and RCCL leave an in-place form undefined. Their documentation defines in place for
/// all_reduce, broadcast and reduce (send == recv), all_gather and reduce_scatter (the rank's block of the
/// full buffer) and, for gather and scatter, the root's block; all-to-all and point-to-point have no
/// in-place form, so overlapping buffers give whatever the transfers' order leaves (docs/GPU.md).
pub fn in_place_undefined(flavor: Flavor, collective: Collective) -> Option<String> {
    let what = match collective {
        Collective::AllToAll | Collective::AllToAllv => "all-to-all",
        Collective::SendRecv => "send/receive",
        _ => return None,
    };
    Some(format!(
        "{} defines no in-place {what} (overlapping send and receive buffers): in-place {collective} is timed but not checked, as nccl-tests does (#wrong N/A)",
        flavor.name()
    ))
}

/// What the loaded library defines: NCCL's in-place conventions, the forms it leaves undefined, and the
/// collectives its optional symbols carry natively.
pub(super) fn capabilities_of(nccl: &Nccl) -> Capabilities {
    let every = Collective::ALL
        .iter()
        .copied()
        .chain([Collective::AllToAllv]);
    Capabilities {
        in_place: InPlaceConvention::Nccl,
        undefined_in_place: every
            .clone()
            .filter_map(|c| in_place_undefined(nccl.flavor(), c).map(|why| (c, why)))
            .collect(),
        in_place_v_needs_symmetry: false,
        paths: every
            .map(|c| (c, path_for(c, |o| nccl.has(o))))
            .filter(|(_, p)| *p != "native")
            .collect(),
    }
}

/// How the loaded library carries a collective.
pub fn path_for(collective: Collective, has: impl Fn(Optional) -> bool) -> PathTaken {
    let native = match collective {
        Collective::AllToAll => has(Optional::AllToAll),
        Collective::Gather => has(Optional::Gather),
        Collective::Scatter => has(Optional::Scatter),
        Collective::AllToAllv => has(Optional::AllToAllv),
        Collective::SendRecv | Collective::Hypercube => false,
        _ => true,
    };
    if native {
        "native"
    } else {
        "grouped send/recv"
    }
}

/// The function RCCL's tuner knows a collective by; None for those it does not tune (all-to-all,
/// gather, scatter, sendrecv run as point-to-point or RCCL's own kernels).
pub fn tuned_func(collective: Collective) -> Option<TunedFunc> {
    match collective {
        Collective::AllReduce => Some(TunedFunc::AllReduce),
        Collective::AllGather => Some(TunedFunc::AllGather),
        Collective::ReduceScatter => Some(TunedFunc::ReduceScatter),
        Collective::Broadcast => Some(TunedFunc::Broadcast),
        Collective::Reduce => Some(TunedFunc::Reduce),
        _ => None,
    }
}
