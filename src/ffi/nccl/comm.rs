//! A communicator's life (checks, asynchronous errors, split, abort, destruction), its questions
//! (device, rank, the tuner's choice), buffer registration and pre-multiplied-sum operators.

use super::*;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ffi::nccl_sys as sys;
use crate::ffi::{c_text, DeviceAddr};
use std::sync::Arc;

/// A communicator. Destroyed on drop, or aborted when it failed (a failed communicator may hang in
/// ncclCommDestroy).
pub struct NcclComm {
    pub(super) nccl: Arc<Nccl>,
    pub(super) raw: sys::ncclComm_t,
    pub(super) rank: usize,
    pub(super) size: usize,
    pub(super) broken: bool,
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

    pub(super) fn check(&mut self, r: sys::ncclResult_t, call: &str) -> Result<()> {
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
