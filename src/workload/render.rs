//! The text of a workload run: the model and what is counted, each message as it is measured, and
//! each phase's ranking with the job's tokens, the time per token, what a GPU holds, the energy where
//! it was read, the per-message breakdown and the winner marked.

use super::document::{MeasuredMessage, WorkloadDocument};
use super::fit::Fit;
use super::ranking::{PhaseRanking, RankedLayout};
use crate::report::table::significant;
use crate::size::HumanSize;
use std::fmt::Write;

/// Gigabytes (1e9 bytes) with one decimal.
fn gb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e9)
}

/// The header: the model, the job, the step model in words, and the memory fit is judged against.
pub fn header(doc: &WorkloadDocument, hosts: usize) -> String {
    let m = &doc.model;
    let mut s = String::new();
    let experts = if m.is_moe() {
        format!(
            ", {} routed experts top-{}{}",
            m.experts,
            m.experts_per_token,
            if m.shared_experts > 0 {
                format!(" + {} shared", m.shared_experts)
            } else {
                String::new()
            }
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "# collbench workload: {} (hidden {}, {} layers: {} dense, {} MoE{experts}; {}{}), {} ranks on {hosts} host(s), backend {}",
        m.name,
        m.hidden_size,
        m.layers,
        m.dense_layers,
        m.moe_layers,
        m.dtype,
        if m.dtype_from_config { "" } else { " assumed: the config names no torch_dtype" },
        doc.header.ranks.len(),
        doc.header.backend.name
    );
    let _ = writeln!(s, "# source: {}", m.source);
    if let Some(a) = &m.architecture {
        let _ = writeln!(
            s,
            "# weights: {:.2}B parameters counted from the config, {}",
            super::params::total(m, a) as f64 / 1e9,
            a.weight_format
        );
    }
    for line in &doc.counted {
        let _ = writeln!(s, "# counted: {line}");
    }
    for line in &doc.not_counted {
        let _ = writeln!(s, "# not counted: {line}");
    }
    for line in &doc.fit_counted {
        let _ = writeln!(s, "# fit counts: {line}");
    }
    for line in &doc.fit_not_counted {
        let _ = writeln!(s, "# fit leaves out: {line}");
    }
    match (&doc.gpu_memory, &m.architecture) {
        (_, None) => {
            let _ = writeln!(
                s,
                "# fit: not judged: the config lacks {} (the fields weights are counted from)",
                m.architecture_missing.join(", ")
            );
        }
        (Some(g), Some(_)) => match (g.bytes, &g.skipped) {
            (Some(bytes), _) => {
                let _ = writeln!(
                    s,
                    "# fit: against {} GB per GPU ({}), KV cache for {} tokens per sequence",
                    gb(bytes),
                    g.source,
                    doc.context_tokens
                );
            }
            (None, why) => {
                let _ = writeln!(
                    s,
                    "# fit: check skipped: {}; the needs per GPU are shown",
                    why.as_deref().unwrap_or("no GPU memory known")
                );
            }
        },
        (None, Some(_)) => {}
    }
    for line in &doc.notes {
        let _ = writeln!(s, "# note: {line}");
    }
    let names: Vec<String> = doc
        .layouts
        .iter()
        .map(|l| {
            format!(
                "{} ({}x{})",
                l.name,
                l.groups.len(),
                l.choice.replica_ranks()
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "# layouts: {}; {} distinct message(s) to measure",
        names.join(", "),
        doc.messages.len()
    );
    s
}

/// One line per message once measured.
pub fn measured(m: &MeasuredMessage) -> String {
    let Some(x) = &m.measurement else {
        return String::new();
    };
    let energy = x
        .energy
        .as_ref()
        .map(|e| {
            format!(
                "  {} mJ/op, {} GB/J",
                significant(e.joules_per_op * 1e3),
                significant(e.gb_per_joule)
            )
        })
        .unwrap_or_default();
    format!(
        "#   {:<14} {:>8} on groups of {}: {:>10.2} us  ({} iterations, #wrong {}){}{energy}\n",
        m.key.collective.name(),
        HumanSize(m.measured_bytes).to_string(),
        m.key.group_size,
        x.time_us,
        x.iterations,
        x.wrong.map_or("-".to_string(), |w| w.to_string()),
        match (m.measured_as == m.key.collective.name(), m.imbalance) {
            (true, _) => String::new(),
            (false, Some(i)) => format!("  [{}, imbalance {i:.2}]", m.measured_as),
            (false, None) => format!("  [{}]", m.measured_as),
        }
    )
}

/// "38.0 GB fits", "120.8 GB: does not fit", "62.1 GB" (memory unknown), "-" (not counted).
fn fit_cell(fit: Option<&Fit>) -> String {
    match fit {
        None => "-".into(),
        Some(f) => match f.fits {
            Some(true) => format!("{} fits", gb(f.needs_bytes)),
            Some(false) => format!("{} does not fit", gb(f.needs_bytes)),
            None => gb(f.needs_bytes),
        },
    }
}

fn fit_detail(l: &RankedLayout) -> Option<String> {
    let f = l.fit.as_ref()?;
    Some(format!(
        "per GPU: weights {} GB + KV cache {} GB ({} sequence(s) x {} tokens){}",
        gb(f.weights_bytes),
        gb(f.kv_cache_bytes),
        f.sequences,
        f.tokens_per_sequence,
        if l.layout.stages > 1 {
            format!(", stage {} the heaviest", f.heaviest_stage)
        } else {
            String::new()
        }
    ))
}

/// A phase's ranking with each layout's breakdown.
pub fn ranking(r: &PhaseRanking) -> String {
    let mut s = String::new();
    let energy = r.layouts.iter().any(|l| l.energy.is_some());
    let _ = writeln!(
        s,
        "#\n# {}: communication time per step, layouts ranked",
        r.phase
    );
    let _ = writeln!(
        s,
        "#{:>6}  {:<9} {:>14}  {:>8}  {:>10}  {:>12}  {:>20}{}",
        "place",
        "layout",
        "step (ms)",
        "vs best",
        "job tokens",
        "us per token",
        "per GPU (GB)",
        if energy {
            "  J per step  mJ per token"
        } else {
            ""
        }
    );
    for l in &r.layouts {
        let _ = writeln!(
            s,
            "  {:>5}  {:<9} {:>14.3}  {:>8}  {:>10}  {:>12}  {:>20}{}{}",
            l.place,
            l.name,
            l.step_time_us / 1e3,
            l.versus_winner
                .map_or("-".to_string(), |v| format!("{v:.2}x")),
            l.job_tokens,
            l.time_per_token_us
                .map_or("-".to_string(), |t| format!("{t:.3}")),
            fit_cell(l.fit.as_ref()),
            match (&l.energy, energy) {
                (Some(e), _) => format!(
                    "  {:>10}  {:>11}",
                    significant(e.joules),
                    significant(e.joules_per_token * 1e3)
                ),
                (None, true) => format!("  {:>10}  {:>11}", "-", "-"),
                (None, false) => String::new(),
            },
            if l.winner { "  <- winner" } else { "" }
        );
        let _ = writeln!(
            s,
            "{:>17}{} replica(s) x {} token(s){}",
            "",
            l.replicas,
            l.tokens_per_replica,
            fit_detail(l).map(|d| format!("; {d}")).unwrap_or_default()
        );
        if l.parts.is_empty() {
            let _ = writeln!(s, "{:>17}no communication in a step", "");
        }
        for p in &l.parts {
            let energy = p
                .joules_each
                .map(|j| format!(", {} mJ", significant(j * 1e3)))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{:>17}{:<14} {:>8} x {:>4} = {:>10.3} ms ({:.2} us{energy} each)  {}",
                "",
                p.collective.name(),
                HumanSize(p.bytes).to_string(),
                p.count,
                p.time_us / 1e3,
                p.time_us_each,
                p.purpose
            );
        }
    }
    for note in &r.notes {
        let _ = writeln!(s, "# note: {note}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Collective;
    use crate::workload::messages::{LayoutChoice, Load, Phase, PhaseKind};
    use crate::workload::ranking::{RankedLayout, StepEnergy, StepPart};

    fn row(name: &str, fits: Option<bool>, winner: bool) -> RankedLayout {
        RankedLayout {
            layout: LayoutChoice::tp(4),
            name: name.into(),
            place: 1,
            winner,
            replicas: 2,
            tokens_per_replica: 4,
            job_tokens: 8,
            step_time_us: 2000.0,
            time_per_token_us: Some(250.0),
            versus_winner: Some(1.0),
            fit: Some(Fit {
                weights_bytes: 117_600_000_000,
                kv_cache_bytes: 3_200_000_000,
                needs_bytes: 120_800_000_000,
                heaviest_stage: 0,
                sequences: 4,
                tokens_per_sequence: 8192,
                fits,
            }),
            energy: Some(StepEnergy {
                joules: 1.5,
                joules_per_token: 0.1875,
            }),
            parts: vec![StepPart {
                message: 0,
                collective: Collective::AllReduce,
                bytes: 64 << 10,
                count: 64,
                purpose: "attention + MLP all_reduce (2 per layer)".into(),
                time_us_each: 18.75,
                time_us: 1200.0,
                joules_each: Some(0.0234375),
            }],
        }
    }

    #[test]
    fn a_ranking_shows_the_jobs_tokens_per_token_time_fit_and_energy() {
        let r = PhaseRanking {
            phase: Phase {
                kind: PhaseKind::Decode,
                tokens: 8,
                load: Load::PerJob,
            },
            layouts: vec![row("TP8", Some(true), true), row("TP4", Some(false), false)],
            notes: vec!["x".into()],
        };
        let text = ranking(&r);
        assert!(
            text.contains("8 token(s) per step for the whole job"),
            "{text}"
        );
        assert!(
            text.contains("120.8 fits") && text.contains("120.8 does not fit"),
            "{text}"
        );
        assert!(
            text.contains("250.000") && text.contains("        1.50          188  <- winner"),
            "{text}"
        );
        assert!(
            text.contains("weights 117.6 GB + KV cache 3.2 GB (4 sequence(s) x 8192 tokens)"),
            "{text}"
        );
        // Each message of the step with its time and energy per operation.
        assert!(
            text.contains("64K x   64 =      1.200 ms (18.75 us, 23.4 mJ each)"),
            "{text}"
        );
        assert_eq!(text.matches("<- winner").count(), 1);
        assert!(text.contains("# note: x"));
    }
}
