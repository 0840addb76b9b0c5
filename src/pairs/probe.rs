//! The sweep's link probe: when the job spans several hosts, a short pass of the pairs exchange between
//! the first ranks of each host after the sweep, so that the summary can name a slow host or link. In a
//! blocking collective a slow link slows every rank alike, so the rows cannot say which; the rows are
//! not touched.

use super::document;
use super::render;
use super::rounds::{self, Exchanges};
use super::schedule;
use super::search;
use super::verdict;
use crate::backend::Backend;
use crate::engine::{Engine, EngineSettings};
use crate::error::Result;
use crate::plan::{Iterations, Plan};
use crate::report::document::RankInfo;
// The stored form lives in the report layer so that report/ never depends on pairs/.
pub use crate::report::link_probe::LinkProbe;
use crate::size::HumanSize;
use crate::watchdog::Watchdog;
use crate::world::World;

/// Bytes each way: TCP links are judged at 4M or more (docs/FLEET.md).
pub const PROBE_BYTES: u64 = 4 << 20;
/// Every pair measured this many times, so blame is earned by a majority.
pub const PROBE_REPEATS: usize = 3;
const PROBE_ITERS: u64 = 3;
const PROBE_LATENCY_BYTES: u64 = 8;

/// Whether the sweep probes the links: asked for (not --no-link-probe) and more than one host.
pub fn wanted(asked: bool, ranks: &[RankInfo]) -> bool {
    asked && rounds::participants(true, false, ranks).len() > 1
}

/// Runs the probe on every rank (all take part) and returns the same result on each. `buffer_bytes` is
/// what the sweep allocated; the probe grows it to its own size when smaller.
pub fn run(
    sweep: &Plan,
    world: &dyn World,
    backend: &mut dyn Backend,
    watchdog: &Watchdog,
    ranks: &[RankInfo],
    buffer_bytes: u64,
) -> Result<LinkProbe> {
    let people = rounds::participants(true, false, ranks);
    let needed = PROBE_BYTES.max(PROBE_LATENCY_BYTES);
    if buffer_bytes < needed {
        watchdog.arm(|| {
            format!(
                "allocating the link probe's buffers of {}",
                HumanSize(needed)
            )
        });
        backend.allocate(needed)?;
        watchdog.disarm();
    }
    let mut engine = Engine::new(
        probe_settings(sweep),
        world,
        backend,
        watchdog,
        buffer_bytes.max(needed),
    )
    .with_switches(crate::testing::TestSwitches::default());
    let exchanges = Exchanges {
        people: &people,
        size: PROBE_BYTES,
        latency_size: PROBE_LATENCY_BYTES,
        check_iters: 0,
    };
    // From SEARCH_FROM hosts up the search, as `collbench pairs` does: its rounds stay about a dozen
    // where the circle method's grow with the hosts. Its seed is fixed, so the probe meets the same
    // pairs on every rank without agreeing on one.
    if people.len() >= search::SEARCH_FROM {
        let settings = search::Settings {
            threshold_percent: sweep.slow_threshold_percent,
            max_rounds: search::DEFAULT_MAX_ROUNDS,
            seed: search::DEFAULT_SEED,
        };
        let outcome = exchanges.search(&mut engine, &settings, |_| Ok(()))?;
        let (verdict, report) = search::report::stored(&outcome, &people, &settings, None);
        return Ok(LinkProbe {
            size_bytes: PROBE_BYTES,
            repeats: 1,
            matrix: document::matrix(&outcome.samples),
            participants: people,
            verdict,
            search: Some(report),
        });
    }
    let schedule = schedule::circle_rounds(people.len());
    let samples = exchanges.measure(&mut engine, &schedule, PROBE_REPEATS, |_| Ok(()))?;
    let verdict = verdict::judge(&samples, &people, sweep.slow_threshold_percent);
    Ok(LinkProbe {
        size_bytes: PROBE_BYTES,
        repeats: PROBE_REPEATS,
        matrix: document::matrix(&samples),
        participants: people,
        verdict,
        search: None,
    })
}

/// A short timed loop, no sampled pass, no graph and no check (the probe names links; the sweep's
/// rows were checked), with the sweep's -a and seed; measured as nccl-tests, whatever rccl-tests flags
/// the sweep had.
fn probe_settings(sweep: &Plan) -> EngineSettings {
    EngineSettings {
        samples: Some(0),
        average: sweep.average,
        seed: sweep.seed,
        ..EngineSettings::plain(Iterations::Fixed(PROBE_ITERS), 1, 0)
    }
}

/// The summary's lines: how the probe ran, then the verdict.
pub fn render(probe: &LinkProbe) -> String {
    let how = match &probe.search {
        Some(s) => format!(
            "searched in {} round(s){} ({} of the {} pairs)",
            s.rounds,
            if s.sure { "" } else { ", not sure" },
            s.pairs_measured,
            probe.participants.len() * (probe.participants.len() - 1) / 2
        ),
        None => format!("{} repeat(s) of every pair", probe.repeats),
    };
    let mut out = format!(
        "# Link probe           : {} hosts, first rank of each, {} each way, {how} (--no-link-probe to skip)\n",
        probe.participants.len(),
        HumanSize(probe.size_bytes),
    );
    if probe.participants.len() < 3 {
        out.push_str(
            "#   two hosts make one pair, with nothing to compare it with: nobody can be named\n",
        );
    }
    out.push_str(&render::verdict_titled(
        "Link verdict",
        &probe.verdict,
        probe.search.is_some(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(rank: usize, host: &str) -> RankInfo {
        RankInfo {
            rank,
            host: host.into(),
            pid: 1,
            local_rank: 0,
            device: crate::backend::DeviceInfo {
                kind: "host".into(),
                index: None,
                name: "host memory".into(),
                pci_bus_id: None,
            },
        }
    }

    #[test]
    fn probes_only_jobs_over_several_hosts_unless_told_not_to() {
        let one_host = [rank(0, "a"), rank(1, "a")];
        let two_hosts = [rank(0, "a"), rank(1, "a"), rank(2, "b")];
        assert!(!wanted(true, &one_host));
        assert!(wanted(true, &two_hosts));
        assert!(!wanted(false, &two_hosts));
    }

    #[test]
    fn the_probe_runs_short_and_unchecked_whatever_the_sweep_asked() {
        let args = <crate::cli::RunArgs as clap::Parser>::try_parse_from([
            "collbench",
            "all_reduce",
            "-n",
            "50",
            "-c",
            "1",
            "-w",
            "10",
        ])
        .expect("arguments");
        let sweep = Plan::from_args(&args).expect("a plan");
        let probe = probe_settings(&sweep);
        assert!(matches!(probe.iters, Iterations::Fixed(PROBE_ITERS)));
        assert_eq!((probe.check_iters, probe.warmup_iters), (0, 1));
        assert_eq!(probe.sample_iters(PROBE_ITERS), 0);
        assert_eq!(probe.average, sweep.average);
    }
}
