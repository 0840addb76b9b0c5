//! The real AMD libraries loaded, on a machine without an AMD GPU: RCCL 7.2.4 (Debian experimental, with
//! HIP 7.2) and 5.4.3 (Debian sid, with Debian 12's HIP 5.2.3) under sid's loader; ROCm SMI 5.2.3 (Debian
//! 12) and 6.4.1 (sid). Each is loaded through collbench's own search, its version read and printed, its
//! optional entry points found by asking, and its failure carried in its own words (HIP's no-device error,
//! rsmi_init's status) in one line of ours, with the exit code and failed document NCCL gives. Whatever
//! the libraries print by themselves appears only inside our words ("... printed: ..."), and a machine
//! without an AMD GPU on its PCI bus never opens ROCm SMI or HIP at all.

mod amd;

use amd::{AmdRoot, Stack};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the libraries print by themselves on a machine without an AMD GPU (seen here: ROCm SMI's
/// rsmi_init, RCCL's fatal-error line about HIP).
const LIBRARY_WORDS: [&str; 3] = ["Exception caught", "Failed to open drm", "[FATAL ERROR]"];

/// One quick row on the mpi backend.
const ONE_SMALL_MPI_RUN: [&str; 11] = [
    "all_reduce",
    "--backend",
    "mpi",
    "-b",
    "8",
    "-e",
    "8",
    "-n",
    "1",
    "-w",
    "0",
];

fn collbench_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_collbench"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn of(cmd: &mut Command) -> Outcome {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn both(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }

    /// Every library line appears only inside one of our lines, after "... printed:".
    fn assert_library_words_only_in_ours(&self) {
        for line in self.stdout.lines().chain(self.stderr.lines()) {
            for words in LIBRARY_WORDS {
                if let Some(at) = line.find(words) {
                    assert!(
                        line[..at].contains(" printed: "),
                        "a library's own line reached the terminal: {line:?}\n{}",
                        self.both()
                    );
                }
            }
        }
    }
}

/// `collbench all_reduce --backend rccl` with one of the two RCCL releases, and its document.
fn rccl_run(root: &AmdRoot, stack: Stack) -> (Outcome, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let outcome = Outcome::of(
        root.command(stack, &collbench_binary())
            .args([
                "all_reduce",
                "--backend",
                "rccl",
                "-b",
                "1M",
                "-e",
                "1M",
                "-J",
            ])
            .arg(&json),
    );
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no results document ({e}):\n{}", outcome.both()));
    (outcome, serde_json::from_str(&text).unwrap())
}

/// What a failed RCCL run must show, as a failed NCCL run shows it: exit code 5 (no usable GPU), one line
/// on stderr with HIP's words and RCCL's (version, path, the call that answered), and a failed document.
fn assert_failed_in_the_libraries_words(
    outcome: &Outcome,
    doc: &serde_json::Value,
    version: &str,
    folder: &str,
    rccl_call: &str,
) {
    assert_eq!(outcome.code, Some(5), "{}", outcome.both());
    let lines: Vec<&str> = outcome.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of ours: {}", outcome.both());
    let line = lines[0];
    assert!(
        line.starts_with("collbench: no usable AMD GPU or driver was found on rank 0"),
        "{line}"
    );
    assert!(
        line.contains("hipGetDeviceCount: hipErrorNoDevice"),
        "HIP's words: {line}"
    );
    assert!(
        line.contains(&format!("RCCL {version} ("))
            && line.contains(&format!("{folder}/usr/lib/x86_64-linux-gnu/librccl.so.1")),
        "RCCL's version and the file it was loaded from: {line}"
    );
    assert!(
        line.contains(&format!("reports: {rccl_call}: ")),
        "RCCL's own words: {line}"
    );
    outcome.assert_library_words_only_in_ours();
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["exit_code"], 5, "{doc}");
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains("hipErrorNoDevice") && error.contains(&format!("RCCL {version}")),
        "{error}"
    );
}

#[test]
fn rccl_7_2_4_loads_and_fails_without_an_amd_gpu_in_hips_and_its_own_words() {
    let Some(root) = AmdRoot::find() else {
        return;
    };
    let (outcome, doc) = rccl_run(&root, Stack::Rccl7);
    // RCCL 7.2 starts HIP in ncclGetUniqueId, which answers with HIP's failure; it prints on its own
    // meanwhile, which we keep and carry.
    assert_failed_in_the_libraries_words(&outcome, &doc, "2.27.7", "rccl-7.2.4", "ncclGetUniqueId");
    assert!(
        outcome.stderr.contains("(RCCL printed: "),
        "{}",
        outcome.both()
    );
}

#[test]
fn rccl_5_4_3_loads_and_fails_without_an_amd_gpu_in_hips_and_its_own_words() {
    let Some(root) = AmdRoot::find() else {
        return;
    };
    let (outcome, doc) = rccl_run(&root, Stack::Rccl5);
    // RCCL 5.4 answers ncclGetUniqueId without a GPU; its one-rank communicator fails.
    assert_failed_in_the_libraries_words(
        &outcome,
        &doc,
        "2.13.4",
        "rccl-5.4.3",
        "ncclCommInitRank",
    );
}

/// Run under sid's loader by `rccl_releases_answer_what_they_have`: what the RCCL found by collbench's
/// own search says about itself, as one JSON line.
#[test]
#[ignore = "run under sid's loader by rccl_releases_answer_what_they_have"]
fn inner_rccl_facts() {
    use collbench::backend::gpu::path_for;
    use collbench::collective::Collective;
    use collbench::ffi::device::MemoryKind;
    use collbench::ffi::hip::{fine_grained_flag, Hip};
    use collbench::ffi::nccl::{Flavor, Nccl, Optional};
    let rccl = Nccl::open(Flavor::Rccl, None, 0, "testhost").unwrap_or_else(|e| panic!("{e}"));
    let has = |o| rccl.has(o);
    let unique_id = match rccl.unique_id() {
        Ok(id) => format!(
            "{} bytes, not all zero: {}",
            id.len(),
            id.iter().any(|&b| b != 0)
        ),
        Err(e) => format!("error: {e}"),
    };
    let hip = Hip::open(0, "testhost").unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = [
        MemoryKind::Coarse,
        MemoryKind::Fine,
        MemoryKind::Host,
        MemoryKind::Managed,
    ]
    .into_iter()
    .filter(|&k| hip.has_memory_kind(k))
    .map(MemoryKind::name)
    .collect();
    let facts = serde_json::json!({
        "version": rccl.version_string(),
        "path": rccl.path().display().to_string(),
        "comm_split": has(Optional::CommSplit),
        "mem_alloc": has(Optional::MemAlloc),
        "all_to_all": has(Optional::AllToAll),
        "gather": has(Optional::Gather),
        "scatter": has(Optional::Scatter),
        "all_to_allv": has(Optional::AllToAllv),
        "algo_info": has(Optional::AlgoInfo),
        "all_to_allv_path": path_for(Collective::AllToAllv, has),
        "all_to_all_path": path_for(Collective::AllToAll, has),
        "unique_id": unique_id,
        "hip": hip.path().display().to_string(),
        "hip_no_device": hip.error_name(100),
        "hip_version": hip.runtime_version(),
        "hip_fine_flag": fine_grained_flag(hip.runtime_version()),
        "hip_memory_kinds": kinds,
    });
    println!("FACTS {facts}");
}

/// The facts one RCCL release gives about itself, asked in a process under sid's loader.
fn rccl_facts(root: &AmdRoot, stack: Stack) -> serde_json::Value {
    let me = std::env::current_exe().unwrap();
    let outcome = Outcome::of(root.command(stack, &me).args([
        "--exact",
        "inner_rccl_facts",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]));
    let line = outcome
        .stdout
        .lines()
        .find_map(|l| l.split_once("FACTS ").map(|(_, facts)| facts))
        .unwrap_or_else(|| panic!("the inner test said nothing:\n{}", outcome.both()));
    serde_json::from_str(line).unwrap()
}

#[test]
fn rccl_releases_answer_what_they_have() {
    let Some(root) = AmdRoot::find() else {
        return;
    };
    let seven = rccl_facts(&root, Stack::Rccl7);
    let five = rccl_facts(&root, Stack::Rccl5);
    assert_eq!(seven["version"], "2.27.7", "{seven}");
    assert_eq!(five["version"], "2.13.4", "{five}");
    assert!(
        seven["path"].as_str().unwrap().contains("/rccl-7.2.4/"),
        "{seven}"
    );
    assert!(
        five["path"].as_str().unwrap().contains("/rccl-5.4.3/"),
        "{five}"
    );
    // ncclCommSplit (NCCL 2.18): --groups splits on 7.2, and makes one unique id per group on 5.4.
    assert_eq!(seven["comm_split"], true, "{seven}");
    assert_eq!(five["comm_split"], false, "{five}");
    // ncclMemAlloc (NCCL 2.19): --alloc nccl works on 7.2 only.
    assert_eq!(seven["mem_alloc"], true, "{seven}");
    assert_eq!(five["mem_alloc"], false, "{five}");
    // rcclGetAlgoInfo (-A's columns): RCCL 7 only.
    assert_eq!(seven["algo_info"], true, "{seven}");
    assert_eq!(five["algo_info"], false, "{five}");
    // RCCL's own all-to-all, all-to-allv, gather and scatter in both: native paths.
    for facts in [&seven, &five] {
        for what in ["all_to_all", "gather", "scatter", "all_to_allv"] {
            assert_eq!(facts[what], true, "{what}: {facts}");
        }
        assert_eq!(facts["all_to_allv_path"], "native", "{facts}");
        assert_eq!(facts["all_to_all_path"], "native", "{facts}");
    }
    // ncclGetUniqueId answers: 5.4 with an id, 7.2 with HIP's failure in RCCL's words.
    assert_eq!(five["unique_id"], "128 bytes, not all zero: true", "{five}");
    let seven_id = seven["unique_id"].as_str().unwrap();
    assert!(
        seven_id.starts_with(
            "error: RCCL error on rank 0 (testhost): ncclGetUniqueId: unhandled cuda error"
        ),
        "{seven_id}"
    );
    // Each release runs on its HIP: 7.2's own, and Debian 12's 5.2.3 for RCCL 5.4; both name the codes
    // of sys/hip_api.h as we do.
    assert!(
        seven["hip"].as_str().unwrap().contains("libamdhip64.so.7"),
        "{seven}"
    );
    assert!(
        five["hip"].as_str().unwrap().contains("libamdhip64.so.5"),
        "{five}"
    );
    for facts in [&seven, &five] {
        assert_eq!(facts["hip_no_device"], "hipErrorNoDevice", "{facts}");
        // -Y's four allocators are in both runtimes.
        assert_eq!(
            facts["hip_memory_kinds"],
            serde_json::json!(["coarse", "fine", "host", "managed"]),
            "{facts}"
        );
    }
    // -Y fine: uncached device memory on HIP 7.2, fine-grained on HIP 5.2 (before 5.7), as rccl-tests.
    assert!(
        seven["hip_version"].as_i64().unwrap() >= 70_200_000,
        "{seven}"
    );
    assert!(five["hip_version"].as_i64().unwrap() < 50_700_000, "{five}");
    assert_eq!(seven["hip_fine_flag"], 3, "{seven}");
    assert_eq!(five["hip_fine_flag"], 1, "{five}");
}

/// The ROCm SMI releases with how to run collbench against each: Debian 12's 5.2.3 as installed, sid's
/// 6.4.1 under sid's loader; (release, what the library calls its version, a command, its library).
fn rocm_smi_releases() -> Vec<(&'static str, &'static str, Command, PathBuf)> {
    let mut out = Vec::new();
    if let Some((lib, _)) = amd::debian_rocm_smi() {
        out.push(("5.2.3", "1.0.0", Command::new(collbench_binary()), lib));
    }
    if let Some(root) = AmdRoot::find() {
        let lib = root.file("rocm-smi-6.4.1/usr/lib/x86_64-linux-gnu/librocm_smi64.so.1");
        out.push((
            "6.4.1",
            "7.6.0",
            root.command(Stack::RocmSmi6, &collbench_binary()),
            lib,
        ));
    }
    out
}

#[test]
fn rocm_smi_of_both_releases_opens_for_topology_finds_no_gpu_and_says_so_in_one_line() {
    for (release, version, mut cmd, _) in rocm_smi_releases() {
        // A recorded MI300X machine's PCI bus with the live library: ROCm SMI is opened.
        let outcome = Outcome::of(
            cmd.arg("topo")
                .env("COLLBENCH_TEST_TOPO_ROOT", fixture("mi300x")),
        );
        assert_eq!(outcome.code, Some(0), "{release}: {}", outcome.both());
        let sources: Vec<&str> = outcome
            .stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("source ROCm SMI"))
            .collect();
        assert_eq!(sources.len(), 1, "{release}: {}", outcome.both());
        let line = sources[0];
        assert!(
            line.contains(&format!("unavailable: ROCm SMI {version} ("))
                && line.contains("rsmi_init: "),
            "{release}: {line}"
        );
        // ROCm SMI prints its own lines in rsmi_init on a machine without an AMD GPU: they are kept,
        // and shown only inside ours (this is what a machine without the PCI check would print).
        assert!(
            line.contains("(ROCm SMI printed: ") && line.contains("Exception caught: rsmi_init."),
            "{release}: {line}"
        );
        assert!(outcome.stderr.is_empty(), "{release}: {}", outcome.both());
        outcome.assert_library_words_only_in_ours();
    }
}

#[test]
fn rocm_smi_of_both_releases_opens_for_telemetry_finds_no_gpu_and_says_so_in_one_header_line() {
    for (release, version, mut cmd, lib) in rocm_smi_releases() {
        let outcome = Outcome::of(
            cmd.args(ONE_SMALL_MPI_RUN)
                .env("COLLBENCH_TEST_ROCM_SMI", &lib),
        );
        assert_eq!(outcome.code, Some(0), "{release}: {}", outcome.both());
        let notes: Vec<&str> = outcome
            .stdout
            .lines()
            .filter(|l| l.contains("ROCm SMI"))
            .collect();
        assert_eq!(notes.len(), 1, "{release}: {}", outcome.both());
        let note = notes[0];
        assert!(
            note.starts_with("# Note: no GPU telemetry on 1 of 1 rank(s) (rank(s) 0: ROCm SMI ")
                && note.contains(&format!("ROCm SMI {version} ("))
                && note.contains("rsmi_init: ")
                && note.ends_with("the run goes on without it"),
            "{release}: {note}"
        );
        assert!(outcome.stderr.is_empty(), "{release}: {}", outcome.both());
        outcome.assert_library_words_only_in_ours();
    }
}

/// Debian's Slurm brings librocm-smi64 to NVIDIA nodes too: with it installed and no AMD GPU on the PCI
/// bus, neither a run nor `collbench topo` opens it (or HIP), so none of its lines can appear.
#[test]
fn without_an_amd_gpu_an_installed_rocm_smi_is_never_opened_and_says_nothing() {
    if amd::debian_rocm_smi().is_none() {
        return;
    }
    for args in [
        &ONE_SMALL_MPI_RUN[..],
        &["all_reduce", "-b", "8", "-e", "8", "-n", "1", "-w", "0"][..],
        &["topo"][..],
    ] {
        let outcome = Outcome::of(Command::new(collbench_binary()).args(args));
        assert_eq!(outcome.code, Some(0), "{args:?}: {}", outcome.both());
        assert!(outcome.stderr.is_empty(), "{args:?}: {}", outcome.both());
        for words in LIBRARY_WORDS {
            assert!(
                !outcome.stdout.contains(words),
                "{args:?}: {}",
                outcome.both()
            );
        }
        if args[0] == "topo" {
            assert!(
                outcome.stdout.contains(
                    "source ROCm SMI  skipped: no AMD GPU on the PCI bus (/sys/bus/pci/devices)"
                ),
                "{}",
                outcome.both()
            );
        } else if args.len() == 9 {
            // --backend auto names why it did not open HIP.
            assert!(
                outcome
                    .stdout
                    .contains("HIP: no AMD GPU on the PCI bus (/sys/bus/pci/devices)"),
                "{}",
                outcome.both()
            );
        }
    }
}
