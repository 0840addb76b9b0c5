//! The search against synthetic fabrics at fleet size (scripts/bench-search.sh runs it): for each
//! profile, host count and scenario, 1,000 seeded fabrics; rounds to a verdict, faults found, false
//! blame, and the wall time the rounds would take beside the circle method's.
//!
//! cargo run --release --example search_bench -- --hosts 1024,4096 --fabrics 1000 --round-seconds 2.3

use clap::Parser;
use collbench::pairs::schedule::circle_round_count;
use collbench::pairs::search::sim::{Fault, Profile, Scenario, Score, INFINIBAND, LAB};
use collbench::pairs::search::{self, Settings, DEFAULT_MAX_ROUNDS, DEFAULT_SEED};
use rayon::prelude::*;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Host counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,1024,4096")]
    hosts: Vec<usize>,
    /// Fabrics per profile, host count and scenario (seeds 1..=N).
    #[arg(long, default_value_t = 1000)]
    fabrics: u64,
    /// Profiles: infiniband, lab.
    #[arg(long, value_delimiter = ',', default_value = "infiniband,lab")]
    profiles: Vec<String>,
    /// Seconds one round takes (measured on a real run), for the wall-time estimate.
    #[arg(long, default_value_t = 1.0)]
    round_seconds: f64,
    /// Repeats the circle method would run (collbench pairs --full's default).
    #[arg(long, default_value_t = 3)]
    circle_repeats: usize,
    #[arg(long, default_value_t = DEFAULT_MAX_ROUNDS)]
    max_rounds: usize,
    /// Judge every profile at this --slow-threshold instead of its own (infiniband 10, lab 50).
    #[arg(long)]
    slow_threshold: Option<f64>,
}

struct Line {
    rounds: Vec<usize>,
    /// Rounds until every fault was first named, in faulty fabrics where all were.
    named_after: Vec<usize>,
    found: usize,
    false_fabrics: usize,
    kind_mixed: usize,
    link_unmeasured: usize,
    not_sure: usize,
    max_partners: usize,
    /// Wall time of the search (planning, judging, the simulated measurement) per round, mean over
    /// the fabrics, milliseconds.
    ms_per_round: f64,
}

fn run(profile: Profile, hosts: usize, scenario: Scenario, args: &Args) -> Line {
    let settings = Settings {
        threshold_percent: args.slow_threshold.unwrap_or(profile.threshold_percent),
        max_rounds: args.max_rounds,
        seed: DEFAULT_SEED,
    };
    let results: Vec<(usize, Score, bool, usize, Option<usize>, f64)> = (1..=args.fabrics)
        .into_par_iter()
        .map(|seed| {
            let mut fabric = scenario.fabric(hosts, profile, seed);
            let started = Instant::now();
            // Each fabric gets its own rounds too: the seed of a real run is the user's.
            let settings = Settings {
                seed: settings.seed ^ seed,
                ..settings
            };
            let outcome = search::search(hosts, &settings, &mut fabric).expect("a fabric measures");
            let seconds = started.elapsed().as_secs_f64();
            let mut met = std::collections::HashSet::new();
            let mut partners = vec![0usize; hosts];
            for s in &outcome.samples {
                if met.insert((s.a, s.b)) {
                    partners[s.a] += 1;
                    partners[s.b] += 1;
                }
            }
            let score = Score::of(fabric.faults(), &outcome.judgement, |a, b| {
                met.contains(&(a.min(b), a.max(b)))
            });
            let most = partners.into_iter().max().unwrap_or(0);
            let faulty_hosts: Vec<usize> = fabric
                .faults()
                .iter()
                .filter_map(|f| match *f {
                    Fault::BadHost(h) | Fault::FlakyHost { host: h, .. } => Some(h),
                    Fault::BadLink(..) => None,
                })
                .collect();
            let named_after = (score.found && !faulty_hosts.is_empty()).then(|| {
                faulty_hosts
                    .iter()
                    .filter_map(|h| outcome.first_named.iter().find(|n| n.0 == *h).map(|n| n.1))
                    .max()
                    .unwrap_or(0)
            });
            let ms_per_round = 1e3 * seconds / outcome.rounds.max(1) as f64;
            (
                outcome.rounds,
                score,
                outcome.sure,
                most,
                named_after,
                ms_per_round,
            )
        })
        .collect();
    Line {
        rounds: {
            let mut r: Vec<usize> = results.iter().map(|r| r.0).collect();
            r.sort_unstable();
            r
        },
        named_after: {
            let mut r: Vec<usize> = results.iter().filter_map(|r| r.4).collect();
            r.sort_unstable();
            r
        },
        found: results.iter().filter(|r| r.1.found).count(),
        false_fabrics: results.iter().filter(|r| r.1.false_names > 0).count(),
        kind_mixed: results.iter().filter(|r| r.1.kind_mixed).count(),
        link_unmeasured: results.iter().filter(|r| r.1.link_unmeasured).count(),
        not_sure: results.iter().filter(|r| !r.2).count(),
        max_partners: results.iter().map(|r| r.3).max().unwrap_or(0),
        ms_per_round: results.iter().map(|r| r.5).sum::<f64>() / results.len().max(1) as f64,
    }
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    println!(
        "# collbench search against synthetic fabrics: {} fabrics per line (seeds 1..={}), --max-rounds {}, a round taken as {} s",
        args.fabrics, args.fabrics, args.max_rounds, args.round_seconds
    );
    println!(
        "# {:<10} {:>5} {:<13} {:>4} {:>4} {:>4} {:>6} {:>6} {:>4} {:>7} {:>7} {:>6} {:>5} {:>8} {:>8} {:>9} {:>10} {:>8}",
        "profile",
        "hosts",
        "scenario",
        "p50",
        "p99",
        "max",
        "nam50",
        "nam99",
        "part",
        "found",
        "missed",
        "false",
        "mixed",
        "unseen",
        "notsure",
        "search_s",
        "circle_s",
        "ms/round"
    );
    for name in &args.profiles {
        let profile = match name.as_str() {
            "infiniband" => INFINIBAND,
            "lab" => LAB,
            other => {
                eprintln!("search_bench: --profiles {other}: give infiniband or lab");
                std::process::exit(2);
            }
        };
        for &hosts in &args.hosts {
            let circle = circle_round_count(hosts) * args.circle_repeats;
            for scenario in Scenario::ALL {
                let line = run(profile, hosts, scenario, &args);
                let quantile = |v: &[usize], q: f64| {
                    if v.is_empty() {
                        "-".to_string()
                    } else {
                        v[((v.len() - 1) as f64 * q).round() as usize].to_string()
                    }
                };
                let at =
                    |q: f64| line.rounds[((line.rounds.len() - 1) as f64 * q).round() as usize];
                let faulty = scenario != Scenario::Healthy;
                let p50 = at(0.5);
                println!(
                    "  {:<10} {:>5} {:<13} {:>4} {:>4} {:>4} {:>6} {:>6} {:>4} {:>7} {:>7} {:>6} {:>5} {:>8} {:>8} {:>9.0} {:>10.0} {:>8.2}",
                    profile.name,
                    hosts,
                    scenario.name(),
                    p50,
                    at(0.99),
                    line.rounds.last().copied().unwrap_or(0),
                    quantile(&line.named_after, 0.5),
                    quantile(&line.named_after, 0.99),
                    line.max_partners,
                    if faulty { line.found.to_string() } else { "-".into() },
                    if faulty { (args.fabrics as usize - line.found).to_string() } else { "-".into() },
                    line.false_fabrics,
                    line.kind_mixed,
                    line.link_unmeasured,
                    line.not_sure,
                    p50 as f64 * args.round_seconds,
                    circle as f64 * args.round_seconds,
                    line.ms_per_round,
                );
            }
        }
    }
    println!(
        "# p50/p99/max: rounds to a verdict; nam50/nam99: rounds until the faulty hosts were first named (fabrics where all were); part: the most distinct partners any host met; found/missed: faulty fabrics whose faults were all named (of {}); false: fabrics in which a host or link without a fault was named; mixed: a flaky host named bad or a bad host flaky; unseen: bad links whose pair was never measured; notsure: stopped at --max-rounds; search_s: p50 rounds x a round; circle_s: the circle method's n-1 rounds x {} repeats x a round; ms/round: the search's own wall time per simulated round (plan, judge, simulated fabric), mean over the fabrics, one thread each. {:.1} s in all.",
        args.fabrics,
        args.circle_repeats,
        started.elapsed().as_secs_f64()
    );
}
