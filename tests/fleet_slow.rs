//! Slow-rank attribution on recorded 4-rank runs: rank 2 delayed by COLLBENCH_TEST_DELAY=2:2000 is
//! named with its host; an undisturbed run names nobody at a generous threshold.

use collbench::fleet::slow::{attribute, render, DEFAULT_THRESHOLD_PERCENT};
use collbench::report::json;
use std::path::Path;

fn read(name: &str) -> collbench::report::document::RunDocument {
    json::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_delayed_rank_and_its_host_are_named() {
    let doc = read("slow_rank2_4ranks.json");
    assert!(doc
        .header
        .command_line
        .iter()
        .any(|a| a.contains("collbench")));
    let report = attribute(&doc.rows, &doc.header.ranks, DEFAULT_THRESHOLD_PERCENT);
    let measured = doc
        .rows
        .iter()
        .map(|r| r.out_of_place.is_some() as usize + r.in_place.is_some() as usize)
        .sum::<usize>();
    assert_eq!(report.judged, measured);
    assert_eq!(report.suspect_ranks.len(), 1, "{}", render(&report));
    let suspect = &report.suspect_ranks[0];
    assert_eq!(suspect.rank, 2);
    let host = &doc.header.ranks.iter().find(|r| r.rank == 2).unwrap().host;
    assert_eq!(&suspect.host, host);
    // The delay touches every measurement.
    assert_eq!(suspect.flagged_in, measured);
    assert_eq!(report.suspect_hosts[0].ranks, vec![2]);
    let text = render(&report);
    assert!(text.contains(&format!("rank 2 on {host}")), "{text}");
}

#[test]
fn an_undisturbed_run_names_nobody() {
    let doc = read("base_4ranks.json");
    // Scheduler noise on a shared host makes some rank the slowest beyond 10 % in a row now and
    // then; no rank is so in most rows, so nobody is named.
    let report = attribute(&doc.rows, &doc.header.ranks, DEFAULT_THRESHOLD_PERCENT);
    assert!(report.suspect_ranks.is_empty(), "{}", render(&report));
    assert!(render(&report).contains("none"));
}
