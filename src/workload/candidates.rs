//! Which layouts a workload measures: the ones asked for (each checked against the job and the model),
//! or by default every TP and EP group size that divides the job and fits the host boundaries.

use super::messages::{LayoutChoice, Parallelism};
use super::model::ModelSpec;
use crate::error::{Error, Result};

/// The layouts to measure on a job of `ranks` ranks with `ranks_per_host` ranks on each host (None
/// where hosts hold different counts). `tp` and `ep` are the lists given, None where not given.
pub fn choose(
    model: &ModelSpec,
    ranks: usize,
    ranks_per_host: Option<usize>,
    tp: Option<&[usize]>,
    ep: Option<&[usize]>,
) -> Result<Vec<LayoutChoice>> {
    if let Some(list) = ep {
        if !model.is_moe() && !list.is_empty() {
            return Err(Error::usage(format!(
                "--ep: {} is a dense model (no routed experts): expert parallelism needs a MoE model; use --tp",
                model.name
            )));
        }
    }
    let divisors: Vec<usize> = (1..=ranks).filter(|k| ranks % k == 0).collect();
    let mut out = Vec::new();
    for (flag, parallelism, given) in [("--tp", Parallelism::Tp, tp), ("--ep", Parallelism::Ep, ep)]
    {
        let sizes: Vec<usize> = match given {
            Some(list) => {
                for &k in list {
                    check_given(flag, k, ranks, &divisors, model, parallelism)?;
                }
                list.to_vec()
            }
            None if parallelism == Parallelism::Ep && !model.is_moe() => Vec::new(),
            None => divisors
                .iter()
                .copied()
                .filter(|&k| k >= 2 && fits_hosts(k, ranks_per_host))
                .filter(|&k| parallelism == Parallelism::Tp || model.experts % k as u64 == 0)
                .collect(),
        };
        for size in sizes {
            let choice = LayoutChoice { parallelism, size };
            if !out.contains(&choice) {
                out.push(choice);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::usage(format!(
            "no layout to measure on {ranks} rank(s): a TP or EP group needs at least 2 ranks; run under mpirun -np N (N >= 2), or name layouts with --tp/--ep"
        )));
    }
    Ok(out)
}

/// A group of k consecutive ranks stays inside one host, or covers whole hosts.
fn fits_hosts(k: usize, ranks_per_host: Option<usize>) -> bool {
    match ranks_per_host {
        Some(h) => h % k == 0 || k % h == 0,
        None => true,
    }
}

fn check_given(
    flag: &str,
    k: usize,
    ranks: usize,
    divisors: &[usize],
    model: &ModelSpec,
    parallelism: Parallelism,
) -> Result<()> {
    if k == 0 || ranks % k != 0 {
        let list: Vec<String> = divisors.iter().map(usize::to_string).collect();
        return Err(Error::usage(format!(
            "{flag} {k}: groups of {k} ranks do not divide the {ranks} ranks of this job: give sizes that divide {ranks} ({})",
            list.join(", ")
        )));
    }
    if parallelism == Parallelism::Ep && model.experts % k as u64 != 0 {
        return Err(Error::usage(format!(
            "{flag} {k}: {} has {} routed experts, which do not spread evenly over {k} ranks: give a size that divides {}",
            model.name, model.experts, model.experts
        )));
    }
    Ok(())
}

/// Parses a `--tp`/`--ep` list such as "1,2,4,8".
pub fn parse_sizes(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|s| {
            s.trim().parse::<usize>().map_err(|_| {
                Error::usage(format!(
                    "{flag} {text}: {s:?} is not a group size: give comma-separated rank counts such as 2,4,8"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::model::load;

    fn sizes(layouts: &[LayoutChoice]) -> Vec<String> {
        layouts.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn defaults_divide_the_job_fit_hosts_and_spread_experts() {
        let mixtral = load("mixtral-8x7b").unwrap();
        // 16 ranks, 8 per host: TP/EP 2, 4, 8 inside a host, 16 over both; EP16 would leave 8 experts
        // on 16 ranks.
        let l = choose(&mixtral, 16, Some(8), None, None).unwrap();
        assert_eq!(
            sizes(&l),
            ["TP2", "TP4", "TP8", "TP16", "EP2", "EP4", "EP8"]
        );
        // 12 ranks, 4 per host: 6 would straddle hosts.
        let llama = load("llama-3.1-8b").unwrap();
        assert_eq!(
            sizes(&choose(&llama, 12, Some(4), None, None).unwrap()),
            ["TP2", "TP4", "TP12"]
        );
    }

    #[test]
    fn a_given_layout_that_does_not_divide_the_job_is_named() {
        let llama = load("llama-3.1-8b").unwrap();
        let e = choose(&llama, 4, Some(4), Some(&[2, 3]), None).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("--tp 3"), "{e}");
        let e = choose(&llama, 4, None, None, Some(&[2])).unwrap_err();
        assert!(e.to_string().contains("dense"), "{e}");
        let mixtral = load("mixtral-8x7b").unwrap();
        let e = choose(&mixtral, 16, None, None, Some(&[16])).unwrap_err();
        assert!(e.to_string().contains("--ep 16"), "{e}");
        assert!(choose(&llama, 1, None, None, None).is_err());
        assert!(parse_sizes("--tp", "2,x").is_err());
        assert_eq!(parse_sizes("--tp", "1, 2").unwrap(), [1, 2]);
    }
}
