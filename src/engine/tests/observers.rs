//! What the engine lets a row observer do: telemetry read on its own thread with only row boundaries marked, and the energy counter read just outside the timed loop.

use super::*;

/// The sampler as the engine's row observer, logging its row boundaries into the same log as the
/// backend's calls.
struct Watched {
    sampler: crate::telemetry::sampler::Sampler,
    log: Log,
    rows: Vec<crate::telemetry::RankTelemetry>,
}

impl RowObserver for Watched {
    fn row_starting(&mut self) {
        note(&Some(self.log.clone()), "row begins");
        self.sampler.begin_row();
    }
    fn row_finished(
        &mut self,
        _world: &dyn World,
    ) -> Result<Option<Vec<Option<crate::telemetry::RankTelemetry>>>> {
        note(&Some(self.log.clone()), "row ends");
        self.rows.push(self.sampler.end_row());
        Ok(None)
    }
}

#[test]
fn telemetry_is_read_on_its_own_thread_and_the_engine_only_marks_row_boundaries() {
    let log: Log = Default::default();
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let for_source = log.clone();
    let source = crate::telemetry::sampler::tests::Counting {
        reads: reads.clone(),
        on_read: Some(Box::new(move || {
            note(&Some(for_source.clone()), "GPU read");
        })),
    };
    let mut observer = Watched {
        sampler: crate::telemetry::sampler::Sampler::start(
            Box::new(source),
            std::time::Duration::from_millis(10),
        ),
        log: log.clone(),
        rows: Vec::new(),
    };
    let argv = "collbench all_reduce -b 1K -e 2K -n 40 -w 1 -c 1 -z 1".split_whitespace();
    let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
    let world = SoloWorld::new();
    let mut backend = Recorder {
        thread_log: Some(log.clone()),
        wait: std::time::Duration::from_millis(1),
        ..Recorder::default()
    };
    backend.allocate(4096).unwrap();
    let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
    let combos = [Combination {
        collective: Collective::AllReduce,
        dtype: DataType::Float,
        op: Some(ReduceOp::Sum),
    }];
    Engine::new(
        EngineSettings::of(&plan),
        &world,
        &mut backend,
        &watchdog,
        4096,
    )
    .with_switches(TestSwitches::default())
    .observed_by(&mut observer)
    .run(
        &plan,
        &combos,
        &[Layout::whole(&["test".to_string()], 0)],
        &[1024, 2048],
        &mut NullSink,
    )
    .unwrap();

    let events = log.lock().unwrap().clone();
    let engine = std::thread::current().id();
    assert!(
        events.iter().all(|(w, t)| *w != "backend" || *t == engine),
        "every library call comes from the engine's thread"
    );
    // On the engine's thread a row is: its boundary, library calls only, its boundary.
    let mine: Vec<&str> = events
        .iter()
        .filter(|(_, t)| *t == engine)
        .map(|(w, _)| *w)
        .collect();
    let mut inside = false;
    for w in &mine {
        match *w {
            "row begins" => inside = true,
            "row ends" => inside = false,
            "GPU read" => assert!(!inside, "the engine read the GPU inside a row: {mine:?}"),
            _ => assert!(inside, "a library call outside a row: {mine:?}"),
        }
    }
    assert_eq!(mine.iter().filter(|w| **w == "row begins").count(), 2);
    // The sampling thread read the GPU while library calls were going on (each row lasts 80+ ms).
    let first_call = events.iter().position(|(w, _)| *w == "backend").unwrap();
    let last_call = events.iter().rposition(|(w, _)| *w == "backend").unwrap();
    let concurrent = events[first_call..last_call]
        .iter()
        .filter(|(w, t)| *w == "GPU read" && *t != engine)
        .count();
    assert!(concurrent >= 2, "{events:?}");
    assert_eq!(observer.rows.len(), 2);
    assert!(observer.rows.iter().all(|r| r.samples >= 1));
}

/// An energy counter read by the engine around its timed loops, slowly (20 ms a reading, far longer
/// than the loop), noting each reading in the backend's call sequence.
struct Metered {
    sequence: Sequence,
    joules: f64,
}

impl RowObserver for Metered {
    fn row_starting(&mut self) {}
    fn row_finished(
        &mut self,
        _world: &dyn World,
    ) -> Result<Option<Vec<Option<crate::telemetry::RankTelemetry>>>> {
        Ok(None)
    }
    fn timed_loop_starting(&mut self) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.sequence.lock().unwrap().push("energy before".into());
    }
    fn timed_loop_finished(&mut self) -> Option<f64> {
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.sequence.lock().unwrap().push("energy after".into());
        Some(self.joules)
    }
}

fn metered(args: &str) -> (Vec<String>, Measurement) {
    let sequence: Sequence = Default::default();
    let mut observer = Metered {
        sequence: sequence.clone(),
        joules: 0.5,
    };
    let argv = std::iter::once("collbench").chain(args.split_whitespace());
    let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
    let world = SoloWorld::new();
    let mut backend = Recorder {
        sequence: Some(sequence.clone()),
        ..Recorder::default()
    };
    backend.allocate(1024).unwrap();
    let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
    let m = Engine::new(
        EngineSettings::of(&plan),
        &world,
        &mut backend,
        &watchdog,
        1024,
    )
    .with_switches(TestSwitches::default())
    .observed_by(&mut observer)
    .measure_op(&all_reduce_1k(false))
    .unwrap();
    let events = sequence.lock().unwrap().clone();
    (events, m)
}

#[test]
fn the_energy_counter_is_read_just_outside_the_timed_loop() {
    for (args, iterations) in [
        ("all_reduce -n 5 -w 2 -c 1", 5),
        // -n auto: the batches that decide the count are sampled passes, read by nobody.
        ("all_reduce -n auto --size-time-cap 0.001 -w 1 -c 0", 0),
    ] {
        let (events, m) = metered(args);
        let before: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| *e == "energy before")
            .map(|(i, _)| i)
            .collect();
        let after: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| *e == "energy after")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            (before.len(), after.len()),
            (1, 1),
            "once per measurement: {events:?}"
        );
        // Between the two readings: the timed loop's launches and its one wait, nothing else.
        let inside = &events[before[0] + 1..after[0]];
        let n = if iterations > 0 {
            iterations
        } else {
            m.iterations as usize
        };
        assert_eq!(inside.len(), n + 1, "{events:?}");
        assert!(inside[..n].iter().all(|e| e == "Launch"), "{inside:?}");
        assert_eq!(inside[n], "Wait");
        // Just before: the timed pass's preparation, which the reading leaves out of the loop too.
        assert_eq!(events[before[0] - 1], "Prepare", "{events:?}");
        // The readings took 40 ms; the timed loop of a few us per operation did not see them.
        assert!(
            m.time_us < 4000.0,
            "the energy readings were timed: {} us",
            m.time_us
        );
        let e = m.energy.expect("the loop's energy");
        assert_eq!(e.rank_joules, [Some(0.5)]);
        assert_eq!(e.ranks_read, 1);
        assert!((e.joules_per_op - 0.5 / m.iterations as f64).abs() < 1e-12);
    }
    // No observer, no energy.
    let (_, m) = measure("all_reduce -n 3 -w 1 -c 0", 1024);
    assert!(m.energy.is_none());
}
