//! Measuring rounds of pair exchanges with the engine: every rank walks the same rounds; in each, the
//! ranks of a pair exchange with each other and the others wait. Shared by `collbench pairs` and the
//! sweep's link probe (pairs/probe.rs).

use super::model::{PairSample, Participant};
use super::schedule::Round;
use crate::backend::{Comm, Exchange, OpDesc};
use crate::collective::Collective;
use crate::dtype::DataType;
use crate::engine::Engine;
use crate::error::Result;
use crate::report::model::{Measurement, RankInfo};

/// The participants: each host's first rank (`by_host`), or every rank.
pub fn participants(by_host: bool, ranks: &[RankInfo]) -> Vec<Participant> {
    if !by_host {
        return ranks
            .iter()
            .map(|r| Participant {
                name: format!("{} ({})", r.rank, r.host),
                host: r.host.clone(),
                rank: r.rank,
            })
            .collect();
    }
    let mut out: Vec<Participant> = Vec::new();
    for r in ranks {
        if !out.iter().any(|p| p.host == r.host) {
            out.push(Participant {
                name: r.host.clone(),
                host: r.host.clone(),
                rank: r.rank,
            });
        }
    }
    out
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
            let (ra, rb) = (self.people[a].rank, self.people[b].rank);
            (ra == me).then_some(rb).or((rb == me).then_some(ra))
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
                let latency = engine.measure_op(&exchange(self.latency_size, world))?;
                for &(a, b) in round {
                    let pair_time = |m: &Measurement| {
                        let of = |p: &Participant| m.rank_time_us.get(p.rank).copied();
                        of(&self.people[a])
                            .zip(of(&self.people[b]))
                            .map_or(m.time_us, |(x, y)| x.max(y))
                    };
                    let time_us = pair_time(&bandwidth);
                    samples.push(PairSample {
                        repeat,
                        round: index,
                        a,
                        b,
                        bandwidth_gbps: crate::metrics::algbw_gbps(self.size, time_us),
                        time_us,
                        latency_us: pair_time(&latency),
                    });
                }
            }
        }
        Ok(samples)
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
    }
}
