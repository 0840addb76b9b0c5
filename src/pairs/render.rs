//! The matrix as text (bandwidth and latency of every pair) and the verdict's lines, nccl-tests style.

use super::model::{PairFigure, PairSample, Participant};
use super::verdict::PairsVerdict;

/// One matrix, `value` of each cell, `-` on the diagonal and where a pair was not measured.
fn grid(
    title: &str,
    participants: &[Participant],
    figures: &[PairFigure],
    value: fn(&PairFigure) -> f64,
) -> String {
    let width = participants
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(9);
    let mut out = format!("# {title}\n#{:>width$}", "");
    for p in participants {
        out.push_str(&format!(" {:>width$}", p.name));
    }
    out.push('\n');
    for (i, p) in participants.iter().enumerate() {
        out.push_str(&format!(" {:>width$}", p.name));
        for j in 0..participants.len() {
            let cell = figures
                .iter()
                .find(|f| (f.a, f.b) == (i.min(j), i.max(j)) && i != j)
                .map_or_else(|| "-".to_string(), |f| format!("{:.3}", value(f)));
            out.push_str(&format!(" {cell:>width$}"));
        }
        out.push('\n');
    }
    out
}

/// The bandwidth matrix (GB/s each way) and the latency matrix (us).
pub fn matrices(participants: &[Participant], figures: &[PairFigure]) -> String {
    let mut out = grid(
        "Bandwidth (GB/s each way, bidirectional sendrecv)",
        participants,
        figures,
        |f| f.bandwidth_gbps,
    );
    out.push_str("#\n");
    out.push_str(&grid(
        "Latency (us per exchange)",
        participants,
        figures,
        |f| f.latency_us,
    ));
    out
}

/// The verdict: slow pairs, bad hosts, bad links, or that nobody is to blame.
/// The check's line: wrong elements over every exchange, and the pairs that had any.
pub fn check(samples: &[PairSample], people: &[Participant], check_iters: u64) -> String {
    if check_iters == 0 {
        return "# Wrong elements       : not checked (-c 0)\n".into();
    }
    let total: u64 = samples.iter().filter_map(|s| s.wrong).sum();
    let mut out = format!(
        "# Wrong elements       : {total} ({check_iters} checked exchange(s) per round: each rank must receive its peer's data exactly) {}\n",
        if total == 0 { "OK" } else { "FAILED (exit code 7)" }
    );
    for s in samples.iter().filter(|s| s.wrong.unwrap_or(0) > 0) {
        out.push_str(&format!(
            "#   {} <-> {}: {} wrong in repeat {} round {}\n",
            people[s.a].name,
            people[s.b].name,
            s.wrong.unwrap_or(0),
            s.repeat + 1,
            s.round + 1
        ));
    }
    out
}

pub fn verdict(v: &PairsVerdict) -> String {
    verdict_titled("Pairs verdict", v)
}

/// The verdict under another title (the sweep's "Link probe").
pub fn verdict_titled(title: &str, v: &PairsVerdict) -> String {
    let mut out = format!(
        "# {title:<21}: median pair {:.3} GB/s; slow below {}% of it\n",
        v.median_gbps,
        100.0 - v.threshold_percent
    );
    if v.quiet() {
        out.push_str("#   no pair slow in most repeats: nobody to blame\n");
        return out;
    }
    for h in &v.bad_hosts {
        out.push_str(&format!(
            "#   bad host {}: slow with {}\n",
            h.name,
            h.consistency.describe("partners")
        ));
    }
    for l in &v.bad_links {
        out.push_str(&format!(
            "#   bad link {} <-> {}: {:.3} GB/s, {:.0}% of the median pair, slow in {}; both hosts are fine with their other partners\n",
            l.a,
            l.b,
            l.bandwidth_gbps,
            l.percent_of_median,
            l.consistency.describe("repeats")
        ));
    }
    for p in &v.slow_pairs {
        out.push_str(&format!(
            "#   slow pair {} <-> {}: {:.3} GB/s, {:.0}% of the median pair, slow in {}\n",
            p.a,
            p.b,
            p.bandwidth_gbps,
            p.percent_of_median,
            p.consistency.describe("repeats")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_symmetric_with_an_empty_diagonal() {
        let people: Vec<Participant> = ["alpha", "beta", "gamma"]
            .iter()
            .enumerate()
            .map(|(i, n)| Participant {
                name: n.to_string(),
                host: n.to_string(),
                rank: i,
                members: vec![i],
            })
            .collect();
        let figures = vec![
            PairFigure {
                a: 0,
                b: 1,
                bandwidth_gbps: 1.5,
                latency_us: 10.0,
            },
            PairFigure {
                a: 0,
                b: 2,
                bandwidth_gbps: 2.5,
                latency_us: 20.0,
            },
            PairFigure {
                a: 1,
                b: 2,
                bandwidth_gbps: 0.25,
                latency_us: 30.0,
            },
        ];
        let text = matrices(&people, &figures);
        let beta = text
            .lines()
            .find(|l| l.trim_start().starts_with("beta"))
            .unwrap();
        let cells: Vec<&str> = beta.split_whitespace().collect();
        assert_eq!(cells, ["beta", "1.500", "-", "0.250"], "{text}");
        let gamma_lat = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with("gamma"))
            .unwrap();
        assert_eq!(
            gamma_lat.split_whitespace().collect::<Vec<_>>(),
            ["gamma", "20.000", "30.000", "-"]
        );
    }
}
