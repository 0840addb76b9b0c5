//! ABI checks of sys/'s declarations against the real headers: sys/nccl_api.h against the real nccl.h of
//! PyPI's nvidia-nccl-cu12 wheel and the real rccl.h of RCCL 5.4.3 and 7.2.4 (Debian sid and
//! experimental), sys/rocm_smi_api.h against the real rocm_smi.h of ROCm SMI 5.2.3 (Debian 12) and 6.4.1
//! (sid). Every prototype we declare must agree with the library's (a conflicting declaration is a
//! compile error), every enum value and size we declare must equal the library's, and each release's
//! struct layout must have the real one's size and field offsets (_Static_assert). Runs the C compiler
//! ($CC or cc) directly. The Debian headers come from `scripts/setup.sh --test` and scripts/amd-root.sh
//! (tests/amd/mod.rs); without them those checks skip with the reason, or fail in CI.

mod amd;

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

/// (name, value) of every enumerator and #define of `header` whose name starts with `enum_prefix` or
/// `define_prefix`, read from its text.
fn constants_of(header: &str, enum_prefix: &str, define_prefix: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(sys_dir().join(header)).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix(&format!("#define {define_prefix}")) {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                out.push((format!("{define_prefix}{name}"), value.to_string()));
            }
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim().trim_end_matches(',').trim();
        if name.starts_with(enum_prefix)
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// (name, value) of every enumerator and #define sys/nccl_api.h gives a value.
fn our_constants() -> Vec<(String, String)> {
    constants_of("nccl_api.h", "nccl", "NCCL_")
}

/// Whether `text` has `word` as a whole identifier.
fn has_identifier(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word)
        .any(|(at, _)| !text[..at].ends_with(ident) && !text[at + word.len()..].starts_with(ident))
}

/// Compiles `source` with the given include folders (ours last); Ok or the compiler's messages.
fn compile(includes: &[PathBuf], source: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("abi.c");
    std::fs::write(&file, source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only"]);
    for dir in includes.iter().chain([&sys_dir()]) {
        cmd.arg("-I").arg(dir);
    }
    let out = cmd
        .arg(&file)
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

/// Compiles `extra` after the real nccl.h and our prototypes; Ok or the compiler's messages.
fn compile_against_real(extra: &str) -> Result<(), String> {
    let include = wheel_include_dir();
    let dir = tempfile::tempdir().unwrap();
    let shim = cuda_shim(dir.path());
    let mut c = String::from(
        "#include <nccl.h>\n#define COLLBENCH_NCCL_TYPES_FROM_NCCL_H\n#include \"nccl_api.h\"\n",
    );
    c.push_str(extra);
    compile(&[shim, include], &c)
}

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
    compile(
        &[],
        "#include \"nccl_api.h\"\n#include \"hip_api.h\"\n#include \"rocm_smi_api.h\"\n\
         int main(void) { return 0; }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

// ---- RCCL ----

/// rccl.h includes HIP's headers for hipStream_t alone; these stand-ins declare it as HIP does (a
/// pointer to an opaque struct), so the check runs without HIP's development headers.
fn hip_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("hip-shim");
    std::fs::create_dir_all(shim.join("hip")).unwrap();
    std::fs::write(
        shim.join("hip/hip_runtime.h"),
        "#include <stddef.h>\n#include <stdint.h>\n\
         typedef struct ihipStream_t *hipStream_t;\ntypedef struct ihipEvent_t *hipEvent_t;\n",
    )
    .unwrap();
    std::fs::write(shim.join("hip/hip_fp16.h"), "").unwrap();
    shim
}

/// What an RCCL release's rccl.h lacks or numbers otherwise among the constants we declare: names it
/// does not have (newer NCCL API), and the counts at the end of its enums, which grow with the API.
struct RcclRelease {
    folder: amd::Stack,
    nccl_api: &'static str,
    absent: &'static [&'static str],
    counts: &'static [(&'static str, i64)],
}

const RCCL_RELEASES: [RcclRelease; 2] = [
    RcclRelease {
        folder: amd::Stack::Rccl5,
        nccl_api: "2.13.4",
        // NCCL 2.13's API: no non-blocking communicators, no timeout code, no FP8, no ncclConfig_t
        // (2.14), no CTA policy or symmetric windows (2.27). NCCL_API_MAGIC is our name for the
        // config's magic, which NCCL's headers write as a literal.
        absent: &[
            "ncclInProgress",
            "ncclTimeout",
            "ncclFloat8e4m3",
            "ncclFloat8e5m2",
            "NCCL_API_MAGIC",
            "NCCL_CONFIG_UNDEF_INT",
            "NCCL_CTA_POLICY_DEFAULT",
            "NCCL_CTA_POLICY_EFFICIENCY",
            "NCCL_CTA_POLICY_ZERO",
            "NCCL_WIN_DEFAULT",
            "NCCL_WIN_COLL_SYMMETRIC",
        ],
        counts: &[("ncclNumResults", 7), ("ncclNumTypes", 10)],
    },
    RcclRelease {
        folder: amd::Stack::Rccl7,
        nccl_api: "2.27.7",
        // NCCL_CTA_POLICY_ZERO is NCCL 2.28's (-x 2 is gated on it); the magic is a literal there too.
        absent: &["ncclTimeout", "NCCL_API_MAGIC", "NCCL_CTA_POLICY_ZERO"],
        counts: &[("ncclNumResults", 8)],
    },
];

/// Compiles `extra` after the release's real rccl.h and our prototypes (RCCL's own included).
fn compile_against_rccl(
    root: &amd::AmdRoot,
    release: &RcclRelease,
    extra: &str,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let shim = hip_shim(dir.path());
    let source = format!(
        "#include <rccl/rccl.h>\ntypedef hipStream_t cudaStream_t;\n\
         #define COLLBENCH_NCCL_TYPES_FROM_NCCL_H\n#include \"nccl_api.h\"\n{extra}"
    );
    compile(&[shim, root.include(release.folder)], &source)
}

/// The _Static_asserts of our constants against one RCCL release, and the names it lacks.
fn rccl_asserts(release: &RcclRelease, real: &str) -> (String, Vec<String>) {
    let mut asserts = String::new();
    let mut absent = Vec::new();
    for (name, ours) in our_constants() {
        if !has_identifier(real, &name) {
            absent.push(name);
            continue;
        }
        let value = match release.counts.iter().find(|(n, _)| *n == name) {
            Some((_, theirs)) => theirs.to_string(),
            None => ours.clone(),
        };
        asserts.push_str(&format!(
            "_Static_assert({name} == {value}, \"{name}: expected {value}\");\n"
        ));
    }
    asserts.push_str(
        "_Static_assert(sizeof(ncclUniqueId) == 128, \"ncclUniqueId size\");\n\
         _Static_assert(sizeof(ncclResult_t) == sizeof(int), \"ncclResult_t size\");\n\
         _Static_assert(sizeof(ncclDataType_t) == sizeof(int), \"ncclDataType_t size\");\n\
         _Static_assert(sizeof(ncclRedOp_t) == sizeof(int), \"ncclRedOp_t size\");\n",
    );
    (asserts, absent)
}

#[test]
fn our_declarations_match_the_real_rccl_h_of_both_releases() {
    let Some(root) = amd::AmdRoot::find() else {
        return;
    };
    for release in &RCCL_RELEASES {
        let header = root.include(release.folder).join("rccl/rccl.h");
        let real = std::fs::read_to_string(&header)
            .unwrap_or_else(|e| panic!("{}: {e}", header.display()));
        let (major, minor, patch) = (
            define_of(&real, "NCCL_MAJOR"),
            define_of(&real, "NCCL_MINOR"),
            define_of(&real, "NCCL_PATCH"),
        );
        assert_eq!(
            format!("{major}.{minor}.{patch}"),
            release.nccl_api,
            "{}",
            header.display()
        );
        // RCCL's own entry points are among those compared (sys/nccl_api.h declares them when the real
        // header defines RCCL_ALLTOALLV).
        assert!(has_identifier(&real, "RCCL_ALLTOALLV") && has_identifier(&real, "ncclAllToAllv"));
        let (asserts, absent) = rccl_asserts(release, &real);
        assert_eq!(
            absent, release.absent,
            "constants of sys/nccl_api.h that RCCL {} lacks",
            release.nccl_api
        );
        if let Err(messages) = compile_against_rccl(&root, release, &asserts) {
            panic!(
                "sys/nccl_api.h disagrees with the real rccl.h of RCCL {} ({}):\n{messages}",
                release.nccl_api,
                header.display()
            );
        }
    }
}

/// The value of `#define NAME VALUE` in a header's text.
fn define_of(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("#define {name} ")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no #define {name}"))
}

#[test]
fn a_conflicting_rccl_declaration_fails_the_check() {
    let Some(root) = amd::AmdRoot::find() else {
        return;
    };
    for release in &RCCL_RELEASES {
        // ncclAllToAllv's counts are size_t in RCCL: int counts would be read as half as many bytes.
        let err = compile_against_rccl(
            &root,
            release,
            "ncclResult_t ncclAllToAllv(const void *sendbuff, const int sendcounts[], const size_t sdispls[],\n\
             void *recvbuff, const size_t recvcounts[], const size_t rdispls[], ncclDataType_t datatype,\n\
             ncclComm_t comm, hipStream_t stream);\n",
        )
        .unwrap_err();
        assert!(err.contains("ncclAllToAllv"), "{err}");
        let err = compile_against_rccl(
            &root,
            release,
            "_Static_assert(ncclBfloat16 == 10, \"wrong on purpose\");\n",
        )
        .unwrap_err();
        assert!(err.contains("wrong on purpose"), "{err}");
    }
}

// ---- HIP ----

/// Our names of HIP's allocation flags and the real header's macros they stand for.
const HIP_FLAGS: [(&str, &str); 4] = [
    ("COLLBENCH_HIP_HOST_MALLOC_DEFAULT", "hipHostMallocDefault"),
    ("COLLBENCH_HIP_MEM_ATTACH_GLOBAL", "hipMemAttachGlobal"),
    (
        "COLLBENCH_HIP_DEVICE_MALLOC_FINEGRAINED",
        "hipDeviceMallocFinegrained",
    ),
    (
        "COLLBENCH_HIP_DEVICE_MALLOC_UNCACHED",
        "hipDeviceMallocUncached",
    ),
];

/// Compiles `extra` after the real hip_runtime_api.h of HIP 7.2.4 and our declarations.
fn compile_against_hip(root: &amd::AmdRoot, extra: &str) -> Result<(), String> {
    let source = format!(
        "#define __HIP_PLATFORM_AMD__\n#include <hip/hip_runtime_api.h>\n\
         #define COLLBENCH_HIP_TYPES_FROM_HIP_H\n#include \"hip_api.h\"\n{extra}"
    );
    compile(&[root.include(amd::Stack::Hip7)], &source)
}

#[test]
fn our_hip_declarations_match_the_real_hip_runtime_api_h() {
    let Some(root) = amd::AmdRoot::find() else {
        return;
    };
    let constants = constants_of("hip_api.h", "hip", "COLLBENCH_HIP_");
    for (ours, _) in HIP_FLAGS {
        assert!(
            constants.iter().any(|(n, _)| n == ours),
            "{ours} not in sys/hip_api.h"
        );
    }
    let mut asserts = String::new();
    for (name, value) in &constants {
        let real = HIP_FLAGS
            .iter()
            .find(|(ours, _)| ours == name)
            .map(|(_, theirs)| theirs.to_string())
            .unwrap_or_else(|| name.clone());
        asserts.push_str(&format!(
            "_Static_assert({real} == {value}, \"{name}: sys/hip_api.h says {value}\");\n"
        ));
    }
    asserts.push_str("_Static_assert(sizeof(hipError_t) == sizeof(int), \"hipError_t size\");\n");
    if let Err(messages) = compile_against_hip(&root, &asserts) {
        panic!("sys/hip_api.h disagrees with the real hip_runtime_api.h of HIP 7.2.4:\n{messages}");
    }
    let err = compile_against_hip(
        &root,
        "hipError_t hipHostMalloc(void **ptr, size_t size, int flags);\n",
    )
    .unwrap_err();
    assert!(
        err.contains("hipHostMalloc"),
        "a wrong prototype must fail: {err}"
    );
}

// ---- ROCm SMI ----

/// One ROCm SMI release whose real rocm_smi.h we compare with: the layouts of ours that must match it.
struct SmiRelease {
    name: &'static str,
    /// (our struct, the real one, whether the sizes must be equal: the GPU metrics' head is only the
    /// beginning of the real struct).
    layouts: &'static [(&'static str, &'static str, bool)],
    max_frequencies: &'static str,
}

const COMMON_LAYOUTS: [(&str, &str, bool); 3] = [
    ("collbench_rsmi_version", "rsmi_version_t", true),
    ("collbench_rsmi_error_count", "rsmi_error_count_t", true),
    (
        "collbench_rsmi_metrics_header",
        "struct metrics_table_header_t",
        true,
    ),
];

const ROCM_5: SmiRelease = SmiRelease {
    name: "5.2.3",
    layouts: &[
        ("collbench_rsmi5_frequencies", "rsmi_frequencies_t", true),
        (
            "collbench_rsmi5_pcie_bandwidth",
            "rsmi_pcie_bandwidth_t",
            true,
        ),
        (
            "collbench_rsmi5_gpu_metrics_head",
            "rsmi_gpu_metrics_t",
            false,
        ),
    ],
    max_frequencies: "COLLBENCH_RSMI5_MAX_NUM_FREQUENCIES",
};

const ROCM_6: SmiRelease = SmiRelease {
    name: "6.4.1",
    layouts: &[
        ("collbench_rsmi6_frequencies", "rsmi_frequencies_t", true),
        (
            "collbench_rsmi6_pcie_bandwidth",
            "rsmi_pcie_bandwidth_t",
            true,
        ),
        (
            "collbench_rsmi6_gpu_metrics_head",
            "rsmi_gpu_metrics_t",
            false,
        ),
    ],
    max_frequencies: "COLLBENCH_RSMI6_MAX_NUM_FREQUENCIES",
};

/// The field names of `typedef struct { ... } name;` in sys/rocm_smi_api.h.
fn fields_of(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(sys_dir().join("rocm_smi_api.h")).unwrap();
    let end = text
        .find(&format!("}} {name};"))
        .unwrap_or_else(|| panic!("no struct {name} in sys/rocm_smi_api.h"));
    let typedef = text[..end].rfind("typedef struct").unwrap();
    let start = typedef + text[typedef..].find('{').unwrap() + 1;
    text[start..end]
        .lines()
        .filter_map(|l| {
            let decl = l.trim().strip_suffix(';')?;
            let last = decl.split_whitespace().last()?;
            Some(
                last.split('[')
                    .next()
                    .unwrap()
                    .trim_start_matches('*')
                    .to_string(),
            )
        })
        .collect()
}

/// The _Static_asserts of one release: our enumerators' values, its number of frequency levels, each
/// layout's field offsets and size, and room for its whole GPU metrics struct.
fn rocm_smi_asserts(release: &SmiRelease) -> String {
    let mut asserts = String::new();
    for (name, value) in constants_of("rocm_smi_api.h", "RSMI_", "RSMI_") {
        asserts.push_str(&format!(
            "_Static_assert({name} == {value}, \"{name}: sys/rocm_smi_api.h says {value}\");\n"
        ));
    }
    asserts.push_str(&format!(
        "_Static_assert(RSMI_MAX_NUM_FREQUENCIES == {0}, \"{0}\");\n",
        release.max_frequencies
    ));
    for (ours, theirs, same_size) in COMMON_LAYOUTS.iter().chain(release.layouts) {
        for field in fields_of(ours) {
            asserts.push_str(&format!(
                "_Static_assert(offsetof({ours}, {field}) == offsetof({theirs}, {field}), \
                 \"{ours}.{field} is not where {theirs} has it\");\n"
            ));
        }
        if *same_size {
            asserts.push_str(&format!(
                "_Static_assert(sizeof({ours}) == sizeof({theirs}), \"{ours}: size of {theirs}\");\n"
            ));
        }
    }
    asserts.push_str(
        "_Static_assert(sizeof(rsmi_gpu_metrics_t) <= COLLBENCH_RSMI_GPU_METRICS_BUFFER, \
         \"the GPU metrics buffer is smaller than this release's struct\");\n",
    );
    asserts
}

/// Compiles `extra` after the real rocm_smi.h in `include` and our declarations.
fn compile_against_rocm_smi(include: &Path, extra: &str) -> Result<(), String> {
    let source = format!(
        "#include <rocm_smi/rocm_smi.h>\n#define COLLBENCH_RSMI_TYPES_FROM_ROCM_SMI_H\n\
         #include \"rocm_smi_api.h\"\n#include <stddef.h>\n{extra}"
    );
    compile(&[include.to_path_buf()], &source)
}

/// Each release with the folder of its real header, where there is one.
fn rocm_smi_releases() -> Vec<(SmiRelease, PathBuf)> {
    let mut out = Vec::new();
    if let Some((_, include)) = amd::debian_rocm_smi() {
        out.push((ROCM_5, include));
    }
    if let Some(root) = amd::AmdRoot::find() {
        out.push((ROCM_6, root.include(amd::Stack::RocmSmi6)));
    }
    out
}

#[test]
fn our_rocm_smi_declarations_match_the_real_rocm_smi_h_of_both_releases() {
    // Every struct of ours is compared with some release's.
    let compared: Vec<&str> = COMMON_LAYOUTS
        .iter()
        .chain(ROCM_5.layouts)
        .chain(ROCM_6.layouts)
        .map(|l| l.0)
        .collect();
    let text = std::fs::read_to_string(sys_dir().join("rocm_smi_api.h")).unwrap();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("} collbench_rsmi") {
            let name = format!("collbench_rsmi{}", name.trim_end_matches(';'));
            assert!(
                compared.contains(&name.as_str()),
                "{name} is compared with no real struct"
            );
        }
    }
    for (release, include) in rocm_smi_releases() {
        if let Err(messages) = compile_against_rocm_smi(&include, &rocm_smi_asserts(&release)) {
            panic!(
                "sys/rocm_smi_api.h disagrees with the real rocm_smi.h of ROCm SMI {} ({}):\n{messages}",
                release.name,
                include.display()
            );
        }
    }
}

#[test]
fn a_layout_of_the_other_release_or_a_wrong_prototype_fails_the_rocm_smi_check() {
    for (release, include) in rocm_smi_releases() {
        // Each release's checks fail against the other's header: the layouts differ where it matters.
        let other = if release.name == ROCM_5.name {
            ROCM_6
        } else {
            ROCM_5
        };
        let err = compile_against_rocm_smi(&include, &rocm_smi_asserts(&other)).unwrap_err();
        assert!(
            err.contains("collbench_rsmi") && err.contains("frequencies"),
            "ROCm SMI {}: {err}",
            release.name
        );
        let err = compile_against_rocm_smi(
            &include,
            "rsmi_status_t rsmi_dev_pci_id_get(uint32_t dv_ind, uint32_t *bdfid);\n",
        )
        .unwrap_err();
        assert!(err.contains("rsmi_dev_pci_id_get"), "{err}");
    }
}
