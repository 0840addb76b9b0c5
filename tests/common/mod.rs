//! Helpers for tests that run the real binary, under the real mpirun where ranks are needed.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Output;
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
        // When a rank exits early, Open MPI sends the others SIGTERM and then SIGKILL once its
        // odls_base_sigkill_timeout sleep ends; the SIGCHLDs of the first ranks to go cut that sleep to
        // about 4 ms by default (strace, this machine). Rank 0's handler needs to be scheduled in that
        // window to write "interrupted", which oversubscribed test ranks on two busy cores missed 3 times
        // in 15; with 2 the window is seconds, and the tests check what the handler writes, not how fast.
        .env("OMPI_MCA_odls_base_sigkill_timeout", "2")
        .args(["--oversubscribe", "-np", &np.to_string()]);
    for (k, v) in env {
        cmd.env(k, v).args(["-x", k]);
    }
    cmd.arg(env!("CARGO_BIN_EXE_collbench"))
        .args(args)
        .timeout(Duration::from_secs(120));
    cmd
}

/// A finished run under mpirun that wrote its results with `-J` into a temporary folder.
pub struct Run {
    pub out: Output,
    pub stdout: String,
    pub stderr: String,
    pub json: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Panics with everything the run printed unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.out.status.success(),
            "{}\n{}\n{}",
            self.out.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The results document as the run left it.
    pub fn doc(&self) -> serde_json::Value {
        read_json(&self.json)
    }

    /// A path in the run's temporary folder.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// `mpirun -np N collbench ARGS -J <tmp>/run.json`; ARGS are split at whitespace.
pub fn mpirun_json(np: usize, args: &str, env: &[(&str, &str)]) -> Run {
    mpirun_json_with(np, args, env, |_| Vec::new())
}

/// As `mpirun_json`, with more arguments that name files in the run's temporary folder.
pub fn mpirun_json_with(
    np: usize,
    args: &str,
    env: &[(&str, &str)],
    extra: impl Fn(&Path) -> Vec<String>,
) -> Run {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let json = dir.path().join("run.json");
    let mut all: Vec<String> = args.split_whitespace().map(String::from).collect();
    all.extend(extra(dir.path()));
    all.extend(["-J".to_string(), json.to_string_lossy().into_owned()]);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = mpirun(np, &all, env).output().expect("mpirun runs");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        out,
        json,
        dir,
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} unreadable: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}\n{text}", path.display()))
}

/// The names of a workload document's layouts, in order ("TP2", "TP2xPP2").
pub fn layout_names(doc: &serde_json::Value) -> Vec<String> {
    doc["layouts"]
        .as_array()
        .expect("layouts")
        .iter()
        .map(|l| l["name"].as_str().expect("a name").to_string())
        .collect()
}

/// A workload document's pipeline stage boundary message (its only sendrecv).
pub fn stage_boundary(doc: &serde_json::Value) -> &serde_json::Value {
    doc["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["collective"] == "sendrecv")
        .expect("the stage boundary")
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

/// Set by .ci/run: a C stand-in library that cannot be built fails the test instead of skipping it.
pub const CC_REQUIRED: &str = "COLLBENCH_CC_REQUIRED";

/// Builds a C stand-in library from tests/fixtures; None (the test skips, saying so) without a C
/// compiler, unless CI requires one.
pub fn build_stand_in(source: &str, lib: &str, dir: &std::path::Path) -> Option<String> {
    let so = dir.join(lib);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = std::process::Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(fixtures.join(source))
        .output();
    match built {
        Ok(out) if out.status.success() => Some(so.to_str().unwrap().to_string()),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => format!("cannot run {cc}: {e}"),
            };
            if std::env::var_os(CC_REQUIRED).is_some() {
                panic!("{lib} must be built ({CC_REQUIRED} is set) but could not be: {why}");
            }
            eprintln!("SKIPPED: the {lib} stand-in cannot be built ({why}); set {CC_REQUIRED}=1 to fail instead");
            None
        }
    }
}

/// The stand-in NVML (tests/fixtures/fake_nvml.c: two H100 NVL joined by NVLinks 0-11) built in `dir`;
/// None without a C compiler (see `build_stand_in`).
pub fn fake_nvml(dir: &std::path::Path) -> Option<String> {
    build_stand_in("fake_nvml.c", "libfake-nvidia-ml.so", dir)
}

/// The JSON Schema of a kind of results document: "run", "pairs" or "workload"
/// (docs/schema/KIND.schema.json).
pub fn schema_validator(kind: &str) -> jsonschema::Validator {
    let text = match kind {
        "run" => include_str!("../../docs/schema/run.schema.json"),
        "pairs" => include_str!("../../docs/schema/pairs.schema.json"),
        "workload" => include_str!("../../docs/schema/workload.schema.json"),
        other => panic!("no schema for documents of kind {other}"),
    };
    let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Every way `doc` breaks its schema, with where; empty when it is valid.
pub fn schema_errors(validator: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

/// The JSON Schema of results documents (docs/schema/run.schema.json).
pub fn validator() -> jsonschema::Validator {
    schema_validator("run")
}

/// Panics with every schema error of `doc`.
pub fn assert_valid(doc: &serde_json::Value) {
    let v = validator();
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
}

/// The port tests/link_errors.rs and the multi-host lab raise counters on, under a root made by
/// `rdma_ports_with_counters`.
pub const RDMA_PORT: &str = "sys/class/infiniband/mlx5_3/ports/1";

/// Writes under `root` the recorded DGX H100's RDMA ports (mlx5_0 to mlx5_8, port 1), each with error
/// counters at the values a long-running machine has (symbol_error 3, link_downed 1, port_rcv_errors 0,
/// out_of_sequence 17) and a traffic counter that is not an error.
pub fn rdma_ports_with_counters(root: &Path) {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dgx-h100");
    let class = fixture.join("sys/class/infiniband");
    for dev in std::fs::read_dir(&class).expect("the fixture's infiniband class") {
        let dev = dev.unwrap().file_name();
        let port = root.join("sys/class/infiniband").join(&dev).join("ports/1");
        std::fs::create_dir_all(port.join("counters")).unwrap();
        std::fs::create_dir_all(port.join("hw_counters")).unwrap();
        std::fs::copy(
            class.join(&dev).join("ports/1/link_layer"),
            port.join("link_layer"),
        )
        .unwrap();
        for (name, value) in [
            ("counters/symbol_error", "3"),
            ("counters/link_downed", "1"),
            ("counters/port_rcv_errors", "0"),
            ("counters/port_xmit_data", "123456789"),
            ("hw_counters/out_of_sequence", "17"),
        ] {
            std::fs::write(port.join(name), format!("{value}\n")).unwrap();
        }
    }
}
