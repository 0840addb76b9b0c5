//! The `--json` file: where the document goes and how it is written. A regular file (or a path that
//! does not exist yet) gets after every row what the row added, in a way that always leaves a whole,
//! valid document holding what was measured (src/report/json_file/); a symbolic link is followed to
//! its target; anything else (a pipe, /dev/stdout, a device) receives the final document once, at the
//! end.

use super::document::{RunDocument, RunLife, RunStatus};
use super::growing::{self, Cut, Growing};
pub use super::json_file::When;
use super::json_file::{self, JsonFile};
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
    /// A regular file or a new one: two copies that take turns, each save putting a whole one in place by
    /// rename (json_file/). The path is the link's target when the user named a symbolic link.
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
    /// A regular file: its copies (see `json_file`).
    file: Option<JsonFile>,
    /// A stream: the texts of the document so far, written once at the end.
    stream: Option<StreamTexts>,
}

/// What a stream target will receive, kept as text so that a signal can still write it.
struct StreamTexts {
    head: Vec<u8>,
    items: Vec<u8>,
    settled: usize,
    cut: Cut,
    written: bool,
}

impl JsonWriter {
    pub fn new(path: &Path) -> Result<Self> {
        let target = Target::of(path)?;
        let file = match &target {
            Target::Replace(p) => Some(JsonFile::new(p)),
            Target::Stream(_) => None,
        };
        Ok(JsonWriter {
            named: path.to_path_buf(),
            target,
            file,
            stream: None,
        })
    }

    /// Where another rank leaves its failure beside a regular target (None for a stream).
    pub fn failed_mark(&self) -> Option<PathBuf> {
        match &self.target {
            Target::Replace(path) => Some(json_file::failed_mark(path)),
            Target::Stream(_) => None,
        }
    }

    /// Removes what an earlier run at the same path left beside it.
    pub fn clear_leftovers(&self) {
        if let Some(file) = &self.file {
            file.clear_leftovers();
        }
    }

    /// Bytes written to the document's files so far (a regular target).
    pub fn written(&self) -> u64 {
        self.file.as_ref().map_or(0, JsonFile::written)
    }

    /// Saves `doc`: to a regular file what it added since the last save and its last fields, to a stream
    /// nothing until it says how the run ended. `on_signal`: the life a signal would leave now (None once
    /// the run has ended). `when`: whether the save may wait for the spare copy (json_file/).
    /// `durable`: wait for the disk.
    pub fn save<D: Growing>(
        &mut self,
        doc: &mut D,
        on_signal: Option<RunLife>,
        when: When,
        durable: bool,
    ) -> Result<()> {
        let ended = doc.life().status != RunStatus::Running;
        if let Some(file) = &mut self.file {
            file.save(doc, on_signal, when, durable)?;
            if ended {
                file.finish();
            }
            return Ok(());
        }
        let cut = growing::cut(doc)?;
        let texts = self.stream.get_or_insert_with(|| StreamTexts {
            head: Vec::new(),
            items: Vec::new(),
            settled: 0,
            cut: cut.clone(),
            written: false,
        });
        if texts.head != cut.head || cut.settled < texts.settled {
            texts.head = cut.head.clone();
            texts.items.clear();
            texts.settled = 0;
        }
        for (i, item) in doc
            .items()
            .iter()
            .enumerate()
            .take(cut.settled)
            .skip(texts.settled)
        {
            texts.items.extend_from_slice(growing::item_separator(i));
            texts.items.extend_from_slice(&growing::item_text(item)?);
        }
        texts.settled = cut.settled;
        texts.cut = cut;
        if ended {
            self.write_stream(doc.life())?;
        }
        Ok(())
    }

    /// Saves a new life (a heartbeat, a failure, a signal) with what the last save had.
    pub fn save_life(
        &mut self,
        life: &RunLife,
        on_signal: Option<RunLife>,
        when: When,
        durable: bool,
    ) -> Result<()> {
        let ended = life.status != RunStatus::Running;
        if let Some(file) = &mut self.file {
            file.save_life(life, on_signal, when, durable)?;
            if ended {
                file.finish();
            }
            return Ok(());
        }
        if ended {
            self.write_stream(life)?;
        }
        Ok(())
    }

    /// Writes a save that waited for the spare copy, when it may be written now.
    pub fn flush(&mut self) -> Result<()> {
        self.file.as_mut().map_or(Ok(()), JsonFile::flush)
    }

    /// How long until a save that waits can be written; None when none waits.
    pub fn due(&self) -> Option<std::time::Duration> {
        self.file.as_ref().and_then(JsonFile::due)
    }

    /// The whole document to the stream, once.
    fn write_stream(&mut self, life: &RunLife) -> Result<()> {
        let Target::Stream(path) = &self.target else {
            return Ok(());
        };
        let Some(texts) = self.stream.as_mut().filter(|t| !t.written) else {
            return Ok(());
        };
        texts.written = true;
        let context = |what: &str| format!("--json {}: {what}", self.named.display());
        let rest = texts.cut.rest(life)?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(context("cannot open"), e))?;
        out.write_all(&texts.head)
            .and_then(|_| out.write_all(&texts.items))
            .and_then(|_| out.write_all(&rest))
            .and_then(|_| out.flush())
            .map_err(|e| Error::io(context("cannot write"), e))
    }
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
