//! nccl-tests 2.19.6's remaining flags and variables under the real mpirun on the mpi backend: what each
//! does to the run (rows, columns, the check, the exit code), and the refusals of those the mpi backend
//! cannot honour. The GPU-only effects (-R, -x, -y, -M on a device) are checked through the engine's
//! recording double (src/engine.rs) and the real libnccl.so.2 (tests/gpu_libraries.rs).

mod common;
use common::*;

fn rows(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["rows"].as_array().expect("rows")
}

#[test]
fn hypercube_gathers_every_block_and_the_check_sees_a_corrupt_one() {
    let run = mpirun_json(4, "hypercube -b 1K -e 16K -n 2 -w 1 -c 2", &[]);
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let measured = rows(&doc);
    assert_eq!(measured.len(), 5);
    for row in measured {
        assert_eq!(row["collective"], "hypercube");
        assert_eq!(row["path"], "send/recv rounds");
        // nccl-tests' busbw: (n-1) blocks moved per rank over the time.
        assert_eq!(row["bus_factor"], 0.75);
        assert_eq!(row["out_of_place"]["wrong"], 0);
        assert_eq!(row["in_place"]["wrong"], 0);
    }
    // 16K on 4 ranks: blocks of 1024 floats; rank 1 corrupts 7 received elements in each of 2 checks.
    let bad = mpirun_json(
        4,
        "hypercube -b 16K -e 16K -n 1 -w 0 -c 2",
        &[("COLLBENCH_TEST_CORRUPT", "1:7")],
    );
    assert_eq!(bad.code(), Some(7), "{}", bad.stdout);
    assert_eq!(rows(&bad.doc())[0]["out_of_place"]["wrong"], 14);
}

/// A run that must be refused before anything is measured: exit 2, and stderr saying `words`.
fn refused(np: usize, args: &str, env: &[(&str, &str)], words: &[&str]) {
    let run = mpirun_json(np, args, env);
    assert_eq!(run.code(), Some(2), "{args}: {}{}", run.stdout, run.stderr);
    for w in words {
        assert!(
            run.stderr.contains(w) || run.stdout.contains(w),
            "{args}: '{w}' missing from {}{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn what_the_mpi_backend_or_collbench_cannot_do_is_refused_naming_it() {
    // GPU-only flags on host memory.
    for flag in ["-R 1", "-R 2", "-x 1", "-y 1", "-M 1"] {
        refused(
            2,
            &format!("all_reduce -b 1K -e 1K -n 1 {flag}"),
            &[],
            &[flag, "mpi backend", "--backend nccl"],
        );
    }
    // nccl-tests' device implementations need a CUDA compiler.
    refused(1, "all_reduce -n 1 -D 1", &[], &["-D", "CUDA compiler"]);
    refused(1, "all_reduce -n 1 -V 32", &[], &["-V", "-D"]);
    // -K without -I 1, -K beyond -n, -I with --samples; -G with -z 3.
    refused(1, "all_reduce -n 4 -K 1", &[], &["-K", "-I 1"]);
    refused(1, "all_reduce -n 4 -I 1 -K 4", &[], &["-K", "-n 4"]);
    refused(1, "all_reduce -n 4 -I 1 --samples 2", &[], &["--samples"]);
    refused(1, "all_reduce -n 4 -G 2 -z 3", &[], &["-G", "-z 3"]);
    refused(
        1,
        "all_reduce -n 1 -R 2 --alloc device",
        &[],
        &["-R 2", "ncclMemAlloc"],
    );
    // (mpirun_json always gives -J: without it, --json-format has nothing to shape.)
    let out = collbench()
        .args(["all_reduce", "-n", "1", "--json-format", "nccl-tests"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give -J FILE"));
    // MPI has no pre-multiplied sum, and hypercube needs a power of two.
    refused(
        2,
        "all_reduce -b 1K -e 1K -n 1 -o mulsum",
        &[],
        &["mulsum", "GPU backend"],
    );
    refused(3, "hypercube -b 1K -e 1K -n 1", &[], &["power-of-two"]);
    // Variables with values they cannot mean.
    refused(
        1,
        "all_reduce -n 1",
        &[("NCCL_TESTS_MIN_BW", "fast")],
        &["NCCL_TESTS_MIN_BW=fast"],
    );
    refused(
        1,
        "all_to_allv -n 1",
        &[("NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY", "yes")],
        &["NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY=yes"],
    );
}

#[test]
fn mulsum_beside_sum_is_left_out_with_a_note_on_mpi() {
    let run = mpirun_json(2, "all_reduce -b 1K -e 1K -n 1 -o sum,mulsum", &[]);
    run.assert_success();
    let doc = run.doc();
    assert_eq!(rows(&doc).len(), 1);
    assert!(
        doc["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("mulsum")),
        "{}",
        doc["notes"]
    );
}

#[test]
fn cputime_timestamps_and_per_iteration_columns() {
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 4K -n 6 -w 1 -C 1 -S 1 -I 1 -K 2",
        &[],
    );
    run.assert_success();
    for name in ["cputime", "i_min", "i_max", "i_p99", "i_cv%", "timestamp"] {
        assert!(run.stdout.contains(name), "{name} missing:\n{}", run.stdout);
    }
    let doc = run.doc();
    assert_valid(&doc);
    for row in rows(&doc) {
        for p in ["out_of_place", "in_place"] {
            let m = &row[p];
            let cpu = m["cpu_time_us"].as_f64().expect("cpu time");
            assert!(cpu > 0.0 && cpu <= m["time_us"].as_f64().unwrap() + 1e-9);
            // -I 1: all 6 iterations kept; -K 2: the statistics over the last 4.
            assert_eq!(m["iteration_times_us"].as_array().unwrap().len(), 6);
            assert_eq!(m["stats"]["samples"], 4);
        }
    }
    // Each table line ends with its timestamp, and the time column is the CPU time.
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1024 "))
        .unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    let cpu = rows(&doc)[0]["out_of_place"]["cpu_time_us"]
        .as_f64()
        .unwrap();
    // nccl-tests' precision: two decimals below 10 ms, one below 1 s (a loaded machine reaches 10 ms).
    let printed = match cpu {
        t if t < 10_000.0 => format!("{t:.2}"),
        t if t < 1_000_000.0 => format!("{t:.1}"),
        t => format!("{t:.0}"),
    };
    assert_eq!(cells[5], printed, "{line}");
    assert_eq!(cells[cells.len() - 2].len(), 10, "{line}");
}

#[test]
fn blocking_modes_and_misaligned_buffers_still_check_exactly() {
    for z in ["1", "2", "3"] {
        let run = mpirun_json(
            2,
            &format!("all_reduce,sendrecv -b 1K -e 4K -n 3 -c 1 -z {z}"),
            &[],
        );
        run.assert_success();
        assert!(measurements(&run.doc())
            .iter()
            .all(|(_, m)| m["wrong"] == 0));
    }
    // -u 3 on int8, float and double: every operation and check 3 elements in.
    let run = mpirun_json(
        2,
        "all_reduce,all_gather,broadcast -b 1K -e 4K -n 2 -c 1 -u 3 -d int8,float,double",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert!(measurements(&doc).iter().all(|(_, m)| m["wrong"] == 0));
    assert_eq!(doc["plan"]["requested"]["unalign"], 3);
}

#[test]
fn nccl_tests_min_bw_fails_below_nine_tenths_with_exit_7() {
    let high = mpirun_json(
        2,
        "all_reduce -b 1K -e 2K -n 2",
        &[("NCCL_TESTS_MIN_BW", "100000")],
    );
    assert_eq!(high.code(), Some(7), "{}", high.stdout);
    assert!(
        high.stdout.contains("FAILED (NCCL_TESTS_MIN_BW=100000"),
        "{}",
        high.stdout
    );
    let min_bw = &high.doc()["summary"]["min_bw"];
    assert_eq!(min_bw["passed"], false);
    assert_eq!(min_bw["threshold_gbps"], 90000.0);
    let low = mpirun_json(
        2,
        "all_reduce -b 1K -e 2K -n 2",
        &[("NCCL_TESTS_MIN_BW", "0")],
    );
    low.assert_success();
    assert!(
        low.stdout.contains("OK (NCCL_TESTS_MIN_BW=0"),
        "{}",
        low.stdout
    );
}

#[test]
fn alltoallv_print_summary_prints_each_rank_as_nccl_tests() {
    let run = mpirun_json(
        4,
        "all_to_allv -b 1K -e 1K -n 2",
        &[("NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY", "1")],
    );
    run.assert_success();
    let heads: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("# NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY: mode=generated nranks=4"))
        .collect();
    // The spread's matrix is not symmetric: MPI measures out of place only, one summary.
    assert_eq!(heads.len(), 1, "{}", run.stdout);
    assert!(heads[0].contains("spread=1.000"), "{}", heads[0]);
    let ranks: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("#   rank="))
        .collect();
    assert_eq!(ranks.len(), 4);
    // 1 KiB on 4 ranks: 1008 bytes each way for every rank (tests/all_to_allv.rs).
    assert!(ranks[2].starts_with("#   rank=2 send_bytes=1008 recv_bytes=1008 alg_bw="));
}

#[test]
fn parallel_init_is_accepted_and_said() {
    let run = mpirun_json(2, "all_reduce -b 1K -e 1K -n 1 -p 1", &[]);
    run.assert_success();
    assert_eq!(run.doc()["plan"]["requested"]["parallel_init"], true);
}
