//! The messages one step of a model moves on one layout: which collective, how many bytes, how many
//! times per step, and why. This is the whole communication model of `collbench workload`; what it
//! leaves out is said in `NOT_COUNTED`.

use super::model::ModelSpec;
use crate::collective::Collective;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the step model counts, for the output and the JSON.
pub const COUNTED: [&str; 4] = [
    "TPk: two all_reduce per layer (after attention, after the MLP or MoE) of tokens x hidden x dtype bytes, every rank of a group holding the replica's tokens",
    "TPk with --dp-attention: attention data-parallel inside the group; per layer one all_gather of the tokens before the MLP and one reduce_scatter after it (tokens x hidden x dtype bytes in all)",
    "EPk (MoE models): attention and dense layers data-parallel, each rank ceil(tokens/k) tokens; per MoE layer one dispatch and one combine all_to_allv of the rank's tokens x top-k x hidden x dtype bytes, experts spread evenly",
    "each distinct message measured once, every group of the layout at once (the slowest group's time), and multiplied by its count per step",
];

/// What the step model does not count.
pub const NOT_COUNTED: [&str; 4] = [
    "overlap of communication with compute (the sum is an upper bound of exposed communication)",
    "pipeline parallelism and its bubbles, KV-cache transfers, embedding and sampling collectives",
    "shared experts (computed where the token is) and the router's own small exchanges",
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
/// all_to_all: what each rank sends in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    pub group_size: usize,
    pub collective: Collective,
    pub bytes: u64,
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
    dp_attention: bool,
) -> Vec<StepMessage> {
    let k = layout.size;
    if k < 2 {
        return Vec::new();
    }
    let token_bytes = model.token_bytes();
    let message = |collective, bytes, count, purpose: String| StepMessage {
        key: MessageKey {
            group_size: k,
            collective,
            bytes,
        },
        count,
        purpose,
    };
    match layout.parallelism {
        Parallelism::Tp if dp_attention => vec![
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
        ],
        Parallelism::Tp => vec![message(
            Collective::AllReduce,
            phase.tokens * token_bytes,
            2 * model.layers,
            "attention + MLP all_reduce (2 per layer)".into(),
        )],
        Parallelism::Ep => {
            let per_rank_tokens = phase.tokens.div_ceil(k as u64);
            let bytes = per_rank_tokens * model.experts_per_token * token_bytes;
            ["dispatch", "combine"]
                .into_iter()
                .map(|half| {
                    message(
                        Collective::AllToAll,
                        bytes,
                        model.moe_layers,
                        format!(
                            "MoE {half}, {per_rank_tokens} token(s) x top-{} per rank (1 per MoE layer)",
                            model.experts_per_token
                        ),
                    )
                })
                .collect()
        }
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
        let msgs = step_messages(&m, phase, tp4, false);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].key.collective, Collective::AllReduce);
        assert_eq!(msgs[0].key.bytes, 8192 * 2);
        assert_eq!(msgs[0].count, 160);
        let dp = step_messages(&m, phase, tp4, true);
        assert_eq!(
            dp.iter()
                .map(|s| (s.key.collective, s.count))
                .collect::<Vec<_>>(),
            [(Collective::AllGather, 80), (Collective::ReduceScatter, 80)]
        );
        let tp1 = LayoutChoice { size: 1, ..tp4 };
        assert!(step_messages(&m, phase, tp1, false).is_empty());
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
        let msgs = step_messages(&m, phase, ep8, false);
        // 64 tokens over 8 ranks = 8 per rank, x top-8 x 7168 x 2 bytes, once per each of 58 MoE layers.
        assert_eq!(msgs.len(), 2);
        for s in &msgs {
            assert_eq!(s.key.bytes, 8 * 8 * 7168 * 2);
            assert_eq!(s.count, 58);
        }
        assert_eq!(
            msgs[0].key, msgs[1].key,
            "dispatch and combine are one message"
        );
    }
}
