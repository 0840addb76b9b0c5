//! The -J file's tests: every save leaves a whole document, readers get a whole save, late saves go out together, heads reach both copies, another rank's failure and a shorter end.

use super::*;
use crate::collective::Collective;
use crate::report::document::{RunDocument, RunStatus};
use crate::report::testdata;

/// The document as serde_json writes and reads it (its float parsing is not exact, so a value
/// compared with a parsed file must have been through the same text).
fn expected(doc: &impl serde::Serialize) -> serde_json::Value {
    serde_json::from_slice(&serde_json::to_vec(doc).unwrap()).unwrap()
}

fn row() -> crate::report::document::Row {
    testdata::row(Collective::AllReduce, 1 << 20, 4, 100.0)
}

fn on_disk(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("a whole document")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn interrupted(doc: &RunDocument) -> Option<RunLife> {
    let mut life = doc.header.life.clone();
    life.status = RunStatus::Interrupted;
    Some(life)
}

/// A folder, the document's path in it, its writer and a running document of four ranks.
fn fresh() -> (tempfile::TempDir, PathBuf, JsonFile, RunDocument) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    let file = JsonFile::new(&path);
    (dir, path, file, testdata::running_document())
}

fn save(file: &mut JsonFile, doc: &mut RunDocument) {
    let on_signal = interrupted(doc);
    file.save(doc, on_signal, When::Now, false).unwrap();
}

#[test]
fn each_save_leaves_the_whole_document_and_writes_what_it_added() {
    let (dir, path, mut file, mut doc) = fresh();
    save(&mut file, &mut doc);
    assert_eq!(on_disk(&path), expected(&doc));
    let row_bytes = growing::item_text(&row()).unwrap().len() as u64;
    for n in 1..=20 {
        doc.rows.push(row());
        doc.header.life.heartbeat_unix_s += 1.0;
        let before = file.written();
        save(&mut file, &mut doc);
        assert_eq!(on_disk(&path), expected(&doc), "row {n}");
        let rest = growing::cut(&mut doc)
            .unwrap()
            .rest(&doc.header.life)
            .unwrap()
            .len() as u64;
        // The spare gets the rows of the last two saves and the document's end, nothing more.
        assert!(
            file.written() - before <= 2 * (row_bytes + 8) + rest,
            "row {n}: {} bytes",
            file.written() - before
        );
    }
    assert_eq!(names(dir.path()), [".run.json.next", "run.json"]);
    let finished = file.written();
    doc.header.life.complete(0);
    file.save(&mut doc, None, When::Final, true).unwrap();
    file.finish();
    assert!(file.written() - finished < 2 * (row_bytes + 2048));
    assert_eq!(on_disk(&path)["status"], "complete");
    assert_eq!(names(dir.path()), ["run.json"]);
}

#[test]
fn a_reader_of_the_copy_in_place_has_a_whole_save_to_read_it() {
    let (_dir, path, mut file, mut doc) = fresh();
    doc.rows.push(row());
    save(&mut file, &mut doc);
    save(&mut file, &mut doc);
    let opened = File::open(&path).unwrap();
    let seen = on_disk(&path);
    doc.rows.push(row());
    save(&mut file, &mut doc);
    let mut text = Vec::new();
    (&opened).read_to_end(&mut text).unwrap();
    let read: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(
        read, seen,
        "the copy a reader holds is left alone for a save"
    );
    assert_eq!(on_disk(&path)["rows"].as_array().unwrap().len(), 2);
}

#[test]
fn saves_that_come_too_soon_wait_for_the_spare_and_go_out_together() {
    let (_dir, path, mut file, mut doc) = fresh();
    save(&mut file, &mut doc);
    save(&mut file, &mut doc);
    // The copy just replaced may still be read: the next rows wait in memory.
    for _ in 0..3 {
        doc.rows.push(row());
        let on_signal = interrupted(&doc);
        file.save(&mut doc, on_signal, When::Soon, false).unwrap();
    }
    let due = file.due().expect("a save waits");
    assert!(due <= reuse_after(u64::MAX));
    assert_eq!(on_disk(&path)["rows"].as_array().unwrap().len(), 0);
    std::thread::sleep(due);
    file.flush().unwrap();
    assert_eq!(file.due(), None);
    assert_eq!(on_disk(&path), expected(&doc));
    // The end of the run does not wait for a later save: it waits for the spare.
    doc.rows.push(row());
    doc.header.life.complete(0);
    file.save(&mut doc, None, When::Final, false).unwrap();
    assert_eq!(on_disk(&path), expected(&doc));
}

#[test]
fn a_head_that_changes_reaches_both_copies() {
    let (_dir, path, mut file, mut doc) = fresh();
    for n in 0..6 {
        if n == 3 {
            doc.notes.push("a note that came late".into());
        }
        doc.rows.push(row());
        save(&mut file, &mut doc);
        assert_eq!(on_disk(&path), expected(&doc), "save {n}");
        // A heartbeat in between uses only what the copies lack.
        doc.header.life.heartbeat_unix_s += 1.0;
        file.save_life(&doc.header.life, interrupted(&doc), When::Now, false)
            .unwrap();
        assert_eq!(on_disk(&path), expected(&doc), "beat {n}");
    }
}

#[test]
fn another_ranks_failure_is_put_over_the_end_and_then_the_document_is_replaced_whole() {
    let (dir, path, mut file, mut doc) = fresh();
    doc.rows.push(row());
    save(&mut file, &mut doc);
    save(&mut file, &mut doc);
    let mut failure = RunLife::running(&doc.header.life.run_id);
    failure.fail("rank 3: NCCL error: unhandled system error", 3, Some(3));
    // Another run's document is not this rank's to mark.
    mark_failed(&path, "another run", &failure);
    assert_eq!(on_disk(&path)["status"], "running");
    assert!(!failed_mark(&path).exists());
    mark_failed(&path, &doc.header.life.run_id, &failure);
    let marked = on_disk(&path);
    assert_eq!(marked["status"], "failed");
    assert_eq!(marked["failed_rank"], 3);
    assert_eq!(marked["rows"].as_array().unwrap().len(), 1);
    assert!(failed_mark(&path).exists());
    // A second failure leaves the first one's mark.
    let mut second = failure.clone();
    second.fail("rank 5 too", 1, Some(5));
    mark_failed(&path, &doc.header.life.run_id, &second);
    assert_eq!(on_disk(&path)["failed_rank"], 3);
    // Rank 0 takes the failure over with a row more: the document is replaced whole.
    doc.rows.push(row());
    doc.header.life = failure;
    file.save(&mut doc, None, When::Now, false).unwrap();
    file.finish();
    assert_eq!(on_disk(&path), expected(&doc));
    assert_eq!(names(dir.path()), ["run.json"]);
}

#[test]
fn the_end_written_over_a_longer_one_leaves_valid_json() {
    let (_dir, path, mut file, mut doc) = fresh();
    doc.header.life.error = Some("x".repeat(500));
    save(&mut file, &mut doc);
    let (at, _) = read_end(&path).unwrap();
    let short = growing::life_region(&RunLife::running(&doc.header.life.run_id)).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    write_covering(&f, at, &short).unwrap();
    let v = on_disk(&path);
    assert!(v["error"].is_null());
    assert_eq!(v["rows"], serde_json::json!([]));
}
