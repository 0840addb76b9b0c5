//! Each phase's layouts ranked by measured communication time per step: every message's measured time
//! times its count per step, summed; the fastest layout is the winner.

use super::messages::{LayoutChoice, MessageKey, Phase, StepMessage};
use crate::collective::Collective;
use serde::{Deserialize, Serialize};

/// The layouts of one phase, fastest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRanking {
    pub phase: Phase,
    pub layouts: Vec<RankedLayout>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedLayout {
    pub layout: LayoutChoice,
    /// "TP4", "EP8".
    pub name: String,
    /// 1 for the fastest.
    pub place: usize,
    pub winner: bool,
    /// Communication time of one step (microseconds): the sum of `parts`.
    pub step_time_us: f64,
    /// This step over the winner's (1.0 for the winner; null when the winner's step moves nothing).
    pub versus_winner: Option<f64>,
    pub parts: Vec<StepPart>,
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
}

/// Ranks `layouts` in each of `phases`; `steps` gives a layout's messages in a phase and `measured`
/// the index and measured time of a message.
pub fn rank(
    phases: &[Phase],
    layouts: &[LayoutChoice],
    steps: impl Fn(Phase, LayoutChoice) -> Vec<StepMessage>,
    measured: impl Fn(&MessageKey) -> (usize, f64),
) -> Vec<PhaseRanking> {
    phases
        .iter()
        .map(|&phase| {
            let mut ranked: Vec<RankedLayout> = layouts
                .iter()
                .map(|&layout| {
                    let parts: Vec<StepPart> = steps(phase, layout)
                        .into_iter()
                        .map(|s| {
                            let (message, each) = measured(&s.key);
                            StepPart {
                                message,
                                collective: s.key.collective,
                                bytes: s.key.bytes,
                                count: s.count,
                                purpose: s.purpose,
                                time_us_each: each,
                                time_us: each * s.count as f64,
                            }
                        })
                        .collect();
                    RankedLayout {
                        layout,
                        name: layout.to_string(),
                        place: 0,
                        winner: false,
                        step_time_us: parts.iter().map(|p| p.time_us).sum(),
                        versus_winner: None,
                        parts,
                    }
                })
                .collect();
            ranked.sort_by(|a, b| a.step_time_us.total_cmp(&b.step_time_us));
            let best = ranked.first().map_or(0.0, |r| r.step_time_us);
            for (i, r) in ranked.iter_mut().enumerate() {
                r.place = i + 1;
                r.winner = i == 0;
                r.versus_winner = (best > 0.0).then(|| r.step_time_us / best);
            }
            PhaseRanking {
                phase,
                layouts: ranked,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::messages::{Parallelism, PhaseKind};

    #[test]
    fn the_fastest_step_wins_and_parts_are_time_times_count() {
        let phase = Phase {
            kind: PhaseKind::Decode,
            tokens: 8,
        };
        let tp = |size| LayoutChoice {
            parallelism: Parallelism::Tp,
            size,
        };
        let steps = |_: Phase, l: LayoutChoice| {
            vec![StepMessage {
                key: MessageKey {
                    group_size: l.size,
                    collective: Collective::AllReduce,
                    bytes: 100,
                    route: None,
                },
                count: 10,
                purpose: "x".into(),
            }]
        };
        // Groups of 4 take 3 us a message, groups of 2 take 5 us.
        let measured = |k: &MessageKey| (k.group_size, if k.group_size == 4 { 3.0 } else { 5.0 });
        let r = rank(&[phase], &[tp(2), tp(4)], steps, measured);
        let l = &r[0].layouts;
        assert_eq!(
            (l[0].name.as_str(), l[0].place, l[0].winner),
            ("TP4", 1, true)
        );
        assert_eq!(l[0].step_time_us, 30.0);
        assert_eq!((l[1].name.as_str(), l[1].step_time_us), ("TP2", 50.0));
        assert_eq!(l[1].versus_winner, Some(50.0 / 30.0));
        assert!(!l[1].winner);
        assert_eq!(l[1].parts[0].time_us_each, 5.0);
    }
}
