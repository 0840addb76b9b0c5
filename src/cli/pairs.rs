//! `collbench pairs`'s command line.

use super::library::LibraryArgs;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// A pair is slow below this many percent under the median pair, unless --slow-threshold says otherwise.
pub const DEFAULT_SLOW_THRESHOLD_PERCENT: f64 = 10.0;
/// How many times --full measures every pair unless --rounds says otherwise.
pub const DEFAULT_REPEATS: usize = 3;

/// Measure pairs of hosts (or ranks) by bidirectional sendrecv: bandwidth at a large size and latency
/// at a small one, and name the bad host or link.
///
/// Run it under mpirun over the hosts to check. From 8 hosts up it searches: rounds of disjoint pairs,
/// suspects retested against partners known to be good, until every host is named or cleared (about
/// 7 to 16 rounds, whatever the host count). Below 8 hosts, or with --full, the circle method measures
/// every pair (n-1 rounds of disjoint pairs per repeat).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mpirun -np 1024 --map-by ppr:1:node collbench pairs -J pairs.json --plot pairs.png\n  mpirun -np 16 --map-by ppr:1:node collbench pairs --full --plot pairs.svg\n  mpirun -np 64 collbench pairs --by rank --expect 'busbw>=20@4M'\n\nExit codes: 0 done (the verdict is printed and in the JSON), 2 usage error, 3 library error, 4 timeout (-T), 7 an exchange delivered wrong data, 8 a --expect rule failed, 10 a file could not be written."
)]
pub struct PairsArgs {
    /// Pair hosts (the first rank of each host stands for it) or every rank.
    #[arg(long, value_enum, default_value = "host")]
    pub by: By,
    /// With --by host: every GPU (rank) of one host exchanges with the same local rank of the other
    /// host, all at once; the pair's bandwidth is their aggregate.
    #[arg(long = "all-gpus", action = clap::ArgAction::SetTrue)]
    pub all_gpus: bool,
    /// Checked exchanges per round: every rank must receive exactly its peer's data (0: no check).
    #[arg(short = 'c', long = "check", default_value_t = 1)]
    pub check: u64,
    /// Bytes each way of the bandwidth exchange (judge TCP links at 4M or more).
    #[arg(short = 'b', long = "size", default_value = "4M")]
    pub size: String,
    /// Bytes each way of the latency exchange.
    #[arg(long = "latency-size", default_value = "8")]
    pub latency_size: String,
    /// Measure every pair (the circle method's complete matrix, n-1 rounds per repeat) instead of
    /// searching; what happens anyway below 8 hosts.
    #[arg(long, action = clap::ArgAction::SetTrue)]
    pub full: bool,
    /// The search stops after this many rounds even when its verdict is not sure yet.
    #[arg(long = "max-rounds", value_name = "N")]
    pub max_rounds: Option<usize>,
    /// The search's random order of partners (default: one drawn per run, recorded in the JSON).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// One pair at a time instead of disjoint pairs together (every pair, as --full).
    #[arg(long = "one-at-a-time", action = clap::ArgAction::SetTrue)]
    pub one_at_a_time: bool,
    /// With --full: measure every pair this many times (default 3); a pair is slow only when slow in
    /// most of them.
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// Timed iterations per exchange.
    #[arg(short = 'n', long = "iters", default_value_t = 5)]
    pub iters: u64,
    /// Warm-up iterations per exchange.
    #[arg(short = 'w', long = "warmup-iters", default_value_t = 1)]
    pub warmup_iters: u64,
    /// A pair is slow below this many percent under the median pair.
    #[arg(long = "slow-threshold", value_name = "PERCENT", default_value_t = DEFAULT_SLOW_THRESHOLD_PERCENT)]
    pub slow_threshold: f64,
    /// A rule every pair must pass, as for a sweep: 'busbw>=20@4M' (GB/s each way at the bandwidth
    /// size), 'time<=50us@-8' (the latency exchange); or on the verdict: 'no-bad-host', 'no-bad-link'.
    /// Repeatable; a failed rule exits 8.
    #[arg(long, value_name = "RULE", action = clap::ArgAction::Append)]
    pub expect: Vec<String>,
    /// Write the results as one JSON document, rewritten after every round.
    #[arg(short = 'J', long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the bandwidth matrix as a heatmap, SVG or PNG by the extension (sorted, bad hosts marked;
    /// PNG above a few hundred hosts).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub library: LibraryArgs,
    /// Seconds before a stuck exchange or barrier ends the job; 0 waits forever.
    #[arg(short = 'T', long = "timeout", default_value_t = 0.0)]
    pub timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Host,
    Rank,
}
