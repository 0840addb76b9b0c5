//! The JSON a real run writes (complete, and cut short by a failing rank) validates against the schema
//! documented in docs/schema/run.schema.json.

mod common;
use common::*;

#[test]
fn a_complete_run_matches_the_schema() {
    // A gate every row passes however loaded the machine is (a bandwidth floor failed once under load).
    let run = mpirun_json(
        2,
        "all -b 1K -e 2K -n 2 --peak 50 --expect time<=60000ms",
        &[("NCCL_DEBUG", "WARN")],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    assert_eq!(doc["topology"]["peak"]["gbps"], 50.0);
    assert_eq!(doc["summary"]["gate"]["passed"], true);
    assert!(doc["summary"]["slow_ranks"].is_object());
    // Only the relevant environment is recorded.
    assert_eq!(doc["environment"]["NCCL_DEBUG"], "WARN");
    assert!(doc["environment"].get("PATH").is_none());
}

#[test]
fn a_run_cut_short_matches_the_schema() {
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 64K",
        &[("COLLBENCH_TEST_PANIC", "1:2")],
    );
    assert!(!run.out.status.success());
    let doc = run.doc();
    // Rank 1 said why before it ended the job.
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["failed_rank"], 1);
    assert!(doc["summary"].is_null());
    assert_valid(&doc);
}

#[test]
fn the_schema_rejects_a_broken_document() {
    let run = mpirun_json(1, "sendrecv -b 1K -e 1K", &[]);
    run.assert_success();
    let mut doc = run.doc();
    assert_valid(&doc);
    doc["rows"][0]["out_of_place"]["time_us"] = serde_json::json!("fast");
    assert!(!validator().is_valid(&doc));
}

#[test]
fn a_groups_run_matches_the_schema() {
    let run = mpirun_json(4, "all_reduce --groups 2,4 -b 1K -e 1K -n 2", &[]);
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    assert!(doc["rows"][0]["out_of_place"]["groups"].is_array());
}
