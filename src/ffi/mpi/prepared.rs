//! A collective call checked once for a whole timed loop: every region it touches fits its buffer
//! at each rotation up to the loop's largest, so a launch only adds the rotation and calls MPI.

use super::calls::{execute, resolve, resolve_alltoallv, Resolved};
use super::{At, Buffers, Call, Datatype, PeerCounts, NOT_PREPARED, OUT_OF_BOUNDS};
use ::mpi::ffi;
use ::mpi::raw::AsRaw;
use ::mpi::topology::SimpleCommunicator;
use std::os::raw::c_int;

/// What a call touches, for `Ready`: an ordinary collective or an alltoallv.
pub enum Prepare<'a> {
    Call(&'a Call),
    Alltoallv {
        send: Option<At>,
        recv: At,
        counts: &'a PeerCounts,
        dt: Datatype,
    },
}

/// A call checked once for many launches (the timed loop): every region it touches lies inside its
/// buffer for each rotation up to `max_shift`, so a launch adds the rotation and calls MPI. It holds the
/// buffers' addresses and lengths as they were, and a launch on other buffers is refused.
pub struct Ready {
    resolved: Resolved,
    /// Compared, never called through: `launch` calls through the communicator it is lent.
    comm: ffi::MPI_Comm,
    buffers: [(usize, usize); 2],
    max_shift: usize,
}

fn buffer_identity(send: &[u8], recv: &[u8]) -> [(usize, usize); 2] {
    [
        (send.as_ptr() as usize, send.len()),
        (recv.as_ptr() as usize, recv.len()),
    ]
}

impl Ready {
    /// Checks `what` on this rank's buffers for every rotation up to `max_shift` (the buffers' own
    /// `shift` is ignored); `OUT_OF_BOUNDS` when a region would not fit.
    pub fn new(
        what: Prepare,
        bufs: &mut Buffers,
        comm: &SimpleCommunicator,
        rank: i32,
        size: i32,
        max_shift: usize,
    ) -> Result<Ready, c_int> {
        let mut resolve_at = |shift: usize| {
            bufs.shift = shift;
            match &what {
                Prepare::Call(call) => resolve(call, bufs, rank, size),
                Prepare::Alltoallv {
                    send,
                    recv,
                    counts,
                    dt,
                } => resolve_alltoallv(bufs, *send, *recv, counts, *dt, size),
            }
        };
        // Regions grow with the shift: fitting at the largest, they fit at every smaller one.
        resolve_at(max_shift).ok_or(OUT_OF_BOUNDS)?;
        let resolved = resolve_at(0).ok_or(OUT_OF_BOUNDS)?;
        Ok(Ready {
            resolved,
            comm: comm.as_raw(),
            buffers: buffer_identity(&bufs.send[..], &bufs.recv[..]),
            max_shift,
        })
    }

    /// Makes the call with every buffer operand `shift` bytes on; `NOT_PREPARED` on other buffers or
    /// communicator, or beyond the prepared rotation.
    pub fn launch(
        &self,
        comm: &SimpleCommunicator,
        send: &[u8],
        recv: &[u8],
        shift: usize,
    ) -> c_int {
        if shift > self.max_shift
            || comm.as_raw() != self.comm
            || buffer_identity(send, recv) != self.buffers
        {
            return NOT_PREPARED;
        }
        // SAFETY: resolved on these very buffers (the same addresses and lengths, borrowed by the caller
        // for the call, so alive and unmoved), checked at `max_shift` >= `shift`; the communicator is
        // the one it was prepared on, borrowed, so alive.
        unsafe { execute(&self.resolved, shift, comm.as_raw()) }
    }
}
