//! Energy beside time, read from the NVML stand-in (tests/fixtures/fake_nvml.c, COLLBENCH_TEST_NVML):
//! its energy counter rises at its draw (350 W at its default 400 W limit, in proportion to
//! FAKE_NVML_POWER_LIMIT_W), so each row's energy over its timed loop divided by the loop's time must
//! come back as that draw; into the table, the JSON, the workload ranking and `collbench plot`. The
//! ROCm SMI stand-in's energy count (650 W, 15.3 uJ a count) likewise.

mod common;

use common::{
    build_stand_in, collbench, fake_nvml, measurements, mpirun_json, schema_errors,
    schema_validator,
};
use serde_json::Value;

/// A 2-rank all_reduce with the stand-in at `limit_w` and the stand-in's other switches in `extra`.
fn run_at_limit(nvml: &str, limit_w: &str, extra: &[(&str, &str)]) -> common::Run {
    let mut env = vec![
        ("COLLBENCH_TEST_NVML", nvml),
        ("FAKE_NVML_POWER_LIMIT_W", limit_w),
    ];
    env.extend_from_slice(extra);
    let run = mpirun_json(
        2,
        "all_reduce -b 256K -e 1M -f 4 -n 40 -w 2 -c 0 --backend mpi --no-link-probe",
        &env,
    );
    run.assert_success();
    run
}

/// The counter moved at the stand-in's `draw` (W) over each loop: the readings bracket the clock, so
/// no loop reads below the draw, and what the loop did not time adds only the readings' few us, unless
/// the rank was descheduled between a reading and the clock (on a loaded 2-core machine one loop in
/// eight has read 2.6x the draw): the typical loop, the median, must read the draw.
fn assert_read_at(draws: &[f64], draw: f64) {
    for w in draws {
        assert!(*w > draw * 0.9, "{w} W against {draw} W: {draws:?}");
    }
    let typical = median(draws);
    assert!(
        typical < draw * 1.25,
        "median {typical} W against {draw} W: {draws:?}"
    );
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Each rank's draw over each timed loop: its joules over its own loop's seconds.
fn draws(doc: &Value) -> Vec<f64> {
    measurements(doc)
        .iter()
        .flat_map(|(_, m)| {
            let iterations = m["iterations"].as_f64().unwrap();
            let e = &m["energy"];
            e["rank_joules"]
                .as_array()
                .unwrap()
                .iter()
                .zip(m["rank_time_us"].as_array().unwrap())
                .filter_map(|(j, t)| Some(j.as_f64()? / (t.as_f64()? * iterations * 1e-6)))
                .collect::<Vec<f64>>()
        })
        .collect()
}

#[test]
fn rows_carry_their_timed_loops_energy_at_the_draw_of_the_limit_in_force_and_plot_against_busbw() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(dir.path()) else {
        return;
    };
    let full = run_at_limit(&nvml, "400", &[]);
    let capped = run_at_limit(&nvml, "300", &[]);
    let validator = schema_validator("run");
    for (run, limit, draw) in [(&full, 400.0, 350.0), (&capped, 300.0, 262.5)] {
        let doc = run.doc();
        assert!(
            schema_errors(&validator, &doc).is_empty(),
            "{:?}",
            schema_errors(&validator, &doc)
        );
        let ranks = doc["telemetry"]["ranks"].as_array().unwrap();
        assert!(ranks
            .iter()
            .all(|r| r["energy_counter"] == true
                && r["limits"]["power_limit_w"].as_f64() == Some(limit)));
        for (_, m) in measurements(&doc) {
            let e = &m["energy"];
            assert_eq!(e["ranks_read"], 2, "{m}");
            assert!(e["joules_per_op"].as_f64().unwrap() > 0.0);
            assert!(e["gb_per_joule"].as_f64().unwrap() > 0.0);
        }
        let d = draws(&doc);
        assert_eq!(d.len(), 2 * 2 * 2, "2 sizes x 2 placements x 2 ranks");
        assert_read_at(&d, draw);
        // GB per joule is the size over one rank's joules per operation.
        for (row, m) in measurements(&doc) {
            let e = &m["energy"];
            let per_rank = e["joules_per_op"].as_f64().unwrap() / 2.0;
            let want = row["size_bytes"].as_f64().unwrap() / per_rank / 1e9;
            assert!((e["gb_per_joule"].as_f64().unwrap() - want).abs() < want * 1e-9);
        }
        assert!(
            run.stdout.contains("(mJ/op)") && run.stdout.contains("(GB/J)"),
            "{}",
            run.stdout
        );
    }
    // A lower limit costs less energy for the same time (the median loop's, as above).
    let typical = |run: &common::Run| median(&draws(&run.doc()));
    assert!(
        typical(&capped) < typical(&full),
        "joules per second at 300 W against 400 W"
    );

    let svg = dir.path().join("energy.svg");
    let out = collbench()
        .arg("plot")
        .arg(&full.json)
        .arg(&capped.json)
        .arg("-o")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.contains("Bus bandwidth against energy"));
    assert!(picture.contains("(limit 400 W)") && picture.contains("(limit 300 W)"));
}

#[test]
fn an_amd_gpus_energy_count_reads_as_its_draw() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smi) = build_stand_in("fake_rocm_smi.c", "libfake-rocm-smi64.so", dir.path()) else {
        return;
    };
    let run = mpirun_json(
        2,
        "all_reduce -b 1M -e 1M -n 40 -w 2 -c 0 --backend mpi --no-link-probe",
        &[("COLLBENCH_TEST_ROCM_SMI", &smi)],
    );
    run.assert_success();
    let doc = run.doc();
    let d = draws(&doc);
    assert_eq!(d.len(), 4, "{doc}");
    assert_read_at(&d, 650.0);
}

#[test]
fn a_gpu_without_an_energy_counter_is_null_and_the_others_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(dir.path()) else {
        return;
    };
    let run = run_at_limit(&nvml, "400", &[("FAKE_NVML_NO_ENERGY_GPU", "1")]);
    let doc = run.doc();
    assert_eq!(doc["telemetry"]["ranks"][1]["energy_counter"], false);
    for (_, m) in measurements(&doc) {
        let e = &m["energy"];
        assert_eq!(e["ranks_read"], 1);
        assert!(e["rank_joules"][0].as_f64().unwrap() > 0.0);
        assert!(e["rank_joules"][1].is_null());
    }
}

#[test]
fn the_workload_ranking_carries_each_steps_energy_from_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(dir.path()) else {
        return;
    };
    let run = mpirun_json(
        2,
        "workload llama-3.1-8b --tp 2 --batch 8 --prefill none -n 20 --backend mpi",
        &[("COLLBENCH_TEST_NVML", &nvml)],
    );
    run.assert_success();
    let doc = run.doc();
    let errors = schema_errors(&schema_validator("workload"), &doc);
    assert!(errors.is_empty(), "{errors:?}");
    let message = &doc["messages"][0]["measurement"]["energy"];
    assert!(
        message["joules_per_op"].as_f64().unwrap() > 0.0,
        "{message}"
    );
    let tp2 = &doc["ranking"][0]["layouts"][0];
    assert_eq!(tp2["name"], "TP2");
    let parts = tp2["parts"].as_array().unwrap();
    let want: f64 = parts
        .iter()
        .map(|p| p["count"].as_f64().unwrap() * p["joules_each"].as_f64().unwrap())
        .sum();
    let joules = tp2["energy"]["joules"].as_f64().unwrap();
    assert!(joules > 0.0 && (joules - want).abs() < want * 1e-9, "{tp2}");
    assert!((tp2["energy"]["joules_per_token"].as_f64().unwrap() - joules / 8.0).abs() < 1e-9);
    assert!(run.stdout.contains("J per step"), "{}", run.stdout);
    assert!(run.stdout.contains("mJ/op"), "{}", run.stdout);
    // Each message of the step with its energy per operation beside its time.
    assert!(run.stdout.contains(" mJ each)"), "{}", run.stdout);
    // Every rank read a counter: no note that the joules count fewer.
    assert!(
        !run.stdout.contains("energy from the GPU counters of"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_workload_on_a_gpu_without_a_counter_says_its_joules_count_fewer_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(dir.path()) else {
        return;
    };
    let run = mpirun_json(
        2,
        "workload llama-3.1-8b --tp 2 --batch 8 --prefill none -n 20 --backend mpi",
        &[
            ("COLLBENCH_TEST_NVML", &nvml),
            ("FAKE_NVML_NO_ENERGY_GPU", "1"),
        ],
    );
    run.assert_success();
    let doc = run.doc();
    let note = "energy from the GPU counters of 1 of 2 ranks";
    let notes = doc["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().starts_with(note)),
        "{notes:?}"
    );
    assert!(
        run.stdout.contains(&format!("# note: {note}")),
        "{}",
        run.stdout
    );
    assert!(
        doc["ranking"][0]["layouts"][0]["energy"]["joules"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}
