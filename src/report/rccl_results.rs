//! rccl-tests' own results file (`-Z csv|json -X FILE`), in the columns and spelling its Reporter writes,
//! so scripts written for rccl-tests read ours: one entry per measured placement with numCycle, the
//! collective's rccl-tests name, nodes, ranks, ranksPerNode, gpusPerRank, size, type, redop, inPlace,
//! time, algBw, busBw and wrong; strings quoted and numbers as C++'s std::to_string prints them, in both
//! formats. The CSV file gets its header at once and each row as it is measured; the JSON file (one
//! array) is written when the run ends, as rccl-tests writes both (our -J document has every row
//! meanwhile).

use crate::collective::Collective;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::report::document::{Measurement, Row};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format of rccl-tests' own results file (-Z with -X).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RcclFormat {
    Csv,
    Json,
}

/// The job's shape in rccl-tests' terms, for every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobShape {
    pub nodes: usize,
    pub ranks_per_node: usize,
    pub gpus_per_rank: usize,
}

/// The file -X names, kept open (CSV) or filled in at the end (JSON).
pub struct RcclResults {
    format: RcclFormat,
    path: PathBuf,
    csv: Option<File>,
    /// JSON: each entry's "key":value pairs, written as one array by `finish`.
    entries: Vec<String>,
}

/// rccl-tests' name of a collective (its testColl names).
pub fn test_name(c: Collective) -> &'static str {
    match c {
        Collective::AllReduce => "AllReduce",
        Collective::AllGather => "AllGather",
        Collective::ReduceScatter => "ReduceScatter",
        Collective::Broadcast => "Broadcast",
        Collective::Reduce => "Reduce",
        Collective::AllToAll => "AlltoAll",
        Collective::AllToAllv => "AlltoAllv",
        Collective::SendRecv => "SendRecv",
        Collective::Gather => "Gather",
        Collective::Scatter => "Scatter",
        Collective::Hypercube => "HyperCube",
    }
}

/// rccl-tests' name of a type (FP8 is fp8_e4m3 / fp8_e5m2 there).
fn type_name(d: DataType) -> &'static str {
    match d {
        DataType::F8e4m3 => "fp8_e4m3",
        DataType::F8e5m2 => "fp8_e5m2",
        other => other.name(),
    }
}

/// A floating-point value as std::to_string prints it ("%f").
fn decimal(v: f64) -> String {
    format!("{v:.6}")
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// (value, key) pairs of one measured placement, in rccl-tests' order.
fn entry(
    row: &Row,
    in_place: bool,
    m: &Measurement,
    shape: JobShape,
) -> Vec<(String, &'static str)> {
    vec![
        (row.cycle.to_string(), "numCycle"),
        (quoted(test_name(row.collective)), "name"),
        (shape.nodes.to_string(), "nodes"),
        (row.ranks.to_string(), "ranks"),
        (shape.ranks_per_node.to_string(), "ranksPerNode"),
        (shape.gpus_per_rank.to_string(), "gpusPerRank"),
        (row.size_bytes.to_string(), "size"),
        (quoted(type_name(row.dtype)), "type"),
        (quoted(row.op.map_or("none", |o| o.name())), "redop"),
        (u8::from(in_place).to_string(), "inPlace"),
        (decimal(m.time_us), "time"),
        (decimal(m.algbw_gbps), "algBw"),
        (decimal(m.busbw_gbps), "busBw"),
        (
            quoted(&m.wrong.map_or_else(|| "N/A".to_string(), |w| w.to_string())),
            "wrong",
        ),
    ]
}

/// The CSV header rccl-tests writes (its MPI build's, as collbench runs under a launcher).
pub const CSV_HEADER: &str =
    "numCycle,collective,nodes,ranks,ranksPerNode,gpusPerRank,size,type,redop,inplace,time,algbw,busbw,#wrong";

impl RcclResults {
    pub fn create(format: RcclFormat, path: &Path) -> Result<RcclResults> {
        let io = |e: std::io::Error| Error::Io {
            context: format!("-X {}", path.display()),
            source: e,
        };
        let csv = match format {
            RcclFormat::Csv => {
                let mut f = File::create(path).map_err(io)?;
                writeln!(f, "{CSV_HEADER}").map_err(io)?;
                Some(f)
            }
            // Made now, so a path that cannot be written fails before the first row.
            RcclFormat::Json => {
                File::create(path).map_err(io)?;
                None
            }
        };
        Ok(RcclResults {
            format,
            path: path.to_path_buf(),
            csv,
            entries: Vec::new(),
        })
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            context: format!("-X {}", self.path.display()),
            source: e,
        }
    }

    /// The entries of one row, one per measured placement.
    pub fn row(&mut self, row: &Row, shape: JobShape) -> Result<()> {
        for (in_place, m) in [(false, &row.out_of_place), (true, &row.in_place)] {
            let Some(m) = m else { continue };
            let pairs = entry(row, in_place, m, shape);
            match self.format {
                RcclFormat::Csv => {
                    let line: Vec<&str> = pairs.iter().map(|(v, _)| v.as_str()).collect();
                    let text = format!("{}\n", line.join(","));
                    let file = self.csv.as_mut().expect("a CSV file is open");
                    let written = file.write_all(text.as_bytes()).and_then(|_| file.flush());
                    written.map_err(|e| self.io(e))?;
                }
                RcclFormat::Json => {
                    let fields: Vec<String> =
                        pairs.iter().map(|(v, k)| format!("\"{k}\":{v}")).collect();
                    self.entries.push(format!("{{{}}}", fields.join(", ")));
                }
            }
        }
        Ok(())
    }

    /// Writes the JSON array (nothing to do for CSV, written as it went).
    pub fn finish(&mut self) -> Result<()> {
        if self.format == RcclFormat::Json {
            let text = format!("[\n{}\n]\n", self.entries.join(",\n"));
            // Beside it, then renamed: a reader sees the old file or the whole new one.
            let mut partial = self.path.clone().into_os_string();
            partial.push(".partial");
            std::fs::write(&partial, text)
                .and_then(|_| std::fs::rename(&partial, &self.path))
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

impl JobShape {
    /// The shape of a job whose ranks run on `hosts` (one name per rank), each driving `gpus_per_rank`.
    pub fn of(hosts: &[&str], gpus_per_rank: usize) -> JobShape {
        let mut per_host = std::collections::BTreeMap::<&str, usize>::new();
        for h in hosts {
            *per_host.entry(h).or_default() += 1;
        }
        JobShape {
            nodes: per_host.len().max(1),
            ranks_per_node: per_host.values().copied().max().unwrap_or(1),
            gpus_per_rank,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    fn shape() -> JobShape {
        JobShape::of(&["a", "a", "b", "b"], 1)
    }

    #[test]
    fn csv_has_rccl_tests_header_and_one_line_per_placement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut out = RcclResults::create(RcclFormat::Csv, &path).unwrap();
        let mut row = testdata::row(crate::collective::Collective::AllReduce, 1 << 20, 4, 10.0);
        row.cycle = 2;
        out.row(&row, shape()).unwrap();
        out.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 3, "{text}");
        let fields: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(fields.len(), CSV_HEADER.split(',').count());
        assert_eq!(
            &fields[..10],
            [
                "2",
                "\"AllReduce\"",
                "2",
                "4",
                "2",
                "1",
                "1048576",
                "\"float\"",
                "\"sum\"",
                "0"
            ]
        );
        assert_eq!(lines[2].split(',').nth(9), Some("1"), "the in-place entry");
        // Numbers as std::to_string prints a double.
        assert!(fields[10].contains('.') && fields[10].split('.').nth(1).unwrap().len() == 6);
    }

    #[test]
    fn json_is_rccl_tests_array_written_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let mut out = RcclResults::create(RcclFormat::Json, &path).unwrap();
        let mut row = testdata::row(crate::collective::Collective::AllGather, 4096, 4, 3.0);
        row.op = None;
        row.in_place.as_mut().unwrap().wrong = None;
        out.row(&row, shape()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "nothing before the end"
        );
        out.finish().unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let entries = doc.as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let keys: Vec<&str> = entries[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "numCycle",
            "name",
            "nodes",
            "ranks",
            "ranksPerNode",
            "gpusPerRank",
            "size",
            "type",
            "redop",
            "inPlace",
            "time",
            "algBw",
            "busBw",
            "wrong",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert_eq!(entries[0]["name"], "AllGather");
        assert_eq!(entries[0]["redop"], "none");
        assert_eq!(entries[1]["inPlace"], 1);
        assert_eq!(entries[1]["wrong"], "N/A");
    }

    #[test]
    fn rccl_tests_spells_alltoall_and_fp8_its_own_way() {
        assert_eq!(test_name(Collective::AllToAll), "AlltoAll");
        assert_eq!(test_name(Collective::AllToAllv), "AlltoAllv");
        assert_eq!(type_name(DataType::F8e4m3), "fp8_e4m3");
        assert_eq!(type_name(DataType::Bfloat16), "bfloat16");
    }
}
