//! What a run writes to its documents, and what a reader or a signal finds there meanwhile.
//!
//! The bytes are counted by strace, at the kernel: every write(2)/pwrite(2) of every process and thread
//! of the run to the document or to the hidden files beside it (its spare copy, temporary files, another
//! rank's failure mark), so the count cannot miss a writer the program forgot about, as a counter inside
//! the writer could. Rewriting the whole document after every row wrote 33 times its final size on a
//! 68-row sweep, and the factor grew with the rows; now each row is written into each of the two copies
//! once, and the total must stay under 4 times the final size for the run, pairs and workload documents.
//! Without strace (scripts/setup.sh --test installs it) these tests fail, saying so.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every byte the traced processes wrote, by the file they wrote it to.
fn bytes_by_file(trace_dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut by_file = BTreeMap::new();
    for entry in std::fs::read_dir(trace_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            // pwrite64(7</tmp/x/.run.json.next>, ""..., 1234, 0) = 1234, with "(deleted)" after the
            // path when the name the file was opened by has gone (renamed over, or a hard link left).
            let Some((call, result)) = line.rsplit_once(") = ") else {
                continue;
            };
            let Some(open) = call.find('<') else { continue };
            let Some(close) = call[open..].find('>') else {
                continue;
            };
            let Ok(n) = result
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse::<u64>()
            else {
                continue;
            };
            *by_file
                .entry(PathBuf::from(&call[open + 1..open + close]))
                .or_insert(0) += n;
        }
    }
    by_file
}

/// Runs `cmd` under strace and returns the bytes written to `doc` and to the files beside it named
/// after it (`.NAME.*`), with the run's output.
fn written_to(doc: &Path, cmd: &mut Command) -> (u64, std::process::Output) {
    let traces = tempfile::tempdir().unwrap();
    let mut traced = Command::new("strace");
    traced
        .args(["-f", "-ff", "-qq", "-y", "-s", "0"])
        .args(["-e", "trace=write,pwrite64,writev,pwritev,pwritev2"])
        .arg("-o")
        .arg(traces.path().join("t"))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => traced.env(k, v),
            None => traced.env_remove(k),
        };
    }
    let out = match traced.output() {
        Ok(out) => out,
        Err(e) => panic!("strace cannot run ({e}): install it (scripts/setup.sh --test does)"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("PTRACE_TRACEME") && !stderr.contains("Operation not permitted"),
        "strace cannot trace here: {stderr}"
    );
    let dir = std::fs::canonicalize(doc.parent().unwrap()).unwrap();
    let name = doc.file_name().unwrap().to_string_lossy().into_owned();
    let hidden = format!(".{name}.");
    let total = bytes_by_file(traces.path())
        .into_iter()
        .filter(|(path, _)| {
            path.parent() == Some(dir.as_path())
                && path.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n == name || n.starts_with(&hidden)
                })
        })
        .map(|(_, n)| n)
        .sum();
    (total, out)
}

fn mpirun_cmd(np: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .args(["--oversubscribe", "-np", &np.to_string()])
        .arg(env!("CARGO_BIN_EXE_collbench"))
        .args(args);
    cmd
}

/// The run's writes to its document against the document's final size.
fn assert_within_four_times(what: &str, np: usize, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("doc.json");
    let mut all: Vec<&str> = args.to_vec();
    let json_arg = json.to_string_lossy().into_owned();
    all.extend(["-J", &json_arg]);
    let (written, out) = written_to(&json, &mut mpirun_cmd(np, &all));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&json).unwrap().len();
    let doc = read_json(&json);
    eprintln!(
        "{what}: {written} bytes written for a document of {size} bytes ({:.2} times)",
        written as f64 / size as f64
    );
    assert!(
        written >= size,
        "{what}: the count missed the document itself"
    );
    assert!(
        written <= 4 * size,
        "{what}: {written} bytes written for a document of {size} bytes"
    );
    // Nothing is left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["doc.json"], "{what}");
    doc
}

#[test]
fn a_sweep_writes_its_document_about_twice_not_once_per_row() {
    // 4 collectives x 18 sizes: the 68-row sweep of the issue wrote 32.9 times its document.
    let doc = assert_within_four_times(
        "a 72-row sweep on 4 ranks",
        4,
        &[
            "all_reduce",
            "all_gather",
            "broadcast",
            "reduce_scatter",
            "-b",
            "8",
            "-e",
            "1M",
            "-f",
            "2",
            "-n",
            "2",
            "-w",
            "1",
            "--backend",
            "mpi",
            "--quiet",
            "--no-progress",
        ],
    );
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(72));
    assert_eq!(doc["status"], "complete");
}

#[test]
fn pairs_and_workload_write_theirs_within_four_times_too() {
    let doc = assert_within_four_times(
        "pairs on 4 ranks",
        4,
        &[
            "pairs", "--by", "rank", "-b", "64K", "--rounds", "2", "-n", "2",
        ],
    );
    assert_eq!(doc["samples"].as_array().map(Vec::len), Some(12));
    let doc = assert_within_four_times(
        "a workload on 2 ranks",
        2,
        &[
            "workload",
            "llama-3.1-8b",
            "--tp",
            "2",
            "--batch",
            "1,8,32",
            "-n",
            "1",
        ],
    );
    assert!(doc["messages"].as_array().unwrap().len() >= 3);
    assert_eq!(doc["status"], "complete");
}

/// `text` as a JSON document, or a failure saying `what` found instead.
fn whole(text: &[u8], what: &str) -> serde_json::Value {
    serde_json::from_slice(text).unwrap_or_else(|e| {
        panic!(
            "{what}: not a whole document ({e}):\n{}",
            String::from_utf8_lossy(text)
        )
    })
}

/// A run of many quick rows, one rank, writing `json`.
fn quick_rows(json: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_collbench"))
        .args(["all_reduce", "broadcast", "all_gather", "--backend", "mpi"])
        .args(["--quiet", "--no-progress", "-b", "8", "-e", "4M", "-f", "2"])
        .args(["-n", "3", "-w", "1", "-N", "3", "-J"])
        .arg(json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_reader_always_finds_a_whole_document_while_rows_are_added() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let mut child = quick_rows(&json);
    let (mut reads, mut most_rows) = (0, 0);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        let Ok(text) = std::fs::read(&json) else {
            continue;
        };
        let doc = whole(&text, &format!("read {reads}"));
        let rows = doc["rows"].as_array().map_or(0, Vec::len);
        assert!(
            rows >= most_rows,
            "rows went back from {most_rows} to {rows}"
        );
        most_rows = rows;
        reads += 1;
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(read_json(&json)["status"], "complete");
    // The reads saw the document grow, not just its first and last forms.
    assert!(
        reads > 20 && most_rows > 10,
        "{reads} reads, {most_rows} rows"
    );
}

#[test]
fn a_signal_or_a_kill_at_any_moment_leaves_a_whole_document() {
    let dir = tempfile::tempdir().unwrap();
    for (i, signal) in ["TERM", "INT", "KILL", "TERM", "KILL", "HUP", "TERM", "KILL"]
        .iter()
        .enumerate()
    {
        let json = dir.path().join(format!("run{i}.json"));
        let mut child = quick_rows(&json);
        // Once a few rows are on disk, at a moment that differs from one run to the next.
        let started = Instant::now();
        let mut rows_seen = 0;
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(&json).unwrap_or_default(),
            ) {
                rows_seen = doc["rows"].as_array().map_or(0, Vec::len);
                if rows_seen > 3 + 4 * i {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(1_300 * i as u64));
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        let doc = whole(&std::fs::read(&json).unwrap(), &format!("SIG{signal}"));
        let rows = doc["rows"].as_array().map_or(0, Vec::len);
        assert!(
            rows >= rows_seen,
            "SIG{signal}: {rows} rows, {rows_seen} seen before"
        );
        let expected = match (*signal, status.success()) {
            (_, true) => "complete",
            ("KILL", false) => "running",
            _ => "interrupted",
        };
        assert_eq!(doc["status"], expected, "SIG{signal} ({status})");
    }
}
