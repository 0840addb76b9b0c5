//! The messages one step of a model moves on one layout: which collective, how many bytes, how many
//! times per step, and why. This is the whole communication model of `collbench workload`; what it
//! leaves out is said in `NOT_COUNTED`.

use super::model::ModelSpec;
pub use super::routing::{Half, Route};
use crate::collective::Collective;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the step model counts, for the output and the JSON.
pub const COUNTED: [&str; 5] = [
    "TPk: two all_reduce per layer (after attention, after the MLP or MoE) of tokens x hidden x dtype bytes, every rank of a group holding the replica's tokens",
    "TPk with --dp-attention: attention data-parallel inside the group; per layer one all_gather of the tokens before the MLP and one reduce_scatter after it (tokens x hidden x dtype bytes in all)",
    "EPk (MoE models): attention and dense layers data-parallel, every rank routing ceil(tokens/k) tokens through the MoE router (experts even on the ranks, --skew, --seed); per MoE layer one dispatch and one combine all_to_allv, a token moving hidden x dtype bytes per chosen expert",
    "TPk x PPm: the TP messages of every layer as for TPk (each stage's groups at once), and m-1 stage boundaries per step, each moving the tokens' activations (tokens x hidden x dtype bytes) from every rank of a stage to the rank in the same TP place of the next stage by point-to-point; measured with every boundary of the job moving at once and counted once per boundary, the stages running one after another",
    "each distinct message measured once, every group of the layout at once (the slowest group's time), and multiplied by its count per step",
];

/// What the step model does not count.
pub const NOT_COUNTED: [&str; 5] = [
    "overlap of communication with compute (the sum is an upper bound of exposed communication)",
    "micro-batching and the pipeline's bubbles (a step runs its stages one after another: neither the overlap of stages nor their idle time)",
    "KV-cache transfers, embedding and sampling collectives",
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

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// One candidate layout: consecutive blocks of `size` ranks, every block a replica (TP) or an expert
/// group (EP), all blocks running at once; with `stages` > 1 (TP only) a replica is `stages`
/// consecutive TP blocks, one per pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LayoutChoice {
    pub parallelism: Parallelism,
    pub size: usize,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub stages: usize,
}

impl LayoutChoice {
    pub fn tp(size: usize) -> LayoutChoice {
        LayoutChoice {
            parallelism: Parallelism::Tp,
            size,
            stages: 1,
        }
    }

    pub fn ep(size: usize) -> LayoutChoice {
        LayoutChoice {
            parallelism: Parallelism::Ep,
            size,
            stages: 1,
        }
    }

    /// TP `size` in each of `stages` pipeline stages.
    pub fn tp_pp(size: usize, stages: usize) -> LayoutChoice {
        LayoutChoice {
            stages,
            ..LayoutChoice::tp(size)
        }
    }

    /// Ranks of one replica (or EP group).
    pub fn replica_ranks(&self) -> usize {
        self.size * self.stages
    }

    /// Replicas side by side on a job of `ranks` ranks.
    pub fn replicas(&self, ranks: usize) -> usize {
        ranks / self.replica_ranks().max(1)
    }
}

impl fmt::Display for LayoutChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.parallelism {
            Parallelism::Tp => "TP",
            Parallelism::Ep => "EP",
        };
        write!(f, "{kind}{}", self.size)?;
        if self.stages > 1 {
            write!(f, "xPP{}", self.stages)?;
        }
        Ok(())
    }
}

/// Decode (tokens per step) or prefill (tokens per chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    Decode,
    Prefill,
}

/// Whose tokens a phase counts: each replica's (every layout's replicas each serve them, so layouts
/// with more replicas serve more), or the whole job's (shared by a layout's replicas: equal load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    #[default]
    PerReplica,
    PerJob,
}

/// A phase at one token count: the unit the ranking is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub kind: PhaseKind,
    /// Tokens per step (decode batch) or per chunk (prefill), per model replica or for the whole job
    /// (`load`).
    pub tokens: u64,
    #[serde(default)]
    pub load: Load,
}

impl Phase {
    /// The tokens one replica of `layout` serves on a job of `ranks` ranks; an error names a job load
    /// its replicas cannot share evenly.
    pub fn tokens_per_replica(&self, layout: LayoutChoice, ranks: usize) -> Result<u64, String> {
        let replicas = layout.replicas(ranks) as u64;
        match self.load {
            Load::PerReplica => Ok(self.tokens),
            Load::PerJob if replicas > 0 && self.tokens % replicas == 0 => {
                Ok(self.tokens / replicas)
            }
            Load::PerJob => Err(format!(
                "{layout} runs {replicas} replicas on {ranks} ranks, which cannot share {} tokens evenly: give a multiple of {replicas}",
                self.tokens
            )),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whose = match self.load {
            Load::PerReplica => "per replica",
            Load::PerJob => "for the whole job, shared by each layout's replicas",
        };
        match self.kind {
            PhaseKind::Decode => write!(f, "decode, {} token(s) per step {whose}", self.tokens),
            PhaseKind::Prefill => write!(
                f,
                "prefill, {} token(s) per chunk {whose}",
                crate::size::HumanSize(self.tokens)
            ),
        }
    }
}

/// A message as measured: on groups of `group_size` ranks, `bytes` in the nccl-tests sense of the
/// collective's size (all_reduce: the buffer; all_gather, reduce_scatter: the whole gathered buffer;
/// all_to_allv: the busiest rank's max of bytes sent and received; a stage boundary: what each rank
/// sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    pub group_size: usize,
    pub collective: Collective,
    pub bytes: u64,
    /// For all_to_allv: whose tokens go where (src/workload/routing.rs makes the per-peer bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// For a pipeline's stage boundaries (collective sendrecv, `group_size` the replica's ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Boundary>,
}

/// The stage boundaries of TPk x PPm replicas: in each replica of `tp` x `stages` consecutive ranks,
/// the rank at place i of stage s sends to the rank at place i of stage s + 1 (s + 1 < stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Boundary {
    pub tp: usize,
    pub stages: usize,
}

impl Boundary {
    /// (send to, receive from) for job rank `rank`, in job ranks; None where it has none.
    pub fn partners(&self, rank: usize) -> (Option<usize>, Option<usize>) {
        let replica = self.tp * self.stages;
        let within = rank % replica;
        let stage = within / self.tp;
        (
            (stage + 1 < self.stages).then(|| rank + self.tp),
            (stage > 0).then(|| rank - self.tp),
        )
    }
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

/// The messages of one step on `layout` when each replica serves `tokens`; empty where the layout
/// communicates nothing (TP1, EP1).
pub fn step_messages(
    model: &ModelSpec,
    tokens: u64,
    layout: LayoutChoice,
    options: &StepOptions,
) -> Result<Vec<StepMessage>, String> {
    let k = layout.size;
    let token_bytes = model.token_bytes();
    let message = |collective, bytes, count, purpose: String| StepMessage {
        key: MessageKey {
            group_size: k,
            collective,
            bytes,
            route: None,
            boundary: None,
        },
        count,
        purpose,
    };
    let mut out = match layout.parallelism {
        _ if k < 2 => Vec::new(),
        Parallelism::Tp if options.dp_attention => vec![
            message(
                Collective::AllGather,
                tokens * token_bytes,
                model.layers,
                "DP-attention all_gather before the MLP (1 per layer)".into(),
            ),
            message(
                Collective::ReduceScatter,
                tokens * token_bytes,
                model.layers,
                "DP-attention reduce_scatter after the MLP (1 per layer)".into(),
            ),
        ],
        Parallelism::Tp => vec![message(
            Collective::AllReduce,
            tokens * token_bytes,
            2 * model.layers,
            "attention + MLP all_reduce (2 per layer)".into(),
        )],
        Parallelism::Ep => [Half::Dispatch, Half::Combine]
            .into_iter()
            .map(|half| {
                let route = Route {
                    half,
                    tokens_per_rank: tokens.div_ceil(k as u64),
                    experts_per_token: model.experts_per_token,
                };
                let matrix = super::routing::matrix(model, &route, k, options.skew, options.seed)?;
                Ok(StepMessage {
                    key: MessageKey {
                        route: Some(route),
                        ..message(Collective::AllToAllv, matrix.busiest(), 0, String::new()).key
                    },
                    count: model.moe_layers,
                    purpose: format!(
                        "MoE {}, {} token(s) x top-{} a rank (1 per MoE layer)",
                        half.name(),
                        route.tokens_per_rank,
                        model.experts_per_token
                    ),
                })
            })
            .collect::<Result<_, String>>()?,
    };
    if layout.stages > 1 {
        out.push(StepMessage {
            key: MessageKey {
                group_size: layout.replica_ranks(),
                collective: Collective::SendRecv,
                bytes: tokens * token_bytes,
                route: None,
                boundary: Some(Boundary {
                    tp: k,
                    stages: layout.stages,
                }),
            },
            count: layout.stages as u64 - 1,
            purpose: format!(
                "stage boundary: each rank's activations to its peer in the next stage ({} per step, all boundaries at once)",
                layout.stages - 1
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::model::load;

    #[test]
    fn llama_70b_batch_one_decode_is_a_16k_all_reduce_160_times() {
        let m = load("llama-3.1-70b").unwrap();
        let tp4 = LayoutChoice::tp(4);
        let plain = StepOptions::default();
        let dp = StepOptions {
            dp_attention: true,
            ..plain
        };
        let msgs = step_messages(&m, 1, tp4, &plain).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].key.collective, Collective::AllReduce);
        assert_eq!(msgs[0].key.bytes, 8192 * 2);
        assert_eq!(msgs[0].count, 160);
        let dp = step_messages(&m, 1, tp4, &dp).unwrap();
        assert_eq!(
            dp.iter()
                .map(|s| (s.key.collective, s.count))
                .collect::<Vec<_>>(),
            [(Collective::AllGather, 80), (Collective::ReduceScatter, 80)]
        );
        assert!(step_messages(&m, 1, LayoutChoice::tp(1), &plain)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn deepseek_ep8_decode_dispatches_each_ranks_tokens_times_top_k() {
        let m = load("deepseek-v3").unwrap();
        let msgs = step_messages(&m, 64, LayoutChoice::ep(8), &StepOptions::default()).unwrap();
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

    #[test]
    fn tp8_x_pp2_moves_the_stage_boundary_once_and_keeps_every_layers_all_reduce() {
        let m = load("llama-3.1-70b").unwrap();
        let msgs =
            step_messages(&m, 8, LayoutChoice::tp_pp(8, 2), &StepOptions::default()).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (
                msgs[0].key.collective,
                msgs[0].key.group_size,
                msgs[0].key.bytes,
                msgs[0].count
            ),
            (Collective::AllReduce, 8, 8 * 8192 * 2, 160)
        );
        let b = &msgs[1];
        assert_eq!(
            (b.key.collective, b.key.group_size, b.key.bytes, b.count),
            (Collective::SendRecv, 16, 8 * 8192 * 2, 1)
        );
        let hop = b.key.boundary.unwrap();
        // Replica 0 is ranks 0-15: stage 0 is 0-7, stage 1 is 8-15.
        assert_eq!(hop.partners(3), (Some(11), None));
        assert_eq!(hop.partners(11), (None, Some(3)));
        // Four stages of TP2: rank 5 (stage 2) receives from 3 and sends to 7; rank 9 is replica 1's.
        let four = Boundary { tp: 2, stages: 4 };
        assert_eq!(four.partners(5), (Some(7), Some(3)));
        assert_eq!(four.partners(9), (Some(11), None));
        assert_eq!(LayoutChoice::tp_pp(8, 2).to_string(), "TP8xPP2");
        // PP alone moves only the boundary: 3 of them on 4 stages.
        let pp = step_messages(&m, 8, LayoutChoice::tp_pp(1, 4), &StepOptions::default()).unwrap();
        assert_eq!(pp.len(), 1);
        assert_eq!(pp[0].count, 3);
    }

    #[test]
    fn a_job_load_is_shared_by_a_layouts_replicas() {
        let phase = Phase {
            kind: PhaseKind::Decode,
            tokens: 8,
            load: Load::PerJob,
        };
        // 8 ranks: TP8 is one replica of 8 tokens, TP4 two of 4, TP8xPP2 on 16 ranks one of 8.
        assert_eq!(phase.tokens_per_replica(LayoutChoice::tp(8), 8), Ok(8));
        assert_eq!(phase.tokens_per_replica(LayoutChoice::tp(4), 8), Ok(4));
        assert_eq!(
            phase.tokens_per_replica(LayoutChoice::tp_pp(8, 2), 16),
            Ok(8)
        );
        let e = phase
            .tokens_per_replica(LayoutChoice::tp(1), 16)
            .unwrap_err();
        assert!(
            e.contains("16 replicas") && e.contains("multiple of 16"),
            "{e}"
        );
        let replica = Phase {
            load: Load::PerReplica,
            ..phase
        };
        assert_eq!(replica.tokens_per_replica(LayoutChoice::tp(4), 8), Ok(8));
    }
}
