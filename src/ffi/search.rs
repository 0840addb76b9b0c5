//! Where collbench looks for libnccl, librccl, libamdhip64 and librocm_smi64, in a fixed, documented
//! order, and how a failure to find them is explained (every place tried, with the loader's own reason).

use std::path::{Path, PathBuf};

/// One place to try: a file path or a bare name for the dynamic loader, and where the idea came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What `dlopen` receives: an absolute path, or a bare file name searched by the loader.
    pub target: PathBuf,
    /// Why this place is tried, for the error message ("--nccl-lib", "$NCCL_HOME/lib", ...).
    pub origin: String,
}

impl Candidate {
    /// The one place a user or a test switch named.
    pub fn explicit(target: impl Into<PathBuf>, origin: impl Into<String>) -> Candidate {
        Candidate::new(target, origin)
    }

    fn new(target: impl Into<PathBuf>, origin: impl Into<String>) -> Candidate {
        Candidate {
            target: target.into(),
            origin: origin.into(),
        }
    }
}

/// The library families we search for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Nccl,
    Rccl,
    Hip,
    RocmSmi,
}

impl Family {
    pub fn display(self) -> &'static str {
        match self {
            Family::Nccl => "NCCL",
            Family::Rccl => "RCCL",
            Family::Hip => "HIP runtime",
            Family::RocmSmi => "ROCm SMI",
        }
    }

    /// How a user points collbench at the library, for the error message.
    pub fn how_to_point(self) -> &'static str {
        match self {
            Family::Nccl => {
                "give --nccl-lib /path/to/libnccl.so.2, set NCCL_HOME, add its folder to LD_LIBRARY_PATH, \
                 or `pip install nvidia-nccl-cu12` (or -cu13) in the active Python environment"
            }
            Family::Rccl => {
                "give --rccl-lib /path/to/librccl.so.1, set ROCM_PATH, or add its folder to LD_LIBRARY_PATH"
            }
            Family::Hip => "set ROCM_PATH, or add the folder of libamdhip64.so to LD_LIBRARY_PATH",
            Family::RocmSmi => {
                "set ROCM_PATH, or add the folder of librocm_smi64.so to LD_LIBRARY_PATH"
            }
        }
    }
}

/// The places tried before asking Python, in order. `env` reads an environment variable.
///
/// An explicit path (`--nccl-lib`, `--rccl-lib`) is the only place tried: a user who names a library must
/// not silently get another one.
pub fn static_candidates(
    family: Family,
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Candidate> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut out = Vec::new();
    match family {
        Family::Nccl => {
            if let Some(path) = explicit {
                return vec![Candidate::new(path, "--nccl-lib")];
            }
            if let Some(home) = set("NCCL_HOME") {
                for name in ["libnccl.so.2", "libnccl.so"] {
                    out.push(Candidate::new(
                        Path::new(&home).join("lib").join(name),
                        "$NCCL_HOME/lib",
                    ));
                }
            }
            for name in ["libnccl.so.2", "libnccl.so"] {
                out.push(Candidate::new(
                    name,
                    "loader search (LD_LIBRARY_PATH, ld.so.cache)",
                ));
            }
        }
        Family::Rccl => {
            if let Some(path) = explicit {
                return vec![Candidate::new(path, "--rccl-lib")];
            }
            for name in ["librccl.so.1", "librccl.so"] {
                out.push(Candidate::new(
                    name,
                    "loader search (LD_LIBRARY_PATH, ld.so.cache)",
                ));
            }
            rocm_dirs(&set, &mut out, &["librccl.so.1", "librccl.so"]);
        }
        Family::Hip => {
            let names = [
                "libamdhip64.so",
                "libamdhip64.so.6",
                "libamdhip64.so.7",
                "libamdhip64.so.5",
            ];
            for name in names {
                out.push(Candidate::new(
                    name,
                    "loader search (LD_LIBRARY_PATH, ld.so.cache)",
                ));
            }
            rocm_dirs(&set, &mut out, &names);
        }
        Family::RocmSmi => {
            // ROCm's own packages number the file after the library's major version (5, 6, 7);
            // Debian's is librocm_smi64.so.1 whatever the release.
            let names = [
                "librocm_smi64.so",
                "librocm_smi64.so.7",
                "librocm_smi64.so.6",
                "librocm_smi64.so.5",
                "librocm_smi64.so.1",
            ];
            for name in names {
                out.push(Candidate::new(
                    name,
                    "loader search (LD_LIBRARY_PATH, ld.so.cache)",
                ));
            }
            rocm_dirs(&set, &mut out, &names[..1]);
        }
    }
    out
}

fn rocm_dirs(set: &dyn Fn(&str) -> Option<String>, out: &mut Vec<Candidate>, names: &[&str]) {
    if let Some(rocm) = set("ROCM_PATH") {
        for name in names {
            out.push(Candidate::new(
                Path::new(&rocm).join("lib").join(name),
                "$ROCM_PATH/lib",
            ));
        }
    }
    for name in names {
        out.push(Candidate::new(
            Path::new("/opt/rocm/lib").join(name),
            "/opt/rocm/lib",
        ));
    }
}

/// NCCL inside Python environments (PyPI's nvidia-nccl-cu12 / -cu13 wheels put it in
/// site-packages/nvidia/nccl/lib). `site_dirs` are site-packages folders, best first.
pub fn python_candidates(site_dirs: &[(PathBuf, String)]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for (dir, origin) in site_dirs {
        let target = dir
            .join("nvidia")
            .join("nccl")
            .join("lib")
            .join("libnccl.so.2");
        if !out.iter().any(|c| c.target == target) {
            out.push(Candidate::new(target, origin.clone()));
        }
    }
    out
}

/// site-packages folders of the active Python environments: $VIRTUAL_ENV, $CONDA_PREFIX, then what
/// `python3` itself reports (its sys.path), so a plain `pip install --user` is found too.
pub fn python_site_dirs(env: &dyn Fn(&str) -> Option<String>) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = env(var).filter(|v| !v.trim().is_empty()) {
            for dir in site_packages_under(Path::new(&prefix)) {
                out.push((dir, format!("${var}")));
            }
        }
    }
    for dir in python_reported_dirs() {
        out.push((dir, "python3 sys.path".to_string()));
    }
    out
}

/// lib/python3.*/site-packages under an environment prefix.
fn site_packages_under(prefix: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for lib in ["lib", "lib64"] {
        if let Ok(entries) = std::fs::read_dir(prefix.join(lib)) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with("python3") {
                    let dir = entry.path().join("site-packages");
                    if dir.is_dir() {
                        found.push(dir);
                    }
                }
            }
        }
    }
    found.sort();
    found
}

/// Asks `python3` where nvidia.nccl lives (importlib) and for its sys.path; empty if there is no python3.
fn python_reported_dirs() -> Vec<PathBuf> {
    // importlib first: it knows namespace packages and .pth tricks; sys.path covers the rest.
    let script = "import sys, importlib.util, os\n\
                  try:\n    s = importlib.util.find_spec('nvidia.nccl')\n\
                  except Exception:\n    s = None\n\
                  if s and s.submodule_search_locations:\n\
                  \x20   for d in s.submodule_search_locations:\n\
                  \x20       print(os.path.dirname(os.path.dirname(d)))\n\
                  for d in sys.path:\n    print(d)\n";
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let dir = PathBuf::from(line.trim());
        if !line.trim().is_empty() && dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// One failed attempt, with the loader's reason.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub candidate: Candidate,
    pub reason: String,
}

/// The message when no candidate opened: every place tried and why it failed, then how to fix it.
pub fn not_found_message(family: Family, attempts: &[Attempt]) -> String {
    let mut msg = format!("could not load the {} library; tried:", family.display());
    for a in attempts {
        msg.push_str(&format!(
            "\n  {} ({}): {}",
            a.candidate.target.display(),
            a.candidate.origin,
            a.reason
        ));
    }
    if attempts.is_empty() {
        msg.push_str(" nowhere");
    }
    msg.push_str(&format!("\nTo fix: {}.", family.how_to_point()));
    msg
}

/// The file the loader actually mapped for a library whose file name starts with `stem` (e.g.
/// "libnccl.so", which a plugin such as libnccl-net.so does not match), read from
/// /proc/self/maps (a bare name such as libnccl.so.2 tells the user nothing about which copy ran).
pub fn mapped_path(stem: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(stem))
        })
        .map(PathBuf::from)
}

/// The process environment, as the search functions read it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn targets(c: &[Candidate]) -> Vec<String> {
        c.iter().map(|c| c.target.display().to_string()).collect()
    }

    #[test]
    fn nccl_order_is_home_then_loader() {
        let env = env_of(&[("NCCL_HOME", "/opt/nccl")]);
        let c = static_candidates(Family::Nccl, None, &env);
        assert_eq!(
            targets(&c),
            [
                "/opt/nccl/lib/libnccl.so.2",
                "/opt/nccl/lib/libnccl.so",
                "libnccl.so.2",
                "libnccl.so"
            ]
        );
        assert_eq!(c[0].origin, "$NCCL_HOME/lib");
        // Unset or empty NCCL_HOME adds nothing.
        let c = static_candidates(Family::Nccl, None, &env_of(&[("NCCL_HOME", " ")]));
        assert_eq!(targets(&c), ["libnccl.so.2", "libnccl.so"]);
    }

    #[test]
    fn an_explicit_path_is_the_only_place_tried() {
        let env = env_of(&[("NCCL_HOME", "/opt/nccl"), ("ROCM_PATH", "/opt/rocm-6.2")]);
        let c = static_candidates(Family::Nccl, Some(Path::new("/x/libnccl.so.2")), &env);
        assert_eq!(targets(&c), ["/x/libnccl.so.2"]);
        assert_eq!(c[0].origin, "--nccl-lib");
        let c = static_candidates(Family::Rccl, Some(Path::new("/y/librccl.so.1")), &env);
        assert_eq!(targets(&c), ["/y/librccl.so.1"]);
        assert_eq!(c[0].origin, "--rccl-lib");
    }

    #[test]
    fn rccl_order_is_loader_then_rocm_path_then_opt_rocm() {
        let env = env_of(&[("ROCM_PATH", "/opt/rocm-6.2")]);
        let c = static_candidates(Family::Rccl, None, &env);
        assert_eq!(
            targets(&c),
            [
                "librccl.so.1",
                "librccl.so",
                "/opt/rocm-6.2/lib/librccl.so.1",
                "/opt/rocm-6.2/lib/librccl.so",
                "/opt/rocm/lib/librccl.so.1",
                "/opt/rocm/lib/librccl.so"
            ]
        );
        let c = static_candidates(Family::Rccl, None, &env_of(&[]));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn python_candidates_point_into_the_wheel_and_drop_duplicates() {
        let dirs = vec![
            (
                PathBuf::from("/venv/lib/python3.11/site-packages"),
                "$VIRTUAL_ENV".to_string(),
            ),
            (
                PathBuf::from("/venv/lib/python3.11/site-packages"),
                "python3 sys.path".to_string(),
            ),
            (
                PathBuf::from("/usr/lib/python3/dist-packages"),
                "python3 sys.path".to_string(),
            ),
        ];
        let c = python_candidates(&dirs);
        assert_eq!(
            targets(&c),
            [
                "/venv/lib/python3.11/site-packages/nvidia/nccl/lib/libnccl.so.2",
                "/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2"
            ]
        );
        assert_eq!(c[0].origin, "$VIRTUAL_ENV");
    }

    #[test]
    fn virtual_env_site_packages_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir
            .path()
            .join("lib")
            .join("python3.12")
            .join("site-packages");
        std::fs::create_dir_all(&site).unwrap();
        let prefix = dir.path().display().to_string();
        let env = env_of(&[("VIRTUAL_ENV", prefix.as_str())]);
        let dirs = python_site_dirs(&env);
        assert_eq!(dirs[0], (site, "$VIRTUAL_ENV".to_string()));
    }

    #[test]
    fn mapped_path_finds_the_file_behind_a_bare_name() {
        // Every Rust test binary on Linux maps the C library.
        let libc = mapped_path("libc.so").expect("libc is mapped");
        assert!(
            libc.is_absolute() && libc.to_string_lossy().contains("libc.so"),
            "{}",
            libc.display()
        );
        assert_eq!(mapped_path("libno-such-library.so"), None);
    }

    #[test]
    fn the_failure_message_lists_every_place_and_the_fix() {
        let attempts = vec![
            Attempt {
                candidate: Candidate::new("libnccl.so.2", "loader search"),
                reason: "cannot open shared object file".into(),
            },
            Attempt {
                candidate: Candidate::new("/p/libnccl.so.2", "python3 sys.path"),
                reason: "No such file".into(),
            },
        ];
        let m = not_found_message(Family::Nccl, &attempts);
        assert!(
            m.contains("libnccl.so.2 (loader search): cannot open shared object file"),
            "{m}"
        );
        assert!(
            m.contains("/p/libnccl.so.2 (python3 sys.path): No such file"),
            "{m}"
        );
        assert!(m.contains("--nccl-lib"), "{m}");
    }
}
