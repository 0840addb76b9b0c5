//! --groups under the real mpirun on the mpi backend: sub-communicators made with MPI_Comm_split, every
//! group of a layout measured at once, each group's figures, members and hosts in the JSON.

mod common;
use common::*;
use serde_json::Value;

fn members(layout: &Value) -> Vec<Vec<u64>> {
    layout["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_u64().unwrap())
                .collect()
        })
        .collect()
}

/// Checks one --groups row: every group checked with no wrong element, the slowest named, and the row's
/// figures are the slowest group's.
fn assert_group_row(row: &Value, hosts: &[String]) {
    assert_eq!(row["collective"], "all_reduce");
    for g in row["layout"]["groups"].as_array().unwrap() {
        let want: Vec<&str> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| hosts[m.as_u64().unwrap() as usize].as_str())
            .collect();
        let got: Vec<&str> = g["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(got, want);
    }
    let group_count = row["layout"]["groups"].as_array().unwrap().len();
    for placement in ["out_of_place", "in_place"] {
        let m = &row[placement];
        let groups = m["groups"].as_array().expect("each group's figures");
        assert_eq!(groups.len(), group_count);
        let slowest = m["slowest_group"].as_u64().expect("the slowest group") as usize;
        let slowest_time = groups[slowest]["time_us"].as_f64().unwrap();
        for g in groups {
            assert_eq!(g["wrong"], 0);
            assert!(g["time_us"].as_f64().unwrap() <= slowest_time);
        }
        assert_eq!(m["time_us"].as_f64().unwrap(), slowest_time);
        assert_eq!(m["busbw_gbps"], groups[slowest]["busbw_gbps"]);
        assert_eq!(m["wrong"], 0);
    }
}

fn hosts(doc: &Value) -> Vec<String> {
    doc["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_groups_of_two_on_four_ranks() {
    let run = mpirun_json(4, "all_reduce --groups 2 -b 1K -e 4K -n 3 -w 1", &[]);
    run.assert_success();
    let doc = run.doc();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(members(&row["layout"]), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(row["layout"]["label"], "2x2");
        assert_eq!(row["ranks"], 2);
        // all_reduce on two ranks: 2 (n-1) / n = 1.
        assert_eq!(row["bus_factor"], 1.0);
        assert_group_row(row, &hosts(&doc));
    }
    assert!(
        run.stdout.contains("# Groups from --groups 2"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("[0 1] on"), "{}", run.stdout);
}

#[test]
fn two_layouts_side_by_side_at_each_size() {
    let run = mpirun_json(4, "all_reduce --groups 2,4 -b 1K -e 2K -n 3 -w 1", &[]);
    run.assert_success();
    let doc = run.doc();
    let rows = doc["rows"].as_array().unwrap();
    // Per size: the 2x2 row, then the 1x4 row.
    let seen: Vec<(u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["size_bytes"].as_u64().unwrap(),
                r["layout"]["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = [(1024, "2x2"), (1024, "1x4"), (2048, "2x2"), (2048, "1x4")]
        .iter()
        .map(|(s, l)| (*s, l.to_string()))
        .collect();
    assert_eq!(seen, want);
    for row in rows {
        assert_group_row(row, &hosts(&doc));
    }
    let one = rows.iter().find(|r| r["layout"]["label"] == "1x4").unwrap();
    assert_eq!(members(&one["layout"]), vec![vec![0, 1, 2, 3]]);
    assert_eq!(one["bus_factor"], 1.5);
    // The table names each row's layout in its last column.
    let table_rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(table_rows.len(), 4, "{}", run.stdout);
    assert!(table_rows[0].trim_end().ends_with("2x2"));
    assert!(table_rows[1].trim_end().ends_with("1x4"));
}

#[test]
fn nccl_tests_split_mod2_is_stride_2_and_is_said_in_the_header() {
    let by_env = mpirun_json(
        4,
        "all_reduce -b 1K -e 1K -n 2 -w 1",
        &[("NCCL_TESTS_SPLIT", "MOD2")],
    );
    by_env.assert_success();
    let by_flag = mpirun_json(4, "all_reduce --groups stride:2 -b 1K -e 1K -n 2 -w 1", &[]);
    by_flag.assert_success();
    let env_doc = by_env.doc();
    let flag_doc = by_flag.doc();
    let env_groups = members(&env_doc["rows"][0]["layout"]);
    assert_eq!(env_groups, vec![vec![0, 2], vec![1, 3]]);
    assert_eq!(env_groups, members(&flag_doc["rows"][0]["layout"]));
    assert!(
        by_env
            .stdout
            .contains("# Groups from NCCL_TESTS_SPLIT=MOD2"),
        "{}",
        by_env.stdout
    );
    assert_group_row(&env_doc["rows"][0], &hosts(&env_doc));
}

#[test]
fn nccl_tests_split_mask_is_hexadecimal_and_wins_over_the_rule() {
    // "10" is 0x10: every rank of 4 has colour 0, one group (decimal 10 would give {0,1} and {2,3}).
    let hex = mpirun_json(
        4,
        "all_reduce -b 1K -e 1K -n 2 -w 1",
        &[("NCCL_TESTS_SPLIT_MASK", "10")],
    );
    hex.assert_success();
    assert_eq!(
        members(&hex.doc()["rows"][0]["layout"]),
        vec![vec![0, 1, 2, 3]]
    );
    // The mask is read first, as nccl-tests: rank & 1, whatever NCCL_TESTS_SPLIT says.
    let both = mpirun_json(
        4,
        "all_reduce -b 1K -e 1K -n 2 -w 1",
        &[("NCCL_TESTS_SPLIT_MASK", "1"), ("NCCL_TESTS_SPLIT", "DIV2")],
    );
    both.assert_success();
    assert_eq!(
        members(&both.doc()["rows"][0]["layout"]),
        vec![vec![0, 2], vec![1, 3]]
    );
    assert!(
        both.stdout
            .contains("# Groups from NCCL_TESTS_SPLIT_MASK=1"),
        "{}",
        both.stdout
    );
    let bad = mpirun_json(
        4,
        "all_reduce -b 1K -e 1K -n 2",
        &[("NCCL_TESTS_SPLIT_MASK", "ranks")],
    );
    assert_eq!(bad.code(), Some(2), "{}{}", bad.stdout, bad.stderr);
    assert!(
        bad.stderr.contains("NCCL_TESTS_SPLIT_MASK"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_corrupt_rank_is_counted_in_its_own_group() {
    let run = mpirun_json(
        4,
        "all_reduce --groups 2 -b 1K -e 1K -n 2 -w 1",
        &[("COLLBENCH_TEST_CORRUPT", "3:7")],
    );
    assert_eq!(run.code(), Some(7), "{}", run.stdout);
    let doc = run.doc();
    let m = &doc["rows"][0]["out_of_place"];
    assert_eq!(m["wrong"], 7);
    assert_eq!(m["groups"][0]["wrong"], 0);
    assert_eq!(m["groups"][1]["wrong"], 7);
}

#[test]
fn a_layout_the_job_cannot_split_into_is_a_usage_error() {
    let run = mpirun_json(4, "all_reduce --groups 3 -b 1K -e 1K", &[]);
    assert_eq!(run.code(), Some(2), "{}{}", run.stdout, run.stderr);
    assert!(
        (run.stdout.clone() + &run.stderr).contains("--groups 3"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    let bad = collbench()
        .args(["all_reduce", "--groups", "tp4"])
        .assert()
        .code(2);
    let text = String::from_utf8_lossy(&bad.get_output().stderr).into_owned();
    assert!(
        text.contains("--groups") && text.contains("stride:K"),
        "{text}"
    );
}

#[test]
fn each_group_has_its_own_percent_of_peak() {
    // On the mpi backend only --peak gives a figure; each group's %peak is its own busbw against it.
    let run = mpirun_json(
        4,
        "all_reduce --groups 2 -b 64K -e 64K -n 2 -w 1 --peak 10",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert_valid(&doc);
    for (_, m) in measurements(&doc) {
        for g in m["groups"].as_array().expect("each group's figures") {
            let busbw = g["busbw_gbps"].as_f64().unwrap();
            let percent = g["peak_percent"].as_f64().expect("a %peak per group");
            assert!((percent - busbw / 10.0 * 100.0).abs() < 1e-9, "{g}");
        }
    }
}
