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

    fn send_ptr(&mut self, at: Option<At>, bytes: usize) -> Option<*const c_void> {
        match at {
            None => Some(self.in_place),
            Some(at) => self.ptr(at, bytes).map(|p| p as *const c_void),
        }
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
pub struct PeerCounts {
    pub send_counts: Vec<c_int>,
    pub send_displs: Vec<c_int>,
    pub recv_counts: Vec<c_int>,
    pub recv_displs: Vec<c_int>,
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
        return OUT_OF_BOUNDS;
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
    let Some(s) = bufs.send_ptr(send, extent(&v.send_counts, &v.send_displs)) else {
        return OUT_OF_BOUNDS;
    };
    let Some(r) = bufs.ptr(recv, extent(&v.recv_counts, &v.recv_displs)) else {
        return OUT_OF_BOUNDS;
    };
    // SAFETY: both regions were checked above for every peer's piece; the four arrays hold one
    // entry per rank of the communicator, which is valid.
    unsafe {
        ffi::MPI_Alltoallv(
            s,
            v.send_counts.as_ptr(),
            v.send_displs.as_ptr(),
            dt,
            r,
            v.recv_counts.as_ptr(),
            v.recv_displs.as_ptr(),
            dt,
            comm.as_raw(),
        )
    }
}

/// Error code returned when a region does not fit its buffer: the call is refused, never made.
pub const OUT_OF_BOUNDS: c_int = -1;

/// Runs one collective on this rank's buffers. Every region is checked against its buffer for
/// the bytes MPI will touch on this rank before the call is made.
pub fn run(
    call: &Call,
    bufs: &mut Buffers,
    comm: &SimpleCommunicator,
    rank: i32,
    size: i32,
) -> c_int {
    let c = comm.as_raw();
    let n = size as usize;
    let bytes = |count: i32, dt: Datatype| count.max(0) as usize * type_size(dt);
    macro_rules! get {
        ($e:expr) => {
            match $e {
                Some(p) => p,
                None => return OUT_OF_BOUNDS,
            }
        };
    }
    // SAFETY (every arm): each pointer comes from `Buffers::ptr`, which checked that the bytes this
    // rank's part of the call reads or writes lie inside the buffer; the communicator is valid.
    unsafe {
        match *call {
            Call::Allreduce {
                send,
                recv,
                count,
                dt,
                op,
            } => {
                let b = bytes(count, dt);
                let s = get!(bufs.send_ptr(send, b));
                let r = get!(bufs.ptr(recv, b));
                ffi::MPI_Allreduce(s, r, count, dt, op, c)
            }
            Call::Allgather {
                send,
                recv,
                count,
                dt,
            } => {
                let b = bytes(count, dt);
                let s = get!(bufs.send_ptr(send, b));
                let r = get!(bufs.ptr(recv, b * n));
                ffi::MPI_Allgather(s, count, dt, r, count, dt, c)
            }
            Call::ReduceScatterBlock {
                send,
                recv,
                count,
                dt,
                op,
            } => {
                let b = bytes(count, dt);
                let s = get!(bufs.send_ptr(send, b * n));
                // In place, the whole input lies in the receive buffer.
                let r = get!(bufs.ptr(recv, if send.is_none() { b * n } else { b }));
                ffi::MPI_Reduce_scatter_block(s, r, count, dt, op, c)
            }
            Call::Bcast {
                buf,
                count,
                dt,
                root,
            } => {
                let p = get!(bufs.ptr(buf, bytes(count, dt)));
                ffi::MPI_Bcast(p, count, dt, root, c)
            }
            Call::Reduce {
                send,
                recv,
                count,
                dt,
                op,
                root,
            } => {
                let b = bytes(count, dt);
                let s = get!(bufs.send_ptr(send, b));
                let r = get!(bufs.ptr(recv, b));
                ffi::MPI_Reduce(s, r, count, dt, op, root, c)
            }
            Call::Alltoall {
                send,
                recv,
                count,
                dt,
            } => {
                let b = bytes(count, dt) * n;
                let s = get!(bufs.send_ptr(send, b));
                let r = get!(bufs.ptr(recv, b));
                ffi::MPI_Alltoall(s, count, dt, r, count, dt, c)
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
                let s = get!(bufs.ptr(send, b));
                let r = get!(bufs.ptr(recv, b));
                ffi::MPI_Sendrecv(
                    s,
                    count,
                    dt,
                    to,
                    0,
                    r,
                    count,
                    dt,
                    from,
                    0,
                    c,
                    ffi::RSMPI_STATUS_IGNORE,
                )
            }
            Call::SendrecvReplace {
                buf,
                count,
                dt,
                to,
                from,
            } => {
                let p = get!(bufs.ptr(buf, bytes(count, dt)));
                ffi::MPI_Sendrecv_replace(p, count, dt, to, 0, from, 0, c, ffi::RSMPI_STATUS_IGNORE)
            }
            Call::Gather {
                send,
                recv,
                count,
                dt,
                root,
            } => {
                let b = bytes(count, dt);
                let s = get!(bufs.send_ptr(send, b));
                let r = get!(bufs.ptr(recv, if rank == root { b * n } else { 0 }));
                ffi::MPI_Gather(s, count, dt, r, count, dt, root, c)
            }
            Call::Scatter {
                send,
                recv,
                count,
                dt,
                root,
            } => {
                let b = bytes(count, dt);
                let s = get!(bufs.ptr(send, if rank == root { b * n } else { 0 }));
                let r = match recv {
                    None => bufs.in_place as *mut c_void,
                    Some(at) => get!(bufs.ptr(at, b)),
                };
                ffi::MPI_Scatter(s, count, dt, r, count, dt, root, c)
            }
        }
    }
}
