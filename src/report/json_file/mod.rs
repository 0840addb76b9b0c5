//! A regular file that `-J` names, written so that a row costs what it adds and a reader finds a whole
//! document: two copies of the document take turns. The one in place is never written; the other
//! (hidden beside it, `.FILE.next`) gets what it lacks (the rows saved since it was in place, and the
//! document's last fields), then takes the place by rename(2), and the copy it replaces is written again
//! only once a reader who opened it has had time to read it whole (`reuse_after`): saves that come
//! sooner wait in memory and go out together.
//!
//! The head of the document (everything before its list) is written whole only when it changes, which is
//! before the first row; then both copies get the new one. On a file system without hard links (which the
//! turn-taking needs to keep the replaced copy) the one copy is written in place instead, as rows come.
//!
//! A signal's handler (`crate::ffi::signals`) writes over the copy in place the rows it lacks and the
//! run's ending; another rank that fails leaves its mark in `.FILE.failed`, then writes it over the last
//! fields of the copy in place (`mark_failed`), after which no copy is written in place again: the
//! document is replaced whole.

use super::document::{RunLife, RunStatus};
use super::growing::{self, Cut, Growing};
use crate::error::{Error, Result};
use crate::ffi::signals;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A hidden file beside the document, named after it.
pub fn beside(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    target.with_file_name(format!(".{name}.{suffix}"))
}

/// Where another rank leaves its failure: written once, never by rank 0.
pub fn failed_mark(target: &Path) -> PathBuf {
    beside(target, "failed")
}

/// How long a copy stays untouched once replaced: long enough to read it whole at 50 MB/s, from 50 ms
/// (a small document) to 5 s (hundreds of MB, a fleet's).
fn reuse_after(len: u64) -> Duration {
    Duration::from_secs_f64((len as f64 / 50e6).clamp(0.05, 5.0))
}

/// When a save may be put off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// As soon as the spare may be written; until then the save waits in memory for the next one, or
    /// for `flush`.
    Soon,
    /// Now, waiting for the spare if need be: the run has ended and the process is about to go.
    Final,
    /// Now, whoever may still be reading the spare: a failure, the launcher about to stop the job.
    Now,
}

/// The document's texts as the last save left them, less the items every copy already holds.
struct Texts {
    head: Vec<u8>,
    /// Bumped whenever the head changes: a copy with an older one is written whole.
    head_version: u64,
    /// Settled items so far.
    settled: usize,
    /// The texts of settled items some copy lacks, with their index.
    pending: VecDeque<(usize, Vec<u8>)>,
    cut: Cut,
    life: RunLife,
    /// The life a signal leaves (interrupted), while one would.
    on_signal: Option<RunLife>,
}

impl Texts {
    /// The items from `from` to the last settled one, with their separators, where every one is at hand.
    fn items_from(&self, from: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut next = from;
        for (i, text) in &self.pending {
            if *i < next {
                continue;
            }
            if *i != next {
                return None;
            }
            out.extend_from_slice(growing::item_separator(*i));
            out.extend_from_slice(text);
            next += 1;
        }
        (next >= self.settled).then_some(out)
    }
}

/// One copy of the document: its open file and what it holds.
struct Copy {
    file: File,
    head_version: u64,
    items: usize,
    /// Where its settled items end, and where its last fields (the life) begin.
    items_end: u64,
    life_at: u64,
    len: u64,
    /// When it stopped being the copy in place.
    replaced_at: Option<Instant>,
}

impl Copy {
    /// How long until it may be written.
    fn writable_in(&self) -> Duration {
        self.replaced_at.map_or(Duration::ZERO, |t| {
            reuse_after(self.len).saturating_sub(t.elapsed())
        })
    }
}

/// How the copies are kept.
enum Turns {
    /// The copy in place and the spare at `.FILE.next`.
    Two { shown: Copy, spare: Copy },
    /// One copy written in place (no hard links here).
    One(Copy),
    /// Another rank's failure was marked: the document is only ever replaced whole now.
    Ended(Copy),
}

pub struct JsonFile {
    target: PathBuf,
    spare_path: PathBuf,
    keep_path: PathBuf,
    failed_path: PathBuf,
    texts: Option<Texts>,
    turns: Option<Turns>,
    /// A save waits for the spare.
    deferred: bool,
    /// Bytes written to the document's files.
    written: u64,
}

type Io<T = ()> = std::result::Result<T, (&'static str, std::io::Error)>;

/// Gives the text of every settled item by index, for a copy written whole.
type EveryItem<'a> = Option<&'a dyn Fn(usize) -> Result<Vec<u8>>>;

fn other(e: Error) -> (&'static str, std::io::Error) {
    ("cannot write", std::io::Error::other(e.to_string()))
}

impl JsonFile {
    pub fn new(target: &Path) -> JsonFile {
        JsonFile {
            target: target.to_path_buf(),
            spare_path: beside(target, "next"),
            keep_path: beside(target, "prev"),
            failed_path: failed_mark(target),
            texts: None,
            turns: None,
            deferred: false,
            written: 0,
        }
    }

    /// Removes what an earlier run at this path left beside it.
    pub fn clear_leftovers(&self) {
        for path in [&self.spare_path, &self.keep_path, &self.failed_path] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Bytes written to the document's files so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Saves `doc`: what it added since the last save, and its last fields. `on_signal`: the life a signal
    /// would leave while this one stands (None once the run has ended). `durable`: wait for the disk.
    pub fn save<D: Growing>(
        &mut self,
        doc: &mut D,
        on_signal: Option<RunLife>,
        when: When,
        durable: bool,
    ) -> Result<()> {
        let cut = growing::cut(doc)?;
        let items = doc.items();
        let texts = self.texts.get_or_insert_with(|| Texts {
            head: Vec::new(),
            head_version: 0,
            settled: 0,
            pending: VecDeque::new(),
            cut: cut.clone(),
            life: doc.life().clone(),
            on_signal: None,
        });
        if cut.head != texts.head || cut.settled < texts.settled {
            texts.head = cut.head.clone();
            texts.head_version += 1;
            texts.settled = 0;
            texts.pending.clear();
        }
        for (i, item) in items
            .iter()
            .enumerate()
            .take(cut.settled)
            .skip(texts.settled)
        {
            texts.pending.push_back((i, growing::item_text(item)?));
        }
        texts.settled = cut.settled;
        texts.cut = cut;
        texts.life = doc.life().clone();
        texts.on_signal = on_signal;
        let every_item = |i: usize| growing::item_text(&items[i]);
        self.write(Some(&every_item), when, durable)
    }

    /// Saves a new life (heartbeat, failure) with what the last save had.
    pub fn save_life(
        &mut self,
        life: &RunLife,
        on_signal: Option<RunLife>,
        when: When,
        durable: bool,
    ) -> Result<()> {
        let Some(texts) = self.texts.as_mut() else {
            return Ok(());
        };
        texts.life = life.clone();
        texts.on_signal = on_signal;
        self.write(None, when, durable)
    }

    /// Writes a save that waited for the spare, if it may be written now.
    pub fn flush(&mut self) -> Result<()> {
        if self.deferred {
            self.write(None, When::Soon, true)?;
        }
        Ok(())
    }

    /// How long until a save that waits can be written; None when none waits.
    pub fn due(&self) -> Option<Duration> {
        match (&self.turns, self.deferred) {
            (Some(Turns::Two { spare, .. }), true) => Some(spare.writable_in()),
            _ => None,
        }
    }

    /// The run has ended and its document says how: the spare and another rank's mark go.
    pub fn finish(&mut self) {
        signals::publish(signals::Ending { files: Vec::new() });
        let _ = std::fs::remove_file(&self.spare_path);
        let _ = std::fs::remove_file(&self.failed_path);
    }

    fn write(&mut self, every_item: EveryItem, when: When, durable: bool) -> Result<()> {
        let ended_elsewhere = self.failed_path.exists();
        let running = self
            .texts
            .as_ref()
            .is_some_and(|t| t.life.status == RunStatus::Running);
        if ended_elsewhere && running && self.turns.is_some() {
            // Another rank's mark stands until the caller takes it over: "running" never covers it.
            self.deferred = false;
            return Ok(());
        }
        let result = match self.turns.take() {
            None => self.first(every_item, durable),
            Some(Turns::Ended(copy) | Turns::Two { shown: copy, .. } | Turns::One(copy))
                if ended_elsewhere =>
            {
                self.replace_whole(copy, every_item, durable)
            }
            Some(Turns::Ended(copy)) => self.replace_whole(copy, every_item, durable),
            Some(Turns::Two { shown, spare }) => {
                self.take_turns(shown, spare, every_item, when, durable)
            }
            Some(Turns::One(copy)) => self.in_place(copy, every_item, durable),
        };
        self.publish_ending(false);
        self.drop_pending_held_everywhere();
        result
            .map_err(|(what, e)| Error::io(format!("--json {}: {what}", self.target.display()), e))
    }

    /// The first save: the document in place, atomically, and its spare.
    fn first(&mut self, every_item: EveryItem, durable: bool) -> Io {
        let shown = self.new_file(&self.target.clone(), every_item, durable)?;
        self.turns = Some(
            match self.new_file(&self.spare_path.clone(), every_item, false) {
                Ok(spare) => Turns::Two { shown, spare },
                Err(_) => Turns::One(shown),
            },
        );
        Ok(())
    }

    /// Brings the spare up to date, puts it in place, and keeps the copy it replaces as the next spare.
    fn take_turns(
        &mut self,
        shown: Copy,
        mut spare: Copy,
        every_item: EveryItem,
        when: When,
        durable: bool,
    ) -> Io {
        let wait = spare.writable_in();
        if !wait.is_zero() {
            match when {
                When::Soon => {
                    self.deferred = true;
                    self.turns = Some(Turns::Two { shown, spare });
                    return Ok(());
                }
                When::Final => std::thread::sleep(wait),
                When::Now => {}
            }
        }
        self.deferred = false;
        // The last published ending names the copy in place only: the spare may change.
        signals::hold_if_stopping();
        let brought = self.bring_up(&mut spare, every_item, durable);
        self.turns = Some(Turns::Two { shown, spare });
        brought?;
        // Both copies are whole: a signal now finishes both, whichever is in place when it comes.
        self.publish_ending(true);
        signals::hold_if_stopping();
        let Some(Turns::Two { mut shown, spare }) = self.turns.take() else {
            unreachable!("set just above")
        };
        let _ = std::fs::remove_file(&self.keep_path);
        if std::fs::hard_link(&self.target, &self.keep_path).is_err() {
            // No hard links here: the spare, whole, takes the place and is from now on the one copy.
            let renamed = std::fs::rename(&self.spare_path, &self.target);
            let (kept, gone) = if renamed.is_ok() {
                (spare, shown)
            } else {
                (shown, spare)
            };
            self.turns = Some(Turns::One(kept));
            self.retire(gone);
            return renamed.map_err(|e| ("cannot replace the file", e));
        }
        if let Err(e) = std::fs::rename(&self.spare_path, &self.target) {
            let _ = std::fs::remove_file(&self.keep_path);
            self.turns = Some(Turns::Two { shown, spare });
            return Err(("cannot replace the file", e));
        }
        shown.replaced_at = Some(Instant::now());
        let kept = std::fs::rename(&self.keep_path, &self.spare_path);
        let head_version = self.texts.as_ref().map_or(0, |t| t.head_version);
        if kept.is_ok() && shown.head_version == head_version {
            self.turns = Some(Turns::Two {
                shown: spare,
                spare: shown,
            });
            return Ok(());
        }
        // The replaced copy holds an older head (or lost its name): a new spare, whole, takes its place,
        // and the old one is never written again, so whoever is reading it can finish.
        self.turns = Some(Turns::One(spare));
        self.retire(shown);
        let next = self.new_file(&self.spare_path.clone(), every_item, false);
        let Some(Turns::One(spare)) = self.turns.take() else {
            unreachable!("set just above")
        };
        self.turns = Some(match next {
            Ok(next) => Turns::Two {
                shown: spare,
                spare: next,
            },
            Err(_) => Turns::One(spare),
        });
        Ok(())
    }

    /// Closes a copy that is no longer kept, once the signal handler no longer names it.
    fn retire(&self, copy: Copy) {
        self.publish_ending(false);
        signals::hold_if_stopping();
        drop(copy);
    }

    /// The one copy, written where it stands (a file system without hard links).
    fn in_place(&mut self, mut copy: Copy, every_item: EveryItem, durable: bool) -> Io {
        // Not whole while it is written: a signal meanwhile leaves it as it is.
        signals::publish(signals::Ending { files: Vec::new() });
        signals::hold_if_stopping();
        let done = self.bring_up(&mut copy, every_item, durable);
        self.turns = Some(Turns::One(copy));
        done
    }

    /// Another rank marked the run failed and may be writing the copy in place: nothing is written in
    /// place again. With the items at hand the document is replaced whole; without (a heartbeat, a
    /// failure seen by a thread) its last fields are written over the copy in place, as that rank did.
    fn replace_whole(&mut self, copy: Copy, every_item: EveryItem, durable: bool) -> Io {
        self.deferred = false;
        let Some(every_item) = every_item else {
            // A signal meanwhile must not write the same copy differently.
            signals::publish(signals::Ending { files: Vec::new() });
            signals::hold_if_stopping();
            let region = self.region();
            let written = region.and_then(|text| {
                write_covering(&copy.file, copy.life_at, &text).map_err(|e| ("cannot write", e))
            });
            self.turns = Some(Turns::Ended(copy));
            self.written += written?;
            return Ok(());
        };
        self.turns = Some(Turns::Ended(copy));
        self.publish_ending(false);
        let new = self.new_file(&self.target.clone(), Some(every_item), durable)?;
        if let Some(Turns::Ended(old)) = self.turns.replace(Turns::Ended(new)) {
            self.retire(old);
        }
        let _ = std::fs::remove_file(&self.spare_path);
        Ok(())
    }

    /// The document's last fields, as the present life says.
    fn region(&self) -> Io<Vec<u8>> {
        let texts = self.texts.as_ref().expect("saved before");
        growing::life_region(&texts.life).map_err(other)
    }

    /// Writes what `copy` lacks: from the end of its items when it holds this head and every item it
    /// lacks is at hand, else from its start.
    fn bring_up(&mut self, copy: &mut Copy, every_item: EveryItem, durable: bool) -> Io {
        let texts = self.texts.as_ref().expect("saved before");
        let missing = (copy.head_version == texts.head_version && copy.items <= texts.settled)
            .then(|| texts.items_from(copy.items))
            .flatten();
        let (start, mut text) = match missing {
            Some(items) => (copy.items_end, items),
            None => {
                let mut text = texts.head.clone();
                for i in 0..texts.settled {
                    text.extend_from_slice(growing::item_separator(i));
                    match texts.pending.iter().find(|(j, _)| *j == i) {
                        Some((_, item)) => text.extend_from_slice(item),
                        None => {
                            let every_item = every_item.ok_or_else(|| {
                                other(Error::Internal("an item no longer at hand".into()))
                            })?;
                            text.extend_from_slice(&every_item(i).map_err(other)?);
                        }
                    }
                }
                (0, text)
            }
        };
        let items_end = start + text.len() as u64;
        let region_len = growing::life_region(&texts.life).map_err(other)?.len() as u64;
        text.extend_from_slice(&texts.cut.rest(&texts.life).map_err(other)?);
        let end = start + text.len() as u64;
        copy.file
            .write_all_at(&text, start)
            .map_err(|e| ("cannot write", e))?;
        copy.file.set_len(end).map_err(|e| ("cannot write", e))?;
        if durable {
            copy.file.sync_data().map_err(|e| ("cannot write", e))?;
        }
        self.written += text.len() as u64;
        copy.head_version = texts.head_version;
        copy.items = texts.settled;
        copy.items_end = items_end;
        copy.life_at = end - region_len;
        copy.len = end;
        Ok(())
    }

    /// A new copy at `path`, whole, put there by rename from a temporary file beside the document.
    fn new_file(&mut self, path: &Path, every_item: EveryItem, durable: bool) -> Io<Copy> {
        let tmp = beside(&self.target, &format!("{}.tmp", std::process::id()));
        let result = (|| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| ("cannot create the file", e))?;
            let mut copy = Copy {
                file,
                head_version: u64::MAX,
                items: 0,
                items_end: 0,
                life_at: 0,
                len: 0,
                replaced_at: None,
            };
            self.bring_up(&mut copy, every_item, durable)?;
            signals::hold_if_stopping();
            std::fs::rename(&tmp, path).map_err(|e| ("cannot replace the file", e))?;
            Ok(copy)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Tells the signal handler what to write where while the run goes: over the copy in place (and,
    /// with `both`, over the spare about to take its place) the rows it lacks, the fields after them and
    /// the ending, padded to the copy's end, as one write each.
    fn publish_ending(&self, both: bool) {
        let mut ending = signals::Ending { files: Vec::new() };
        if let Some((texts, life)) = self
            .texts
            .as_ref()
            .and_then(|t| t.on_signal.as_ref().map(|life| (t, life)))
        {
            let copies: Vec<&Copy> = match &self.turns {
                Some(Turns::Two { shown, spare }) if both => vec![shown, spare],
                Some(Turns::Two { shown, .. } | Turns::One(shown) | Turns::Ended(shown)) => {
                    vec![shown]
                }
                None => Vec::new(),
            };
            let rest = texts.cut.rest(life).ok();
            let region = growing::life_region(life).ok();
            if let (Some(rest), Some(region)) = (rest, region) {
                let between = &rest[..rest.len() - region.len()];
                for copy in copies {
                    if copy.head_version != texts.head_version {
                        continue;
                    }
                    let Some(mut text) = texts.items_from(copy.items) else {
                        continue;
                    };
                    text.extend_from_slice(between);
                    let before = text.len();
                    text.extend_from_slice(&region);
                    pad_to(&mut text, copy.len.saturating_sub(copy.items_end) as usize);
                    ending.files.push(signals::EndingFile {
                        fd: copy.file.as_raw_fd(),
                        at: copy.items_end,
                        text,
                        before,
                    });
                }
            }
        }
        signals::publish(ending);
    }

    /// Forgets the texts of items every copy with this head holds.
    fn drop_pending_held_everywhere(&mut self) {
        let Some(texts) = self.texts.as_mut() else {
            return;
        };
        let holds = |c: &Copy| {
            if c.head_version == texts.head_version {
                c.items
            } else {
                0
            }
        };
        let held = match &self.turns {
            Some(Turns::Two { shown, spare }) => holds(shown).min(holds(spare)),
            Some(Turns::One(c) | Turns::Ended(c)) => holds(c),
            None => 0,
        };
        while texts.pending.front().is_some_and(|(i, _)| *i < held) {
            texts.pending.pop_front();
        }
    }
}

/// Spaces after `text` (the last a newline) to `len` bytes, where what it replaces was longer: JSON lets
/// a document end with white space.
fn pad_to(text: &mut Vec<u8>, len: usize) {
    if text.len() < len {
        text.resize(len, b' ');
        text[len - 1] = b'\n';
    }
}

/// Writes `text` at `at`, with spaces to the file's present end, in one write.
fn write_covering(file: &File, at: u64, text: &[u8]) -> std::io::Result<u64> {
    let size = file.metadata()?.len();
    let mut out = text.to_vec();
    pad_to(&mut out, size.saturating_sub(at) as usize);
    file.write_all_at(&out, at)?;
    Ok(out.len() as u64)
}

/// Another rank's failure, put where rank 0's document shows it: first `.FILE.failed` (only the first
/// failing rank's: a later one finds it there and leaves it), then the last fields of the copy in place,
/// when that document is this run's and still running. Best effort: a document this rank cannot see or
/// read is left alone.
pub fn mark_failed(target: &Path, run_id: &str, failure: &RunLife) {
    let this_run = |life: &RunLife| life.run_id == run_id && life.status == RunStatus::Running;
    if !read_end(target).is_some_and(|(_, life)| this_run(&life)) {
        return;
    }
    let Ok(mark) = growing::life_object(failure) else {
        return;
    };
    let tmp = beside(target, &format!("failed.{}.tmp", std::process::id()));
    if mark.len() > signals::MAX_FAILED_MARK || !leave_first(&failed_mark(target), &tmp, &mark) {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(target)
    else {
        return;
    };
    if let Some((at, life)) = read_end_of(&file) {
        if this_run(&life) {
            let _ = write_covering(&file, at, &mark[1..]);
        }
    }
}

/// Writes `text` to `path` (through `tmp`) unless a file is there already; true if this call put it
/// there.
fn leave_first(path: &Path, tmp: &Path, text: &[u8]) -> bool {
    if std::fs::write(tmp, text).is_err() {
        return false;
    }
    let placed = match std::fs::hard_link(tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        // No hard links: put it there unless it is already (a race here only replaces one failure's
        // words by another's).
        Err(_) => !path.exists() && std::fs::rename(tmp, path).is_ok(),
    };
    let _ = std::fs::remove_file(tmp);
    placed
}

/// Where the document at `path` has its last fields and what they say.
pub fn read_end(path: &Path) -> Option<(u64, RunLife)> {
    read_end_of(&File::open(path).ok()?)
}

fn read_end_of(file: &File) -> Option<(u64, RunLife)> {
    const TAIL: u64 = 64 * 1024;
    let size = file.metadata().ok()?.len();
    let from = size.saturating_sub(TAIL);
    let mut end = Vec::new();
    let mut reader = file;
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(from)).ok()?;
    reader.take(TAIL).read_to_end(&mut end).ok()?;
    let at = growing::find_life_region(&end)?;
    let life = growing::read_life_region(&end[at..])?;
    Some((from + at as u64, life))
}

#[cfg(test)]
mod tests;
