//! collbench across 4 hosts of the multi-host lab (tests/lab, scripts/lab.sh): hosts named, local ranks,
//! the pairwise matrix finding a throttled host and a throttled link, a link cut mid-run, and a port
//! whose error counters rise named with its host.
//! Without root these tests skip with the reason; .ci/run sets COLLBENCH_LAB_REQUIRED so CI cannot skip.

mod common;
mod lab;

use common::{layout_names, rdma_ports_with_counters, read_json, stage_boundary, RDMA_PORT};
use lab::Lab;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOSTS: usize = 4;

fn output(cmd: &mut assert_cmd::Command) -> (std::process::Output, String, String) {
    let out = cmd.output().expect("mpirun runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The slow threshold (percent below the median pair) for the labs that must name nobody: the lab's own
/// spread between healthy pairs on 2 busy cores reaches about 30 %, a tbf-throttled link is 80 % down.
const QUIET_THRESHOLD: &str = "50";

#[test]
fn a_sweep_runs_on_four_hosts_with_hosts_named_and_local_ranks() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    let json = lab.path("run.json");
    let (out, stdout, stderr) = output(&mut lab.collbench(
        HOSTS,
        2,
        &[
            "sendrecv",
            "all_reduce",
            "-b",
            "4M",
            "-e",
            "4M",
            "-n",
            "3",
            "--backend",
            "mpi",
            // TCP between namespaces on 2 oversubscribed cores differs by up to a third between pairs,
            // steadily enough to pass the repeats; a throttled link (tbf) is 5x slower.
            "--slow-threshold",
            QUIET_THRESHOLD,
            "-J",
            &json,
        ],
    ));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let doc = read_json(std::path::Path::new(&json));
    let ranks = doc["ranks"].as_array().expect("ranks");
    assert_eq!(ranks.len(), 8);
    let mut by_host: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in ranks {
        by_host
            .entry(r["host"].as_str().unwrap().to_string())
            .or_default()
            .push(r["local_rank"].as_u64().unwrap());
    }
    let expected: Vec<String> = (0..HOSTS).map(|i| lab.host_name(i)).collect();
    assert_eq!(
        by_host.keys().cloned().collect::<Vec<_>>(),
        expected,
        "{stdout}"
    );
    for (host, mut locals) in by_host {
        locals.sort_unstable();
        assert_eq!(locals, vec![0, 1], "local ranks on {host}");
        assert!(stdout.contains(&host), "{stdout}");
    }
    assert_eq!(
        doc["topology"]["nodes"].as_array().map(Vec::len),
        Some(HOSTS)
    );
    assert_eq!(doc["status"], "complete");
    // The link probe followed the sweep, left the rows alone and, on a quiet lab, names nobody.
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(2), "{stdout}");
    let probe = &doc["summary"]["link_probe"];
    assert_eq!(probe["participants"].as_array().map(Vec::len), Some(HOSTS));
    assert_eq!(probe["matrix"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        probe["verdict"]["slow_pairs"].as_array().map(Vec::len),
        Some(0),
        "{stdout}"
    );
    assert!(stdout.contains("# Link probe"), "{stdout}");
    assert!(stdout.contains("nobody to blame"), "{stdout}");
    // --no-link-probe: no probe.
    let (out, stdout, stderr) = output(&mut lab.collbench(
        HOSTS,
        1,
        &[
            "sendrecv",
            "-b",
            "1M",
            "-e",
            "1M",
            "-n",
            "1",
            "--backend",
            "mpi",
            "--no-link-probe",
            "-J",
            &json,
        ],
    ));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let doc = read_json(std::path::Path::new(&json));
    assert!(doc["summary"]["link_probe"].is_null(), "{stdout}");
    assert!(!stdout.contains("Link probe"), "{stdout}");
}

#[test]
fn the_summary_of_a_normal_sweep_names_the_throttled_host() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    lab.slow_host(1, "200mbit");
    let json = lab.path("run.json");
    let (out, stdout, stderr) = output(&mut lab.collbench(
        HOSTS,
        1,
        &[
            "all_reduce",
            "-b",
            "4M",
            "-e",
            "4M",
            "-n",
            "2",
            "--backend",
            "mpi",
            "-T",
            "60",
            "-J",
            &json,
        ],
    ));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let bad = lab.host_name(1);
    let doc = read_json(std::path::Path::new(&json));
    let verdict = &doc["summary"]["link_probe"]["verdict"];
    assert_eq!(
        verdict["bad_hosts"].as_array().map(Vec::len),
        Some(1),
        "{stdout}"
    );
    assert_eq!(verdict["bad_hosts"][0]["name"], bad.as_str(), "{stdout}");
    assert_eq!(
        verdict["bad_links"].as_array().map(Vec::len),
        Some(0),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("bad host {bad}")), "{stdout}");
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(1), "{stdout}");
}

fn pairs(lab: &Lab, extra: &[&str]) -> (serde_json::Value, String) {
    let (doc, stdout, code) = pairs_exiting(lab, extra);
    assert_eq!(code, Some(0), "{stdout}");
    (doc, stdout)
}

/// `collbench pairs` on 4 hosts x 2 ranks: the document, stdout and exit code.
fn pairs_exiting(lab: &Lab, extra: &[&str]) -> (serde_json::Value, String, Option<i32>) {
    let json = lab.path("pairs.json");
    let mut args = vec![
        "pairs",
        "--backend",
        "mpi",
        "-b",
        "4M",
        "-J",
        &json,
        "-T",
        "60",
    ];
    args.extend(extra);
    let (out, stdout, stderr) = output(&mut lab.collbench(HOSTS, 2, &args));
    let code = out.status.code();
    (
        read_json(std::path::Path::new(&json)),
        format!("{stdout}\n{stderr}"),
        code,
    )
}

/// With --all-gpus: both ranks of a host exchange with the same local rank of the other host at once.
#[test]
fn the_pairwise_matrix_names_the_throttled_host() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    lab.slow_host(2, "200mbit");
    let svg = lab.path("pairs.svg");
    let (doc, stdout) = pairs(&lab, &["--plot", &svg, "--all-gpus"]);
    // Every host's two ranks took part, local rank 0 with 0 and 1 with 1, and each received exactly
    // its peer's data.
    assert_eq!(doc["all_gpus"], true);
    for p in doc["participants"].as_array().expect("participants") {
        let members: Vec<u64> = p["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m.as_u64().unwrap())
            .collect();
        assert_eq!(members.len(), 2, "{p}");
        let locals: Vec<u64> = members
            .iter()
            .map(|&m| doc["ranks"][m as usize]["local_rank"].as_u64().unwrap())
            .collect();
        assert_eq!(locals, [0, 1], "{p}");
    }
    for s in doc["samples"].as_array().expect("samples") {
        assert_eq!(s["lanes"], 2, "{s}");
        assert_eq!(s["wrong"], 0, "{s}");
    }
    assert_eq!(doc["wrong_total"], 0);
    let bad = lab.host_name(2);
    let verdict = &doc["verdict"];
    assert_eq!(
        verdict["bad_hosts"].as_array().map(Vec::len),
        Some(1),
        "{stdout}"
    );
    assert_eq!(verdict["bad_hosts"][0]["name"], bad.as_str(), "{stdout}");
    assert_eq!(
        verdict["bad_links"].as_array().map(Vec::len),
        Some(0),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("bad host {bad}")), "{stdout}");
    // Every pair with the throttled host is slower than every pair without it.
    let matrix = doc["matrix"].as_array().expect("matrix");
    assert_eq!(matrix.len(), 6);
    let (with, without): (Vec<_>, Vec<_>) = matrix.iter().partition(|f| f["a"] == 2 || f["b"] == 2);
    let fastest_with = with
        .iter()
        .map(|f| f["bandwidth_gbps"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let slowest_without = without
        .iter()
        .map(|f| f["bandwidth_gbps"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(fastest_with < slowest_without, "{stdout}");
    let errors = common::schema_errors(&common::schema_validator("pairs"), &doc);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    let picture = std::fs::read_to_string(&svg).expect("the heatmap");
    assert!(
        picture.contains("<svg") && picture.contains(&bad),
        "heatmap names the hosts"
    );
}

#[test]
fn the_pairwise_matrix_names_a_throttled_link_as_a_link() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    lab.slow_link(1, 3, "200mbit");
    let (doc, stdout, code) = pairs_exiting(
        &lab,
        &["--expect", "no-bad-host", "--expect", "no-bad-link"],
    );
    // The verdict's rules: no bad host passes, the bad link fails the run with exit 8.
    assert_eq!(code, Some(8), "{stdout}");
    let verdicts = doc["gate"]["verdicts"].as_array().expect("verdicts");
    assert_eq!(
        verdicts
            .iter()
            .map(|v| (v["rule"].as_str().unwrap(), v["passed"].as_bool().unwrap()))
            .collect::<Vec<_>>(),
        [("no-bad-host", true), ("no-bad-link", false)],
        "{stdout}"
    );
    let verdict = &doc["verdict"];
    assert_eq!(
        verdict["bad_hosts"].as_array().map(Vec::len),
        Some(0),
        "{stdout}"
    );
    let links = verdict["bad_links"].as_array().expect("bad links");
    assert_eq!(links.len(), 1, "{stdout}");
    assert_eq!(
        (links[0]["a"].as_str(), links[0]["b"].as_str()),
        (
            Some(lab.host_name(1).as_str()),
            Some(lab.host_name(3).as_str())
        ),
        "{stdout}"
    );
    assert!(stdout.contains("bad link"), "{stdout}");
}

#[test]
fn a_quiet_lab_names_nobody_and_expect_judges_pair_figures() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    let png = lab.path("pairs.png");
    let (doc, stdout) = pairs(
        &lab,
        &[
            "--slow-threshold",
            QUIET_THRESHOLD,
            "--plot",
            &png,
            "--expect",
            "busbw>=0.000001@4M",
            "--expect",
            "no-bad-host",
            "--expect",
            "no-bad-link",
        ],
    );
    assert_eq!(
        doc["verdict"]["slow_pairs"].as_array().map(Vec::len),
        Some(0),
        "{stdout}"
    );
    assert!(stdout.contains("nobody to blame"), "{stdout}");
    assert_eq!(doc["gate"]["passed"], true);
    let picture = std::fs::read(&png).expect("the PNG heatmap");
    assert_eq!(&picture[..4], b"\x89PNG", "a PNG");
    // An impossible bound fails with exit 8, naming a pair.
    let (out, stdout, _) = output(&mut lab.collbench(
        HOSTS,
        1,
        &[
            "pairs",
            "--backend",
            "mpi",
            "-b",
            "4M",
            "--rounds",
            "1",
            "--expect",
            "busbw>=1000@4M",
        ],
    ));
    assert_eq!(out.status.code(), Some(8), "{stdout}");
    assert!(stdout.contains("<->"), "{stdout}");
}

// After the cut every rank's -T fires (or MPI_Abort kills it) within -T; mpirun then waits for the
// cut host's daemon until TCP gives up on it, which the lab's launch host does after about 13 s
// (scripts/lab.sh, docs/FLEET.md "A host cut off mid-run").
#[test]
fn a_link_cut_mid_run_ends_the_job_within_the_timeout_naming_the_host() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    let json = lab.path("pairs.json");
    let timeout_s = 5;
    // Started in the background (assert_cmd waits), so the link can be cut while it runs.
    let mut child = std::process::Command::new("bash");
    child
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .args([
            "mpirun",
            &lab.dir().to_string_lossy(),
            "--oversubscribe",
            "-np",
            "4",
            "--map-by",
            "ppr:1:node",
        ])
        .arg(env!("CARGO_BIN_EXE_collbench"))
        .args([
            "pairs",
            "--backend",
            "mpi",
            "-b",
            "4M",
            "--rounds",
            "1000",
            "-J",
            &json,
            "-T",
            &timeout_s.to_string(),
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut running = child.spawn().expect("mpirun starts");
    // Let some rounds finish and reach the file.
    let started = Instant::now();
    loop {
        let measured = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|d| d["samples"].as_array().map(Vec::len))
            .unwrap_or(0);
        if measured >= 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no rounds measured"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.cut(3);
    let cut_at = Instant::now();
    // -T, then the launch host's TCP giving up on the cut daemon (about 13 s), with room for a busy
    // machine; without the lab's setting mpirun waits about 15 minutes.
    let deadline = Duration::from_secs(timeout_s + 25);
    let status = loop {
        if let Some(s) = running.try_wait().expect("wait") {
            break s;
        }
        if cut_at.elapsed() > deadline {
            let _ = running.kill();
            panic!("the job still runs {deadline:?} after the cut");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = cut_at.elapsed();
    let out = running.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!status.success(), "{stdout}\n{stderr}");
    let cut_host = lab.host_name(3);
    assert!(
        stderr.contains(&format!("exchanging with rank 3 ({cut_host})")),
        "the timeout names the cut host: {stderr}"
    );
    let doc = read_json(std::path::Path::new(&json));
    // The rank whose -T fired marks the document failed (pairs documents keep a RunLife since d8cde6a).
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["exit_code"], 4, "{doc}");
    assert!(
        doc["error"].as_str().is_some_and(|e| e.contains("(-T)")),
        "{doc}"
    );
    assert!(
        doc["samples"].as_array().map_or(0, Vec::len) >= 4,
        "measured rounds kept"
    );
    assert!(
        doc["in_flight"]
            .as_str()
            .is_some_and(|r| r.contains(&cut_host)),
        "{doc}"
    );
    eprintln!("link cut: job ended {elapsed:?} after the cut (-T {timeout_s})");
}

// Each host of the lab has its own RDMA ports (COLLBENCH_TEST_SYSROOT with {host}); host 2's cable goes
// bad while the sweep runs. Only host 2's port is named, and each host is read by one rank.
#[test]
fn a_port_whose_error_counters_rise_during_a_sweep_is_named_with_its_host() {
    let Some(lab) = Lab::up(HOSTS) else { return };
    let roots = tempfile::tempdir().expect("a temporary folder");
    for i in 0..HOSTS {
        rdma_ports_with_counters(&roots.path().join(lab.host_name(i)));
    }
    let json = lab.path("run.json");
    let mut running = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .args(["mpirun", &lab.dir().to_string_lossy()])
        .args(["--oversubscribe", "-np", "8", "--map-by", "ppr:2:node"])
        .args(["-x", "COLLBENCH_TEST_SYSROOT", "-x", "COLLBENCH_TEST_DELAY"])
        .arg(env!("CARGO_BIN_EXE_collbench"))
        .args([
            "all_reduce",
            "--backend",
            "mpi",
            "--no-progress",
            "--no-link-probe",
        ])
        .args([
            "-b",
            "1K",
            "-e",
            "8K",
            "-n",
            "5",
            "--samples",
            "0",
            "-T",
            "60",
        ])
        .args(["--expect", "no-link-errors", "-J", &json])
        .env("COLLBENCH_TEST_SYSROOT", roots.path().join("{host}"))
        // Rank 1 sleeps 0.2 s after each timed loop: every row lasts at least 0.4 s.
        .env("COLLBENCH_TEST_DELAY", "1:40000")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let started = Instant::now();
    while !std::fs::read_to_string(&json).is_ok_and(|t| t.contains("\"size_bytes\"")) {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = running.kill();
            panic!("no row measured in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let bad = lab.host_name(2);
    std::fs::write(
        roots
            .path()
            .join(&bad)
            .join(RDMA_PORT)
            .join("counters/symbol_error"),
        "1207\n",
    )
    .unwrap();
    let status = loop {
        if let Some(s) = running.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = running.kill();
            panic!("the sweep still runs after 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = running.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(8), "{stdout}\n{stderr}");
    let named: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# Link errors"))
        .collect();
    assert_eq!(
        named,
        [format!(
            "# Link errors during the run: {bad} mlx5_3 port 1: symbol_error +1204: check that cable or transceiver"
        )],
        "{stdout}"
    );
    let doc = read_json(std::path::Path::new(&json));
    let report = &doc["summary"]["link_errors"];
    let mut ports_per_host: BTreeMap<String, usize> = BTreeMap::new();
    for p in report["ports_read"].as_array().expect("ports read") {
        *ports_per_host
            .entry(p["host"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..HOSTS).map(|i| (lab.host_name(i), 9)).collect();
    assert_eq!(ports_per_host, expected, "{report:#}");
    let changes = report["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{report:#}");
    assert_eq!(changes[0]["host"], bad.as_str());
    assert_eq!(changes[0]["delta"], 1204);
}

/// Llama-3.1-8B's decode step on the lab's two hosts of 2 ranks: TP2 x PP2 is chosen by default (TP on
/// a host, the stage boundary across hosts) beside TP4 (across both hosts), the boundary measured
/// point-to-point from each rank of host 0 to its peer on host 1 and checked; with host 1's link
/// throttled to 5 Mbit/s (far below what the busy 2-core lab leaves shared memory), TP4's 64 all_reduce
/// per step cross the slow link and only TP2 x PP2's one boundary does, so TP2 x PP2 ranks above TP4.
#[test]
fn pipeline_stage_boundaries_cross_the_hosts_and_rank_beside_tp_across_hosts() {
    let Some(lab) = Lab::up(2) else { return };
    let workload = |name: &str| {
        let json = lab.path(name);
        let (out, stdout, stderr) = output(&mut lab.collbench(
            2,
            2,
            &[
                "workload",
                "llama-3.1-8b",
                "--batch",
                "8",
                "--prefill",
                "none",
                "-n",
                "5",
                "--backend",
                "mpi",
                "--gpu-memory",
                "80",
                "-J",
                &json,
            ],
        ));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        (read_json(std::path::Path::new(&json)), stdout)
    };
    let (doc, stdout) = workload("pp.json");
    assert_eq!(layout_names(&doc), ["TP2", "TP4", "TP2xPP2"], "{stdout}");
    let replica = &doc["layouts"][2]["groups"][0];
    assert_eq!(replica["members"], serde_json::json!([0, 1, 2, 3]));
    let (h0, h1) = (lab.host_name(0), lab.host_name(1));
    assert_eq!(replica["hosts"], serde_json::json!([h0, h0, h1, h1]));
    let boundary = stage_boundary(&doc);
    assert_eq!(
        boundary["boundary"],
        serde_json::json!({"tp": 2, "stages": 2})
    );
    assert_eq!(boundary["bytes"], 8 * 4096 * 2);
    assert_eq!(boundary["measurement"]["wrong"], 0, "{boundary}");
    let ranked: Vec<&str> = doc["ranking"][0]["layouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(
        ranked.contains(&"TP4") && ranked.contains(&"TP2xPP2"),
        "{stdout}"
    );

    lab.slow_host(1, "5mbit");
    let (slow, stdout) = workload("pp_slow.json");
    let place = |name: &str| {
        slow["ranking"][0]["layouts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()["place"]
            .as_u64()
            .unwrap()
    };
    assert!(place("TP2xPP2") < place("TP4"), "{stdout}");
}
