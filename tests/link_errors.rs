//! A sweep reads each host's RDMA port error counters before its first row and after its last, and
//! names the port whose counters rose meanwhile. The counters are files under COLLBENCH_TEST_SYSROOT
//! (the DGX H100 fixture's RDMA ports with counter files added), raised by the test while the run goes.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A temporary root with the DGX H100 fixture's RDMA ports and their counter files.
fn sysroot_with_counters() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    rdma_ports_with_counters(dir.path());
    dir
}

fn link_error_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("# Link errors"))
        .collect()
}

/// Starts a 2-rank sweep of four rows on the mpi backend with `--expect no-link-errors`, writing `json`,
/// with `env` passed to every rank; returns once its first row is on disk (the counters have been read
/// and the sweep goes on).
fn start_sweep_and_wait_for_a_row(env: &[(&str, &str)], json: &Path) -> std::process::Child {
    // Rank 1 sleeps 0.2 s after each timed loop (5 x 40 ms), so each of the four rows lasts at least
    // 0.4 s and the run is still measuring when the counters rise after the first.
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("COLLBENCH_TEST_DELAY", "1:40000")
        .args(["--oversubscribe", "-np", "2", "-x", "COLLBENCH_TEST_DELAY"]);
    for (name, value) in env {
        cmd.env(name, value).args(["-x", name]);
    }
    let child = cmd
        .arg(env!("CARGO_BIN_EXE_collbench"))
        .args(["all_reduce", "--backend", "mpi", "--no-progress"])
        .args(["-b", "1K", "-e", "8K", "-n", "5", "--samples", "0"])
        .args(["--expect", "no-link-errors", "-J"])
        .arg(json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let started = Instant::now();
    while !std::fs::read_to_string(json).is_ok_and(|t| t.contains("\"size_bytes\"")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no row measured in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Waits for a sweep started by `start_sweep_and_wait_for_a_row` whose counters rose: it must fail the
/// gate (exit 8) with every row measured (the change fell inside the run) and a valid document. Returns
/// its output, the document and rank 0's host.
fn finish_failed_gate(
    child: std::process::Child,
    json: &Path,
) -> (String, serde_json::Value, String) {
    let out = child.wait_with_output().expect("the run ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stdout}\n{stderr}");
    let doc = read_json(json);
    assert_valid(&doc);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 4, "{doc:#}");
    let host = doc["ranks"][0]["host"].as_str().unwrap().to_string();
    (stdout, doc, host)
}

#[test]
fn counters_raised_during_the_run_name_the_port_and_fail_the_gate() {
    let root = sysroot_with_counters();
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("run.json");
    let root_path = root.path().to_string_lossy().into_owned();
    let child = start_sweep_and_wait_for_a_row(&[("COLLBENCH_TEST_SYSROOT", &root_path)], &json);
    let port = root.path().join(RDMA_PORT);
    std::fs::write(port.join("counters/symbol_error"), "1207\n").unwrap();
    std::fs::write(port.join("counters/link_downed"), "2\n").unwrap();
    let (stdout, doc, host) = finish_failed_gate(child, &json);
    assert_eq!(
        link_error_lines(&stdout),
        [format!(
            "# Link errors during the run: {host} mlx5_3 port 1: link_downed +1, symbol_error +1204: check that cable or transceiver"
        )],
        "{stdout}"
    );
    let report = &doc["summary"]["link_errors"];
    // One reader for the host, not one per rank: nine ports, each with four error counters.
    let ports = report["ports_read"].as_array().unwrap();
    assert_eq!(ports.len(), 9, "{report:#}");
    assert!(ports.iter().all(|p| p["counters"] == 4), "{report:#}");
    let changes: Vec<(&str, u64, u64, u64)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["host"], host.as_str());
            assert_eq!(
                (&c["device"], &c["port"]),
                (&serde_json::json!("mlx5_3"), &serde_json::json!(1))
            );
            assert_eq!(c["reset"], false);
            (
                c["counter"].as_str().unwrap(),
                c["before"].as_u64().unwrap(),
                c["after"].as_u64().unwrap(),
                c["delta"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [("link_downed", 1, 2, 1), ("symbol_error", 3, 1207, 1204)]
    );
    let verdict = &doc["summary"]["gate"]["verdicts"][0];
    assert_eq!(verdict["rule"], "no-link-errors");
    assert_eq!(verdict["passed"], false);
    assert_eq!(verdict["worst_value"], 1205.0);
    assert!(
        stdout.contains(&format!(
            "# Expect no-link-errors : FAILED (error counters rose on 1 of 9 RDMA port(s): {host} mlx5_3 port 1: link_downed +1, symbol_error +1204)"
        )),
        "{stdout}"
    );
}

#[test]
fn a_quiet_run_names_no_port_and_passes_the_gate() {
    let root = sysroot_with_counters();
    let root_path = root.path().to_string_lossy().into_owned();
    let run = mpirun_json(
        2,
        "all_reduce --backend mpi -b 1K -e 1K -n 2 --no-progress --expect no-link-errors",
        &[("COLLBENCH_TEST_SYSROOT", &root_path)],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let report = &doc["summary"]["link_errors"];
    assert_eq!(report["changes"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["ports_read"].as_array().unwrap().len(), 9);
    assert_eq!(
        link_error_lines(&run.stdout),
        ["# Link errors          : none on 9 RDMA port(s) of 1 host(s) (error counters read before and after the run)"],
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("# Expect no-link-errors : PASSED"));
}

/// Runs one rank without mpirun; returns its exit code, its output and its document.
fn solo_run(sysroot: Option<&Path>, extra: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let mut cmd = collbench();
    cmd.env_remove("COLLBENCH_TEST_SYSROOT");
    if let Some(root) = sysroot {
        cmd.env("COLLBENCH_TEST_SYSROOT", root);
    }
    let out = cmd
        .args([
            "sendrecv",
            "--backend",
            "mpi",
            "-b",
            "1K",
            "-e",
            "1K",
            "-n",
            "2",
        ])
        .args(["--no-progress", "-J"])
        .arg(&json)
        .args(extra)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        read_json(&json),
    )
}

#[test]
fn without_an_infiniband_class_the_run_says_nothing_and_records_null() {
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, doc) = solo_run(Some(empty.path()), &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_valid(&doc);
    assert!(doc["summary"]["link_errors"].is_null(), "{doc:#}");
    assert!(!stdout.contains("Link errors"), "{stdout}");
    // The gate cannot vouch for links it could not read.
    let (code, stdout, doc) = solo_run(Some(empty.path()), &["--expect", "no-link-errors"]);
    assert_eq!(code, Some(8), "{stdout}");
    assert!(doc["summary"]["link_errors"].is_null());
    let reason = doc["summary"]["gate"]["verdicts"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("no host had a readable"), "{reason}");
}

#[test]
fn the_live_machine_without_rdma_says_nothing() {
    if Path::new("/sys/class/infiniband").exists() {
        eprintln!("this machine has /sys/class/infiniband: the live case without RDMA cannot be shown here");
        return;
    }
    let (code, stdout, doc) = solo_run(None, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(doc["summary"]["link_errors"].is_null(), "{doc:#}");
    assert!(!stdout.contains("Link errors"), "{stdout}");
}

#[test]
fn collbench_pairs_refuses_the_rule_it_cannot_judge() {
    let out = collbench()
        .args(["pairs", "--backend", "mpi", "--expect", "no-link-errors"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--expect 'no-link-errors'"), "{stderr}");
}

#[test]
fn nvlink_counters_raised_during_the_run_name_the_gpu_link_and_fail_the_gate() {
    let lib_dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(lib_dir.path()) else {
        return;
    };
    // Quiet RDMA ports, so that only the NVLink can fail the gate.
    let root = sysroot_with_counters();
    let root_path = root.path().to_string_lossy().into_owned();
    let counters = lib_dir.path().join("nvlink-errors");
    // A long-running machine's count before the run.
    std::fs::write(&counters, "1 3 crc_flit 5\n").unwrap();
    let counters_path = counters.to_string_lossy().into_owned();
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("run.json");
    let child = start_sweep_and_wait_for_a_row(
        &[
            ("COLLBENCH_TEST_SYSROOT", &root_path),
            ("COLLBENCH_TEST_NVML", &nvml),
            ("FAKE_NVML_NVLINK_ERRORS", &counters_path),
        ],
        &json,
    );
    std::fs::write(&counters, "1 3 crc_flit 17\n1 3 replay 2\n").unwrap();
    let (stdout, doc, host) = finish_failed_gate(child, &json);
    assert_eq!(
        link_error_lines(&stdout),
        [format!(
            "# Link errors during the run: {host} GPU 1 (0000:42:00.0) NVLink 3: nvlink_crc_flit +12, nvlink_replay +2: check that GPU's NVLink (the GPU, its baseboard, the NVSwitch or GPU at the other end)"
        )],
        "{stdout}"
    );
    let report = &doc["summary"]["link_errors"];
    // Each rank read its own GPU (GPU = local rank under COLLBENCH_TEST_NVML): the 12 active links of
    // each, not the 6 inactive ones; GPU 0 without DL_ECC_DATA, which its driver does not answer.
    let links = report["nvlinks_read"].as_array().unwrap();
    let per_gpu = |gpu: &str| -> Vec<u64> {
        links
            .iter()
            .filter(|l| l["device"] == gpu)
            .map(|l| l["counters"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(per_gpu("GPU 0 (0000:41:00.0)"), [4; 12], "{report:#}");
    assert_eq!(per_gpu("GPU 1 (0000:42:00.0)"), [5; 12], "{report:#}");
    assert_eq!(links.len(), 24, "{report:#}");
    assert_eq!(report["ports_read"].as_array().unwrap().len(), 9);
    let changes: Vec<(&str, &str, u64, u64, u64)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["host"], host.as_str());
            assert_eq!(c["port"], 3);
            (
                c["link"].as_str().unwrap(),
                c["counter"].as_str().unwrap(),
                c["before"].as_u64().unwrap(),
                c["after"].as_u64().unwrap(),
                c["delta"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("nvlink", "nvlink_crc_flit", 5, 17, 12),
            ("nvlink", "nvlink_replay", 0, 2, 2)
        ]
    );
    let verdict = &doc["summary"]["gate"]["verdicts"][0];
    assert_eq!(verdict["passed"], false);
    assert_eq!(verdict["worst_value"], 14.0);
    assert_eq!(verdict["values_judged"], 33);
    assert!(
        stdout.contains(&format!(
            "# Expect no-link-errors : FAILED (error counters rose on 1 of 33 link(s) (9 RDMA port(s) and 24 NVLink(s)): {host} GPU 1 (0000:42:00.0) NVLink 3: nvlink_crc_flit +12, nvlink_replay +2)"
        )),
        "{stdout}"
    );
}

#[test]
fn quiet_nvlinks_are_listed_and_pass_the_gate() {
    let lib_dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(lib_dir.path()) else {
        return;
    };
    let root = sysroot_with_counters();
    let root_path = root.path().to_string_lossy().into_owned();
    let counters = lib_dir.path().join("nvlink-errors");
    std::fs::write(&counters, "0 0 recovery 4\n1 11 ecc_data 9\n").unwrap();
    let counters_path = counters.to_string_lossy().into_owned();
    let run = mpirun_json(
        2,
        "all_reduce --backend mpi -b 1K -e 1K -n 2 --no-progress --expect no-link-errors",
        &[
            ("COLLBENCH_TEST_SYSROOT", &root_path),
            ("COLLBENCH_TEST_NVML", &nvml),
            ("FAKE_NVML_NVLINK_ERRORS", &counters_path),
        ],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let report = &doc["summary"]["link_errors"];
    assert_eq!(report["changes"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["nvlinks_read"].as_array().unwrap().len(), 24);
    assert_eq!(
        link_error_lines(&run.stdout),
        ["# Link errors          : none on 9 RDMA port(s) and 24 NVLink(s) of 1 host(s) (error counters read before and after the run)"],
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("# Expect no-link-errors : PASSED"));
}

#[test]
fn an_nvml_that_does_not_load_adds_no_nvlink_and_no_error() {
    let root = sysroot_with_counters();
    let missing = root.path().join("no-such-libnvidia-ml.so");
    let run = mpirun_json(
        2,
        "all_reduce --backend mpi -b 1K -e 1K -n 2 --no-progress --expect no-link-errors",
        &[
            ("COLLBENCH_TEST_SYSROOT", &root.path().to_string_lossy()),
            ("COLLBENCH_TEST_NVML", &missing.to_string_lossy()),
        ],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let report = &doc["summary"]["link_errors"];
    assert_eq!(report["nvlinks_read"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["ports_read"].as_array().unwrap().len(), 9);
    assert!(run.stdout.contains("none on 9 RDMA port(s) of 1 host(s)"));
}
