//! Test-only switches, read from the environment once, that make a rank fail on purpose so the suite can
//! prove failures end the job cleanly. Documented in docs/TESTING.md; harmless when unset.
//!
//! - COLLBENCH_TEST_PANIC=RANK:ROW   RANK panics before measuring row ROW (counted from 0)
//! - COLLBENCH_TEST_EXIT=RANK:ROW    RANK exits with status 3 without finalising MPI
//! - COLLBENCH_TEST_HANG=RANK:ROW    RANK sleeps forever (to exercise -T)
//! - COLLBENCH_TEST_DELAY=RANK:US    RANK sees each timed operation complete US microseconds late
//! - COLLBENCH_TEST_CORRUPT=RANK:N   (check/verify.rs) RANK corrupts N output elements per check
//! - COLLBENCH_TEST_ABORT_HANGS=1   (world/mpi.rs) ending the job, MPI_Abort never returns
//! - COLLBENCH_TEST_MPI_MAX_COUNT=N  (backend/mpi/) the largest count one MPI call takes is N, not 2^31-1
//! - COLLBENCH_TEST_NVML=PATH        (telemetry/source.rs) GPU telemetry and NVLink error counters from the NVML at PATH, GPU = local rank
//! - COLLBENCH_TEST_ROCM_SMI=PATH    (telemetry/source.rs) the same from the ROCm SMI at PATH
//! - COLLBENCH_TEST_SYSROOT=DIR      (app/port_counters.rs) RDMA port error counters read under DIR, not "/";
//!   `{host}` in DIR stands for the rank's host name (one root per host of the multi-host lab)
//! - COLLBENCH_TEST_TOPO_ROOT=DIR    (topo/mod.rs) this machine's topology, and the PCI check that decides
//!   whether ROCm SMI and the HIP runtime are opened, read under DIR, not "/"; the libraries stay live

use std::path::PathBuf;
use std::time::Duration;

/// COLLBENCH_TEST_SYSROOT: the folder that stands for "/" when a run on `host` reads its RDMA port
/// error counters, so a test can raise a counter while the run goes.
pub fn port_counters_root(host: &str) -> Option<PathBuf> {
    let dir = std::env::var("COLLBENCH_TEST_SYSROOT").ok()?;
    Some(PathBuf::from(dir.replace("{host}", host)))
}

/// COLLBENCH_TEST_TOPO_ROOT: the folder that stands for "/" when this machine's topology is discovered
/// (a recorded machine's sysfs with the live libraries: an AMD GPU on the PCI bus makes the real ROCm SMI
/// and HIP runtime open on a machine without one).
pub fn topo_root() -> Option<PathBuf> {
    std::env::var_os("COLLBENCH_TEST_TOPO_ROOT").map(PathBuf::from)
}

/// COLLBENCH_TEST_ABORT_HANGS: whether ending the job should act as an MPI_Abort that never returns.
pub fn abort_hangs() -> bool {
    std::env::var_os("COLLBENCH_TEST_ABORT_HANGS").is_some()
}

/// COLLBENCH_TEST_MPI_MAX_COUNT: a lower limit on one MPI call's count than MPI's int, so the tests can
/// exercise the paths for counts beyond 2^31 on small buffers.
pub fn mpi_max_count() -> Option<u64> {
    std::env::var("COLLBENCH_TEST_MPI_MAX_COUNT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
}

#[derive(Debug, Clone, Default)]
pub struct TestSwitches {
    panic_at: Option<(usize, usize)>,
    exit_at: Option<(usize, usize)>,
    hang_at: Option<(usize, usize)>,
    delay: Option<(usize, u64)>,
}

fn pair(name: &str) -> Option<(usize, u64)> {
    let v = std::env::var(name).ok()?;
    let (a, b) = v.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

impl TestSwitches {
    pub fn from_env() -> Self {
        let at = |name| pair(name).map(|(r, n)| (r, n as usize));
        TestSwitches {
            panic_at: at("COLLBENCH_TEST_PANIC"),
            exit_at: at("COLLBENCH_TEST_EXIT"),
            hang_at: at("COLLBENCH_TEST_HANG"),
            delay: pair("COLLBENCH_TEST_DELAY"),
        }
    }

    /// Called by every rank before each row.
    pub fn before_row(&self, rank: usize, row: usize) {
        if self.panic_at == Some((rank, row)) {
            panic!("COLLBENCH_TEST_PANIC: rank {rank} panics before row {row} as asked");
        }
        if self.exit_at == Some((rank, row)) {
            eprintln!(
                "collbench: COLLBENCH_TEST_EXIT: rank {rank} exits before row {row} as asked"
            );
            std::process::exit(3);
        }
        if self.hang_at == Some((rank, row)) {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    /// The delay this rank adds to each timed iteration.
    pub fn delay_for(&self, rank: usize) -> Option<Duration> {
        self.delay
            .filter(|(r, _)| *r == rank)
            .map(|(_, us)| Duration::from_micros(us))
    }
}
