//! The multi-host lab for tests: scripts/lab.sh makes hosts of network namespaces (own hostnames, veth
//! to a bridge, 198.18.0.0/15) and launches Open MPI across them through its rsh launcher, or through
//! Slurm (`with_slurm`, `srun`). A Lab is torn down when dropped, also when a test fails; a killed test
//! run's labs are removed by the next.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Set by .ci/run: a lab that cannot be made fails the test instead of skipping it.
pub const REQUIRED: &str = "COLLBENCH_LAB_REQUIRED";

/// One lab at a time: each is 4 hosts x 2 ranks, or 8 and more hosts x 1, on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Lab {
    dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// Says why the lab cannot be made: a skip, or a failure where CI requires the lab.
fn unavailable(why: &str) -> Option<Lab> {
    if std::env::var_os(REQUIRED).is_some() {
        panic!("the multi-host lab is required ({REQUIRED} is set) but cannot be made: {why}");
    }
    eprintln!(
        "SKIPPED: the multi-host lab cannot be made here: {why} (set {REQUIRED}=1 to fail instead)"
    );
    None
}

impl Lab {
    /// A lab of `hosts` hosts, or None (with the reason printed) where namespaces cannot be made.
    pub fn up(hosts: usize) -> Option<Lab> {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if !is_root() {
            return unavailable("network namespaces need root");
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let out = std::process::Command::new("bash")
            .arg(script())
            .args(["up", &dir.path().to_string_lossy(), &hosts.to_string()])
            .env("COLLBENCH_LAB_OWNER", std::process::id().to_string())
            .output()
            .expect("bash runs");
        let lab = Lab { dir, _turn: turn };
        if !out.status.success() {
            return unavailable(&String::from_utf8_lossy(&out.stderr));
        }
        Some(lab)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file in the lab's folder (seen by every host: they share the file system).
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// `mpirun` launched from the lab's first host, `ranks_per_host` ranks on each host, running
    /// collbench ARGS.
    pub fn collbench(&self, hosts: usize, ranks_per_host: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .args(["mpirun", &self.dir.path().to_string_lossy()])
            .args([
                "--oversubscribe",
                "-np",
                &(hosts * ranks_per_host).to_string(),
            ])
            .args(["--map-by", &format!("ppr:{ranks_per_host}:node")])
            .arg(env!("CARGO_BIN_EXE_collbench"))
            .args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .timeout(Duration::from_secs(240));
        cmd
    }

    /// Starts Slurm on the lab (scripts/lab.sh slurm): munged and slurmctld on host 0, a slurmd on every
    /// host. None (with the reason printed, or a failure where CI requires the lab) where it cannot.
    pub fn with_slurm(self) -> Option<Lab> {
        let out = std::process::Command::new("bash")
            .arg(script())
            .arg("slurm")
            .arg(self.dir.path())
            .output()
            .expect("bash runs");
        if !out.status.success() {
            return unavailable(&format!(
                "Slurm does not start on it: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Some(self)
    }

    /// `srun SRUN_ARGS collbench ARGS` on the lab, from its first host.
    pub fn srun(&self, srun_args: &[&str], args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .args(["srun", &self.dir.path().to_string_lossy()])
            .args(srun_args)
            .arg(env!("CARGO_BIN_EXE_collbench"))
            .args(args)
            .timeout(Duration::from_secs(240));
        cmd
    }

    /// A Slurm client command on the lab (squeue, scancel).
    pub fn slurm_cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("bash")
            .arg(script())
            .args(["slurm-cmd", &self.dir.path().to_string_lossy()])
            .args(args)
            .output()
            .expect("bash runs")
    }

    fn script(&self, args: &[&str]) {
        let out = std::process::Command::new("bash")
            .arg(script())
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "lab.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Rate-limits one host's link in both directions (tc tbf), e.g. "200mbit".
    pub fn slow_host(&self, host: usize, rate: &str) {
        self.script(&["slow", &host.to_string(), rate]);
    }

    /// Rate-limits only the traffic between two hosts (tc htb).
    pub fn slow_link(&self, a: usize, b: usize, rate: &str) {
        self.script(&["slow-link", &a.to_string(), &b.to_string(), rate]);
    }

    /// Takes one host's link down.
    pub fn cut(&self, host: usize) {
        self.script(&["cut", &host.to_string()]);
    }

    /// The hostname of host `i`, as collbench reports it.
    pub fn host_name(&self, i: usize) -> String {
        let names =
            std::fs::read_to_string(self.dir.path().join("names")).expect("the lab's names");
        names
            .lines()
            .nth(i)
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("a host of the lab")
            .to_string()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(self.dir.path())
            .status();
    }
}
