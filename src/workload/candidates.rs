//! Which layouts a workload measures: the ones asked for (each checked against the job and the model),
//! or by default every TP and EP group size that divides the job and fits the host boundaries, and on
//! a job of several hosts TP over a whole host times PP over hosts.

use super::messages::{LayoutChoice, Parallelism};
use super::model::ModelSpec;
use crate::error::{Error, Result};

/// The layout lists given on the command line, None where not given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    pub tp: Option<&'a [usize]>,
    pub ep: Option<&'a [usize]>,
    /// Pipeline stage counts: each TP size (given, or every size inside a host) times each.
    pub pp: Option<&'a [usize]>,
}

/// The layouts to measure on a job of `ranks` ranks with `ranks_per_host` ranks on each host (None
/// where hosts hold different counts).
pub fn choose(
    model: &ModelSpec,
    ranks: usize,
    ranks_per_host: Option<usize>,
    asked: Asked<'_>,
) -> Result<Vec<LayoutChoice>> {
    let Asked { tp, ep, pp } = asked;
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
            let choice = LayoutChoice {
                parallelism,
                size,
                stages: 1,
            };
            if !out.contains(&choice) {
                out.push(choice);
            }
        }
    }
    for choice in pipelines(model, ranks, ranks_per_host, tp, pp)? {
        if !out.contains(&choice) {
            out.push(choice);
        }
    }
    if out.is_empty() {
        return Err(Error::usage(format!(
            "no layout to measure on {ranks} rank(s): a TP or EP group needs at least 2 ranks; run under mpirun -np N (N >= 2), or name layouts with --tp/--ep"
        )));
    }
    Ok(out)
}

/// TPk x PPm layouts: with `--pp`, every TP size given (or every size of at least 2 inside a host)
/// times every stage count whose replica divides the job; without it, on a job of several alike hosts,
/// TP over a whole host times PP over 2 or more hosts (TP stays on a host's links, stages cross
/// hosts).
fn pipelines(
    model: &ModelSpec,
    ranks: usize,
    ranks_per_host: Option<usize>,
    tp: Option<&[usize]>,
    pp: Option<&[usize]>,
) -> Result<Vec<LayoutChoice>> {
    let Some(stages) = pp else {
        return Ok(match ranks_per_host {
            Some(h) if h < ranks && ranks % h == 0 => {
                let hosts = ranks / h;
                (2..=hosts)
                    .filter(|m| hosts % m == 0 && *m as u64 <= model.layers)
                    .map(|m| LayoutChoice::tp_pp(h, m))
                    .collect()
            }
            _ => Vec::new(),
        });
    };
    let sizes: Vec<usize> = match tp {
        Some(list) => list.to_vec(),
        None => (2..=ranks)
            .filter(|&k| ranks % k == 0 && ranks_per_host.is_none_or(|h| h % k == 0))
            .collect(),
    };
    let mut out = Vec::new();
    for &m in stages {
        if m < 2 {
            continue;
        }
        if m as u64 > model.layers {
            return Err(Error::usage(format!(
                "--pp {m}: {} has {} layers, fewer than {m} stages: give at most {} stages",
                model.name, model.layers, model.layers
            )));
        }
        let fitting: Vec<LayoutChoice> = sizes
            .iter()
            .filter(|&&k| k >= 1 && ranks % (k * m) == 0)
            .map(|&k| LayoutChoice::tp_pp(k, m))
            .collect();
        if fitting.is_empty() {
            return Err(Error::usage(format!(
                "--pp {m}: no TP size{} times {m} stages divides the {ranks} ranks of this job: give stage counts and --tp sizes whose product divides {ranks}",
                tp.map(|l| format!(" of --tp {}", l.iter().map(usize::to_string).collect::<Vec<_>>().join(",")))
                    .unwrap_or_default()
            )));
        }
        out.extend(fitting);
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

/// Parses a `--tp`/`--ep`/`--pp` list such as "1,2,4,8".
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
        let l = choose(&mixtral, 16, Some(8), Asked::default()).unwrap();
        assert_eq!(
            sizes(&l),
            ["TP2", "TP4", "TP8", "TP16", "EP2", "EP4", "EP8", "TP8xPP2"]
        );
        // 12 ranks, 4 per host: 6 would straddle hosts.
        let llama = load("llama-3.1-8b").unwrap();
        assert_eq!(
            sizes(&choose(&llama, 12, Some(4), Asked::default()).unwrap()),
            ["TP2", "TP4", "TP12", "TP4xPP3"]
        );
    }

    #[test]
    fn a_given_layout_that_does_not_divide_the_job_is_named() {
        let llama = load("llama-3.1-8b").unwrap();
        let tp = |list: &'static [usize]| Asked {
            tp: Some(list),
            ..Asked::default()
        };
        let ep = |list: &'static [usize]| Asked {
            ep: Some(list),
            ..Asked::default()
        };
        let e = choose(&llama, 4, Some(4), tp(&[2, 3])).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("--tp 3"), "{e}");
        let e = choose(&llama, 4, None, ep(&[2])).unwrap_err();
        assert!(e.to_string().contains("dense"), "{e}");
        let mixtral = load("mixtral-8x7b").unwrap();
        let e = choose(&mixtral, 16, None, ep(&[16])).unwrap_err();
        assert!(e.to_string().contains("--ep 16"), "{e}");
        assert!(choose(&llama, 1, None, Asked::default()).is_err());
        assert!(parse_sizes("--tp", "2,x").is_err());
        assert_eq!(parse_sizes("--tp", "1, 2").unwrap(), [1, 2]);
    }

    #[test]
    fn pipeline_stages_multiply_tp_sizes_that_stay_inside_a_host() {
        let llama = load("llama-3.1-70b").unwrap();
        // Two hosts of 8: --pp 2 with TP inside a host (2, 4, 8); --tp 16 alone has no PP partner.
        let asked = Asked {
            pp: Some(&[2]),
            tp: Some(&[8, 16]),
            ..Asked::default()
        };
        assert_eq!(
            sizes(&choose(&llama, 16, Some(8), asked).unwrap()),
            ["TP8", "TP16", "TP8xPP2"]
        );
        let only_pp = Asked {
            pp: Some(&[2]),
            ..Asked::default()
        };
        let l = choose(&llama, 16, Some(8), only_pp).unwrap();
        assert!(
            sizes(&l).ends_with(&["TP2xPP2".to_string(), "TP4xPP2".into(), "TP8xPP2".into()]),
            "{l:?}"
        );
        // One host: no PP by default.
        assert!(choose(&llama, 8, Some(8), Asked::default())
            .unwrap()
            .iter()
            .all(|l| l.stages == 1));
        let e = choose(
            &llama,
            8,
            Some(8),
            Asked {
                pp: Some(&[3]),
                ..Asked::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--pp 3"), "{e}");
        let e = choose(
            &llama,
            256,
            Some(8),
            Asked {
                pp: Some(&[128]),
                ..Asked::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("80 layers"), "{e}");
    }
}
