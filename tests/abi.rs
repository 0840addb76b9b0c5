//! ABI check of sys/nccl_api.h against the real nccl.h of PyPI's nvidia-nccl-cu12 wheel: every prototype
//! we declare must agree with NCCL's (a conflicting declaration is a compile error), and every enum value
//! and size we declare must equal NCCL's (_Static_assert). Runs the C compiler ($CC or cc) directly.

use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP_HINT: &str = "run `scripts/setup.sh --test` (it installs nvidia-nccl-cu12 with pip)";

/// The include folder of the nvidia-nccl wheel in the active Python environment.
fn wheel_include_dir() -> PathBuf {
    let script = "import importlib.util\n\
                  s = importlib.util.find_spec('nvidia.nccl')\n\
                  print(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to find the NCCL wheel ({e}): {SETUP_HINT}"));
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let include = Path::new(&dir).join("include");
    assert!(
        !dir.is_empty() && include.join("nccl.h").is_file(),
        "the real nccl.h was not found (python3 finds no nvidia.nccl package with include/nccl.h): {SETUP_HINT}"
    );
    include
}

fn sys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sys")
}

/// nccl.h includes CUDA headers for cudaStream_t and cudaEvent_t only; these stand-ins declare those
/// two handle types as CUDA does, so the check runs without a CUDA toolkit.
fn cuda_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("cuda-shim");
    std::fs::create_dir_all(&shim).unwrap();
    std::fs::write(
        shim.join("cuda_runtime.h"),
        "#include <stddef.h>\n#define CUDART_VERSION 12080\n\
         typedef struct CUstream_st *cudaStream_t;\ntypedef struct CUevent_st *cudaEvent_t;\n",
    )
    .unwrap();
    std::fs::write(shim.join("cuda_fp16.h"), "").unwrap();
    std::fs::write(shim.join("cuda_bf16.h"), "").unwrap();
    shim
}

/// (name, value) of every enumerator and #define our header gives a value, read from its text.
fn our_constants() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(sys_dir().join("nccl_api.h")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#define NCCL_") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                out.push((format!("NCCL_{name}"), value.to_string()));
            }
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim().trim_end_matches(',').trim();
        if name.starts_with("nccl") && name.chars().all(|c| c.is_ascii_alphanumeric()) {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// Compiles `extra` after the real nccl.h and our prototypes; Ok or the compiler's messages.
fn compile_against_real(extra: &str) -> Result<(), String> {
    let include = wheel_include_dir();
    let dir = tempfile::tempdir().unwrap();
    let shim = cuda_shim(dir.path());
    let source = dir.path().join("abi.c");
    let mut c = String::from(
        "#include <nccl.h>\n#define COLLBENCH_NCCL_TYPES_FROM_NCCL_H\n#include \"nccl_api.h\"\n",
    );
    c.push_str(extra);
    std::fs::write(&source, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only"])
        .arg("-I")
        .arg(&shim)
        .arg("-I")
        .arg(&include)
        .arg("-I")
        .arg(sys_dir())
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// The fields of sys/nccl_api.h's ncclConfigPrefix_v22800, in order.
const CONFIG_FIELDS: [&str; 17] = [
    "size",
    "magic",
    "version",
    "blocking",
    "cgaClusterSize",
    "minCTAs",
    "maxCTAs",
    "netName",
    "splitShare",
    "trafficClass",
    "commName",
    "collnetEnable",
    "CTAPolicy",
    "shrinkShare",
    "nvlsCTAs",
    "nChannelsPerNetPeer",
    "nvlinkCentricSched",
];

#[test]
fn our_declarations_match_the_real_nccl_h() {
    let constants = our_constants();
    // The header must keep declaring the values we rely on; an empty parse would check nothing.
    for needed in [
        "ncclSuccess",
        "ncclInProgress",
        "ncclBfloat16",
        "ncclFloat8e4m3",
        "ncclFloat8e5m2",
        "ncclAvg",
    ] {
        assert!(
            constants.iter().any(|(n, _)| n == needed),
            "{needed} not found in sys/nccl_api.h"
        );
    }
    let mut asserts = String::new();
    for (name, value) in &constants {
        asserts.push_str(&format!(
            "_Static_assert({name} == {value}, \"{name}: sys/nccl_api.h says {value}\");\n"
        ));
    }
    asserts.push_str(
        "_Static_assert(sizeof(ncclUniqueId) == 128, \"ncclUniqueId size\");\n\
         _Static_assert(sizeof(ncclResult_t) == sizeof(int), \"ncclResult_t size\");\n\
         _Static_assert(sizeof(ncclDataType_t) == sizeof(int), \"ncclDataType_t size\");\n\
         _Static_assert(sizeof(ncclRedOp_t) == sizeof(int), \"ncclRedOp_t size\");\n\
         _Static_assert(sizeof(ncclScalarResidence_t) == sizeof(int), \"ncclScalarResidence_t size\");\n",
    );
    // Our prefix of ncclConfig_t: every field at the real struct's offset, the real one at least as long.
    for field in CONFIG_FIELDS {
        asserts.push_str(&format!(
            "_Static_assert(offsetof(ncclConfigPrefix_v22800, {field}) == offsetof(ncclConfig_t, {field}), \"ncclConfig_t.{field} offset\");\n"
        ));
    }
    asserts.push_str(
        "_Static_assert(sizeof(ncclConfigPrefix_v22800) <= sizeof(ncclConfig_t), \"ncclConfig_t prefix size\");\n",
    );
    if let Err(messages) = compile_against_real(&asserts) {
        panic!("sys/nccl_api.h disagrees with the real nccl.h:\n{messages}");
    }
}

#[test]
fn a_conflicting_declaration_fails_the_check() {
    // The check must be able to fail: a prototype with a wrong parameter type, and a wrong value.
    let err = compile_against_real("ncclResult_t ncclGetVersion(long *version);\n").unwrap_err();
    assert!(err.contains("ncclGetVersion"), "{err}");
    let err = compile_against_real("_Static_assert(ncclFloat8e4m3 == 11, \"wrong on purpose\");\n")
        .unwrap_err();
    assert!(err.contains("wrong on purpose"), "{err}");
}

#[test]
fn our_headers_compile_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("alone.c");
    std::fs::write(
        &source,
        "#include \"nccl_api.h\"\n#include \"hip_api.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I"])
        .arg(sys_dir())
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
