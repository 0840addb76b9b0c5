//! What a sweep's plan asks of the backend before the first row: which (collective, type, operator)
//! combinations it runs, how large the buffers must be, whether the traffic fits, how many rows come.

use crate::backend::Backend;
use crate::collective::Collective;
use crate::dtype::{DataType, ReduceOp};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::traffic::{Traffic, TrafficPhase};

/// One (collective, type, operator) the backend can run.
#[derive(Debug, Clone, Copy)]
pub struct Combination {
    pub collective: Collective,
    pub dtype: DataType,
    pub op: Option<ReduceOp>,
}

/// The combinations of the plan the backend supports, and a note for each it does not. A plan with
/// nothing runnable is a usage error naming why.
pub fn combinations(
    plan: &Plan,
    backend: &mut dyn Backend,
    ranks: usize,
) -> Result<(Vec<Combination>, Vec<String>)> {
    if let crate::plan::Roots::One(r) = plan.roots {
        if r >= ranks && plan.collectives.iter().any(|c| c.rooted()) {
            return Err(Error::Usage(format!(
                "-r/--root {r} is not a rank of this {ranks}-rank job: use 0 to {}, or all",
                ranks - 1
            )));
        }
    }
    if plan.cudagraph_replays > 0 && backend.graphs().is_none() {
        return Err(Error::Usage(format!(
            "-G {}: the {} backend cannot capture graphs; -G needs the nccl backend on NVIDIA GPUs: run without -G",
            plan.cudagraph_replays,
            backend.name()
        )));
    }
    let gpu_only = plan.gpu_only_flags();
    if !gpu_only.is_empty() && backend.memory_use().is_none() {
        return Err(Error::Usage(format!(
            "{}: nccl-tests' flag(s) for a GPU library's communicators, streams and device memory, which the {} backend has none of: run with --backend nccl or rccl, or leave them out",
            gpu_only.join(", "),
            backend.name()
        )));
    }
    if plan.null_stream && plan.cudagraph_replays > 0 {
        return Err(Error::Usage(
            "-y 1 and -G exclude each other: a graph is captured from a stream, which the legacy null stream cannot be: drop one"
                .into(),
        ));
    }
    if plan.memory != crate::backend::MemoryKind::Coarse && backend.name() == "mpi" {
        return Err(Error::Usage(format!(
            "-Y {}: -Y chooses GPU memory, and the mpi backend moves host memory (no GPU was found for \
             --backend auto): drop -Y or run where a GPU backend is",
            plan.memory.name()
        )));
    }
    let mut runnable = Vec::new();
    let mut notes = Vec::new();
    for &collective in &plan.collectives {
        if collective == Collective::Hypercube && !ranks.is_power_of_two() {
            notes.push(format!(
                "skipped: hypercube needs a power-of-two number of ranks, not {ranks} (nccl-tests skips it too)"
            ));
            continue;
        }
        for &dtype in &plan.dtypes {
            for op in plan.ops_for(collective) {
                match backend.unsupported(collective, dtype, op) {
                    None => runnable.push(Combination {
                        collective,
                        dtype,
                        op,
                    }),
                    Some(why) => notes.push(format!("skipped: {why}")),
                }
            }
        }
    }
    if runnable.is_empty() {
        return Err(Error::Usage(
            notes
                .first()
                .cloned()
                .unwrap_or_else(|| "nothing to run".into()),
        ));
    }
    Ok((runnable, notes))
}

/// Bytes each of the two buffers needs for the largest operation of `size` bytes on communicators of
/// any of `comm_sizes` ranks (all_to_allv's from its traffic's matrices, checked by `check_traffic`).
pub fn buffer_bytes(
    combos: &[Combination],
    size: u64,
    comm_sizes: &[usize],
    traffic: &Traffic,
) -> u64 {
    combos
        .iter()
        .flat_map(|c| {
            comm_sizes.iter().map(move |&n| {
                let elt = c.dtype.size();
                if c.collective == Collective::AllToAllv {
                    let phases = traffic.phases(size, n, elt).unwrap_or_default();
                    return phases
                        .iter()
                        .map(|p| p.matrix.shape(elt).buffer_bytes(elt))
                        .max()
                        .unwrap_or(0);
                }
                c.collective.shape(size, elt, n).buffer_bytes(elt)
            })
        })
        .max()
        .unwrap_or(0)
}

/// A usage error when the plan's all_to_allv traffic does not fit a communicator of the job (a matrix
/// of another size, entries that are not whole elements of a type).
pub fn check_traffic(plan: &Plan, combos: &[Combination], comm_sizes: &[usize]) -> Result<()> {
    for c in combos
        .iter()
        .filter(|c| c.collective == Collective::AllToAllv)
    {
        for &n in comm_sizes {
            plan.traffic
                .phases(plan.min_bytes, n, c.dtype.size())
                .map_err(Error::Usage)?;
        }
    }
    Ok(())
}

/// The all_to_allv operations a row step measures (one per phase), or one plain operation.
pub(super) fn phases_of(
    traffic: &Traffic,
    combo: &Combination,
    size: u64,
    n: usize,
) -> Result<Vec<Option<TrafficPhase>>> {
    if combo.collective != Collective::AllToAllv {
        return Ok(vec![None]);
    }
    let phases = traffic
        .phases(size, n, combo.dtype.size())
        .map_err(Error::Usage)?;
    Ok(phases.into_iter().map(Some).collect())
}

/// Rows the sweep will produce (None when -N 0 repeats forever). `ranks` is the smallest communicator
/// (it bounds the roots); every size is measured once per layout.
pub fn row_count(
    plan: &Plan,
    combos: &[Combination],
    sizes: usize,
    ranks: usize,
    layouts: usize,
) -> Option<u64> {
    let per_cycle: usize = combos
        .iter()
        .map(|c| plan.roots_for(c.collective, ranks).len() * sizes * layouts)
        .sum();
    (plan.run_cycles > 0).then(|| per_cycle as u64 * plan.run_cycles)
}
