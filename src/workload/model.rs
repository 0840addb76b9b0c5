//! The model a workload measures: its communication-relevant fields (hidden size, dense and MoE
//! layers, experts, experts per token, dtype) and the fields its weights and KV cache are counted from
//! (vocabulary, attention heads or MLA ranks, MLP and expert widths, weight format), from a preset
//! shipped in the binary or a Hugging Face `config.json`. Presets are themselves config.json excerpts
//! (src/workload/presets/), so one parser reads both.

use crate::dtype::DataType;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The presets, by the name users type: each file is an excerpt of the model's public config.json with
/// a `collbench_source` line saying where the numbers come from.
pub const PRESETS: [(&str, &str); 6] = [
    ("llama-3.1-8b", include_str!("presets/llama-3.1-8b.json")),
    ("llama-3.1-70b", include_str!("presets/llama-3.1-70b.json")),
    (
        "llama-3.1-405b",
        include_str!("presets/llama-3.1-405b.json"),
    ),
    ("mixtral-8x7b", include_str!("presets/mixtral-8x7b.json")),
    (
        "qwen3-235b-a22b",
        include_str!("presets/qwen3-235b-a22b.json"),
    ),
    ("deepseek-v3", include_str!("presets/deepseek-v3.json")),
];

/// What a step's communication depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The preset's name, or the config.json path.
    pub name: String,
    /// Where the numbers come from.
    pub source: String,
    pub hidden_size: u64,
    pub layers: u64,
    /// Layers with a dense MLP, and layers whose MLP is a mixture of experts.
    pub dense_layers: u64,
    pub moe_layers: u64,
    /// Routed experts (0 for a dense model) and how many each token goes to.
    pub experts: u64,
    pub experts_per_token: u64,
    /// Shared experts run where the token is: they move no bytes.
    pub shared_experts: u64,
    /// The activations' type, and whether the config named it (false: bfloat16 assumed).
    pub dtype: DataType,
    pub dtype_from_config: bool,
    /// What the weights and the KV cache are made of; null where the config lacks a field they are
    /// counted from (`architecture_missing` names them), and then nothing is said of fit.
    #[serde(default)]
    pub architecture: Option<Architecture>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architecture_missing: Vec<String>,
}

/// The fields of a config that count parameters and KV-cache bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub vocab_size: u64,
    /// The output head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    pub attention: Attention,
    /// Width of a dense layer's MLP (0 where every layer is MoE and the config gives none).
    pub intermediate_size: u64,
    /// Width of one routed expert's MLP (Mixtral's experts use intermediate_size).
    pub expert_intermediate_size: u64,
    /// Width of all shared experts together (0: none).
    pub shared_intermediate_size: u64,
    /// Bytes of one weight of an attention projection or an MLP: 1 for an fp8 checkpoint, else the
    /// dtype's; embeddings, norms and the router keep the dtype's.
    pub linear_weight_bytes: u64,
    /// In words, e.g. "fp8 (quantization_config) for attention and MLP weights, bfloat16 for the rest".
    pub weight_format: String,
}

/// Attention as the config describes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Attention {
    /// Multi-head or grouped-query attention: `kv_heads` key and value heads of `head_dim`.
    Grouped {
        heads: u64,
        kv_heads: u64,
        head_dim: u64,
        /// Q and K are RMS-normed per head (Qwen3): two norms of head_dim per layer.
        qk_norm: bool,
        /// Q, K and V projections carry biases.
        bias: bool,
    },
    /// DeepSeek's multi-head latent attention: queries through a rank-`q_lora_rank` projection (0: a
    /// plain one), keys and values through a compressed latent of `kv_lora_rank` plus a shared rope
    /// key of `qk_rope_head_dim`, which is what the KV cache holds.
    Latent {
        heads: u64,
        q_lora_rank: u64,
        kv_lora_rank: u64,
        qk_nope_head_dim: u64,
        qk_rope_head_dim: u64,
        v_head_dim: u64,
    },
}

impl ModelSpec {
    pub fn is_moe(&self) -> bool {
        self.experts > 0 && self.moe_layers > 0
    }

    /// Bytes of one token's hidden state.
    pub fn token_bytes(&self) -> u64 {
        self.hidden_size * self.dtype.size() as u64
    }
}

/// The fields of a Hugging Face config.json that matter here, under the names the model families use.
#[derive(Debug, Deserialize)]
struct HfConfig {
    hidden_size: Option<u64>,
    num_hidden_layers: Option<u64>,
    /// DeepSeek's n_routed_experts, Mixtral's num_local_experts, Qwen-MoE's num_experts.
    #[serde(alias = "num_local_experts", alias = "num_experts")]
    n_routed_experts: Option<u64>,
    num_experts_per_tok: Option<u64>,
    /// DeepSeek: the first k layers keep a dense MLP; then every moe_layer_freq-th layer is MoE.
    first_k_dense_replace: Option<u64>,
    moe_layer_freq: Option<u64>,
    /// Qwen-MoE: layer i is MoE when (i + 1) % decoder_sparse_step == 0 and i is not in mlp_only_layers.
    decoder_sparse_step: Option<u64>,
    mlp_only_layers: Option<Vec<u64>>,
    n_shared_experts: Option<u64>,
    #[serde(alias = "dtype")]
    torch_dtype: Option<String>,
    model_type: Option<String>,
    vocab_size: Option<u64>,
    tie_word_embeddings: Option<bool>,
    num_attention_heads: Option<u64>,
    num_key_value_heads: Option<u64>,
    head_dim: Option<u64>,
    attention_bias: Option<bool>,
    use_qk_norm: Option<bool>,
    intermediate_size: Option<u64>,
    moe_intermediate_size: Option<u64>,
    /// Qwen2-MoE: one shared expert of this width.
    shared_expert_intermediate_size: Option<u64>,
    /// MLA (DeepSeek-V2/V3): its presence means latent attention.
    q_lora_rank: Option<u64>,
    kv_lora_rank: Option<u64>,
    qk_nope_head_dim: Option<u64>,
    qk_rope_head_dim: Option<u64>,
    v_head_dim: Option<u64>,
    quantization_config: Option<QuantizationConfig>,
    collbench_source: Option<String>,
    /// Multimodal configs keep the language model's fields here.
    text_config: Option<Box<HfConfig>>,
}

/// A checkpoint's quantization, where the config has one.
#[derive(Debug, Deserialize)]
struct QuantizationConfig {
    quant_method: Option<String>,
    fmt: Option<String>,
}

/// The preset of that name, or the config.json at that path. An unknown name that is not a file lists
/// the presets.
pub fn load(model: &str) -> Result<ModelSpec> {
    if let Some((name, text)) = PRESETS.iter().find(|(n, _)| n.eq_ignore_ascii_case(model)) {
        return parse(name, text, &format!("preset {name}"));
    }
    let path = Path::new(model);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("MODEL {model}: cannot read: {e}")))?;
        return parse(model, &text, &format!("config.json {model}"));
    }
    Err(Error::usage(format!(
        "MODEL {model}: not a preset and not a config.json file: give one of {} or the path of a Hugging Face config.json",
        preset_names().join(", ")
    )))
}

pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// Reads the fields from a config.json's text; a missing field is named with what it means.
pub fn parse(name: &str, text: &str, origin: &str) -> Result<ModelSpec> {
    let outer: HfConfig = serde_json::from_str(text)
        .map_err(|e| Error::usage(format!("MODEL {name}: {origin} is not a config.json: {e}")))?;
    let source = outer
        .collbench_source
        .clone()
        .unwrap_or_else(|| origin.to_string());
    let config = match outer.text_config {
        Some(inner) if outer.hidden_size.is_none() => *inner,
        _ => outer,
    };
    let experts = config.n_routed_experts.unwrap_or(0);
    let mut missing = Vec::new();
    if config.hidden_size.unwrap_or(0) == 0 {
        missing.push("hidden_size (the width of a token's hidden state)");
    }
    if config.num_hidden_layers.unwrap_or(0) == 0 {
        missing.push("num_hidden_layers");
    }
    if experts > 0 && config.num_experts_per_tok.unwrap_or(0) == 0 {
        missing.push("num_experts_per_tok (the config has routed experts)");
    }
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "MODEL {name}: {origin} lacks {}: add them, or use a preset",
            missing.join(", ")
        )));
    }
    let layers = config.num_hidden_layers.unwrap_or(0);
    let moe_layers = (0..layers).filter(|&i| is_moe_layer(&config, i)).count() as u64;
    let (dtype, dtype_from_config) = match config.torch_dtype.as_deref() {
        None => (DataType::Bfloat16, false),
        Some(t) => (activation_dtype(t).ok_or_else(|| {
            Error::usage(format!(
                "MODEL {name}: torch_dtype {t:?} is not an activation type collbench knows: give bfloat16, float16 or float32"
            ))
        })?, true),
    };
    let (architecture, architecture_missing) =
        match architecture(&config, experts, layers - moe_layers, dtype) {
            Ok(a) => (Some(a), Vec::new()),
            Err(missing) => (None, missing),
        };
    Ok(ModelSpec {
        name: name.to_string(),
        source,
        hidden_size: config.hidden_size.unwrap_or(0),
        layers,
        dense_layers: layers - moe_layers,
        moe_layers,
        experts,
        experts_per_token: if experts > 0 {
            config.num_experts_per_tok.unwrap_or(0)
        } else {
            0
        },
        shared_experts: config.n_shared_experts.unwrap_or(0),
        dtype,
        dtype_from_config,
        architecture,
        architecture_missing,
    })
}

/// The weights' and KV cache's fields, or the names of those the config lacks.
fn architecture(
    config: &HfConfig,
    experts: u64,
    dense_layers: u64,
    dtype: DataType,
) -> std::result::Result<Architecture, Vec<String>> {
    let mut missing = Vec::new();
    let mut need = |value: Option<u64>, name: &str| {
        if value.unwrap_or(0) == 0 {
            missing.push(name.to_string());
        }
        value.unwrap_or(0)
    };
    let hidden = config.hidden_size.unwrap_or(0);
    let vocab_size = need(config.vocab_size, "vocab_size");
    let heads = need(config.num_attention_heads, "num_attention_heads");
    let intermediate_size = if dense_layers > 0 {
        need(
            config.intermediate_size,
            "intermediate_size (the dense MLP's width)",
        )
    } else {
        config.intermediate_size.unwrap_or(0)
    };
    let expert_intermediate_size = if experts > 0 {
        need(
            config.moe_intermediate_size.or(config.intermediate_size),
            "moe_intermediate_size (an expert's width)",
        )
    } else {
        0
    };
    let attention = match config.kv_lora_rank {
        Some(kv_lora_rank) => Attention::Latent {
            heads,
            q_lora_rank: config.q_lora_rank.unwrap_or(0),
            kv_lora_rank,
            qk_nope_head_dim: need(config.qk_nope_head_dim, "qk_nope_head_dim"),
            qk_rope_head_dim: need(config.qk_rope_head_dim, "qk_rope_head_dim"),
            v_head_dim: need(config.v_head_dim, "v_head_dim"),
        },
        None => Attention::Grouped {
            heads,
            kv_heads: config.num_key_value_heads.unwrap_or(heads),
            head_dim: config
                .head_dim
                .unwrap_or(hidden.checked_div(heads).unwrap_or(0)),
            qk_norm: config.use_qk_norm.unwrap_or_else(|| {
                config
                    .model_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("qwen3"))
            }),
            bias: config.attention_bias.unwrap_or(false),
        },
    };
    if !missing.is_empty() {
        return Err(missing);
    }
    let shared_intermediate_size = match config.shared_expert_intermediate_size {
        Some(width) => width,
        None => config.n_shared_experts.unwrap_or(0) * expert_intermediate_size,
    };
    let fp8 = config
        .quantization_config
        .as_ref()
        .filter(|q| q.quant_method.as_deref().is_some_and(|m| m.contains("fp8")));
    let (linear_weight_bytes, weight_format) = if let Some(q) = fp8 {
        (
            1,
            format!(
                "fp8{} (quantization_config) for attention and MLP weights, {dtype} for embeddings, norms and router",
                q.fmt.as_deref().map(|f| format!(" {f}")).unwrap_or_default()
            ),
        )
    } else {
        (dtype.size() as u64, dtype.to_string())
    };
    Ok(Architecture {
        vocab_size,
        tie_word_embeddings: config.tie_word_embeddings.unwrap_or(false),
        attention,
        intermediate_size,
        expert_intermediate_size,
        shared_intermediate_size,
        linear_weight_bytes,
        weight_format,
    })
}

fn is_moe_layer(config: &HfConfig, layer: u64) -> bool {
    config.n_routed_experts.unwrap_or(0) > 0
        && layer >= config.first_k_dense_replace.unwrap_or(0)
        && layer % config.moe_layer_freq.unwrap_or(1).max(1) == 0
        && (layer + 1) % config.decoder_sparse_step.unwrap_or(1).max(1) == 0
        && !config
            .mlp_only_layers
            .as_ref()
            .is_some_and(|l| l.contains(&layer))
}

fn activation_dtype(name: &str) -> Option<DataType> {
    match name.to_ascii_lowercase().trim_start_matches("torch.") {
        "bfloat16" | "bf16" => Some(DataType::Bfloat16),
        "float16" | "fp16" | "half" => Some(DataType::Half),
        "float32" | "fp32" | "float" => Some(DataType::Float),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_carry_the_public_configs_numbers() {
        let want = [
            // name, hidden, layers, dense, moe, experts, top-k
            ("llama-3.1-8b", 4096, 32, 32, 0, 0, 0),
            ("llama-3.1-70b", 8192, 80, 80, 0, 0, 0),
            ("llama-3.1-405b", 16384, 126, 126, 0, 0, 0),
            ("mixtral-8x7b", 4096, 32, 0, 32, 8, 2),
            ("qwen3-235b-a22b", 4096, 94, 0, 94, 128, 8),
            ("deepseek-v3", 7168, 61, 3, 58, 256, 8),
        ];
        for (name, hidden, layers, dense, moe, experts, topk) in want {
            let m = load(name).unwrap();
            assert_eq!(
                (
                    m.hidden_size,
                    m.layers,
                    m.dense_layers,
                    m.moe_layers,
                    m.experts,
                    m.experts_per_token
                ),
                (hidden, layers, dense, moe, experts, topk),
                "{name}"
            );
            assert_eq!(m.dtype, DataType::Bfloat16, "{name}");
            assert!(m.dtype_from_config && m.source.contains("config.json"));
        }
        assert_eq!(load("deepseek-v3").unwrap().shared_experts, 1);
        assert_eq!(load("DeepSeek-V3").unwrap().name, "deepseek-v3");
    }

    #[test]
    fn missing_fields_are_named_and_unknown_presets_listed() {
        let e = parse("x", r#"{"num_experts": 8}"#, "config.json x").unwrap_err();
        let text = e.to_string();
        for field in ["hidden_size", "num_hidden_layers", "num_experts_per_tok"] {
            assert!(text.contains(field), "{text}");
        }
        assert!(matches!(e, Error::Usage(_)));
        let e = load("gpt-9").unwrap_err().to_string();
        assert!(
            e.contains("llama-3.1-8b") && e.contains("deepseek-v3"),
            "{e}"
        );
        let e = parse(
            "x",
            r#"{"hidden_size": 8, "num_hidden_layers": 1, "torch_dtype": "int4"}"#,
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("int4"), "{e}");
    }

    #[test]
    fn sparse_steps_and_mlp_only_layers_count_dense_layers() {
        let m = parse(
            "q",
            r#"{"hidden_size": 64, "num_hidden_layers": 6, "num_experts": 4, "num_experts_per_tok": 2,
                "decoder_sparse_step": 2, "mlp_only_layers": [5]}"#,
            "c",
        )
        .unwrap();
        // MoE where (i + 1) % 2 == 0 and i != 5: layers 1 and 3.
        assert_eq!((m.moe_layers, m.dense_layers), (2, 4));
        assert!(!m.dtype_from_config);
        let nested = parse(
            "v",
            r#"{"text_config": {"hidden_size": 32, "num_hidden_layers": 2, "torch_dtype": "float16"}}"#,
            "c",
        )
        .unwrap();
        assert_eq!((nested.hidden_size, nested.dtype), (32, DataType::Half));
    }
}
