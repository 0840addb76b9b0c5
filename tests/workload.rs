//! `collbench workload` under the real mpirun on the mpi backend (4 ranks): the message list of a
//! preset and of a config.json against sizes and counts computed by hand, every message measured on its
//! layout's groups, the ranking printed and in the JSON, the document valid against its schema; and the
//! bad inputs that exit 2 before anything is measured.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn assert_workload_valid(doc: &Value) {
    let errors = schema_errors(&schema_validator("workload"), doc);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
}

/// (group size, collective, EP half or "", bytes) of every measured message.
fn message_set(doc: &Value) -> BTreeSet<(u64, String, String, u64)> {
    doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["group_size"].as_u64().unwrap(),
                m["collective"].as_str().unwrap().to_string(),
                m["route"]["half"].as_str().unwrap_or("").to_string(),
                m["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every message was measured, checked with no wrong element, and took some time.
fn assert_all_measured(doc: &Value) {
    for m in doc["messages"].as_array().unwrap() {
        let x = &m["measurement"];
        assert!(x.is_object(), "not measured: {m}");
        assert_eq!(x["wrong"], 0, "{m}");
        assert!(x["time_us"].as_f64().unwrap() > 0.0, "{m}");
        // Every group of the layout ran it at once: one figure per group.
        let groups = 4 / m["group_size"].as_u64().unwrap() as usize;
        assert_eq!(x["groups"].as_array().unwrap().len(), groups, "{m}");
    }
}

/// A layout's breakdown in a phase: (collective, bytes, count) per part.
fn parts(doc: &Value, phase: usize, layout: &str) -> Vec<(String, u64, u64)> {
    let ranked = doc["ranking"][phase]["layouts"].as_array().unwrap();
    let l = ranked
        .iter()
        .find(|l| l["name"] == layout)
        .unwrap_or_else(|| panic!("{layout} not ranked in phase {phase}"));
    l["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["collective"].as_str().unwrap().to_string(),
                p["bytes"].as_u64().unwrap(),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Each phase's layouts are in order of step time, the first is the only winner, and each step time is
/// the sum of its messages' measured times times their counts.
fn assert_ranked(doc: &Value, phases: usize, layouts: usize) {
    let ranking = doc["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), phases);
    for r in ranking {
        let ranked = r["layouts"].as_array().unwrap();
        assert_eq!(ranked.len(), layouts, "{r}");
        let times: Vec<f64> = ranked
            .iter()
            .map(|l| l["step_time_us"].as_f64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        let winners: Vec<u64> = ranked
            .iter()
            .filter(|l| l["winner"] == true)
            .map(|l| l["place"].as_u64().unwrap())
            .collect();
        assert_eq!(winners, [1]);
        for l in ranked {
            let mut sum = 0.0;
            for p in l["parts"].as_array().unwrap() {
                let measured = doc["messages"][p["message"].as_u64().unwrap() as usize]
                    ["measurement"]["time_us"]
                    .as_f64()
                    .unwrap();
                assert_eq!(p["time_us_each"].as_f64().unwrap(), measured);
                sum += measured * p["count"].as_f64().unwrap();
            }
            let step = l["step_time_us"].as_f64().unwrap();
            assert!((step - sum).abs() <= 1e-9 * sum.max(1.0), "{step} vs {sum}");
        }
    }
}

#[test]
fn a_small_moe_config_gives_the_hand_computed_messages_measured_and_ranked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    // 4 layers of which the first is dense (3 MoE), 8 experts top-2, hidden 1024 in bf16: one token is
    // 2048 bytes.
    std::fs::write(
        &config,
        r#"{"architectures": ["TinyMoe"], "hidden_size": 1024, "num_hidden_layers": 4,
            "first_k_dense_replace": 1, "n_routed_experts": 8, "num_experts_per_tok": 2,
            "torch_dtype": "bfloat16", "vocab_size": 1000}"#,
    )
    .unwrap();
    let args = format!(
        "workload {} --tp 2,4 --ep 2,4 --batch 16,32 --prefill 64 -n 3",
        config.display()
    );
    let run = mpirun_json(4, &args, &[]);
    run.assert_success();
    let doc = run.doc();
    assert_workload_valid(&doc);
    let mut broken = doc.clone();
    broken["ranking"][0]["layouts"][0]["winner"] = serde_json::json!("yes");
    assert!(!schema_validator("workload").is_valid(&broken));
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["model"]["moe_layers"], 3);
    assert_eq!(doc["model"]["dense_layers"], 1);

    let m = |k: u64, collective: &str, half: &str, bytes: u64| {
        (k, collective.to_string(), half.to_string(), bytes)
    };
    let ar = "all_reduce";
    let a2av = "all_to_allv";
    // By hand: TP all_reduce = tokens x 2048. EP: every rank routes tokens/k tokens, each to 2 of the 8
    // experts (2 or 4 a rank); with tokens/k x 2 a multiple of 8 the router leaves nothing to chance:
    // every rank sends and receives tokens/k x 2 x 2048 bytes, the all_to_allv size.
    let mut want = BTreeSet::new();
    for half in ["dispatch", "combine"] {
        for (k, tokens_per_rank) in [(2, 8), (4, 4), (2, 16), (4, 8), (2, 32), (4, 16)] {
            want.insert(m(k, a2av, half, tokens_per_rank * 2 * 2048));
        }
    }
    for tokens in [16, 32, 64] {
        want.insert(m(2, ar, "", tokens * 2048));
        want.insert(m(4, ar, "", tokens * 2048));
    }
    assert_eq!(message_set(&doc), want);
    assert_eq!(
        doc["messages"].as_array().unwrap().len(),
        18,
        "each measured once"
    );
    assert_all_measured(&doc);
    for msg in doc["messages"].as_array().unwrap() {
        if msg["collective"] == "all_to_allv" {
            assert_eq!(msg["imbalance"], 1.0, "{msg}");
        }
    }

    // Counts per step: 2 all_reduce per layer (8); dispatch and combine once per MoE layer (3 each).
    let p = |collective: &str, bytes: u64, count: u64| (collective.to_string(), bytes, count);
    assert_eq!(parts(&doc, 0, "TP2"), [p(ar, 32768, 8)]);
    assert_eq!(parts(&doc, 1, "TP4"), [p(ar, 65536, 8)]);
    assert_eq!(
        parts(&doc, 1, "EP4"),
        [p(a2av, 32768, 3), p(a2av, 32768, 3)]
    );
    assert_eq!(
        parts(&doc, 2, "EP2"),
        [p(a2av, 131072, 3), p(a2av, 131072, 3)]
    );
    assert_ranked(&doc, 3, 4);
    // The ranking is printed, the winner marked once per phase, and the model stated.
    assert_eq!(run.stdout.matches("<- winner").count(), 3, "{}", run.stdout);
    assert!(
        run.stdout.contains("# not counted: overlap"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("MoE router"), "{}", run.stdout);
}

#[test]
fn a_preset_below_32k_on_default_layouts_with_auto_precision() {
    // Llama-3.1-70B at batch 1: one 8192 x 2 B = 16 KiB all_reduce, 2 per layer x 80 layers.
    let run = mpirun_json(
        4,
        "workload llama-3.1-70b --batch 1 --prefill none --size-time-cap 0.3",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert_workload_valid(&doc);
    // A dense model on one host of 4 ranks: TP2 and TP4, no EP.
    assert_eq!(layout_names(&doc), ["TP2", "TP4"]);
    let ar = "all_reduce".to_string();
    assert_eq!(
        message_set(&doc),
        [
            (2, ar.clone(), String::new(), 16384),
            (4, ar.clone(), String::new(), 16384)
        ]
        .into_iter()
        .collect()
    );
    assert_all_measured(&doc);
    for m in doc["messages"].as_array().unwrap() {
        // -n auto: at least --min-iters (10) iterations, the samples' precision recorded.
        assert!(
            m["measurement"]["iterations"].as_u64().unwrap() >= 10,
            "{m}"
        );
        assert!(m["measurement"]["stats"]["ci95_percent"].is_number(), "{m}");
        assert_eq!(m["measured_bytes"], 16384);
    }
    assert_eq!(parts(&doc, 0, "TP4"), [(ar, 16384, 160)]);
    assert_ranked(&doc, 1, 2);
    assert_eq!(run.stdout.matches("<- winner").count(), 1);
}

#[test]
fn an_unknown_preset_lists_the_presets_and_measures_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("w.json");
    let out = collbench()
        .args(["workload", "gpt-9", "-J"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for preset in [
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "mixtral-8x7b",
        "qwen3-235b-a22b",
        "deepseek-v3",
    ] {
        assert!(err.contains(preset), "{err}");
    }
    assert!(!json.exists());
}

#[test]
fn a_config_without_the_needed_fields_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"num_local_experts": 8, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    let out = collbench().arg("workload").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["hidden_size", "num_hidden_layers", "num_experts_per_tok"] {
        assert!(err.contains(field), "{err}");
    }
}

#[test]
fn a_layout_that_does_not_divide_the_job_is_named_before_anything_is_measured() {
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 2,3 --batch 1 --prefill none",
        &[],
    );
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--tp 3"), "{}", run.stderr);
    assert!(run.stderr.contains("4 ranks"), "{}", run.stderr);
    // Said once, not by every rank; nothing measured, and the document (written before anything could
    // fail) says why, as a sweep's does.
    assert_eq!(run.stderr.matches("--tp 3").count(), 1, "{}", run.stderr);
    assert!(!run.stdout.contains("on groups of"), "{}", run.stdout);
    let doc = run.doc();
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert_eq!(doc["exit_code"], 2);
    assert!(doc["error"].as_str().unwrap().contains("--tp 3"), "{doc:#}");
    assert!(doc["messages"].as_array().unwrap().is_empty());

    let run = mpirun_json(4, "workload llama-3.1-8b --ep 2 --batch 1", &[]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("dense"), "{}", run.stderr);
}

#[test]
fn wrong_elements_exit_7_with_the_document_complete() {
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 4 --batch 1 --prefill none -n 2",
        &[("COLLBENCH_TEST_CORRUPT", "2:3")],
    );
    assert_eq!(run.code(), Some(7), "{}\n{}", run.stdout, run.stderr);
    let doc = run.doc();
    assert_workload_valid(&doc);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["exit_code"], 7);
    assert_eq!(doc["messages"][0]["measurement"]["wrong"], 3);
    assert!(run.stdout.contains("3 wrong element(s)"), "{}", run.stdout);
}

#[test]
fn a_rank_that_dies_ends_the_job_and_the_measured_messages_stay_on_disk() {
    // Rank 1 exits before the second message: the job must end (no hang), and the document keep the
    // first message and name the one in flight.
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 2,4 --batch 1 --prefill none -n 2",
        &[("COLLBENCH_TEST_EXIT", "1:1")],
    );
    assert!(!run.out.status.success());
    let doc = run.doc();
    assert_workload_valid(&doc);
    // mpirun stopped rank 0 when rank 1 vanished: the document says so, as a sweep's does.
    assert_eq!(doc["status"], "interrupted", "{doc:#}");
    assert!(doc["messages"][0]["measurement"].is_object());
    assert!(doc["messages"][1]["measurement"].is_null());
    assert_eq!(doc["in_flight"], "all_reduce 8K on groups of 4");
}

#[test]
fn dp_attention_replaces_the_all_reduce_with_all_gather_and_reduce_scatter() {
    // Llama-3.1-8B, 8 tokens: 8 x 4096 x 2 = 64 KiB gathered and scattered, once each per layer (32).
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 4 --dp-attention --batch 8 --prefill none -n 2",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert_workload_valid(&doc);
    assert_all_measured(&doc);
    let p = |collective: &str| (collective.to_string(), 65536, 32);
    assert_eq!(
        parts(&doc, 0, "TP4"),
        [p("all_gather"), p("reduce_scatter")]
    );
}

#[test]
fn a_skewed_router_loads_the_hot_rank_and_tp1_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"hidden_size": 1024, "num_hidden_layers": 2, "num_local_experts": 8,
            "num_experts_per_tok": 2, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    let args = format!(
        "workload {} --tp 1 --ep 4 --batch 16 --prefill none --skew 4 -n 2",
        config.display()
    );
    let run = mpirun_json(4, &args, &[]);
    run.assert_success();
    let doc = run.doc();
    assert_workload_valid(&doc);
    assert_eq!(doc["step_options"]["skew"], 4.0);
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "dispatch and combine; TP1 has none");
    for m in messages {
        assert!(m["imbalance"].as_f64().unwrap() > 1.0, "{m}");
        // Rank 0 receives (dispatch) or sends (combine) more than the 4 x 2 x 2048 every rank sends.
        assert!(m["bytes"].as_u64().unwrap() > 4 * 2 * 2048, "{m}");
        assert_eq!(m["measurement"]["wrong"], 0);
    }
    assert!(parts(&doc, 0, "TP1").is_empty());
    assert!(run.stdout.contains("no communication"), "{}", run.stdout);
    assert_ranked(&doc, 1, 2);
}

/// Llama-3.1-70B's weights per GPU on TPk, by hand from its config: per layer q and o 2 x 8192 x 8192,
/// k and v 2 x 8192 x 1024, the MLP 3 x 8192 x 28672, all bfloat16 and cut k ways, and 2 norms of 8192
/// whole; the embedding and the head 128256 x 8192 each, cut by vocabulary; the final norm whole.
fn llama_70b_weights_per_gpu(k: u64) -> u64 {
    let layer = (2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672) * 2 / k + 2 * 8192 * 2;
    80 * layer + 2 * 128_256 * 8192 * 2 / k + 8192 * 2
}

#[test]
fn llama_70b_on_tp2_and_tp4_fits_by_hand_and_a_layout_that_does_not_fit_never_wins() {
    // 40 GB per GPU: TP2's 70.6 GB of weights do not fit, TP4's 35.3 GB do. KV for 4 sequences of 1000
    // tokens: 80 layers x (8 / k) KV heads x 2 x 128 x 2 bytes per token.
    let run = mpirun_json(
        4,
        "workload llama-3.1-70b --tp 2,4 --batch 4 --job-batch 8 --prefill none --context 1000 --gpu-memory 40 -n 3",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert_workload_valid(&doc);
    assert_eq!(doc["gpu_memory"]["bytes"], 40_000_000_000u64);
    assert_eq!(doc["context_tokens"], 1000);
    // The message list: 160 all_reduce of tokens x 16 KiB on each layout.
    assert_eq!(
        parts(&doc, 0, "TP2"),
        [("all_reduce".into(), 4 * 16384, 160)]
    );
    assert_eq!(
        parts(&doc, 0, "TP4"),
        [("all_reduce".into(), 4 * 16384, 160)]
    );
    for (phase, tp2_sequences, tp4_sequences) in [(0, 4, 4), (1, 4, 8)] {
        let ranked = doc["ranking"][phase]["layouts"].as_array().unwrap();
        let layout = |name: &str| ranked.iter().find(|l| l["name"] == name).unwrap();
        for (name, k, sequences, fits) in [
            ("TP2", 2, tp2_sequences, false),
            ("TP4", 4, tp4_sequences, true),
        ] {
            let f = &layout(name)["fit"];
            assert_eq!(f["weights_bytes"], llama_70b_weights_per_gpu(k), "{name}");
            assert_eq!(
                f["kv_cache_bytes"],
                sequences * 1000 * 80 * (8 / k) * 2 * 128 * 2,
                "{name}"
            );
            assert_eq!(f["sequences"], sequences);
            assert_eq!(f["fits"], fits, "{name}");
        }
        // Whatever the times, the winner is TP4: TP2 does not fit.
        assert_eq!(ranked[0]["name"], "TP4", "{}", run.stdout);
        assert_eq!(ranked[0]["winner"], true);
        assert_eq!(layout("TP2")["winner"], false);
    }
    // Per replica both serve 4 tokens a replica: TP4 has one (4 for the job), TP2 two (8). For a job
    // of 8 tokens TP4's one replica serves all 8, TP2's two 4 each.
    let job = |phase: usize, name: &str| {
        let l = doc["ranking"][phase]["layouts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()
            .clone();
        (
            l["replicas"].as_u64().unwrap(),
            l["tokens_per_replica"].as_u64().unwrap(),
            l["job_tokens"].as_u64().unwrap(),
        )
    };
    assert_eq!(job(0, "TP2"), (2, 4, 8));
    assert_eq!(job(0, "TP4"), (1, 4, 4));
    assert_eq!(job(1, "TP2"), (2, 4, 8));
    assert_eq!(job(1, "TP4"), (1, 8, 8));
    assert_eq!(doc["phases"][1]["load"], "per_job");
    assert!(run.stdout.contains("for the whole job"), "{}", run.stdout);
    assert!(run.stdout.contains("does not fit"), "{}", run.stdout);
    assert!(
        run.stdout.contains("serve different loads"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_job_load_the_replicas_cannot_share_is_named_before_anything_is_measured() {
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 2,4 --batch none --job-batch 3 --prefill none",
        &[],
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("--job-batch 3") && run.stderr.contains("TP2"),
        "{}",
        run.stderr
    );
    let run = mpirun_json(4, "workload llama-3.1-8b --context 0", &[]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("--context"), "{}", run.stderr);
}

#[test]
fn tp2_x_pp2_moves_its_stage_boundary_point_to_point_checked() {
    // 4 ranks: TP2 x PP2 is one replica, stage 0 ranks 0-1, stage 1 ranks 2-3; rank 0 sends to 2 and
    // rank 1 to 3, 8 tokens x 8 KiB each; the all_reduce of every layer runs on groups of 2.
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 2 --pp 2 --batch 8 --prefill none -n 3 -c 2 --gpu-memory 80",
        &[],
    );
    run.assert_success();
    let doc = run.doc();
    assert_workload_valid(&doc);
    assert_eq!(layout_names(&doc), ["TP2", "TP2xPP2"]);
    assert_eq!(
        doc["layouts"][1]["groups"][0]["members"],
        serde_json::json!([0, 1, 2, 3])
    );
    let boundary = stage_boundary(&doc);
    assert_eq!(boundary["group_size"], 4);
    assert_eq!(boundary["bytes"], 8 * 4096 * 2);
    assert_eq!(
        boundary["boundary"],
        serde_json::json!({"tp": 2, "stages": 2})
    );
    // Checked: each receiving rank got its sender's data, exactly.
    assert_eq!(boundary["measurement"]["wrong"], 0);
    assert_eq!(
        parts(&doc, 0, "TP2xPP2"),
        [
            ("all_reduce".into(), 8 * 8192, 64),
            ("sendrecv".into(), 8 * 8192, 1)
        ]
    );
    // PP2 halves what a GPU holds: 16 of 32 layers, and the head on stage 1 rather than both.
    let ranked = doc["ranking"][0]["layouts"].as_array().unwrap();
    let weights = |name: &str| {
        ranked.iter().find(|l| l["name"] == name).unwrap()["fit"]["weights_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(
        weights("TP2xPP2") * 2 > weights("TP2") && weights("TP2xPP2") < weights("TP2") * 6 / 10
    );
}

#[test]
fn a_stage_boundary_that_delivers_wrong_data_is_counted() {
    // Rank 2 (stage 1) corrupts 5 elements of what it received in each of 2 checks.
    let run = mpirun_json(
        4,
        "workload llama-3.1-8b --tp 2 --pp 2 --batch 8 --prefill none -n 2 -c 2",
        &[("COLLBENCH_TEST_CORRUPT", "2:5")],
    );
    assert_eq!(run.code(), Some(7), "{}\n{}", run.stdout, run.stderr);
    let doc = run.doc();
    let boundary = stage_boundary(&doc);
    assert_eq!(boundary["measurement"]["wrong"], 10);
}
