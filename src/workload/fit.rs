//! Does a layout fit: the bytes one GPU holds for it, the weights of its share of the model
//! (src/workload/params.rs's pieces, cut by TP, EP and pipeline stages) plus its share of the KV cache
//! for the phase's sequences at `--context` tokens, against the GPU's memory.

use super::messages::{LayoutChoice, Parallelism, Phase, PhaseKind};
use super::model::{Architecture, ModelSpec};
use super::params::{self, Place, TIED_HEAD};
use crate::topo::gpu::Vendor;
use crate::topo::peak::{gpus_of, RankPlacement};
use crate::topo::NodeTopology;
use serde::{Deserialize, Serialize};

/// What the fit figures count, for the output and the JSON.
pub const COUNTED: [&str; 3] = [
    "weights per GPU: every parameter of the config (embedding and head, attention with its KV heads or MLA ranks, dense MLPs, routed and shared experts, router, norms) in the checkpoint's type; TPk cuts attention by heads (KV heads kept whole where k exceeds them), MLPs and experts by width and the embedding and head by vocabulary, and keeps MLA's down-projections, norms and the router whole on every rank; EPk gives each rank experts/k whole experts and every rank the rest; PPm gives each stage consecutive layers, the embedding to the first and the head to the last, and the heaviest stage decides",
    "KV cache per GPU: the phase's sequences (decode: one per token of the step; prefill: one, of the chunk or --context tokens, the longer) at --context tokens each, in the activations' type; GQA's keys and values of the rank's KV heads, MLA's compressed latent and rope key on every TP rank; EPk spreads a replica's sequences over its ranks",
    "memory per GPU: what the topology reads for the job's smallest GPU (NVML, ROCm SMI), or --gpu-memory; 1 GB = 1e9 bytes",
];

/// What the fit figures leave out.
pub const NOT_COUNTED: [&str; 2] = [
    "activations, workspaces, the CUDA or HIP context, the communication library's buffers and a serving framework's reserve (vLLM's --gpu-memory-utilization, SGLang's --mem-fraction-static): a layout that fits with little to spare may not run",
    "fp8 checkpoints' block scales (4 bytes per 128x128 block, 0.02 %) and MTP or draft modules",
];

/// The memory the fit is judged against, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuMemory {
    /// Bytes of the smallest GPU of the job; null when unknown (`skipped` says why).
    pub bytes: Option<u64>,
    /// "--gpu-memory 80", "NVML: NVIDIA H100 80GB HBM3 (85520809984 bytes) on 16 ranks".
    pub source: String,
    /// Why the check was skipped, where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The memory of the job's smallest GPU: `--gpu-memory` (GB of 1e9 bytes) where given, else what
/// the topology read for every rank's GPU; skipped, with the reason, on the mpi backend (host memory)
/// or where a GPU's memory is unknown.
pub fn gpu_memory(
    nodes: &[NodeTopology],
    placements: &[RankPlacement],
    backend: &str,
    override_gb: Option<f64>,
) -> GpuMemory {
    if let Some(gb) = override_gb {
        return GpuMemory {
            bytes: Some((gb * 1e9) as u64),
            source: format!("--gpu-memory {gb}"),
            skipped: None,
        };
    }
    let skipped = |why: String| GpuMemory {
        bytes: None,
        source: "none".into(),
        skipped: Some(format!("{why}: give --gpu-memory GB to judge it")),
    };
    if backend == "mpi" {
        return skipped("the mpi backend moves host memory, not a GPU's".into());
    }
    let gpus = match gpus_of(nodes, placements) {
        Ok(g) => g,
        Err(why) => {
            return skipped(format!(
                "the topology does not place every rank's GPU ({why})"
            ))
        }
    };
    let mut smallest: Option<(u64, &crate::topo::gpu::Gpu)> = None;
    for (r, g) in placements.iter().zip(&gpus) {
        let Some(bytes) = g.memory_bytes else {
            return skipped(format!(
                "{} did not report the memory of rank {}'s GPU on {}",
                library(g.vendor),
                r.rank,
                r.host
            ));
        };
        if smallest.is_none_or(|(b, _)| bytes < b) {
            smallest = Some((bytes, g));
        }
    }
    match smallest {
        Some((bytes, g)) => GpuMemory {
            bytes: Some(bytes),
            source: format!(
                "{}: {} ({bytes} bytes), the smallest of the job's {} GPU(s)",
                library(g.vendor),
                g.name.as_deref().unwrap_or("GPU"),
                gpus.len()
            ),
            skipped: None,
        },
        None => skipped("no rank".into()),
    }
}

fn library(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Nvidia => "NVML",
        Vendor::Amd => "ROCm SMI",
    }
}

/// What one GPU of a layout holds in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    /// weights + KV cache.
    pub needs_bytes: u64,
    /// The pipeline stage whose GPU holds the most (0 without stages).
    pub heaviest_stage: usize,
    /// The sequences of a replica and the tokens each holds.
    pub sequences: u64,
    pub tokens_per_sequence: u64,
    /// needs <= the GPU's memory; null when the memory is unknown.
    pub fits: Option<bool>,
}

/// The sequences one replica holds in a phase and their length: decode serves one token of each of
/// `tokens` sequences per step; prefill one sequence, as long as its chunk or --context.
pub fn sequences(phase: Phase, tokens_per_replica: u64, context: u64) -> (u64, u64) {
    match phase.kind {
        PhaseKind::Decode => (tokens_per_replica, context),
        PhaseKind::Prefill => (1, tokens_per_replica.max(context)),
    }
}

/// The part of a piece one rank of `layout` holds, as a fraction of units kept: ceil(units / k) of
/// `units` under a TP cut, ceil(experts / e) under EP, everything otherwise.
fn share(piece: &params::Piece, layout: LayoutChoice) -> u64 {
    let cut = |units: Option<u64>, ways: u64| match units {
        Some(u) if u > 0 => piece.bytes() * u.div_ceil(ways) / u,
        _ => piece.bytes(),
    };
    match layout.parallelism {
        Parallelism::Tp => cut(piece.tp_units, layout.size as u64),
        Parallelism::Ep => cut(piece.ep_units, layout.size as u64),
    }
}

/// The first layer of each stage and one past its last: consecutive layers, the first stages taking
/// one more where the layers do not divide.
fn stage_layers(layers: u64, stages: usize) -> Vec<(u64, u64)> {
    let m = stages.max(1) as u64;
    let (base, extra) = (layers / m, layers % m);
    let mut start = 0;
    (0..m)
        .map(|s| {
            let len = base + u64::from(s < extra);
            let range = (start, start + len);
            start += len;
            range
        })
        .collect()
}

/// What one GPU of `layout` holds when each replica keeps `sequences` sequences of
/// `tokens_per_sequence` tokens; `gpu_memory` judges it.
pub fn fit(
    model: &ModelSpec,
    arch: &Architecture,
    layout: LayoutChoice,
    sequences: u64,
    tokens_per_sequence: u64,
    gpu_memory: Option<u64>,
) -> Fit {
    let pieces = params::pieces(model, arch);
    let ranges = stage_layers(model.layers, layout.stages);
    let last = ranges.len() - 1;
    let kv_layer = params::kv_bytes_per_token_layer(model, arch);
    let kv_per_rank_layer = match (layout.parallelism, arch.attention) {
        (Parallelism::Tp, super::model::Attention::Grouped { kv_heads, .. }) if kv_heads > 0 => {
            kv_layer * kv_heads.div_ceil(layout.size as u64) / kv_heads
        }
        _ => kv_layer,
    };
    let tokens = sequences * tokens_per_sequence;
    let kv_tokens = match layout.parallelism {
        Parallelism::Tp => tokens,
        // Attention is data-parallel in an EP group: its sequences spread over the ranks.
        Parallelism::Ep => tokens.div_ceil(layout.size as u64),
    };
    let per_stage: Vec<(u64, u64)> = ranges
        .iter()
        .enumerate()
        .map(|(s, &(first, end))| {
            let holds = |p: &&params::Piece| match p.place {
                Place::Embedding => s == 0,
                Place::Layer(l) => (first..end).contains(&l),
                // A tied head is the embedding, held again only by a last stage that is not the first.
                Place::Head => s == last && !(p.what == TIED_HEAD && s == 0),
            };
            let weights: u64 = pieces.iter().filter(holds).map(|p| share(p, layout)).sum();
            (weights, (end - first) * kv_per_rank_layer * kv_tokens)
        })
        .collect();
    let (heaviest_stage, &(weights_bytes, kv_cache_bytes)) = per_stage
        .iter()
        .enumerate()
        .max_by_key(|(_, (w, kv))| w + kv)
        .unwrap_or((0, &(0, 0)));
    let needs_bytes = weights_bytes + kv_cache_bytes;
    Fit {
        weights_bytes,
        kv_cache_bytes,
        needs_bytes,
        heaviest_stage,
        sequences,
        tokens_per_sequence,
        fits: gpu_memory.map(|m| needs_bytes <= m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::messages::{Load, PhaseKind};
    use crate::workload::model::load;

    fn qwen() -> (ModelSpec, Architecture) {
        let m = load("qwen3-235b-a22b").unwrap();
        let a = m.architecture.clone().unwrap();
        (m, a)
    }

    /// Qwen3-235B-A22B by hand, bfloat16. Per layer: q and o 2 x 4096 x 8192 (cut by 64 heads), k and v
    /// 2 x 4096 x 512 (4 KV heads), Q/K norms 256 and layer norms 8192 whole, router 4096 x 128 whole,
    /// experts 128 x 3 x 4096 x 1536 (cut by width under TP); embedding and head 151936 x 4096 each
    /// (cut by vocabulary). KV: 2 x 4 x 128 x 2 B per token per layer, a TP rank keeping ceil(4/k) heads.
    #[test]
    fn qwen3_235b_on_tp4_and_tp8_by_hand() {
        let (m, a) = qwen();
        let qo = 2 * 4096 * 8192u64 * 2;
        let kv = 2 * 4096 * 512u64 * 2;
        let whole = (256 + 8192 + 4096 * 128) * 2u64;
        let experts = 128 * 3 * 4096 * 1536u64 * 2;
        let head_and_embedding = 2 * 151_936 * 4096u64 * 2;
        let tp = |k: u64, kv_heads_kept: u64| {
            94 * (qo / k + kv * kv_heads_kept / 4 + whole + experts / k)
                + head_and_embedding / k
                + 4096 * 2
        };
        let tp4 = fit(&m, &a, LayoutChoice::tp(4), 8, 8192, Some(141_000_000_000));
        assert_eq!(tp4.weights_bytes, tp(4, 1));
        assert_eq!(tp4.weights_bytes, 117_621_939_200);
        // 8 sequences x 8192 tokens x 94 layers x one KV head (2 x 128 x 2 B).
        assert_eq!(tp4.kv_cache_bytes, 8 * 8192 * 94 * 512);
        assert_eq!(tp4.fits, Some(true), "an H200's 141 GB");
        let on_h100 = fit(&m, &a, LayoutChoice::tp(4), 8, 8192, Some(80_000_000_000));
        assert_eq!(on_h100.fits, Some(false), "an H100's 80 GB");
        let tp8 = fit(&m, &a, LayoutChoice::tp(8), 8, 8192, Some(80_000_000_000));
        // 4 KV heads on 8 ranks: each keeps one, so the KV cache per GPU does not halve.
        assert_eq!(tp8.weights_bytes, tp(8, 1));
        assert_eq!(tp8.kv_cache_bytes, tp4.kv_cache_bytes);
        assert_eq!(tp8.fits, Some(true));
        assert_eq!(fit(&m, &a, LayoutChoice::tp(8), 8, 8192, None).fits, None);
    }

    /// Llama-3.1-70B on TP8 x PP2: stage 0 holds layers 0-39 and the embedding, stage 1 layers 40-79,
    /// the final norm and the head, which makes it the heavier by the final norm.
    #[test]
    fn llama_70b_pipeline_stages_split_the_layers_and_the_heaviest_decides() {
        let m = load("llama-3.1-70b").unwrap();
        let a = m.architecture.clone().unwrap();
        let layer = (2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672) * 2 / 8 + 2 * 8192 * 2;
        let vocab = 128_256 * 8192 * 2 / 8;
        let f = fit(&m, &a, LayoutChoice::tp_pp(8, 2), 1, 1000, None);
        assert_eq!(f.weights_bytes, 40 * layer + vocab + 8192 * 2);
        assert_eq!(f.heaviest_stage, 1);
        // KV: 1 KV head per rank of TP8 (8 heads), 40 layers.
        assert_eq!(f.kv_cache_bytes, 1000 * 40 * 2 * 128 * 2);
        assert_eq!(stage_layers(61, 4), [(0, 16), (16, 31), (31, 46), (46, 61)]);
    }

    #[test]
    fn deepseek_ep_spreads_whole_experts_and_the_replicas_sequences() {
        let m = load("deepseek-v3").unwrap();
        let a = m.architecture.clone().unwrap();
        let ep8 = fit(&m, &a, LayoutChoice::ep(8), 64, 4096, None);
        let tp8 = fit(&m, &a, LayoutChoice::tp(8), 64, 4096, None);
        // MLA's latent is whole on every TP rank; EP spreads the sequences over its 8 ranks.
        assert_eq!(tp8.kv_cache_bytes, 64 * 4096 * 61 * 576 * 2);
        assert_eq!(ep8.kv_cache_bytes, tp8.kv_cache_bytes / 8);
        // EP8 keeps 32 of 256 experts whole, fp8: 58 layers x 32 x 3 x 7168 x 2048 bytes of them.
        let routed: u64 = 58 * 32 * 3 * 7168 * 2048;
        assert!(
            ep8.weights_bytes > routed && ep8.weights_bytes < routed + 30_000_000_000,
            "{ep8:?}"
        );
        let (seqs, len) = sequences(
            Phase {
                kind: PhaseKind::Prefill,
                tokens: 2048,
                load: Load::PerReplica,
            },
            2048,
            8192,
        );
        assert_eq!((seqs, len), (1, 8192));
    }

    #[test]
    fn gpu_memory_is_the_smallest_gpus_or_the_flags_or_says_why_not() {
        let dgx = crate::topo::discover_fixture(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dgx-h100"),
        );
        let ranks: Vec<RankPlacement> = (0..8)
            .map(|i| RankPlacement::new(i, "dgx-h100-01", i as u32))
            .collect();
        let m = gpu_memory(std::slice::from_ref(&dgx), &ranks, "nccl", None);
        assert_eq!(m.bytes, Some(85_520_809_984));
        assert!(
            m.source.starts_with("NVML: NVIDIA H100 80GB HBM3"),
            "{}",
            m.source
        );
        let m = gpu_memory(std::slice::from_ref(&dgx), &ranks, "nccl", Some(141.0));
        assert_eq!(
            (m.bytes, m.source.as_str()),
            (Some(141_000_000_000), "--gpu-memory 141")
        );
        let m = gpu_memory(&[], &ranks, "mpi", None);
        assert_eq!(m.bytes, None);
        assert!(m.skipped.unwrap().contains("mpi backend"));
        // A GPU the library says nothing of.
        let mut quiet = dgx.clone();
        quiet.gpus[3].memory_bytes = None;
        let m = gpu_memory(std::slice::from_ref(&quiet), &ranks, "nccl", None);
        assert!(m.skipped.as_deref().unwrap().contains("rank 3"), "{m:?}");
        let m = gpu_memory(&[], &ranks, "nccl", None);
        assert!(
            m.skipped.as_deref().unwrap().contains("no topology"),
            "{m:?}"
        );
    }
}
