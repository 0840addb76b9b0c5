//! Generates the Rust bindings of sys/nccl_api.h, sys/hip_api.h and sys/rocm_smi_api.h with bindgen, for
//! dynamic loading: the libraries are opened at run time (libloading), so collbench builds and starts on
//! machines without NCCL, RCCL, CUDA or ROCm.

use std::env;
use std::path::PathBuf;

/// What bindgen keeps of one header: functions, types and constants matching these patterns.
struct Allow<'a> {
    functions: &'a str,
    types: &'a str,
    vars: &'a str,
    /// Enums made newtypes (result codes and every enum a library may extend).
    newtypes: &'a str,
}

fn generate(header: &str, library_struct: &str, allow: Allow, out_file: &str) {
    println!("cargo:rerun-if-changed={header}");
    let builder = bindgen::Builder::default()
        .header(header)
        .dynamic_library_name(library_struct)
        // Every symbol is optional: a missing one is an Err field we can test (older NCCL without
        // ncclAlltoAll, NCCL without ncclMemAlloc), never a failure to open the library.
        .dynamic_link_require_all(false)
        // Unknown result codes must be representable: a newer library may return one we do not list.
        .newtype_enum(allow.newtypes)
        .allowlist_function(allow.functions)
        .allowlist_type(allow.types)
        .allowlist_var(allow.vars)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("bindgen could not read {header}: {e} (is libclang installed? scripts/setup.sh installs it)"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(out_file);
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    generate(
        "sys/nccl_api.h",
        "NcclLib",
        Allow {
            functions: "nccl.*|rccl.*",
            types: "nccl.*",
            vars: "NCCL.*|COLLBENCH_RCCL.*",
            newtypes: "ncclResult_t|ncclDataType_t|ncclRedOp_t|ncclScalarResidence_t",
        },
        "nccl_sys.rs",
    );
    generate(
        "sys/hip_api.h",
        "HipLib",
        Allow {
            functions: "hip.*",
            types: "hip.*",
            vars: "HIP.*|COLLBENCH_HIP.*",
            newtypes: "hipError_t|hipMemcpyKind",
        },
        "hip_sys.rs",
    );
    generate(
        "sys/rocm_smi_api.h",
        "RocmSmiLib",
        Allow {
            functions: "rsmi_.*",
            types: "rsmi_.*|RSMI_.*|collbench_rsmi.*",
            vars: "RSMI_.*|COLLBENCH_RSMI.*",
            newtypes: "rsmi_status_t|rsmi_clk_type_t|rsmi_temperature_type_t|rsmi_temperature_metric_t|RSMI_IO_LINK_TYPE|rsmi_gpu_block_t|rsmi_memory_type_t",
        },
        "rocm_smi_sys.rs",
    );
}
