//! nccl-tests' and rccl-tests' flags and variables that shape a run beyond the sweep, checked together
//! against each other and the backend.

use super::*;
use crate::backend::{Allocator, MemoryKind};
use crate::cli::RunArgs;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// rccl-tests' own flags (-O, -q, -E, -F, -A, -Z with -X, and -Y against the backend and --alloc),
/// checked: (placements, delay in microseconds, rotating tensor, algo columns, results file).
#[allow(clippy::type_complexity)]
pub(super) fn rccl_tests_flags(
    args: &RunArgs,
    backend: BackendChoice,
) -> Result<(Placements, u64, bool, bool, Option<(RcclFormat, PathBuf)>)> {
    let placements = match args.out_of_place {
        None => Placements::BOTH,
        Some(1) => Placements {
            out_of_place: true,
            in_place: false,
        },
        Some(0) => Placements {
            out_of_place: false,
            in_place: true,
        },
        Some(o) => {
            return Err(Error::usage(format!(
                "-O/--out_of_place {o}: use 1 (out-of-place only) or 0 (in-place only), or leave it out for both"
            )))
        }
    };
    let delay = match &args.delay_inout_place {
        None => 0,
        Some(None) => {
            return Err(Error::usage(
                "-q is rccl-tests' delay between the out-of-place and in-place measurements: give it in microseconds (-q 100); collbench's quiet output (only the table) is --quiet",
            ))
        }
        Some(Some(us)) => us.trim().parse().map_err(|_| {
            Error::usage(format!(
                "-q/--delay_inout_place '{us}': give the delay in microseconds (rccl-tests' -q); only the table is --quiet"
            ))
        })?,
    };
    if delay > 0 && placements != Placements::BOTH {
        return Err(Error::usage(
            "-q delays the in-place measurement after the out-of-place one, but -O measures only one of them: drop -q or -O",
        ));
    }
    let flag = |name: &str, v: u8| match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::usage(format!("{name} {other}: use 0 or 1"))),
    };
    let rotating = flag("-E/--rotating_tensor", args.rotating_tensor)?;
    let algo_columns = flag("-A/--output_algo_proto_channels", args.algo_columns)?;
    if args.cache_flush > 0 {
        return Err(Error::Unsupported(format!(
            "-F {} (rccl-tests' instruction-cache flush every {} iterations) is not implemented: rccl-tests \
             launches a GPU kernel of its own for it, which collbench, built without a GPU compiler, does not \
             have; -E 1 keeps small sizes out of the data caches instead. Run without -F",
            args.cache_flush, args.cache_flush
        )));
    }
    let output = match (&args.rccl_output_format, &args.rccl_output_file) {
        (None, None) => None,
        (Some(f), Some(file)) => {
            let format = match f.trim().to_ascii_lowercase().as_str() {
                "csv" => RcclFormat::Csv,
                "json" => RcclFormat::Json,
                other => {
                    return Err(Error::usage(format!(
                        "-Z/--rccl_output_format '{other}': use csv or json"
                    )))
                }
            };
            if file.as_os_str().is_empty() {
                return Err(Error::usage("-X/--rccl_output_file: give a file name"));
            }
            Some((format, file.clone()))
        }
        (Some(f), None) => {
            return Err(Error::usage(format!(
                "-Z {f} writes rccl-tests' results file to the file -X names: add -X FILE"
            )))
        }
        (None, Some(file)) => {
            return Err(Error::usage(format!(
                "-X {} is where rccl-tests' results file goes, in the format -Z gives: add -Z csv or -Z json",
                file.display()
            )))
        }
    };
    if args.memory_type != MemoryKind::Coarse {
        if backend == BackendChoice::Mpi {
            return Err(Error::usage(format!(
                "-Y {}: -Y chooses GPU memory, and the mpi backend moves host memory: drop -Y or use a GPU backend",
                args.memory_type.name()
            )));
        }
        if args.alloc == Some(Allocator::Nccl) {
            return Err(Error::usage(format!(
                "-Y {} and --alloc nccl both choose the buffers' memory (ncclMemAlloc gives its own): choose one",
                args.memory_type.name()
            )));
        }
        if args.local_register == 2 {
            return Err(Error::usage(format!(
                "-Y {} and -R 2 both choose the buffers' memory (symmetric windows need ncclMemAlloc's): choose one",
                args.memory_type.name()
            )));
        }
    }
    Ok((placements, delay, rotating, algo_columns, output))
}

/// nccl-tests' flags and variables that shape a run beyond the sweep, validated together.
pub(super) struct NcclTestsFlags {
    pub(super) register: Registration,
    pub(super) alloc: Allocator,
    pub(super) samples: Option<u64>,
    pub(super) per_iter_timing: bool,
    pub(super) per_iter_skip: u64,
    pub(super) min_bw_gbps: Option<f64>,
    pub(super) alltoallv_summary: bool,
}

impl NcclTestsFlags {
    pub(super) fn of(args: &RunArgs, iters: Iterations) -> Result<NcclTestsFlags> {
        if args.device_implementation > 0 {
            return Err(Error::usage(format!(
                "-D/--device_implementation {}: nccl-tests' device implementations are CUDA kernels built against NCCL's device API (nccl_device.h, NCCL 2.28+) by a CUDA compiler; collbench has no CUDA compiler and carries no device kernels, so it cannot run them: leave -D out (NCCL's own implementation, -D 0), or run nccl-tests for -D",
                args.device_implementation
            )));
        }
        if let Some(v) = args.device_cta_count {
            return Err(Error::usage(format!(
                "-V/--device_cta_count {v}: it sets the CTAs of -D's device implementation, which collbench cannot run (see -D): leave -V out"
            )));
        }
        let register = match args.local_register {
            0 => Registration::None,
            1 => Registration::Local,
            _ => Registration::Symmetric,
        };
        let alloc = match (args.alloc, register) {
            (Some(Allocator::Device), Registration::Symmetric) => {
                return Err(Error::usage(
                    "-R 2 registers symmetric windows, which need buffers from ncclMemAlloc: drop --alloc device (-R allocates with ncclMemAlloc, as nccl-tests)",
                ))
            }
            (Some(a), _) => a,
            // -Y's memory is allocated by the device runtime; -R 1 registers it as it is.
            (None, _) if args.memory_type != MemoryKind::Coarse => Allocator::Device,
            // nccl-tests allocates with ncclMemAlloc (2.19+), which registration wants.
            (None, Registration::None) => Allocator::Device,
            (None, _) => Allocator::Nccl,
        };
        let per_iter_timing = args.per_iter_timing == Some(1);
        let samples = match (args.per_iter_timing, args.samples, iters) {
            (Some(_), Some(n), _) => {
                return Err(Error::usage(format!(
                "-I/--per_iter_timing and --samples {n} both set the per-iteration pass: give one"
            )))
            }
            (Some(1), None, Iterations::Fixed(n)) => Some(n),
            (Some(0), None, _) => Some(0),
            _ => None,
        };
        let per_iter_skip = match args.per_iter_skip {
            None | Some(0) => 0,
            Some(k) if !per_iter_timing => {
                return Err(Error::usage(format!(
                    "-K/--per_iter_skip {k} leaves iterations out of -I 1's statistics: add -I 1"
                )))
            }
            Some(k) => match iters {
                Iterations::Fixed(n) if k >= n => {
                    return Err(Error::usage(format!(
                        "-K/--per_iter_skip {k} leaves no iteration of -n {n} to summarise: give fewer than {n}"
                    )))
                }
                _ => k,
            },
        };
        if args.json_format == crate::report::json::JsonFormat::NcclTests && args.json.is_none() {
            return Err(Error::usage(
                "--json-format nccl-tests says how -J writes its file: give -J FILE too",
            ));
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let min_bw_gbps = match env("NCCL_TESTS_MIN_BW") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|b| b.is_finite() && *b >= 0.0)
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "NCCL_TESTS_MIN_BW={v}: give the average bus bandwidth to reach in GB/s (the run fails below 0.9 x it), or unset it"
                        ))
                    })?,
            ),
        };
        let alltoallv_summary = match env("NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY") {
            None => false,
            Some(v) => v.trim().parse::<i64>().map(|n| n != 0).map_err(|_| {
                Error::usage(format!(
                    "NCCL_TESTS_ALLTOALLV_PRINT_SUMMARY={v}: give 1 to print each rank's bytes and bandwidth under every all_to_allv row, or 0"
                ))
            })?,
        };
        Ok(NcclTestsFlags {
            register,
            alloc,
            samples,
            per_iter_timing,
            per_iter_skip,
            min_bw_gbps,
            alltoallv_summary,
        })
    }
}
