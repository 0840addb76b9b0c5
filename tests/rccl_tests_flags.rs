//! rccl-tests' flags end to end under the real mpirun on the mpi backend: -O measures one placement,
//! -q pauses between the two, -Z/-X write rccl-tests' own results file beside our document, -A gives
//! N/A columns where the library does not tell, and -Y, which chooses GPU memory, is refused for host
//! memory. What only a GPU can show (-Y's allocators, -A's answers, -E's offsets on a device) is in the
//! engine's recording double, tests/amd_libraries.rs and scripts/gpu-check.sh.

mod common;
use common::*;

#[test]
fn minus_o_and_minus_z_write_rccl_tests_results_for_the_one_placement() {
    let run = mpirun_json_with(
        2,
        "all_reduce,all_gather -b 1K -e 4K -n 3 -w 1 --backend mpi --no-progress -O 1 -A 1 -Z json",
        &[],
        |dir| vec!["-X".into(), dir.join("rccl.json").display().to_string()],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .all(|r| r["in_place"].is_null() && !r["out_of_place"].is_null()));
    // rccl-tests' file: one entry per measured placement, its names and keys.
    let entries = read_json(std::path::Path::new(&run.path("rccl.json")));
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 6, "{entries:?}");
    assert!(entries
        .iter()
        .all(|e| e["inPlace"] == 0 && e["ranks"] == 2 && e["nodes"] == 1));
    assert_eq!(entries[0]["name"], "AllReduce");
    assert_eq!(entries[3]["name"], "AllGather");
    assert_eq!(entries[3]["redop"], "none");
    // Sizes and times are the document's.
    for (e, r) in entries.iter().zip(rows) {
        assert_eq!(e["size"], r["size_bytes"]);
        let (ours, theirs) = (
            r["out_of_place"]["time_us"].as_f64().unwrap(),
            e["time"].as_f64().unwrap(),
        );
        assert!((ours - theirs).abs() < 1e-5, "{ours} {theirs}");
    }
    // -A on a library that tells nothing: the columns are there, N/A.
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1024 "))
        .unwrap();
    assert!(
        line.trim_end().ends_with("N/A      N/A        N/A"),
        "{line}"
    );
    assert!(
        run.stdout
            .contains("# rccl-tests: -O 1 (out-of-place only)"),
        "{}",
        run.stdout
    );
}

#[test]
fn minus_q_waits_between_the_placements_and_minus_z_csv_keeps_both() {
    let started = std::time::Instant::now();
    let run = mpirun_json_with(
        2,
        "all_reduce -b 1K -e 1K -n 2 -w 0 --backend mpi --no-progress -q 300000 -Z csv",
        &[],
        |dir| vec!["-X".into(), dir.join("rccl.csv").display().to_string()],
    );
    run.assert_success();
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let text = std::fs::read_to_string(run.path("rccl.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "numCycle,collective,nodes,ranks,ranksPerNode,gpusPerRank,size,type,redop,inplace,time,algbw,busbw,#wrong"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("0,\"AllReduce\",1,2,2,1,1024,\"float\",\"sum\",0,"));
    assert!(lines[2].starts_with("0,\"AllReduce\",1,2,2,1,1024,\"float\",\"sum\",1,"));
    // Neither placement's time holds the 0.3 s pause.
    let doc = run.doc();
    for p in ["out_of_place", "in_place"] {
        assert!(doc["rows"][0][p]["time_us"].as_f64().unwrap() < 100_000.0);
    }
}

#[test]
fn minus_y_is_refused_for_host_memory_and_a_bare_minus_q_names_quiet() {
    let out = collbench()
        .args(["all_reduce", "--backend", "mpi", "-Y", "fine"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-Y fine") && err.contains("host memory"),
        "{err}"
    );
    let out = collbench().args(["all_reduce", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--quiet"), "{err}");
    let out = collbench()
        .args(["all_reduce", "--backend", "mpi", "-F", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-F 5"));
}
