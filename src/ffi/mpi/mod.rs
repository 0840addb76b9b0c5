//! Raw MPI calls that rsmpi does not wrap (error handlers, in-place collectives, alltoallv, the abort
//! that must not wait), each checked against its buffers before the call: the `unsafe` of the MPI layer.
//! src/world/mpi.rs and the mpi backend use it; rsmpi's typed calls do the rest.

use ::mpi::ffi;
use ::mpi::raw::AsRaw;
use ::mpi::topology::SimpleCommunicator;
use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

mod calls;
mod prepared;
pub use calls::*;
pub use prepared::{Prepare, Ready};

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
