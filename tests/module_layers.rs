//! The top-level modules of src/ depend on each other without a cycle, in the layer order that
//! docs/ARCHITECTURE.md writes down, and the sibling files inside each module (src/m/a.rs, src/m/b.rs)
//! without a cycle either. The graph comes from the source itself: every `crate::x` path (groups
//! `crate::{a, b}` included) and every `super::` chain that climbs to the crate root (or, between
//! siblings, to their module), with comments, string literals and test-only code (`#[cfg(test)]` items,
//! and the files of `#[cfg(test)] mod name;`) left out. A failure names each edge with the file and line
//! that makes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where a module names another: the file, its 1-based line, and the line's text.
#[derive(Debug, Clone)]
struct Evidence {
    file: String,
    line: usize,
    text: String,
}

/// From module to module, with every place that makes the edge.
type Graph = BTreeMap<String, BTreeMap<String, Vec<Evidence>>>;

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The source with comments and the insides of string and char literals turned into spaces; newlines
/// stay, so positions keep their line numbers.
fn blank_comments_and_literals(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        let next = s.get(i + 1).copied();
        if s[i] == '/' && next == Some('/') {
            let end = (i..s.len()).find(|&j| s[j] == '\n').unwrap_or(s.len());
            blank(&mut out, i, end);
            i = end;
        } else if s[i] == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, i);
            while j < s.len() {
                if s[j] == '/' && s.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if s[j] == '*' && s.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if s[i] == 'r'
            && (i == 0 || !is_ident(s[i - 1]))
            && matches!(next, Some('"') | Some('#'))
        {
            // r"..." or r#"..."#: ends at a quote followed by as many #.
            let hashes = (i + 1..s.len()).take_while(|&j| s[j] == '#').count();
            let open = i + 1 + hashes;
            if s.get(open) != Some(&'"') {
                i += 1;
                continue;
            }
            let mut j = open + 1;
            while j < s.len() && !(s[j] == '"' && (1..=hashes).all(|h| s.get(j + h) == Some(&'#')))
            {
                j += 1;
            }
            blank(&mut out, open + 1, j);
            i = j + 1 + hashes;
        } else if s[i] == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, j);
            i = j + 1;
        } else if s[i] == '\'' {
            // A char literal ('x', '\n', '\u{1F600}'); anything else is a lifetime.
            if next == Some('\\') {
                let end = (i + 2..s.len()).find(|&j| s[j] == '\'').unwrap_or(s.len());
                blank(&mut out, i + 1, end);
                i = end + 1;
            } else if s.get(i + 2) == Some(&'\'') {
                blank(&mut out, i + 1, i + 2);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The index of the bracket that closes the one at `open` (same kind), or the end.
fn matching(code: &[char], open: usize) -> usize {
    let (o, c) = (code[open], if code[open] == '{' { '}' } else { ']' });
    let mut depth = 0usize;
    for (j, &ch) in code.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return j;
            }
        }
    }
    code.len() - 1
}

fn skip_space(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Blanks every `#[cfg(test)]` item (a block up to its closing brace, or a declaration up to its `;`)
/// and returns the names of the modules declared test-only without a body (`#[cfg(test)] mod name;`),
/// whose files are test code too. `code` has no comments or literals left.
fn blank_test_items(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut c: Vec<char> = code.chars().collect();
    let mut files = Vec::new();
    let text: String = c.iter().collect();
    let starts: Vec<usize> = text
        .match_indices(ATTR)
        .map(|(byte, _)| text[..byte].chars().count())
        .collect();
    for start in starts {
        if c[start] != '#' {
            continue; // inside an item already blanked
        }
        // Further attributes of the same item.
        let mut i = skip_space(&c, start + ATTR.chars().count());
        while c.get(i) == Some(&'#') && c.get(i + 1) == Some(&'[') {
            i = skip_space(&c, matching(&c, i + 1) + 1);
        }
        let item_start = i;
        let Some(stop) = (i..c.len()).find(|&j| c[j] == ';' || c[j] == '{') else {
            continue;
        };
        let end = if c[stop] == '{' {
            matching(&c, stop)
        } else {
            let decl: String = c[item_start..stop].iter().collect();
            let words: Vec<&str> = decl.split_whitespace().collect();
            if let Some(at) = words.iter().position(|w| *w == "mod") {
                if let Some(name) = words.get(at + 1) {
                    files.push(name.to_string());
                }
            }
            stop
        };
        for ch in &mut c[start..=end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    }
    (c.into_iter().collect(), files)
}

/// The first segment of each path that starts at `at` (just after a `::`): `x` or each head of a group
/// `{a, b::c, d}`, with its position.
fn heads(code: &[char], at: usize) -> Vec<(usize, String)> {
    let i = skip_space(code, at);
    let ident = |from: usize| -> (usize, String) {
        let from = skip_space(code, from);
        let name: String = code[from..]
            .iter()
            .take_while(|&&ch| is_ident(ch))
            .collect();
        (from, name)
    };
    if code.get(i) != Some(&'{') {
        let (pos, name) = ident(i);
        return if name.is_empty() {
            vec![]
        } else {
            vec![(pos, name)]
        };
    }
    let close = matching(code, i);
    let mut out = Vec::new();
    let (mut depth, mut item) = (0usize, i + 1);
    for (j, &ch) in code.iter().enumerate().take(close + 1).skip(i + 1) {
        match ch {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => {
                let (pos, name) = ident(item);
                if !name.is_empty() && name != "self" {
                    out.push((pos, name));
                }
                item = j + 1;
            }
            _ => {}
        }
    }
    out
}

/// Every top-level module a file's code names, with its position: `crate::x`, and `super::x` where the
/// chain of `super` climbs from the file's depth (src/a.rs and src/a/mod.rs: 1, src/a/b.rs: 2) to the
/// crate root.
fn named_modules(code: &str, depth: usize) -> Vec<(usize, String)> {
    let c: Vec<char> = code.chars().collect();
    let word_at = |i: usize, w: &str| {
        let n = w.chars().count();
        c.get(i..i + n)
            .is_some_and(|s| s.iter().copied().eq(w.chars()))
            && (i == 0 || !is_ident(c[i - 1]))
            && !c.get(i + n).copied().is_some_and(is_ident)
    };
    let colons = |i: usize| {
        let i = skip_space(&c, i);
        (c.get(i) == Some(&':') && c.get(i + 1) == Some(&':')).then_some(i + 2)
    };
    let mut out = Vec::new();
    for i in 0..c.len() {
        if word_at(i, "crate") {
            if let Some(after) = colons(i + 5) {
                out.extend(heads(&c, after));
            }
        } else if word_at(i, "super") && (i < 2 || c[i - 2..i] != [':', ':']) {
            // The start of a chain super::super::...; counted once, from its first `super`.
            let (mut climbed, mut at) = (0, i);
            while word_at(skip_space(&c, at), "super") {
                let Some(after) = colons(skip_space(&c, at) + 5) else {
                    break;
                };
                climbed += 1;
                at = after;
            }
            if climbed == depth {
                out.extend(heads(&c, at));
            }
        }
    }
    out
}

fn line_of(code: &str, pos: usize) -> usize {
    code.chars().take(pos).filter(|&c| c == '\n').count() + 1
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module graph of the crate under `src`: top-level modules are src/*.rs (but lib.rs and main.rs)
/// and src/*/ directories.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let rel = |p: &Path| p.strip_prefix(src).unwrap().to_path_buf();
    let top = |r: &Path| -> String {
        let first = r.components().next().unwrap().as_os_str().to_string_lossy();
        first.strip_suffix(".rs").unwrap_or(&first).to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| top(&rel(p)))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut prepared = Vec::new();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    for p in &files {
        let source = std::fs::read_to_string(p).unwrap();
        let (code, test_mods) = blank_test_items(&blank_comments_and_literals(&source));
        let r = rel(p);
        // Where the file's child modules live: beside mod.rs and lib.rs, else in a folder of its name.
        let stem = r.file_stem().unwrap().to_string_lossy().to_string();
        let parent = r.parent().unwrap().to_path_buf();
        let children = if stem == "mod" || stem == "lib" || stem == "main" {
            parent
        } else {
            parent.join(&stem)
        };
        for m in test_mods {
            test_only.insert(children.join(format!("{m}.rs")));
            test_only.insert(children.join(&m));
        }
        prepared.push((r, source, code));
    }
    let mut graph = Graph::new();
    for (r, source, code) in prepared {
        let from = top(&r);
        let is_test = test_only.iter().any(|t| r == *t || r.starts_with(t));
        if is_test || !modules.contains(&from) {
            continue;
        }
        let depth = r.components().count() - usize::from(r.ends_with("mod.rs"));
        let lines: Vec<&str> = source.lines().collect();
        for (pos, to) in named_modules(&code, depth) {
            if to == from || !modules.contains(&to) {
                continue;
            }
            let line = line_of(&code, pos);
            graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_default()
                .push(Evidence {
                    file: format!("src/{}", r.display()),
                    line,
                    text: lines.get(line - 1).unwrap_or(&"").trim().to_string(),
                });
        }
    }
    for m in modules {
        graph.entry(m).or_default();
    }
    graph
}

/// Every sibling a file's code names, with its position: `super::b` from src/m/a.rs (a chain that
/// climbs one level) and `crate::m::b`, where b is another file (or folder) of src/m/.
fn named_siblings(code: &str, module: &str, siblings: &BTreeSet<String>) -> Vec<(usize, String)> {
    let c: Vec<char> = code.chars().collect();
    let word_at = |i: usize, w: &str| {
        let n = w.chars().count();
        c.get(i..i + n)
            .is_some_and(|s| s.iter().copied().eq(w.chars()))
            && (i == 0 || !is_ident(c[i - 1]))
            && !c.get(i + n).copied().is_some_and(is_ident)
    };
    let colons = |i: usize| {
        let i = skip_space(&c, i);
        (c.get(i) == Some(&':') && c.get(i + 1) == Some(&':')).then_some(i + 2)
    };
    let mut out = Vec::new();
    for i in 0..c.len() {
        let after = if word_at(i, "super") && (i < 2 || c[i - 2..i] != [':', ':']) {
            // One `super` only: super::super:: climbs out of the module.
            colons(i + 5).filter(|&at| !word_at(skip_space(&c, at), "super"))
        } else if word_at(i, "crate") {
            colons(i + 5).and_then(|at| {
                let at = skip_space(&c, at);
                if word_at(at, module) {
                    colons(at + module.chars().count())
                } else {
                    None
                }
            })
        } else {
            None
        };
        if let Some(at) = after {
            out.extend(
                heads(&c, at)
                    .into_iter()
                    .filter(|(_, name)| siblings.contains(name)),
            );
        }
    }
    out
}

/// For each module folder src/m/, the graph between its files other than mod.rs (a file's children in
/// src/m/a/ count as a): which sibling each names, with where.
fn sibling_graphs(src: &Path) -> BTreeMap<String, Graph> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out: BTreeMap<String, Graph> = BTreeMap::new();
    for dir in std::fs::read_dir(src).unwrap().map(|e| e.unwrap().path()) {
        if !dir.is_dir() {
            continue;
        }
        let module = dir.file_name().unwrap().to_string_lossy().to_string();
        let siblings: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| {
                let name = p.file_stem()?.to_string_lossy().to_string();
                (p.is_dir() || p.extension().is_some_and(|e| e == "rs")).then_some(name)
            })
            .filter(|n| n != "mod")
            .collect();
        let mut graph = Graph::new();
        for p in files.iter().filter(|p| p.starts_with(&dir)) {
            let inner = p.strip_prefix(&dir).unwrap();
            let first = inner
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let from = first.strip_suffix(".rs").unwrap_or(&first).to_string();
            // Deeper files climb further to reach their siblings; only direct files are read.
            if from == "mod" || inner.components().count() > 1 {
                continue;
            }
            let source = std::fs::read_to_string(p).unwrap();
            let (code, _) = blank_test_items(&blank_comments_and_literals(&source));
            let lines: Vec<&str> = source.lines().collect();
            graph.entry(from.clone()).or_default();
            for (pos, to) in named_siblings(&code, &module, &siblings) {
                if to == from {
                    continue;
                }
                let line = line_of(&code, pos);
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .push(Evidence {
                        file: format!("src/{module}/{}", inner.display()),
                        line,
                        text: lines.get(line - 1).unwrap_or(&"").trim().to_string(),
                    });
            }
        }
        out.insert(module, graph);
    }
    out
}

/// A cycle of `edges` as its modules, the first repeated at the end; None for a DAG.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::OnPath);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::OnPath) => {
                    let from = path.iter().position(|n| n == next).unwrap();
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node) {
            if let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

fn edges_of(graph: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    graph
        .iter()
        .map(|(from, to)| (from.clone(), to.keys().cloned().collect()))
        .collect()
}

/// Each place that makes the edge `from -> to`, one per line.
fn evidence(graph: &Graph, from: &str, to: &str) -> String {
    graph[from][to]
        .iter()
        .map(|e| format!("      {}:{}: {}\n", e.file, e.line, e.text))
        .collect()
}

fn crate_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph(&crate_src());
    assert!(
        graph.len() > 10 && graph.values().any(|to| !to.is_empty()),
        "the module graph was not read: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&edges_of(&graph)) {
        let mut message = format!(
            "the top-level modules form a cycle: {}\n",
            cycle.join(" -> ")
        );
        for pair in cycle.windows(2) {
            message.push_str(&format!("  {} -> {}\n", pair[0], pair[1]));
            message.push_str(&evidence(&graph, &pair[0], &pair[1]));
        }
        message.push_str(
            "Move the type or function to the module that owns the concept (docs/ARCHITECTURE.md, layer order).",
        );
        panic!("{message}");
    }
}

#[test]
fn sibling_files_of_a_module_form_no_cycle() {
    let graphs = sibling_graphs(&crate_src());
    assert!(
        graphs.get("pairs").is_some_and(|g| g.len() > 3),
        "the sibling graphs were not read: {graphs:?}"
    );
    let mut message = String::new();
    for (module, graph) in &graphs {
        if let Some(cycle) = find_cycle(&edges_of(graph)) {
            message.push_str(&format!(
                "the files of src/{module}/ form a cycle: {}\n",
                cycle.join(" -> ")
            ));
            for pair in cycle.windows(2) {
                message.push_str(&format!("  {} -> {}\n", pair[0], pair[1]));
                message.push_str(&evidence(graph, &pair[0], &pair[1]));
            }
        }
    }
    assert!(
        message.is_empty(),
        "{message}One of the two files must not name the other: move the shared type or function to the file that owns it, or to a file both use."
    );
}

/// docs/ARCHITECTURE.md's line "Layer order (low to high): a < b < ...".
fn documented_order() -> Vec<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Layer order (low to high):"))
        .unwrap_or_else(|| {
            panic!(
                "{} has no \"Layer order (low to high):\" line",
                doc.display()
            )
        });
    line.split('<')
        .map(|m| m.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn every_module_depends_only_on_modules_below_it_in_the_documented_order() {
    let graph = module_graph(&crate_src());
    let order = documented_order();
    let place = |m: &str| order.iter().position(|o| o == m);
    let mut wrong = String::new();
    for (from, to) in &graph {
        let Some(at) = place(from) else {
            wrong.push_str(&format!(
                "  {from} is not in the layer order: place it in docs/ARCHITECTURE.md\n"
            ));
            continue;
        };
        for m in to.keys() {
            if place(m).is_some_and(|below| below >= at) {
                wrong.push_str(&format!("  {from} -> {m}, but {m} is not below {from}\n"));
                wrong.push_str(&evidence(&graph, from, m));
            }
        }
    }
    for m in &order {
        if !graph.contains_key(m) {
            wrong.push_str(&format!("  {m} is in the layer order but not in src/\n"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/ARCHITECTURE.md's layer order does not hold:\n{wrong}"
    );
}

fn graph_of(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges {
        g.entry(a.to_string()).or_default().insert(b.to_string());
        g.entry(b.to_string()).or_default();
    }
    g
}

#[test]
fn the_cycle_finder_finds_a_hand_made_cycle_and_passes_a_dag() {
    let dag = graph_of(&[
        ("app", "plan"),
        ("plan", "cli"),
        ("app", "cli"),
        ("cli", "error"),
    ]);
    assert_eq!(find_cycle(&dag), None);
    let knot = graph_of(&[
        ("app", "plan"),
        ("plan", "report"),
        ("report", "telemetry"),
        ("telemetry", "plan"),
        ("telemetry", "error"),
    ]);
    assert_eq!(
        find_cycle(&knot).unwrap(),
        ["plan", "report", "telemetry", "plan"]
    );
    assert_eq!(
        find_cycle(&graph_of(&[("a", "b"), ("b", "a")])).unwrap(),
        ["a", "b", "a"]
    );
}

#[test]
fn siblings_are_read_from_super_and_crate_paths_only() {
    let source = r##"
use super::{alpha::A, beta};
use crate::m::gamma::G;
use crate::other::delta;
use super::super::epsilon;
fn f() { super::zeta::run(); crate::m::not_a_file::x(); }
"##;
    let siblings: BTreeSet<String> = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
        .map(String::from)
        .into();
    let code = blank_comments_and_literals(source);
    let named: Vec<String> = named_siblings(&code, "m", &siblings)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(named, ["alpha", "beta", "gamma", "zeta"]);
}

#[test]
fn paths_are_read_from_groups_and_super_and_test_code_is_left_out() {
    let source = r##"
use crate::{alpha, beta::{B, C}, gamma as g};
use crate::delta::D; // crate::comment_line
/* crate::block /* nested crate::block */ */
fn f() -> &'static str { let _c = '"'; let _r = r#"crate::raw"#; "crate::string" }
pub fn h(x: crate::epsilon::E) -> super::zeta::Z {}
#[cfg(test)]
mod tests {
    use crate::in_tests;
}
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod testdata;
fn last() { crate::eta::run() }
"##;
    let (code, test_mods) = blank_test_items(&blank_comments_and_literals(source));
    assert_eq!(test_mods, ["testdata"]);
    let names = |depth| -> Vec<(usize, String)> {
        named_modules(&code, depth)
            .into_iter()
            .map(|(pos, m)| (line_of(&code, pos), m))
            .collect()
    };
    let expect = |zeta: bool| {
        let mut v: Vec<(usize, String)> = [(2, "alpha"), (2, "beta"), (2, "gamma"), (3, "delta")]
            .map(|(l, m)| (l, m.to_string()))
            .to_vec();
        v.push((6, "epsilon".into()));
        if zeta {
            v.push((6, "zeta".into()));
        }
        v.push((14, "eta".into()));
        v
    };
    // From src/x.rs `super::` is the crate root; from src/x/y.rs it is x.
    assert_eq!(names(1), expect(true));
    assert_eq!(names(2), expect(false));
}
