//! `collbench plot` on recorded runs: an SVG with one line per run, collective and panel and the legend
//! names, and a real PNG.

use collbench::app::main as plot_main;
use collbench::report::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn argv(args: &[&str]) -> Vec<String> {
    ["collbench", "plot"]
        .into_iter()
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

/// "STEM COLLECTIVE" for every collective of each run: the series the plot must draw.
fn expected_series(runs: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for run in runs {
        let doc = json::read(&data(run)).unwrap();
        let stem = run.trim_end_matches(".json");
        let collectives: BTreeSet<&str> = doc.rows.iter().map(|r| r.collective.name()).collect();
        names.extend(collectives.iter().map(|c| format!("{stem} {c}")));
    }
    names
}

/// Polylines drawn as data (axes and ticks are polylines 1 pixel wide).
fn data_lines(svg: &str) -> usize {
    let width = format!("stroke-width=\"{}\"", collbench::fleet::plot::SERIES_WIDTH);
    svg.lines()
        .filter(|l| l.contains("<polyline") && l.contains(&width))
        .count()
}

#[test]
fn svg_has_a_line_per_series_in_both_panels_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs.svg");
    let runs = ["base_4ranks.json", "slow_rank2_4ranks.json"];
    let paths: Vec<String> = runs.iter().map(|r| data(r).display().to_string()).collect();
    let mut args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out_text = out.display().to_string();
    args.extend(["-o", &out_text]);
    assert_eq!(plot_main(argv(&args)), 0);

    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..100]);
    assert!(svg.trim_end().ends_with("</svg>"));
    let series = expected_series(&runs);
    assert!(series.len() >= 4);
    // Busbw and time panels: one data line per series in each.
    assert_eq!(data_lines(&svg), 2 * series.len());
    for name in &series {
        // In each panel's legend.
        assert_eq!(
            svg.matches(&format!("\n{name}\n")).count(),
            2,
            "legend lacks {name}"
        );
    }
    assert!(svg.contains("Bus bandwidth") && svg.contains("Time per operation"));
}

#[test]
fn peak_adds_a_line_and_a_legend_entry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("peak.svg");
    let run = data("base_4ranks.json").display().to_string();
    let out_text = out.display().to_string();
    assert_eq!(
        plot_main(argv(&[&run, "-o", &out_text, "--peak", "2.5"])),
        0
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    let series = expected_series(&["base_4ranks.json"]);
    assert_eq!(data_lines(&svg), 2 * series.len() + 1);
    assert!(svg.contains("peak 2.5 GB/s"));
}

#[test]
fn png_is_a_real_picture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs.png");
    let run = data("base_4ranks.json").display().to_string();
    let out_text = out.display().to_string();
    assert_eq!(plot_main(argv(&[&run, "-o", &out_text])), 0);
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "only {} bytes", png.len());
}

#[test]
fn bad_input_gives_usage_or_io_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = data("base_4ranks.json").display().to_string();
    let jpg = dir.path().join("x.jpg").display().to_string();
    assert_eq!(plot_main(argv(&[&run, "-o", &jpg])), 2);
    let svg = dir.path().join("x.svg").display().to_string();
    let missing = dir.path().join("missing.json").display().to_string();
    assert_eq!(plot_main(argv(&[&missing, "-o", &svg])), 10);
    let not_results = dir.path().join("bad.json");
    std::fs::write(&not_results, "{\"hello\": 1}").unwrap();
    assert_eq!(
        plot_main(argv(&[&not_results.display().to_string(), "-o", &svg])),
        2
    );
    assert_eq!(
        plot_main(argv(&[&run, "-o", &svg, "--collective", "broadcast"])),
        2
    );
    assert_eq!(
        plot_main(argv(&[&run, "-o", &svg, "--collective", "nonsense"])),
        2
    );
    assert_eq!(plot_main(argv(&[&run])), 2, "-o is required");
    let unwritable = dir.path().join("no/such/dir/x.svg").display().to_string();
    assert_eq!(plot_main(argv(&[&run, "-o", &unwritable])), 10);
}

#[test]
fn nccl_tests_outputs_plot_beside_a_collbench_run() {
    // A collbench run, nccl-tests' stdout log and its -J document (tests/data/nccl-tests/README.md).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("history.svg");
    let run = data("base_4ranks.json").display().to_string();
    let log = data("nccl-tests/all_reduce_perf_4ranks.log")
        .display()
        .to_string();
    let json = data("nccl-tests/all_gather_perf_4ranks_I1.json")
        .display()
        .to_string();
    let out_text = out.display().to_string();
    assert_eq!(plot_main(argv(&[&run, &log, &json, "-o", &out_text])), 0);
    let svg = std::fs::read_to_string(&out).unwrap();
    let series = [
        "base_4ranks all_reduce",
        "base_4ranks all_gather",
        "all_reduce_perf_4ranks all_reduce",
        "all_gather_perf_4ranks_I1 all_gather",
    ];
    assert_eq!(data_lines(&svg), 2 * series.len());
    for name in series {
        assert_eq!(
            svg.matches(&format!("\n{name}\n")).count(),
            2,
            "legend lacks {name}"
        );
    }
    // The in-place panel of a log whose last row was cut short still draws its other rows.
    let died = data("nccl-tests/all_reduce_perf_died.json")
        .display()
        .to_string();
    assert_eq!(
        plot_main(argv(&[&died, "-o", &out_text, "--placement", "in-place"])),
        0
    );
    assert_eq!(data_lines(&std::fs::read_to_string(&out).unwrap()), 2);
}
