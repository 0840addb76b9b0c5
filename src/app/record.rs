//! The results document's life on disk, whatever ends the run: rank 0 writes it when the run starts,
//! refreshes its heartbeat while it runs, and it is marked failed (error, exit code, rank) or
//! interrupted (a signal) before the process goes, by whichever rank or thread sees the end first.
//!
//! State is per process: the panic hook, the `-T` watchdog and the signal handler reach it without a
//! handle, since they run where no reporter can be passed.
//!
//! A launcher gives a process about 10 ms between SIGTERM and SIGKILL, so for a regular file the
//! "interrupted" document is prepared beside it at every save and a signal only renames it into place
//! (`crate::ffi::signals`). A rank that fails writes its "failed" document both in place and as the
//! prepared one, so that rank 0, stopped next by the launcher, puts the failure back rather than an
//! interruption.

use crate::error::Result;
use crate::report::json::{self, JsonWriter, Target};
use crate::report::model::{unix_now_s, RunDocument, RunStatus, HEARTBEAT_S};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::Duration;

/// Rank 0's document as last saved, and its writer.
struct Saved {
    writer: JsonWriter,
    doc: Option<RunDocument>,
}

/// What every rank of this process knows of the run's document: where it is and which run it is.
struct Known {
    path: Option<PathBuf>,
    run_id: String,
}

static KNOWN: OnceLock<Known> = OnceLock::new();
static SAVED: OnceLock<Mutex<Saved>> = OnceLock::new();

/// What a signal leaves in the document: the launcher or a person stopped the run.
const INTERRUPTED: &str = "interrupted by a signal (SIGINT, SIGTERM or SIGHUP): Ctrl-C, the launcher ending the job (after another rank failed: see its message), or a scheduler's limit";

/// A name for this run that no other run shares: host, process and start time.
pub fn new_run_id(host: &str) -> String {
    format!("{host}-{}-{:.6}", std::process::id(), unix_now_s())
}

/// Every rank: remembers the document's path and run id, so that a rank that fails can mark rank 0's
/// document where it can see it (the same host, or a shared file system).
pub fn know(path: Option<&Path>, run_id: &str) {
    let _ = KNOWN.set(Known {
        path: path.map(Path::to_path_buf),
        run_id: run_id.to_string(),
    });
}

/// Rank 0: takes charge of the document. A regular file gets its heartbeat refreshed by a thread and
/// its prepared "interrupted" twin renamed into place by a signal; a stream (a pipe, /dev/stdout) gets
/// the final document from a thread that watches for the signals.
pub fn own(writer: Option<JsonWriter>) -> Result<()> {
    let Some(writer) = writer else {
        return Ok(());
    };
    let prepared = writer.prepared();
    if SAVED.set(Mutex::new(Saved { writer, doc: None })).is_err() {
        return Ok(());
    }
    match (prepared, KNOWN.get().and_then(|k| k.path.as_deref())) {
        (Some(prepared), Some(named)) => {
            let target = match Target::of(named)? {
                Target::Replace(path) => path,
                Target::Stream(path) => path,
            };
            crate::ffi::signals::rename_on_termination(&prepared, &target).map_err(|e| {
                crate::error::Error::io("cannot install the handler of termination signals", e)
            })?;
            let _ = std::thread::Builder::new()
                .name("collbench-heartbeat".into())
                .spawn(heartbeat);
        }
        _ => watch_signals(),
    }
    Ok(())
}

/// Saves rank 0's document: its heartbeat now, written at once to a file (to a stream only when final),
/// with the twin a signal would put in place while the run goes on.
pub fn save(doc: &mut RunDocument) -> Result<()> {
    doc.heartbeat_unix_s = unix_now_s();
    let Some(saved) = SAVED.get() else {
        return Ok(());
    };
    let mut s = lock(saved);
    s.doc = Some(doc.clone());
    let running = doc.status == RunStatus::Running;
    if running {
        s.writer.write_prepared(&interrupted(doc))?;
    } else {
        s.writer.remove_prepared();
    }
    s.writer.write(doc, !running)
}

/// The document as a signal would leave it.
fn interrupted(doc: &RunDocument) -> RunDocument {
    RunDocument {
        status: RunStatus::Interrupted,
        error: Some(INTERRUPTED.into()),
        ..doc.clone()
    }
}

/// Marks the run failed before this process ends the job. Rank 0 marks its own document; another rank
/// marks the file on disk when it can see rank 0's document there. Best effort: never fails, never
/// panics, and leaves a document that already says how the run ended as it is.
pub fn fail(error: &str, code: i32, rank: Option<usize>) {
    let mark = |doc: &mut RunDocument| {
        doc.status = RunStatus::Failed;
        doc.error = Some(error.to_string());
        doc.exit_code = Some(code);
        doc.failed_rank = rank;
        doc.heartbeat_unix_s = unix_now_s();
    };
    if let Some(saved) = SAVED.get() {
        let mut s = lock(saved);
        let Saved { writer, doc } = &mut *s;
        if let Some(doc) = doc.as_mut().filter(|d| d.status == RunStatus::Running) {
            mark(doc);
            writer.remove_prepared();
            let _ = writer.write(doc, true);
        }
        return;
    }
    let Some(Known {
        path: Some(path),
        run_id,
    }) = KNOWN.get()
    else {
        return;
    };
    if let Some(mut doc) = own_run_on_disk(path, run_id).filter(|d| d.status == RunStatus::Running)
    {
        mark(&mut doc);
        if let Ok(writer) = JsonWriter::new(path) {
            // The twin first: rank 0's handler renames it into place when the launcher stops it.
            let _ = writer.write_prepared(&doc);
            let _ = writer.write(&doc, true);
        }
    }
}

/// The document at `path` when it is a regular file holding this run.
fn own_run_on_disk(path: &Path, run_id: &str) -> Option<RunDocument> {
    let Ok(Target::Replace(file)) = Target::of(path) else {
        return None;
    };
    json::read(&file).ok().filter(|d| d.run_id == run_id)
}

/// The lock, even from a thread that panicked while holding it (the panic hook marks the run failed),
/// and without waiting for ever on a lock this very thread holds.
fn lock(saved: &Mutex<Saved>) -> MutexGuard<'_, Saved> {
    for _ in 0..200 {
        match saved.try_lock() {
            Ok(g) => return g,
            Err(TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    saved.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rewrites a running document every `HEARTBEAT_S` seconds, unless another rank has marked it failed.
fn heartbeat() {
    loop {
        std::thread::sleep(Duration::from_secs_f64(HEARTBEAT_S));
        let Some(saved) = SAVED.get() else { return };
        let mut s = lock(saved);
        let Saved { writer, doc } = &mut *s;
        let Some(doc) = doc.as_mut() else { continue };
        if doc.status != RunStatus::Running {
            return;
        }
        let failed_elsewhere = KNOWN
            .get()
            .and_then(|k| own_run_on_disk(k.path.as_deref()?, &k.run_id))
            .is_some_and(|d| d.status != RunStatus::Running);
        if failed_elsewhere {
            return;
        }
        doc.heartbeat_unix_s = unix_now_s();
        let _ = writer.write(doc, false);
    }
}

/// For a stream target: a thread writes the final "interrupted" document on SIGINT, SIGTERM or SIGHUP,
/// then the process exits with 128 + the signal.
fn watch_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("collbench-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                if let Some(saved) = SAVED.get() {
                    let mut s = lock(saved);
                    let Saved { writer, doc } = &mut *s;
                    if let Some(doc) = doc.as_mut().filter(|d| d.status == RunStatus::Running) {
                        *doc = RunDocument {
                            exit_code: Some(128 + signal),
                            heartbeat_unix_s: unix_now_s(),
                            ..interrupted(doc)
                        };
                        let _ = writer.write_before_kill(doc);
                    }
                }
                let _ = std::io::Write::flush(&mut std::io::stdout());
                signal_hook::low_level::exit(128 + signal);
            }
        });
}
