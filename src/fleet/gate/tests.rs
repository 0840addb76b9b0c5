//! The gate's tests: parsing rules, judging rows, and never failing open.

use super::*;
use crate::error::Error;
use crate::report::testdata::row;

fn rows() -> Vec<Row> {
    // all_reduce on 4 ranks: 1 MiB in 10 us and 64 MiB in 400 us; all_gather 1 MiB in 20 us.
    vec![
        row(Collective::AllReduce, 1 << 20, 4, 10.0),
        row(Collective::AllReduce, 64 << 20, 4, 400.0),
        row(Collective::AllGather, 1 << 20, 4, 20.0),
    ]
}

#[test]
fn min_bw_fails_below_nine_tenths_as_nccl_tests_and_never_open() {
    let avg = |gbps| BusBwFigure {
        gbps,
        values: 4,
        covers: "test".into(),
    };
    assert!(judge_min_bw(100.0, Some(&avg(90.0))).passed);
    let below = judge_min_bw(100.0, Some(&avg(89.9)));
    assert!(!below.passed);
    assert_eq!(below.threshold_gbps, 90.0);
    assert!(!judge_min_bw(1.0, None).passed, "nothing measured fails");
}

#[test]
fn parses_the_documented_forms() {
    let r = parse_rule("all_reduce:busbw>=180@1G-16G").unwrap();
    assert_eq!(r.collective, Some(Collective::AllReduce));
    assert_eq!(
        (r.metric, r.comparison, r.bound),
        (Metric::BusBw, Comparison::AtLeast, Bound::Absolute(180.0))
    );
    assert_eq!((r.min_bytes, r.max_bytes), (Some(1 << 30), Some(16 << 30)));
    let r = parse_rule("busbw>=0.9peak@64M-").unwrap();
    assert_eq!(r.collective, None);
    assert_eq!(r.bound, Bound::FractionOfPeak(0.9));
    assert_eq!((r.min_bytes, r.max_bytes), (Some(64 << 20), None));
    let r = parse_rule(" allreduce : time <= 2ms @ -64K ").unwrap();
    assert_eq!(r.bound, Bound::Absolute(2000.0));
    assert_eq!((r.min_bytes, r.max_bytes), (None, Some(64 << 10)));
    assert_eq!(
        parse_rule("busbw>=90%peak").unwrap().bound,
        Bound::FractionOfPeak(0.9)
    );
    assert_eq!(parse_rule("cv<5%@1M").unwrap().min_bytes, Some(1 << 20));
}

#[test]
fn bad_rules_name_the_flag_and_the_fix() {
    for bad in [
        "",
        "busbw",
        "speed>=3",
        "busbw>=fast",
        "busbw=>3",
        "allreduc:busbw>=3",
        "time>=0.9peak",
        "busbw>=90peak",
        "busbw>=3@64M-1M",
        "busbw>=3@12Q",
        "busbw>=3@",
        "busbw>=-1",
    ] {
        let e = parse_rule(bad).expect_err(bad);
        assert!(matches!(e, Error::Usage(_)), "{bad}");
        let text = e.to_string();
        assert!(text.contains("--expect"), "{text}");
        assert!(text.contains("e.g."), "{text}");
    }
}

#[test]
fn passing_and_failing_rules() {
    let rows = rows();
    // 1 MiB in 10 us is 104.9 GB/s algbw, 157.3 busbw; 64 MiB in 400 us is 167.8 algbw, 251.7 busbw.
    let pass = parse_rule("all_reduce:busbw>=150")
        .unwrap()
        .judge(&rows, None);
    assert!(pass.passed, "{}", pass.reason);
    assert_eq!((pass.values_judged, pass.values_failed), (4, 0));
    assert!((pass.worst_value.unwrap() - 157.286).abs() < 1e-2);
    let fail = parse_rule("all_reduce:busbw>=200")
        .unwrap()
        .judge(&rows, None);
    assert!(!fail.passed);
    assert_eq!(fail.values_failed, 2);
    assert!(fail.worst_at.as_deref().unwrap().contains("1M"));
    let time = parse_rule("time<=15us@-1M").unwrap().judge(&rows, None);
    // all_gather at 1 MiB takes 20 us.
    assert!(!time.passed);
    assert_eq!(time.worst_value, Some(20.0));
    assert!(time.worst_at.unwrap().starts_with("all_gather"));
}

#[test]
fn a_rule_without_values_fails() {
    let v = parse_rule("busbw>=1@1G-").unwrap().judge(&rows(), None);
    assert!(!v.passed);
    assert_eq!(v.values_judged, 0);
    assert!(v.reason.contains("no measured value"), "{}", v.reason);
    let v = parse_rule("broadcast:busbw>=1")
        .unwrap()
        .judge(&rows(), None);
    assert!(!v.passed);
}

#[test]
fn fraction_of_peak_needs_the_peak() {
    let rule = parse_rule("all_reduce:busbw>=0.5peak@64M").unwrap();
    let unknown = rule.judge(&rows(), None);
    assert!(!unknown.passed);
    assert!(unknown.reason.contains("peak"), "{}", unknown.reason);
    assert!(rule.judge(&rows(), Some(400.0)).passed);
    assert!(!rule.judge(&rows(), Some(600.0)).passed);
}

#[test]
fn broken_values_fail() {
    let mut rows = rows();
    rows[0].out_of_place.as_mut().unwrap().busbw_gbps = f64::NAN;
    let v = parse_rule("busbw>=1").unwrap().judge(&rows, None);
    assert!(!v.passed);
    assert!(v.worst_value.unwrap().is_nan());
    rows[1].in_place.as_mut().unwrap().stats = None;
    let v = parse_rule("p99<=1s").unwrap().judge(&rows, None);
    assert!(!v.passed);
    assert!(v.reason.contains("statistics"));
}

#[test]
fn gate_passes_only_when_every_rule_does() {
    let rules = parse_rules(&["busbw>=1".into(), "time<=1s".into()]).unwrap();
    let report = judge(&rules, &rows(), None, None);
    assert!(report.passed);
    assert_eq!(report.exit_code(), ExitCode::Success);
    let rules = parse_rules(&["busbw>=1".into(), "time<=1us".into()]).unwrap();
    let report = judge(&rules, &rows(), None, None);
    assert!(!report.passed);
    assert_eq!(report.exit_code().code(), 8);
    let text = render(&report);
    assert!(text.contains("PASSED") && text.contains("FAILED"), "{text}");
    assert_eq!(
        serde_json::to_value(&rules[1]).unwrap(),
        serde_json::json!("time<=1us")
    );
    let back: GateReport = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back.verdicts.len(), 2);
}

#[test]
fn no_link_errors_fails_on_a_rise_a_reset_a_host_without_counters_or_none_at_all() {
    use crate::fleet::link_errors::{compare, merge};
    use crate::topo::port_counters::PortCounters;
    let port = |n: u64| PortCounters {
        device: "mlx5_3".into(),
        port: 1,
        counters: [("symbol_error".to_string(), n)].into(),
    };
    let rule = parse_rule("no-link-errors").unwrap();
    assert_eq!(
        (rule.metric, rule.comparison, rule.bound),
        (Metric::LinkErrors, Comparison::AtMost, Bound::Absolute(0.0))
    );
    for bad in ["all_reduce:no-link-errors", "no-link-errors@1M-"] {
        let e = parse_rule(bad).expect_err(bad).to_string();
        assert!(e.contains("whole run"), "{e}");
    }
    let judge_one =
        |r: Option<LinkErrorReport>| judge(std::slice::from_ref(&rule), &rows(), None, r.as_ref());

    let quiet = merge([compare("a", &[port(5)], &[port(5)])]);
    let gate = judge_one(quiet);
    assert!(gate.passed, "{:?}", gate.verdicts);
    assert_eq!(gate.verdicts[0].values_judged, 1);

    let rose = merge([
        compare("a", &[port(5)], &[port(5)]),
        compare("node7", &[port(5)], &[port(1209)]),
    ]);
    let gate = judge_one(rose.clone());
    assert_eq!(gate.exit_code(), ExitCode::GateFailed);
    let v = &gate.verdicts[0];
    assert_eq!((v.values_judged, v.values_failed), (2, 1));
    assert_eq!(v.worst_value, Some(1204.0));
    assert_eq!(
        v.worst_at.as_deref(),
        Some("node7 mlx5_3 port 1: symbol_error +1204")
    );
    // A bound that allows them passes.
    let lenient = parse_rule("link_errors<=2000").unwrap();
    assert!(lenient.judge_link_errors(rose.as_ref()).passed);

    let reset = merge([compare("a", &[port(5)], &[port(0)])]);
    let v = rule.judge_link_errors(reset.as_ref());
    assert!(!v.passed);
    assert!(v.reason.contains("reset"), "{}", v.reason);
    assert!(!lenient.judge_link_errors(reset.as_ref()).passed);

    let partial = merge([compare("a", &[port(5)], &[port(5)]), compare("b", &[], &[])]);
    let v = rule.judge_link_errors(partial.as_ref());
    assert!(!v.passed);
    assert!(v.reason.contains("on b"), "{}", v.reason);

    let v = rule.judge_link_errors(None);
    assert!(!v.passed);
    assert!(v.reason.contains("never passes"), "{}", v.reason);
    // The row rules alone do not see link errors.
    assert!(!rule.judge(&rows(), None).passed);
}

fn with_readings(mut row: Row, clocks: &[Option<(f64, bool)>]) -> Row {
    use crate::report::gpu_readings::{Range, RankTelemetry};
    row.telemetry = Some(
        clocks
            .iter()
            .map(|c| {
                c.map(|(ratio, throttled)| RankTelemetry {
                    samples: 1,
                    sm_clock_mhz: Some(Range {
                        min: ratio * 1980.0,
                        max: 1980.0,
                    }),
                    sm_clock_of_max: Some(ratio),
                    throttle_reasons: if throttled {
                        vec!["sw_power_cap".into()]
                    } else {
                        vec![]
                    },
                    ..RankTelemetry::default()
                })
            })
            .collect(),
    );
    row
}

#[test]
fn telemetry_rules_judge_every_rank_and_fail_without_readings() {
    let r = parse_rule("all_reduce:no-throttle@1M-").unwrap();
    assert_eq!(
        (r.metric, r.comparison, r.bound),
        (Metric::Throttled, Comparison::AtMost, Bound::Absolute(0.0))
    );
    assert_eq!(r.min_bytes, Some(1 << 20));
    assert_eq!(
        parse_rule("clock>=90%max").unwrap().bound,
        Bound::Absolute(0.9)
    );
    assert_eq!(
        parse_rule("clock >= 0.85").unwrap().bound,
        Bound::Absolute(0.85)
    );
    assert!(matches!(parse_rule("clock>=1.2max"), Err(Error::Usage(_))));

    let calm = vec![with_readings(
        row(Collective::AllReduce, 1 << 20, 2, 10.0),
        &[Some((0.99, false)), Some((0.97, false))],
    )];
    let hot = vec![with_readings(
        row(Collective::AllReduce, 1 << 20, 2, 10.0),
        &[Some((0.99, false)), Some((0.71, true))],
    )];
    let none = vec![row(Collective::AllReduce, 1 << 20, 2, 10.0)];
    let partial = vec![with_readings(
        row(Collective::AllReduce, 1 << 20, 2, 10.0),
        &[Some((0.99, false)), None],
    )];
    let no_throttle = parse_rule("no-throttle").unwrap();
    assert!(no_throttle.judge(&calm, None).passed);
    let v = no_throttle.judge(&hot, None);
    assert!(!v.passed);
    assert_eq!(v.worst_value, Some(1.0));
    let clock = parse_rule("clock>=0.9max").unwrap();
    assert!(clock.judge(&calm, None).passed);
    let v = clock.judge(&hot, None);
    assert!(!v.passed);
    assert!((v.worst_value.unwrap() - 0.71).abs() < 1e-12);
    for rows in [&none, &partial] {
        let v = no_throttle.judge(rows, None);
        assert!(!v.passed);
        assert!(v.reason.contains("GPU telemetry"), "{}", v.reason);
    }
}
