//! nccl-tests' stdout, as a team keeps it in its logs: the header (version, test, parameters, one line
//! per rank), the column heading (one, two or three lines: placements, names, units), the rows and the
//! footer, as src/util.cu prints them. Columns are found by their names, so older versions (no `root`,
//! `error` for `#wrong`), `-C 1` (cputime), `-I 1` (i_min i_max i_p99 i_cv%) and `-S 1` (timestamps)
//! read alike. Several tests in one log are several sections. Lines of
//! other programs (NCCL's INFO lines, mpirun's) are skipped; `mpirun --tag-output` prefixes are removed.

use super::{RankLine, Section, Timing};

/// The columns one placement prints, by name, in the order of the heading.
#[derive(Debug, Clone, Default, PartialEq)]
struct Group {
    names: Vec<String>,
}

impl Group {
    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// The heading of a table: the columns before the placements, each placement's, and whether a
/// timestamp ends each line.
#[derive(Debug, Clone, Default, PartialEq)]
struct Heading {
    prefix: Vec<String>,
    placements: Vec<Group>,
    timestamp: bool,
    cpu_time: bool,
}

impl Heading {
    /// A heading line: '#', then names starting with `size` and holding `count`.
    fn parse(line: &str) -> Option<Heading> {
        let names: Vec<&str> = line.strip_prefix('#')?.split_whitespace().collect();
        if names.first() != Some(&"size") || !names.contains(&"count") {
            return None;
        }
        let mut heading = Heading::default();
        for name in names {
            match name {
                "time" | "cputime" => {
                    heading.cpu_time |= name == "cputime";
                    heading.placements.push(Group {
                        names: vec!["time".into()],
                    });
                }
                "timestamp" => heading.timestamp = true,
                _ => match heading.placements.last_mut() {
                    Some(group) => group.names.push(name.to_string()),
                    None => heading.prefix.push(name.to_string()),
                },
            }
        }
        (!heading.placements.is_empty()).then_some(heading)
    }
}

/// A log line without what a launcher put before it (`[1,0]<stdout>:` of `mpirun --tag-output`).
fn untagged(line: &str) -> &str {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some(end) = rest.find(">:") {
            let tag = &rest[..end];
            if tag.contains("]<std") {
                return &rest[end + 2..];
            }
        }
    }
    trimmed
}

/// The number after the words `key` in a header line ("iters: 20"), the words whole: "iters:" is not
/// the end of "warmup iters:".
fn number_after(line: &str, key: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let key: Vec<&str> = key.split_whitespace().collect();
    let at = (0..words.len().saturating_sub(key.len())).find(|&i| {
        words[i..i + key.len()] == key[..]
            && !(key.len() == 1 && i > 0 && matches!(words[i - 1], "warmup" | "agg"))
    })?;
    words
        .get(at + key.len())?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// "#  Rank  0 Group  0 Pid  4242 on      node1 device  0 [0000:18:00] NVIDIA H200" (Group is absent
/// before 2.13; the bus id was "[0x18]" before 2.17).
fn rank_line(line: &str) -> Option<RankLine> {
    let body = line.strip_prefix('#')?.trim_start();
    let rest = body.strip_prefix("Rank")?;
    let mut words = rest.split_whitespace();
    let rank = words.next()?.parse().ok()?;
    let mut out = RankLine {
        rank,
        ..RankLine::default()
    };
    while let Some(word) = words.next() {
        match word {
            "Group" => out.group = words.next()?.parse().ok()?,
            "Pid" => out.pid = words.next()?.parse().ok()?,
            "on" => out.host = words.next()?.to_string(),
            "device" => {
                out.device = words.next()?.parse().ok()?;
                let tail: Vec<&str> = words.collect();
                let tail = tail.join(" ");
                if let Some(inner) = tail.strip_prefix('[') {
                    if let Some(end) = inner.find(']') {
                        out.bus_id = inner[..end].to_string();
                        out.name = inner[end + 1..].trim().to_string();
                    }
                } else {
                    out.name = tail;
                }
                break;
            }
            _ => {}
        }
    }
    Some(out)
}

/// One placement's numbers from its tokens.
fn timing(
    group: &Group,
    tokens: &[&str],
    cpu_time: bool,
    iterations: Option<u64>,
) -> Option<Timing> {
    let value = |name: &str| -> Option<f64> { tokens.get(group.index(name)?)?.parse().ok() };
    let time_us = value("time")?;
    let wrong_column = group.index("#wrong").or(group.index("error"))?;
    let wrong = match tokens.get(wrong_column)? {
        &"N/A" => None,
        w => Some(w.parse::<f64>().ok()?),
    };
    let per_iteration = match (
        value("i_min"),
        value("i_max"),
        value("i_p99"),
        value("i_cv%"),
    ) {
        (Some(min), Some(max), Some(p99), Some(cv)) => {
            Some(super::printed_stats(min, max, p99, cv, time_us, iterations))
        }
        _ => None,
    };
    Some(Timing {
        time_us,
        cpu_time,
        algbw_gbps: value("algbw")?,
        busbw_gbps: value("busbw")?,
        wrong,
        stats: per_iteration,
        ..Timing::default()
    })
}

/// Whether the last two tokens are nccl-tests' timestamp ("%Y-%m-%d %H:%M:%S").
fn ends_with_timestamp(tokens: &[&str]) -> bool {
    let n = tokens.len();
    n >= 2
        && tokens[n - 2].len() == 10
        && tokens[n - 2].as_bytes()[4] == b'-'
        && tokens[n - 1].len() == 8
        && tokens[n - 1].as_bytes()[2] == b':'
}

/// A row of the table under `heading`, or None for a line that is not one (or is cut short).
fn row(heading: &Heading, line: &str, iterations: Option<u64>) -> Option<super::ResultRow> {
    let mut tokens: Vec<&str> = line.split_whitespace().collect();
    let size: u64 = tokens.first()?.parse().ok()?;
    if heading.timestamp && ends_with_timestamp(&tokens) {
        tokens.truncate(tokens.len() - 2);
    }
    let prefix = heading.prefix.len();
    if tokens.len() < prefix {
        return None;
    }
    let column = |name: &str| heading.prefix.iter().position(|n| n == name);
    let count: u64 = tokens.get(column("count")?)?.parse().ok()?;
    let dtype = column("type")
        .and_then(|i| tokens.get(i))
        .map(|s| s.to_string());
    let redop = column("redop")
        .and_then(|i| tokens.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| "none".into());
    let root = match column("root") {
        Some(i) => tokens.get(i)?.parse().ok()?,
        None => -1,
    };
    let body = &tokens[prefix..];
    let widths: Vec<usize> = heading.placements.iter().map(|g| g.names.len()).collect();
    // Both placements, or the out-of-place one alone: a line cut short after it (the run died while
    // measuring in place; each placement is printed once measured and checked).
    let (out_of_place, in_place) = match (widths.as_slice(), body.len()) {
        ([a, b], n) if n == a + b => (
            Some(timing(
                &heading.placements[0],
                &body[..*a],
                heading.cpu_time,
                iterations,
            )?),
            Some(timing(
                &heading.placements[1],
                &body[*a..],
                heading.cpu_time,
                iterations,
            )?),
        ),
        ([a, ..], n) if n == *a => (
            Some(timing(
                &heading.placements[0],
                body,
                heading.cpu_time,
                iterations,
            )?),
            None,
        ),
        _ => return None,
    };
    Some(super::ResultRow {
        size,
        count,
        dtype: dtype.unwrap_or_else(|| "float".into()),
        redop,
        root,
        out_of_place,
        in_place,
        iterations,
    })
}

/// Every section (one test's header, table and footer) of a saved stdout log.
pub fn parse(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    let mut heading: Option<Heading> = None;
    // A header line opens a new section when the current one already has rows or a footer.
    let fresh = |sections: &mut Vec<Section>| {
        if sections
            .last()
            .is_none_or(|s| !s.rows.is_empty() || s.complete)
        {
            sections.push(Section::default());
        }
        sections.len() - 1
    };
    for raw in text.lines() {
        let line = untagged(raw);
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("# nccl-tests version") {
            let at = fresh(&mut sections);
            heading = None;
            let mut words = rest.split_whitespace();
            sections[at].nccl_tests_version = words.next().map(str::to_string);
            for w in words {
                if let Some(code) = w.strip_prefix("nccl-library=") {
                    sections[at].nccl_version = code.parse().ok();
                }
            }
        } else if let Some(program) = trimmed.strip_prefix("# Collective test starting:") {
            let at = match sections.last() {
                Some(s) if s.program.is_none() && s.rows.is_empty() && !s.complete => {
                    sections.len() - 1
                }
                _ => fresh(&mut sections),
            };
            heading = None;
            sections[at].program = Some(program.trim().to_string());
        } else if trimmed.starts_with("# nThread") {
            let at = match sections.last() {
                Some(s) if s.rows.is_empty() && !s.complete => sections.len() - 1,
                _ => fresh(&mut sections),
            };
            heading = None;
            let s = &mut sections[at];
            s.iterations = number_after(trimmed, "iters:");
            s.warmup_iterations = number_after(trimmed, "warmup iters:");
            s.agg_iterations = number_after(trimmed, "agg iters:");
            s.validation = number_after(trimmed, "validation:");
            s.graph = number_after(trimmed, "graph:");
            s.threads = number_after(trimmed, "nThread");
            s.gpus = number_after(trimmed, "nGpus");
            s.per_iter_skip = None;
        } else if trimmed.starts_with("# Per-Iteration Report") {
            if let Some(s) = sections.last_mut() {
                s.per_iter_skip = number_after(trimmed, "summary skips first");
            }
        } else if let Some(rank) = rank_line(trimmed) {
            let at = match sections.last() {
                Some(s) if s.rows.is_empty() && !s.complete => sections.len() - 1,
                _ => fresh(&mut sections),
            };
            sections[at].ranks.push(rank);
        } else if let Some(h) = Heading::parse(trimmed) {
            if sections.last().is_none_or(|s| s.complete) {
                sections.push(Section::default());
            }
            heading = Some(h);
        } else if trimmed.starts_with("# Out of bounds values") {
            if let Some(s) = sections.last_mut() {
                s.complete = true;
                s.wrong_checks = number_after(trimmed, "values :");
            }
            heading = None;
        } else if let Some(rest) = trimmed.strip_prefix("# Avg bus bandwidth") {
            if let Some(s) = sections.last_mut() {
                let value = rest.trim_start_matches([' ', ':']);
                s.avg_busbw_gbps = value.split_whitespace().next().and_then(|v| v.parse().ok());
                s.min_bw_failed = value.contains("FAILED");
            }
        } else if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        } else if let Some(h) = &heading {
            let s = sections.last_mut().expect("a heading opens a section");
            let skip = s.per_iter_skip.unwrap_or(0);
            match row(h, line, s.iterations.map(|i| i.saturating_sub(skip))) {
                Some(r) => s.rows.push(r),
                None => s.skipped_lines += 1,
            }
        }
    }
    for s in &mut sections {
        if s.skipped_lines > 0 {
            s.notes.push(format!(
                "{} line(s) inside the table were neither rows nor nccl-tests' comments (another program's output, or a line cut short) and were skipped",
                s.skipped_lines
            ));
        }
    }
    sections.retain(|s| !s.rows.is_empty() || s.complete);
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
# nccl-tests version 2.19.6 nccl-headers=22703 nccl-library=22703
# Collective test starting: all_reduce_perf
# nThread 1 nGpus 1 minBytes 8 maxBytes 32 step: 2(factor) warmup iters: 1 iters: 20 agg iters: 1 validation: 1 graph: 0 unalign: 0
#
# Using devices
#  Rank  0 Group  0 Pid   4242 on      node1 device  0 [0000:18:00] NVIDIA H200
#  Rank  1 Group  0 Pid   4243 on      node1 device  1 [0000:2a:00] NVIDIA H200
node1:4242:4242 [0] NCCL INFO Bootstrap: Using eth0:10.0.0.1<0>
#
#                                                              out-of-place                       in-place          
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong 
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)        
           8             2     float     sum      -1    10.52    0.00    0.00      0    10.31    0.00    0.00      0
          16             4     float     sum      -1    10.48    0.00    0.00      0    10.40    0.00    0.00    N/A
          32             8     float     sum      -1    10.61    0.00    0.00      0  
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 0.00123 
#
# Collective test concluded: all_reduce_perf
";

    #[test]
    fn reads_a_2_19_6_log() {
        let sections = parse(LOG);
        assert_eq!(sections.len(), 1);
        let s = &sections[0];
        assert_eq!(s.nccl_tests_version.as_deref(), Some("2.19.6"));
        assert_eq!(s.nccl_version, Some(22703));
        assert_eq!(s.program.as_deref(), Some("all_reduce_perf"));
        assert_eq!((s.iterations, s.warmup_iterations), (Some(20), Some(1)));
        assert_eq!(s.ranks.len(), 2);
        assert_eq!(s.ranks[1].host, "node1");
        assert_eq!(s.ranks[1].bus_id, "0000:2a:00");
        assert_eq!(s.ranks[1].name, "NVIDIA H200");
        assert!(s.complete);
        assert_eq!(s.avg_busbw_gbps, Some(0.00123));
        assert_eq!(s.rows.len(), 3);
        let r = &s.rows[1];
        assert_eq!((r.size, r.count, r.root), (16, 4, -1));
        assert_eq!(r.out_of_place.as_ref().unwrap().time_us, 10.48);
        assert_eq!(r.in_place.as_ref().unwrap().wrong, None);
        // The line cut short after its out-of-place columns keeps them.
        assert_eq!(s.rows[2].out_of_place.as_ref().unwrap().time_us, 10.61);
        assert!(s.rows[2].in_place.is_none());
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }

    #[test]
    fn older_columns_cpu_time_per_iteration_and_timestamps() {
        // 2.10-style: no root column, `error` for #wrong, no test name.
        let old = "\
#  Rank  0 Pid   4242 on      node1 device  0 [0x18] Tesla V100
#       size         count      type   redop     time   algbw   busbw  error     time   algbw   busbw  error
           8             2     float     sum    11.00    0.00    0.00  0e+00    11.10    0.00    0.00  0e+00
";
        let s = &parse(old)[0];
        assert_eq!(s.program, None);
        assert_eq!(s.rows[0].root, -1);
        assert_eq!(s.rows[0].in_place.as_ref().unwrap().time_us, 11.1);
        assert_eq!(s.ranks[0].bus_id, "0x18");
        assert!(!s.complete);

        let per_iter = "\
# nThread 1 nGpus 1 minBytes 8 maxBytes 8 step: 2(factor) warmup iters: 1 iters: 10 agg iters: 1 validation: 1 graph: 0 unalign: 0
# Per-Iteration Report: CUDA event timing; i_* uses max over process rows; summary skips first 2 iterations 
#       size         count      type   redop    root  cputime   algbw   busbw #wrong    i_min    i_max    i_p99    i_cv%  cputime   algbw   busbw #wrong    i_min    i_max    i_p99    i_cv%             timestamp
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)     (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)   %Y-%m-%d %H:%M:%S
           8             2     float     sum      -1     4.00    0.00    0.00      0     9.00    12.00    12.00     10.00     4.10    0.00    0.00      0     9.10    12.10    12.10     10.00  2026-01-02 03:04:05
";
        let s = &parse(per_iter)[0];
        let r = &s.rows[0];
        let oop = r.out_of_place.as_ref().unwrap();
        assert!(oop.cpu_time);
        assert_eq!(oop.time_us, 4.0);
        let stats = oop.stats.as_ref().unwrap();
        assert_eq!(
            (stats.min_us, stats.max_us, stats.p99_us),
            (9.0, 12.0, 12.0)
        );
        assert_eq!(stats.samples, 8, "10 iterations, the first 2 skipped");
        assert_eq!(r.in_place.as_ref().unwrap().time_us, 4.1);
    }

    #[test]
    fn tagged_output_several_tests_and_foreign_lines() {
        let two = "\
[1,0]<stdout>:# nccl-tests version 2.19.6 nccl-headers=22703 nccl-library=22703
[1,0]<stdout>:# Collective test starting: sendrecv_perf
[1,0]<stdout>:#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
[1,0]<stdout>:          64            16     float     sum      -1     5.10    0.01    0.01      0     5.00    0.01    0.01      0
[1,0]<stdout>:          64            16     float     sum      -1     5.10    0.01    x
[1,0]<stdout>:# Out of bounds values : 0 OK
# nccl-tests version 2.19.6 nccl-headers=22703 nccl-library=22703
# Collective test starting: all_gather_perf
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
         128             4     float    none      -1     6.00    0.02    0.01      0     6.10    0.02    0.01      0
";
        let sections = parse(two);
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].program.as_deref(), Some("sendrecv_perf"));
        assert_eq!(sections[0].rows.len(), 1);
        assert_eq!(sections[0].rows[0].in_place.as_ref().unwrap().time_us, 5.0);
        assert!(
            sections[0].notes[0].contains("1 line(s)"),
            "{:?}",
            sections[0].notes
        );
        assert_eq!(sections[1].program.as_deref(), Some("all_gather_perf"));
        assert_eq!(sections[1].rows[0].redop, "none");
    }

    #[test]
    fn text_that_is_no_log_has_no_section() {
        assert!(parse("hello\nworld\n").is_empty());
        assert!(parse("").is_empty());
    }
}
