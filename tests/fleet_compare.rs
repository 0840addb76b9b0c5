//! `collbench compare` on recorded runs: a run against itself, against a slower run (recorded with
//! COLLBENCH_TEST_DELAY=2:2000 and edited copies), and refusals of files that cannot be compared.

use collbench::fleet::compare::{compare, Change, CompareReport};
use collbench::report::json;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn run(args: &[&Path], extra: &[&str]) -> i32 {
    let mut argv = vec!["collbench".to_string(), "compare".to_string()];
    argv.extend(args.iter().map(|p| p.display().to_string()));
    argv.extend(extra.iter().map(|s| s.to_string()));
    collbench::app::main(argv)
}

/// A copy of a recorded file with its JSON edited by `edit`.
fn edited(dir: &Path, name: &str, out: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data(name)).unwrap()).unwrap();
    edit(&mut value);
    let path = dir.join(out);
    std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
    path
}

#[test]
fn a_run_compared_with_itself_exits_0() {
    let base = data("base_4ranks.json");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp.json");
    assert_eq!(
        run(&[&base, &base], &["--json", &out.display().to_string()]),
        0
    );
    let report: CompareReport =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let doc = json::read(&base).unwrap();
    let measured = doc
        .rows
        .iter()
        .map(|r| r.out_of_place.is_some() as usize + r.in_place.is_some() as usize)
        .sum::<usize>();
    assert_eq!(report.compared.len(), measured);
    assert!(report.compared.iter().all(|c| c.change == Change::Same));
    assert_eq!(report.regressions, 0);
}

#[test]
fn a_delayed_rank_is_a_regression() {
    let base = data("base_4ranks.json");
    let slow = data("slow_rank2_4ranks.json");
    assert_eq!(run(&[&base, &slow], &[]), 9);
    let report = compare(
        &json::read(&base).unwrap(),
        "base",
        &json::read(&slow).unwrap(),
        "slow",
        5.0,
    )
    .unwrap();
    assert!(report.regressions > 0);
    for c in &report.compared {
        // Every regression rose beyond the tolerance and beyond its noise; nothing got better.
        assert_ne!(c.change, Change::Improvement);
        if c.change == Change::Regression {
            assert!(c.time_change_percent.unwrap() > 5.0);
            assert!(c.new_time_us - c.base_time_us > c.noise_us.unwrap());
        }
    }
    // Swapped, the same rows are improvements and nothing regresses.
    assert_eq!(run(&[&slow, &base], &[]), 0);
}

/// A copy of base_4ranks.json with every time multiplied by `factor` and the bandwidths divided.
fn scaled(dir: &Path, factor: f64) -> PathBuf {
    edited(dir, "base_4ranks.json", &format!("x{factor}.json"), |v| {
        for row in v["rows"].as_array_mut().unwrap() {
            for p in ["out_of_place", "in_place"] {
                let m = &mut row[p];
                for (field, f) in [
                    ("time_us", factor),
                    ("algbw_gbps", 1.0 / factor),
                    ("busbw_gbps", 1.0 / factor),
                ] {
                    m[field] = serde_json::json!(m[field].as_f64().unwrap() * f);
                }
            }
        }
    })
}

#[test]
fn edited_slower_copy_regresses_only_beyond_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let base = data("base_4ranks.json");
    // Three times slower with the same spread: beyond a 5 % tolerance and, for most rows, the noise.
    assert_eq!(run(&[&base, &scaled(dir.path(), 3.0)], &[]), 9);
    // 3 % slower is within the default 5 %.
    let a_bit = scaled(dir.path(), 1.03);
    let report = compare(
        &json::read(&base).unwrap(),
        "base",
        &json::read(&a_bit).unwrap(),
        "a bit slower",
        5.0,
    )
    .unwrap();
    assert!(report.compared.iter().all(|c| c.change == Change::Same));
    assert_eq!(run(&[&base, &a_bit], &[]), 0);
}

#[test]
fn refuses_other_schema_and_other_rank_counts() {
    let dir = tempfile::tempdir().unwrap();
    let base = data("base_4ranks.json");
    let future = edited(dir.path(), "base_4ranks.json", "future.json", |v| {
        v["schema_version"] = serde_json::json!(99)
    });
    assert_eq!(run(&[&base, &future], &[]), 2);
    assert_eq!(run(&[&base, &data("base_2ranks.json")], &[]), 2);
    let e = compare(
        &json::read(&base).unwrap(),
        "base",
        &json::read(&data("base_2ranks.json")).unwrap(),
        "two",
        5.0,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no configuration in common"), "{e}");
    assert!(e.to_string().contains("4 rank(s)") && e.to_string().contains("2 rank(s)"));
}

#[test]
fn unreadable_or_foreign_files_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let base = data("base_4ranks.json");
    assert_eq!(run(&[&base, &dir.path().join("missing.json")], &[]), 10);
    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, "[1, 2, 3]").unwrap();
    assert_eq!(run(&[&base, &foreign], &[]), 2);
    assert_eq!(run(&[&base, &base], &["--tolerance", "lots"]), 2);
    assert_eq!(run(&[&base], &[]), 2);
    let unwritable = dir.path().join("no/dir/out.json").display().to_string();
    assert_eq!(run(&[&base, &base], &["--json", &unwritable]), 10);
}

/// A fixture in nccl-tests' formats (tests/data/nccl-tests/README.md says how they were made).
fn nccl_tests(name: &str) -> PathBuf {
    data("nccl-tests").join(name)
}

fn report_of(base: &Path, new: &Path) -> CompareReport {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp.json");
    let code = run(&[base, new], &["--json", &out.display().to_string()]);
    assert!(code == 0 || code == 9, "exit {code}");
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

#[test]
fn an_nccl_tests_log_is_a_baseline_for_a_collbench_run() {
    // The log's all_reduce rows are within a few percent of the collbench run's: same, no regression.
    let log = nccl_tests("all_reduce_perf_4ranks.log");
    let base = data("base_4ranks.json");
    assert_eq!(run(&[&log, &base], &[]), 0);
    let report = report_of(&log, &base);
    assert_eq!(
        report.compared.len(),
        8,
        "4 sizes x 2 placements of all_reduce"
    );
    assert!(report
        .compared
        .iter()
        .all(|c| c.collective == "all_reduce" && c.ranks == 4 && c.change == Change::Same));
    // The collbench run's all_gather rows have no counterpart in the log.
    assert_eq!(report.only_in_new.len(), 8);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("nccl-tests' stdout log")),
        "{:?}",
        report.notes
    );
}

#[test]
fn a_faster_nccl_tests_history_shows_the_collbench_run_regressed() {
    // The JSON's all_gather times are about 0.4 x the collbench run's, each with its -I 1 stdev.
    let history = nccl_tests("all_gather_perf_4ranks_I1.json");
    let base = data("base_4ranks.json");
    assert_eq!(run(&[&history, &base], &[]), 9);
    let report = report_of(&history, &base);
    assert_eq!(report.compared.len(), 8);
    assert!(report.compared.iter().all(|c| c.collective == "all_gather"));
    assert!(
        report.compared.iter().all(|c| c.noise_us.is_some()),
        "both carry statistics"
    );
    assert!(report.regressions > 0);
    assert!(report
        .compared
        .iter()
        .all(|c| c.change != Change::Improvement));
    // And the other way round nothing regresses.
    assert_eq!(run(&[&base, &history], &[]), 0);
}

#[test]
fn old_tagged_and_cut_short_nccl_tests_outputs_compare() {
    // nccl-tests 2.10's columns (no root, `error`, no test name: the file name says all_reduce).
    let old = nccl_tests("all_reduce_perf_2.10.log");
    let report = report_of(&old, &nccl_tests("all_reduce_perf_4ranks.log"));
    assert_eq!(report.compared.len(), 8);
    // A run that died after two rows and a half: its rows compare, and the note says it did not finish.
    let died = nccl_tests("all_reduce_perf_died.json");
    let report = report_of(&nccl_tests("all_reduce_perf_4ranks.log"), &died);
    assert_eq!(report.compared.len(), 5, "2 whole rows and an out-of-place");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("not a complete run")),
        "{:?}",
        report.notes
    );
    assert!(
        report.notes.iter().any(|n| n.contains("not closed")),
        "{:?}",
        report.notes
    );
    // mpirun --tag-output, two tests, -I 1 and -S 1 columns: compared with itself, all the same.
    let tagged = nccl_tests("all_reduce_sendrecv_2ranks_tagged_I1_S1.log");
    let report = report_of(&tagged, &tagged);
    assert_eq!(
        report.compared.len(),
        12,
        "2 tests x 3 sizes x 2 placements"
    );
    assert!(report.compared.iter().all(|c| c.change == Change::Same));
    assert!(report
        .compared
        .iter()
        .any(|c| c.collective == "sendrecv" && c.op.is_none()));
}

#[test]
fn a_file_in_no_format_is_refused_naming_the_formats() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes\n").unwrap();
    assert_eq!(run(&[&data("base_4ranks.json"), &text], &[]), 2);
    let e = collbench::report::formats::read(&text).unwrap_err();
    assert!(
        e.to_string().contains("nccl-tests' stdout saved in a log"),
        "{e}"
    );
}
