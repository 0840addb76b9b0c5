//! The `--json` file: the whole run document, rewritten atomically after every row so that a crash
//! leaves a valid file holding what was measured.

use super::model::RunDocument;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct JsonWriter {
    path: PathBuf,
}

impl JsonWriter {
    pub fn new(path: &Path) -> Self {
        JsonWriter {
            path: path.to_path_buf(),
        }
    }

    /// Writes the document to a temporary file beside the target, then renames it over the target:
    /// readers and crashes see either the old or the new document, never half of one.
    pub fn write(&self, doc: &RunDocument) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let context = |what: &str| format!("--json {}: {what}", self.path.display());
        let mut file = std::fs::File::create(&tmp)
            .map_err(|e| Error::io(context("cannot create the file"), e))?;
        let text = serde_json::to_vec_pretty(doc).map_err(|e| Error::Internal(e.to_string()))?;
        file.write_all(&text)
            .map_err(|e| Error::io(context("cannot write"), e))?;
        file.sync_data()
            .map_err(|e| Error::io(context("cannot write"), e))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| Error::io(context("cannot replace the file"), e))
    }
}

/// Reads a results document written by `--json`.
pub fn read(path: &Path) -> Result<RunDocument> {
    let text =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not a collbench results file: {e}",
            path.display()
        ))
    })
}

/// The environment variables that change how the libraries behave, and nothing else: not the whole
/// environment, and not the per-process variables mpirun sets for its own plumbing.
pub fn relevant_environment() -> BTreeMap<String, String> {
    std::env::vars().filter(|(k, _)| relevant(k)).collect()
}

fn relevant(name: &str) -> bool {
    const PREFIXES: [&str; 6] = ["NCCL_", "RCCL_", "UCX_", "HSA_", "COLLBENCH_", "OMPI_MCA_"];
    const NAMES: [&str; 3] = [
        "CUDA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
    ];
    // Open MPI's launcher hands each process its job plumbing as OMPI_MCA_* too.
    const OMPI_PLUMBING: [&str; 7] = [
        "OMPI_MCA_orte_",
        "OMPI_MCA_ess",
        "OMPI_MCA_pmix",
        "OMPI_MCA_initial_wdir",
        "OMPI_MCA_shmem_RUNTIME_QUERY_hint",
        "OMPI_MCA_mpi_oversubscribe",
        "OMPI_MCA_rmaps_",
    ];
    (PREFIXES.iter().any(|p| name.starts_with(p))
        && !OMPI_PLUMBING.iter().any(|p| name.starts_with(p)))
        || NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::relevant;

    #[test]
    fn keeps_library_settings_and_drops_launcher_plumbing() {
        for name in [
            "NCCL_DEBUG",
            "NCCL_IB_HCA",
            "OMPI_MCA_btl",
            "OMPI_MCA_pml",
            "UCX_TLS",
            "CUDA_VISIBLE_DEVICES",
        ] {
            assert!(relevant(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "OMPI_COMM_WORLD_RANK",
            "OMPI_MCA_orte_hnp_uri",
            "OMPI_MCA_ess_base_vpid",
            "OMPI_MCA_pmix",
        ] {
            assert!(!relevant(name), "{name}");
        }
    }
}
