//! Every outcome leaves a results document that says what happened, and `-J` writes whatever it is
//! given the way that kind of file wants: a regular file replaced atomically, a symbolic link followed,
//! a device, pipe or /dev/stdout written once at the end and never replaced.

mod common;
use common::*;
use std::os::unix::fs::FileTypeExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn solo(args: &[&str]) -> std::process::Output {
    collbench()
        .args(["--backend", "mpi", "--quiet", "--no-progress"])
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

/// One small all_reduce on one rank with its document at `json`.
fn small_run(json: &str) -> std::process::Output {
    solo(&[
        "all_reduce",
        "-b",
        "32K",
        "-e",
        "32K",
        "-n",
        "2",
        "-J",
        json,
    ])
}

#[test]
fn a_run_that_fails_before_its_first_row_leaves_a_failed_document() {
    // Nothing fits: the backend is up, no row is measured.
    let run = mpirun_json(2, "all_reduce -b 1T -e 1T", &[]);
    assert_eq!(run.code(), Some(5), "{}", run.stderr);
    let doc = run.doc();
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert_eq!(doc["exit_code"], 5);
    assert!(
        doc["error"].as_str().unwrap().contains("lower -b"),
        "{doc:#}"
    );
    assert_eq!(doc["rows"].as_array().unwrap().len(), 0);
    assert!(doc["heartbeat_unix_s"].as_f64().unwrap() > 0.0);
    assert!(!doc["run_id"].as_str().unwrap().is_empty());
}

#[test]
fn a_library_failure_before_the_backend_exists_leaves_a_failed_document_with_its_words() {
    // No GPU here: NCCL fails at communicator creation, before the backend exists.
    let run = mpirun_json(2, "all_reduce --backend nccl -b 32K -e 32K", &[]);
    assert_ne!(run.code(), Some(0), "{}", run.stderr);
    let doc = run.doc();
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert_eq!(
        doc["exit_code"].as_i64(),
        run.code().map(i64::from),
        "{doc:#}"
    );
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains("NCCL") || error.contains("libnccl"),
        "{error}"
    );
    assert_eq!(doc["backend"]["reason"], "not chosen yet");
    assert_eq!(doc["rows"].as_array().unwrap().len(), 0);
}

#[test]
fn a_complete_run_records_its_exit_code_and_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let out = solo(&[
        "all_reduce",
        "-b",
        "32K",
        "-e",
        "64K",
        "-n",
        "2",
        "-J",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let doc = read_json(&json);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["exit_code"], 0);
    assert!(doc["heartbeat_unix_s"].as_f64().unwrap() >= doc["started_unix_s"].as_f64().unwrap());
    // Nothing is left beside it: no temporary file, no prepared twin.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["run.json"]);
}

#[test]
fn ctrl_c_marks_the_document_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_collbench"))
        .args(["all_reduce", "--backend", "mpi", "--quiet", "--no-progress"])
        .args([
            "-b",
            "1M",
            "-e",
            "1G",
            "-n",
            "50",
            "-J",
            json.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Once the first row is on disk the run is in the middle of its sweep.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if std::fs::read_to_string(&json).is_ok_and(|t| t.contains("\"size_bytes\"")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::into_raw(status) >> 8,
        130
    );
    let doc = read_json(&json);
    assert_eq!(doc["status"], "interrupted", "{doc:#}");
    assert!(doc["error"].as_str().unwrap().contains("signal"));
    assert!(!doc["rows"].as_array().unwrap().is_empty());
}

#[test]
fn devices_keep_their_kind_and_a_full_one_is_a_write_error() {
    let out = small_run("/dev/null");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());

    let out = small_run("/dev/full");
    assert_eq!(out.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/dev/full"));
    assert!(std::fs::metadata("/dev/full")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn dev_stdout_streams_the_final_document_into_a_pipe() {
    let out = collbench()
        .args(["all_reduce", "--backend", "mpi", "--quiet", "--no-progress"])
        .args(["-b", "32K", "-e", "32K", "-n", "2", "-J", "/dev/stdout"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // The table comes first (--quiet keeps only the table), then exactly one document.
    let at = text.find("{\n").expect("a JSON document on stdout");
    let doc: serde_json::Value = serde_json::from_str(&text[at..]).unwrap();
    assert_eq!(doc["status"], "complete");
    assert_eq!(text.matches("\"schema_version\"").count(), 1);
}

#[test]
fn a_symbolic_link_is_followed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("results").join("real.json");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    std::fs::write(&target, "{}").unwrap();
    let link = dir.path().join("latest.json");
    std::os::unix::fs::symlink("results/real.json", &link).unwrap();
    let out = small_run(link.to_str().unwrap());
    assert!(out.status.success());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read_json(&target)["status"], "complete");

    // A dangling link names the file to create.
    std::fs::remove_file(&target).unwrap();
    let out = small_run(link.to_str().unwrap());
    assert!(out.status.success());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read_json(&target)["status"], "complete");
}

#[test]
fn a_fifo_reader_gets_the_document_and_the_fifo_stays() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("results.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read_to_string(reader_path).unwrap());
    let out = small_run(fifo.to_str().unwrap());
    assert!(out.status.success());
    let text = reader.join().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["status"], "complete");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn a_folder_or_a_missing_folder_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = solo(&["all_reduce", "-J", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a folder"));
    let missing = dir.path().join("no").join("run.json");
    let out = solo(&["all_reduce", "-J", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // The subcommands refuse it alike, on every rank, before MPI starts.
    for command in [vec!["pairs"], vec!["workload", "llama-3.1-8b"]] {
        let out = collbench()
            .args(&command)
            .args(["-J", dir.path().to_str().unwrap()])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is a folder"));
    }
}

/// Runs a subcommand under mpirun with its document at `json`.
fn subcommand_under_mpirun(
    np: usize,
    args: &str,
    json: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut all: Vec<&str> = args.split_whitespace().collect();
    all.extend(["-J", json.to_str().unwrap()]);
    mpirun(np, &all, env)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap()
}

#[test]
fn pairs_and_workload_documents_live_as_a_runs_does() {
    for (args, kind) in [
        ("pairs --by rank -b 64K --rounds 1 -n 1", "pairs"),
        (
            "workload llama-3.1-8b --tp 2 --batch 1 --prefill none -n 1",
            "workload",
        ),
    ] {
        // Behind a symbolic link, which stays one: the document is written where it points.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        let link = dir.path().join("latest.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        let out = subcommand_under_mpirun(2, args, &link, &[]);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{kind}"
        );
        let doc = read_json(&target);
        assert_eq!(doc["kind"], kind);
        assert_eq!(doc["status"], "complete");
        assert_eq!(doc["exit_code"], 0);
        assert!(
            doc["run_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{kind}"
        );
        assert!(
            doc["heartbeat_unix_s"].as_f64().unwrap()
                >= doc["started_unix_s"].as_f64().unwrap_or(0.0)
        );
        assert!(doc["failed_rank"].is_null());
        // No prepared twin is left beside a finished document.
        assert!(
            !dir.path().join(".latest.json.on-signal").exists()
                && !dir.path().join(".real.json.on-signal").exists()
        );
    }
}

#[test]
fn a_pairs_run_whose_rank_panics_is_marked_failed_with_its_rounds() {
    // Rank 2 panics before round 2 (of 3 on 4 ranks): the samples of the rounds gathered before stay,
    // and the document names the rank, whether rank 0 saved before or after rank 2 marked it.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("pairs.json");
    let out = subcommand_under_mpirun(
        4,
        "pairs --by rank -b 64K --rounds 1 -n 1",
        &json,
        &[("COLLBENCH_TEST_PANIC", "2:2")],
    );
    assert!(!out.status.success());
    let doc = read_json(&json);
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert_eq!(doc["failed_rank"], 2);
    assert_eq!(doc["exit_code"], 1);
    assert!(doc["error"].as_str().unwrap().contains("rank 2"), "{doc:#}");
    // Two pairs a round: round 0's at least, and round 1's when rank 0 saved first.
    let samples = doc["samples"].as_array().unwrap().len();
    assert!(samples == 2 || samples == 4, "{doc:#}");
}

#[test]
fn a_workload_run_cut_by_a_signal_is_marked_interrupted() {
    // The launcher's SIGTERM after a rank vanished: rank 0 puts the prepared twin in place.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("w.json");
    let out = subcommand_under_mpirun(
        2,
        "workload llama-3.1-8b --tp 2 --batch 1,8 --prefill none -n 1",
        &json,
        &[("COLLBENCH_TEST_EXIT", "1:1")],
    );
    assert!(!out.status.success());
    let doc = read_json(&json);
    assert_eq!(doc["status"], "interrupted", "{doc:#}");
    assert!(doc["error"].as_str().unwrap().contains("signal"));
    assert!(doc["messages"][0]["measurement"].is_object());
}

#[test]
fn pairs_and_workload_that_fail_before_their_backend_leave_a_failed_document() {
    // No GPU here: NCCL's backend fails before any round or message, on every rank. The document was
    // written before the backend opened, so the failure has one to mark, in the library's words.
    for (args, kind) in [
        (
            "pairs --backend nccl --by rank -b 64K --rounds 1 -n 1",
            "pairs",
        ),
        (
            "workload llama-3.1-8b --backend nccl --tp 2 --batch 1 --prefill none -n 1",
            "workload",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("early.json");
        let out = subcommand_under_mpirun(2, args, &json, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{kind}: {stderr}");
        let doc = read_json(&json);
        assert_eq!(doc["kind"], kind, "{doc:#}");
        assert_eq!(doc["status"], "failed", "{kind}: {doc:#}");
        assert_eq!(
            doc["exit_code"].as_i64(),
            out.status.code().map(i64::from),
            "{kind}: {doc:#}"
        );
        let error = doc["error"].as_str().unwrap();
        assert!(error.contains("NCCL"), "{kind}: {error}");
        assert_eq!(doc["backend"]["name"], "nccl", "{kind}");
        assert_eq!(doc["backend"]["reason"], "not chosen yet", "{kind}");
        assert!(!doc["run_id"].as_str().unwrap().is_empty());
    }
}

#[test]
fn every_document_starts_with_the_same_header() {
    // The sweep's, pairs' and workload's documents share one header: kind, schema version, versions of
    // collbench and of every library (MPI's included), command line, start, life, environment, ranks.
    let dir = tempfile::tempdir().unwrap();
    let mut headers = Vec::new();
    for (args, kind) in [
        ("all_reduce --backend mpi -b 32K -e 32K -n 1 --quiet", "run"),
        ("pairs --by rank -b 64K --rounds 1 -n 1", "pairs"),
        (
            "workload llama-3.1-8b --tp 2 --batch 1 --prefill none -n 1",
            "workload",
        ),
    ] {
        let json = dir.path().join(format!("{kind}.json"));
        let out = subcommand_under_mpirun(2, args, &json, &[]);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = read_json(&json);
        assert_eq!(doc["kind"], kind);
        let header: Vec<_> = [
            "schema_version",
            "collbench_version",
            "run_id",
            "status",
            "exit_code",
            "heartbeat_unix_s",
            "started_unix_s",
        ]
        .iter()
        .map(|f| {
            assert!(!doc[f].is_null(), "{kind} has no {f}: {doc:#}");
            doc[f].clone()
        })
        .collect();
        assert_eq!(doc["command_line"][1], args.split(' ').next().unwrap());
        assert!(doc["environment"].is_object(), "{kind}");
        let libraries = doc["backend"]["libraries"].as_array().unwrap();
        assert!(
            libraries.iter().any(|l| l["library"] == "MPI"),
            "{kind}: {libraries:?}"
        );
        assert_eq!(doc["ranks"].as_array().unwrap().len(), 2, "{kind}");
        headers.push((header[0].clone(), header[1].clone()));
    }
    assert!(headers.windows(2).all(|w| w[0] == w[1]), "{headers:?}");
}
