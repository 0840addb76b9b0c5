//! GPU telemetry end to end under the real mpirun: two ranks on the mpi backend read "their" GPUs through
//! tests/fixtures/fake_nvml.c (COLLBENCH_TEST_NVML), rank 1's running hot at 1410 of 1785 MHz with a
//! thermal slowdown. The run must name the throttled rank with its reason, carry the readings in the
//! JSON, fail the throttle rules of the gate, and say once why there is no telemetry when there is none.

mod common;
use common::*;

#[test]
fn the_throttled_rank_is_named_with_its_reason_and_fails_the_gate() {
    let lib_dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(lib_dir.path()) else {
        return;
    };
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 64K -f 4 -n 4 -w 1 --backend mpi --telemetry --no-progress \
         --expect no-throttle --expect clock>=0.9max --expect all_reduce:busbw>=0",
        &[
            ("COLLBENCH_TEST_NVML", &nvml),
            ("FAKE_NVML_THROTTLED_GPU", "1"),
            // Rank 1 also finishes late, so the slow-rank summary has a suspect to explain: late by
            // more than a loaded machine's noise, in every measurement, as blame must be earned.
            ("COLLBENCH_TEST_DELAY", "1:20000"),
        ],
    );
    assert_eq!(run.code(), Some(8), "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    let doc = run.doc();
    assert_valid(&doc);
    let host = doc["ranks"][1]["host"].as_str().unwrap().to_string();

    // The table has the telemetry columns, with rank 1's clock as the lowest.
    assert!(out.contains("minSM"), "{out}");
    let first_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("1024 "))
        .unwrap();
    let cells: Vec<&str> = first_line.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 3], "1410", "{first_line}");
    assert_eq!(cells[cells.len() - 1], "350", "{first_line}");

    // The footer names the throttled rank and explains the slow one.
    assert!(
        out.contains(&format!("rank 1 on {host} (NVIDIA H100 NVL): thermal slowdown in 4 of 4 row(s); SM clock down to 1410 of 1785 MHz")),
        "{out}"
    );
    assert!(
        out.contains(&format!("#   rank 1 on {host} slow by "))
            && out.contains("%: SM clock 1410 of 1785 MHz, reason thermal slowdown"),
        "{out}"
    );
    assert!(out.contains("# Expect no-throttle : FAILED"), "{out}");
    assert!(out.contains("# Expect clock>=0.9max : FAILED"), "{out}");
    assert!(
        out.contains("# Expect all_reduce:busbw>=0 : PASSED"),
        "{out}"
    );

    // The header records each GPU's limits; each row each rank's readings.
    let limits = &doc["telemetry"]["ranks"][1]["limits"];
    assert_eq!(limits["max_sm_clock_mhz"], 1785);
    assert_eq!(limits["power_limit_w"], 400.0);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 4);
    for row in doc["rows"].as_array().unwrap() {
        let calm = &row["telemetry"][0];
        let hot = &row["telemetry"][1];
        assert_eq!(calm["sm_clock_mhz"]["min"], 1785.0, "{row}");
        assert_eq!(calm["throttle_reasons"], serde_json::json!([]));
        assert_eq!(hot["sm_clock_mhz"]["min"], 1410.0);
        assert_eq!(
            hot["throttle_reasons"],
            serde_json::json!(["sw_thermal_slowdown"])
        );
        assert_eq!(hot["power_w"]["max"], 310.0);
        assert_eq!(hot["pcie_gen"]["min"], 5.0);
        assert_eq!(hot["ecc_uncorrected"]["max"], 0.0);
        assert!(hot["samples"].as_u64().unwrap() >= 1);
        assert!(hot["temperature_c"]["min"].as_f64().unwrap() >= 85.0);
        assert!((hot["sm_clock_of_max"].as_f64().unwrap() - 1410.0 / 1785.0).abs() < 1e-9);
    }
    // Temperature rises reading after reading on the fake: the last row is the hottest.
    let temps: Vec<f64> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["telemetry"][0]["temperature_c"]["max"].as_f64().unwrap())
        .collect();
    assert!(temps.windows(2).all(|w| w[0] <= w[1]), "{temps:?}");
    assert!(temps[3] > temps[0], "{temps:?}");

    let summary = &doc["summary"]["telemetry"];
    assert_eq!(summary["ranks_sampled"], 2);
    assert_eq!(summary["throttled"][0]["rank"], 1);
    assert_eq!(
        summary["throttled"][0]["reasons"],
        serde_json::json!(["sw_thermal_slowdown"])
    );
    assert_eq!(summary["slow_rank_evidence"][0]["rank"], 1);
    let verdicts = doc["summary"]["gate"]["verdicts"].as_array().unwrap();
    assert_eq!(verdicts[0]["passed"], false);
    // Each measurement (4 rows x 2 placements) saw one throttled rank.
    assert_eq!(verdicts[0]["values_failed"], 8);
}

#[test]
fn calm_gpus_pass_the_throttle_rules() {
    let lib_dir = tempfile::tempdir().unwrap();
    let Some(nvml) = fake_nvml(lib_dir.path()) else {
        return;
    };
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 4K -n 2 --backend mpi --no-progress --expect no-throttle@1K- --expect clock>=95%max",
        &[("COLLBENCH_TEST_NVML", &nvml)],
    );
    run.assert_success();
    assert!(
        run.stdout
            .contains("# Throttled GPUs       : none (readings of 2 rank(s) in 3 row(s))"),
        "{}",
        run.stdout
    );
    // Without --telemetry the table keeps nccl-tests' columns; the JSON has the readings anyway.
    assert!(!run.stdout.contains("minSM"));
    let doc = run.doc();
    assert_valid(&doc);
    assert_eq!(
        doc["rows"][0]["telemetry"][1]["sm_clock_mhz"]["max"],
        1785.0
    );
}

#[test]
fn without_a_gpu_library_the_run_says_why_once_and_throttle_rules_fail() {
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 4K -n 2 --backend mpi --no-progress --expect no-throttle",
        &[],
    );
    assert_eq!(run.code(), Some(8), "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert_eq!(out.matches("no GPU telemetry").count(), 1, "{out}");
    assert!(
        out.contains(
            "no GPU telemetry on 2 of 2 rank(s) (rank(s) 0 1: this backend moves host memory"
        ),
        "{out}"
    );
    assert!(!out.contains("Throttled GPUs"), "{out}");
    assert!(
        out.contains("needs GPU telemetry"),
        "the gate never passes a rule it could not check: {out}"
    );
    let doc = run.doc();
    assert_valid(&doc);
    assert!(doc["rows"][0]["telemetry"].is_null());
    assert!(doc["summary"]["telemetry"].is_null());
    assert_eq!(
        doc["telemetry"]["ranks"][0]["source"],
        serde_json::Value::Null
    );

    // --no-telemetry reads nothing and refuses a rule it could never judge.
    let off = mpirun_json(
        2,
        "all_reduce -b 1K -e 1K -n 2 --backend mpi --no-telemetry",
        &[],
    );
    off.assert_success();
    assert!(!off.stdout.contains("no GPU telemetry"));
    assert!(off.doc()["telemetry"].is_null());
    let refused = collbench()
        .args(["all_reduce", "--no-telemetry", "--expect", "no-throttle"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--no-telemetry"));
}

#[test]
fn amd_gpus_read_through_rocm_smi_name_the_throttled_rank() {
    let lib_dir = tempfile::tempdir().unwrap();
    let Some(smi) = build_stand_in("fake_rocm_smi.c", "libfake-rocm-smi64.so", lib_dir.path())
    else {
        return;
    };
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 4K -f 4 -n 4 -w 1 --backend mpi --telemetry --no-progress \
         --expect no-throttle --expect clock>=0.9max",
        &[
            ("COLLBENCH_TEST_ROCM_SMI", &smi),
            ("FAKE_ROCM_SMI_THROTTLED_GPU", "1"),
        ],
    );
    assert_eq!(run.code(), Some(8), "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    let doc = run.doc();
    assert_valid(&doc);
    let host = doc["ranks"][1]["host"].as_str().unwrap().to_string();
    assert!(
        out.contains(&format!("rank 1 on {host} (AMD Instinct MI300X): thermal slowdown in 2 of 2 row(s); SM clock down to 1700 of 2100 MHz")),
        "{out}"
    );
    assert!(out.contains("# Expect no-throttle : FAILED"), "{out}");
    assert!(out.contains("# Expect clock>=0.9max : FAILED"), "{out}");

    let header = &doc["telemetry"]["ranks"][1];
    assert!(
        header["source"]
            .as_str()
            .unwrap()
            .starts_with("ROCm SMI 7.6.0 ("),
        "{header}"
    );
    assert!(header["source"]
        .as_str()
        .unwrap()
        .ends_with("GPU 1 0000:2f:00.0"));
    assert_eq!(header["limits"]["max_sm_clock_mhz"], 2100);
    assert_eq!(header["limits"]["max_mem_clock_mhz"], 1300);
    assert_eq!(header["limits"]["power_limit_w"], 750.0);
    assert_eq!(header["limits"]["default_power_limit_w"], 750.0);
    for row in doc["rows"].as_array().unwrap() {
        let calm = &row["telemetry"][0];
        let hot = &row["telemetry"][1];
        assert_eq!(calm["sm_clock_mhz"]["min"], 2100.0, "{row}");
        assert_eq!(calm["throttle_reasons"], serde_json::json!([]));
        assert!(calm["temperature_c"]["min"].as_f64().unwrap() >= 60.0);
        assert_eq!(hot["sm_clock_mhz"]["min"], 1700.0);
        assert_eq!(hot["mem_clock_mhz"]["max"], 1300.0);
        assert_eq!(
            hot["throttle_reasons"],
            serde_json::json!(["sw_thermal_slowdown"])
        );
        assert_eq!(hot["power_w"]["max"], 650.0);
        assert_eq!(hot["pcie_gen"]["min"], 5.0);
        assert_eq!(hot["pcie_width"]["min"], 16.0);
        assert_eq!(hot["ecc_corrected"]["max"], 3.0);
        assert_eq!(hot["ecc_uncorrected"]["max"], 0.0);
        assert!(hot["temperature_c"]["min"].as_f64().unwrap() >= 95.0);
    }
    let summary = &doc["summary"]["telemetry"];
    assert_eq!(summary["ranks_sampled"], 2);
    assert_eq!(summary["throttled"].as_array().unwrap().len(), 1);
    assert_eq!(summary["throttled"][0]["rank"], 1);
}

/// The same stand-in answering in ROCm 5's layouts (Debian 12's ROCm SMI 5.2.3, whose library reports
/// 1.0.0): clocks and the PCIe link read at ROCm 5's offsets come out the same, the power is the average
/// power, and the throttled GPU's ASIC-specific bit names no reason.
#[test]
fn amd_gpus_read_through_rocm_5_layouts() {
    let lib_dir = tempfile::tempdir().unwrap();
    let Some(smi) = build_stand_in("fake_rocm_smi.c", "libfake-rocm-smi64.so", lib_dir.path())
    else {
        return;
    };
    let run = mpirun_json(
        2,
        "all_reduce -b 1K -e 1K -n 4 -w 1 --backend mpi --telemetry --no-progress \
         --expect clock>=0.9max",
        &[
            ("COLLBENCH_TEST_ROCM_SMI", &smi),
            ("FAKE_ROCM_SMI_THROTTLED_GPU", "1"),
            ("FAKE_ROCM_SMI_LAYOUT", "5"),
        ],
    );
    assert_eq!(run.code(), Some(8), "{}\n{}", run.stdout, run.stderr);
    let doc = run.doc();
    assert_valid(&doc);
    let source = doc["telemetry"]["ranks"][1]["source"].as_str().unwrap();
    assert!(source.starts_with("ROCm SMI 1.0.0 ("), "{source}");
    assert_eq!(
        doc["telemetry"]["ranks"][1]["limits"]["max_sm_clock_mhz"],
        2100
    );
    let row = &doc["rows"][0];
    let (calm, hot) = (&row["telemetry"][0], &row["telemetry"][1]);
    assert_eq!(calm["sm_clock_mhz"]["min"], 2100.0, "{row}");
    assert_eq!(hot["sm_clock_mhz"]["min"], 1700.0, "{row}");
    assert_eq!(hot["mem_clock_mhz"]["max"], 1300.0);
    assert_eq!(hot["pcie_gen"]["min"], 5.0);
    assert_eq!(hot["pcie_width"]["min"], 16.0);
    assert_eq!(hot["power_w"]["max"], 640.0);
    assert_eq!(hot["ecc_corrected"]["max"], 3.0);
    // A set ASIC-specific bit means something different on each chip: no reason is named for it, and
    // only the clock rule catches the held-down GPU.
    assert_eq!(hot["throttle_reasons"], serde_json::json!([]), "{row}");
    assert_eq!(
        doc["summary"]["telemetry"]["throttled"],
        serde_json::json!([])
    );
    assert!(
        run.stdout.contains("# Expect clock>=0.9max : FAILED"),
        "{}",
        run.stdout
    );
}
