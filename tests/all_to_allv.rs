//! all_to_allv under the real mpirun on the mpi backend: per-peer bytes from nccl-tests' spread formula
//! and from a --matrix file, each rank's totals against hand-computed ones, the exact check (every
//! receive segment against its sender's pattern), in place where MPI defines it, and usage errors.

mod common;
use common::*;
use serde_json::Value;

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn rows(doc: &Value) -> &Vec<Value> {
    doc["rows"].as_array().expect("rows")
}

/// The first row of a run's results document.
fn first_row(run: &Run) -> Value {
    rows(&run.doc())[0].clone()
}

/// Writes `text` as a matrix file in the run's folder and returns `--matrix PATH`.
fn matrix_arg(text: &'static str) -> impl Fn(&std::path::Path) -> Vec<String> {
    move |dir| {
        let path = dir.join("matrix.txt");
        std::fs::write(&path, text).unwrap();
        vec!["--matrix".into(), path.to_string_lossy().into_owned()]
    }
}

#[test]
fn the_default_spread_moves_the_hand_computed_bytes_and_checks_exactly() {
    // T = 1 KiB on 4 ranks: d = 1, 2, 3 get 160, 336, 512 bytes (1024 d / 6, down to 16 B): 1008 each.
    let run = mpirun_json(4, "alltoallv -b 1K -e 1K -n 3 -w 1", &[]);
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let row = &rows(&doc)[0];
    assert_eq!(row["collective"], "all_to_allv");
    assert_eq!(row["size_bytes"], 1008);
    assert_eq!(row["count"], 252);
    assert_eq!(row["bus_factor"], 0.75);
    let t = &row["traffic"];
    assert_eq!(t["source"], "spread 1");
    assert_eq!(u64s(&t["rank_sent_bytes"]), [1008; 4]);
    assert_eq!(u64s(&t["rank_received_bytes"]), [1008; 4]);
    assert_eq!(t["imbalance"], 1.0);
    assert_eq!(row["out_of_place"]["wrong"], 0);
    // The spread matrix is not symmetric, and MPI_IN_PLACE sends what a rank receives: no in-place row.
    assert!(row["in_place"].is_null());
    assert!(run.stdout.contains("symmetric"), "{}", run.stdout);
}

#[test]
fn no_spread_is_an_even_exchange() {
    let run = mpirun_json(
        4,
        "all_to_allv -b 4K -e 4K -n 2 -w 1",
        &[("NCCL_TESTS_ALLTOALLV_SPREAD", "0")],
    );
    run.assert_success();
    let row = &first_row(&run);
    assert_eq!(row["traffic"]["source"], "spread 0");
    assert_eq!(row["size_bytes"], 4096);
    // Every pair exchanges 1 KiB both ways: symmetric, so MPI's in-place form is measured and checked.
    assert_eq!(row["in_place"]["wrong"], 0);
    assert_eq!(row["out_of_place"]["wrong"], 0);
}

#[test]
fn a_matrix_file_moves_its_bytes_and_the_busiest_rank_sets_the_size() {
    // Rank 0 sends 64 + 128 = 192 and receives 64 + 16 = 80; rank 1 sends 96, receives 128; rank 2
    // sends 48, receives 144; rank 3 sends 64, receives 48. Busiest: rank 0's 192 bytes.
    let run = mpirun_json_with(
        4,
        "all_to_allv -d int32 -n 2 -w 1 -c 2",
        &[],
        matrix_arg("# bytes i->j\n0 64 128 0\n64 0 0 32\n16 16 0 16\n0 48 16 0\n"),
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let rows = rows(&doc);
    assert_eq!(rows.len(), 1, "a matrix is one size");
    let row = &rows[0];
    assert_eq!(row["size_bytes"], 192);
    assert_eq!(row["count"], 48);
    let t = &row["traffic"];
    assert!(t["source"].as_str().unwrap().starts_with("matrix "));
    assert_eq!(u64s(&t["rank_sent_bytes"]), [192, 96, 48, 64]);
    assert_eq!(u64s(&t["rank_received_bytes"]), [80, 128, 144, 48]);
    // moved: 192, 128, 144, 64 -> mean 132
    assert!((t["imbalance"].as_f64().unwrap() - 192.0 / 132.0).abs() < 1e-9);
    assert_eq!(row["out_of_place"]["wrong"], 0);
    let algbw = row["out_of_place"]["algbw_gbps"].as_f64().unwrap();
    let time = row["out_of_place"]["time_us"].as_f64().unwrap();
    assert!((algbw - 192.0 / time / 1e3).abs() < 1e-9 * algbw.max(1.0));
}

#[test]
fn a_symmetric_matrix_is_checked_in_place_and_beyond_mpis_int_in_16_byte_units() {
    // With MPI's largest count lowered to 8, the 64-element pieces move as 16-byte units.
    let run = mpirun_json_with(
        4,
        "all_to_allv -d float -n 2 -w 1",
        &[("COLLBENCH_TEST_MPI_MAX_COUNT", "8")],
        matrix_arg("0 256 32 0\n256 16 0 64\n32 0 0 512\n0 64 512 48\n"),
    );
    run.assert_success();
    let row = &first_row(&run);
    assert_eq!(row["out_of_place"]["wrong"], 0);
    assert_eq!(row["in_place"]["wrong"], 0);
    assert_eq!(
        u64s(&row["traffic"]["rank_sent_bytes"]),
        [288, 336, 544, 624]
    );
}

#[test]
fn a_corrupt_rank_is_counted_exactly() {
    // Rank 2 receives 128 + 16 = 144 bytes = 36 floats; 5 of them corrupted in each of 2 checks.
    let run = mpirun_json_with(
        4,
        "all_to_allv -d float -n 1 -w 1 -c 2",
        &[("COLLBENCH_TEST_CORRUPT", "2:5")],
        matrix_arg("0 64 128 0\n64 0 0 32\n16 16 0 16\n0 48 16 0\n"),
    );
    assert_eq!(run.code(), Some(7), "{}", run.stderr);
    let row = &first_row(&run);
    assert_eq!(row["out_of_place"]["wrong"], 10);
}

#[test]
fn a_spread_row_under_groups_is_each_groups_own_matrix() {
    // Two groups of two: with n = 2, d = 1 carries all of T, so each rank sends its peer 1 KiB both ways.
    let run = mpirun_json(4, "all_to_allv -b 1K -e 1K -n 2 -w 1 --groups 2", &[]);
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let row = &rows(&doc)[0];
    assert_eq!(row["ranks"], 2);
    assert_eq!(row["size_bytes"], 1024);
    assert_eq!(u64s(&row["traffic"]["rank_sent_bytes"]), [1024, 1024]);
    for placement in ["out_of_place", "in_place"] {
        for g in row[placement]["groups"].as_array().unwrap() {
            assert_eq!(g["wrong"], 0, "{placement}");
        }
    }
}

#[test]
fn a_matrix_that_does_not_fit_is_a_usage_error() {
    let wrong_size = mpirun_json_with(4, "all_to_allv -n 1", &[], matrix_arg("0 16\n16 0\n"));
    assert_eq!(wrong_size.code(), Some(2), "{}", wrong_size.stderr);
    let said = format!("{}{}", wrong_size.stdout, wrong_size.stderr);
    assert!(said.contains("--matrix") && said.contains("4x4"), "{said}");

    let misaligned = mpirun_json_with(
        2,
        "all_to_allv -d double -n 1",
        &[],
        matrix_arg("0 12\n16 0\n"),
    );
    assert_eq!(misaligned.code(), Some(2));
    let said = format!("{}{}", misaligned.stdout, misaligned.stderr);
    assert!(said.contains("12 bytes from rank 0 to rank 1"), "{said}");

    let other = collbench()
        .args(["all_reduce", "--matrix", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2));
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(said.contains("--matrix"), "{said}");
}

#[test]
fn moe_dispatch_and_combine_rows_with_hand_computed_bytes() {
    // 4 ranks, 8 experts (2 each), 8 tokens x top-2 = 16 choices per rank, a token 8 x 2 = 16 bytes.
    // Uniform: 2 choices per expert, 4 per rank: every rank sends every rank 64 bytes.
    let spec = "--moe tokens=8,hidden=8,topk=2,experts=8";
    let run = mpirun_json(4, &format!("all_to_allv {spec} -n 2 -w 1"), &[]);
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let uniform = rows(&doc);
    let phases: Vec<&str> = uniform
        .iter()
        .map(|r| r["traffic"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["dispatch", "combine"]);
    for row in uniform {
        assert_eq!(row["dtype"], "bfloat16");
        assert_eq!(row["size_bytes"], 256);
        let t = &row["traffic"];
        assert_eq!(u64s(&t["rank_sent_bytes"]), [256; 4]);
        assert_eq!(u64s(&t["rank_received_bytes"]), [256; 4]);
        assert_eq!(t["imbalance"], 1.0);
        // Balanced and symmetric: MPI's in-place form is measured and checked too.
        assert_eq!(row["out_of_place"]["wrong"], 0);
        assert_eq!(row["in_place"]["wrong"], 0);
    }
    assert!(
        run.stdout.contains("dispatch, moe tokens=8"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("imbalance 1.000"), "{}", run.stdout);

    // skew=5: rank 0's two experts weigh 5, the six others 1 (of 16): 5, 5, 1, 1, 1, 1, 1, 1 choices.
    // Every rank sends rank 0 10 x 16 = 160 bytes and each other rank 32: rank 0 receives 640, the
    // others 128; all send 256. Moved: 640, 256, 256, 256 (mean 352): imbalance 640 / 352.
    let run = mpirun_json(4, &format!("all_to_allv {spec},skew=5 -n 2 -w 1"), &[]);
    run.assert_success();
    let doc = run.doc();
    let skewed = rows(&doc);
    let (dispatch, combine) = (&skewed[0]["traffic"], &skewed[1]["traffic"]);
    assert_eq!(u64s(&dispatch["rank_sent_bytes"]), [256; 4]);
    assert_eq!(u64s(&dispatch["rank_received_bytes"]), [640, 128, 128, 128]);
    assert_eq!(u64s(&combine["rank_sent_bytes"]), [640, 128, 128, 128]);
    assert_eq!(u64s(&combine["rank_received_bytes"]), [256; 4]);
    for t in [dispatch, combine] {
        assert!((t["imbalance"].as_f64().unwrap() - 640.0 / 352.0).abs() < 1e-9);
    }
    for row in skewed {
        assert_eq!(row["size_bytes"], 640);
        assert_eq!(row["out_of_place"]["wrong"], 0);
    }
}

#[test]
fn moe_specs_that_do_not_fit_are_usage_errors() {
    let uneven = mpirun_json(
        4,
        "all_to_allv --moe tokens=8,hidden=8,topk=2,experts=6 -n 1",
        &[],
    );
    assert_eq!(uneven.code(), Some(2));
    let said = format!("{}{}", uneven.stdout, uneven.stderr);
    assert!(
        said.contains("--moe") && said.contains("experts=6"),
        "{said}"
    );
    let both = collbench()
        .args([
            "all_to_allv",
            "--matrix",
            "m.txt",
            "--moe",
            "tokens=1,hidden=1,topk=1,experts=1",
        ])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("choose one"));
}

#[test]
fn rccl_tests_counts_compare_with_its_alltoallv_perf_and_check_in_place() {
    // rccl-tests' counts for 4 KiB of float on 4 ranks: p = 256, chunk = 128 elements; rank 0 sends
    // (k = 0 with the rest, 1, 2, 3 chunks) 256, 128, 256, 384 elements. Symmetric, so MPI's in-place
    // form is measured and checked too.
    let run = mpirun_json(
        4,
        "all_to_allv -b 4K -e 4K -n 2 -w 1 --spread rccl-tests",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let row = &rows(&doc)[0];
    assert_eq!(row["traffic"]["source"], "spread rccl-tests");
    assert_eq!(row["size_bytes"], 4096);
    assert_eq!(u64s(&row["traffic"]["rank_sent_bytes"]), [4096; 4]);
    assert_eq!(row["out_of_place"]["wrong"], 0);
    assert_eq!(row["in_place"]["wrong"], 0);

    let nccl_factor = mpirun_json(2, "all_to_allv -b 1K -e 1K -n 1 --spread 0", &[]);
    nccl_factor.assert_success();
    assert_eq!(first_row(&nccl_factor)["traffic"]["source"], "spread 0");
}

#[test]
fn a_spread_that_cannot_apply_is_a_usage_error() {
    for (args, words) in [
        (
            vec!["all_to_allv", "--spread", "2"],
            "--spread 2: give nccl-tests' factor from 0 to 1",
        ),
        (
            vec!["all_reduce", "--spread", "rccl-tests"],
            "--spread shapes all_to_allv",
        ),
        (
            vec!["all_to_allv", "--spread", "0.5", "--matrix", "m.txt"],
            "--spread and --matrix",
        ),
    ] {
        let out = collbench().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(words), "{args:?}: {said}");
    }
}

#[test]
fn nccl_tests_matrix_variables_read_scale_round_and_take_the_leading_block() {
    // A 5x5 file on 4 ranks: nccl-tests uses its first 4 rows and columns, times the scale (x2),
    // rounded down to 16 bytes: rank 0 sends 2 x (32 + 64.5) = 193 -> 64 + 128 = 192.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traffic.txt");
    std::fs::write(
        &path,
        "0 32 64.5 0 999\n32 0 0 16\n8 8 0 8 999\n0 24 8 0 999\n999 999 999 999 999\n",
    )
    .unwrap();
    // Row 1 is short: the file is refused, naming the variable.
    let file = path.to_string_lossy().into_owned();
    let refused = mpirun_json(
        4,
        "all_to_allv -d int32 -n 2 -w 1",
        &[("NCCL_TESTS_ALLTOALLV_MATRIX_FILE", &file)],
    );
    assert_eq!(refused.code(), Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("NCCL_TESTS_ALLTOALLV_MATRIX_FILE="),
        "{}",
        refused.stderr
    );
    std::fs::write(
        &path,
        "0 32 64.5 0 999\n32 0 0 16 999\n8 8 0 8 999\n0 24 8 0 999\n999 999 999 999 999\n",
    )
    .unwrap();
    let env = [
        ("NCCL_TESTS_ALLTOALLV_MATRIX_FILE", file.as_str()),
        ("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE", "2"),
    ];
    let run = mpirun_json(4, "all_to_allv -d int32 -n 2 -w 1 -c 1", &env);
    run.assert_success();
    let row = &first_row(&run);
    let t = &row["traffic"];
    assert!(
        t["source"]
            .as_str()
            .unwrap()
            .contains("NCCL_TESTS_ALLTOALLV_MATRIX_FILE, scale 2"),
        "{t}"
    );
    assert_eq!(u64s(&t["rank_sent_bytes"]), [192, 96, 48, 64]);
    assert_eq!(u64s(&t["rank_received_bytes"]), [80, 128, 144, 48]);
    assert_eq!(row["size_bytes"], 192);
    assert_eq!(row["out_of_place"]["wrong"], 0);
    // Only all_to_allv reads it (nccl-tests' alltoallv_perf does): other collectives run as ever.
    let other = mpirun_json(2, "all_reduce -b 1K -e 1K -n 1 -w 0", &env);
    other.assert_success();
    // A scale that is no number is refused.
    let bad = mpirun_json(
        4,
        "all_to_allv -n 1",
        &[
            ("NCCL_TESTS_ALLTOALLV_MATRIX_FILE", file.as_str()),
            ("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE", "lots"),
        ],
    );
    assert_eq!(bad.code(), Some(2));
    assert!(
        bad.stderr
            .contains("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE=lots"),
        "{}",
        bad.stderr
    );
}
