//! The `--json` file: where the document goes and how it is written. A regular file (or a path that
//! does not exist yet) is rewritten atomically after every row, so that a crash leaves a valid file
//! holding what was measured; a symbolic link is followed to its target; anything else (a pipe,
//! /dev/stdout, a device) receives the final document once, at the end.

use super::model::RunDocument;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `-J` writes: collbench's own document, or nccl-tests' (report/nccl_tests/export.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JsonFormat {
    #[default]
    Collbench,
    NcclTests,
}

/// How a `--json` path is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A regular file or a new one: replaced atomically (temporary file beside it, then rename) at every
    /// update. The path is the link's target when the user named a symbolic link.
    Replace(PathBuf),
    /// A FIFO, a character device, a socket (/dev/stdout, /dev/null, /dev/full): opened and written once,
    /// with the final document. Replacing it would put a regular file where the device or pipe was.
    Stream(PathBuf),
}

impl Target {
    /// Classifies `path` as it is now: follows symbolic links (a dangling one names the file to create),
    /// refuses a directory or a missing folder.
    pub fn of(path: &Path) -> Result<Target> {
        let usage = |why: String| Error::Usage(format!("-J/--json {}: {why}", path.display()));
        // metadata follows links the way open(2) does, /proc/self/fd's pipes and terminals included.
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                Err(usage("is a folder: give a file name, e.g. run.json".into()))
            }
            Ok(m) if m.is_file() => std::fs::canonicalize(path)
                .map(Target::Replace)
                .map_err(|e| usage(format!("cannot resolve the path: {e}"))),
            Ok(_) => Ok(Target::Stream(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A new file, or a symbolic link to a file yet to be made: create what it names.
                let resolved = resolve_links(path)
                    .map_err(|e| usage(format!("cannot follow the symbolic link: {e}")))?;
                let parent = match resolved.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if parent.is_dir() {
                    Ok(Target::Replace(resolved))
                } else {
                    Err(usage(format!(
                        "the folder {} does not exist: create it first",
                        parent.display()
                    )))
                }
            }
            Err(e) => Err(usage(format!("cannot look at it: {e}"))),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Target::Replace(p) | Target::Stream(p) => p,
        }
    }
}

/// Follows a chain of symbolic links to the path they finally name, which need not exist yet.
fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

pub struct JsonWriter {
    /// The path as the user gave it, for messages.
    named: PathBuf,
    target: Target,
}

impl JsonWriter {
    pub fn new(path: &Path) -> Result<Self> {
        Ok(JsonWriter {
            named: path.to_path_buf(),
            target: Target::of(path)?,
        })
    }

    /// Whether intermediate documents reach the target (a regular file), or only the final one.
    pub fn rewrites(&self) -> bool {
        matches!(self.target, Target::Replace(_))
    }

    /// A document kept beside a regular target (None for a stream), for a termination signal to rename
    /// over it: see `crate::ffi::signals`.
    pub fn beside(&self, which: Beside) -> Option<PathBuf> {
        match &self.target {
            Target::Replace(path) => Some(beside_path(path, which)),
            Target::Stream(_) => None,
        }
    }

    /// Writes `text` (a document, see `to_text`) as the document kept beside the target.
    pub fn write_beside(&self, which: Beside, text: &[u8]) -> Result<()> {
        let Some(path) = self.beside(which) else {
            return Ok(());
        };
        replace_atomically(&path, text, false)
            .map_err(|(what, e)| Error::io(format!("--json {}: {what}", path.display()), e))
    }

    /// Forgets a document kept beside the target: the run has ended and says how itself.
    pub fn remove_beside(&self, which: Beside) {
        if let Some(path) = self.beside(which) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Writes the document's `text`: every call for a regular file, only the final one (`is_final`) for
    /// a stream.
    pub fn write(&self, text: &[u8], is_final: bool) -> Result<()> {
        self.write_with(text, is_final, true)
    }

    /// Writes the final document without waiting for the disk: for a process that the launcher will
    /// kill a second after asking it to stop (Open MPI's odls_base_sigkill_timeout).
    pub fn write_before_kill(&self, text: &[u8]) -> Result<()> {
        self.write_with(text, true, false)
    }

    fn write_with(&self, text: &[u8], is_final: bool, durable: bool) -> Result<()> {
        let context = |what: &str| format!("--json {}: {what}", self.named.display());
        match &self.target {
            Target::Replace(path) => replace_atomically(path, text, durable)
                .map_err(|(what, e)| Error::io(context(what), e)),
            Target::Stream(path) if is_final => {
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(context("cannot open"), e))?;
                out.write_all(text)
                    .and_then(|_| out.write_all(b"\n"))
                    .and_then(|_| out.flush())
                    .map_err(|e| Error::io(context("cannot write"), e))
            }
            Target::Stream(_) => Ok(()),
        }
    }
}

/// The documents kept beside a regular target, each for a signal to put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beside {
    /// Rank 0's document as a signal would leave it ("interrupted"), rewritten at every save.
    OnSignal,
    /// Written once by another rank that failed: how the run ended. It is never rewritten by rank 0, so
    /// a save of rank 0's racing with it cannot hide the failure.
    FailedElsewhere,
}

/// Where a document kept beside the target lives: hidden, named after the target.
fn beside_path(target: &Path, which: Beside) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    let suffix = match which {
        Beside::OnSignal => "on-signal",
        Beside::FailedElsewhere => "failed",
    };
    target.with_file_name(format!(".{name}.{suffix}"))
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`: readers and crashes
/// see either the old or the new document, never half of one. The temporary name carries the process
/// id, so two processes updating the same document never share one.
fn replace_atomically(
    path: &Path,
    text: &[u8],
    durable: bool,
) -> std::result::Result<(), (&'static str, std::io::Error)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| ("cannot create the file", e))?;
        file.write_all(text).map_err(|e| ("cannot write", e))?;
        if durable {
            file.sync_data().map_err(|e| ("cannot write", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| ("cannot replace the file", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A document as `-J` writes it: pretty JSON.
pub fn to_text(doc: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(doc).map_err(|e| Error::Internal(e.to_string()))
}

/// Any collbench document at `path` (run, pairs, workload), as its type reads it.
pub fn read_as<D: serde::de::DeserializeOwned>(path: &Path) -> Result<D> {
    let text =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not a collbench results file: {e}",
            path.display()
        ))
    })
}

/// Reads a results document written by `--json`.
pub fn read(path: &Path) -> Result<RunDocument> {
    read_as(path)
}

/// The environment variables that change how the libraries behave, and nothing else: not the whole
/// environment, and not the per-process variables mpirun sets for its own plumbing.
pub fn relevant_environment() -> BTreeMap<String, String> {
    std::env::vars().filter(|(k, _)| relevant(k)).collect()
}

/// Whether a variable changes how the libraries behave (what the document's `environment` keeps).
pub fn relevant(name: &str) -> bool {
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
