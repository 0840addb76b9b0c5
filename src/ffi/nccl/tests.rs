use super::*;

#[test]
fn version_codes_decode_both_schemes() {
    assert_eq!(version_from_code(23203), (2, 32, 3));
    assert_eq!(version_from_code(2804), (2, 8, 4));
    assert_eq!(version_from_code(21903), (2, 19, 3));
    assert_eq!(version_code(2, 24, 0), 22400);
    assert_eq!(version_code(2, 8, 4), 2804);
    assert!(version_code(2, 10, 0) > version_code(2, 8, 4));
}

#[test]
fn the_config_says_its_layout_and_leaves_the_rest_to_the_library() {
    let raw = CommConfig {
        cta_policy: Some(1),
        nvlink_centric_sched: None,
    }
    .raw();
    assert_eq!(
        raw.size,
        std::mem::size_of::<sys::ncclConfigPrefix_v22800>()
    );
    assert_eq!(raw.magic, 0xcafebeef);
    assert_eq!(raw.version, 22800);
    assert_eq!(raw.CTAPolicy, 1);
    assert_eq!(raw.nvlinkCentricSched, i32::MIN);
    assert_eq!(raw.blocking, i32::MIN);
    assert!(raw.netName.is_null());
}

#[test]
fn data_type_codes_match_nccl() {
    let codes: Vec<u32> = DataType::ALL.iter().map(|&d| nccl_type(d).0).collect();
    // DataType::ALL is in nccl-tests order, which is NCCL's numbering.
    assert_eq!(codes, (0..12).collect::<Vec<u32>>());
    let ops: Vec<Option<u32>> = ReduceOp::ALL
        .iter()
        .map(|&o| nccl_op(o).map(|o| o.0))
        .collect();
    assert_eq!(ops, [Some(0), Some(1), Some(2), Some(3), Some(4), None]);
}

#[test]
fn all_to_allv_lists_must_cover_every_rank_the_library_reads() {
    let counts = PeerCounts {
        send_counts: vec![1, 2, 3],
        send_displs: vec![0, 1, 3],
        recv_counts: vec![4, 5, 6],
        recv_displs: vec![0, 4, 9],
    };
    assert!(counts.fits(3).is_ok());
    let short = counts.fits(4).unwrap_err().to_string();
    assert!(
        short.contains("3 send counts for a communicator of 4 ranks"),
        "{short}"
    );
    let torn = PeerCounts {
        recv_displs: vec![0, 4],
        ..counts
    };
    let err = torn.fits(3).unwrap_err().to_string();
    assert!(err.contains("2 receive displacements"), "{err}");
}
