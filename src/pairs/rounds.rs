//! Measuring rounds of pair exchanges with the engine: every rank walks the same rounds; in each, the
//! ranks of a pair exchange with each other and the others wait. Shared by `collbench pairs` and the
//! sweep's link probe (pairs/probe.rs).

use super::model::{PairSample, Participant};
use super::schedule::Round;
use crate::backend::{BufferId, Comm, Exchange, OpDesc};
use crate::check::pattern::Pattern;
use crate::check::verify;
use crate::collective::Collective;
use crate::dtype::DataType;
use crate::engine::Engine;
use crate::error::Result;
use crate::report::model::{Measurement, RankInfo};
use crate::size::HumanSize;
use crate::world::all_gather_value;

/// The participants: each host (its first rank stands for it, or with `all_gpus` every rank of it, in
/// local-rank order), or every rank.
pub fn participants(by_host: bool, all_gpus: bool, ranks: &[RankInfo]) -> Vec<Participant> {
    if !by_host {
        return ranks
            .iter()
            .map(|r| Participant {
                name: format!("{} ({})", r.rank, r.host),
                host: r.host.clone(),
                rank: r.rank,
                members: vec![r.rank],
            })
            .collect();
    }
    let mut out: Vec<Participant> = Vec::new();
    for r in ranks {
        match out.iter_mut().find(|p| p.host == r.host) {
            Some(p) if all_gpus => p.members.push(r.rank),
            Some(_) => {}
            None => out.push(Participant {
                name: r.host.clone(),
                host: r.host.clone(),
                rank: r.rank,
                members: vec![r.rank],
            }),
        }
    }
    for p in &mut out {
        let local = |m: usize| ranks.iter().find(|r| r.rank == m).map(|r| r.local_rank);
        p.members.sort_by_key(|&m| (local(m), m));
        p.rank = p.members[0];
    }
    out
}

/// The rank pairs that exchange for participants `a` and `b`: local rank i with local rank i, as many
/// as the smaller host has.
fn lanes<'p>(a: &'p Participant, b: &'p Participant) -> impl Iterator<Item = (usize, usize)> + 'p {
    a.members.iter().copied().zip(b.members.iter().copied())
}

/// What is about to be measured, told to the caller before each round on every rank.
pub struct RoundStart<'a> {
    pub repeat: usize,
    pub round: usize,
    /// "h0 <-> h3, h1 <-> h2".
    pub pairs: String,
    /// The rank this rank exchanges with in this round; None when it waits.
    pub peer: Option<usize>,
    pub samples_so_far: &'a [PairSample],
}

/// The schedule and sizes of one set of exchanges.
pub struct Exchanges<'a> {
    pub people: &'a [Participant],
    pub rounds: &'a [Round],
    pub repeats: usize,
    /// Bytes each way of the bandwidth exchange and of the latency exchange.
    pub size: u64,
    pub latency_size: u64,
    /// Checked exchanges of the bandwidth size per round, after it is timed; 0: no check.
    pub check_iters: u64,
}

impl Exchanges<'_> {
    /// "h0 <-> h3, h1 <-> h2".
    pub fn describe(&self, round: &Round) -> String {
        round
            .iter()
            .map(|&(a, b)| format!("{} <-> {}", self.people[a].name, self.people[b].name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rank `me` exchanges with in `round`, if any.
    fn peer_of(&self, round: &Round, me: usize) -> Option<usize> {
        round.iter().find_map(|&(a, b)| {
            lanes(&self.people[a], &self.people[b])
                .find_map(|(ra, rb)| (ra == me).then_some(rb).or((rb == me).then_some(ra)))
        })
    }

    /// Measures every round `repeats` times; every rank gets the same samples. The backend is back on
    /// its ring exchange afterwards, also when a round fails.
    pub fn measure(
        &self,
        engine: &mut Engine,
        mut before_round: impl FnMut(&RoundStart) -> Result<()>,
    ) -> Result<Vec<PairSample>> {
        let result = self.measure_all(engine, &mut before_round);
        let restored = engine.backend.set_exchange(Exchange::Ring);
        let samples = result?;
        restored?;
        Ok(samples)
    }

    fn measure_all(
        &self,
        engine: &mut Engine,
        before_round: &mut impl FnMut(&RoundStart) -> Result<()>,
    ) -> Result<Vec<PairSample>> {
        let me = engine.world.rank();
        let mut samples = Vec::new();
        for repeat in 0..self.repeats {
            for (index, round) in self.rounds.iter().enumerate() {
                let peer = self.peer_of(round, me);
                before_round(&RoundStart {
                    repeat,
                    round: index,
                    pairs: self.describe(round),
                    peer,
                    samples_so_far: &samples,
                })?;
                engine
                    .backend
                    .set_exchange(peer.map_or(Exchange::Idle, Exchange::Peer))?;
                let world = engine.world;
                let bandwidth = engine.measure_op(&exchange(self.size, world))?;
                let wrong = (self.check_iters > 0)
                    .then(|| self.check(engine, peer))
                    .transpose()?;
                let latency = engine.measure_op(&exchange(self.latency_size, world))?;
                for &(a, b) in round {
                    let pair: Vec<usize> = lanes(&self.people[a], &self.people[b])
                        .flat_map(|(x, y)| [x, y])
                        .collect();
                    // The pair's time is its slowest rank's: the lanes ran at the same time.
                    let pair_time = |m: &Measurement| {
                        pair.iter()
                            .map(|&r| m.rank_time_us.get(r).copied().unwrap_or(m.time_us))
                            .fold(0.0, f64::max)
                    };
                    let time_us = pair_time(&bandwidth);
                    let lane_count = pair.len() / 2;
                    samples.push(PairSample {
                        repeat,
                        round: index,
                        a,
                        b,
                        bandwidth_gbps: crate::metrics::algbw_gbps(
                            self.size * lane_count as u64,
                            time_us,
                        ),
                        time_us,
                        latency_us: pair_time(&latency),
                        lanes: lane_count,
                        wrong: wrong
                            .as_ref()
                            .map(|w| pair.iter().filter_map(|&r| w.get(r)).sum()),
                    });
                }
            }
        }
        Ok(samples)
    }
}

impl Exchanges<'_> {
    /// Runs the bandwidth exchange `check_iters` more times on fresh inputs and counts, on each rank,
    /// the received elements that are not its peer's input exactly. Every rank takes part; returns
    /// every rank's count.
    fn check(&self, engine: &mut Engine, peer: Option<usize>) -> Result<Vec<u64>> {
        let world = engine.world;
        let (me, n) = (world.rank(), world.size());
        let desc = exchange(self.size, world);
        let corrupt = verify::corrupt_count_from_env(me).unwrap_or(0);
        let mut wrong = 0u64;
        for c in 0..self.check_iters {
            engine.watchdog.arm(|| {
                format!(
                    "pair exchange of {}, correctness check",
                    HumanSize(self.size)
                )
            });
            let pattern = Pattern {
                collective: Collective::SendRecv,
                dtype: desc.dtype,
                op: None,
                root: 0,
                ranks: n,
                seed: engine.plan.seed.wrapping_add(c),
                shape: desc.shape,
                counts: None,
            };
            let span = desc.shape.buffer_bytes(desc.dtype.size());
            engine.backend.fill(BufferId::Recv, span, 0xFF)?;
            verify::write_input(engine.backend, &pattern, me, BufferId::Send, 0)?;
            world.barrier()?;
            engine.backend.enqueue(&desc)?;
            engine.backend.wait()?;
            if let Some(p) = peer {
                // The pattern's sendrecv is the ring's: rank r expects rank r-1's input. The peer's
                // input is what rank p+1 expects, so this rank's output is checked as p+1's.
                wrong += verify::count_wrong(
                    engine.backend,
                    &pattern,
                    (p + 1) % n,
                    BufferId::Recv,
                    0,
                    corrupt,
                )?;
            }
        }
        engine
            .watchdog
            .arm(|| "gathering the pair exchange's check".into());
        let all = all_gather_value(world, &wrong)?;
        engine.watchdog.disarm();
        Ok(all)
    }
}

/// The bidirectional exchange of `size` bytes each way, out of place.
fn exchange(size: u64, world: &dyn crate::world::World) -> OpDesc {
    let dtype = DataType::Float;
    OpDesc {
        collective: Collective::SendRecv,
        dtype,
        op: None,
        root: None,
        shape: Collective::SendRecv.shape(size, dtype.size(), 2),
        in_place: false,
        shift_bytes: 0,
        comm: Comm::whole(world.rank(), world.size()),
        counts: None,
    }
}
