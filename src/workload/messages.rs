//! The messages one step of a model moves on one layout: which collective, how many bytes, how many
//! times per step, and why. This is the whole communication model of `collbench workload`; what it
//! leaves out is said in `NOT_COUNTED`.

use super::model::ModelSpec;
pub use super::routing::{Half, Route};
use crate::collective::Collective;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the step model counts, for the output and the JSON.
pub const COUNTED: [&str; 4] = [
    "TPk: two all_reduce per layer (after attention, after the MLP or MoE) of tokens x hidden x dtype bytes, every rank of a group holding the replica's tokens",
    "TPk with --dp-attention: attention data-parallel inside the group; per layer one all_gather of the tokens before the MLP and one reduce_scatter after it (tokens x hidden x dtype bytes in all)",
    "EPk (MoE models): attention and dense layers data-parallel, every rank routing ceil(tokens/k) tokens through the MoE router (experts even on the ranks, --skew, --seed); per MoE layer one dispatch and one combine all_to_allv, a token moving hidden x dtype bytes per chosen expert",
    "each distinct message measured once, every group of the layout at once (the slowest group's time), and multiplied by its count per step",
];

/// What the step model does not count.
pub const NOT_COUNTED: [&str; 4] = [
    "overlap of communication with compute (the sum is an upper bound of exposed communication)",
    "pipeline parallelism and its bubbles, KV-cache transfers, embedding and sampling collectives",
    "shared experts (computed where the token is), the router's own small exchanges, and the deduplication of copies bound for one rank that DeepEP-style kernels do",
    "compute time: the numbers are communication time on this cluster, measured",
];

/// How a layout splits the model: tensor parallel or expert parallel groups of `size` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parallelism {
    Tp,
    Ep,
}

/// One candidate layout: consecutive blocks of `size` ranks, every block a replica (TP) or an expert
/// group (EP), all blocks running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LayoutChoice {
    pub parallelism: Parallelism,
    pub size: usize,
}

impl fmt::Display for LayoutChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.parallelism {
            Parallelism::Tp => "TP",
            Parallelism::Ep => "EP",
        };
        write!(f, "{kind}{}", self.size)
    }
}

/// Decode (tokens per step) or prefill (tokens per chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    Decode,
    Prefill,
}

/// A phase at one token count: the unit the ranking is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub kind: PhaseKind,
    /// Tokens per step (decode batch) or per chunk (prefill), per model replica.
    pub tokens: u64,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PhaseKind::Decode => write!(f, "decode, {} token(s) per step", self.tokens),
            PhaseKind::Prefill => write!(
                f,
                "prefill, {} token(s) per chunk",
                crate::size::HumanSize(self.tokens)
            ),
        }
    }
}

/// A message as measured: on groups of `group_size` ranks, `bytes` in the nccl-tests sense of the
/// collective's size (all_reduce: the buffer; all_gather, reduce_scatter: the whole gathered buffer;
/// all_to_allv: the busiest rank's max of bytes sent and received).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    pub group_size: usize,
    pub collective: Collective,
    pub bytes: u64,
    /// For all_to_allv: whose tokens go where (src/workload/routing.rs makes the per-peer bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
}

/// How a step is laid out beyond the layout itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepOptions {
    /// TP layouts run attention data-parallel (all_gather + reduce_scatter instead of all_reduce).
    pub dp_attention: bool,
    /// The MoE router's hot-rank ratio (1: uniform) and seed.
    pub skew: f64,
    pub seed: u64,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            dp_attention: false,
            skew: 1.0,
            seed: 0,
        }
    }
}

/// A message of a step with its count per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMessage {
    pub key: MessageKey,
    pub count: u64,
    /// Why the step sends it, e.g. "attention + MLP all_reduce (2 per layer)".
    pub purpose: String,
}

/// The messages of one step of `phase` on `layout`; empty where the layout communicates nothing
/// (TP1, EP1).
pub fn step_messages(
    model: &ModelSpec,
    phase: Phase,
    layout: LayoutChoice,
    options: &StepOptions,
) -> Result<Vec<StepMessage>, String> {
    let k = layout.size;
    if k < 2 {
        return Ok(Vec::new());
    }
    let token_bytes = model.token_bytes();
    let message = |collective, bytes, count, purpose: String| StepMessage {
        key: MessageKey {
            group_size: k,
            collective,
            bytes,
            route: None,
        },
        count,
        purpose,
    };
    match layout.parallelism {
        Parallelism::Tp if options.dp_attention => Ok(vec![
            message(
                Collective::AllGather,
                phase.tokens * token_bytes,
                model.layers,
                "DP-attention all_gather before the MLP (1 per layer)".into(),
            ),
            message(
                Collective::ReduceScatter,
                phase.tokens * token_bytes,
                model.layers,
                "DP-attention reduce_scatter after the MLP (1 per layer)".into(),
            ),
        ]),
        Parallelism::Tp => Ok(vec![message(
            Collective::AllReduce,
            phase.tokens * token_bytes,
            2 * model.layers,
            "attention + MLP all_reduce (2 per layer)".into(),
        )]),
        Parallelism::Ep => [(Half::Dispatch, "dispatch"), (Half::Combine, "combine")]
            .into_iter()
            .map(|(half, name)| {
                let route = Route {
                    half,
                    tokens_per_rank: phase.tokens.div_ceil(k as u64),
                    experts_per_token: model.experts_per_token,
                };
                let matrix = super::routing::matrix(model, &route, k, options.skew, options.seed)?;
                Ok(StepMessage {
                    key: MessageKey {
                        group_size: k,
                        collective: Collective::AllToAllv,
                        bytes: matrix.busiest(),
                        route: Some(route),
                    },
                    count: model.moe_layers,
                    purpose: format!(
                        "MoE {name}, {} token(s) x top-{} a rank (1 per MoE layer)",
                        route.tokens_per_rank, model.experts_per_token
                    ),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::model::load;

    #[test]
    fn llama_70b_batch_one_decode_is_a_16k_all_reduce_160_times() {
        let m = load("llama-3.1-70b").unwrap();
        let phase = Phase {
            kind: PhaseKind::Decode,
            tokens: 1,
        };
        let tp4 = LayoutChoice {
            parallelism: Parallelism::Tp,
            size: 4,
        };
        let plain = StepOptions::default();
        let dp = StepOptions {
            dp_attention: true,
            ..plain
        };
        let msgs = step_messages(&m, phase, tp4, &plain).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].key.collective, Collective::AllReduce);
        assert_eq!(msgs[0].key.bytes, 8192 * 2);
        assert_eq!(msgs[0].count, 160);
        let dp = step_messages(&m, phase, tp4, &dp).unwrap();
        assert_eq!(
            dp.iter()
                .map(|s| (s.key.collective, s.count))
                .collect::<Vec<_>>(),
            [(Collective::AllGather, 80), (Collective::ReduceScatter, 80)]
        );
        let tp1 = LayoutChoice { size: 1, ..tp4 };
        assert!(step_messages(&m, phase, tp1, &plain).unwrap().is_empty());
    }

    #[test]
    fn deepseek_ep8_decode_dispatches_each_ranks_tokens_times_top_k() {
        let m = load("deepseek-v3").unwrap();
        let phase = Phase {
            kind: PhaseKind::Decode,
            tokens: 64,
        };
        let ep8 = LayoutChoice {
            parallelism: Parallelism::Ep,
            size: 8,
        };
        let msgs = step_messages(&m, phase, ep8, &StepOptions::default()).unwrap();
        // 64 tokens over 8 ranks = 8 a rank, x top-8 = 64 choices over 256 experts, placed by the seed:
        // every rank sends 8 x 8 x 7168 x 2 bytes and the busiest moves at least that, once per each of
        // the 58 MoE layers.
        assert_eq!(msgs.len(), 2);
        for s in &msgs {
            assert_eq!(s.key.collective, Collective::AllToAllv);
            assert!(s.key.bytes >= 8 * 8 * 7168 * 2, "{s:?}");
            assert_eq!(s.count, 58);
        }
        assert_ne!(
            msgs[0].key, msgs[1].key,
            "dispatch and combine are measured apart"
        );
    }
}
