use super::*;

#[test]
fn cta_policy_and_nvlink_scheduling_follow_the_library_version() {
    // NCCL 2.26: no CTA policy; nothing else to set, so plain ncclCommInitRank.
    let e = comm_config(Some(1), Flavor::Nccl, 22605, true).unwrap_err();
    assert!(e.contains("NCCL 2.27") && e.contains("2.26.5"), "{e}");
    assert_eq!(comm_config(None, Flavor::Nccl, 22605, true).unwrap(), None);
    // 2.27 takes 0 and 1; 2 (NCCL_CTA_POLICY_ZERO) needs 2.28.
    let c = comm_config(Some(1), Flavor::Nccl, 22703, true)
        .unwrap()
        .unwrap();
    assert_eq!((c.cta_policy, c.nvlink_centric_sched), (Some(1), None));
    let e = comm_config(Some(2), Flavor::Nccl, 22703, true).unwrap_err();
    assert!(
        e.contains("NCCL 2.28") && e.contains("NCCL_CTA_POLICY_ZERO"),
        "{e}"
    );
    // 2.28+: nvlinkCentricSched = 1 as nccl-tests, with or without -x.
    let c = comm_config(Some(2), Flavor::Nccl, 23203, true)
        .unwrap()
        .unwrap();
    assert_eq!((c.cta_policy, c.nvlink_centric_sched), (Some(2), Some(1)));
    let c = comm_config(None, Flavor::Nccl, 22803, true)
        .unwrap()
        .unwrap();
    assert_eq!((c.cta_policy, c.nvlink_centric_sched), (None, Some(1)));
    // A library without ncclCommInitRankConfig cannot take a policy whatever it says its version is.
    assert!(comm_config(Some(0), Flavor::Nccl, 23203, false).is_err());
    // RCCL gets options only when asked.
    assert_eq!(comm_config(None, Flavor::Rccl, 22803, true).unwrap(), None);
}

#[test]
fn registration_falls_back_from_symmetric_below_2_27_and_needs_2_19() {
    let r = |asked, code, reg, win| registration_for(asked, Flavor::Nccl, code, reg, win);
    assert_eq!(
        r(Registration::Symmetric, 22703, true, true).unwrap(),
        (Registration::Symmetric, None)
    );
    let (mode, note) = r(Registration::Symmetric, 22605, true, false).unwrap();
    assert_eq!(mode, Registration::Local);
    assert!(note.unwrap().contains("NCCL 2.27"));
    // A 2.27 that lacks the symbol (a stripped build) falls back too.
    assert_eq!(
        r(Registration::Symmetric, 22703, true, false).unwrap().0,
        Registration::Local
    );
    assert_eq!(
        r(Registration::Local, 21903, true, false).unwrap(),
        (Registration::Local, None)
    );
    let e = r(Registration::Local, 21810, false, false).unwrap_err();
    assert!(e.contains("ncclCommRegister") && e.contains("2.19"), "{e}");
    assert_eq!(
        r(Registration::None, 21810, false, false).unwrap(),
        (Registration::None, None)
    );
}

#[test]
fn fp8_needs_nccl_2_24_and_a_hopper_gpu() {
    let f8 = DataType::F8e4m3;
    assert!(version_limits(Flavor::Nccl, 22304, Some(true), f8, None)
        .unwrap()
        .contains("2.24"));
    assert!(version_limits(Flavor::Nccl, 22400, Some(false), f8, None)
        .unwrap()
        .contains("Hopper"));
    assert_eq!(
        version_limits(Flavor::Nccl, 23203, Some(true), f8, None),
        None
    );
    assert_eq!(
        version_limits(
            Flavor::Nccl,
            23203,
            Some(true),
            DataType::F8e5m2,
            Some(ReduceOp::Sum)
        ),
        None
    );
    assert_eq!(
        version_limits(Flavor::Nccl, 23203, Some(false), DataType::Float, None),
        None
    );
}

#[test]
fn bfloat16_and_avg_need_nccl_2_10() {
    assert!(
        version_limits(Flavor::Nccl, 2804, None, DataType::Bfloat16, None)
            .unwrap()
            .contains("bfloat16")
    );
    assert!(version_limits(
        Flavor::Rccl,
        2804,
        None,
        DataType::Float,
        Some(ReduceOp::Avg)
    )
    .unwrap()
    .contains("avg"));
    assert_eq!(
        version_limits(
            Flavor::Nccl,
            21003,
            None,
            DataType::Bfloat16,
            Some(ReduceOp::Avg)
        ),
        None
    );
}

#[test]
fn in_place_is_undefined_for_all_to_all_and_sendrecv_only() {
    for flavor in [Flavor::Nccl, Flavor::Rccl] {
        for c in Collective::ALL {
            let undefined = in_place_undefined(flavor, c);
            let expected = matches!(c, Collective::AllToAll | Collective::SendRecv);
            assert_eq!(undefined.is_some(), expected, "{flavor:?} {c}");
            if let Some(why) = undefined {
                assert!(
                    why.contains(flavor.name()) && why.contains(c.name()),
                    "{why}"
                );
            }
        }
    }
}

#[test]
fn all_to_allv_is_grouped_send_recv_and_undefined_in_place() {
    for flavor in [Flavor::Nccl, Flavor::Rccl] {
        let why = in_place_undefined(flavor, Collective::AllToAllv).unwrap();
        assert!(why.contains("all_to_allv"), "{why}");
    }
    // NCCL has no ncclAllToAllv (nor does `has` admit one for NCCL): nccl-tests' grouped form.
    assert_eq!(
        path_for(Collective::AllToAllv, |_| false),
        "grouped send/recv"
    );
    assert_eq!(
        path_for(Collective::AllToAllv, |o| o == Optional::AllToAllv),
        "native"
    );
    assert_eq!(
        path_for(Collective::AllToAllv, |o| o != Optional::AllToAllv),
        "grouped send/recv"
    );
}

#[test]
fn rccl_all_to_allv_counts_are_the_matrix_in_elements() {
    // Bytes i->j; rank 1 sends 8 to 0 and 24 to 2, receives 16 from 0 and 32 from 2.
    let m = Arc::new(PeerBytes::parse("0 16 0\n8 0 24\n40 32 0\n").unwrap());
    let made = NativeCounts::of(Arc::clone(&m), 1, DataType::Float).unwrap();
    assert_eq!(
        made.counts,
        PeerCounts {
            send_counts: vec![2, 0, 6],
            send_displs: vec![0, 2, 2],
            recv_counts: vec![4, 0, 8],
            recv_displs: vec![0, 4, 4],
        }
    );
    assert!(made.made_for.is(&m, 1, DataType::Float));
    assert!(!made.made_for.is(&m, 0, DataType::Float));
    assert!(!made.made_for.is(&m, 1, DataType::Bfloat16));
    let same_bytes = Arc::new(PeerBytes::parse("0 16 0\n8 0 24\n40 32 0\n").unwrap());
    assert!(
        !made.made_for.is(&same_bytes, 1, DataType::Float),
        "another matrix"
    );
}

#[test]
fn missing_symbols_select_grouped_send_recv() {
    let none = |_: Optional| false;
    let all = |_: Optional| true;
    assert_eq!(path_for(Collective::AllToAll, none), "grouped send/recv");
    assert_eq!(path_for(Collective::Gather, none), "grouped send/recv");
    assert_eq!(path_for(Collective::Scatter, none), "grouped send/recv");
    assert_eq!(path_for(Collective::AllToAll, all), "native");
    assert_eq!(path_for(Collective::SendRecv, all), "grouped send/recv");
    assert_eq!(path_for(Collective::AllReduce, none), "native");
}
