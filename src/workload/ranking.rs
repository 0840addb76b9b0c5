//! Each phase's layouts ranked by measured communication time per step: every message's measured time
//! times its count per step, summed. A phase counts tokens per replica (each layout's replicas each
//! serve them) or for the whole job (shared by the replicas: equal load); each layout's row says how
//! many tokens the job serves per step and the communication time per token. The fastest layout that
//! fits in the GPUs' memory is the winner; one that does not fit is shown with what it needs, after
//! those that fit, and never wins.

use super::fit::Fit;
use super::messages::{
    step_messages, LayoutChoice, Load, MessageKey, Phase, StepMessage, StepOptions,
};
use super::model::ModelSpec;
use crate::collective::Collective;
use serde::{Deserialize, Serialize};

/// The layouts of one phase: those that fit (or whose fit is unknown) fastest first, then those that
/// do not fit, fastest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRanking {
    pub phase: Phase,
    pub layouts: Vec<RankedLayout>,
    /// What qualifies this ranking (per-replica loads that differ between layouts; no layout fits).
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedLayout {
    pub layout: LayoutChoice,
    /// "TP4", "EP8", "TP8xPP2".
    pub name: String,
    /// 1 for the fastest that fits.
    pub place: usize,
    pub winner: bool,
    /// Replicas side by side in the job, the tokens each serves per step (chunk), and the job's.
    #[serde(default)]
    pub replicas: usize,
    #[serde(default)]
    pub tokens_per_replica: u64,
    #[serde(default)]
    pub job_tokens: u64,
    /// Communication time of one step (microseconds): the sum of `parts`.
    pub step_time_us: f64,
    /// step_time_us / job_tokens.
    #[serde(default)]
    pub time_per_token_us: Option<f64>,
    /// This step over the winner's (1.0 for the winner; null without a winner or when the winner's step
    /// moves nothing).
    pub versus_winner: Option<f64>,
    /// What one GPU holds (weights, KV cache) and whether it fits; null where the model's config lacks
    /// the fields to count its weights.
    #[serde(default)]
    pub fit: Option<Fit>,
    /// Energy the step's messages used, summed over every rank of the job, where every message's GPUs
    /// reported an energy counter.
    #[serde(default)]
    pub energy: Option<StepEnergy>,
    pub parts: Vec<StepPart>,
}

/// Joules a step's communication used on the whole job, and per token the job serves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepEnergy {
    pub joules: f64,
    pub joules_per_token: f64,
}

/// One message of a step: its measured time and its share of the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPart {
    /// Index of the measured message in the document's `messages`.
    pub message: usize,
    pub collective: Collective,
    pub bytes: u64,
    pub count: u64,
    pub purpose: String,
    /// One message's measured time, and count x that.
    pub time_us_each: f64,
    pub time_us: f64,
    /// One message's energy over every rank of the job, where its GPUs reported it.
    #[serde(default)]
    pub joules_each: Option<f64>,
}

/// A layout as a phase would run it: its replicas, their tokens, its messages and what a GPU holds.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub layout: LayoutChoice,
    pub replicas: usize,
    pub tokens_per_replica: u64,
    pub messages: Vec<StepMessage>,
    pub fit: Option<Fit>,
}

/// What a job of `ranks` ranks would run for `phase` on each of `layouts`: each layout's replicas, the
/// tokens each serves, its messages and, where the model's weights can be counted, what one GPU holds
/// with sequences of `context` tokens, judged against `gpu_bytes`. An error names a job load a layout's
/// replicas cannot share, or a step the router cannot make.
pub fn candidates(
    model: &ModelSpec,
    phase: Phase,
    layouts: &[LayoutChoice],
    ranks: usize,
    options: &StepOptions,
    context: u64,
    gpu_bytes: Option<u64>,
) -> Result<Vec<Candidate>, String> {
    layouts
        .iter()
        .map(|&layout| {
            let tokens = phase.tokens_per_replica(layout, ranks)?;
            let messages = step_messages(model, tokens, layout, options)
                .map_err(|e| format!("{layout}: {e}"))?;
            let fit = model.architecture.as_ref().map(|arch| {
                let (sequences, length) = super::fit::sequences(phase, tokens, context);
                super::fit::fit(model, arch, layout, sequences, length, gpu_bytes)
            });
            Ok(Candidate {
                layout,
                replicas: layout.replicas(ranks),
                tokens_per_replica: tokens,
                messages,
                fit,
            })
        })
        .collect()
}

/// A measured message as the ranking needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Index in the document's `messages`.
    pub index: usize,
    pub time_us: f64,
    /// Joules per operation over every rank of the job, where known.
    pub joules: Option<f64>,
}

/// Ranks the candidates of `phase`; `measured` gives a message's measurement.
pub fn rank(
    phase: Phase,
    candidates: Vec<Candidate>,
    measured: impl Fn(&MessageKey) -> Measured,
) -> PhaseRanking {
    let mut ranked: Vec<RankedLayout> = candidates
        .into_iter()
        .map(|c| {
            let parts: Vec<StepPart> = c
                .messages
                .into_iter()
                .map(|s| {
                    let m = measured(&s.key);
                    StepPart {
                        message: m.index,
                        collective: s.key.collective,
                        bytes: s.key.bytes,
                        count: s.count,
                        purpose: s.purpose,
                        time_us_each: m.time_us,
                        time_us: m.time_us * s.count as f64,
                        joules_each: m.joules,
                    }
                })
                .collect();
            let job_tokens = c.tokens_per_replica * c.replicas as u64;
            let step_time_us: f64 = parts.iter().map(|p| p.time_us).sum();
            let joules: Option<f64> = parts
                .iter()
                .map(|p| p.joules_each.map(|j| j * p.count as f64))
                .sum();
            RankedLayout {
                layout: c.layout,
                name: c.layout.to_string(),
                place: 0,
                winner: false,
                replicas: c.replicas,
                tokens_per_replica: c.tokens_per_replica,
                job_tokens,
                step_time_us,
                time_per_token_us: (job_tokens > 0).then(|| step_time_us / job_tokens as f64),
                versus_winner: None,
                fit: c.fit,
                energy: joules.map(|joules| StepEnergy {
                    joules,
                    joules_per_token: joules / job_tokens.max(1) as f64,
                }),
                parts,
            }
        })
        .collect();
    let misfit = |r: &RankedLayout| r.fit.as_ref().and_then(|f| f.fits) == Some(false);
    ranked.sort_by(|a, b| {
        misfit(a)
            .cmp(&misfit(b))
            .then(a.step_time_us.total_cmp(&b.step_time_us))
    });
    let winner = ranked
        .first()
        .filter(|r| !misfit(r))
        .map(|r| r.step_time_us);
    for (i, r) in ranked.iter_mut().enumerate() {
        r.place = i + 1;
        r.winner = i == 0 && winner.is_some();
        r.versus_winner = winner
            .filter(|&best| best > 0.0)
            .map(|best| r.step_time_us / best);
    }
    let mut notes = Vec::new();
    if winner.is_none() && !ranked.is_empty() {
        notes.push("no layout fits in the GPUs' memory: none wins".to_string());
    }
    let loads: Vec<u64> = ranked.iter().map(|r| r.job_tokens).collect();
    if phase.load == Load::PerReplica && loads.iter().any(|&t| t != loads[0]) {
        let each: Vec<String> = ranked
            .iter()
            .map(|r| format!("{} {}", r.name, r.job_tokens))
            .collect();
        notes.push(format!(
            "per replica, the layouts serve different loads (tokens per step for the job: {}): the per-token column compares them; --job-batch (--job-prefill) ranks them at equal load",
            each.join(", ")
        ));
    }
    PhaseRanking {
        phase,
        layouts: ranked,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::messages::PhaseKind;
    use crate::workload::model::load;

    fn decode(tokens: u64, load: Load) -> Phase {
        Phase {
            kind: PhaseKind::Decode,
            tokens,
            load,
        }
    }

    fn fitting(fits: Option<bool>) -> Fit {
        Fit {
            weights_bytes: 1,
            kv_cache_bytes: 1,
            needs_bytes: 2,
            heaviest_stage: 0,
            sequences: 1,
            tokens_per_sequence: 1,
            fits,
        }
    }

    /// Llama-3.1-70B's real messages (160 all_reduce of tokens x 16 KiB) on 8 ranks (TP8 and TP4, no
    /// GPU memory given, so every layout may win).
    fn llama_candidates(phase: Phase) -> Vec<Candidate> {
        let m = load("llama-3.1-70b").unwrap();
        let layouts = [LayoutChoice::tp(8), LayoutChoice::tp(4)];
        candidates(&m, phase, &layouts, 8, &StepOptions::default(), 8192, None).unwrap()
    }

    /// A constructed cluster where a group of 8 costs 1.8 times a group of 4 at any size.
    fn constructed(key: &MessageKey) -> Measured {
        let group = if key.group_size == 8 { 1.8 } else { 1.0 };
        Measured {
            index: key.group_size,
            time_us: group * (10.0 + key.bytes as f64 / 1e4),
            joules: Some(key.bytes as f64 / 1e6),
        }
    }

    #[test]
    fn each_layout_says_its_replicas_tokens_and_the_jobs() {
        // Per replica, 8 tokens: TP8 serves 8 tokens (one replica), TP4 16 (two), each with 128 KiB
        // all_reduce: TP4's step (1.0 x (10 + 13.1)) beats TP8's (1.8 x that).
        let per_replica = rank(
            decode(8, Load::PerReplica),
            llama_candidates(decode(8, Load::PerReplica)),
            constructed,
        );
        let names: Vec<&str> = per_replica
            .layouts
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["TP4", "TP8"]);
        let tp4 = &per_replica.layouts[0];
        assert_eq!(
            (tp4.replicas, tp4.tokens_per_replica, tp4.job_tokens),
            (2, 8, 16)
        );
        assert_eq!(per_replica.layouts[1].job_tokens, 8);
        assert!(
            per_replica
                .notes
                .iter()
                .any(|n| n.contains("different loads") && n.contains("TP4 16")),
            "{:?}",
            per_replica.notes
        );
        // For the job, 64 tokens: TP8 runs one replica of 64 (1 MiB all_reduce), TP4 two of 32 (512 KiB).
        let bytes = |tokens: f64| tokens * 8192.0 * 2.0;
        let tp8_each = 1.8 * (10.0 + bytes(64.0) / 1e4);
        let tp4_each = 10.0 + bytes(32.0) / 1e4;
        let job = rank(
            decode(64, Load::PerJob),
            llama_candidates(decode(64, Load::PerJob)),
            constructed,
        );
        assert_eq!(job.layouts[0].name, "TP4", "{job:?}");
        assert!(job.notes.is_empty(), "{:?}", job.notes);
        assert!((job.layouts[0].step_time_us - 160.0 * tp4_each).abs() < 1e-6);
        assert!((job.layouts[1].step_time_us - 160.0 * tp8_each).abs() < 1e-6);
        // Equal load: both serve 64 tokens, so per token they rank alike.
        assert_eq!(job.layouts[0].job_tokens, job.layouts[1].job_tokens);
        // A job of 1 token cannot be shared by TP4's 2 replicas.
        assert!(decode(1, Load::PerJob)
            .tokens_per_replica(LayoutChoice::tp(4), 8)
            .is_err());
    }

    #[test]
    fn job_batch_ranking_differs_from_the_per_replica_ranking_on_a_constructed_case() {
        // A cluster whose 8-rank groups cost a fixed 100 us and 4-rank groups 1 us per KiB: per replica
        // at 8 tokens (128 KiB), TP8 (100 us) beats TP4 (128 us); for a job of 8 tokens TP4's replicas
        // move 64 KiB each (64 us) and TP4 wins.
        let cost = |key: &MessageKey| Measured {
            index: 0,
            time_us: if key.group_size == 8 {
                100.0
            } else {
                key.bytes as f64 / 1024.0
            },
            joules: None,
        };
        let replica = rank(
            decode(8, Load::PerReplica),
            llama_candidates(decode(8, Load::PerReplica)),
            cost,
        );
        let job = rank(
            decode(8, Load::PerJob),
            llama_candidates(decode(8, Load::PerJob)),
            cost,
        );
        assert_eq!(replica.layouts[0].name, "TP8");
        assert!(replica.layouts[0].winner);
        assert_eq!(job.layouts[0].name, "TP4");
        assert!(job.layouts[0].winner);
        assert_eq!(job.layouts[0].tokens_per_replica, 4);
        // The per-token column: per replica TP4 serves 16 tokens in 160 x 128 us.
        let tp4 = replica.layouts.iter().find(|l| l.name == "TP4").unwrap();
        assert!((tp4.time_per_token_us.unwrap() - 160.0 * 128.0 / 16.0).abs() < 1e-9);
        assert!(tp4.energy.is_none(), "no energy counter");
    }

    #[test]
    fn a_layout_that_does_not_fit_never_wins_and_is_shown_with_what_it_needs() {
        let phase = decode(8, Load::PerReplica);
        let mut c = llama_candidates(phase);
        // TP4 is the faster on this cluster but does not fit; TP8 fits.
        c[0].fit = Some(fitting(Some(true)));
        c[1].fit = Some(fitting(Some(false)));
        let r = rank(phase, c.clone(), constructed);
        assert_eq!(r.layouts[0].name, "TP8");
        assert!(r.layouts[0].winner);
        assert!(!r.layouts[1].winner);
        assert_eq!(r.layouts[1].fit.as_ref().unwrap().needs_bytes, 2);
        assert!(
            r.layouts[1].versus_winner.unwrap() < 1.0,
            "faster, yet not the winner"
        );
        // Nothing fits: no winner at all.
        c[0].fit = Some(fitting(Some(false)));
        let none = rank(phase, c.clone(), constructed);
        assert!(none
            .layouts
            .iter()
            .all(|l| !l.winner && l.versus_winner.is_none()));
        assert!(none.notes.iter().any(|n| n.contains("no layout fits")));
        // Unknown memory does not disqualify.
        c[0].fit = Some(fitting(None));
        c[1].fit = Some(fitting(None));
        assert_eq!(rank(phase, c, constructed).layouts[0].name, "TP4");
    }

    #[test]
    fn energy_per_step_sums_each_messages_joules_times_its_count() {
        let phase = decode(8, Load::PerJob);
        let r = rank(phase, llama_candidates(phase), constructed);
        for l in &r.layouts {
            let e = l.energy.unwrap();
            let want: f64 = l
                .parts
                .iter()
                .map(|p| p.count as f64 * p.bytes as f64 / 1e6)
                .sum();
            assert!((e.joules - want).abs() < 1e-9);
            assert!((e.joules_per_token - want / 8.0).abs() < 1e-9);
        }
    }

    #[test]
    fn candidates_carry_each_layouts_share_of_the_job_and_what_a_gpu_holds() {
        let m = load("qwen3-235b-a22b").unwrap();
        let layouts = [LayoutChoice::tp(8), LayoutChoice::tp(4)];
        let phase = decode(16, Load::PerJob);
        // An H100's 80 GB: TP4's 117.6 GB of weights do not fit, TP8's 58.8 GB do.
        let c = candidates(
            &m,
            phase,
            &layouts,
            8,
            &StepOptions::default(),
            8192,
            Some(80_000_000_000),
        )
        .unwrap();
        assert_eq!((c[0].replicas, c[0].tokens_per_replica), (1, 16));
        assert_eq!((c[1].replicas, c[1].tokens_per_replica), (2, 8));
        let fits: Vec<Option<bool>> = c.iter().map(|c| c.fit.as_ref().unwrap().fits).collect();
        assert_eq!(fits, [Some(true), Some(false)]);
        // Decode: one sequence per token of the replica's step, --context tokens each.
        let f = c[1].fit.as_ref().unwrap();
        assert_eq!((f.sequences, f.tokens_per_sequence), (8, 8192));
        // A config without the weights' fields is ranked without fit.
        let bare = crate::workload::model::parse(
            "bare",
            r#"{"hidden_size": 1024, "num_hidden_layers": 2}"#,
            "c",
        )
        .unwrap();
        let c = candidates(
            &bare,
            phase,
            &layouts,
            8,
            &StepOptions::default(),
            8192,
            Some(1),
        )
        .unwrap();
        assert!(c.iter().all(|c| c.fit.is_none()));
        let e = candidates(
            &m,
            decode(3, Load::PerJob),
            &layouts,
            8,
            &StepOptions::default(),
            8192,
            None,
        )
        .unwrap_err();
        assert!(e.contains("TP4") && e.contains("3 tokens"), "{e}");
    }
}
