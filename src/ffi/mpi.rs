//! Raw MPI calls that rsmpi does not wrap (error handlers, in-place collectives, alltoallv, the abort
//! that must not wait), each checked against its buffers before the call: the `unsafe` of the MPI layer.
//! src/world/mpi.rs and the mpi backend use it; rsmpi's typed calls do the rest.

use ::mpi::ffi;
use ::mpi::raw::AsRaw;
use ::mpi::topology::SimpleCommunicator;
use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

pub fn errors_return(comm: &SimpleCommunicator) {
    // SAFETY: a valid communicator and a predefined error handler.
    unsafe {
        ffi::MPI_Comm_set_errhandler(comm.as_raw(), ffi::RSMPI_ERRORS_RETURN);
    }
}

/// MPI_SUCCESS or the error in MPI's own words.
pub fn check(code: c_int) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let mut text = vec![0 as c_char; 1024];
    let mut len: c_int = 0;
    // SAFETY: the buffer holds MPI_MAX_ERROR_STRING (256 in Open MPI and MPICH) characters and more.
    let rc = unsafe { ffi::MPI_Error_string(code, text.as_mut_ptr(), &mut len) };
    if rc != 0 || len <= 0 {
        return Err(format!("MPI error code {code}"));
    }
    let bytes: Vec<u8> = text[..len as usize].iter().map(|&c| c as u8).collect();
    Err(format!(
        "{} (MPI error code {code})",
        String::from_utf8_lossy(&bytes)
    ))
}

/// MPI_Comm_split, with MPI_ERRORS_RETURN set on the new communicator; the error code on failure.
pub fn split(
    comm: &SimpleCommunicator,
    color: c_int,
    key: c_int,
) -> Result<SimpleCommunicator, c_int> {
    use ::mpi::raw::FromRaw;
    let mut new = std::mem::MaybeUninit::<ffi::MPI_Comm>::uninit();
    // SAFETY: a valid communicator; MPI writes the new handle before we read it, and only on success.
    let code = unsafe { ffi::MPI_Comm_split(comm.as_raw(), color, key, new.as_mut_ptr()) };
    if code != 0 {
        return Err(code);
    }
    // SAFETY: MPI_Comm_split succeeded, so the handle is a fresh intra-communicator we own.
    let split = unsafe { SimpleCommunicator::from_raw(new.assume_init()) };
    errors_return(&split);
    Ok(split)
}

pub fn barrier(comm: &SimpleCommunicator) -> c_int {
    // SAFETY: a valid communicator.
    unsafe { ffi::MPI_Barrier(comm.as_raw()) }
}

/// How long MPI_Abort may take before this process ends itself: MPI_Abort hands the job's end to
/// the launcher's daemon, and a daemon that is hung or cut off must not keep this rank alive.
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub fn abort_world(code: c_int) -> ! {
    end_after_grace(code);
    // SAFETY: MPI_Abort on the world communicator; it does not return.
    unsafe {
        ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, code);
    }
    std::process::exit(code)
}

/// Ends this process with `code` after ABORT_GRACE unless something ends it sooner.
pub fn end_after_grace(code: c_int) {
    let _ = std::thread::Builder::new()
        .name("collbench-abort-grace".into())
        .spawn(move || {
            std::thread::sleep(ABORT_GRACE);
            eprintln!(
                "collbench: MPI_Abort did not end this process within {} s; exiting with code {code}",
                ABORT_GRACE.as_secs()
            );
            // SAFETY: _exit ends the process at once, without the exit handlers (MPI's included)
            // that could block as MPI_Abort did.
            unsafe { libc::_exit(code) }
        });
}

/// MPI_IN_PLACE is a macro of the implementation's header, not a symbol: Open MPI defines it as
/// (void *) 1, MPICH and its derivatives (Intel MPI, MVAPICH, Cray MPICH) as (void *) -1.
pub fn in_place_sentinel(library_version: &str) -> *const c_void {
    if library_version.contains("Open MPI") {
        // Not a dangling pointer in spirit: the address 1 is Open MPI's MPI_IN_PLACE.
        std::ptr::without_provenance(1)
    } else {
        std::ptr::without_provenance(usize::MAX)
    }
}

/// MPI_PROC_NULL, the rank that makes a send or a receive a no-op (a macro of the implementation's
/// header, exported by rsmpi).
pub fn proc_null() -> c_int {
    // SAFETY: reading rsmpi's constant.
    unsafe { ffi::RSMPI_PROC_NULL }
}

pub type Datatype = ffi::MPI_Datatype;
pub type Op = ffi::MPI_Op;

pub fn datatype(name: &str) -> Datatype {
    // SAFETY: reading rsmpi's constant handles.
    unsafe {
        match name {
            "int8" => ffi::RSMPI_INT8_T,
            "uint8" => ffi::RSMPI_UINT8_T,
            "int16" => ffi::RSMPI_INT16_T,
            "uint16" => ffi::RSMPI_UINT16_T,
            "int32" => ffi::RSMPI_INT32_T,
            "uint32" => ffi::RSMPI_UINT32_T,
            "int64" => ffi::RSMPI_INT64_T,
            "uint64" => ffi::RSMPI_UINT64_T,
            "float" => ffi::RSMPI_FLOAT,
            "double" => ffi::RSMPI_DOUBLE,
            _ => ffi::RSMPI_UINT8_T,
        }
    }
}

pub fn op(name: &str) -> Op {
    // SAFETY: reading rsmpi's constant handles.
    unsafe {
        match name {
            "prod" => ffi::RSMPI_PROD,
            "max" => ffi::RSMPI_MAX,
            "min" => ffi::RSMPI_MIN,
            _ => ffi::RSMPI_SUM,
        }
    }
}

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

pub fn type_size(dt: Datatype) -> usize {
    let mut size: c_int = 0;
    // SAFETY: a predefined or committed datatype.
    unsafe { ffi::MPI_Type_size(dt, &mut size) };
    size.max(0) as usize
}

/// A committed datatype of `bytes` contiguous bytes, for element counts beyond MPI's int.
pub fn contiguous_bytes(bytes: i32) -> Datatype {
    let mut dt = std::mem::MaybeUninit::<Datatype>::uninit();
    // SAFETY: MPI writes the new handle before we read it; committing a fresh type.
    unsafe {
        ffi::MPI_Type_contiguous(bytes, ffi::RSMPI_UINT8_T, dt.as_mut_ptr());
        let mut dt = dt.assume_init();
        ffi::MPI_Type_commit(&mut dt);
        dt
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
struct Operand {
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
enum Resolved {
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
fn resolve(call: &Call, bufs: &mut Buffers, rank: i32, size: i32) -> Option<Resolved> {
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
fn resolve_alltoallv(
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
unsafe fn execute(r: &Resolved, shift: usize, comm: ffi::MPI_Comm) -> c_int {
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
