//! A model's parameters counted from its config's fields, piece by piece (embeddings, each layer's
//! attention projections and norms, dense MLP, routed and shared experts, router, output head), each
//! piece saying where it sits and how tensor and expert parallelism split it. src/workload/fit.rs
//! turns the pieces into bytes per GPU for a layout.

use super::model::{Architecture, Attention, ModelSpec};

/// The output head of a model whose head is its embedding: a second copy only on a pipeline.
pub const TIED_HEAD: &str = "output head (tied to the embedding)";

/// Where a piece sits: in one layer, or around the layers (first and last pipeline stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Embedding,
    Layer(u64),
    /// The final norm and the output head.
    Head,
}

/// One tensor (or a set of alike tensors) of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    pub what: &'static str,
    pub place: Place,
    pub params: u64,
    pub bytes_per_param: u64,
    /// Under tensor parallelism the piece is cut along a dimension of this many units (heads, KV heads,
    /// MLP width, vocabulary): a rank of k holds ceil(units/k) of them. None: every rank holds it all.
    pub tp_units: Option<u64>,
    /// Under expert parallelism: the routed experts, a rank of e holding ceil(experts/e). None: every
    /// rank of the group holds it (attention and dense layers are data-parallel there).
    pub ep_units: Option<u64>,
}

impl Piece {
    pub fn bytes(&self) -> u64 {
        self.params * self.bytes_per_param
    }
}

/// Every piece of the model, in order: embedding, layers, head.
pub fn pieces(model: &ModelSpec, arch: &Architecture) -> Vec<Piece> {
    let hidden = model.hidden_size;
    let act = model.dtype.size() as u64;
    let lin = arch.linear_weight_bytes;
    let mut out = Vec::new();
    let piece = |what, place, params, bytes_per_param, tp_units| Piece {
        what,
        place,
        params,
        bytes_per_param,
        tp_units,
        ep_units: None,
    };
    // Vocabulary-parallel under TP, as serving frameworks split the embedding and the head.
    out.push(piece(
        "embedding",
        Place::Embedding,
        arch.vocab_size * hidden,
        act,
        Some(arch.vocab_size),
    ));
    let moe_layer = moe_layer_flags(model);
    for (layer, &is_moe) in moe_layer.iter().enumerate() {
        let at = Place::Layer(layer as u64);
        attention_pieces(hidden, act, lin, &arch.attention, at, &mut out);
        out.push(piece("layer norms", at, 2 * hidden, act, None));
        if is_moe {
            out.push(piece("router", at, hidden * model.experts, act, None));
            out.push(Piece {
                ep_units: Some(model.experts),
                ..piece(
                    "routed experts",
                    at,
                    model.experts * 3 * hidden * arch.expert_intermediate_size,
                    lin,
                    Some(arch.expert_intermediate_size),
                )
            });
            if arch.shared_intermediate_size > 0 {
                out.push(piece(
                    "shared experts",
                    at,
                    3 * hidden * arch.shared_intermediate_size,
                    lin,
                    Some(arch.shared_intermediate_size),
                ));
            }
        } else {
            out.push(piece(
                "dense MLP",
                at,
                3 * hidden * arch.intermediate_size,
                lin,
                Some(arch.intermediate_size),
            ));
        }
    }
    out.push(piece("final norm", Place::Head, hidden, act, None));
    // A tied head is the embedding itself; on a pipeline its last stage holds a copy (fit.rs).
    out.push(piece(
        if arch.tie_word_embeddings {
            TIED_HEAD
        } else {
            "output head"
        },
        Place::Head,
        arch.vocab_size * hidden,
        act,
        Some(arch.vocab_size),
    ));
    out
}

/// Which layers are MoE, in layer order: as many dense layers first as the model has (the presets'
/// dense layers are all first; configs whose dense layers are interleaved differ only in where a
/// pipeline cuts them).
fn moe_layer_flags(model: &ModelSpec) -> Vec<bool> {
    (0..model.layers).map(|i| i >= model.dense_layers).collect()
}

/// A layer's attention: the projections (TP cuts them by heads, or KV heads) and the parts every TP
/// rank keeps whole (MLA's down-projections and their norms, Qwen3's per-head Q/K norms).
fn attention_pieces(
    hidden: u64,
    act: u64,
    lin: u64,
    attention: &Attention,
    at: Place,
    out: &mut Vec<Piece>,
) {
    let mut add = |what, params, bytes_per_param, tp_units| {
        out.push(Piece {
            what,
            place: at,
            params,
            bytes_per_param,
            tp_units,
            ep_units: None,
        })
    };
    match *attention {
        Attention::Grouped {
            heads,
            kv_heads,
            head_dim,
            qk_norm,
            bias,
        } => {
            add(
                "attention q, o",
                2 * hidden * heads * head_dim,
                lin,
                Some(heads),
            );
            add(
                "attention k, v",
                2 * hidden * kv_heads * head_dim,
                lin,
                Some(kv_heads),
            );
            if bias {
                add("attention q bias", heads * head_dim, act, Some(heads));
                add(
                    "attention k, v bias",
                    2 * kv_heads * head_dim,
                    act,
                    Some(kv_heads),
                );
            }
            if qk_norm {
                add("attention q, k norms", 2 * head_dim, act, None);
            }
        }
        Attention::Latent {
            heads,
            q_lora_rank,
            kv_lora_rank,
            qk_nope_head_dim,
            qk_rope_head_dim,
            v_head_dim,
        } => {
            let q_head = qk_nope_head_dim + qk_rope_head_dim;
            if q_lora_rank > 0 {
                add("MLA q down-projection", hidden * q_lora_rank, lin, None);
                add("MLA q norm", q_lora_rank, act, None);
                add(
                    "MLA q up-projection",
                    q_lora_rank * heads * q_head,
                    lin,
                    Some(heads),
                );
            } else {
                add(
                    "MLA q projection",
                    hidden * heads * q_head,
                    lin,
                    Some(heads),
                );
            }
            add(
                "MLA kv down-projection",
                hidden * (kv_lora_rank + qk_rope_head_dim),
                lin,
                None,
            );
            add("MLA kv norm", kv_lora_rank, act, None);
            add(
                "MLA kv up-projection",
                kv_lora_rank * heads * (qk_nope_head_dim + v_head_dim),
                lin,
                Some(heads),
            );
            add("attention o", heads * v_head_dim * hidden, lin, Some(heads));
        }
    }
}

/// The parameters of the whole model (a tied head counted once).
pub fn total(model: &ModelSpec, arch: &Architecture) -> u64 {
    pieces(model, arch)
        .iter()
        .filter(|p| p.what != TIED_HEAD)
        .map(|p| p.params)
        .sum()
}

/// Bytes of the KV cache one token holds in one layer on one rank of the whole layer (before any
/// split): GQA keeps K and V of every KV head, MLA its compressed latent and rope key.
pub fn kv_bytes_per_token_layer(model: &ModelSpec, arch: &Architecture) -> u64 {
    let act = model.dtype.size() as u64;
    match arch.attention {
        Attention::Grouped {
            kv_heads, head_dim, ..
        } => 2 * kv_heads * head_dim * act,
        Attention::Latent {
            kv_lora_rank,
            qk_rope_head_dim,
            ..
        } => (kv_lora_rank + qk_rope_head_dim) * act,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::model::{load, PRESETS};

    /// Each preset's count against the total its publisher gives, within 2 %:
    /// - Llama 3.1 8B, 70B, 405B: the "Params" column of Meta's model card (meta-llama/llama-models,
    ///   models/llama3_1/MODEL_CARD.md: 8B, 70B, 405B).
    /// - Mixtral 8x7B: "46.7B total parameters" (Mistral AI, "Mixtral of experts", mistral.ai/news/
    ///   mixtral-of-experts, quoted on the model's Hugging Face card).
    /// - Qwen3-235B-A22B: "Number of Parameters: 235B in total and 22B activated" (Qwen/Qwen3-235B-A22B
    ///   model card on Hugging Face).
    /// - DeepSeek-V3: "Total parameters: 671B" for the main model's 61 layers, embedding and head, the
    ///   MTP module's 11.5B apart (deepseek-ai/DeepSeek-V3, README_WEIGHTS.md).
    #[test]
    fn every_preset_counts_what_its_model_card_publishes() {
        let published: [(&str, f64); 6] = [
            ("llama-3.1-8b", 8e9),
            ("llama-3.1-70b", 70e9),
            ("llama-3.1-405b", 405e9),
            ("mixtral-8x7b", 46.7e9),
            ("qwen3-235b-a22b", 235e9),
            ("deepseek-v3", 671e9),
        ];
        assert_eq!(
            published.len(),
            PRESETS.len(),
            "a preset without its figure"
        );
        for (name, card) in published {
            let m = load(name).unwrap();
            let arch = m
                .architecture
                .clone()
                .unwrap_or_else(|| panic!("{name}: {:?}", m.architecture_missing));
            let counted = total(&m, &arch) as f64;
            let off = (counted - card).abs() / card;
            assert!(
                off < 0.02,
                "{name}: counted {counted:.4e}, card {card:.4e} ({:.2} %)",
                off * 100.0
            );
        }
    }

    /// Qwen3-235B-A22B by hand from its config (hidden 4096, 94 layers, 64 heads and 4 KV heads of 128,
    /// 128 experts of 1536, vocabulary 151936, untied).
    #[test]
    fn qwen3_235b_counted_by_hand() {
        let m = load("qwen3-235b-a22b").unwrap();
        let arch = m.architecture.clone().unwrap();
        let attention = 2 * 4096 * 64 * 128 + 2 * 4096 * 4 * 128 + 2 * 128;
        let experts = 128 * 3 * 4096 * 1536 + 4096 * 128;
        let layer = attention + experts + 2 * 4096;
        let embeddings = 2 * 151_936 * 4096;
        assert_eq!(total(&m, &arch), 94 * layer + embeddings + 4096);
        assert_eq!(total(&m, &arch), 235_093_634_560);
        assert_eq!(kv_bytes_per_token_layer(&m, &arch), 2 * 4 * 128 * 2);
    }

    /// DeepSeek-V3's MLA layer: q 7168x1536, 1536x128x192; kv 7168x576, 512x128x256; o 16384x7168.
    #[test]
    fn deepseek_v3_latent_attention_and_shared_expert_by_hand() {
        let m = load("deepseek-v3").unwrap();
        let arch = m.architecture.clone().unwrap();
        assert_eq!(arch.linear_weight_bytes, 1, "fp8 checkpoint");
        assert_eq!(arch.shared_intermediate_size, 2048);
        let layer0: u64 = pieces(&m, &arch)
            .iter()
            .filter(|p| {
                p.place == Place::Layer(0) && p.what.contains("MLA")
                    || p.place == Place::Layer(0) && p.what == "attention o"
            })
            .map(|p| p.params)
            .sum();
        assert_eq!(
            layer0,
            7168 * 1536
                + 1536
                + 1536 * 128 * 192
                + 7168 * 576
                + 512
                + 512 * 128 * 256
                + 128 * 128 * 7168
        );
        assert_eq!(kv_bytes_per_token_layer(&m, &arch), 576 * 2);
        // Layers 0-2 dense (18432), 3-60 MoE with 256 routed + 1 shared expert.
        let p = pieces(&m, &arch);
        assert!(p
            .iter()
            .any(|x| x.place == Place::Layer(2) && x.what == "dense MLP"));
        assert!(p
            .iter()
            .any(|x| x.place == Place::Layer(3) && x.what == "shared experts"));
        assert_eq!(p.iter().filter(|x| x.what == "routed experts").count(), 58);
    }

    #[test]
    fn a_tied_head_is_counted_once() {
        let text = r#"{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
                       "vocab_size": 1000, "tie_word_embeddings": true}"#;
        let m = crate::workload::model::parse("t", text, "c").unwrap();
        let arch = m.architecture.clone().unwrap();
        let layer = 4 * 64 * 64 + 3 * 64 * 128 + 2 * 64;
        assert_eq!(total(&m, &arch), 1000 * 64 + 2 * layer + 64);
    }
}
