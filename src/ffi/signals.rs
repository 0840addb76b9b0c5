//! The one thing collbench does inside a signal handler: write how the run ended over the last lines of
//! the results document, and exit.
//!
//! A launcher that ends a job (mpirun after another rank failed, Slurm's scancel or time limit, Ctrl-C)
//! sends SIGTERM and then, milliseconds later (mpirun: 4 ms measured), SIGKILL: too soon for a thread to wake, serialise and write.
//! So the text a signal leaves ("interrupted") is prepared at every save for each complete copy of the
//! document (its open file, where to write, and the bytes: any rows not yet written there, the fields
//! after them, the ending), and the handler only writes it there, one pwrite(2) a copy, or, when another
//! rank has already left its failure beside the document (`.FILE.failed`), that file's text, then exits. pwrite, read, fstat and _exit are
//! async-signal-safe; nothing here allocates, formats or takes a lock.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::SeqCst};
use std::sync::OnceLock;

/// What a signal writes, and where.
pub struct Ending {
    /// Each complete copy of the document, the one in place first.
    pub files: Vec<EndingFile>,
}

/// One copy of the document, as a signal finishes it.
pub struct EndingFile {
    pub fd: RawFd,
    /// Where the signal writes.
    pub at: u64,
    /// What it writes there, in one pwrite, since a launcher's SIGKILL may follow its SIGTERM within
    /// microseconds: the rows this copy lacks and the fields after them (`before` bytes), then the
    /// document's last fields (the run's life) as a signal leaves them, and spaces to the copy's end.
    pub text: Vec<u8>,
    pub before: usize,
}

static ENDING: AtomicPtr<Ending> = AtomicPtr::new(ptr::null_mut());
/// Set by the handler before it reads `ENDING`: from then on the writer touches no file.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Set by the first handler to run; a second signal waits for it to end the process.
static ENTERED: AtomicBool = AtomicBool::new(false);
static FAILED: OnceLock<CString> = OnceLock::new();

const BUFFER: usize = 64 * 1024;

/// The handler's memory, reserved before any signal: another rank's mark as read, and the text to write.
struct Buffers {
    failed: [u8; BUFFER],
    text: [u8; BUFFER],
}

struct HandlerMemory(UnsafeCell<Buffers>);

// SAFETY: only the one handler that wins `ENTERED` ever touches the buffers.
unsafe impl Sync for HandlerMemory {}

static MEMORY: HandlerMemory = HandlerMemory(UnsafeCell::new(Buffers {
    failed: [0; BUFFER],
    text: [0; BUFFER],
}));

/// The longest failure mark another rank may leave for the handler to copy.
pub const MAX_FAILED_MARK: usize = BUFFER;

/// Installs, for SIGINT, SIGTERM and SIGHUP, a handler that writes the last published `Ending` (or the
/// text of `failed`, another rank's mark, when that file exists) and ends the process with 128 + the
/// signal.
pub fn install(failed: &Path) -> std::io::Result<()> {
    let path = CString::new(failed.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let _ = FAILED.set(path);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler does only async-signal-safe work (see `on_signal`).
        unsafe { signal_hook::low_level::register(signal, move || on_signal(signal)) }?;
    }
    Ok(())
}

/// Makes `ending` what a signal writes from now on. The one it replaces is freed unless a handler may be
/// reading it.
pub fn publish(ending: Ending) {
    let new = Box::into_raw(Box::new(ending));
    let old = ENDING.swap(new, SeqCst);
    // A handler sets STOPPING before it loads ENDING: if it is not set now, no handler holds `old`.
    if !old.is_null() && !STOPPING.load(SeqCst) {
        // SAFETY: `old` came from Box::into_raw in an earlier publish and nothing else holds it.
        drop(unsafe { Box::from_raw(old) });
    }
}

/// Parks the calling thread for good once a signal's handler has begun: it is writing the document's
/// ending and is about to end the process, so no file may change under it. Call before changing a file
/// the last published `Ending` does not name, and before putting a file in the document's place.
pub fn hold_if_stopping() {
    if STOPPING.load(SeqCst) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

fn on_signal(signal: i32) {
    // SAFETY: open, read, close, fstat, pwrite, pause and _exit are async-signal-safe; the buffers are
    // this handler's alone (ENTERED), `ENDING` is never freed once STOPPING is set, and the paths are
    // NUL-terminated and live for ever.
    unsafe {
        if ENTERED.swap(true, SeqCst) {
            loop {
                libc::pause();
            }
        }
        STOPPING.store(true, SeqCst);
        let memory = &mut *MEMORY.0.get();
        let failed_len = match FAILED.get() {
            Some(path) => read_whole(path, &mut memory.failed),
            None => 0,
        };
        let ending = ENDING.load(SeqCst);
        if !ending.is_null() {
            let ending = &*ending;
            // Another rank's mark is a whole JSON object: its text after the opening brace replaces the
            // document's last fields (that rank has most likely written it there already).
            let failed = failed_len > 1 && memory.failed[0] == b'{';
            for file in &ending.files {
                if failed {
                    let before = &file.text[..file.before.min(file.text.len())];
                    pwrite_all(file.fd, before, file.at);
                    let at = file.at + before.len() as u64;
                    write_covering(file.fd, at, &memory.failed[1..failed_len], &mut memory.text);
                } else {
                    pwrite_all(file.fd, &file.text, file.at);
                }
            }
        }
        libc::_exit(128 + signal);
    }
}

/// The file at `path` into `buffer`; 0 when it cannot be read or does not fit.
unsafe fn read_whole(path: &CString, buffer: &mut [u8; BUFFER]) -> usize {
    let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return 0;
    }
    let mut len = 0;
    loop {
        let n = libc::read(fd, buffer[len..].as_mut_ptr().cast(), BUFFER - len);
        if n <= 0 {
            break;
        }
        len += n as usize;
        if len == BUFFER {
            len = 0;
            break;
        }
    }
    libc::close(fd);
    len
}

/// Writes `text` at `at` in one pwrite, padded with spaces (and a final newline) to the file's present
/// end, so nothing of what stood there before is left after the JSON.
unsafe fn write_covering(fd: RawFd, at: u64, text: &[u8], scratch: &mut [u8; BUFFER]) {
    let mut st: libc::stat = std::mem::zeroed();
    let size = if libc::fstat(fd, &mut st) == 0 {
        st.st_size.max(0) as u64
    } else {
        0
    };
    let cover = size.saturating_sub(at) as usize;
    if text.len() >= cover || cover > BUFFER {
        pwrite_all(fd, text, at);
        let mut end = at + text.len() as u64;
        // A region longer than the buffer (not one this program writes): blank it piece by piece.
        while end < size {
            let n = ((size - end) as usize).min(BUFFER);
            scratch[..n].fill(b' ');
            pwrite_all(fd, &scratch[..n], end);
            end += n as u64;
        }
        return;
    }
    scratch[..text.len()].copy_from_slice(text);
    scratch[text.len()..cover].fill(b' ');
    scratch[cover - 1] = b'\n';
    pwrite_all(fd, &scratch[..cover], at);
}

unsafe fn pwrite_all(fd: RawFd, mut bytes: &[u8], mut at: u64) {
    while !bytes.is_empty() {
        let n = libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), at as libc::off_t);
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
        at += n as u64;
    }
}
