//! The per-peer bytes of an EP step's dispatch and combine, from the MoE router of `--moe`
//! (src/traffic/moe.rs): every rank of a group routes the same number of tokens, each to its top-k of
//! the model's experts spread evenly over the group, with the run's skew and seed.

use super::model::ModelSpec;
use crate::traffic::matrix::PeerBytes;
use crate::traffic::moe::MoeParams;
use serde::{Deserialize, Serialize};

/// An EP half: each rank's tokens and top-k, from which the router's per-peer bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    pub half: Half,
    /// Tokens every rank of the group routes: ceil(tokens / k), since the router routes the same count
    /// on every rank.
    pub tokens_per_rank: u64,
    pub experts_per_token: u64,
}

/// Dispatch sends token copies to the experts' ranks; combine sends them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    Dispatch,
    Combine,
}

impl Half {
    pub fn name(self) -> &'static str {
        match self {
            Half::Dispatch => "dispatch",
            Half::Combine => "combine",
        }
    }
}

/// The matrix of one half of an EP step on a group of `ranks` ranks. An error names what does not fit
/// (the experts do not spread evenly over the group).
pub fn matrix(
    model: &ModelSpec,
    route: &Route,
    ranks: usize,
    skew: f64,
    seed: u64,
) -> Result<PeerBytes, String> {
    let params = MoeParams {
        tokens: route.tokens_per_rank,
        hidden: model.hidden_size,
        topk: route.experts_per_token,
        experts: model.experts,
        dtype: model.dtype,
        skew,
        seed,
    };
    let traffic = params.route(ranks)?;
    Ok(match route.half {
        Half::Dispatch => traffic.dispatch,
        Half::Combine => traffic.combine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::model::parse;

    fn tiny() -> ModelSpec {
        parse(
            "tiny",
            r#"{"hidden_size": 1024, "num_hidden_layers": 2, "num_experts": 8, "num_experts_per_tok": 2}"#,
            "c",
        )
        .unwrap()
    }

    fn route(half: Half, tokens_per_rank: u64) -> Route {
        Route {
            half,
            tokens_per_rank,
            experts_per_token: 2,
        }
    }

    #[test]
    fn balanced_tokens_move_evenly_and_combine_is_the_transpose() {
        // 4 tokens x top-2 = 8 choices, one per expert: 2 experts per rank of 4, 2 copies of 2048 B each.
        let d = matrix(&tiny(), &route(Half::Dispatch, 4), 4, 1.0, 0).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(d.get(i, j), 2 * 2048);
            }
        }
        assert_eq!(d.imbalance(), 1.0);
        let c = matrix(&tiny(), &route(Half::Combine, 4), 4, 1.0, 0).unwrap();
        assert_eq!(c, d, "a uniform matrix is its own transpose");
    }

    #[test]
    fn a_skewed_router_loads_rank_0() {
        let d = matrix(&tiny(), &route(Half::Dispatch, 16), 4, 4.0, 0).unwrap();
        assert!(d.received(0) > d.received(1), "{d:?}");
        assert!(d.imbalance() > 1.0);
        let c = matrix(&tiny(), &route(Half::Combine, 16), 4, 4.0, 0).unwrap();
        assert_eq!(c.sent(0), d.received(0));
        assert!(matrix(&tiny(), &route(Half::Dispatch, 1), 3, 4.0, 0).is_err());
    }
}
