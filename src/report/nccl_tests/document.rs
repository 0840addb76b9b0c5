//! nccl-tests' `-J` JSON document, field for field as its src/util.cu writes it (file versions 1 to 3;
//! version 3 adds `per_iter_timing`, `per_iter_skip` and the `*_per_iter` objects of `-I 1`), and the
//! repairs its writer makes necessary: it prints `inf` bare (not JSON), and a run that dies leaves the
//! document unclosed.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The file version nccl-tests 2.19.6 writes (`JSON_FILE_VERSION`), and what our writer claims.
pub const FILE_VERSION: u32 = 3;

/// The oldest and newest file versions this reader knows: 1 (2.18) to 3 (2.19.6), the same fields
/// but for the per-iteration ones of 3.
pub const KNOWN_VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;

/// The whole document, keys in the order nccl-tests writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub version: u32,
    /// Local time, "%Y-%m-%d %H:%M:%S".
    #[serde(default)]
    pub start_time: Option<String>,
    /// The command line, argv[0] (the test's binary, e.g. ./build/all_reduce_perf) first.
    #[serde(default)]
    pub args: Vec<String>,
    /// "NAME=value" strings (nccl-tests writes the whole environment).
    #[serde(default)]
    pub env: Vec<String>,
    /// ncclGetVersion's code: major*10000 + minor*100 + patch since 2.9.
    #[serde(default)]
    pub nccl_version: Option<i64>,
    #[serde(default)]
    pub config: Option<Config>,
    #[serde(default)]
    pub results: Vec<Result>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<OutOfBounds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_bus_bandwidth: Option<AverageBusBandwidth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Not nccl-tests': the collbench run this document was written from (its status, error and every
    /// field of our own document), so that collbench reads back all of it. nccl-tests' tools ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collbench: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub nthreads: i64,
    pub ngpus: i64,
    pub minimum_bytes: u64,
    pub maximum_bytes: u64,
    /// Written instead of `step_bytes` when -f is above 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_factor: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_bytes: Option<u64>,
    pub warmup_iters: i64,
    pub iterations: i64,
    pub aggregated_iterations: i64,
    /// -c.
    pub validation: i64,
    /// -G.
    pub graph: i64,
    #[serde(with = "text_bool")]
    pub blocking_collectives: bool,
    /// -I (version 3).
    #[serde(
        default,
        with = "text_bool_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_iter_timing: Option<bool>,
    /// -K (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_iter_skip: Option<i64>,
    #[serde(with = "text_bool")]
    pub parallel_init: bool,
    /// One entry per process: the first of its ranks (nccl-tests parses only the first device line
    /// each process sends).
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub rank: i64,
    /// The NCCL_TESTS_SPLIT color.
    pub group: i64,
    pub pid: i64,
    pub hostname: String,
    pub device: i64,
    /// PCI domain, bus and device: "0000:18:00".
    pub device_hex: String,
    /// The device's name.
    pub device_info: String,
}

/// One line of the table: a size, type, operator and root, in both placements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Result {
    /// max(send bytes, receive bytes): the `size` column.
    pub size: u64,
    pub count: u64,
    #[serde(rename = "type")]
    pub dtype: String,
    /// "sum", ..., "none" for collectives that do not reduce, "" for the hypercube test.
    pub redop: String,
    /// Printed with "%6i": "     0", "    -1".
    pub root: String,
    /// Null where a test times only in place.
    #[serde(default)]
    pub out_of_place: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_place_per_iter: Option<PerIteration>,
    #[serde(default)]
    pub in_place: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_per_iter: Option<PerIteration>,
    /// Absent in a document cut short inside this result.
    #[serde(default)]
    pub actual_iterations: Option<i64>,
    #[serde(default)]
    pub experiment_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Microseconds per operation; `cpu_time` instead with -C 1.
    #[serde(default, with = "lenient_opt", skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    #[serde(default, with = "lenient_opt", skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<f64>,
    #[serde(with = "lenient")]
    pub alg_bw: f64,
    #[serde(with = "lenient")]
    pub bus_bw: f64,
    /// Wrong elements over every rank; null without the check.
    #[serde(default, with = "lenient_opt")]
    pub nwrong: Option<f64>,
}

/// `-I 1`: the per-iteration times of one placement (CUDA events in nccl-tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerIteration {
    /// Leading iterations left out of the statistics (-K); `times_us` still holds them.
    pub skipped_iterations: i64,
    #[serde(with = "lenient")]
    pub min_us: f64,
    #[serde(with = "lenient")]
    pub max_us: f64,
    #[serde(with = "lenient")]
    pub avg_us: f64,
    #[serde(with = "lenient")]
    pub p50_us: f64,
    #[serde(with = "lenient")]
    pub p95_us: f64,
    #[serde(with = "lenient")]
    pub p99_us: f64,
    #[serde(with = "lenient")]
    pub stdev_us: f64,
    #[serde(with = "lenient")]
    pub cv_pct: f64,
    /// Every iteration, the slowest process at each.
    #[serde(default)]
    pub times_us: Vec<f64>,
    /// One list per process (the slowest of its GPUs at each iteration); only with several processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_process_max_times_us: Option<Vec<Vec<f64>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutOfBounds {
    pub count: i64,
    #[serde(with = "text_bool")]
    pub okay: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AverageBusBandwidth {
    #[serde(with = "lenient")]
    pub bandwidth: f64,
    /// "unchecked" without NCCL_TESTS_MIN_BW, else "true" or "false".
    pub okay: String,
}

/// nccl-tests writes booleans as the strings "true" and "false"; read either form.
mod text_bool {
    use super::*;

    pub fn serialize<S: Serializer>(value: &bool, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(if *value { "true" } else { "false" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(b),
            serde_json::Value::String(s) => Ok(s == "true"),
            serde_json::Value::Number(n) => Ok(n.as_f64().is_some_and(|v| v != 0.0)),
            other => Err(serde::de::Error::custom(format!(
                "expected \"true\" or \"false\", found {other}"
            ))),
        }
    }
}

mod text_bool_opt {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<bool>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match value {
            Some(v) => text_bool::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<bool>, D::Error> {
        text_bool::deserialize(d).map(Some)
    }
}

/// A double as nccl-tests writes it: a number, "nan" (quoted, for NaN) or, once repaired, null.
mod lenient {
    use super::*;

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if value.is_nan() {
            s.serialize_str("nan")
        } else {
            s.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
        lenient_opt::deserialize(d).map(|v| v.unwrap_or(f64::NAN))
    }
}

mod lenient_opt {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<f64>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match value {
            Some(v) => lenient::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<f64>, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => Ok(n.as_f64()),
            serde_json::Value::String(s) => match s.trim() {
                "nan" | "-nan" => Ok(Some(f64::NAN)),
                "inf" => Ok(Some(f64::INFINITY)),
                "-inf" => Ok(Some(f64::NEG_INFINITY)),
                other => other.parse::<f64>().map(Some).map_err(|_| {
                    serde::de::Error::custom(format!("expected a number, found \"{other}\""))
                }),
            },
            other => Err(serde::de::Error::custom(format!(
                "expected a number, found {other}"
            ))),
        }
    }
}

/// What `repair` had to do to make the text JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Bare `inf`, `-inf` or `nan` words (C's "%lf" of an infinite value) turned into null.
    pub bare_words: usize,
    /// The document ended inside an open object or list (a run that died): cut after its last
    /// complete value and closed.
    pub truncated: bool,
}

/// Makes nccl-tests' text parse as JSON: bare non-finite numbers become null, and an unclosed document
/// (its writer closes it only at the end of the run) is cut after its last complete value and closed.
pub fn repair(text: &str) -> (String, Repairs) {
    let mut out = String::with_capacity(text.len() + 8);
    let mut repairs = Repairs::default();
    // Open brackets, and where the text was last a valid prefix: after a complete value closed, with
    // the brackets then open.
    let mut open: Vec<char> = Vec::new();
    let mut last_complete: Option<(usize, usize)> = None;
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    while let Some((at, c)) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                open.push(c);
                out.push(c);
            }
            '}' | ']' => {
                open.pop();
                out.push(c);
                last_complete = Some((out.len(), open.len()));
            }
            '-' | 'i' | 'n' if bare_word_at(&text[at..]).is_some() => {
                let word = bare_word_at(&text[at..]).unwrap_or_default();
                for _ in 1..word.len() {
                    chars.next();
                }
                out.push_str("null");
                repairs.bare_words += 1;
            }
            _ => out.push(c),
        }
    }
    if !open.is_empty() || in_string {
        repairs.truncated = true;
        if let Some((len, depth)) = last_complete {
            out.truncate(len);
            open.truncate(depth);
        } else {
            out.clear();
            open.clear();
        }
        while let Some(bracket) = open.pop() {
            out.push(if bracket == '{' { '}' } else { ']' });
        }
    }
    (out, repairs)
}

/// `inf`, `-inf`, `nan` or `-nan` standing alone at the start of `text` (not part of a longer word:
/// `null` and `true` are left alone).
fn bare_word_at(text: &str) -> Option<&'static str> {
    ["-inf", "-nan", "inf", "nan"].into_iter().find(|w| {
        text.starts_with(w)
            && !text[w.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Parses nccl-tests' document text, repaired where it has to be.
pub fn parse(text: &str) -> std::result::Result<(Document, Repairs), String> {
    let (fixed, repairs) = repair(text);
    let doc: Document = serde_json::from_str(&fixed).map_err(|e| e.to_string())?;
    if !KNOWN_VERSIONS.contains(&doc.version) {
        return Err(format!(
            "file version {} is not one this collbench reads ({} to {}, as nccl-tests 2.18 to 2.19.6 write)",
            doc.version,
            KNOWN_VERSIONS.start(),
            KNOWN_VERSIONS.end()
        ));
    }
    Ok((doc, repairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document as nccl-tests 2.19.6 prints it: no spaces, strings for booleans, "%lf" doubles.
    const WRITTEN: &str = r#"{"version":3,"start_time":"2026-01-02 03:04:05","args":["./build/all_reduce_perf","-b","8","-e","16","-f","2","-J","out.json"],"env":["PATH=\/usr\/bin"],"nccl_version":22703,"config":{"nthreads":1,"ngpus":1,"minimum_bytes":8,"maximum_bytes":16,"step_factor":2,"warmup_iters":1,"iterations":20,"aggregated_iterations":1,"validation":1,"graph":0,"blocking_collectives":"false","per_iter_timing":"false","per_iter_skip":0,"parallel_init":"false","devices":[{"rank":0,"group":0,"pid":4242,"hostname":"node1","device":0,"device_hex":"0000:18:00","device_info":"NVIDIA H200"}]},"results":[{"size":8,"count":2,"type":"float","redop":"sum","root":"    -1","out_of_place":{"time":10.500000,"alg_bw":0.000762,"bus_bw":0.001334,"nwrong":0.000000},"in_place":{"time":10.250000,"alg_bw":0.000780,"bus_bw":0.001366,"nwrong":0.000000},"actual_iterations":20,"experiment_name":""}],"out_of_bounds":{"count":0,"okay":"true"},"average_bus_bandwidth":{"bandwidth":0.001350,"okay":"unchecked"},"errors":[""],"end_time":"2026-01-02 03:04:06"}"#;

    #[test]
    fn reads_what_nccl_tests_writes() {
        let (doc, repairs) = parse(WRITTEN).unwrap();
        assert_eq!(repairs, Repairs::default());
        assert_eq!(doc.version, 3);
        assert_eq!(doc.args[0], "./build/all_reduce_perf");
        assert_eq!(doc.env, ["PATH=/usr/bin"]);
        let config = doc.config.as_ref().unwrap();
        assert_eq!(config.step_factor, Some(2));
        assert!(!config.blocking_collectives);
        assert_eq!(config.per_iter_timing, Some(false));
        assert_eq!(config.devices[0].hostname, "node1");
        let r = &doc.results[0];
        assert_eq!((r.size, r.count, r.root.trim()), (8, 2, "-1"));
        assert_eq!(r.out_of_place.as_ref().unwrap().time, Some(10.5));
        assert_eq!(r.in_place.as_ref().unwrap().nwrong, Some(0.0));
        assert_eq!(doc.out_of_bounds.as_ref().unwrap().count, 0);
        assert_eq!(doc.errors.as_deref(), Some(&["".to_string()][..]));
    }

    #[test]
    fn version_1_has_no_per_iteration_fields_and_unknown_versions_are_refused() {
        let v1 = WRITTEN
            .replace(r#""version":3"#, r#""version":1"#)
            .replace(r#""per_iter_timing":"false","per_iter_skip":0,"#, "");
        let (doc, _) = parse(&v1).unwrap();
        assert_eq!(doc.config.unwrap().per_iter_timing, None);
        let v9 = WRITTEN.replace(r#""version":3"#, r#""version":9"#);
        assert!(parse(&v9).unwrap_err().contains("file version 9"));
    }

    #[test]
    fn bare_infinities_become_null_and_quoted_nan_reads_as_nan() {
        let text = WRITTEN
            .replace(r#""alg_bw":0.000762"#, r#""alg_bw":inf"#)
            .replace(r#""bus_bw":0.001334"#, r#""bus_bw":"nan""#);
        let (doc, repairs) = parse(&text).unwrap();
        assert_eq!(repairs.bare_words, 1);
        let oop = doc.results[0].out_of_place.as_ref().unwrap();
        assert!(oop.alg_bw.is_nan() && oop.bus_bw.is_nan());
        // Words inside strings and JSON's own words are left alone.
        let (fixed, r) = repair(r#"{"a":"inf nan","b":null,"c":true,"d":-inf}"#);
        assert_eq!(fixed, r#"{"a":"inf nan","b":null,"c":true,"d":null}"#);
        assert_eq!(r.bare_words, 1);
    }

    #[test]
    fn a_document_cut_short_keeps_its_complete_results() {
        // The run died while writing its second result: the first stays, the second goes as far as
        // its last complete value.
        let cut = r#"{"version":3,"results":[{"size":8,"count":2,"type":"float","redop":"sum","root":"    -1","out_of_place":{"time":1.0,"alg_bw":0.0,"bus_bw":0.0,"nwrong":0.0},"in_place":{"time":1.0,"alg_bw":0.0,"bus_bw":0.0,"nwrong":0.0},"actual_iterations":20,"experiment_name":""},{"size":16,"count":4,"type":"float","redop":"sum","root":"    -1","out_of_place":{"time":2.0,"alg_bw":0.0,"bus_bw":0.0,"nwrong":0.0},"in_place":{"time":2.0,"al"#;
        let (doc, repairs) = parse(cut).unwrap();
        assert!(repairs.truncated);
        assert_eq!(doc.results.len(), 2);
        assert!(doc.results[1].out_of_place.is_some());
        assert!(doc.results[1].in_place.is_none());
        assert_eq!(doc.results[1].actual_iterations, None);
        assert!(doc.out_of_bounds.is_none());
    }

    #[test]
    fn written_booleans_and_nan_follow_nccl_tests() {
        let p = Placement {
            time: Some(1.5),
            cpu_time: None,
            alg_bw: f64::NAN,
            bus_bw: 2.0,
            nwrong: None,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"time":1.5,"alg_bw":"nan","bus_bw":2.0,"nwrong":null}"#
        );
        let b = OutOfBounds {
            count: 0,
            okay: true,
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"count":0,"okay":"true"}"#
        );
    }
}
