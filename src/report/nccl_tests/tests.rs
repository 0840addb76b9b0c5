//! Reading nccl-tests' output back: program and file names as collectives, version codes, rows as collbench's, and what is left out.

use super::*;

#[test]
fn collectives_from_test_binaries() {
    assert_eq!(
        collective_of("all_reduce_perf"),
        Some(Collective::AllReduce)
    );
    assert_eq!(
        collective_of("./build/reduce_scatter_perf"),
        Some(Collective::ReduceScatter)
    );
    assert_eq!(collective_of("alltoallv_perf"), Some(Collective::AllToAllv));
    assert_eq!(
        collective_of("alltoall_perf_mpi"),
        Some(Collective::AllToAll)
    );
    assert_eq!(
        collective_of("all_gather_perf"),
        Some(Collective::AllGather)
    );
    assert_eq!(collective_of("sendrecv_perf"), Some(Collective::SendRecv));
    assert_eq!(
        collective_of("hypercube_perf_mpi"),
        Some(Collective::Hypercube)
    );
    assert_eq!(collective_of("nccl-logs-2024"), None);
}

#[test]
fn version_codes_both_ways() {
    assert_eq!(version_text(22703), "2.27.3");
    assert_eq!(version_text(2804), "2.8.4");
    assert_eq!(version_code("2.27.3"), Some(22703));
    assert_eq!(version_code("2.28.9+cuda12.9"), Some(22809));
    assert_eq!(version_code("2.8.4"), Some(2804));
    assert_eq!(version_code("x"), None);
}

fn section(program: &str, rows: Vec<ResultRow>, ranks: usize) -> Section {
    Section {
        program: Some(program.into()),
        ranks: (0..ranks)
            .map(|r| RankLine {
                rank: r,
                host: "node1".into(),
                ..RankLine::default()
            })
            .collect(),
        ranks_per_line: 1,
        rows,
        complete: true,
        wrong_checks: Some(0),
        ..Section::default()
    }
}

fn result(size: u64, redop: &str, root: i64, time: f64) -> ResultRow {
    let t = Timing {
        time_us: time,
        algbw_gbps: 1.0,
        busbw_gbps: 1.5,
        wrong: Some(0.0),
        ..Timing::default()
    };
    ResultRow {
        size,
        count: size / 4,
        dtype: "float".into(),
        redop: redop.into(),
        root,
        out_of_place: Some(t.clone()),
        in_place: Some(t),
        iterations: Some(20),
    }
}

#[test]
fn rows_take_collbench_names_cycles_and_rank_counts() {
    let sections = [
        section(
            "all_reduce_perf",
            vec![result(8, "sum", -1, 1.0), result(8, "sum", -1, 2.0)],
            4,
        ),
        section("broadcast_perf", vec![result(8, "none", 0, 3.0)], 4),
        section("sendrecv_perf", vec![result(8, "sum", -1, 4.0)], 4),
    ];
    let doc = into_run_document(&sections, "x.log (nccl-tests stdout)", "x").unwrap();
    assert_eq!(doc.rows.len(), 4);
    let r = &doc.rows[1];
    assert_eq!(
        (r.collective, r.op, r.root, r.cycle, r.ranks),
        (Collective::AllReduce, Some(ReduceOp::Sum), None, 1, 4)
    );
    assert_eq!(r.bus_factor, 1.5);
    assert_eq!(doc.rows[2].root, Some(0));
    // nccl-tests' sendrecv names an operator it does not use: collbench's has none.
    assert_eq!(doc.rows[3].op, None);
    assert_eq!(doc.header.life.status, RunStatus::Complete);
    assert_eq!(doc.header.ranks.len(), 4);
}

#[test]
fn unknown_operators_and_tests_are_left_out_with_a_note_and_an_unfinished_run_says_so() {
    let mut s = section(
        "all_reduce_perf",
        vec![result(8, "sum", -1, 1.0), result(8, "bogus", -1, 2.0)],
        2,
    );
    s.complete = false;
    let other = section("mystery_perf", vec![result(8, "", -1, 1.0)], 2);
    let doc = into_run_document(&[s, other], "x.json", "x").unwrap();
    assert_eq!(doc.rows.len(), 1);
    let left_out = doc
        .notes
        .iter()
        .find(|n| n.starts_with("left out"))
        .unwrap();
    assert!(left_out.contains("operator 'bogus'"), "{left_out}");
    assert!(left_out.contains("mystery_perf"), "{left_out}");
    assert_eq!(doc.header.life.status, RunStatus::Failed);
    assert!(doc.header.life.error.unwrap().contains("footer"));
}

#[test]
fn the_file_name_names_the_collective_of_an_old_log() {
    let mut s = section("x", vec![result(8, "sum", -1, 1.0)], 2);
    s.program = None;
    let doc = into_run_document(&[s.clone()], "old.log", "all_gather_perf").unwrap();
    assert_eq!(doc.rows[0].collective, Collective::AllGather);
    assert!(into_run_document(&[], "empty.log", "x")
        .unwrap_err()
        .contains("no table"));
}
