//! End-to-end runs of the real binary under the real mpirun: every collective on 1 to 4 ranks, metrics
//! as nccl-tests defines them, the correctness check and its fault switch.

mod common;
use common::*;

/// The bus factor nccl-tests' doc/PERFORMANCE.md gives each collective, for n ranks.
type Factor = fn(f64) -> f64;

const FACTORS: [(&str, Factor); 9] = [
    ("all_reduce", |n| 2.0 * (n - 1.0) / n),
    ("all_gather", |n| (n - 1.0) / n),
    ("reduce_scatter", |n| (n - 1.0) / n),
    ("broadcast", |_| 1.0),
    ("reduce", |_| 1.0),
    ("all_to_all", |n| (n - 1.0) / n),
    ("sendrecv", |_| 1.0),
    ("gather", |n| (n - 1.0) / n),
    ("scatter", |n| (n - 1.0) / n),
];

fn run_all(np: usize) {
    let run = mpirun_json(np, "all -b 32K -e 256K -n 3 -w 1 -c 1", &[]);
    run.assert_success();
    assert!(
        run.stdout.contains("# Out of bounds values : 0 OK"),
        "{}",
        run.stdout
    );

    let doc = run.doc();
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["ranks"].as_array().unwrap().len(), np);
    let rows = doc["rows"].as_array().unwrap();
    // 9 collectives x 4 sizes (32K 64K 128K 256K).
    assert_eq!(rows.len(), 36, "np={np}");
    let n = np as f64;
    for (name, factor) in FACTORS {
        let of_collective: Vec<_> = rows.iter().filter(|r| r["collective"] == name).collect();
        assert_eq!(of_collective.len(), 4, "{name}");
        for row in of_collective {
            for placement in ["out_of_place", "in_place"] {
                let m = &row[placement];
                assert_eq!(m["wrong"], 0, "np={np} {name} {placement}");
                let (time, algbw, busbw) = (
                    m["time_us"].as_f64().unwrap(),
                    m["algbw_gbps"].as_f64().unwrap(),
                    m["busbw_gbps"].as_f64().unwrap(),
                );
                let size = row["size_bytes"].as_f64().unwrap();
                assert!(time > 0.0);
                assert!(
                    (algbw - size / (time * 1e3)).abs() <= 1e-9 * algbw.max(1.0),
                    "{name}: algbw = size / time"
                );
                if factor(n) == 0.0 {
                    assert_eq!(busbw, 0.0);
                } else {
                    assert!(
                        (busbw / algbw - factor(n)).abs() < 1e-9,
                        "{name} np={np}: busbw/algbw"
                    );
                }
                assert_eq!(m["rank_time_us"].as_array().unwrap().len(), np);
                assert_eq!(m["stats"]["samples"], 3);
            }
        }
    }
}

#[test]
fn every_collective_on_one_rank() {
    run_all(1);
}

#[test]
fn every_collective_on_two_ranks() {
    run_all(2);
}

#[test]
fn every_collective_on_three_ranks_catches_divisibility() {
    run_all(3);
}

#[test]
fn every_collective_on_four_ranks() {
    run_all(4);
}

#[test]
fn every_dtype_and_op_the_mpi_backend_can_reduce_is_exact() {
    let run = mpirun_json(
        3,
        "all_reduce,reduce_scatter,reduce -d all -o all -b 1K -e 64K -f 8 -n 1 -c 2",
        &[],
    );
    run.assert_success();
    // MPI cannot reduce half, bfloat16 or fp8, nor average: those are skipped with a note, not run.
    assert!(
        run.stdout.contains("skipped: MPI has no half reductions"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("skipped: MPI has no avg reduction"),
        "{}",
        run.stdout
    );
    let doc = run.doc();
    let ms = measurements(&doc);
    // 3 collectives x 8 types x 4 ops x 3 sizes x 2 placements.
    assert_eq!(ms.len(), 3 * 8 * 4 * 3 * 2);
    for (row, m) in ms {
        assert_eq!(m["wrong"], 0, "{row}");
    }
}

#[test]
fn data_movement_of_half_bfloat16_and_fp8_is_exact() {
    let run = mpirun_json(
        2,
        "all_gather,broadcast,all_to_all,sendrecv,gather,scatter -d half,bfloat16,f8e4m3,f8e5m2 -b 1K -e 4K -n 1 -r all",
        &[],
    );
    run.assert_success();
    assert!(run.stdout.contains("# Out of bounds values : 0 OK"));
}

#[test]
fn the_fault_switch_is_caught_exactly() {
    let run = mpirun_json(
        4,
        "all_reduce,all_gather -b 64K -e 128K -n 2",
        &[("COLLBENCH_TEST_CORRUPT", "1:13")],
    );
    assert_eq!(run.code(), Some(7), "a failed check exits 7");
    assert!(run.stdout.contains("FAILED"), "{}", run.stdout);
    let doc = run.doc();
    for (row, m) in measurements(&doc) {
        assert_eq!(m["wrong"], 13, "{row}");
    }
    assert_eq!(doc["summary"]["wrong_total"], 13 * 2 * 2 * 2);
    assert_eq!(doc["summary"]["check_passed"], false);
}

#[test]
fn the_check_can_be_turned_off() {
    let run = mpirun_json(
        2,
        "sendrecv -b 1M -e 1M -c 0",
        &[("COLLBENCH_TEST_CORRUPT", "1:13")],
    );
    run.assert_success();
    for (_, m) in measurements(&run.doc()) {
        assert!(m["wrong"].is_null());
    }
}

#[test]
fn every_root_is_run_with_r_all() {
    let run = mpirun_json(3, "broadcast,reduce,gather,scatter -b 4K -e 4K -r all", &[]);
    run.assert_success();
    let roots: Vec<u64> = run.doc()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["root"].as_u64().unwrap())
        .collect();
    assert_eq!(roots, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
}

#[test]
fn counts_beyond_one_mpi_call_are_split_or_widened_exactly() {
    // COLLBENCH_TEST_MPI_MAX_COUNT lowers MPI's int limit to 1000 elements, so 64K-256K of floats take the
    // paths that counts beyond 2^31 take: pieces for element-wise collectives, 16-byte units for the rest.
    let cap = [("COLLBENCH_TEST_MPI_MAX_COUNT", "1000")];
    let run = mpirun_json(
        3,
        "all_reduce,all_gather,broadcast,reduce,all_to_all,sendrecv,gather,scatter -b 64K -e 256K -n 2 -c 2",
        &cap,
    );
    run.assert_success();
    assert!(
        run.stdout.contains("# Out of bounds values : 0 OK"),
        "{}",
        run.stdout
    );
    // reduce_scatter cannot be split: it says so instead of running wrong.
    let run = mpirun_json(3, "reduce_scatter -b 64K -e 64K", &cap);
    assert_eq!(run.code(), Some(5));
    assert!(run.stderr.contains("lower -e"), "{}", run.stderr);
}

#[test]
fn rotating_offsets_stay_inside_the_buffers() {
    // -b 1K with buffers sized for 64K: timed iterations walk through the buffers (a region outside them
    // is refused as an internal error) and the check still passes.
    let run = mpirun_json(2, "all -b 1K -e 64K -f 64 -n 70", &[]);
    run.assert_success();
    for (row, m) in measurements(&run.doc()) {
        assert_eq!(m["wrong"], 0, "{row}");
    }
}

#[test]
fn mpi_checks_in_place_all_to_all_and_sendrecv_which_it_defines() {
    // NCCL leaves these in-place forms undefined and collbench does not check them there; MPI defines
    // them (MPI_IN_PLACE, MPI_Sendrecv_replace), so here a corrupted in-place result must be caught.
    let run = mpirun_json(
        2,
        "all_to_all,sendrecv -b 64K -e 64K -n 2",
        &[("COLLBENCH_TEST_CORRUPT", "1:5")],
    );
    assert_eq!(run.code(), Some(7), "{}", run.stderr);
    assert!(
        !run.stdout.contains("timed but not checked"),
        "{}",
        run.stdout
    );
    let doc = run.doc();
    for row in doc["rows"].as_array().unwrap() {
        assert_eq!(row["in_place"]["wrong"], 5, "{row}");
        assert!(row["in_place"]["check_skipped"].is_null(), "{row}");
        assert_eq!(row["out_of_place"]["wrong"], 5, "{row}");
    }
}

/// `collbench pairs` checks the peer exchange exactly: a rank must receive its peer's data, not the
/// ring's; a corrupting rank spoils exactly the pairs it is in, and the run exits 7.
#[test]
fn the_pair_exchange_is_checked_against_the_peer() {
    let validator = schema_validator("pairs");
    let pairs = "pairs --by rank --backend mpi -b 64K --rounds 1 -n 1";
    let quiet = mpirun_json(4, pairs, &[]);
    quiet.assert_success();
    let doc = quiet.doc();
    assert!(validator.is_valid(&doc), "{doc}");
    assert_eq!(doc["check_iterations"], 1);
    assert_eq!(doc["wrong_total"], 0, "{}", quiet.stdout);
    assert!(
        quiet.stdout.contains("# Wrong elements       : 0"),
        "{}",
        quiet.stdout
    );

    let spoiled = mpirun_json(4, pairs, &[("COLLBENCH_TEST_CORRUPT", "1:13")]);
    assert_eq!(spoiled.code(), Some(7), "{}", spoiled.stdout);
    let doc = spoiled.doc();
    let samples = doc["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 6);
    for s in samples {
        let with_rank_1 = s["a"] == 1 || s["b"] == 1;
        assert_eq!(s["wrong"], if with_rank_1 { 13 } else { 0 }, "{s}");
    }
    assert_eq!(doc["wrong_total"], 39);
    assert_eq!(doc["exit_code"], 7);
    assert!(
        spoiled.stdout.contains("FAILED (exit code 7)"),
        "{}",
        spoiled.stdout
    );

    let unchecked = mpirun_json(
        4,
        &format!("{pairs} -c 0"),
        &[("COLLBENCH_TEST_CORRUPT", "1:13")],
    );
    unchecked.assert_success();
    assert!(unchecked.doc()["wrong_total"].is_null());
}
