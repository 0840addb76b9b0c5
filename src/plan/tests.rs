use super::*;
use clap::Parser;

fn plan(args: &[&str]) -> Result<Plan> {
    let mut argv = vec!["collbench"];
    argv.extend_from_slice(args);
    Plan::from_args(&RunArgs::try_parse_from(argv).expect("clap accepts"))
}

fn usage_message(args: &[&str]) -> String {
    match plan(args) {
        Err(Error::Usage(m)) => m,
        other => panic!("expected a usage error for {args:?}, got {other:?}"),
    }
}

#[test]
fn defaults_are_the_mission_sweep() {
    let p = plan(&["all_reduce"]).unwrap();
    assert_eq!((p.min_bytes, p.max_bytes), (32 << 10, 16u64 << 30));
    assert_eq!(p.step, Step::Factor(2));
    assert_eq!(
        (p.iters, p.warmup_iters, p.check_iters),
        (Iterations::Fixed(20), 1, 1)
    );
    assert_eq!(p.dtypes, vec![DataType::Float]);
    assert_eq!(p.ops, vec![ReduceOp::Sum]);
    assert_eq!(p.sizes(p.max_bytes).len(), 20);
}

#[test]
fn all_expands_and_duplicates_collapse() {
    let p = plan(&["all", "-d", "all", "-o", "all", "-r", "all"]).unwrap();
    assert_eq!(p.collectives.len(), 9);
    assert_eq!(p.dtypes.len(), 12);
    assert_eq!(
        p.ops.len(),
        6,
        "nccl-tests' all: sum prod max min avg mulsum"
    );
    assert_eq!(
        p.roots_for(Collective::Broadcast, 3),
        vec![Some(0), Some(1), Some(2)]
    );
    assert_eq!(p.roots_for(Collective::AllReduce, 3), vec![None]);
    let p = plan(&["allreduce", "all_reduce", "-d", "float,int32", "-r", "-1"]).unwrap();
    assert_eq!(p.collectives, vec![Collective::AllReduce]);
    assert_eq!(p.dtypes, vec![DataType::Float, DataType::Int32]);
    assert_eq!(p.roots, Roots::All);
}

#[test]
fn usage_errors_name_the_flag() {
    assert!(usage_message(&["all_reduce", "-b", "64M", "-e", "32K"]).contains("-b/--minbytes"));
    assert!(usage_message(&["no_such_collective"]).contains("no_such_collective"));
    assert!(usage_message(&["all_reduce", "-b", "12Q"]).contains("12Q"));
    assert!(usage_message(&["all_reduce", "-n", "0"]).contains("-n/--iters"));
    assert!(usage_message(&["all_reduce", "-d", "float128"]).contains("-d/--datatype"));
    assert!(usage_message(&["all_reduce", "-o", "mean"]).contains("-o/--op"));
    assert!(usage_message(&["all_reduce", "-r", "x"]).contains("-r/--root"));
    assert!(usage_message(&["all_reduce", "-a", "7"]).contains("-a/--average"));
    assert!(usage_message(&["all_reduce", "-m", "0"]).contains("-m/--agg_iters"));
    assert!(
        usage_message(&["all_reduce", "-f", "1", "-b", "1K", "-e", "1M"])
            .contains("-f/--stepfactor")
    );
    assert!(usage_message(&["all_reduce", "--backend", "gloo"]).contains("--backend"));
    assert!(usage_message(&["all_reduce", "-T", "-1"]).contains("-T/--timeout"));
    assert!(usage_message(&["all_reduce", "-n", "many"]).contains("-n/--iters"));
    assert!(
        usage_message(&["all_reduce", "-n", "auto", "--ci-target", "0"]).contains("--ci-target")
    );
    assert!(usage_message(&["all_reduce", "--expect", "busbw>>3"]).contains("--expect"));
    assert!(usage_message(&["all_reduce", "--peak", "-3"]).contains("--peak"));
    assert!(usage_message(&["all_reduce", "-G", "5", "-n", "auto"]).contains("-G"));
    assert!(usage_message(&["all_reduce", "-G", "5", "-z", "1"]).contains("-G and -z 1"));
}

#[test]
fn auto_iterations_take_their_targets() {
    let p = plan(&[
        "all_reduce",
        "-n",
        "auto",
        "--ci-target",
        "2",
        "--min-iters",
        "5",
        "--size-time-cap",
        "3",
    ])
    .unwrap();
    assert_eq!(
        p.iters,
        Iterations::Auto {
            ci_target_percent: 2.0,
            min: 5,
            cap_s: 3.0
        }
    );
}

#[test]
fn step_bytes_replaces_the_factor() {
    let p = plan(&["sendrecv", "-b", "1M", "-e", "4M", "-i", "1M"]).unwrap();
    assert_eq!(
        p.sizes(p.max_bytes),
        vec![1 << 20, 2 << 20, 3 << 20, 4 << 20]
    );
}

#[test]
fn rccl_tests_q_is_a_delay_and_quiet_is_long_only() {
    assert_eq!(
        plan(&["all_reduce", "-q", "250"])
            .unwrap()
            .delay_inout_place_us,
        250
    );
    assert!(plan(&["all_reduce", "--quiet"]).unwrap().quiet);
    let m = usage_message(&["all_reduce", "-q"]);
    assert!(m.contains("microseconds") && m.contains("--quiet"), "{m}");
    let m = usage_message(&["all_reduce", "-q", "soon"]);
    assert!(m.contains("-q/--delay_inout_place 'soon'"), "{m}");
    let m = usage_message(&["all_reduce", "-q", "10", "-O", "1"]);
    assert!(m.contains("-O measures only one"), "{m}");
}

#[test]
fn rccl_tests_o_picks_one_placement() {
    assert_eq!(plan(&["all_reduce"]).unwrap().placements, Placements::BOTH);
    let out = plan(&["all_reduce", "-O", "1"]).unwrap().placements;
    assert!(out.out_of_place && !out.in_place);
    let inp = plan(&["all_reduce", "-O", "0"]).unwrap().placements;
    assert!(!inp.out_of_place && inp.in_place);
    assert!(usage_message(&["all_reduce", "-O", "2"]).contains("use 1 (out-of-place only) or 0"));
}

#[test]
fn rccl_tests_e_a_take_zero_or_one_and_e_grows_the_buffers() {
    let p = plan(&["all_reduce", "-E", "1", "-A", "1"]).unwrap();
    assert!(p.rotating_tensor && p.algo_columns);
    assert_eq!(p.extra_buffer_bytes(), ROTATING_TENSOR_BYTES);
    assert_eq!(plan(&["all_reduce"]).unwrap().extra_buffer_bytes(), 0);
    assert!(usage_message(&["all_reduce", "-E", "2"]).contains("-E/--rotating_tensor 2"));
    assert!(usage_message(&["all_reduce", "-A", "3"]).contains("-A/--output_algo_proto_channels 3"));
}

#[test]
fn rccl_tests_f_is_refused_with_the_reason() {
    match plan(&["all_reduce", "-F", "10"]) {
        Err(Error::Unsupported(m)) => {
            assert!(m.contains("-F 10") && m.contains("kernel"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(plan(&["all_reduce", "-F", "0"]).is_ok());
}

#[test]
fn rccl_tests_z_needs_x_and_the_reverse() {
    let p = plan(&["all_reduce", "-Z", "json", "-X", "out.json"]).unwrap();
    assert_eq!(
        p.rccl_output,
        Some((RcclFormat::Json, PathBuf::from("out.json")))
    );
    assert!(usage_message(&["all_reduce", "-Z", "csv"]).contains("add -X FILE"));
    assert!(usage_message(&["all_reduce", "-X", "f.csv"]).contains("add -Z csv or -Z json"));
    assert!(
        usage_message(&["all_reduce", "-Z", "xml", "-X", "f"]).contains("'xml': use csv or json")
    );
}

#[test]
fn rccl_tests_y_is_gpu_memory_for_the_gpu_backends() {
    let p = plan(&["all_reduce", "-Y", "fine", "--backend", "rccl"]).unwrap();
    assert_eq!(p.backend_request().gpu.memory, MemoryKind::Fine);
    assert_eq!(plan(&["all_reduce"]).unwrap().memory, MemoryKind::Coarse);
    let m = usage_message(&["all_reduce", "-Y", "host", "--backend", "mpi"]);
    assert!(m.contains("mpi backend moves host memory"), "{m}");
    let m = usage_message(&["all_reduce", "-Y", "managed", "--alloc", "nccl"]);
    assert!(m.contains("--alloc nccl"), "{m}");
}
