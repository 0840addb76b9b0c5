//! collbench launched by Slurm across the multi-host lab (scripts/lab.sh slurm: Debian's slurmctld,
//! slurmd and munge, ranks wired by PMIx): a sweep with hosts named, `pairs` naming a throttled host,
//! the faults (a rank that hangs, a rank that dies, the scheduler cancelling the job), and the lab grown
//! to as many hosts as the machine holds, one rank each.
//! Without root these tests skip with the reason; .ci/run sets COLLBENCH_LAB_REQUIRED so CI cannot skip.

mod common;
mod lab;

use common::read_json;
use lab::Lab;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const HOSTS: usize = 4;

fn output(cmd: &mut assert_cmd::Command) -> (std::process::Output, String, String) {
    let out = cmd.output().expect("srun runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn slurm_lab(hosts: usize) -> Option<Lab> {
    Lab::up(hosts)?.with_slurm()
}

/// Each rank's host and local rank, by host.
fn placement(doc: &serde_json::Value) -> BTreeMap<String, Vec<u64>> {
    let mut by_host: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in doc["ranks"].as_array().expect("ranks") {
        by_host
            .entry(r["host"].as_str().unwrap().to_string())
            .or_default()
            .push(r["local_rank"].as_u64().unwrap());
    }
    for locals in by_host.values_mut() {
        locals.sort_unstable();
    }
    by_host
}

#[test]
fn a_sweep_under_srun_runs_on_four_hosts_with_hosts_named() {
    let Some(lab) = slurm_lab(HOSTS) else { return };
    let json = lab.path("run.json");
    let (out, stdout, stderr) = output(&mut lab.srun(
        &["-N", "4", "-n", "8", "--mpi=pmix"],
        &[
            "sendrecv",
            "all_reduce",
            "-b",
            "1M",
            "-e",
            "1M",
            "-n",
            "3",
            "--backend",
            "mpi",
            // The lab's healthy pairs differ by up to a third on 2 busy cores (tests/multi_host_lab.rs).
            "--slow-threshold",
            "50",
            "-J",
            &json,
        ],
    ));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let doc = read_json(Path::new(&json));
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(2), "{stdout}");
    let hosts: Vec<String> = (0..HOSTS).map(|i| lab.host_name(i)).collect();
    let by_host = placement(&doc);
    assert_eq!(
        by_host.keys().cloned().collect::<Vec<_>>(),
        hosts,
        "{stdout}"
    );
    for (host, locals) in &by_host {
        assert_eq!(locals, &[0, 1], "local ranks on {host}");
        assert!(stdout.contains(host.as_str()), "{stdout}");
    }
    // Slurm's placement, read by MPI, reached the document: one node topology per host.
    assert_eq!(
        doc["topology"]["nodes"].as_array().map(Vec::len),
        Some(HOSTS)
    );
    assert_eq!(
        doc["summary"]["link_probe"]["participants"]
            .as_array()
            .map(Vec::len),
        Some(HOSTS),
        "{stdout}"
    );
}

/// `collbench pairs` under srun, one rank a host, with a host throttled: it is named, and nobody else.
fn pairs_name_the_throttled_host(hosts: usize, bad: usize) -> serde_json::Value {
    let Some(lab) = slurm_lab(hosts) else {
        return serde_json::Value::Null;
    };
    lab.slow_host(bad, "200mbit");
    let json = lab.path("pairs.json");
    let n = hosts.to_string();
    let started = Instant::now();
    let (out, stdout, stderr) = output(&mut lab.srun(
        &["-N", &n, "-n", &n, "--mpi=pmix"],
        &[
            "pairs",
            "--backend",
            "mpi",
            // A throttled link is 5 times slower than a healthy one here: 1M and 5 iterations tell
            // them apart, in a fraction of the time of pairs' defaults.
            "-b",
            "1M",
            "-n",
            "5",
            "-T",
            "60",
            "-J",
            &json,
        ],
    ));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!(
        "pairs under srun on {hosts} hosts: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let doc = read_json(Path::new(&json));
    let placed = placement(&doc);
    assert_eq!(placed.len(), hosts, "one rank a host: {placed:?}");
    assert!(placed.values().all(|locals| locals == &[0]), "{placed:?}");
    let name = lab.host_name(bad);
    let verdict = &doc["verdict"];
    let bad_hosts: Vec<&str> = verdict["bad_hosts"]
        .as_array()
        .expect("bad hosts")
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(bad_hosts, [name.as_str()], "{stdout}");
    assert_eq!(
        verdict["bad_links"].as_array().map(Vec::len),
        Some(0),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("bad host {name}")), "{stdout}");
    doc
}

#[test]
fn pairs_under_srun_names_the_throttled_host() {
    pairs_name_the_throttled_host(HOSTS, 1);
}

/// As many hosts as this machine holds: 4 a core, 8 at least, 32 at most (COLLBENCH_LAB_HOSTS sets it).
fn fleet_hosts() -> usize {
    std::env::var("COLLBENCH_LAB_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (4 * cores).clamp(8, 32)
        })
}

#[test]
fn the_lab_grown_to_as_many_hosts_as_the_machine_holds_names_the_throttled_host() {
    let hosts = fleet_hosts();
    let doc = pairs_name_the_throttled_host(hosts, hosts / 2 + 1);
    if doc.is_null() {
        return;
    }
    // From 8 hosts pairs searches: the throttled host is named within the circle method's first
    // repeat of hosts - 1 rounds (which takes its 3 repeats to name anyone).
    assert_eq!(doc["method"], "search", "{doc:#}");
    let search = &doc["search"];
    let named_after = search["first_named"][0]["round"].as_u64().unwrap() as usize;
    eprintln!(
        "the search on {hosts} hosts: named after round {named_after}, {} rounds in all, against the circle method's {}",
        search["rounds"],
        3 * (hosts - 1)
    );
    assert!(named_after < hosts, "named after {named_after}: {search:#}");
}

/// What a small sweep under srun left when a fault switch made one rank misbehave.
struct Fault {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    doc: serde_json::Value,
}

impl Fault {
    /// How many rows the document holds.
    fn rows(&self) -> Option<usize> {
        self.doc["rows"].as_array().map(Vec::len)
    }
}

/// A sweep of 5 rows on 4 hosts, one rank each, launched with `srun SRUN_ARGS`, rank 2 misbehaving as
/// the test switch `fault` says before its third row; `extra` adds to collbench's arguments.
fn sweep_with_fault(lab: &Lab, srun_args: &[&str], fault: (&str, &str), extra: &[&str]) -> Fault {
    let json = lab.path("run.json");
    let mut srun = ["-N", "4", "-n", "4", "--mpi=pmix"].to_vec();
    srun.extend(srun_args);
    let mut args = [
        "all_reduce",
        "-b",
        "64K",
        "-e",
        "1M",
        "-n",
        "2",
        "--backend",
        "mpi",
        "-J",
        &json,
    ]
    .to_vec();
    args.extend(extra);
    let started = Instant::now();
    let (out, stdout, stderr) = output(lab.srun(&srun, &args).env(fault.0, fault.1));
    let elapsed = started.elapsed();
    eprintln!(
        "{}={} under srun {srun_args:?}: the step ended after {elapsed:.1?}, exit {:?}",
        fault.0,
        fault.1,
        out.status.code()
    );
    // The -T, then Slurm ending the step; the lab's start and a busy machine around it.
    assert!(elapsed < Duration::from_secs(40), "{elapsed:?}");
    Fault {
        code: out.status.code(),
        doc: read_json(Path::new(&json)),
        stdout,
        stderr,
        elapsed,
    }
}

#[test]
fn a_rank_that_hangs_under_srun_ends_the_step_within_the_timeout() {
    let Some(lab) = slurm_lab(HOSTS) else { return };
    let f = sweep_with_fault(&lab, &[], ("COLLBENCH_TEST_HANG", "2:2"), &["-T", "5"]);
    assert_eq!(f.code, Some(4), "{}\n{}", f.stdout, f.stderr);
    assert!(
        f.stderr.contains("did not finish within 5 s"),
        "{}",
        f.stderr
    );
    assert!(f.elapsed >= Duration::from_secs(5), "{:?}", f.elapsed);
    assert_eq!(f.doc["status"], "failed", "{:#}", f.doc);
    assert_eq!(f.doc["exit_code"], 4);
    assert_eq!(f.rows(), Some(2), "{:#}", f.doc);
}

#[test]
fn a_rank_that_dies_under_srun_kill_on_bad_exit_ends_the_step_and_says_so() {
    let Some(lab) = slurm_lab(HOSTS) else { return };
    // -K: Slurm ends the step when a task exits badly (SIGTERM, then SIGKILL after KillWait).
    let f = sweep_with_fault(&lab, &["-K"], ("COLLBENCH_TEST_EXIT", "2:2"), &[]);
    assert_ne!(f.code, Some(0), "{}\n{}", f.stdout, f.stderr);
    assert!(
        f.stderr.contains("rank 2 exits before row 2"),
        "{}",
        f.stderr
    );
    assert_eq!(f.doc["status"], "interrupted", "{:#}", f.doc);
    assert_eq!(f.rows(), Some(2), "{:#}", f.doc);
}

/// Without -K, Slurm lets the step run on after a task died: PMIx may tell Slurm, which then kills the
/// whole step at once (SIGKILL, no SIGTERM first: the document stays `running`, its heartbeat going
/// stale), or the other ranks wait in MPI for the dead one until -T ends them (`failed`, exit 4). Either
/// way the step ends and the document is whole with every row measured.
#[test]
fn a_rank_that_dies_under_plain_srun_ends_the_step_by_the_timeout_at_the_latest() {
    let Some(lab) = slurm_lab(HOSTS) else { return };
    let f = sweep_with_fault(&lab, &[], ("COLLBENCH_TEST_EXIT", "2:2"), &["-T", "5"]);
    assert_ne!(f.code, Some(0), "{}\n{}", f.stdout, f.stderr);
    assert_eq!(f.rows(), Some(2), "{:#}", f.doc);
    match f.doc["status"].as_str() {
        Some("failed") => assert_eq!(f.doc["exit_code"], 4, "{:#}", f.doc),
        Some("running") => {}
        other => panic!("{other:?}: {:#}", f.doc),
    }
}

#[test]
fn a_job_the_scheduler_cancels_is_marked_interrupted() {
    let Some(lab) = slurm_lab(HOSTS) else { return };
    let json = lab.path("run.json");
    let mut srun = std::process::Command::new("bash");
    srun.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .args(["srun", &lab.dir().to_string_lossy()])
        .args(["-N", "2", "-n", "2", "--mpi=pmix"])
        .arg(env!("CARGO_BIN_EXE_collbench"))
        // Small rows for ever (-N 0): the run is still going when scancel comes, without the 1G rows
        // whose buffers took most of a minute to fill in a debug build.
        .args(["all_reduce", "-b", "1K", "-e", "64K", "-n", "20", "-N", "0"])
        .args(["--backend", "mpi", "-J", &json])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = srun.spawn().expect("srun runs");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if std::fs::read_to_string(&json).is_ok_and(|t| t.contains("\"size_bytes\"")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancelled = lab.slurm_cmd(&["scancel", "--user=root"]);
    assert!(cancelled.status.success(), "{cancelled:?}");
    let status = loop {
        if let Some(status) = child.try_wait().expect("srun is waited for") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("srun still runs 90 s after the start, scancel notwithstanding");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "a job cancelled after its first row: srun ended {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    assert!(!status.success());
    let doc = read_json(Path::new(&json));
    assert_eq!(doc["status"], "interrupted", "{doc:#}");
    assert!(doc["error"].as_str().unwrap().contains("signal"));
    assert!(!doc["rows"].as_array().unwrap().is_empty());
}
