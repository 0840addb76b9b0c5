//! nccl-tests 2.19.6's remaining flags and variables under the real mpirun on the mpi backend: what each
//! does to the run (rows, columns, the check, the exit code), and the refusals of those the mpi backend
//! cannot honour. The GPU-only effects (-R, -x, -y, -M on a device) are checked through the engine's
//! recording double (src/engine.rs) and the real libnccl.so.2 (tests/gpu_libraries.rs).

mod common;
use common::*;

fn rows(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["rows"].as_array().expect("rows")
}

#[test]
fn hypercube_gathers_every_block_and_the_check_sees_a_corrupt_one() {
    let run = mpirun_json(4, "hypercube -b 1K -e 16K -n 2 -w 1 -c 2", &[]);
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    let measured = rows(&doc);
    assert_eq!(measured.len(), 5);
    for row in measured {
        assert_eq!(row["collective"], "hypercube");
        assert_eq!(row["path"], "send/recv rounds");
        // nccl-tests' busbw: (n-1) blocks moved per rank over the time.
        assert_eq!(row["bus_factor"], 0.75);
        assert_eq!(row["out_of_place"]["wrong"], 0);
        assert_eq!(row["in_place"]["wrong"], 0);
    }
    // 16K on 4 ranks: blocks of 1024 floats; rank 1 corrupts 7 received elements in each of 2 checks.
    let bad = mpirun_json(
        4,
        "hypercube -b 16K -e 16K -n 1 -w 0 -c 2",
        &[("COLLBENCH_TEST_CORRUPT", "1:7")],
    );
    assert_eq!(bad.code(), Some(7), "{}", bad.stdout);
    assert_eq!(rows(&bad.doc())[0]["out_of_place"]["wrong"], 14);
}
