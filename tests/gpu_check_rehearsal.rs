//! scripts/gpu-check.sh is what a lent GPU machine runs, with minutes to spare and no second chance: its
//! rehearsal on the mpi backend runs here, so the script's plumbing (pseudo-nodes in UTS namespaces, the
//! fault checks, the verdict table) is known to work before a lease is spent on it.

use std::process::Command;

#[test]
fn the_gpu_check_rehearsal_passes_every_check_it_can_make_here() {
    if !running_as_root() {
        // CI sets COLLBENCH_LAB_REQUIRED, as for the multi-host lab: there a skip is a failure.
        assert!(
            std::env::var_os("COLLBENCH_LAB_REQUIRED").is_none(),
            "the rehearsal needs root (unshare --uts) and COLLBENCH_LAB_REQUIRED is set"
        );
        eprintln!("SKIPPED: the pseudo-nodes need root for unshare --uts");
        return;
    }
    let lab = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_collbench"),
        lab.path().join("collbench"),
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check.sh"))
        .args(["--rehearse", "--lab"])
        .arg(lab.path())
        .env("OUT", out_dir.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = std::fs::read_to_string(out_dir.path().join("verdict.tsv")).unwrap();
    let results: Vec<&str> = verdict
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    assert!(!results.contains(&"FAIL"), "{verdict}");
    // The faults (and the search's delayed node) were made to happen and judged, not skipped; so were
    // the refusals.
    for check in [
        "fault hang: exit code",
        "fault corrupt: #wrong counted exactly",
        "pairs fault corrupt: #wrong counted exactly",
        "pairs search on 8 nodes: the delayed node named alone",
        // nccl-tests' GPU-only flags reach the backend, which refuses them on host memory.
        "-R 1 on the mpi backend: refused, exit code",
        "-R 2 on the mpi backend: refused, exit code",
        "-M 1 on the mpi backend: refused, exit code",
    ] {
        assert!(
            verdict
                .lines()
                .any(|l| l.starts_with(check) && l.ends_with("PASS")),
            "{check}: {verdict}"
        );
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
