//! `-J FILE --json-format nccl-tests` under the real mpirun: the document nccl-tests' own
//! tools/analyze_perf_json.py reads. That script is nccl-tests' code, so it is not in this repository:
//! when NCCL_TESTS_ANALYZE_PERF_JSON names it (or NCCL_TESTS_HOME holds tools/analyze_perf_json.py),
//! the test runs it with python3 on the document, every analysis of it; without it the document is
//! read the way the script reads it (the same keys, types and the consistency it checks), here.
//! collbench then reads the file back whole, as compare and plot do.

mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;

/// analyze_perf_json.py, when the environment says where it is.
fn analyze_script() -> Option<PathBuf> {
    let named = std::env::var_os("NCCL_TESTS_ANALYZE_PERF_JSON").map(PathBuf::from);
    let home = std::env::var_os("NCCL_TESTS_HOME")
        .map(|h| PathBuf::from(h).join("tools/analyze_perf_json.py"));
    named.or(home).filter(|p| p.is_file())
}

fn number(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// What analyze_perf_json.py reads, read the same way: `version`, `results` (each `size` an integer,
/// its `*_per_iter` with min/max/avg/p99/cv as numbers, `times_us`, `per_process_max_times_us` a row per
/// process with as many entries), `config.iterations`, `config.aggregated_iterations`,
/// `config.per_iter_skip`, `config.devices[].hostname`; and its consistency rule: `times_us` is the max
/// over the process rows, each iteration, within 0.001 us.
fn read_as_analyze_perf_json_does(doc: &Value, ranks: usize, iters: usize) {
    assert_eq!(doc["version"], 3);
    let config = &doc["config"];
    assert_eq!(config["iterations"].as_u64(), Some(iters as u64));
    assert!(config["aggregated_iterations"].as_u64().is_some());
    assert!(config["per_iter_skip"].as_u64().is_some());
    let devices = config["devices"].as_array().expect("config.devices");
    assert_eq!(devices.len(), ranks);
    assert!(devices.iter().all(|d| d["hostname"].is_string()));
    let results = doc["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for r in results {
        assert!(r["size"].as_u64().is_some(), "size {}", r["size"]);
        for key in ["out_of_place_per_iter", "in_place_per_iter"] {
            let per = &r[key];
            for field in [
                "min_us", "max_us", "avg_us", "p50_us", "p95_us", "p99_us", "cv_pct",
            ] {
                number(&per[field], &format!("{key}.{field}"));
            }
            let times: Vec<f64> = per["times_us"]
                .as_array()
                .expect("times_us")
                .iter()
                .map(|t| number(t, "times_us[i]"))
                .collect();
            assert_eq!(times.len(), iters);
            let rows = per["per_process_max_times_us"]
                .as_array()
                .expect("per_process_max_times_us");
            assert_eq!(rows.len(), ranks);
            for (i, t) in times.iter().enumerate() {
                let max = rows
                    .iter()
                    .map(|row| number(&row[i], "per_process_max_times_us[p][i]"))
                    .fold(f64::MIN, f64::max);
                assert!((t - max).abs() < 0.001, "iteration {i}: {t} vs {max}");
            }
            // The statistics cover the iterations after -K, with nccl-tests' definitions.
            let skip = per["skipped_iterations"].as_u64().unwrap() as usize;
            let kept = &times[skip..];
            let min = kept.iter().copied().fold(f64::MAX, f64::min);
            assert!((number(&per["min_us"], "min_us") - min).abs() < 1e-9);
        }
    }
    assert!(
        doc["out_of_bounds"]["okay"] == "true",
        "{}",
        doc["out_of_bounds"]
    );
    assert!(doc["average_bus_bandwidth"]["bandwidth"].is_number());
}

#[test]
fn nccl_tests_format_is_what_analyze_perf_json_reads() {
    let run = mpirun_json(
        4,
        "all_reduce,all_gather -b 1K -e 4K -n 8 -w 1 -I 1 -K 1 --json-format nccl-tests",
        &[],
    );
    run.assert_success();
    let text = std::fs::read_to_string(&run.json).unwrap();
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    read_as_analyze_perf_json_does(&doc, 4, 8);
    assert_eq!(doc["config"]["per_iter_skip"], 1);
    assert_eq!(doc["results"].as_array().unwrap().len(), 6);

    // collbench reads the file back whole: its own document rides along under `collbench`.
    let loaded = collbench::report::formats::read(&run.json).unwrap();
    assert_eq!(
        loaded.format,
        collbench::report::formats::Format::CollbenchAsNcclTests
    );
    assert_eq!(loaded.doc.rows.len(), 6);
    let m = loaded.doc.rows[0].out_of_place.as_ref().unwrap();
    assert_eq!(m.iteration_times_us.as_ref().map(Vec::len), Some(8));
    assert_eq!(m.rank_iteration_times_us.as_ref().map(Vec::len), Some(4));
    assert_eq!(
        loaded.doc.header.life.status,
        collbench::report::document::RunStatus::Complete
    );

    match analyze_script() {
        None => eprintln!(
            "SKIPPED: running analyze_perf_json.py, not given (NCCL_TESTS_ANALYZE_PERF_JSON or NCCL_TESTS_HOME): the document was read as it reads, here"
        ),
        Some(script) => {
            for analysis in [&[][..], &["--all"], &["--straggler"], &["--spikes"], &["--nodes"], &["--in-place", "--all"]] {
                let out = std::process::Command::new("python3")
                    .arg(&script)
                    .arg(&run.json)
                    .args(analysis)
                    .output()
                    .expect("python3 runs");
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "{} {analysis:?} failed:\n{stdout}{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(stdout.contains("Version:    3"), "{stdout}");
                assert!(stdout.contains("): PASS"), "consistency:\n{stdout}");
                if analysis.contains(&"--straggler") || analysis.contains(&"--all") {
                    assert!(stdout.contains("PER-PROCESS STRAGGLER ANALYSIS"), "{stdout}");
                }
                if analysis.contains(&"--nodes") || analysis.contains(&"--all") {
                    assert!(stdout.contains("PER-NODE ANALYSIS"), "{stdout}");
                }
            }
        }
    }
}

#[test]
fn a_failed_run_in_nccl_tests_format_says_how_it_ended_at_the_top_level() {
    // Rank 1 exits at its second row: the document is nccl-tests' still, with the rows measured, and
    // the run's life at the top level (where the signal handler writes it) no longer "running".
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 8K -n 2 --json-format nccl-tests",
        &[("COLLBENCH_TEST_EXIT", "1:2")],
    );
    assert_ne!(run.code(), Some(0));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&run.json).unwrap()).unwrap();
    assert_eq!(doc["version"], 3);
    assert!(!doc["results"].as_array().unwrap().is_empty());
    assert!(
        doc["status"] == "interrupted" || doc["status"] == "failed",
        "{doc:#}"
    );
    assert!(doc["error"].is_string(), "{doc:#}");
}
