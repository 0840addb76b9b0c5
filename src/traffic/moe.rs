//! The `--moe` router: how many of each rank's tokens go to each rank's experts, as the byte matrices of
//! MoE dispatch (tokens to their experts) and combine (the experts' outputs back).
//!
//! Each of the T tokens of every rank picks K of the E experts, which sit evenly on the ranks (rank r
//! holds experts r E/n .. (r+1) E/n - 1). A token moves once per chosen expert (DeepEP's low-latency
//! accounting: hidden x dtype bytes per token per chosen expert), its own rank included. Skew is a hot-rank
//! ratio, DeepEP V2's "unbalanced ratio": every expert of rank 0 is chosen `skew` times as often as any
//! other (1: uniform). Every rank routes the same way: expert e gets floor(T K w_e) of its T K choices
//! (never more than T, one per token), and the choices left over go to experts drawn with the seed in
//! proportion to their weights. With skew 1 and T K a multiple of E nothing is left over, so traffic is
//! exactly balanced whatever the seed.

use super::matrix::PeerBytes;
use crate::dtype::DataType;

/// The parameters of `--moe`.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeParams {
    /// Tokens per rank.
    pub tokens: u64,
    pub hidden: u64,
    pub topk: u64,
    pub experts: u64,
    /// The type a token moves in (default bf16); the all_to_allv runs in it.
    pub dtype: DataType,
    /// Rank 0's experts' weight over every other expert's (>= 1; 1 is uniform).
    pub skew: f64,
    pub seed: u64,
}

/// The two halves of one MoE layer's communication.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeTraffic {
    /// bytes(i -> j): rank i's tokens to the experts on rank j.
    pub dispatch: PeerBytes,
    /// bytes(j -> i): the experts' outputs back to the tokens' ranks (dispatch transposed).
    pub combine: PeerBytes,
}

impl MoeParams {
    /// Parses `tokens=T,hidden=H,topk=K,experts=E[,dtype=bf16][,skew=S][,seed=N]`.
    pub fn parse(spec: &str) -> Result<MoeParams, String> {
        let mut p = MoeParams {
            tokens: 0,
            hidden: 0,
            topk: 0,
            experts: 0,
            dtype: DataType::Bfloat16,
            skew: 1.0,
            seed: 0,
        };
        let whole = |key: &str, v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| format!("{key}={v}: give a whole number above 0"))
        };
        let mut seen = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not key=value"))?;
            match key {
                "tokens" => p.tokens = whole(key, value)?,
                "hidden" => p.hidden = whole(key, value)?,
                "topk" => p.topk = whole(key, value)?,
                "experts" => p.experts = whole(key, value)?,
                "dtype" => p.dtype = value.parse().map_err(|e| format!("dtype={value}: {e}"))?,
                "skew" => {
                    p.skew = value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 1.0)
                        .ok_or_else(|| {
                            format!("skew={value}: give rank 0's experts' load ratio, a number >= 1 (1 is uniform)")
                        })?
                }
                "seed" => {
                    p.seed = value
                        .parse()
                        .map_err(|_| format!("seed={value}: give a whole number"))?
                }
                _ => {
                    return Err(format!(
                        "unknown key '{key}': use tokens, hidden, topk, experts, dtype, skew, seed"
                    ))
                }
            }
            seen.push(key);
        }
        for key in ["tokens", "hidden", "topk", "experts"] {
            if !seen.contains(&key) {
                return Err(format!(
                    "{key}= is missing (tokens=T,hidden=H,topk=K,experts=E are required)"
                ));
            }
        }
        if p.topk > p.experts {
            return Err(format!(
                "topk={} is more than experts={}: a token picks distinct experts",
                p.topk, p.experts
            ));
        }
        Ok(p)
    }

    /// Bytes one token moves to one expert.
    pub fn token_bytes(&self) -> u64 {
        self.hidden * self.dtype.size() as u64
    }

    /// Bytes each rank dispatches: T K tokens' worth.
    pub fn bytes_per_rank(&self) -> u64 {
        self.tokens * self.topk * self.token_bytes()
    }

    /// The spec as given back, for the header and the JSON.
    pub fn describe(&self) -> String {
        format!(
            "moe tokens={},hidden={},topk={},experts={},dtype={},skew={},seed={}",
            self.tokens, self.hidden, self.topk, self.experts, self.dtype, self.skew, self.seed
        )
    }

    /// How many of its T K choices every rank sends each expert.
    fn choices_per_expert(&self, n: usize) -> Vec<u64> {
        let e = self.experts as usize;
        let per_rank = e / n;
        let weights: Vec<f64> = (0..e)
            .map(|x| if x < per_rank { self.skew } else { 1.0 })
            .collect();
        let total_weight: f64 = weights.iter().sum();
        let choices = self.tokens * self.topk;
        let mut quota: Vec<u64> = weights
            .iter()
            .map(|w| ((choices as f64 * w / total_weight).floor() as u64).min(self.tokens))
            .collect();
        let mut left = choices - quota.iter().sum::<u64>();
        let mut rng = SplitMix64(self.seed);
        while left > 0 {
            // An expert with room, drawn in proportion to its weight.
            let open: Vec<usize> = (0..e).filter(|&x| quota[x] < self.tokens).collect();
            let room: f64 = open.iter().map(|&x| weights[x]).sum();
            let mut at = rng.unit() * room;
            let pick = open
                .iter()
                .copied()
                .find(|&x| {
                    at -= weights[x];
                    at < 0.0
                })
                .unwrap_or(open[open.len() - 1]);
            quota[pick] += 1;
            left -= 1;
        }
        quota
    }

    /// Dispatch and combine on `n` ranks; an error names what does not fit (experts not a multiple of n).
    pub fn route(&self, n: usize) -> Result<MoeTraffic, String> {
        if n == 0 || self.experts % n as u64 != 0 {
            return Err(format!(
                "experts={} do not sit evenly on {n} ranks: give a multiple of {n} (with --groups, of the group's size)",
                self.experts
            ));
        }
        let quota = self.choices_per_expert(n);
        let per_rank = self.experts as usize / n;
        let to_rank: Vec<u64> = quota
            .chunks(per_rank)
            .map(|c| c.iter().sum::<u64>() * self.token_bytes())
            .collect();
        let dispatch: Vec<Vec<u64>> = (0..n).map(|_| to_rank.clone()).collect();
        let combine: Vec<Vec<u64>> = (0..n)
            .map(|j| (0..n).map(|i| dispatch[i][j]).collect())
            .collect();
        Ok(MoeTraffic {
            dispatch: PeerBytes::from_rows(dispatch)?,
            combine: PeerBytes::from_rows(combine)?,
        })
    }
}

/// A small seeded generator (SplitMix64), so a seed gives the same routing on every rank and machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(spec: &str) -> MoeParams {
        MoeParams::parse(spec).unwrap()
    }

    #[test]
    fn uniform_routing_by_hand_is_balanced() {
        // 2 ranks, 4 experts (2 each), 4 tokens x top-2 = 8 choices per rank: 2 per expert; a token is
        // 8 x 2 = 16 bytes, so every rank sends every rank (itself too) 2 experts x 2 x 16 = 64 bytes.
        let t = params("tokens=4,hidden=8,topk=2,experts=4")
            .route(2)
            .unwrap();
        assert_eq!(
            t.dispatch,
            PeerBytes::from_rows(vec![vec![64, 64], vec![64, 64]]).unwrap()
        );
        assert_eq!(t.combine, t.dispatch);
        assert_eq!(t.dispatch.imbalance(), 1.0);
    }

    #[test]
    fn a_hot_rank_by_hand() {
        // skew 3: weights 3, 3, 1, 1 of 8 -> 3, 3, 1, 1 of the 8 choices; to rank 0: 6 x 16 = 96 bytes,
        // to rank 1: 2 x 16 = 32. Rank 0 receives 192 and sends 128; rank 1 receives 64, sends 128.
        let t = params("tokens=4,hidden=8,topk=2,experts=4,skew=3")
            .route(2)
            .unwrap();
        assert_eq!(
            t.dispatch,
            PeerBytes::from_rows(vec![vec![96, 32], vec![96, 32]]).unwrap()
        );
        assert_eq!(
            t.combine,
            PeerBytes::from_rows(vec![vec![96, 96], vec![32, 32]]).unwrap()
        );
        // moved: 192 and 128, mean 160
        assert!((t.dispatch.imbalance() - 1.2).abs() < 1e-12);
        assert!((t.combine.imbalance() - 1.2).abs() < 1e-12);
    }

    #[test]
    fn leftover_choices_follow_the_seed_and_every_rank_sends_its_share() {
        let p = params("tokens=7,hidden=4,topk=3,experts=8,skew=2.5,seed=1");
        let a = p.route(4).unwrap();
        assert_eq!(a, p.route(4).unwrap(), "the same seed routes the same way");
        for r in 0..4 {
            assert_eq!(a.dispatch.sent(r), p.bytes_per_rank());
        }
        assert!(a.dispatch.imbalance() > 1.0);
        let other = MoeParams {
            seed: 2,
            ..p.clone()
        }
        .route(4)
        .unwrap();
        assert_eq!(other.dispatch.sent(0), p.bytes_per_rank());
        // No expert gets more than one choice per token, however hot.
        let hot = params("tokens=2,hidden=1,topk=2,experts=4,skew=1000,dtype=int8");
        let q = hot.choices_per_expert(2);
        assert!(q.iter().all(|&c| c <= 2), "{q:?}");
        assert_eq!(q.iter().sum::<u64>(), 4);
    }

    #[test]
    fn bad_specs_name_the_key() {
        for (spec, says) in [
            ("tokens=4,hidden=8,topk=2", "experts= is missing"),
            ("tokens=4,hidden=8,topk=9,experts=4", "topk=9"),
            ("tokens=0,hidden=8,topk=2,experts=4", "tokens=0"),
            ("tokens=4,hidden=8,topk=2,experts=4,skew=0.5", "skew=0.5"),
            (
                "tokens=4,hidden=8,topk=2,experts=4,dtype=nope",
                "dtype=nope",
            ),
            (
                "tokens=4,hidden=8,topk=2,experts=4,zipf=1",
                "unknown key 'zipf'",
            ),
            ("tokens", "not key=value"),
        ] {
            let e = MoeParams::parse(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
        let e = params("tokens=4,hidden=8,topk=2,experts=6")
            .route(4)
            .unwrap_err();
        assert!(e.contains("experts=6"), "{e}");
    }
}
