//! Generates the Rust bindings of sys/nccl_api.h and sys/hip_api.h with bindgen, for dynamic loading:
//! the libraries are opened at run time (libloading), so collbench builds and starts on machines without
//! NCCL, RCCL, CUDA or ROCm.

use std::env;
use std::path::PathBuf;

fn generate(
    header: &str,
    library_struct: &str,
    prefixes: &[&str],
    result_enum: &str,
    out_file: &str,
) {
    println!("cargo:rerun-if-changed={header}");
    let mut builder = bindgen::Builder::default()
        .header(header)
        .dynamic_library_name(library_struct)
        // Every symbol is optional: a missing one is an Err field we can test (older NCCL without
        // ncclAlltoAll, NCCL without ncclMemAlloc), never a failure to open the library.
        .dynamic_link_require_all(false)
        // Unknown result codes must be representable: a newer library may return one we do not list.
        .newtype_enum(result_enum)
        .newtype_enum("ncclDataType_t|ncclRedOp_t|ncclScalarResidence_t|hipMemcpyKind")
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for prefix in prefixes {
        builder = builder
            .allowlist_function(format!("{prefix}.*"))
            .allowlist_type(format!("{prefix}.*"))
            .allowlist_var(format!("{}.*", prefix.to_ascii_uppercase()));
    }
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
        &["nccl"],
        "ncclResult_t",
        "nccl_sys.rs",
    );
    generate(
        "sys/hip_api.h",
        "HipLib",
        &["hip"],
        "hipError_t",
        "hip_sys.rs",
    );
}
