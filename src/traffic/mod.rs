//! Per-peer traffic for all_to_allv: where each row's byte matrix comes from (nccl-tests' spread
//! formula, a `--matrix` file, the `--moe` router) and what a row records about it.

pub mod matrix;
pub mod moe;
pub mod spread;

use matrix::PeerBytes;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Where all_to_allv's per-peer bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Traffic {
    /// nccl-tests' spread formula over each size of the sweep (NCCL_TESTS_ALLTOALLV_SPREAD).
    Spread(f64),
    /// `--spread rccl-tests`: rccl-tests' alltoallv_perf counts over each size of the sweep.
    RcclTests,
    /// `--matrix FILE` or NCCL_TESTS_ALLTOALLV_MATRIX_FILE: fixed bytes from rank i to rank j; the
    /// sweep's sizes do not apply.
    Matrix {
        path: PathBuf,
        bytes: PeerBytes,
        from: MatrixFrom,
    },
    /// `--moe`: the router's dispatch and combine, each its own row; the sweep's sizes do not apply.
    Moe(moe::MoeParams),
}

/// Who named a matrix file, and so how it is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MatrixFrom {
    /// `--matrix`: whole numbers of bytes, exactly the communicator's size.
    Flag,
    /// NCCL_TESTS_ALLTOALLV_MATRIX_FILE, as nccl-tests reads it: any numbers, times
    /// NCCL_TESTS_ALLTOALLV_MATRIX_SCALE (this factor), rounded down to 16 bytes; a larger matrix's
    /// leading block for a smaller communicator.
    Env { scale: f64 },
}

/// One all_to_allv to measure: its matrix and, where a traffic source has several, its phase's name.
#[derive(Debug, Clone)]
pub struct TrafficPhase {
    pub name: Option<&'static str>,
    pub matrix: Arc<PeerBytes>,
}

impl Traffic {
    /// `--spread`: nccl-tests' factor S (0 to 1, as NCCL_TESTS_ALLTOALLV_SPREAD), or rccl-tests' counts.
    pub fn spread_rule(rule: &str) -> Result<Traffic, String> {
        let rule = rule.trim();
        if rule.eq_ignore_ascii_case("rccl-tests") {
            return Ok(Traffic::RcclTests);
        }
        spread::factor(rule.strip_prefix("nccl-tests:").unwrap_or(rule))
            .map(Traffic::Spread)
            .ok_or_else(|| {
                format!("--spread {rule}: give nccl-tests' factor from 0 to 1 (as NCCL_TESTS_ALLTOALLV_SPREAD), or rccl-tests for rccl-tests' alltoallv counts")
            })
    }

    /// The flag that chose a fixed source, for messages.
    pub fn flag(&self) -> &'static str {
        match self {
            Traffic::Spread(_) => "NCCL_TESTS_ALLTOALLV_SPREAD",
            Traffic::RcclTests => "--spread rccl-tests",
            Traffic::Matrix {
                from: MatrixFrom::Flag,
                ..
            } => "--matrix",
            Traffic::Matrix { .. } => "NCCL_TESTS_ALLTOALLV_MATRIX_FILE",
            Traffic::Moe(_) => "--moe",
        }
    }

    /// The one size a fixed source's sweep measures (the busiest rank's bytes), or None for a sweep.
    pub fn fixed_size(&self) -> Option<u64> {
        match self {
            Traffic::Spread(_) | Traffic::RcclTests => None,
            Traffic::Matrix { bytes, .. } => Some(bytes.busiest()),
            Traffic::Moe(p) => Some(p.bytes_per_rank()),
        }
    }

    /// The type the source moves its bytes in, where it has one (--moe's dtype).
    pub fn dtype(&self) -> Option<crate::dtype::DataType> {
        match self {
            Traffic::Moe(p) => Some(p.dtype),
            _ => None,
        }
    }

    /// Reads `--matrix FILE`.
    pub fn matrix_file(path: &std::path::Path) -> Result<Traffic, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--matrix {}: cannot read it ({e})", path.display()))?;
        let bytes = PeerBytes::parse(&text).map_err(|e| {
            format!(
                "--matrix {}: {e}; write one row per sending rank, bytes to each receiving rank separated by spaces",
                path.display()
            )
        })?;
        Ok(Traffic::Matrix {
            path: path.to_path_buf(),
            bytes,
            from: MatrixFrom::Flag,
        })
    }

    /// NCCL_TESTS_ALLTOALLV_MATRIX_FILE (with _MATRIX_SCALE), read as nccl-tests reads it.
    pub fn matrix_env(path: &std::path::Path, scale: f64) -> Result<Traffic, String> {
        let name = "NCCL_TESTS_ALLTOALLV_MATRIX_FILE";
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{name}={}: cannot read it ({e})", path.display()))?;
        let bytes = PeerBytes::parse_scaled(&text, scale).map_err(|e| {
            format!(
                "{name}={}: {e}; write one row per sending rank, bytes to each receiving rank separated by spaces",
                path.display()
            )
        })?;
        Ok(Traffic::Matrix {
            path: path.to_path_buf(),
            bytes,
            from: MatrixFrom::Env { scale },
        })
    }

    /// Whether the bytes are fixed by the source, so the sweep measures one size.
    pub fn fixed(&self) -> bool {
        !matches!(self, Traffic::Spread(_) | Traffic::RcclTests)
    }

    /// What the header and the JSON call the source.
    pub fn describe(&self) -> String {
        match self {
            Traffic::Spread(s) => format!("spread {s}"),
            Traffic::RcclTests => "spread rccl-tests".into(),
            Traffic::Matrix {
                path,
                from: MatrixFrom::Env { scale },
                ..
            } => format!(
                "matrix {} (NCCL_TESTS_ALLTOALLV_MATRIX_FILE, scale {scale})",
                path.display()
            ),
            Traffic::Matrix { path, .. } => format!("matrix {}", path.display()),
            Traffic::Moe(p) => p.describe(),
        }
    }

    /// The all_to_allv operations of one row step, for a communicator of `n` ranks at sweep size `size`.
    /// Errors name the flag: a matrix of another size than the communicator, or entries that are not
    /// whole elements of `elt` bytes.
    pub fn phases(&self, size: u64, n: usize, elt: usize) -> Result<Vec<TrafficPhase>, String> {
        let phases = match self {
            Traffic::Spread(s) => vec![TrafficPhase {
                name: None,
                matrix: Arc::new(spread::spread(size, n, *s)),
            }],
            Traffic::RcclTests => vec![TrafficPhase {
                name: None,
                matrix: Arc::new(spread::rccl_tests(size, n, elt)),
            }],
            Traffic::Matrix {
                path,
                bytes,
                from: MatrixFrom::Env { .. },
            } => {
                if bytes.ranks() < n {
                    return Err(format!(
                        "NCCL_TESTS_ALLTOALLV_MATRIX_FILE={}: the matrix is {m}x{m} but the communicator has {n} ranks: write at least {n}x{n} (nccl-tests uses a larger matrix's first {n} rows and columns)",
                        path.display(),
                        m = bytes.ranks()
                    ));
                }
                vec![TrafficPhase {
                    name: None,
                    matrix: Arc::new(bytes.leading(n)),
                }]
            }
            Traffic::Matrix { path, bytes, .. } => {
                if bytes.ranks() != n {
                    return Err(format!(
                        "--matrix {}: the matrix is {m}x{m} but the communicator has {n} ranks: write a {n}x{n} matrix (with --groups, one group's size)",
                        path.display(),
                        m = bytes.ranks()
                    ));
                }
                vec![TrafficPhase {
                    name: None,
                    matrix: Arc::new(bytes.clone()),
                }]
            }
            Traffic::Moe(p) => {
                let routed = p.route(n).map_err(|e| format!("--moe: {e}"))?;
                vec![
                    TrafficPhase {
                        name: Some("dispatch"),
                        matrix: Arc::new(routed.dispatch),
                    },
                    TrafficPhase {
                        name: Some("combine"),
                        matrix: Arc::new(routed.combine),
                    },
                ]
            }
        };
        for p in &phases {
            if let Some((i, j, b)) = p.matrix.misaligned(elt) {
                return Err(format!(
                    "{}: {b} bytes from rank {i} to rank {j} is not a whole number of {elt}-byte elements: use multiples of {elt}, or another -d",
                    self.describe()
                ));
            }
        }
        Ok(phases)
    }
}

/// What a row records about its all_to_allv traffic (the matrix of job rank 0's group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficReport {
    /// "spread 1", "matrix FILE", or the --moe parameters.
    pub source: String,
    /// "dispatch" or "combine" for --moe; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<String>,
    /// The busiest rank's max(sent, received) bytes over the mean of every rank's.
    pub imbalance: f64,
    /// Bytes each rank of the group sends, and receives, in group rank order.
    pub rank_sent_bytes: Vec<u64>,
    pub rank_received_bytes: Vec<u64>,
}

impl TrafficReport {
    pub fn new(traffic: &Traffic, phase: &TrafficPhase) -> TrafficReport {
        let m = &phase.matrix;
        TrafficReport {
            source: traffic.describe(),
            phase: phase.name.map(str::to_string),
            imbalance: m.imbalance(),
            rank_sent_bytes: (0..m.ranks()).map(|r| m.sent(r)).collect(),
            rank_received_bytes: (0..m.ranks()).map(|r| m.received(r)).collect(),
        }
    }
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic::Spread(spread::DEFAULT_SPREAD)
    }
}
