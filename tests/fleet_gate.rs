//! The `--expect` gate over a recorded 4-rank run: rules that pass, rules that fail, rules over sizes
//! without rows (which fail), fractions of an unknown peak, and the exit codes.

use collbench::error::{Error, ExitCode};
use collbench::fleet::gate::{judge, parse_rule, parse_rules, render};
use collbench::report::document::Row;
use collbench::report::json;
use std::path::Path;

fn rows() -> Vec<Row> {
    json::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/base_4ranks.json"))
        .unwrap()
        .rows
}

/// The busbw values of all_reduce rows in the recorded run, both placements.
fn all_reduce_busbw(rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.collective.name() == "all_reduce")
        .flat_map(|r| [&r.out_of_place, &r.in_place])
        .filter_map(|m| m.as_ref().map(|m| m.busbw_gbps))
        .collect()
}

#[test]
fn rules_just_below_and_just_above_the_recorded_values() {
    let rows = rows();
    let values = all_reduce_busbw(&rows);
    let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let pass = parse_rule(&format!("all_reduce:busbw>={}", lowest * 0.999)).unwrap();
    let fail = parse_rule(&format!("all_reduce:busbw>={}", lowest * 1.001)).unwrap();
    let report = judge(std::slice::from_ref(&pass), &rows, None, None);
    assert!(report.passed, "{}", render(&report));
    assert_eq!(report.verdicts[0].values_judged, values.len());
    assert_eq!(report.verdicts[0].worst_value, Some(lowest));
    assert_eq!(report.exit_code(), ExitCode::Success);
    let report = judge(&[pass, fail], &rows, None, None);
    assert!(!report.passed);
    assert_eq!(report.verdicts[1].values_failed, 1);
    assert_eq!(report.exit_code().code(), 8);
    assert!(render(&report).contains("FAILED (exit code 8)"));
}

#[test]
fn time_rules_over_a_size_range() {
    let rows = rows();
    let slowest_small = rows
        .iter()
        .filter(|r| r.size_bytes <= 64 << 10)
        .flat_map(|r| [&r.out_of_place, &r.in_place])
        .filter_map(|m| m.as_ref().map(|m| m.time_us))
        .fold(0.0, f64::max);
    let v = parse_rule(&format!("time<={}us@-64K", slowest_small + 0.01))
        .unwrap()
        .judge(&rows, None);
    assert!(v.passed, "{}", v.reason);
    assert_eq!(v.values_judged, 8, "2 collectives x 2 sizes x 2 placements");
    let v = parse_rule(&format!("time<={}us@-64K", slowest_small * 0.99))
        .unwrap()
        .judge(&rows, None);
    assert!(!v.passed);
}

#[test]
fn rules_without_rows_fail() {
    let rows = rows();
    for rule in ["busbw>=0@1G-16G", "broadcast:busbw>=0", "time<=1s@33K-63K"] {
        let report = judge(
            &parse_rules(&[rule.to_string()]).unwrap(),
            &rows,
            None,
            None,
        );
        assert!(!report.passed, "{rule}");
        assert_eq!(report.verdicts[0].values_judged, 0);
        assert_eq!(report.exit_code(), ExitCode::GateFailed);
    }
}

#[test]
fn fraction_of_the_peak() {
    let rows = rows();
    let highest = all_reduce_busbw(&rows).into_iter().fold(0.0, f64::max);
    let rule = parse_rule("all_reduce:busbw>=0.5peak").unwrap();
    assert!(!rule.judge(&rows, None).passed);
    // With the best value as the peak, the rule holds exactly when the worst value is half of it.
    let lowest = all_reduce_busbw(&rows)
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    assert_eq!(
        rule.judge(&rows, Some(highest)).passed,
        lowest >= 0.5 * highest
    );
    assert!(rule.judge(&rows, Some(lowest)).passed);
    assert!(!rule.judge(&rows, Some(3.0 * highest)).passed);
}

#[test]
fn parse_errors_are_usage_errors_naming_the_flag() {
    let e = parse_rules(&["busbw>=1".into(), "busbw>>1".into()]).unwrap_err();
    assert!(matches!(e, Error::Usage(_)));
    assert_eq!(e.exit_code(), ExitCode::Usage);
    assert!(e.to_string().starts_with("--expect 'busbw>>1'"), "{e}");
}
