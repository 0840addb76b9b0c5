//! A results document's life on disk, whatever ends the run, for every command that writes one (run,
//! pairs, workload): rank 0 writes it when the run starts, refreshes its heartbeat while it runs, and it
//! is marked failed (error, exit code, rank) or interrupted (a signal) before the process goes, by
//! whichever rank or thread sees the end first.
//!
//! State is per process: the panic hook, the `-T` watchdog and the signal handler reach it without a
//! handle, since they run where no reporter can be passed. What is kept of rank 0's document is its
//! texts as the writer needs them (src/report/json.rs), not a copy of it: a save costs what it adds.
//!
//! A launcher may give a process only milliseconds between SIGTERM and SIGKILL (mpirun: 4 ms measured), so for a regular file the
//! "interrupted" ending is prepared at every save and a signal only writes it over the document's last
//! fields (`crate::ffi::signals`). A rank that fails leaves its "failed" ending in a file of its own
//! beside the document (`.FILE.failed`), which rank 0 never writes, then puts it over the document's last
//! fields: rank 0's handler writes that one in place of its own, so a save of rank 0's racing with the
//! failure cannot turn it into an interruption, and rank 0's next save takes the failure over.

use crate::error::Result;
use crate::report::document::{unix_now_s, RunLife, RunStatus, HEARTBEAT_S};
use crate::report::growing::Growing;
use crate::report::json::{self, JsonWriter, Target, When};
use crate::report::json_file;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::Duration;

/// Rank 0's writer, and the life its document had at the last save (None before the first).
struct Saved {
    writer: JsonWriter,
    life: Option<RunLife>,
}

/// What every rank of this process knows of the run's document: where it is and which run it is.
struct Known {
    path: Option<PathBuf>,
    run_id: String,
    /// Where a failing rank leaves its mark beside a regular file (None for a stream or no document).
    failed_elsewhere: Option<PathBuf>,
}

static KNOWN: OnceLock<Known> = OnceLock::new();
static SAVED: OnceLock<Mutex<Saved>> = OnceLock::new();

/// What a signal leaves in the document: the launcher or a person stopped the run.
const INTERRUPTED: &str = "interrupted by a signal (SIGINT, SIGTERM or SIGHUP): Ctrl-C, the launcher ending the job (after another rank failed: see its message), or a scheduler's limit";

/// The longest error a failing rank leaves beside the document, in bytes: the signal handler copies
/// the mark whole from a buffer of its own.
const MAX_ERROR: usize = 16 * 1024;

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
        failed_elsewhere: path
            .and_then(|p| JsonWriter::new(p).ok())
            .and_then(|w| w.failed_mark()),
    });
}

/// Rank 0: takes charge of the document. A regular file gets its heartbeat refreshed by a thread and
/// its prepared "interrupted" ending written by a signal; a stream (a pipe, /dev/stdout) gets the final
/// document from a thread that watches for the signals.
pub fn own(writer: Option<JsonWriter>) -> Result<()> {
    let Some(writer) = writer else {
        return Ok(());
    };
    // What an earlier run at the same path left: this run's ranks write theirs only once rank 0 has
    // written this run's document, after this.
    writer.clear_leftovers();
    let failed = writer.failed_mark();
    if SAVED.set(Mutex::new(Saved { writer, life: None })).is_err() {
        return Ok(());
    }
    match failed {
        Some(failed) => {
            crate::ffi::signals::install(&failed).map_err(|e| {
                crate::error::Error::io("cannot install the handler of termination signals", e)
            })?;
            let _ = std::thread::Builder::new()
                .name("collbench-heartbeat".into())
                .spawn(heartbeat);
        }
        None => watch_signals(),
    }
    Ok(())
}

/// Saves rank 0's document: its heartbeat now, what it added since the last save, and the ending a
/// signal would leave while the run goes on. When another rank has already marked the file failed, the
/// document takes that ending over instead of writing "running" on top of it.
pub fn save<D: Growing>(doc: &mut D) -> Result<()> {
    doc.life_mut().heartbeat_unix_s = unix_now_s();
    let Some(saved) = SAVED.get() else {
        return Ok(());
    };
    take_over_ending_elsewhere(doc.life_mut());
    let mut s = lock(saved);
    let on_signal = interrupted(doc.life());
    let when = match doc.life().status {
        RunStatus::Running => When::Soon,
        RunStatus::Complete => When::Final,
        RunStatus::Failed | RunStatus::Interrupted => When::Now,
    };
    s.writer.save(doc, on_signal, when, true)?;
    s.life = Some(doc.life().clone());
    // A rank that failed while this was being written may have had its mark covered by it: look again,
    // and put the failure back at once (not waiting for the disk: the launcher is about to stop us).
    if take_over_ending_elsewhere(doc.life_mut()) {
        s.writer.save(doc, None, When::Now, false)?;
        s.life = Some(doc.life().clone());
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

/// The life a signal would leave while `life` stands: None once the run has ended.
fn interrupted(life: &RunLife) -> Option<RunLife> {
    (life.status == RunStatus::Running).then(|| {
        let mut copy = life.clone();
        mark_interrupted(&mut copy);
        copy
    })
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
    if let Some(saved) = SAVED.get() {
        let mut s = lock(saved);
        let Saved { writer, life } = &mut *s;
        if let Some(life) = life.as_mut().filter(|l| l.status == RunStatus::Running) {
            // The first failure is the cause: one another rank marked stands.
            match ended_elsewhere() {
                Some(ended) => *life = ended,
                None => life.fail(error, code, rank),
            }
            let _ = writer.save_life(life, None, When::Now, true);
        }
        return;
    }
    if let Some(Known {
        path: Some(path),
        run_id,
        ..
    }) = KNOWN.get()
    {
        fail_on_disk(path, run_id, error, code, rank);
    }
}

/// Another rank's share of `fail`: rank 0's document on disk, when it is this run's and still running,
/// marked failed (`.FILE.failed` first, then its last fields).
fn fail_on_disk(path: &Path, run_id: &str, error: &str, code: i32, rank: Option<usize>) {
    let Ok(Target::Replace(file)) = Target::of(path) else {
        return;
    };
    let mut failure = RunLife::running(run_id);
    failure.fail(&cut_to(error, MAX_ERROR), code, rank);
    json_file::mark_failed(&file, run_id, &failure);
}

/// `text`, cut to at most `max` bytes at a character boundary, saying so.
fn cut_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [cut]", &text[..end])
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

/// Writes the saves that waited for the spare copy as soon as it may be written, and refreshes a running
/// document's heartbeat every `HEARTBEAT_S` seconds, unless another rank has marked it failed, which it
/// then takes over.
fn heartbeat() {
    const TICK: Duration = Duration::from_millis(100);
    let mut last_beat = std::time::Instant::now();
    loop {
        std::thread::sleep(TICK);
        let Some(saved) = SAVED.get() else { return };
        let mut s = lock(saved);
        let Saved { writer, life } = &mut *s;
        let Some(life) = life.as_mut() else { continue };
        if life.status != RunStatus::Running {
            return;
        }
        let due = writer.due().is_some_and(|d| d.is_zero());
        let beat = last_beat.elapsed().as_secs_f64() >= HEARTBEAT_S;
        if !due && !beat {
            continue;
        }
        // Another rank's failure, before or while this is written, is put in place instead.
        let mut ended = take_over_ending_elsewhere(life);
        if !ended {
            if beat {
                last_beat = std::time::Instant::now();
                life.heartbeat_unix_s = unix_now_s();
                let _ = writer.save_life(life, interrupted(life), When::Soon, false);
            } else {
                let _ = writer.flush();
            }
            ended = take_over_ending_elsewhere(life);
        }
        if ended {
            let _ = writer.save_life(life, None, When::Now, false);
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
                    let Saved { writer, life } = &mut *s;
                    if let Some(life) = life.as_mut().filter(|l| l.status == RunStatus::Running) {
                        mark_interrupted(life);
                        life.exit_code = Some(128 + signal);
                        life.heartbeat_unix_s = unix_now_s();
                        let _ = writer.save_life(life, None, When::Now, false);
                    }
                }
                let _ = std::io::Write::flush(&mut std::io::stdout());
                signal_hook::low_level::exit(128 + signal);
            }
        });
}
