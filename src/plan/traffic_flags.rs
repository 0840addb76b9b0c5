//! What all_to_allv moves (--matrix, --moe, --spread, NCCL_TESTS_ALLTOALLV_SPREAD) and the --groups
//! layouts, from the command line.

use crate::cli::RunArgs;
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::layout::GroupSpec;
use crate::traffic::moe::MoeParams;
use crate::traffic::spread::spread_from_env;
use crate::traffic::Traffic;

/// The traffic the command line asks for: `--matrix` or `--moe`, else `--spread`, else the spread of
/// NCCL_TESTS_ALLTOALLV_SPREAD. A fixed source applies to all_to_allv alone.
pub(super) fn traffic_from_args(
    args: &RunArgs,
    collectives: &[Collective],
) -> Result<Traffic, String> {
    if let (Some(_), Some(other)) = (
        &args.spread,
        args.matrix
            .as_ref()
            .map(|_| "--matrix")
            .or(args.moe.as_ref().map(|_| "--moe")),
    ) {
        return Err(format!(
            "--spread and {other} both give all_to_allv's per-peer bytes: choose one"
        ));
    }
    if args.spread.is_some() && !collectives.contains(&Collective::AllToAllv) {
        return Err(
            "--spread shapes all_to_allv's per-peer bytes: run all_to_allv (or all) with it, or leave it out"
                .into(),
        );
    }
    let traffic = match (&args.matrix, &args.moe) {
        (Some(_), Some(_)) => {
            return Err(
                "--matrix and --moe both give all_to_allv's per-peer bytes: choose one".into(),
            )
        }
        (Some(path), None) => Traffic::matrix_file(path)?,
        (None, Some(spec)) => {
            Traffic::Moe(MoeParams::parse(spec).map_err(|e| format!("--moe: {e}"))?)
        }
        (None, None) => match (args.spread.as_deref(), matrix_from_env(collectives)?) {
            (Some(rule), _) => Traffic::spread_rule(rule)?,
            (None, Some(matrix)) => matrix,
            (None, None) => Traffic::Spread(spread_from_env()?),
        },
    };
    if traffic.fixed() && collectives != [Collective::AllToAllv] {
        return Err(format!(
            "{} gives all_to_allv's per-peer bytes: run `collbench all_to_allv` with it, and other collectives in another run",
            traffic.flag()
        ));
    }
    Ok(traffic)
}

/// NCCL_TESTS_ALLTOALLV_MATRIX_FILE (times NCCL_TESTS_ALLTOALLV_MATRIX_SCALE), when all_to_allv runs: as
/// in nccl-tests, only the all-to-all-v test reads it, and it takes precedence over the spread.
pub(super) fn matrix_from_env(collectives: &[Collective]) -> Result<Option<Traffic>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(path) = env("NCCL_TESTS_ALLTOALLV_MATRIX_FILE") else {
        return Ok(None);
    };
    if !collectives.contains(&Collective::AllToAllv) {
        return Ok(None);
    }
    let scale = match env("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE") {
        None => 1.0,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                format!("NCCL_TESTS_ALLTOALLV_MATRIX_SCALE={text}: give a factor of 0 or more (1 keeps the file's bytes), or unset it")
            })?,
    };
    Traffic::matrix_env(std::path::Path::new(path.trim()), scale).map(Some)
}

/// The layouts of --groups, else of NCCL_TESTS_SPLIT_MASK (nccl-tests' `rank & mask`, the mask in hex),
/// else of NCCL_TESTS_SPLIT: nccl-tests reads the mask first and the rule only without it.
pub(super) fn groups_from(args: &RunArgs) -> Result<(Vec<GroupSpec>, Option<String>)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (specs, from) = if let Some(text) = &args.groups {
        let specs =
            crate::layout::parse_list(text).map_err(|e| Error::usage(format!("--groups: {e}")))?;
        (specs, format!("--groups {text}"))
    } else if let Some(mask) = env("NCCL_TESTS_SPLIT_MASK") {
        let spec = crate::layout::parse_split_mask(&mask)
            .map_err(|e| Error::usage(format!("NCCL_TESTS_SPLIT_MASK: {e}; or unset it")))?;
        (vec![spec], format!("NCCL_TESTS_SPLIT_MASK={mask}"))
    } else if let Some(rule) = env("NCCL_TESTS_SPLIT") {
        let spec = crate::layout::parse_split(&rule)
            .map_err(|e| Error::usage(format!("NCCL_TESTS_SPLIT: {e}; or unset it")))?;
        (vec![spec], format!("NCCL_TESTS_SPLIT={rule}"))
    } else {
        return Ok((Vec::new(), None));
    };
    if args.ngpus > 1 || args.nthreads > 1 {
        return Err(Error::usage(format!(
            "{from}: groups split MPI ranks (one GPU per rank, as nccl-tests), not -g/-t: run one rank per GPU under mpirun"
        )));
    }
    Ok((specs, Some(from)))
}
