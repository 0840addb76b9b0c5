//! The one thing collbench does inside a signal handler: put a prepared results document in place.
//!
//! A launcher that ends a job (mpirun after another rank failed, or after Ctrl-C) sends SIGTERM and then,
//! about 10 ms later, SIGKILL: too soon for a thread to wake, serialise and write. So the document that
//! says "interrupted" is written beforehand, beside the real one, and the handler only renames it over
//! the real one, which rename(2) does atomically and async-signal-safely, then exits.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Installs, for SIGINT, SIGTERM and SIGHUP, a handler that renames `first` over `target` (removing
/// `then`), or where there is no `first`, `then`, and ends the process with 128 + the signal. Missing
/// files (the run ended normally) leave `target` alone.
pub fn rename_on_termination(first: &Path, then: &Path, target: &Path) -> std::io::Result<()> {
    let to_c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other("a path with a NUL byte"))
    };
    // Built once and leaked: the handler may read them at any moment until the process ends.
    let first: &'static CString = Box::leak(Box::new(to_c(first)?));
    let then: &'static CString = Box::leak(Box::new(to_c(then)?));
    let to: &'static CString = Box::leak(Box::new(to_c(target)?));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let handler = move || {
            // SAFETY: rename(2), unlink(2) and _exit(2) are async-signal-safe; the strings live for ever
            // and are NUL-terminated. Nothing here allocates or takes a lock.
            unsafe {
                if libc::rename(first.as_ptr(), to.as_ptr()) == 0 {
                    libc::unlink(then.as_ptr());
                } else {
                    libc::rename(then.as_ptr(), to.as_ptr());
                }
                libc::_exit(128 + signal);
            }
        };
        // SAFETY: the handler does only async-signal-safe work (above).
        unsafe { signal_hook::low_level::register(signal, handler) }?;
    }
    Ok(())
}
