//! Measuring rounds of pair exchanges with the engine: every rank walks the same rounds; in each, the
//! ranks of a pair exchange with each other and the others wait, the rounds those of the circle method
//! or of the search (whose `RoundMeter` this is on MPI, NCCL and RCCL). Shared by `collbench pairs`
//! and the sweep's link probe (pairs/probe.rs).

use super::document::{PairSample, Participant};
use super::schedule::Round;
use super::search;
use crate::backend::{Comm, Exchange, OpDesc};
use crate::collective::Collective;
use crate::dtype::DataType;
use crate::engine::Engine;
use crate::error::Result;
use crate::report::document::{Measurement, RankInfo};

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
    pub pairs: &'a Round,
    /// The rank this rank exchanges with in this round; None when it waits.
    pub peer: Option<usize>,
    pub samples_so_far: &'a [PairSample],
}

/// Who exchanges and at what sizes; the rounds come from the circle method (`measure`) or from the
/// search (`search`).
pub struct Exchanges<'a> {
    pub people: &'a [Participant],
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

    /// Measures every round of `rounds` `repeats` times; every rank gets the same samples.
    pub fn measure(
        &self,
        engine: &mut Engine,
        rounds: &[Round],
        repeats: usize,
        mut before_round: impl FnMut(&RoundStart) -> Result<()>,
    ) -> Result<Vec<PairSample>> {
        let mut samples = Vec::new();
        for repeat in 0..repeats {
            for (index, round) in rounds.iter().enumerate() {
                let measured =
                    self.measure_round(engine, repeat, index, round, &samples, &mut before_round)?;
                samples.extend(measured);
            }
        }
        Ok(samples)
    }

    /// Runs the search (pairs/search/) over these participants, each of its rounds measured here:
    /// the same code the simulator runs. Every rank plans the same rounds from the same samples.
    pub fn search(
        &self,
        engine: &mut Engine,
        settings: &search::Settings,
        before_round: impl FnMut(&RoundStart) -> Result<()>,
    ) -> Result<search::Outcome> {
        let mut meter = EngineMeter {
            exchanges: self,
            engine,
            before_round,
            samples: Vec::new(),
        };
        search::search(self.people.len(), settings, &mut meter)
    }

    /// One round: the pairs of `round` exchange at once while the other ranks wait.
    fn measure_round(
        &self,
        engine: &mut Engine,
        repeat: usize,
        index: usize,
        round: &Round,
        samples_so_far: &[PairSample],
        before_round: &mut impl FnMut(&RoundStart) -> Result<()>,
    ) -> Result<Vec<PairSample>> {
        let world = engine.world();
        let peer = self.peer_of(round, world.rank());
        before_round(&RoundStart {
            repeat,
            round: index,
            pairs: round,
            peer,
            samples_so_far,
        })?;
        let with = peer.map_or(Exchange::Idle, Exchange::Peer);
        // The bandwidth exchange is checked (every rank must receive exactly its peer's data); the
        // latency exchange only timed.
        engine.set_check_iters(self.check_iters);
        let bandwidth = engine.measure_op(&exchange(self.size, with, world))?;
        engine.set_check_iters(0);
        let latency = engine.measure_op(&exchange(self.latency_size, with, world))?;
        Ok(round
            .iter()
            .map(|&(a, b)| {
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
                PairSample {
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
                    wrong: (self.check_iters > 0).then(|| {
                        pair.iter()
                            .filter_map(|&r| bandwidth.rank_wrong.get(r))
                            .sum()
                    }),
                }
            })
            .collect())
    }
}

/// The search's rounds measured by the engine: what `search::RoundMeter` asks of a fabric.
struct EngineMeter<'x, 'e, F> {
    exchanges: &'x Exchanges<'x>,
    engine: &'x mut Engine<'e>,
    before_round: F,
    samples: Vec<PairSample>,
}

impl<F: FnMut(&RoundStart) -> Result<()>> search::RoundMeter for EngineMeter<'_, '_, F> {
    fn measure(&mut self, index: usize, round: &Round) -> Result<Vec<PairSample>> {
        let measured = self.exchanges.measure_round(
            self.engine,
            0,
            index,
            round,
            &self.samples,
            &mut self.before_round,
        )?;
        self.samples.extend(measured.iter().cloned());
        Ok(measured)
    }
}

/// The bidirectional exchange of `size` bytes each way with `peer`, out of place.
fn exchange(size: u64, peer: Exchange, world: &dyn crate::world::World) -> OpDesc {
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
        peer,
    }
}
