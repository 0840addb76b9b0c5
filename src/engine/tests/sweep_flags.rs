//! nccl-tests' flags as the engine carries them out over a sweep: registration around the rows, -z blocking, -u, cputime, -o, -q, -e and -a.

use super::*;

/// Every row a sweep made, in order.
#[derive(Default)]
struct Rows(Vec<Row>);

impl RowSink for Rows {
    fn row(&mut self, row: &Row) -> Result<()> {
        self.0.push(row.clone());
        Ok(())
    }
}

/// A sweep of all_reduce over `sizes` with the flags of `args`, on the recorder.
fn sweep(args: &str, sizes: &[u64], backend: &mut Recorder) -> Vec<Row> {
    let argv = std::iter::once("collbench").chain(args.split_whitespace());
    let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
    let world = SoloWorld::new();
    // Room for the rotation and for -u's shift.
    let bytes = 4 * sizes.iter().max().copied().unwrap_or(0) + 8 * plan.unalign;
    backend.allocate(bytes).unwrap();
    let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
    let combos = [Combination {
        collective: Collective::AllReduce,
        dtype: DataType::Float,
        op: Some(ReduceOp::Sum),
    }];
    let mut rows = Rows::default();
    Engine::new(EngineSettings::of(&plan), &world, backend, &watchdog, bytes)
        .with_switches(TestSwitches::default())
        .run(
            &plan,
            &combos,
            &[Layout::whole(&["test".to_string()], 0)],
            sizes,
            &mut rows,
        )
        .unwrap();
    rows.0
}

#[test]
fn registration_comes_before_the_first_row_and_goes_after_the_last() {
    use crate::backend::Registration;
    for (flag, how) in [("1", Registration::Local), ("2", Registration::Symmetric)] {
        let mut b = Recorder::default();
        let rows = sweep(
            &format!("all_reduce -n 2 -w 1 -c 1 -R {flag}"),
            &[1024, 2048],
            &mut b,
        );
        assert_eq!(rows.len(), 2);
        let first_op = b
            .calls
            .iter()
            .position(|c| matches!(c, Call::Enqueue | Call::Launch | Call::Write))
            .unwrap();
        let last_op = b
            .calls
            .iter()
            .rposition(|c| matches!(c, Call::Enqueue | Call::Launch | Call::Read))
            .unwrap();
        let registered = b
            .calls
            .iter()
            .position(|c| *c == Call::Register(how))
            .expect("registered");
        assert!(registered < first_op, "{:?}", b.calls);
        assert_eq!(b.calls.last(), Some(&Call::Deregister), "{:?}", b.calls);
        assert!(last_op < b.calls.len() - 1);
        assert_eq!(
            b.calls
                .iter()
                .filter(|c| matches!(c, Call::Register(_)))
                .count(),
            1,
            "once for the whole sweep"
        );
    }
    // Without -R nothing is registered.
    let mut b = Recorder::default();
    sweep("all_reduce -n 2 -w 1 -c 0", &[1024], &mut b);
    assert!(!b
        .calls
        .iter()
        .any(|c| matches!(c, Call::Register(_) | Call::Deregister)));
}

#[test]
fn blocking_modes_wait_after_each_iteration_as_nccl_tests() {
    // -z 0: one wait ends the loop; -z 1 and 2: a wait after every iteration, and the loop's (with -z 1
    // a barrier too, on the world); -z 3: a wait after every iteration, each timed on its own.
    for (z, waits) in [("0", 1), ("1", 5), ("2", 5), ("3", 4)] {
        let (b, m) = measure(
            &format!("all_reduce -n 4 -w 0 -c 0 --samples 0 -z {z}"),
            1024,
        );
        let timed = timed_loop_calls_after_prepare(&b.calls);
        let counted = timed.iter().filter(|c| **c == Call::Wait).count();
        assert_eq!(counted, waits, "-z {z}: {timed:?}");
        assert_eq!(m.iterations, 4);
    }
}

/// The calls from the timed pass's prepare to its end (the next mark or the end).
fn timed_loop_calls_after_prepare(calls: &[Call]) -> &[Call] {
    let start = calls.iter().position(|c| *c == Call::Prepare).unwrap();
    let end = calls[start..]
        .iter()
        .position(|c| matches!(c, Call::ReserveMarks | Call::Read | Call::Fill))
        .map_or(calls.len(), |e| start + e);
    &calls[start..end]
}

#[test]
fn unaligned_buffers_start_every_use_that_many_elements_in() {
    // -u 3 on floats: 12 bytes into both buffers, for the timed loop and the check alike.
    let mut b = Recorder::default();
    let rows = sweep(
        "all_reduce -n 2 -w 1 -c 1 --samples 0 -u 3",
        &[1024],
        &mut b,
    );
    assert!(b.shifts.iter().all(|s| *s % 1024 == 12), "{:?}", b.shifts);
    assert_eq!(rows[0].out_of_place.as_ref().unwrap().wrong, Some(0));
}

#[test]
fn cpu_time_per_iteration_times_and_their_skip() {
    // -C: the enqueue loop's host time is recorded beside the completion time, and not above it.
    let (_, m) = measure("all_reduce -n 6 -w 0 -c 0 -C 1", 1024);
    let cpu = m.cpu_time_us.expect("cpu time recorded");
    assert!(cpu > 0.0 && cpu <= m.time_us, "{cpu} vs {}", m.time_us);
    // -I 1 -K 2: all 6 iterations kept, the first 2 out of the statistics.
    let (_, m) = measure("all_reduce -n 6 -w 0 -c 0 -I 1 -K 2", 1024);
    assert_eq!(m.iteration_times_us.as_ref().map(Vec::len), Some(6));
    let stats = m.stats.unwrap();
    assert_eq!(stats.samples, 4);
    assert!(
        stats.source.contains("first 2 left out"),
        "{}",
        stats.source
    );
    // Without -I the series is not kept (the statistics summarise it).
    let (_, m) = measure("all_reduce -n 6 -w 0 -c 0", 1024);
    assert!(m.iteration_times_us.is_none());
}

#[test]
fn minus_o_measures_one_placement_as_rccl_tests() {
    let mut b = Recorder::default();
    let rows = sweep(
        "all_reduce -n 3 -w 0 -c 1 --samples 0 -O 1",
        &[1024],
        &mut b,
    );
    assert!(rows[0].out_of_place.is_some() && rows[0].in_place.is_none());
    // One placement: 3 timed enqueues, one check enqueue, nothing more.
    assert_eq!(b.executed, 4);
    let mut b = Recorder::default();
    let rows = sweep(
        "all_reduce -n 3 -w 0 -c 1 --samples 0 -O 0",
        &[1024],
        &mut b,
    );
    assert!(rows[0].out_of_place.is_none() && rows[0].in_place.is_some());
    assert_eq!(b.executed, 4);
    let rows = sweep(
        "all_reduce -n 3 -w 0 -c 1 --samples 0",
        &[1024],
        &mut Recorder::default(),
    );
    assert!(rows[0].out_of_place.is_some() && rows[0].in_place.is_some());
}

#[test]
fn minus_q_pauses_between_the_placements_outside_both_timings() {
    let started = std::time::Instant::now();
    let rows = sweep(
        "all_reduce -n 3 -w 0 -c 0 --samples 0 -q 200000",
        &[1024],
        &mut Recorder::default(),
    );
    // The 0.2 s pause happened...
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    // ...in neither placement's time.
    for m in [&rows[0].out_of_place, &rows[0].in_place] {
        let t = m.as_ref().unwrap().time_us;
        assert!(t < 100_000.0, "{t} us includes the pause");
    }
}

#[test]
fn minus_e_alternates_two_offsets_past_the_caches() {
    let far = crate::plan::ROTATING_TENSOR_BYTES;
    let (b, _) = measure("all_reduce -n 5 -w 0 -c 0 --samples 0 -E 1", far + 1024);
    assert_eq!(b.shifts, vec![0, far, 0, far, 0]);
    // Buffers without the room for the second offset: an error, never a write past them.
    let mut b = Recorder::default();
    let err = engine_measure(
        "all_reduce -n 5 -w 0 -c 0 --samples 0 -E 1",
        3 * 1024,
        &mut b,
        &all_reduce_1k(false),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no room for a second offset"),
        "{err}"
    );
}

#[test]
fn minus_a_asks_the_library_once_per_size_after_its_timings() {
    let mut b = Recorder::default();
    let rows = sweep("all_reduce -n 3 -w 1 -c 1 -A 1", &[1024, 4096], &mut b);
    assert_eq!(
        b.calls.iter().filter(|c| **c == Call::AlgoChoice).count(),
        2
    );
    // After everything the row measured: the last call of each row's sequence.
    let asked: Vec<usize> = b
        .calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::AlgoChoice)
        .map(|(i, _)| i)
        .collect();
    let last_enqueue_before = |at: usize| b.calls[..at].iter().rposition(|c| *c == Call::Enqueue);
    assert!(last_enqueue_before(asked[0]).unwrap() < asked[0]);
    assert!(!b.calls[..asked[0]]
        .iter()
        .rev()
        .take(1)
        .any(|c| *c == Call::Enqueue));
    // The choice for the size's count goes into the row; without -A nothing is asked.
    let a = rows[1].algorithm.as_ref().unwrap();
    assert_eq!(
        (a.algorithm.as_str(), a.protocol.as_str(), a.channels),
        ("RING", "count 1024", 16)
    );
    let mut b = Recorder::default();
    let rows = sweep("all_reduce -n 3 -w 1 -c 1", &[1024], &mut b);
    assert!(!b.calls.contains(&Call::AlgoChoice) && rows[0].algorithm.is_none());
}
