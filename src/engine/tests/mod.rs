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

mod observers;
mod sweep_flags;
mod timed_loop;
