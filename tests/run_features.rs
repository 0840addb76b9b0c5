//! The run's features end to end under mpirun: the peak in the header and the %peak column, the slow
//! rank named, the gate's exit codes, CSV, adaptive iterations, compare and plot of a real run, and
//! `collbench topo` on this machine.

mod common;
use common::*;

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn topo_says_what_it_found_and_what_it_did_not() {
    let out = collbench().arg("topo").output().unwrap();
    let text = stdout_of(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("host "), "{text}");
    assert!(text.contains("NVML"), "{text}");
    assert!(text.contains("GPUs:"), "{text}");
    assert!(text.contains("peak"), "{text}");
}

#[test]
fn the_peak_is_in_the_header_and_beside_busbw() {
    let run = mpirun_json(2, "all_reduce -b 1M -e 4M --peak 100", &[]);
    run.assert_success();
    let text = &run.stdout;
    assert!(text.contains("# Peak: 100.00 GB/s"), "{text}");
    assert!(text.contains("%peak"), "{text}");
    let doc = run.doc();
    assert_eq!(doc["peak_gbps"], 100.0);
    // Each row's %peak cell is its busbw over the peak.
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("float"))
        .collect();
    assert_eq!(rows.len(), 3);
    for (line, row) in rows.iter().zip(doc["rows"].as_array().unwrap()) {
        let busbw = row["out_of_place"]["busbw_gbps"].as_f64().unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[8], format!("{:.0}%", busbw), "{line}");
    }
}

#[test]
fn a_slow_rank_is_named_with_its_host() {
    let run = mpirun_json(
        4,
        "all_reduce,sendrecv -b 32K -e 64K -n 5",
        &[("COLLBENCH_TEST_DELAY", "2:3000")],
    );
    run.assert_success();
    let doc = run.doc();
    let host = doc["ranks"][2]["host"].as_str().unwrap().to_string();
    assert!(
        run.stdout.contains(&format!("rank 2 on {host}")),
        "{}",
        run.stdout
    );
    let suspects = doc["summary"]["slow_ranks"]["suspect_ranks"]
        .as_array()
        .unwrap();
    assert_eq!(suspects.len(), 1, "{}", run.stdout);
    assert_eq!(suspects[0]["rank"], 2);
    assert_eq!(suspects[0]["host"], host.as_str());
    // Every rank's mean is kept.
    let rank_times = doc["rows"][0]["out_of_place"]["rank_time_us"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(rank_times, 4);
}

#[test]
fn an_undisturbed_run_names_no_rank_at_a_generous_threshold() {
    let run = mpirun_json(2, "sendrecv -b 1M -e 1M --slow-threshold 1000", &[]);
    assert!(
        run.stdout.contains("Slow ranks           : none"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_gate_passes_fails_and_never_fails_open() {
    let run = |rule: &str, env: &[(&str, &str)]| {
        mpirun_json(
            2,
            &format!("sendrecv -b 64K -e 128K -n 3 --expect {rule}"),
            env,
        )
    };
    let pass = run("busbw>=0.0001@64K-128K", &[]);
    assert_eq!(pass.code(), Some(0), "{}", pass.stdout);
    assert!(pass.stdout.contains("PASSED"));
    let fail = run("busbw>=100000", &[]);
    assert_eq!(fail.code(), Some(8), "{}", fail.stdout);
    let empty = run("busbw>=0.0001@1G-2G", &[]);
    assert_eq!(
        empty.code(),
        Some(8),
        "a rule with no rows must fail: {}",
        empty.stdout
    );
    let no_peak = run("busbw>=0.5peak", &[]);
    assert_eq!(no_peak.code(), Some(8), "{}", no_peak.stdout);
    assert_eq!(no_peak.doc()["summary"]["gate"]["passed"], false);
    // A failed check is reported before a failed gate.
    let both = run("busbw>=100000", &[("COLLBENCH_TEST_CORRUPT", "0:1")]);
    assert_eq!(both.code(), Some(7));
}

#[test]
fn csv_has_a_line_per_row_and_placement() {
    let run = mpirun_json_with(2, "all_gather,broadcast -b 1K -e 4K", &[], |dir| {
        vec![
            "--csv".into(),
            dir.join("run.csv").to_string_lossy().into_owned(),
        ]
    });
    run.assert_success();
    let text = std::fs::read_to_string(run.path("run.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // header + 2 collectives x 3 sizes x 2 placements
    assert_eq!(lines.len(), 1 + 12, "{text}");
    assert!(lines[0].starts_with("collective,dtype,op,root,size_bytes"));
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
}

#[test]
fn adaptive_iterations_stop_at_the_target_or_the_cap() {
    let run = mpirun_json(
        2,
        "sendrecv -b 32K -e 1M -f 4 -n auto --ci-target 5 --min-iters 8 --size-time-cap 1",
        &[],
    );
    run.assert_success();
    for (_, m) in measurements(&run.doc()) {
        let iterations = m["iterations"].as_u64().unwrap();
        let stats = &m["stats"];
        assert!(iterations >= 8);
        assert_eq!(stats["samples"].as_u64(), Some(iterations));
        let ci = stats["ci95_percent"].as_f64().unwrap();
        let spent_s = stats["mean_us"].as_f64().unwrap() * iterations as f64 / 1e6;
        assert!(
            ci <= 5.0 || spent_s >= 1.0,
            "stopped early: {iterations} iterations, ci {ci}%, {spent_s} s"
        );
    }
}

#[test]
fn compare_and_plot_read_a_real_run() {
    let run = mpirun_json(2, "all_reduce -b 32K -e 256K", &[]);
    run.assert_success();
    let j = run.json.to_str().unwrap();
    collbench().args(["compare", j, j]).assert().success();
    let svg = run.path("run.svg");
    collbench().args(["plot", j, "-o", &svg]).assert().success();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn auto_says_why_it_chose_mpi() {
    let run = mpirun_json(1, "sendrecv -b 1K -e 1K", &[]);
    assert!(
        run.stdout
            .contains("# Backend: mpi (auto: mpi on host memory, no GPU found"),
        "{}",
        run.stdout
    );
    assert!(run.doc()["backend"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("auto: mpi"));
}

#[test]
fn a_progress_bar_on_a_terminal_and_none_in_a_pipe() {
    let bin = env!("CARGO_BIN_EXE_collbench");
    let args = "all_reduce -b 1M -e 16M -n 20";
    // script(1) gives the run a terminal, as a person watching it would.
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("script(1) from util-linux runs");
    let on_terminal = String::from_utf8_lossy(&out.stdout);
    assert!(on_terminal.contains("/5 rows"), "{on_terminal}");
    assert!(on_terminal.contains("all_reduce float"), "{on_terminal}");
    let piped = collbench().args(args.split_whitespace()).output().unwrap();
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("rows,"));
    assert!(!String::from_utf8_lossy(&piped.stdout).contains("rows,"));
}
