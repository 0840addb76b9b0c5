//! The collective calls of the MPI layer: a call described by its regions in a rank's two buffers,
//! checked against them for the bytes MPI will touch before it is made, once per call (`run`,
//! `alltoallv`) or once for a whole timed loop with its rotation (`Ready`).

use super::{type_size, Datatype, Op};
use ::mpi::ffi;
use ::mpi::raw::AsRaw;
use ::mpi::topology::SimpleCommunicator;
use std::ffi::c_void;
use std::os::raw::c_int;

/// Which of a rank's two buffers a region lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    Send,
    Recv,
}

/// Where a call reads or writes: a buffer and a byte offset into it. `None` as a send operand
/// stands for MPI_IN_PLACE.
pub type At = (Buf, usize);

/// One collective call. Counts are per rank, as MPI takes them.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    Allreduce {
        send: Option<At>,
        recv: At,
        count: i32,
        dt: Datatype,
        op: Op,
    },
    Allgather {
        send: Option<At>,
        recv: At,
        count: i32,
        dt: Datatype,
    },
    ReduceScatterBlock {
        send: Option<At>,
        recv: At,
        count: i32,
        dt: Datatype,
        op: Op,
    },
    Bcast {
        buf: At,
        count: i32,
        dt: Datatype,
        root: i32,
    },
    Reduce {
        send: Option<At>,
        recv: At,
        count: i32,
        dt: Datatype,
        op: Op,
        root: i32,
    },
    Alltoall {
        send: Option<At>,
        recv: At,
        count: i32,
        dt: Datatype,
    },
    Sendrecv {
        send: At,
        recv: At,
        count: i32,
        dt: Datatype,
        to: i32,
        from: i32,
    },
    SendrecvReplace {
        buf: At,
        count: i32,
        dt: Datatype,
        to: i32,
        from: i32,
    },
    Gather {
        send: Option<At>,
        recv: At,
        count: i32,
        dt: Datatype,
        root: i32,
    },
    Scatter {
        send: At,
        recv: Option<At>,
        count: i32,
        dt: Datatype,
        root: i32,
    },
}

/// The two buffers of a rank and what it needs to turn regions into pointers.
pub struct Buffers<'a> {
    pub send: &'a mut [u8],
    pub recv: &'a mut [u8],
    pub in_place: *const c_void,
    /// Added to every offset: the rotation of buffer offsets between iterations.
    pub shift: usize,
}

impl Buffers<'_> {
    /// A pointer to `bytes` bytes at `at`, or None when they do not fit (the call is then refused).
    fn ptr(&mut self, at: At, bytes: usize) -> Option<*mut c_void> {
        let (buf, offset) = at;
        let offset = offset.checked_add(self.shift)?;
        let slice = match buf {
            Buf::Send => &mut *self.send,
            Buf::Recv => &mut *self.recv,
        };
        let end = offset.checked_add(bytes)?;
        (end <= slice.len()).then(|| slice[offset..].as_mut_ptr() as *mut c_void)
    }
}

/// An alltoallv's per-peer counts and displacements on this rank, in units of its datatype.
#[derive(Debug, Clone)]
pub struct PeerCounts {
    pub send_counts: Vec<c_int>,
    pub send_displs: Vec<c_int>,
    pub recv_counts: Vec<c_int>,
    pub recv_displs: Vec<c_int>,
}

/// Error code returned when a region does not fit its buffer: the call is refused, never made.
pub const OUT_OF_BOUNDS: c_int = -1;

/// Error code returned when a prepared call is launched on buffers other than those it was prepared
/// for, or beyond the rotation it was checked for.
pub const NOT_PREPARED: c_int = -2;

/// One operand pointer of a resolved call: into a buffer (moved by the rotation), or MPI_IN_PLACE.
#[derive(Debug, Clone, Copy)]
pub(super) struct Operand {
    ptr: *mut c_void,
    rotates: bool,
}

impl Operand {
    fn at(ptr: *mut c_void) -> Operand {
        Operand { ptr, rotates: true }
    }

    fn fixed(ptr: *const c_void) -> Operand {
        Operand {
            ptr: ptr as *mut c_void,
            rotates: false,
        }
    }

    /// The pointer `shift` bytes further on in its buffer.
    ///
    /// # Safety
    /// `shift` must keep every byte the call touches inside the buffer (checked when the call was
    /// resolved for the largest shift it is launched with).
    unsafe fn shifted(self, shift: usize) -> *mut c_void {
        if self.rotates {
            // SAFETY: the caller's contract: the shifted region lies inside the same allocation.
            unsafe { self.ptr.byte_add(shift) }
        } else {
            self.ptr
        }
    }
}

/// A call with its regions turned into pointers, each checked against its buffer.
#[derive(Debug, Clone)]
pub(super) enum Resolved {
    Allreduce(Operand, Operand, c_int, Datatype, Op),
    Allgather(Operand, Operand, c_int, Datatype),
    ReduceScatterBlock(Operand, Operand, c_int, Datatype, Op),
    Bcast(Operand, c_int, Datatype, c_int),
    Reduce(Operand, Operand, c_int, Datatype, Op, c_int),
    Alltoall(Operand, Operand, c_int, Datatype),
    Sendrecv(Operand, Operand, c_int, Datatype, c_int, c_int),
    SendrecvReplace(Operand, c_int, Datatype, c_int, c_int),
    Gather(Operand, Operand, c_int, Datatype, c_int),
    Scatter(Operand, Operand, c_int, Datatype, c_int),
    Alltoallv(Operand, Operand, Datatype, PeerCounts),
}

impl Buffers<'_> {
    fn operand(&mut self, at: At, bytes: usize) -> Option<Operand> {
        self.ptr(at, bytes).map(Operand::at)
    }

    fn send_operand(&mut self, at: Option<At>, bytes: usize) -> Option<Operand> {
        match at {
            None => Some(Operand::fixed(self.in_place)),
            Some(at) => self.operand(at, bytes),
        }
    }
}

/// Checks every region `call` touches on this rank against its buffer (at `bufs.shift`) and turns
/// them into pointers; None when one does not fit.
pub(super) fn resolve(call: &Call, bufs: &mut Buffers, rank: i32, size: i32) -> Option<Resolved> {
    let n = size as usize;
    let bytes = |count: i32, dt: Datatype| count.max(0) as usize * type_size(dt);
    Some(match *call {
        Call::Allreduce {
            send,
            recv,
            count,
            dt,
            op,
        } => {
            let b = bytes(count, dt);
            Resolved::Allreduce(
                bufs.send_operand(send, b)?,
                bufs.operand(recv, b)?,
                count,
                dt,
                op,
            )
        }
        Call::Allgather {
            send,
            recv,
            count,
            dt,
        } => {
            let b = bytes(count, dt);
            Resolved::Allgather(
                bufs.send_operand(send, b)?,
                bufs.operand(recv, b * n)?,
                count,
                dt,
            )
        }
        Call::ReduceScatterBlock {
            send,
            recv,
            count,
            dt,
            op,
        } => {
            let b = bytes(count, dt);
            // In place, the whole input lies in the receive buffer.
            let r = bufs.operand(recv, if send.is_none() { b * n } else { b })?;
            Resolved::ReduceScatterBlock(bufs.send_operand(send, b * n)?, r, count, dt, op)
        }
        Call::Bcast {
            buf,
            count,
            dt,
            root,
        } => Resolved::Bcast(bufs.operand(buf, bytes(count, dt))?, count, dt, root),
        Call::Reduce {
            send,
            recv,
            count,
            dt,
            op,
            root,
        } => {
            let b = bytes(count, dt);
            Resolved::Reduce(
                bufs.send_operand(send, b)?,
                bufs.operand(recv, b)?,
                count,
                dt,
                op,
                root,
            )
        }
        Call::Alltoall {
            send,
            recv,
            count,
            dt,
        } => {
            let b = bytes(count, dt) * n;
            Resolved::Alltoall(
                bufs.send_operand(send, b)?,
                bufs.operand(recv, b)?,
                count,
                dt,
            )
        }
        Call::Sendrecv {
            send,
            recv,
            count,
            dt,
            to,
            from,
        } => {
            let b = bytes(count, dt);
            Resolved::Sendrecv(
                bufs.operand(send, b)?,
                bufs.operand(recv, b)?,
                count,
                dt,
                to,
                from,
            )
        }
        Call::SendrecvReplace {
            buf,
            count,
            dt,
            to,
            from,
        } => Resolved::SendrecvReplace(bufs.operand(buf, bytes(count, dt))?, count, dt, to, from),
        Call::Gather {
            send,
            recv,
            count,
            dt,
            root,
        } => {
            let b = bytes(count, dt);
            let r = bufs.operand(recv, if rank == root { b * n } else { 0 })?;
            Resolved::Gather(bufs.send_operand(send, b)?, r, count, dt, root)
        }
        Call::Scatter {
            send,
            recv,
            count,
            dt,
            root,
        } => {
            let b = bytes(count, dt);
            let s = bufs.operand(send, if rank == root { b * n } else { 0 })?;
            let r = match recv {
                None => Operand::fixed(bufs.in_place),
                Some(at) => bufs.operand(at, b)?,
            };
            Resolved::Scatter(s, r, count, dt, root)
        }
    })
}

/// Checks an alltoallv's lists (one entry per rank, none negative) and every peer's piece against its
/// buffer, and keeps the lists with the pointers.
pub(super) fn resolve_alltoallv(
    bufs: &mut Buffers,
    send: Option<At>,
    recv: At,
    v: &PeerCounts,
    dt: Datatype,
    size: i32,
) -> Option<Resolved> {
    let n = size as usize;
    let lists = [
        &v.send_counts,
        &v.send_displs,
        &v.recv_counts,
        &v.recv_displs,
    ];
    if lists
        .iter()
        .any(|l| l.len() != n || l.iter().any(|&x| x < 0))
    {
        return None;
    }
    let unit = type_size(dt);
    let extent = |counts: &[c_int], displs: &[c_int]| {
        counts
            .iter()
            .zip(displs)
            .map(|(&c, &d)| (c as usize + d as usize) * unit)
            .max()
            .unwrap_or(0)
    };
    let s = bufs.send_operand(send, extent(&v.send_counts, &v.send_displs))?;
    let r = bufs.operand(recv, extent(&v.recv_counts, &v.recv_displs))?;
    Some(Resolved::Alltoallv(s, r, dt, v.clone()))
}

/// Makes a resolved call with its buffer operands `shift` bytes further on.
///
/// # Safety
/// `r` was resolved on buffers that are still alive and unmoved, for a shift of at least `shift`
/// (or exactly at `shift` 0 with the shift already in its pointers); `comm` is a valid communicator.
pub(super) unsafe fn execute(r: &Resolved, shift: usize, comm: ffi::MPI_Comm) -> c_int {
    // SAFETY (every arm): the caller's contract covers each operand at this shift; the lists of an
    // alltoallv hold one entry per rank of the communicator.
    unsafe {
        match r {
            Resolved::Allreduce(s, d, count, dt, op) => {
                ffi::MPI_Allreduce(s.shifted(shift), d.shifted(shift), *count, *dt, *op, comm)
            }
            Resolved::Allgather(s, d, count, dt) => ffi::MPI_Allgather(
                s.shifted(shift),
                *count,
                *dt,
                d.shifted(shift),
                *count,
                *dt,
                comm,
            ),
            Resolved::ReduceScatterBlock(s, d, count, dt, op) => ffi::MPI_Reduce_scatter_block(
                s.shifted(shift),
                d.shifted(shift),
                *count,
                *dt,
                *op,
                comm,
            ),
            Resolved::Bcast(b, count, dt, root) => {
                ffi::MPI_Bcast(b.shifted(shift), *count, *dt, *root, comm)
            }
            Resolved::Reduce(s, d, count, dt, op, root) => ffi::MPI_Reduce(
                s.shifted(shift),
                d.shifted(shift),
                *count,
                *dt,
                *op,
                *root,
                comm,
            ),
            Resolved::Alltoall(s, d, count, dt) => ffi::MPI_Alltoall(
                s.shifted(shift),
                *count,
                *dt,
                d.shifted(shift),
                *count,
                *dt,
                comm,
            ),
            Resolved::Sendrecv(s, d, count, dt, to, from) => ffi::MPI_Sendrecv(
                s.shifted(shift),
                *count,
                *dt,
                *to,
                0,
                d.shifted(shift),
                *count,
                *dt,
                *from,
                0,
                comm,
                ffi::RSMPI_STATUS_IGNORE,
            ),
            Resolved::SendrecvReplace(b, count, dt, to, from) => ffi::MPI_Sendrecv_replace(
                b.shifted(shift),
                *count,
                *dt,
                *to,
                0,
                *from,
                0,
                comm,
                ffi::RSMPI_STATUS_IGNORE,
            ),
            Resolved::Gather(s, d, count, dt, root) => ffi::MPI_Gather(
                s.shifted(shift),
                *count,
                *dt,
                d.shifted(shift),
                *count,
                *dt,
                *root,
                comm,
            ),
            Resolved::Scatter(s, d, count, dt, root) => ffi::MPI_Scatter(
                s.shifted(shift),
                *count,
                *dt,
                d.shifted(shift),
                *count,
                *dt,
                *root,
                comm,
            ),
            Resolved::Alltoallv(s, d, dt, v) => ffi::MPI_Alltoallv(
                s.shifted(shift),
                v.send_counts.as_ptr(),
                v.send_displs.as_ptr(),
                *dt,
                d.shifted(shift),
                v.recv_counts.as_ptr(),
                v.recv_displs.as_ptr(),
                *dt,
                comm,
            ),
        }
    }
}

/// Runs one collective on this rank's buffers. Every region is checked against its buffer for
/// the bytes MPI will touch on this rank before the call is made.
pub fn run(
    call: &Call,
    bufs: &mut Buffers,
    comm: &SimpleCommunicator,
    rank: i32,
    size: i32,
) -> c_int {
    match resolve(call, bufs, rank, size) {
        // SAFETY: resolved just now on these buffers, with the shift already in its pointers; the
        // communicator is borrowed, so alive.
        Some(r) => unsafe { execute(&r, 0, comm.as_raw()) },
        None => OUT_OF_BOUNDS,
    }
}

/// MPI_Alltoallv on this rank's buffers (`send` None: MPI_IN_PLACE, which sends from `recv` by the
/// receive counts). Every peer's piece is checked against its buffer before the call is made.
pub fn alltoallv(
    bufs: &mut Buffers,
    comm: &SimpleCommunicator,
    send: Option<At>,
    recv: At,
    v: &PeerCounts,
    dt: Datatype,
    size: i32,
) -> c_int {
    match resolve_alltoallv(bufs, send, recv, v, dt, size) {
        // SAFETY: as in `run`.
        Some(r) => unsafe { execute(&r, 0, comm.as_raw()) },
        None => OUT_OF_BOUNDS,
    }
}
