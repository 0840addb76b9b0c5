//! The real GPU libraries on a machine without a GPU: libnccl.so.2 from the pip wheel loads through our
//! search and answers; libamdhip64 loads and says there is no device; the NCCL backend refuses to start
//! with NCCL's or CUDA's own words. On a machine with a GPU the same tests check the working path.

use clap::Parser;
use collbench::backend::gpu::{create_gpu_backend, GpuVendor};
use collbench::backend::select::{probe_auto, probe_cuda, Probe};
use collbench::cli::RunArgs;
use collbench::error::{Error, ExitCode};
use collbench::ffi::hip::Hip;
use collbench::ffi::nccl::{Flavor, Nccl, Optional, UNIQUE_ID_BYTES};
use collbench::plan::{BackendChoice, Plan};
use collbench::world::solo::SoloWorld;
use std::path::Path;

const SETUP_HINT: &str = "run `scripts/setup.sh --test` to install the pip NCCL and libamdhip64";

fn plan(args: &[&str]) -> Plan {
    let mut argv = vec!["collbench"];
    argv.extend_from_slice(args);
    Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap()
}

/// NCCL_MAJOR.NCCL_MINOR.NCCL_PATCH of the wheel's nccl.h, next to the library our search found.
fn header_version(lib: &Path) -> Option<String> {
    let header = lib.parent()?.parent()?.join("include").join("nccl.h");
    let text = std::fs::read_to_string(header).ok()?;
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("#define {name} "))
                .map(|v| v.trim().to_string())
        })
    };
    Some(format!(
        "{}.{}.{}",
        field("NCCL_MAJOR")?,
        field("NCCL_MINOR")?,
        field("NCCL_PATCH")?
    ))
}

#[test]
fn the_pip_nccl_loads_through_our_search_and_answers() {
    let nccl = Nccl::open(Flavor::Nccl, None, 0, "testhost")
        .unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    let version = nccl.version_string();
    assert!(version.starts_with("2."), "NCCL version {version}");
    // The version the library reports is the one its own header declares.
    if let Some(expected) = header_version(nccl.path()) {
        assert_eq!(version, expected, "library at {}", nccl.path().display());
    }
    // NCCL 2.28 and later have native all-to-all, gather and scatter.
    if nccl.version_code() >= 22800 {
        assert!(
            nccl.has(Optional::AllToAll)
                && nccl.has(Optional::Gather)
                && nccl.has(Optional::Scatter)
        );
    }
    // NCCL 2.18 and later split communicators (--groups uses it, else a unique id per group).
    assert_eq!(
        nccl.has(Optional::CommSplit),
        nccl.version_code() >= 21800,
        "ncclCommSplit in NCCL {version}"
    );
    // all_to_allv stays nccl-tests' grouped send/recv on NCCL: ncclAllToAllv is RCCL's.
    assert!(!nccl.has(Optional::AllToAllv), "NCCL {version}");
    let id = nccl.unique_id().unwrap();
    assert_eq!(id.len(), UNIQUE_ID_BYTES);
    assert!(id.iter().any(|&b| b != 0), "a unique id is not all zeros");
}

#[test]
fn an_explicit_library_path_is_used_or_reported_with_the_loader_reason() {
    let found = Nccl::open(Flavor::Nccl, None, 0, "testhost")
        .unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    let again = Nccl::open(Flavor::Nccl, Some(found.path()), 0, "testhost").unwrap();
    assert_eq!(again.version_code(), found.version_code());

    let err = Nccl::open(
        Flavor::Nccl,
        Some(Path::new("/nonexistent/libnccl.so.2")),
        3,
        "node9",
    )
    .err()
    .expect("a missing file cannot load");
    assert_eq!(err.exit_code(), ExitCode::Library);
    let m = err.to_string();
    assert!(m.contains("/nonexistent/libnccl.so.2 (--nccl-lib)"), "{m}");
    assert!(
        m.contains("No such file or directory"),
        "the loader's reason is kept: {m}"
    );
    assert!(m.contains("rank 3") && m.contains("node9"), "{m}");
}

#[test]
fn rccl_search_lists_every_place_tried() {
    // No RCCL on this machine: the message lists the loader names and the ROCm folders.
    match Nccl::open(Flavor::Rccl, None, 0, "testhost") {
        Ok(rccl) => assert!(rccl.version_code() > 0),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("librccl.so.1 (loader search")
                    && m.contains("/opt/rocm/lib/librccl.so.1"),
                "{m}"
            );
            assert!(m.contains("--rccl-lib"), "{m}");
        }
    }
}

#[test]
fn the_hip_runtime_loads_and_reports_its_devices_without_panicking() {
    let hip = Hip::open(0, "testhost").unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    match hip.device_count() {
        Ok(n) => assert!(n > 0, "the HIP runtime reported 0 devices without an error"),
        Err(e) => {
            let m = e.to_string();
            assert!(matches!(e, Error::Unsupported(_)), "{m}");
            assert!(
                m.contains("hipErrorNoDevice") && m.contains("no usable AMD GPU"),
                "{m}"
            );
        }
    }
}

#[test]
fn the_nccl_backend_without_a_gpu_fails_with_the_libraries_words() {
    let plan = plan(&["all_reduce", "--backend", "nccl"]);
    let world = SoloWorld::new();
    let result = create_gpu_backend(GpuVendor::Nvidia, &plan.backend_request().gpu, &world);
    match probe_cuda() {
        Probe::Found(_) => {
            let backend = result
                .unwrap_or_else(|e| panic!("a CUDA GPU is visible but the backend failed: {e}"));
            assert_eq!(backend.name(), "nccl");
        }
        Probe::Absent(why) => {
            let err = result
                .err()
                .expect("no CUDA GPU here, so the NCCL backend cannot start");
            let m = err.to_string();
            eprintln!("{m}");
            assert!(
                matches!(err, Error::Unsupported(_) | Error::Library { .. }),
                "{m}"
            );
            assert!(
                m.contains("no usable NVIDIA GPU or driver was found"),
                "{m}"
            );
            // The CUDA side (the loader's or driver's reason) and NCCL's own words are both there.
            assert!(m.contains(&why), "{m}");
            assert!(
                m.contains("NCCL 2.") && m.contains("ncclCommInitRank"),
                "{m}"
            );
            assert!(m.to_ascii_lowercase().contains("cuda"), "{m}");
        }
    }
}

#[test]
fn the_rccl_backend_without_rccl_fails_clearly() {
    let plan = plan(&["all_reduce", "--backend", "rccl"]);
    let world = SoloWorld::new();
    if let Err(err) = create_gpu_backend(GpuVendor::Amd, &plan.backend_request().gpu, &world) {
        let m = err.to_string();
        eprintln!("{m}");
        assert!(m.contains("RCCL") || m.contains("AMD GPU"), "{m}");
    }
}

#[test]
fn auto_falls_back_to_mpi_with_both_reasons_when_no_gpu_is_visible() {
    let (choice, why) = probe_auto(plan(&["all_reduce"]).backend);
    eprintln!("{why}");
    if let Probe::Absent(_) = probe_cuda() {
        if choice == BackendChoice::Mpi {
            assert!(why.contains("CUDA:") && why.contains("HIP:"), "{why}");
        }
    } else {
        assert_eq!(choice, BackendChoice::Nccl, "{why}");
    }
    let (choice, _) = probe_auto(plan(&["all_reduce", "--backend", "mpi"]).backend);
    assert_eq!(choice, BackendChoice::Mpi);
}

#[test]
fn nccl_calls_that_need_a_device_fail_with_nccl_words_not_a_crash() {
    if let Probe::Found(_) = probe_cuda() {
        return; // a GPU is present: these calls succeed, and scripts/gpu-check.sh covers them.
    }
    let nccl =
        Nccl::open(Flavor::Nccl, None, 2, "node3").unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    // An empty group needs no device.
    nccl.group_start().unwrap();
    nccl.group_end().unwrap();
    let err = nccl
        .mem_alloc(1 << 20)
        .expect_err("ncclMemAlloc cannot succeed without a GPU");
    let m = err.to_string();
    eprintln!("{m}");
    assert_eq!(err.exit_code(), ExitCode::Library, "{m}");
    assert!(
        m.contains("NCCL error on rank 2 (node3): ncclMemAlloc"),
        "{m}"
    );
    let err = nccl
        .init_rank(1, &nccl.unique_id().unwrap(), 0)
        .err()
        .expect("no communicator without a GPU");
    let m = err.to_string();
    assert!(
        m.contains("ncclCommInitRank") && m.contains("ncclResult_t"),
        "{m}"
    );
}

#[test]
fn minus_g_threads_without_a_gpu_fail_on_every_rank_without_hanging() {
    use collbench::world::threads::run_threads;
    if let Probe::Found(_) = probe_cuda() {
        return;
    }
    let plan = plan(&["all_reduce", "--backend", "nccl", "-g", "2"]);
    let results = run_threads(2, |world| {
        create_gpu_backend(GpuVendor::Nvidia, &plan.backend_request().gpu, world).map(|b| b.name())
    });
    for (rank, r) in results.into_iter().enumerate() {
        let m = r.expect_err("no GPU here").to_string();
        assert!(
            m.contains(&format!("rank {rank}")) && m.contains("no usable NVIDIA GPU"),
            "{m}"
        );
    }
}

#[test]
fn our_hip_error_codes_are_the_runtimes() {
    // No HIP headers here to compile against; the real runtime names each code instead.
    let hip = Hip::open(0, "testhost").unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sys/hip_api.h"))
            .unwrap();
    let mut checked = 0;
    for line in header.lines() {
        let Some((name, value)) = line.trim().trim_end_matches(',').split_once(" = ") else {
            continue;
        };
        if !name.starts_with("hipError") && name != "hipSuccess" {
            continue;
        }
        let code: u32 = value.trim().parse().unwrap();
        assert_eq!(
            hip.error_name(code).as_deref(),
            Some(name),
            "code {code} in sys/hip_api.h"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} codes found in sys/hip_api.h");
}

#[test]
fn the_pip_nccl_answers_what_r_x_and_mulsum_need_and_the_gates_follow_its_version() {
    use collbench::backend::gpu::{comm_config, registration_for};
    use collbench::backend::Registration;
    let nccl = Nccl::open(Flavor::Nccl, None, 0, "testhost")
        .unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    let code = nccl.version_code();
    let version = nccl.version_string();
    // Asked of the loaded library, symbol by symbol, each as old as NCCL's release notes say.
    assert_eq!(
        nccl.has(Optional::Register),
        code >= 21900,
        "NCCL {version}"
    );
    assert_eq!(nccl.has(Optional::Window), code >= 22700, "NCCL {version}");
    assert_eq!(
        nccl.has(Optional::InitRankConfig),
        code >= 21400,
        "NCCL {version}"
    );
    assert_eq!(
        nccl.has(Optional::PreMulSum),
        code >= 21100,
        "NCCL {version}"
    );
    // -R 2 on this library: a symmetric window from 2.27, else -R 1 with a note.
    let (mode, note) = registration_for(
        Registration::Symmetric,
        Flavor::Nccl,
        code,
        nccl.has(Optional::Register),
        nccl.has(Optional::Window),
    )
    .unwrap();
    if code >= 22700 {
        assert_eq!((mode, note), (Registration::Symmetric, None));
    } else {
        assert_eq!(mode, Registration::Local);
    }
    // -x 2 needs 2.28; from 2.28 nvlinkCentricSched is set, as nccl-tests sets it.
    let config = comm_config(
        Some(2),
        Flavor::Nccl,
        code,
        nccl.has(Optional::InitRankConfig),
    );
    if code >= 22800 {
        let c = config.unwrap().unwrap();
        assert_eq!((c.cta_policy, c.nvlink_centric_sched), (Some(2), Some(1)));
    } else {
        assert!(config.unwrap_err().contains("2.28"));
    }
}

#[test]
fn a_communicator_with_options_fails_without_a_gpu_in_nccls_words() {
    if let Probe::Found(_) = probe_cuda() {
        return; // with a GPU it succeeds: scripts/gpu-check.sh runs -x.
    }
    let nccl =
        Nccl::open(Flavor::Nccl, None, 1, "node5").unwrap_or_else(|e| panic!("{e}\n{SETUP_HINT}"));
    if !nccl.has(Optional::InitRankConfig) {
        return;
    }
    // The 2.28 layout with CTAPolicy 1: NCCL reads it and fails for want of a device, not of the
    // struct (a wrong size or magic is ncclInvalidArgument with a WARN about NCCL_CONFIG_INITIALIZER).
    let config = collbench::ffi::nccl::CommConfig {
        cta_policy: Some(1),
        nvlink_centric_sched: Some(1),
    };
    let err = nccl
        .init_rank_with(1, &nccl.unique_id().unwrap(), 0, Some(&config))
        .err()
        .expect("no communicator without a GPU");
    let m = err.to_string();
    eprintln!("{m}");
    assert_eq!(err.exit_code(), ExitCode::Library, "{m}");
    assert!(
        m.contains("ncclCommInitRankConfig") && m.contains("rank 1 (node5)"),
        "{m}"
    );
    assert!(
        !m.contains("ncclInvalidArgument") && !m.contains("NCCL_CONFIG_INITIALIZER"),
        "{m}"
    );
}
