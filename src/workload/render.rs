//! The text of a workload run: the model and what is counted, each message as it is measured, and
//! each phase's ranking with its per-message breakdown and the winner marked.

use super::document::{MeasuredMessage, WorkloadDocument};
use super::ranking::PhaseRanking;
use crate::size::HumanSize;
use std::fmt::Write;

/// The header: the model, the job, and the step model in words.
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
    for line in &doc.counted {
        let _ = writeln!(s, "# counted: {line}");
    }
    for line in &doc.not_counted {
        let _ = writeln!(s, "# not counted: {line}");
    }
    for line in &doc.notes {
        let _ = writeln!(s, "# note: {line}");
    }
    let names: Vec<String> = doc
        .layouts
        .iter()
        .map(|l| format!("{} ({}x{})", l.name, l.groups.len(), l.choice.size))
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
    format!(
        "#   {:<14} {:>8} on groups of {}: {:>10.2} us  ({} iterations, #wrong {}){}\n",
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

/// A phase's ranking with each layout's breakdown.
pub fn ranking(r: &PhaseRanking) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#\n# {}: communication time per step, layouts ranked",
        r.phase
    );
    let _ = writeln!(
        s,
        "#{:>6}  {:<8} {:>14}  {:>8}",
        "place", "layout", "step (ms)", "vs best"
    );
    for l in &r.layouts {
        let _ = writeln!(
            s,
            "  {:>5}  {:<8} {:>14.3}  {:>8}{}",
            l.place,
            l.name,
            l.step_time_us / 1e3,
            l.versus_winner
                .map_or("-".to_string(), |v| format!("{v:.2}x")),
            if l.winner { "  <- winner" } else { "" }
        );
        if l.parts.is_empty() {
            let _ = writeln!(s, "{:>17}no communication in a step", "");
        }
        for p in &l.parts {
            let _ = writeln!(
                s,
                "{:>17}{:<14} {:>8} x {:>4} = {:>10.3} ms ({:.2} us each)  {}",
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
    s
}
