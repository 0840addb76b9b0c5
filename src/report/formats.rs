//! A results file as `compare` and `plot` read it, whichever program wrote it: collbench's document
//! (`-J`), the same written as nccl-tests' (`--json-format nccl-tests`), nccl-tests' own `-J` document,
//! or nccl-tests' stdout saved in a log. Told apart by content, not by name, so a team's history of
//! nccl-tests runs compares with a new collbench run.

use super::document::RunDocument;
use super::nccl_tests::{self, document, export::NcclTestsFile};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// Which program wrote a file, and in which of its formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Collbench,
    /// Written by collbench with `--json-format nccl-tests`: read whole from its `collbench` key.
    CollbenchAsNcclTests,
    /// nccl-tests' `-J` document, of this file version.
    NcclTestsJson(u32),
    /// nccl-tests' stdout.
    NcclTestsLog,
}

impl Format {
    pub fn describe(self) -> String {
        match self {
            Format::Collbench => "a collbench results document".into(),
            Format::CollbenchAsNcclTests => {
                "a collbench run written in nccl-tests' JSON format".into()
            }
            Format::NcclTestsJson(v) => format!("nccl-tests' JSON document (file version {v})"),
            Format::NcclTestsLog => "nccl-tests' stdout log".into(),
        }
    }

    /// Whether the file came from nccl-tests itself (its notes say what the reading made of it).
    pub fn from_nccl_tests(self) -> bool {
        matches!(self, Format::NcclTestsJson(_) | Format::NcclTestsLog)
    }
}

/// A results file read, whatever its format.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub doc: RunDocument,
    pub format: Format,
    /// The peak busbw the file records (collbench's own documents only).
    pub peak_gbps: Option<f64>,
}

/// The peak bus bandwidth recorded in a collbench document, looked for where the writers put it:
/// `peak_gbps` at the top level, in `summary`, in `topology`, or `plan.requested.peak_gbps` (from
/// `--peak`). Tolerant on purpose: files written before the field existed simply have none.
pub fn peak_gbps_in(value: &serde_json::Value) -> Option<f64> {
    let candidates = [
        value.get("peak_gbps"),
        value.get("summary").and_then(|s| s.get("peak_gbps")),
        value.get("topology").and_then(|t| t.get("peak_gbps")),
        value
            .get("plan")
            .and_then(|p| p.get("requested"))
            .and_then(|r| r.get("peak_gbps")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_f64())
        .find(|p| p.is_finite() && *p > 0.0)
}

/// Whether `text` begins as nccl-tests' JSON document does (it opens with its version).
fn looks_like_nccl_tests_json(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{') && t[1..].trim_start().starts_with("\"version\"")
}

/// Reads `path` in any of the formats above; a file in none of them is a usage error naming them.
pub fn read(path: &Path) -> Result<Loaded> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let text = String::from_utf8_lossy(&bytes);
    let shown = path.display().to_string();
    let refuse = |why: String| {
        Error::Usage(format!(
            "{shown} is not a results file collbench reads ({why}): give a collbench -J document, nccl-tests' -J document, or nccl-tests' stdout saved in a log"
        ))
    };
    let fallback = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) if value.get("schema_version").is_some() => {
            let doc = RunDocument::deserialize(&value)
                .map_err(|e| refuse(format!("a collbench document that does not parse: {e}")))?;
            Ok(Loaded {
                peak_gbps: peak_gbps_in(&value),
                doc,
                format: Format::Collbench,
            })
        }
        Ok(value) if value.get("collbench").is_some() => {
            let file = NcclTestsFile::deserialize(&value)
                .map_err(|e| refuse(format!("its `collbench` part does not parse: {e}")))?;
            Ok(Loaded {
                peak_gbps: value.get("collbench").and_then(peak_gbps_in),
                doc: file.0,
                format: Format::CollbenchAsNcclTests,
            })
        }
        Ok(_) | Err(_) if looks_like_nccl_tests_json(&text) => {
            let (doc, repairs) = document::parse(&text).map_err(refuse)?;
            let version = doc.version;
            let section = nccl_tests::from_document(doc, &repairs);
            let what = format!("{shown}, {}", Format::NcclTestsJson(version).describe());
            let run =
                nccl_tests::into_run_document(&[section], &what, &fallback).map_err(refuse)?;
            Ok(Loaded {
                doc: run,
                format: Format::NcclTestsJson(version),
                peak_gbps: None,
            })
        }
        Ok(_) => Err(refuse(
            "JSON, but neither collbench's (no schema_version) nor nccl-tests' (no version first)"
                .into(),
        )),
        Err(_) => {
            let sections = nccl_tests::text::parse(&text);
            let what = format!("{shown}, {}", Format::NcclTestsLog.describe());
            let run = nccl_tests::into_run_document(&sections, &what, &fallback)
                .map_err(|_| refuse("not JSON, and no nccl-tests table in it".into()))?;
            Ok(Loaded {
                doc: run,
                format: Format::NcclTestsLog,
                peak_gbps: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_peak_where_writers_put_it() {
        assert_eq!(peak_gbps_in(&json!({"peak_gbps": 450.0})), Some(450.0));
        assert_eq!(
            peak_gbps_in(&json!({"summary": {"peak_gbps": 90}})),
            Some(90.0)
        );
        assert_eq!(
            peak_gbps_in(&json!({"topology": {"peak_gbps": 12.5}})),
            Some(12.5)
        );
        assert_eq!(peak_gbps_in(&json!({"peak_gbps": null})), None);
        assert_eq!(peak_gbps_in(&json!({"peak_gbps": -1})), None);
        assert_eq!(peak_gbps_in(&json!({})), None);
    }
}
