//! The timed loop as the backend sees it: only enqueues, one group per iteration, graphs captured once and replayed, buffer rotation, and undefined in-place forms timed but not checked.

use super::*;

#[test]
fn the_timed_loop_shows_the_backend_only_its_enqueues() {
    let (b, m) = measure("all_reduce -n 5 -w 2 -c 0", 1024);
    // nccl-tests' loop with -m 1: enqueues back to back, then the wait; no mark, no group call.
    let timed = timed_loop_calls(&b.calls);
    assert_eq!(
        timed,
        [
            &[Call::Prepare],
            [Call::Launch; 5].as_slice(),
            &[Call::Wait]
        ]
        .concat()
    );
    assert!(!b.calls.contains(&Call::GroupStart), "{:?}", b.calls);
    // The distribution comes from a separate marked pass after it, as many iterations as -n.
    let marks = b.calls.iter().filter(|c| **c == Call::Mark).count();
    assert_eq!(marks, 6);
    let first_mark = b.calls.iter().position(|c| *c == Call::Mark).unwrap();
    let last_timed = b.calls.len() - b.calls.iter().rev().position(|c| *c == Call::Wait).unwrap();
    assert!(first_mark < last_timed);
    let stats = m.stats.expect("stats from the sampled pass");
    assert_eq!(stats.samples, 5);
    assert!(
        stats.source.contains("separate pass of 5"),
        "{}",
        stats.source
    );
    assert_eq!(m.iterations, 5);
}

#[test]
fn several_operations_per_iteration_go_in_one_group() {
    let (b, _) = measure("all_reduce -n 3 -m 2 -w 1 -c 0 --samples 0", 1024);
    let timed = timed_loop_calls(&b.calls);
    let group = [Call::GroupStart, Call::Launch, Call::Launch, Call::GroupEnd];
    assert_eq!(
        timed,
        [&[Call::Prepare], &group[..], &group, &group, &[Call::Wait]].concat()
    );
    assert!(!b.calls.contains(&Call::Mark), "--samples 0 marks nothing");
}

#[test]
fn samples_flag_sets_the_sampled_pass_and_zero_turns_it_off() {
    let (_, m) = measure("all_reduce -n 50 -w 0 -c 0 --samples 7", 1024);
    assert_eq!(m.stats.unwrap().samples, 7);
    assert_eq!(m.iterations, 50);
    let (_, m) = measure("all_reduce -n 50 -w 0 -c 0 --samples 0", 1024);
    assert!(m.stats.is_none());
}

#[test]
fn graphs_capture_the_loop_once_and_replay_it() {
    let (b, m) = measure("all_reduce -n 4 -m 2 -G 3 -w 1 -c 0", 1024);
    // One capture of 4 iterations x 2 operations; one untimed replay, 3 timed, 3 sampled.
    assert_eq!(b.replays, 7);
    assert_eq!(b.executed, 1 + 7 * 8);
    assert_eq!(m.iterations, 12);
    let stats = m.stats.unwrap();
    assert_eq!(stats.samples, 3);
    // 10 us per replay of 8 operations.
    assert_eq!(stats.mean_us, 10.0 / 8.0);
    // The graph is released after its last replay, outside the capture.
    assert_eq!(b.calls.last(), Some(&Call::ReleaseGraph));
    assert!(!b.graph_held);
}

#[test]
fn graphs_of_successive_measurements_each_start_a_clean_capture() {
    let mut b = Recorder::default();
    for in_place in [false, true] {
        engine_measure(
            "all_reduce -n 2 -G 2 -w 0 -c 1",
            1024,
            &mut b,
            &all_reduce_1k(in_place),
        )
        .expect("the capture rules hold across measurements");
    }
    assert_eq!(
        b.calls.iter().filter(|c| **c == Call::BeginCapture).count(),
        2
    );
}

#[test]
fn the_capture_rules_fail_the_order_that_broke_g_on_a_gpu() {
    // What main did on an H200: the previous graph destroyed while the new capture was open, and
    // any other call inside a capture, fail here as they failed there.
    let desc = all_reduce_1k(false);
    let mut b = Recorder::default();
    b.allocate(1024).unwrap();
    b.begin_capture().unwrap();
    b.enqueue(&desc).unwrap();
    assert!(b.release_graph().is_err());
    let mut b = Recorder::default();
    b.begin_capture().unwrap();
    assert!(b.mark(0).is_err());
    assert!(b.wait().is_err());
    // And a capture that begins while the last graph is held is refused too.
    let mut b = Recorder::default();
    b.begin_capture().unwrap();
    b.end_capture().unwrap();
    assert!(b.begin_capture().is_err());
}

#[test]
fn timed_iterations_rotate_through_the_buffers_and_wrap() {
    // 1 KiB operations in 3 KiB buffers: offsets 0, 1K, 2K, then back to 0.
    let (b, m) = measure("all_reduce -n 5 -w 0 -c 0 --samples 0", 3 * 1024);
    assert_eq!(b.shifts, vec![0, 1024, 2048, 0, 1024]);
    assert_eq!(m.iterations, 5);
}

#[test]
fn an_in_place_form_the_library_leaves_undefined_is_timed_but_not_checked() {
    let mut b = Recorder {
        capabilities: Capabilities {
            undefined_in_place: vec![(
                Collective::AllReduce,
                "the recorder defines no in-place all_reduce".into(),
            )],
            ..Recorder::default().capabilities
        },
        ..Recorder::default()
    };
    let m = engine_measure(
        "all_reduce -n 3 -w 0 -c 2",
        1024,
        &mut b,
        &all_reduce_1k(true),
    )
    .unwrap();
    assert_eq!(m.wrong, None);
    assert!(m.check_skipped.unwrap().contains("in-place all_reduce"));
    // 3 timed + 3 sampled enqueues, and no check iteration, which would read the output back.
    assert_eq!(b.executed, 6);
    assert!(!b.calls.contains(&Call::Read));
    // The out-of-place form is checked as ever.
    let m = engine_measure(
        "all_reduce -n 3 -w 0 -c 2",
        1024,
        &mut b,
        &all_reduce_1k(false),
    )
    .unwrap();
    assert_eq!(m.wrong, Some(0));
    assert_eq!(m.check_skipped, None);
}
