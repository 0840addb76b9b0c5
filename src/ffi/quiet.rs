//! Keeps what a vendor library prints by itself off the user's terminal: ROCm SMI's "Exception caught:
//! rsmi_init.", HIP's "[FATAL ERROR]: HIP failure", NVML's and NCCL's warnings. A short call into such a
//! library (opening it, its version, a unique id, counting devices) runs with the process's stdout and
//! stderr pointed at an anonymous file, and the words it wrote come back to the caller, which puts them
//! into its own message when the call fails. A user who asks for the library's output (NCCL_DEBUG,
//! AMD_LOG_LEVEL, RSMI_LOGGING, ...) gets it as the library prints it.
//!
//! The redirection is of the whole process, so it wraps only short calls, one at a time (a lock), and
//! never a call that waits on other ranks (a communicator's init): the -T watchdog must be heard then.

use crate::error::Error;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// At most this much of what a library printed is kept for a message.
const KEPT_BYTES: usize = 4096;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

std::thread_local! {
    /// Whether this thread is inside a capture already (a nested call adds to the outer one).
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a library printed during a call, as the lines it wrote (empty when it printed nothing or when
/// the user asked to see its output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Printed(pub String);

impl Printed {
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// " (the library printed: A; B)" for a message, or nothing.
    pub fn as_suffix(&self, library: &str) -> String {
        if self.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = self
            .0
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        format!(" ({library} printed: {})", lines.join("; "))
    }
}

impl Printed {
    /// `e` with these words after its library's own (the detail of a library error, the text of a
    /// refusal); other errors as they are.
    pub fn added_to(&self, e: Error, library: &str) -> Error {
        let suffix = self.as_suffix(library);
        if suffix.is_empty() {
            return e;
        }
        match e {
            Error::Library {
                library: l,
                call,
                detail,
                rank,
                host,
            } => Error::Library {
                library: l,
                call,
                detail: format!("{detail}{suffix}"),
                rank,
                host,
            },
            Error::Unsupported(text) => Error::Unsupported(format!("{text}{suffix}")),
            other => other,
        }
    }
}

/// Whether one of `asked` (environment variables that turn a library's logging on) is set and not
/// empty: the user then wants the library's own lines.
fn user_asked(asked: &[&str]) -> bool {
    asked
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Runs `call` with stdout and stderr captured (unless one of `asked` is set) and returns its result
/// with what was printed meanwhile.
pub fn quietly<T>(asked: &[&str], call: impl FnOnce() -> T) -> (T, Printed) {
    if user_asked(asked) || CAPTURING.with(|c| c.get()) {
        return (call(), Printed::default());
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(capture) = Capture::start() else {
        // No anonymous file or no descriptor to spare: the library may print, but the call still runs.
        return (call(), Printed::default());
    };
    CAPTURING.with(|c| c.set(true));
    let value = call();
    CAPTURING.with(|c| c.set(false));
    (value, capture.finish())
}

/// The process's stdout and stderr, saved while they point at an anonymous file.
struct Capture {
    file: OwnedFd,
    saved_out: OwnedFd,
    saved_err: OwnedFd,
    restored: bool,
}

fn flush_everything() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: fflush(NULL) flushes every C stdio stream; it has no other effect.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

fn dup(fd: i32) -> Option<OwnedFd> {
    // SAFETY: dup of a descriptor we do not own returns a new one we do own, or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    (new >= 0).then(|| unsafe { OwnedFd::from_raw_fd(new) })
}

impl Capture {
    fn start() -> Option<Capture> {
        // SAFETY: the name is a NUL-terminated literal; the result is a fresh descriptor or -1.
        let raw =
            unsafe { libc::memfd_create(c"collbench-library-output".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let file = unsafe { OwnedFd::from_raw_fd(raw) };
        let saved_out = dup(libc::STDOUT_FILENO)?;
        let saved_err = dup(libc::STDERR_FILENO)?;
        flush_everything();
        // SAFETY: dup2 onto the standard descriptors, which we restore in `finish` or on drop.
        unsafe {
            libc::dup2(file.as_raw_fd(), libc::STDOUT_FILENO);
            libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO);
        }
        Some(Capture {
            file,
            saved_out,
            saved_err,
            restored: false,
        })
    }

    fn restore(&mut self) {
        if self.restored {
            return;
        }
        flush_everything();
        // SAFETY: the saved descriptors are open; dup2 puts them back on 1 and 2.
        unsafe {
            libc::dup2(self.saved_out.as_raw_fd(), libc::STDOUT_FILENO);
            libc::dup2(self.saved_err.as_raw_fd(), libc::STDERR_FILENO);
        }
        self.restored = true;
    }

    fn finish(mut self) -> Printed {
        self.restore();
        let mut buf = vec![0u8; KEPT_BYTES];
        // SAFETY: pread into our own buffer of its length, from the start of our anonymous file.
        let n =
            unsafe { libc::pread(self.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        buf.truncate(n.max(0) as usize);
        Printed(String::from_utf8_lossy(&buf).into_owned())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // A call that panicked still gives the terminal back.
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_fd(fd: i32, text: &str) {
        // SAFETY: writing our own bytes to a standard descriptor.
        unsafe {
            libc::write(fd, text.as_ptr().cast(), text.len());
        }
    }

    #[test]
    fn what_a_call_prints_on_either_descriptor_comes_back_to_the_caller() {
        let (value, printed) = quietly(&[], || {
            write_fd(libc::STDERR_FILENO, "Exception caught: rsmi_init.\n");
            write_fd(libc::STDOUT_FILENO, "from stdout\n");
            // C stdio's buffered stdout too: captured because it is flushed before the terminal returns.
            // SAFETY: printf of a literal without conversions.
            unsafe {
                libc::printf(c"buffered\n".as_ptr());
            }
            7
        });
        assert_eq!(value, 7);
        assert!(
            printed.0.contains("Exception caught: rsmi_init.")
                && printed.0.contains("from stdout")
                && printed.0.contains("buffered"),
            "{printed:?}"
        );
        assert_eq!(
            printed.as_suffix("ROCm SMI"),
            " (ROCm SMI printed: Exception caught: rsmi_init.; from stdout; buffered)"
        );
        // The terminal came back in between: a second capture holds only its own words.
        let ((), again) = quietly(&[], || write_fd(libc::STDERR_FILENO, "second\n"));
        assert!(
            again.0.contains("second") && !again.0.contains("rsmi_init"),
            "{again:?}"
        );
    }

    #[test]
    fn a_silent_call_prints_nothing_and_a_user_who_asked_sees_the_library() {
        let ((), printed) = quietly(&[], || ());
        assert!(printed.is_empty() && printed.as_suffix("HIP").is_empty());
        // PATH is always set: a library whose logging variable is set keeps its own output.
        let ((), asked) = quietly(&["PATH"], || ());
        assert_eq!(asked, Printed::default());
    }

    #[test]
    fn the_words_join_the_library_error_they_explain() {
        let printed = Printed("[FATAL ERROR]: HIP failure\n".into());
        let e = printed.added_to(
            Error::Library {
                library: "RCCL".into(),
                call: "ncclGetUniqueId".into(),
                detail: "unhandled cuda error".into(),
                rank: 0,
                host: "node1".into(),
            },
            "RCCL",
        );
        assert_eq!(
            e.to_string(),
            "RCCL error on rank 0 (node1): ncclGetUniqueId: unhandled cuda error \
             (RCCL printed: [FATAL ERROR]: HIP failure)"
        );
        let refused = printed.added_to(Error::Unsupported("no AMD GPU".into()), "HIP");
        assert_eq!(
            refused.to_string(),
            "no AMD GPU (HIP printed: [FATAL ERROR]: HIP failure)"
        );
        let untouched = Printed::default().added_to(Error::Unsupported("x".into()), "HIP");
        assert_eq!(untouched.to_string(), "x");
    }

    #[test]
    fn only_the_first_bytes_are_kept() {
        let long = "x".repeat(3 * KEPT_BYTES);
        let ((), printed) = quietly(&[], || write_fd(libc::STDERR_FILENO, &long));
        assert_eq!(printed.0.len(), KEPT_BYTES, "{}", &printed.0[..80]);
    }
}
