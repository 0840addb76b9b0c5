//! The matrix as text (bandwidth and latency of every pair) and the verdict's lines, nccl-tests style.

use super::document::{PairFigure, PairSample, Participant};
use super::schedule::circle_round_count;
use super::verdict::PairsVerdict;
use crate::cli::pairs::DEFAULT_REPEATS;
use crate::report::link_probe::SearchReport;

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

pub fn verdict(v: &PairsVerdict, searched: bool) -> String {
    verdict_titled("Pairs verdict", v, searched)
}

/// The verdict under another title (the sweep's "Link probe"). A pair's trials are the repeats of
/// the full matrix, or the search's measurements of it.
pub fn verdict_titled(title: &str, v: &PairsVerdict, searched: bool) -> String {
    let trials = if searched { "measurements" } else { "repeats" };
    let mut out = format!(
        "# {title:<21}: median pair {:.3} GB/s; slow below {}% of it\n",
        v.median_gbps,
        100.0 - v.threshold_percent
    );
    if v.quiet() {
        out.push_str(&format!(
            "#   no pair slow in most {trials}: nobody to blame\n"
        ));
    }
    for (kind, hosts) in [("bad host", &v.bad_hosts), ("flaky host", &v.flaky_hosts)] {
        push_capped(&mut out, hosts, NAMED_UP_TO, &format!("{kind}s"), |h| {
            format!(
                "#   {kind} {}: slow with {}{}{}\n",
                h.name,
                h.consistency.describe("partners"),
                h.rounds
                    .as_ref()
                    .map(|r| format!(", in {}", r.describe("rounds")))
                    .unwrap_or_default(),
                if h.slow_with.is_empty() {
                    String::new()
                } else {
                    format!("; with {}", names(&h.slow_with, EVIDENCE_NAMES))
                }
            )
        });
    }
    push_capped(&mut out, &v.bad_links, NAMED_UP_TO, "bad links", |l| {
        format!(
            "#   bad link {} <-> {}: {:.3} GB/s, {:.0}% of the median pair, slow in {}; both hosts are fine with their other partners\n",
            l.a,
            l.b,
            l.bandwidth_gbps,
            l.percent_of_median,
            l.consistency.describe(trials)
        )
    });
    push_capped(&mut out, &v.slow_pairs, WORST_PAIRS, "slow pairs", |p| {
        format!(
            "#   slow pair {} <-> {}: {:.3} GB/s, {:.0}% of the median pair, slow in {}\n",
            p.a,
            p.b,
            p.bandwidth_gbps,
            p.percent_of_median,
            p.consistency.describe(trials)
        )
    });
    push_capped(
        &mut out,
        &v.undecided_links,
        WORST_PAIRS,
        "undecided pairs",
        |p| {
            format!(
            "#   undecided pair {} <-> {}: {:.3} GB/s, slow in {}: not measured often enough to call it a bad link\n",
            p.a,
            p.b,
            p.bandwidth_gbps,
            p.consistency.describe(trials)
        )
        },
    );
    if !v.undecided_hosts.is_empty() {
        out.push_str(&format!(
            "#   undecided hosts (neither named nor cleared; more rounds would tell, --max-rounds): {}\n",
            names(&v.undecided_hosts, 16)
        ));
    }
    out
}

/// Above this many participants the terminal shows the verdict, the worst pairs and each named
/// host's evidence instead of the matrix; the JSON and the heatmap keep every pair.
pub const MATRIX_UP_TO: usize = 32;
/// Pairs listed on the terminal (worst pairs, slow pairs, undecided pairs).
pub const WORST_PAIRS: usize = 10;
/// Bad hosts, flaky hosts and bad links each listed on the terminal: every one of a few bad nodes or
/// cables, but a screen, not thousands of lines, when a whole fabric is slow.
pub const NAMED_UP_TO: usize = 32;
/// Partners named as a host's evidence on the terminal.
const EVIDENCE_NAMES: usize = 8;

/// The first `most` of `items`, one line each, and a line counting the rest (they are in the JSON).
fn push_capped<T>(
    out: &mut String,
    items: &[T],
    most: usize,
    what: &str,
    line: impl Fn(&T) -> String,
) {
    for item in items.iter().take(most) {
        out.push_str(&line(item));
    }
    if items.len() > most {
        out.push_str(&format!(
            "#   ... and {} more {what} (in the JSON)\n",
            items.len() - most
        ));
    }
}

/// "a, b, c" or "a, b, c and 5 more".
fn names(all: &[String], most: usize) -> String {
    let shown = all[..all.len().min(most)].join(", ");
    if all.len() > most {
        format!("{shown} and {} more", all.len() - most)
    } else {
        shown
    }
}

/// The slowest measured pairs, one a line.
pub fn worst_pairs(
    participants: &[Participant],
    figures: &[PairFigure],
    median_gbps: f64,
    count: usize,
) -> String {
    let mut worst: Vec<&PairFigure> = figures.iter().collect();
    worst.sort_by(|x, y| x.bandwidth_gbps.total_cmp(&y.bandwidth_gbps));
    let mut out = format!(
        "# Worst pairs          : {} of {} measured (every pair is in the JSON and the heatmap)\n",
        count.min(worst.len()),
        worst.len()
    );
    for f in worst.into_iter().take(count) {
        out.push_str(&format!(
            "#   {} <-> {}: {:.3} GB/s, {:.0}% of the median pair, {:.1} us latency\n",
            participants[f.a].name,
            participants[f.b].name,
            f.bandwidth_gbps,
            100.0 * f.bandwidth_gbps / median_gbps,
            f.latency_us
        ));
    }
    out
}

/// What the terminal shows at the end of a pairs check: up to MATRIX_UP_TO participants the
/// matrices, then how the search ran (when it did) and the verdict; above it the worst pairs instead of
/// the matrices, so a fleet's report is a screen whatever its size.
pub fn summary(
    people: &[Participant],
    figures: &[PairFigure],
    searched: Option<&SearchReport>,
    v: &PairsVerdict,
) -> String {
    let list_pairs = people.len() <= MATRIX_UP_TO;
    let mut text = if list_pairs {
        let mut t = matrices(people, figures);
        t.push_str("#\n");
        t
    } else {
        String::new()
    };
    if let Some(report) = searched {
        text.push_str(&search(report, people.len(), DEFAULT_REPEATS));
    }
    text.push_str(&verdict(v, searched.is_some()));
    if !list_pairs {
        text.push_str(&worst_pairs(people, figures, v.median_gbps, WORST_PAIRS));
    }
    text
}

/// How the search ran, and what the circle method would have cost.
pub fn search(report: &SearchReport, participants: usize, repeats: usize) -> String {
    let all_pairs = participants * participants.saturating_sub(1) / 2;
    let mut out = format!(
        "# Search               : {} round(s), {}; {} of {} pairs measured, each participant met at most {} partners\n",
        report.rounds,
        if report.sure {
            "sure: every host named or cleared"
        } else {
            "not sure: --max-rounds stopped it"
        },
        report.pairs_measured,
        all_pairs,
        report.most_partners
    );
    let circle = circle_round_count(participants) * repeats;
    match report.seconds_per_round {
        Some(s) => out.push_str(&format!(
            "#   a round took {s:.2} s: {:.1} s in all; the circle method's {circle} rounds ({} x {repeats} repeats) would take {:.1} s\n",
            s * report.rounds as f64,
            circle_round_count(participants),
            s * circle as f64
        )),
        None => out.push_str(&format!(
            "#   the circle method would take {circle} rounds ({} x {repeats} repeats)\n",
            circle_round_count(participants)
        )),
    }
    for n in &report.first_named {
        out.push_str(&format!("#   {} named after round {}\n", n.name, n.round));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_symmetric_with_an_empty_diagonal() {
        let people = crate::pairs::document::test_participants(&["alpha", "beta", "gamma"]);
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

    #[test]
    fn a_long_list_shows_its_first_lines_and_counts_the_rest() {
        let lines = |n: usize| {
            let items: Vec<usize> = (0..n).collect();
            let mut out = String::new();
            push_capped(&mut out, &items, WORST_PAIRS, "slow pairs", |i| {
                format!("#   pair {i}\n")
            });
            out
        };
        let long = lines(WORST_PAIRS + 2);
        assert_eq!(long.lines().count(), WORST_PAIRS + 1, "{long}");
        assert!(
            long.contains(&format!("#   pair {}\n", WORST_PAIRS - 1)),
            "{long}"
        );
        assert!(
            !long.contains(&format!("#   pair {}\n", WORST_PAIRS)),
            "{long}"
        );
        assert!(
            long.ends_with("#   ... and 2 more slow pairs (in the JSON)\n"),
            "{long}"
        );
        assert_eq!(lines(3), "#   pair 0\n#   pair 1\n#   pair 2\n");
    }

    #[test]
    fn a_fabric_slow_everywhere_names_a_screen_of_hosts_and_links_and_counts_the_rest() {
        use crate::fleet::blame::by_majority;
        use crate::report::link_probe::{BadHost, SlowPair};
        let host = |i: usize| BadHost {
            name: format!("node{i:04}"),
            consistency: by_majority(7, 8),
            slow_with: Vec::new(),
            rounds: None,
        };
        let link = |i: usize| SlowPair {
            a: format!("node{i:04}"),
            b: format!("node{:04}", i + 1),
            bandwidth_gbps: 1.0,
            percent_of_median: 40.0,
            consistency: by_majority(3, 3),
        };
        let v = PairsVerdict {
            threshold_percent: 10.0,
            median_gbps: 2.5,
            slow_pairs: Vec::new(),
            bad_hosts: (0..NAMED_UP_TO + 8).map(host).collect(),
            bad_links: (0..NAMED_UP_TO + 3).map(link).collect(),
            flaky_hosts: (0..2).map(|i| host(5000 + i)).collect(),
            undecided_links: Vec::new(),
            undecided_hosts: Vec::new(),
        };
        let text = verdict(&v, true);
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("#   bad host "), NAMED_UP_TO, "{text}");
        assert_eq!(count("#   bad link "), NAMED_UP_TO, "{text}");
        assert_eq!(count("#   flaky host "), 2, "{text}");
        assert!(
            text.contains("#   ... and 8 more bad hosts (in the JSON)\n"),
            "{text}"
        );
        assert!(
            text.contains("#   ... and 3 more bad links (in the JSON)\n"),
            "{text}"
        );
        assert!(!text.contains("more flaky hosts"), "{text}");
        assert!(
            text.contains(&format!("bad host node{:04}:", NAMED_UP_TO - 1)),
            "{text}"
        );
        assert!(
            !text.contains(&format!("bad host node{:04}:", NAMED_UP_TO)),
            "{text}"
        );
    }

    #[test]
    fn a_fleet_of_1024_hosts_gets_the_verdict_and_the_worst_pairs_not_the_matrix() {
        // The simulator's fabric with host 300 at half rate, searched and stored as the command does.
        use crate::pairs::document::matrix;
        use crate::pairs::search::sim::{Fabric, Fault, INFINIBAND};
        use crate::pairs::search::{report, search, Settings, DEFAULT_MAX_ROUNDS, DEFAULT_SEED};
        let hosts = 1024;
        let people = crate::pairs::document::test_fleet(hosts);
        let mut fabric = Fabric::healthy(hosts, INFINIBAND, 9).with(Fault::BadHost(300));
        let settings = Settings {
            threshold_percent: INFINIBAND.threshold_percent,
            max_rounds: DEFAULT_MAX_ROUNDS,
            seed: DEFAULT_SEED,
        };
        let outcome = search(hosts, &settings, &mut fabric).expect("rounds");
        let (v, stored) = report::stored(&outcome, &people, &settings, Some(1.5));
        let figures = matrix(&outcome.samples);
        let text = summary(&people, &figures, Some(&stored), &v);
        assert!(
            !text.contains("# Bandwidth") && !text.contains("# Latency"),
            "{text}"
        );
        assert!(text.contains("# Search"), "{text}");
        assert!(text.contains("bad host node0300: slow with"), "{text}");
        assert!(text.contains("named after round"), "{text}");
        let worst = text
            .lines()
            .skip_while(|l| !l.starts_with("# Worst pairs"))
            .nth(1)
            .expect("the worst pairs");
        assert!(worst.contains("node0300"), "{text}");
        assert!(text.lines().count() < 40, "a screen: {text}");
        let slow_lines = text
            .lines()
            .filter(|l| l.starts_with("#   slow pair "))
            .count();
        assert_eq!(slow_lines, v.slow_pairs.len().min(WORST_PAIRS), "{text}");
        let rest = v.slow_pairs.len().saturating_sub(WORST_PAIRS);
        assert_eq!(
            text.contains(&format!("#   ... and {rest} more slow pairs (in the JSON)")),
            rest > 0,
            "{text}"
        );
        // 32 participants still get the matrices.
        let few: Vec<PairFigure> = figures
            .iter()
            .filter(|f| f.a < MATRIX_UP_TO && f.b < MATRIX_UP_TO)
            .cloned()
            .collect();
        let text = summary(&people[..MATRIX_UP_TO], &few, None, &v);
        assert!(
            text.contains("# Bandwidth") && !text.contains("# Worst pairs"),
            "{text}"
        );
    }
}
