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
