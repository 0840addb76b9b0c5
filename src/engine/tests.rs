//! The engine's own arithmetic and call sequence, on a one-rank world and a host-memory test double
//! that records every backend call and enforces the rules CUDA imposes on a real GPU backend (graph
//! capture among them, which no backend here can do without a GPU).

use super::*;
use crate::backend::{Capabilities, DeviceInfo, GraphCapture, InPlaceConvention, LibraryVersion};
use crate::cli::RunArgs;
use crate::dtype::{DataType, ReduceOp};
use crate::world::solo::SoloWorld;
use clap::Parser;

/// A backend call as the test double saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Fill,
    Write,
    Read,
    GroupStart,
    GroupEnd,
    Enqueue,
    Prepare,
    Launch,
    Register(crate::backend::Registration),
    Deregister,
    Wait,
    BeginCapture,
    EndCapture,
    Replay,
    ReleaseGraph,
    ReserveMarks,
    Mark,
    MarkIntervals,
    AlgoChoice,
}

struct Recorder {
    send: Vec<u8>,
    recv: Vec<u8>,
    calls: Vec<Call>,
    capturing: bool,
    graph_held: bool,
    captured: usize,
    executed: usize,
    replays: usize,
    shifts: Vec<u64>,
    /// What `prepare` readied, and the largest shift it may be launched at.
    prepared: Option<(OpDesc, u64)>,
    /// What this "library" defines (the in-place forms it leaves undefined among them).
    capabilities: Capabilities,
    /// Every call that reaches the library, with its thread, when a test watches the order of events.
    thread_log: Option<Log>,
    /// How long each wait lasts, to give a row some duration.
    wait: std::time::Duration,
    /// Every call in order beside what an observer does, when a test watches where the observer acts.
    sequence: Option<Sequence>,
}

/// Backend calls and an observer's readings in the order they happened.
type Sequence = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            send: Vec::new(),
            recv: Vec::new(),
            calls: Vec::new(),
            capturing: false,
            graph_held: false,
            captured: 0,
            executed: 0,
            replays: 0,
            shifts: Vec::new(),
            prepared: None,
            capabilities: Capabilities {
                in_place: InPlaceConvention::Nccl,
                undefined_in_place: Vec::new(),
                in_place_v_needs_symmetry: false,
                paths: Vec::new(),
            },
            thread_log: None,
            wait: std::time::Duration::ZERO,
            sequence: None,
        }
    }
}

type Log = std::sync::Arc<std::sync::Mutex<Vec<(&'static str, std::thread::ThreadId)>>>;

fn note(log: &Option<Log>, what: &'static str) {
    if let Some(log) = log {
        log.lock()
            .unwrap()
            .push((what, std::thread::current().id()));
    }
}

impl Recorder {
    /// Records a call, failing it as CUDA would: while a stream captures, only the enqueues (and the
    /// library's group calls around them) may run; an event, a copy, a sync, a graph launch or a
    /// graph destroyed there invalidates the capture (CUDA_ERROR_STREAM_CAPTURE_INVALIDATED).
    fn call(&mut self, call: Call) -> Result<()> {
        self.calls.push(call);
        note(&self.thread_log, "backend");
        if let Some(seq) = &self.sequence {
            seq.lock().unwrap().push(format!("{call:?}"));
        }
        let allowed_in_capture = matches!(
            call,
            Call::Enqueue | Call::Launch | Call::GroupStart | Call::GroupEnd | Call::EndCapture
        );
        if self.capturing && !allowed_in_capture {
            return Err(Error::Internal(format!(
                "CUDA rule broken: {call:?} while the stream is capturing invalidates the capture"
            )));
        }
        Ok(())
    }

    fn buffer(&mut self, buffer: BufferId) -> &mut Vec<u8> {
        if buffer == BufferId::Send {
            &mut self.send
        } else {
            &mut self.recv
        }
    }
}

impl Backend for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn versions(&self) -> Vec<LibraryVersion> {
        Vec::new()
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo::default()
    }
    fn free_memory(&self) -> Result<u64> {
        Ok(1 << 30)
    }
    fn unsupported(&self, _: Collective, _: DataType, _: Option<ReduceOp>) -> Option<String> {
        None
    }
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    fn split(&mut self, _: &dyn World, _: &crate::backend::GroupJoin) -> Result<usize> {
        Ok(0)
    }
    fn allocate(&mut self, bytes: u64) -> Result<()> {
        self.send = vec![0; bytes as usize];
        self.recv = vec![0; bytes as usize];
        Ok(())
    }
    fn write(&mut self, buffer: BufferId, offset: u64, data: &[u8]) -> Result<()> {
        self.call(Call::Write)?;
        let b = self.buffer(buffer);
        b[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn read(&mut self, buffer: BufferId, offset: u64, out: &mut [u8]) -> Result<()> {
        self.call(Call::Read)?;
        let b = self.buffer(buffer);
        out.copy_from_slice(&b[offset as usize..offset as usize + out.len()]);
        Ok(())
    }
    fn fill(&mut self, buffer: BufferId, len: u64, byte: u8) -> Result<()> {
        self.call(Call::Fill)?;
        self.buffer(buffer)[..len as usize].fill(byte);
        Ok(())
    }
    fn group_start(&mut self) -> Result<()> {
        self.call(Call::GroupStart)
    }
    fn group_end(&mut self) -> Result<()> {
        self.call(Call::GroupEnd)
    }
    fn enqueue(&mut self, desc: &OpDesc) -> Result<()> {
        self.call(Call::Enqueue)?;
        self.run(desc)
    }
    fn prepare(&mut self, desc: &OpDesc, max_shift_bytes: u64) -> Result<()> {
        self.call(Call::Prepare)?;
        self.prepared = Some((desc.clone(), max_shift_bytes));
        Ok(())
    }
    fn register_buffers(&mut self, how: crate::backend::Registration) -> Result<Option<String>> {
        if how != crate::backend::Registration::None {
            self.call(Call::Register(how))?;
        }
        Ok(None)
    }
    fn deregister_buffers(&mut self) -> Result<()> {
        if self.calls.iter().any(|c| matches!(c, Call::Register(_))) {
            self.call(Call::Deregister)?;
        }
        Ok(())
    }
    fn launch(&mut self, shift_bytes: u64) -> Result<()> {
        self.call(Call::Launch)?;
        let (mut desc, max) = self
            .prepared
            .clone()
            .ok_or_else(|| Error::Internal("launch before prepare".into()))?;
        if shift_bytes > max {
            return Err(Error::Internal(format!(
                "launched at {shift_bytes} bytes, prepared up to {max}"
            )));
        }
        desc.shift_bytes = shift_bytes;
        self.run(&desc)
    }
    fn wait(&mut self) -> Result<()> {
        std::thread::sleep(self.wait);
        self.call(Call::Wait)
    }
    fn reserve_marks(&mut self, _count: usize) -> Result<()> {
        self.call(Call::ReserveMarks)
    }
    fn mark(&mut self, _index: usize) -> Result<()> {
        self.call(Call::Mark)
    }
    fn mark_intervals_us(&mut self, count: usize) -> Result<Vec<f64>> {
        self.call(Call::MarkIntervals)?;
        Ok(vec![10.0; count])
    }
    fn graphs(&mut self) -> Option<&mut dyn GraphCapture> {
        Some(self)
    }
    fn algo_choice(&mut self, desc: &OpDesc) -> Result<Option<crate::backend::AlgoChoice>> {
        self.call(Call::AlgoChoice)?;
        Ok(Some(crate::backend::AlgoChoice {
            algorithm: "RING".into(),
            protocol: format!("count {}", desc.shape.count),
            channels: 16,
        }))
    }
}

impl GraphCapture for Recorder {
    fn begin_capture(&mut self) -> Result<()> {
        self.call(Call::BeginCapture)?;
        if self.graph_held {
            return Err(Error::Internal(
                "a new capture began while the last graph was still held".into(),
            ));
        }
        self.capturing = true;
        Ok(())
    }
    fn end_capture(&mut self) -> Result<()> {
        self.call(Call::EndCapture)?;
        self.capturing = false;
        self.graph_held = true;
        Ok(())
    }
    fn replay(&mut self) -> Result<()> {
        self.call(Call::Replay)?;
        self.replays += 1;
        self.executed += self.captured;
        Ok(())
    }
    fn release_graph(&mut self) -> Result<()> {
        self.call(Call::ReleaseGraph)?;
        self.graph_held = false;
        self.captured = 0;
        Ok(())
    }
}

impl Recorder {
    /// What the "library" does with one operation: counts it, and on one rank copies the input out.
    fn run(&mut self, desc: &OpDesc) -> Result<()> {
        self.shifts.push(desc.shift_bytes);
        if self.capturing {
            self.captured += 1;
        } else {
            self.executed += 1;
            // A one-rank all_reduce: the output is the input, both at the operation's shift.
            let len = desc.shape.buffer_bytes(desc.dtype.size()) as usize;
            let at = desc.shift_bytes as usize;
            if !desc.in_place {
                let input = self.send[at..at + len].to_vec();
                self.recv[at..at + len].copy_from_slice(&input);
            }
        }
        Ok(())
    }
}

fn engine_measure(
    args: &str,
    buffer_bytes: u64,
    backend: &mut Recorder,
    desc: &OpDesc,
) -> Result<Measurement> {
    let argv = std::iter::once("collbench").chain(args.split_whitespace());
    let plan = Plan::from_args(&RunArgs::try_parse_from(argv).unwrap()).unwrap();
    let world = SoloWorld::new();
    backend.allocate(buffer_bytes).unwrap();
    let watchdog = Watchdog::start(None, 0, "test".into(), |_| std::process::exit(4));
    let mut engine = Engine::new(
        EngineSettings::of(&plan),
        &world,
        backend,
        &watchdog,
        buffer_bytes,
    )
    .with_switches(TestSwitches::default());
    let layout = Layout::whole(&["test".to_string()], 0);
    engine.measure(desc, 0.0, &layout)
}

fn all_reduce_1k(in_place: bool) -> OpDesc {
    OpDesc {
        collective: Collective::AllReduce,
        dtype: DataType::Float,
        op: Some(ReduceOp::Sum),
        root: None,
        shape: Collective::AllReduce.shape(1024, 4, 1),
        in_place,
        shift_bytes: 0,
        comm: crate::backend::Comm::whole(0, 1),
        counts: None,
        peer: crate::backend::Exchange::Ring,
    }
}

fn measure(args: &str, buffer_bytes: u64) -> (Recorder, Measurement) {
    let mut backend = Recorder::default();
    let m = engine_measure(args, buffer_bytes, &mut backend, &all_reduce_1k(false)).unwrap();
    (backend, m)
}

/// The calls of the timed loop: after the warm-up's wait, up to and including the next wait.
fn timed_loop_calls(calls: &[Call]) -> &[Call] {
    let waits: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::Wait)
        .map(|(i, _)| i)
        .collect();
    &calls[waits[0] + 1..=waits[1]]
}

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
