//! Synthetic fabrics the search runs against, through the same `RoundMeter` interface as the engine:
//! every healthy pair has a steady bandwidth (a factor per host and one per pair, so some pairs are
//! always a little slower, as on real fabrics), each sample adds noise and now and then a hiccup, and
//! injected faults make a host, a link, or a host in some rounds only, slow. Fabrics are made from a
//! seed, so a figure over 1,000 fabrics can be made again.

use super::judge::{HostKind, Judgement};
use super::RoundMeter;
use crate::error::Result;
use crate::pairs::document::PairSample;
use crate::pairs::schedule::Round;

/// How the healthy pairs of one kind of fabric spread, and how deep its faults go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    /// The fastest healthy pair, GB/s each way.
    pub best_gbps: f64,
    /// Each host's steady factor, uniform in [1 - host_spread, 1]; each pair's likewise.
    pub host_spread: f64,
    pub pair_spread: f64,
    /// Each sample's factor, uniform in [1 - noise, 1].
    pub noise: f64,
    /// The share of samples hit by a hiccup (another flow, a retransmission), which multiplies the
    /// sample by a factor uniform in `hiccup_depth`.
    pub hiccup_rate: f64,
    pub hiccup_depth: (f64, f64),
    /// What a fault leaves of a pair's bandwidth.
    pub fault_factor: f64,
    /// The --slow-threshold a run on this fabric uses.
    pub threshold_percent: f64,
}

/// InfiniBand: healthy pairs within a few percent of each other; a bad host or link at half its rate
/// (a link trained down to half its width or speed).
pub const INFINIBAND: Profile = Profile {
    name: "infiniband",
    best_gbps: 48.0,
    host_spread: 0.01,
    pair_spread: 0.02,
    noise: 0.01,
    hiccup_rate: 0.001,
    hiccup_depth: (0.5, 0.9),
    fault_factor: 0.5,
    threshold_percent: 10.0,
};

/// The multi-host lab (TCP between network namespaces on a shared machine): healthy pairs differ by
/// up to about 30 % and stay so; a host or link throttled by tc tbf at 200 Mbit keeps about a fifth
/// (docs/FLEET.md's recordings); judged at the lab tests' threshold of 50 %.
pub const LAB: Profile = Profile {
    name: "lab",
    best_gbps: 0.062,
    host_spread: 0.08,
    pair_spread: 0.10,
    noise: 0.05,
    hiccup_rate: 0.005,
    hiccup_depth: (0.3, 0.8),
    fault_factor: 0.2,
    threshold_percent: 50.0,
};

/// A fault injected into a fabric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Slow with every partner.
    BadHost(usize),
    /// Only this pair is slow.
    BadLink(usize, usize),
    /// Slow with every partner in a round with probability `share`, else healthy.
    FlakyHost { host: usize, share: f64 },
}

/// The injected share of rounds a flaky host is slow in: the rarest the search promises to see.
pub const FLAKY_SHARE: f64 = super::judge::FLAKY_RATE;

#[derive(Debug, Clone)]
pub struct Fabric {
    hosts: usize,
    profile: Profile,
    seed: u64,
    host_factor: Vec<f64>,
    faults: Vec<Fault>,
    rng: fastrand::Rng,
}

/// A well-mixed 64-bit value from a seed and two numbers (splitmix64's finaliser), so that each
/// pair's steady factor is a function of the pair and costs no memory.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Fabric {
    pub fn healthy(hosts: usize, profile: Profile, seed: u64) -> Fabric {
        let mut rng = fastrand::Rng::with_seed(seed);
        let host_factor = (0..hosts)
            .map(|_| 1.0 - profile.host_spread * rng.f64())
            .collect();
        Fabric {
            hosts,
            profile,
            seed,
            host_factor,
            faults: Vec::new(),
            rng,
        }
    }

    pub fn with(mut self, fault: Fault) -> Fabric {
        self.faults.push(fault);
        self
    }

    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// A healthy pair's steady bandwidth (before noise, hiccups and faults).
    pub fn steady_gbps(&self, a: usize, b: usize) -> f64 {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let unit = (mix(self.seed, lo, hi) >> 11) as f64 / (1u64 << 53) as f64;
        self.profile.best_gbps
            * self.host_factor[a]
            * self.host_factor[b]
            * (1.0 - self.profile.pair_spread * unit)
    }
}

impl RoundMeter for Fabric {
    fn measure(&mut self, index: usize, round: &Round) -> Result<Vec<PairSample>> {
        let p = self.profile;
        // A flaky host is slow, or not, for the whole round.
        let slow_now: Vec<usize> = self
            .faults
            .iter()
            .filter_map(|f| match *f {
                Fault::FlakyHost { host, share } => (self.rng.f64() < share).then_some(host),
                _ => None,
            })
            .collect();
        let mut samples = Vec::with_capacity(round.len());
        for &(a, b) in round {
            let mut bw = self.steady_gbps(a, b) * (1.0 - p.noise * self.rng.f64());
            if self.rng.f64() < p.hiccup_rate {
                let (lo, hi) = p.hiccup_depth;
                bw *= lo + (hi - lo) * self.rng.f64();
            }
            for f in &self.faults {
                let hit = match *f {
                    Fault::BadHost(h) => a == h || b == h,
                    Fault::BadLink(x, y) => (a, b) == (x.min(y), x.max(y)),
                    Fault::FlakyHost { host, .. } => {
                        (a == host || b == host) && slow_now.contains(&host)
                    }
                };
                if hit {
                    bw *= p.fault_factor;
                }
            }
            let size_bytes = 4u64 << 20;
            samples.push(PairSample {
                repeat: 0,
                round: index,
                a,
                b,
                bandwidth_gbps: bw,
                time_us: size_bytes as f64 / (bw * 1e3),
                latency_us: 5.0,
                lanes: 1,
                wrong: None,
            });
        }
        Ok(samples)
    }
}

/// The kinds of fabric the tests and the benchmark draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Healthy,
    BadHost,
    BadLink,
    TwoBadHosts,
    FlakyHost,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Healthy,
        Scenario::BadHost,
        Scenario::BadLink,
        Scenario::TwoBadHosts,
        Scenario::FlakyHost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::BadHost => "bad host",
            Scenario::BadLink => "bad link",
            Scenario::TwoBadHosts => "two bad hosts",
            Scenario::FlakyHost => "flaky host",
        }
    }

    /// A fabric of this scenario, its faults on hosts drawn from `seed`.
    pub fn fabric(self, hosts: usize, profile: Profile, seed: u64) -> Fabric {
        let fabric = Fabric::healthy(hosts, profile, seed);
        let mut pick = fastrand::Rng::with_seed(mix(seed, 1, 2));
        let first = pick.usize(..hosts);
        let second = (first + 1 + pick.usize(..hosts - 1)) % hosts;
        match self {
            Scenario::Healthy => fabric,
            Scenario::BadHost => fabric.with(Fault::BadHost(first)),
            Scenario::BadLink => fabric.with(Fault::BadLink(first, second)),
            Scenario::TwoBadHosts => fabric
                .with(Fault::BadHost(first))
                .with(Fault::BadHost(second)),
            Scenario::FlakyHost => fabric.with(Fault::FlakyHost {
                host: first,
                share: FLAKY_SHARE,
            }),
        }
    }
}

/// A verdict held against the faults that were injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Score {
    /// Every fault named, each as its kind (a flaky host named as bad counts as found).
    pub found: bool,
    /// Hosts and links named that had no fault.
    pub false_names: usize,
    /// A bad link whose pair the search never measured: it could not be seen.
    pub link_unmeasured: bool,
    /// A flaky host named as bad, or a bad host as flaky.
    pub kind_mixed: bool,
}

impl Score {
    pub fn of(
        faults: &[Fault],
        judgement: &Judgement,
        measured: impl Fn(usize, usize) -> bool,
    ) -> Score {
        let faulty_host = |h: usize| {
            faults.iter().any(|f| {
                matches!(*f, Fault::BadHost(x) if x == h)
                    || matches!(*f, Fault::FlakyHost { host, .. } if host == h)
            })
        };
        let faulty_link = |a: usize, b: usize| {
            faults.iter().any(
                |f| matches!(*f, Fault::BadLink(x, y) if (x.min(y), x.max(y)) == (a.min(b), a.max(b))),
            )
        };
        let named_host = |h: usize| judgement.hosts.iter().find(|n| n.host == h);
        let mut score = Score {
            found: true,
            ..Score::default()
        };
        for f in faults {
            match *f {
                Fault::BadHost(h) | Fault::FlakyHost { host: h, .. } => match named_host(h) {
                    None => score.found = false,
                    Some(n) => {
                        let want = if matches!(f, Fault::BadHost(_)) {
                            HostKind::Bad
                        } else {
                            HostKind::Flaky
                        };
                        score.kind_mixed |= n.kind != want;
                    }
                },
                Fault::BadLink(a, b) => {
                    let named = judgement
                        .links
                        .iter()
                        .any(|l| (l.a, l.b) == (a.min(b), a.max(b)));
                    score.found &= named;
                    score.link_unmeasured |= !measured(a, b);
                }
            }
        }
        score.false_names = judgement
            .hosts
            .iter()
            .filter(|n| !faulty_host(n.host))
            .count()
            + judgement
                .links
                .iter()
                .filter(|l| !faulty_link(l.a, l.b))
                .count();
        score
    }
}
