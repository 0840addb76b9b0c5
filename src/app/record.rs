//! A results document's life on disk, whatever ends the run, for every command that writes one (run,
//! pairs, workload): rank 0 writes it when the run starts, refreshes its heartbeat while it runs, and it
//! is marked failed (error, exit code, rank) or interrupted (a signal) before the process goes, by
//! whichever rank or thread sees the end first.
//!
//! State is per process: the panic hook, the `-T` watchdog and the signal handler reach it without a
//! handle, since they run where no reporter can be passed.
//!
//! A launcher gives a process about 10 ms between SIGTERM and SIGKILL, so for a regular file the
//! "interrupted" document is prepared beside it at every save and a signal only renames it into place
//! (`crate::ffi::signals`). A rank that fails writes its "failed" document in place and into a file of
//! its own beside it (`.FILE.failed`), which rank 0 never writes: rank 0's handler renames that one into
//! place first, so a save of rank 0's racing with the failure cannot turn it into an interruption, and
//! rank 0's next save takes the failure over.

use crate::error::Result;
use crate::report::json::{self, Beside, JsonWriter, Target};
use crate::report::model::{unix_now_s, HasLife, RunLife, RunStatus, HEARTBEAT_S};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::Duration;

/// What this module holds of rank 0's document, whichever command's it is: its life and its JSON.
trait Kept: Send {
    fn life(&self) -> &RunLife;
    fn life_mut(&mut self) -> &mut RunLife;
    fn text(&self) -> Result<Vec<u8>>;
    fn copy(&self) -> Box<dyn Kept>;
}

impl<D: HasLife + Serialize + Clone + Send + 'static> Kept for D {
    fn life(&self) -> &RunLife {
        HasLife::life(self)
    }
    fn life_mut(&mut self) -> &mut RunLife {
        HasLife::life_mut(self)
    }
    fn text(&self) -> Result<Vec<u8>> {
        json::to_text(self)
    }
    fn copy(&self) -> Box<dyn Kept> {
        Box::new(self.clone())
    }
}

/// Rank 0's document as last saved, and its writer.
struct Saved {
    writer: JsonWriter,
    doc: Option<Box<dyn Kept>>,
}

/// What every rank of this process knows of the run's document: where it is, which run it is, and how
/// to mark that document failed on disk (it knows the document's type).
struct Known {
    path: Option<PathBuf>,
    run_id: String,
    fail_on_disk: fn(&Path, &str, &Failure),
    /// Where a failing rank leaves its mark beside a regular file (None for a stream or no document).
    failed_elsewhere: Option<PathBuf>,
}

/// How a run failed, as a rank that saw it tells the document.
struct Failure<'a> {
    error: &'a str,
    code: i32,
    rank: Option<usize>,
}

static KNOWN: OnceLock<Known> = OnceLock::new();
static SAVED: OnceLock<Mutex<Saved>> = OnceLock::new();

/// What a signal leaves in the document: the launcher or a person stopped the run.
const INTERRUPTED: &str = "interrupted by a signal (SIGINT, SIGTERM or SIGHUP): Ctrl-C, the launcher ending the job (after another rank failed: see its message), or a scheduler's limit";

/// A name for this run that no other run shares: host, process and start time.
pub fn new_run_id(host: &str) -> String {
    format!("{host}-{}-{:.6}", std::process::id(), unix_now_s())
}

/// Every rank: remembers the document's path, run id and type, so that a rank that fails can mark rank
/// 0's document where it can see it (the same host, or a shared file system).
pub fn know<D: HasLife + Serialize + DeserializeOwned>(path: Option<&Path>, run_id: &str) {
    let _ = KNOWN.set(Known {
        path: path.map(Path::to_path_buf),
        run_id: run_id.to_string(),
        fail_on_disk: fail_on_disk::<D>,
        failed_elsewhere: path
            .and_then(|p| JsonWriter::new(p).ok())
            .and_then(|w| w.beside(Beside::FailedElsewhere)),
    });
}

/// Rank 0: takes charge of the document. A regular file gets its heartbeat refreshed by a thread and
/// its prepared "interrupted" twin renamed into place by a signal; a stream (a pipe, /dev/stdout) gets
/// the final document from a thread that watches for the signals.
pub fn own(writer: Option<JsonWriter>) -> Result<()> {
    let Some(writer) = writer else {
        return Ok(());
    };
    // What an earlier run failing at the same path left: this run's ranks write theirs only once rank 0
    // has written this run's document, after this.
    writer.remove_beside(Beside::FailedElsewhere);
    let beside = writer
        .beside(Beside::FailedElsewhere)
        .zip(writer.beside(Beside::OnSignal));
    if SAVED.set(Mutex::new(Saved { writer, doc: None })).is_err() {
        return Ok(());
    }
    match (beside, KNOWN.get().and_then(|k| k.path.as_deref())) {
        (Some((failed, prepared)), Some(named)) => {
            let target = match Target::of(named)? {
                Target::Replace(path) => path,
                Target::Stream(path) => path,
            };
            crate::ffi::signals::rename_on_termination(&failed, &prepared, &target).map_err(
                |e| crate::error::Error::io("cannot install the handler of termination signals", e),
            )?;
            let _ = std::thread::Builder::new()
                .name("collbench-heartbeat".into())
                .spawn(heartbeat);
        }
        _ => watch_signals(),
    }
    Ok(())
}

/// Saves rank 0's document: its heartbeat now, written at once to a file (to a stream only when final),
/// with the twin a signal would put in place while the run goes on. When another rank has already marked
/// the file failed, the document takes that ending over instead of writing "running" on top of it.
pub fn save<D: HasLife + Serialize + Clone + Send + 'static>(doc: &mut D) -> Result<()> {
    doc.life_mut().heartbeat_unix_s = unix_now_s();
    let Some(saved) = SAVED.get() else {
        return Ok(());
    };
    take_over_ending_elsewhere(doc.life_mut());
    let mut s = lock(saved);
    s.doc = Some(Box::new(doc.clone()));
    write_saved(&mut s, true)?;
    // A rank that failed while this was being written may have had its mark covered by it: look again,
    // and put the failure back at once (not waiting for the disk: the launcher is about to stop us).
    if take_over_ending_elsewhere(doc.life_mut()) {
        s.doc = Some(Box::new(doc.clone()));
        write_saved(&mut s, false)?;
    }
    Ok(())
}

/// A running document takes over how another rank ended the run, when one has said so; true if it did.
fn take_over_ending_elsewhere(life: &mut RunLife) -> bool {
    if life.status != RunStatus::Running {
        return false;
    }
    match ended_elsewhere() {
        Some(ended) => {
            *life = RunLife {
                heartbeat_unix_s: life.heartbeat_unix_s,
                ..ended
            };
            true
        }
        None => false,
    }
}

/// Writes the saved document in place, with the twin a signal would put there while it runs; once it
/// says how the run ended, the files kept beside it go. `durable`: wait for the disk.
fn write_saved(s: &mut Saved, durable: bool) -> Result<()> {
    let Saved { writer, doc } = s;
    let Some(doc) = doc.as_ref() else {
        return Ok(());
    };
    let running = doc.life().status == RunStatus::Running;
    if running {
        writer.write_beside(Beside::OnSignal, &interrupted(doc.as_ref())?)?;
    } else {
        writer.remove_beside(Beside::OnSignal);
    }
    let text = doc.text()?;
    if durable {
        writer.write(&text, !running)?;
    } else {
        writer.write_before_kill(&text)?;
    }
    if !running {
        // This document says how the run ended, with more than another rank's mark had.
        writer.remove_beside(Beside::FailedElsewhere);
    }
    Ok(())
}

/// The document as a signal would leave it, as text.
fn interrupted(doc: &dyn Kept) -> Result<Vec<u8>> {
    let mut copy = doc.copy();
    mark_interrupted(copy.life_mut());
    copy.text()
}

/// What a signal says of the run.
fn mark_interrupted(life: &mut RunLife) {
    life.status = RunStatus::Interrupted;
    life.error = Some(INTERRUPTED.into());
}

/// Marks the run failed before this process ends the job. Rank 0 marks its own document; another rank
/// marks the file on disk when it can see rank 0's document there. Best effort: never fails, never
/// panics, and leaves a document that already says how the run ended as it is.
pub fn fail(error: &str, code: i32, rank: Option<usize>) {
    let failure = Failure { error, code, rank };
    if let Some(saved) = SAVED.get() {
        let mut s = lock(saved);
        let Saved { writer, doc } = &mut *s;
        if let Some(doc) = doc
            .as_mut()
            .filter(|d| d.life().status == RunStatus::Running)
        {
            // The first failure is the cause: one another rank marked stands.
            match ended_elsewhere() {
                Some(ended) => *doc.life_mut() = ended,
                None => doc.life_mut().fail(error, code, rank),
            }
            writer.remove_beside(Beside::OnSignal);
            if let Ok(text) = doc.text() {
                let _ = writer.write(&text, true);
            }
            writer.remove_beside(Beside::FailedElsewhere);
        }
        return;
    }
    if let Some(Known {
        path: Some(path),
        run_id,
        fail_on_disk,
        ..
    }) = KNOWN.get()
    {
        fail_on_disk(path, run_id, &failure);
    }
}

/// Another rank's share of `fail`: rank 0's document of type `D` on disk, when it is this run's and
/// still running, marked failed.
fn fail_on_disk<D: HasLife + Serialize + DeserializeOwned>(
    path: &Path,
    run_id: &str,
    failure: &Failure,
) {
    let Some(file) = regular_file(path) else {
        return;
    };
    let Ok(mut doc) = json::read_as::<D>(&file) else {
        return;
    };
    if doc.life().run_id != run_id || doc.life().status != RunStatus::Running {
        return;
    }
    doc.life_mut()
        .fail(failure.error, failure.code, failure.rank);
    if let (Ok(writer), Ok(text)) = (JsonWriter::new(path), json::to_text(&doc)) {
        // Its own file first: rank 0's handler renames it into place when the launcher stops it, and
        // rank 0's saves take it over.
        let _ = writer.write_beside(Beside::FailedElsewhere, &text);
        let _ = writer.write(&text, true);
    }
}

/// The file behind `path` when it is a regular file (not a stream).
fn regular_file(path: &Path) -> Option<PathBuf> {
    match Target::of(path) {
        Ok(Target::Replace(file)) => Some(file),
        _ => None,
    }
}

/// How another rank ended this run, when it has said so in its file beside the document.
fn ended_elsewhere() -> Option<RunLife> {
    let known = KNOWN.get()?;
    let failed = known.failed_elsewhere.as_deref()?;
    if !failed.exists() {
        return None;
    }
    json::read_as::<RunLife>(failed)
        .ok()
        .filter(|life| life.run_id == known.run_id && life.status != RunStatus::Running)
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
        if doc.life().status != RunStatus::Running {
            return;
        }
        doc.life_mut().heartbeat_unix_s = unix_now_s();
        // Another rank's failure, before or while this is written, is put in place instead.
        let mut ended = take_over_ending_elsewhere(doc.life_mut());
        if !ended {
            if let Ok(text) = doc.text() {
                let _ = writer.write(&text, false);
            }
            ended = take_over_ending_elsewhere(doc.life_mut());
        }
        if ended {
            let _ = write_saved(&mut s, false);
            return;
        }
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
                    if let Some(doc) = doc
                        .as_mut()
                        .filter(|d| d.life().status == RunStatus::Running)
                    {
                        let life = doc.life_mut();
                        mark_interrupted(life);
                        life.exit_code = Some(128 + signal);
                        life.heartbeat_unix_s = unix_now_s();
                        if let Ok(text) = doc.text() {
                            let _ = writer.write_before_kill(&text);
                        }
                    }
                }
                let _ = std::io::Write::flush(&mut std::io::stdout());
                signal_hook::low_level::exit(128 + signal);
            }
        });
}
