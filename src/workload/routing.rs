//! The per-peer bytes of an EP step's dispatch and combine, from the MoE router of `--moe`
//! (src/traffic/moe.rs): every rank of a group routes the same number of tokens, each to its top-k of
//! the model's experts spread evenly over the group, with the run's skew and seed.

use super::messages::{Half, Route, StepOptions};
use super::model::ModelSpec;
use crate::traffic::matrix::PeerBytes;
use crate::traffic::moe::MoeParams;

/// The matrix of one half of an EP step on a group of `ranks` ranks. An error names what does not fit
/// (the experts do not spread evenly over the group).
pub fn matrix(
    model: &ModelSpec,
    route: &Route,
    ranks: usize,
    options: &StepOptions,
) -> Result<PeerBytes, String> {
    let params = MoeParams {
        tokens: route.tokens_per_rank,
        hidden: model.hidden_size,
        topk: route.experts_per_token,
        experts: model.experts,
        dtype: model.dtype,
        skew: options.skew,
        seed: options.seed,
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
        let even = StepOptions::default();
        // 4 tokens x top-2 = 8 choices, one per expert: 2 experts per rank of 4, 2 copies of 2048 B each.
        let d = matrix(&tiny(), &route(Half::Dispatch, 4), 4, &even).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(d.get(i, j), 2 * 2048);
            }
        }
        assert_eq!(d.imbalance(), 1.0);
        let c = matrix(&tiny(), &route(Half::Combine, 4), 4, &even).unwrap();
        assert_eq!(c, d, "a uniform matrix is its own transpose");
    }

    #[test]
    fn a_skewed_router_loads_rank_0() {
        let skewed = StepOptions {
            skew: 4.0,
            ..StepOptions::default()
        };
        let d = matrix(&tiny(), &route(Half::Dispatch, 16), 4, &skewed).unwrap();
        assert!(d.received(0) > d.received(1), "{d:?}");
        assert!(d.imbalance() > 1.0);
        let c = matrix(&tiny(), &route(Half::Combine, 16), 4, &skewed).unwrap();
        assert_eq!(c.sent(0), d.received(0));
        assert!(matrix(&tiny(), &route(Half::Dispatch, 1), 3, &skewed).is_err());
    }
}
