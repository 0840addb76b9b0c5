//! Helpers for tests that run the real binary, under the real mpirun where ranks are needed.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::Path;
use std::time::Duration;

/// The collbench binary built for this test run.
pub fn collbench() -> Command {
    Command::cargo_bin("collbench").expect("the collbench binary is built")
}

/// `mpirun -np N collbench ARGS` with the given environment passed to every rank.
pub fn mpirun(np: usize, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Loopback only: no network interface probing on CI machines.
        .env("OMPI_MCA_btl", "self,vader")
        .args(["--oversubscribe", "-np", &np.to_string()]);
    for (k, v) in env {
        cmd.env(k, v).args(["-x", k]);
    }
    cmd.arg(env!("CARGO_BIN_EXE_collbench"))
        .args(args)
        .timeout(Duration::from_secs(120));
    cmd
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} unreadable: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}\n{text}", path.display()))
}

/// Every (row, placement measurement) of a results document.
pub fn measurements(doc: &serde_json::Value) -> Vec<(&serde_json::Value, &serde_json::Value)> {
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| {
            ["out_of_place", "in_place"]
                .into_iter()
                .filter(move |&p| !r[p].is_null())
                .map(move |p| (r, &r[p]))
        })
        .collect()
}
