//! The real AMD libraries the tests load and compile against: Debian 12's ROCm SMI 5.2.3 (installed by
//! `scripts/setup.sh --test`) and the folder scripts/amd-root.sh makes from Debian sid and experimental
//! (RCCL 5.4.3 and 7.2.4, ROCm SMI 6.4.1, their headers, and the sid C library they need), with the way
//! a program runs against them: under sid's own loader with `--library-path` (docs/TESTING.md).
//! Where they are missing the tests skip with the reason; .ci/run sets COLLBENCH_AMD_REQUIRED, which
//! makes that a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set by .ci/run: a library or root that is not there fails the test instead of skipping it.
pub const REQUIRED: &str = "COLLBENCH_AMD_REQUIRED";

/// Where scripts/amd-root.sh keeps the root unless COLLBENCH_AMD_ROOT (set by scripts/test.sh) says.
const DEFAULT_ROOT: &str = "/var/cache/collbench/amd-root";

/// Says why a real library cannot be used: a skip (printed), or a failure where CI requires them.
pub fn unavailable<T>(why: &str) -> Option<T> {
    if std::env::var_os(REQUIRED).is_some() {
        panic!("the real AMD libraries are required ({REQUIRED} is set) but {why}");
    }
    eprintln!("SKIPPED: {why} (set {REQUIRED}=1 to fail instead)");
    None
}

/// Debian 12's ROCm SMI 5.2.3: (the library, the folder holding rocm_smi/rocm_smi.h).
pub fn debian_rocm_smi() -> Option<(PathBuf, PathBuf)> {
    let lib = PathBuf::from("/usr/lib/librocm_smi64.so.1");
    let include = PathBuf::from("/usr/include");
    if lib.exists() && include.join("rocm_smi/rocm_smi.h").exists() {
        Some((lib, include))
    } else {
        unavailable(
            "Debian 12's ROCm SMI 5.2.3 is not installed (librocm-smi64-1 and librocm-smi-dev: \
             run `scripts/setup.sh --test`)",
        )
    }
}

/// A set of the root's folders that one program loads together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// RCCL 7.2.4 with HIP 7.2 and the rest of its closure.
    Rccl7,
    /// RCCL 5.4.3 with this machine's HIP 5.2.3.
    Rccl5,
    /// ROCm SMI 6.4.1.
    RocmSmi6,
    /// HIP 7.2.4's headers (with RCCL 7.2.4's closure).
    Hip7,
}

impl Stack {
    /// The root's folders, searched first to last.
    fn folders(self) -> &'static [&'static str] {
        match self {
            Stack::Rccl7 => &["rccl-7.2.4", "rocm7", "base"],
            Stack::Rccl5 => &["rccl-5.4.3", "base"],
            Stack::RocmSmi6 => &["rocm-smi-6.4.1", "base"],
            Stack::Hip7 => &["rocm7", "base"],
        }
    }

    /// The folder with this stack's headers.
    pub fn headers(self) -> &'static str {
        self.folders()[0]
    }
}

/// The folder scripts/amd-root.sh made.
pub struct AmdRoot {
    dir: PathBuf,
}

impl AmdRoot {
    /// The root, or None (with the reason printed) where it was not made.
    pub fn find() -> Option<AmdRoot> {
        let dir = std::env::var_os("COLLBENCH_AMD_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        if dir.join("manifest.txt").is_file() {
            Some(AmdRoot { dir })
        } else {
            unavailable(&format!(
                "the sid/experimental AMD root is not at {} (scripts/amd-root.sh makes it; scripts/test.sh \
                 runs it)",
                dir.display()
            ))
        }
    }

    /// `usr/include` of a stack's own folder.
    pub fn include(&self, stack: Stack) -> PathBuf {
        self.dir.join(stack.headers()).join("usr/include")
    }

    /// A file of the root, e.g. "rocm-smi-6.4.1/usr/lib/x86_64-linux-gnu/librocm_smi64.so.1".
    pub fn file(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// `program` under sid's loader, finding `stack`'s libraries first, then sid's C library, then this
    /// machine's (libmpi.so.40 and, for RCCL 5.4.3, HIP 5.2.3).
    pub fn command(&self, stack: Stack, program: &Path) -> Command {
        let lib = |folder: &str| {
            self.dir
                .join(folder)
                .join("usr/lib/x86_64-linux-gnu")
                .display()
                .to_string()
        };
        let mut path: Vec<String> = stack.folders().iter().map(|f| lib(f)).collect();
        path.extend(["/usr/lib/x86_64-linux-gnu".into(), "/usr/lib".into()]);
        let mut cmd = Command::new(lib("base") + "/ld-linux-x86-64.so.2");
        cmd.arg("--library-path").arg(path.join(":")).arg(program);
        if stack == Stack::Rccl5 {
            // Debian 12's libamdhip64.so.5 asks for an executable stack, which glibc 2.41 and later
            // refuse to give a library opened with dlopen unless told.
            cmd.env("GLIBC_TUNABLES", "glibc.rtld.execstack=2");
        }
        cmd
    }
}
