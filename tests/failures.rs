//! Failures end the job promptly with a message and an exit code, and leave a valid JSON: usage errors
//! before anything runs, a rank that panics, exits or hangs in the middle of a sweep.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn usage_error(args: &[&str], expect_in_message: &str) {
    let out = collbench()
        .args(args)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expect_in_message),
        "{args:?}: '{expect_in_message}' not in: {stderr}"
    );
    // Nothing ran: no table was printed.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Out of bounds"));
}

#[test]
fn usage_errors_exit_2_naming_the_problem() {
    usage_error(&["all_reduce", "-b", "64M", "-e", "32K"], "-b/--minbytes");
    usage_error(&["no_such_collective"], "no_such_collective");
    usage_error(&["all_reduce", "-b", "12Q"], "12Q");
    usage_error(&["all_reduce", "-n", "0"], "-n/--iters");
    usage_error(&["all_reduce", "--no-such-flag"], "--no-such-flag");
    usage_error(&["all_reduce", "-d", "float128"], "float128");
    usage_error(&["all_reduce", "-o", "mean"], "mean");
    usage_error(&["all_reduce", "-T", "-5"], "-T/--timeout");
    usage_error(&[], "COLLECTIVE");
}

#[test]
fn usage_errors_known_only_to_the_backend_exit_2() {
    // Found by every rank after MPI started: said once, before any header or row, exit 2.
    for (args, message) in [
        // MPI cannot reduce half: with nothing else to run that is the user's to fix.
        (
            "all_reduce -d half --backend mpi",
            "MPI has no half reductions",
        ),
        // A root outside the job.
        ("broadcast -r 5 -b 1K -e 1K", "-r/--root 5"),
        // Graphs need a GPU backend.
        (
            "all_reduce -G 10 -b 1K -e 1K",
            "-G 10: the mpi backend cannot capture graphs",
        ),
    ] {
        let run = mpirun_json(3, args, &[]);
        assert_eq!(run.code(), Some(2), "{args}: {}", run.stderr);
        assert_eq!(
            run.stderr.matches(message).count(),
            1,
            "{args}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("Out of bounds"),
            "{args}: {}",
            run.stdout
        );
    }
}

#[test]
fn a_size_that_fits_nowhere_is_refused() {
    let out = mpirun(2, &["all_reduce", "-b", "1T", "-e", "1T"], &[])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("lower -b"));
}

/// How the document must say the run ended: its status, exit code and failing rank (None: any).
struct Ending {
    statuses: &'static [&'static str],
    exit_code: Option<i64>,
    failed_rank: Option<u64>,
}

fn dies_mid_sweep(
    switch: &str,
    expect_code: Option<i32>,
    expect_in_stderr: &str,
    extra: &str,
    ending: Ending,
) {
    let started = Instant::now();
    let run = mpirun_json(
        4,
        &format!("all_reduce -b 32K -e 1M -n 3 {extra}"),
        &[(switch, "2:3")],
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "{switch}: the job took {took:?}"
    );
    assert!(!run.out.status.success(), "{switch}: {}", run.stderr);
    if let Some(code) = expect_code {
        assert_eq!(run.code(), Some(code), "{switch}: {}", run.stderr);
    }
    assert!(
        run.stderr.contains(expect_in_stderr),
        "{switch}: '{expect_in_stderr}' not in {}",
        run.stderr
    );
    // The rows measured before the failure are on disk in a valid document that says how it ended.
    let doc = run.doc();
    assert_eq!(doc["rows"].as_array().unwrap().len(), 3, "{switch}");
    let status = doc["status"].as_str().unwrap();
    assert!(
        ending.statuses.contains(&status),
        "{switch}: status {status}: {doc:#}"
    );
    if let Some(code) = ending.exit_code {
        assert_eq!(doc["exit_code"].as_i64(), Some(code), "{switch}: {doc:#}");
    }
    if let Some(rank) = ending.failed_rank {
        assert_eq!(doc["failed_rank"].as_u64(), Some(rank), "{switch}: {doc:#}");
    }
    assert!(!doc["error"].as_str().unwrap_or("").is_empty(), "{switch}");
    assert!(doc["heartbeat_unix_s"].as_f64().unwrap() >= doc["started_unix_s"].as_f64().unwrap());
}

#[test]
fn a_rank_that_panics_ends_the_job() {
    dies_mid_sweep(
        "COLLBENCH_TEST_PANIC",
        Some(1),
        "internal error on rank 2",
        "",
        // Rank 2 marks the document before it aborts; rank 0, stopped by the launcher, keeps that.
        Ending {
            statuses: &["failed"],
            exit_code: Some(1),
            failed_rank: Some(2),
        },
    );
}

#[test]
fn a_rank_that_exits_ends_the_job() {
    // Rank 2 vanishes without a word; the launcher stops the others, and rank 0 says so.
    dies_mid_sweep(
        "COLLBENCH_TEST_EXIT",
        None,
        "rank 2 exits",
        "",
        Ending {
            statuses: &["interrupted"],
            exit_code: None,
            failed_rank: None,
        },
    );
}

#[test]
fn a_rank_that_hangs_is_caught_by_the_timeout() {
    dies_mid_sweep(
        "COLLBENCH_TEST_HANG",
        Some(4),
        "did not finish within 2 s",
        "-T 2",
        Ending {
            statuses: &["failed"],
            exit_code: Some(4),
            failed_rank: None,
        },
    );
}

#[test]
fn a_usage_error_under_mpirun_is_said_once_and_exits_2() {
    let out = mpirun(3, &["all_reduce", "-b", "12Q"], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("'12Q' is not a size").count(), 1, "{stderr}");
}

/// A rank whose MPI_Abort never returns (its daemon hung or cut off) still ends within 5 s of the
/// timeout, with the timeout's exit code, so mpirun sees it go and ends the job.
#[test]
fn a_rank_whose_abort_hangs_ends_itself() {
    let started = Instant::now();
    let out = mpirun(
        2,
        &["sendrecv", "-b", "1K", "-e", "1K", "-T", "2"],
        &[
            ("COLLBENCH_TEST_HANG", "1:0"),
            ("COLLBENCH_TEST_ABORT_HANGS", "1"),
        ],
    )
    .timeout(Duration::from_secs(60))
    .output()
    .expect("mpirun runs");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("MPI_Abort did not end this process within 5 s; exiting with code 4"),
        "{stderr}"
    );
    // 2 s to the timeout, 5 s of grace, and mpirun's start and end on a busy machine.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}
