//! The plot's tests: run labels, one series per run and collective, refusals, one rank, and energy on the x axis.

use super::*;
use crate::report::testdata::row;

#[test]
fn labels_are_stems_unless_alike() {
    let l = labels(&["a/base.json".into(), "b/new.json".into()]);
    assert_eq!(l, vec!["base", "new"]);
    let l = labels(&["a/run.json".into(), "b/run.json".into()]);
    assert_eq!(l, vec!["a/run.json", "b/run.json"]);
}

/// A recorded 4-rank run, whose rows a test replaces.
fn base_doc() -> RunDocument {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/base_4ranks.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

#[test]
fn one_series_per_run_and_collective_with_cycles_averaged() {
    let mut rows = vec![
        row(Collective::AllReduce, 1 << 20, 4, 10.0),
        row(Collective::AllReduce, 2 << 20, 4, 20.0),
        row(Collective::AllGather, 1 << 20, 4, 10.0),
    ];
    let mut again = row(Collective::AllReduce, 1 << 20, 4, 30.0);
    again.cycle = 1;
    rows.push(again);
    let doc = base_doc();
    let mut mine = doc.clone();
    mine.rows = rows;
    let runs = vec![PlottedRun {
        label: "x".into(),
        doc: mine,
        peak_gbps: None,
    }];
    let s = series(&runs, PlotPlacement::OutOfPlace, &[]);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].label, "x all_reduce");
    assert_eq!(s[0].points.len(), 2);
    assert_eq!(s[0].points[0].2, 20.0);
    let only = series(&runs, PlotPlacement::InPlace, &[Collective::AllGather]);
    assert_eq!(only.len(), 1);
}

#[test]
fn refuses_unknown_formats_and_empty_plots() {
    let s = vec![Series {
        label: "a".into(),
        points: vec![(1024.0, 1.0, 1.0)],
        energy: Vec::new(),
    }];
    let e = render(Path::new("x.jpg"), &s, &[]).unwrap_err();
    assert!(e.to_string().contains(".svg or .png"));
    let e = render(Path::new("x.svg"), &[], &[]).unwrap_err();
    assert!(e.to_string().contains("nothing to plot"));
    let zero = vec![Series {
        label: "a".into(),
        points: vec![(0.0, 1.0, 1.0)],
        energy: Vec::new(),
    }];
    let e = render(Path::new("x.svg"), &zero, &[]).unwrap_err();
    assert!(e.to_string().contains("0 bytes"));
}

#[test]
fn one_rank_all_reduce_has_no_busbw_but_still_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("solo.svg");
    let s = vec![Series {
        label: "solo all_reduce".into(),
        points: vec![(1024.0, 0.0, 5.0), (2048.0, 0.0, 6.0)],
        energy: Vec::new(),
    }];
    render(&out, &s, &[]).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("no value above 0"));
    // Only the time panel has a line.
    assert_eq!(svg.matches("stroke-width=\"2\" points").count(), 1);
}

#[test]
fn runs_with_energy_get_busbw_against_energy_labelled_by_power_limit() {
    let doc = base_doc();
    let at_limit = |watts: f64, joules: f64| {
        let mut d = doc.clone();
        d.rows = vec![row(Collective::AllReduce, 1 << 20, 4, 10.0)];
        let m = d.rows[0].out_of_place.as_mut().unwrap();
        m.energy = crate::report::document::Energy::from_ranks(vec![Some(joules); 4], 100, 1 << 20);
        d.telemetry = Some(crate::report::gpu_readings::TelemetryHeader {
            interval_ms: 50,
            ranks: (0..4)
                .map(|rank| crate::report::gpu_readings::RankSource {
                    rank,
                    source: Some("x".into()),
                    unavailable: None,
                    limits: Some(crate::report::gpu_readings::GpuLimits {
                        power_limit_w: Some(watts),
                        ..Default::default()
                    }),
                    energy_counter: true,
                })
                .collect(),
        });
        d
    };
    let runs = vec![
        PlottedRun {
            label: "full".into(),
            doc: at_limit(700.0, 0.5),
            peak_gbps: None,
        },
        PlottedRun {
            label: "capped".into(),
            doc: at_limit(500.0, 0.35),
            peak_gbps: None,
        },
    ];
    let s = series(&runs, PlotPlacement::OutOfPlace, &[]);
    assert_eq!(s[0].label, "full all_reduce (limit 700 W)");
    assert_eq!(s[1].label, "capped all_reduce (limit 500 W)");
    // 0.5 J over 100 operations on each GPU: 5 mJ per operation per GPU.
    assert!((s[0].energy[0].0 - 5.0).abs() < 1e-9);
    assert!((s[1].energy[0].0 - 3.5).abs() < 1e-9);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("energy.svg");
    render(&out, &s, &[]).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("Bus bandwidth against energy"), "energy panel");
    assert!(svg.contains("limit 500 W"));
    assert!(
        svg.contains("height=\"1500\""),
        "a third panel makes it taller"
    );
    // Without energy: the two panels and no limit in the labels.
    let mut plain = runs[0].doc.clone();
    plain.rows[0].out_of_place.as_mut().unwrap().energy = None;
    let s = series(
        &[PlottedRun {
            label: "plain".into(),
            doc: plain,
            peak_gbps: None,
        }],
        PlotPlacement::OutOfPlace,
        &[],
    );
    assert_eq!(s[0].label, "plain all_reduce");
    assert!(s[0].energy.is_empty());
}
