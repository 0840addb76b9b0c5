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
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let out = mpirun(
        2,
        &[
            "all_reduce",
            "-b",
            "1M",
            "-e",
            "4M",
            "--peak",
            "100",
            "-J",
            json.to_str().unwrap(),
        ],
        &[],
    )
    .output()
    .unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("# Peak: 100.00 GB/s"), "{text}");
    assert!(text.contains("%peak"), "{text}");
    let doc = read_json(&json);
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
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let out = mpirun(
        4,
        &[
            "all_reduce,sendrecv",
            "-b",
            "32K",
            "-e",
            "64K",
            "-n",
            "5",
            "-J",
            json.to_str().unwrap(),
        ],
        &[("COLLBENCH_TEST_DELAY", "2:3000")],
    )
    .output()
    .unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}");
    let doc = read_json(&json);
    let host = doc["ranks"][2]["host"].as_str().unwrap().to_string();
    assert!(text.contains(&format!("rank 2 on {host}")), "{text}");
    let suspects = doc["summary"]["slow_ranks"]["suspect_ranks"]
        .as_array()
        .unwrap();
    assert_eq!(suspects.len(), 1, "{text}");
    assert_eq!(suspects[0]["rank"], 2);
    assert_eq!(suspects[0]["host"], host.as_str());
    // Every rank's mean is kept.
    assert_eq!(
        doc["rows"][0]["out_of_place"]["rank_time_us"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn an_undisturbed_run_names_no_rank_at_a_generous_threshold() {
    let out = mpirun(
        2,
        &[
            "sendrecv",
            "-b",
            "1M",
            "-e",
            "1M",
            "--slow-threshold",
            "1000",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(
        stdout_of(&out).contains("Slow ranks           : none"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn the_gate_passes_fails_and_never_fails_open() {
    let args = |rule: &str| {
        vec![
            "sendrecv".to_string(),
            "-b".into(),
            "64K".into(),
            "-e".into(),
            "128K".into(),
            "-n".into(),
            "3".into(),
            "--expect".into(),
            rule.to_string(),
        ]
    };
    let run = |rule: &str, env: &[(&str, &str)]| {
        let a = args(rule);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        mpirun(2, &a, env).output().unwrap()
    };
    let pass = run("busbw>=0.0001@64K-128K", &[]);
    assert_eq!(pass.status.code(), Some(0), "{}", stdout_of(&pass));
    assert!(stdout_of(&pass).contains("PASSED"));
    let fail = run("busbw>=100000", &[]);
    assert_eq!(fail.status.code(), Some(8), "{}", stdout_of(&fail));
    let empty = run("busbw>=0.0001@1G-2G", &[]);
    assert_eq!(
        empty.status.code(),
        Some(8),
        "a rule with no rows must fail: {}",
        stdout_of(&empty)
    );
    let no_peak = run("busbw>=0.5peak", &[]);
    assert_eq!(no_peak.status.code(), Some(8), "{}", stdout_of(&no_peak));
    // A failed check is reported before a failed gate.
    let both = run("busbw>=100000", &[("COLLBENCH_TEST_CORRUPT", "0:1")]);
    assert_eq!(both.status.code(), Some(7));
}

#[test]
fn csv_has_a_line_per_row_and_placement() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("run.csv");
    mpirun(
        2,
        &[
            "all_gather,broadcast",
            "-b",
            "1K",
            "-e",
            "4K",
            "--csv",
            csv.to_str().unwrap(),
        ],
        &[],
    )
    .assert()
    .success();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // header + 2 collectives x 3 sizes x 2 placements
    assert_eq!(lines.len(), 1 + 12, "{text}");
    assert!(lines[0].starts_with("collective,dtype,op,root,size_bytes"));
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
}

#[test]
fn adaptive_iterations_stop_at_the_target_or_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    mpirun(
        2,
        &[
            "sendrecv",
            "-b",
            "32K",
            "-e",
            "1M",
            "-f",
            "4",
            "-n",
            "auto",
            "--ci-target",
            "5",
            "--min-iters",
            "8",
            "--size-time-cap",
            "1",
            "-J",
            json.to_str().unwrap(),
        ],
        &[],
    )
    .assert()
    .success();
    let doc = read_json(&json);
    for (_, m) in measurements(&doc) {
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
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    mpirun(
        2,
        &[
            "all_reduce",
            "-b",
            "32K",
            "-e",
            "256K",
            "-J",
            json.to_str().unwrap(),
        ],
        &[],
    )
    .assert()
    .success();
    let j = json.to_str().unwrap();
    collbench().args(["compare", j, j]).assert().success();
    let svg = dir.path().join("run.svg");
    collbench()
        .args(["plot", j, "-o", svg.to_str().unwrap()])
        .assert()
        .success();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn auto_says_why_it_chose_mpi() {
    let out = mpirun(1, &["sendrecv", "-b", "1K", "-e", "1K"], &[])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert!(
        text.contains("# Backend: mpi (auto: mpi on host memory, no GPU found"),
        "{text}"
    );
}
