//! The sampling thread of one rank. It reads the GPU every interval between `begin_row` and `end_row`
//! and sleeps otherwise; the engine's thread only flips a flag at row boundaries, so nothing of the
//! sampling runs on the thread that times the row.

use super::TelemetrySource;
use super::{Accumulator, GpuLimits, RankTelemetry};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Counts rows, so a reading taken while one row ended is not credited to the next.
    row: u64,
    active: bool,
    quit: bool,
    acc: Accumulator,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    source: Mutex<Box<dyn TelemetrySource>>,
}

/// A poisoned lock only means another thread panicked; the readings are still whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Sampler {
    shared: Arc<Shared>,
    limits: GpuLimits,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Reads the limits once and starts the (idle) thread.
    pub fn start(source: Box<dyn TelemetrySource>, interval: Duration) -> Sampler {
        let limits = source.limits();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            source: Mutex::new(source),
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("collbench-telemetry".into())
            .spawn(move || run(&for_thread, interval))
            .ok();
        Sampler {
            shared,
            limits,
            thread,
        }
    }

    pub fn limits(&self) -> &GpuLimits {
        &self.limits
    }

    /// The GPU's energy counter now (millijoules), read on the caller's thread: the engine reads it
    /// just before a timed loop's clock starts and just after it stops.
    pub fn energy_mj(&self) -> Option<u64> {
        lock(&self.shared.source).energy_mj()
    }

    /// Starts reading for a new row (the thread takes its first reading at once).
    pub fn begin_row(&self) {
        let mut s = lock(&self.shared.state);
        s.row += 1;
        s.active = true;
        s.acc = Accumulator::default();
        self.shared.wake.notify_all();
    }

    /// Stops reading and returns the row's summary. A row too short for the thread to read even once
    /// is read here, after its last operation, so every row has at least one reading.
    pub fn end_row(&self) -> RankTelemetry {
        let mut acc = {
            let mut s = lock(&self.shared.state);
            s.active = false;
            self.shared.wake.notify_all();
            std::mem::take(&mut s.acc)
        };
        if acc.samples() == 0 {
            acc.add(&lock(&self.shared.source).sample());
        }
        acc.finish(&self.limits)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        lock(&self.shared.state).quit = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, interval: Duration) {
    let mut s = lock(&shared.state);
    loop {
        while !s.active && !s.quit {
            s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.quit {
            return;
        }
        let row = s.row;
        drop(s);
        // The library call happens without the state lock: ending a row never waits for NVML.
        let reading = lock(&shared.source).sample();
        s = lock(&shared.state);
        if s.active && s.row == row {
            s.acc.add(&reading);
        }
        let next = Instant::now() + interval;
        while s.active && s.row == row && !s.quit {
            let now = Instant::now();
            if now >= next {
                break;
            }
            s = shared
                .wake
                .wait_timeout(s, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::telemetry::Reading;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A GPU whose readings count up (SM clock 1000, 1001, ...) and that counts how often it was read.
    pub(crate) struct Counting {
        pub reads: Arc<AtomicU32>,
        pub on_read: Option<Box<dyn Fn() + Send>>,
    }

    impl TelemetrySource for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        fn limits(&self) -> GpuLimits {
            GpuLimits {
                max_sm_clock_mhz: Some(2000),
                ..GpuLimits::default()
            }
        }
        fn sample(&self) -> Reading {
            if let Some(f) = &self.on_read {
                f();
            }
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            Reading {
                sm_clock_mhz: Some(1000 + n),
                ..Reading::default()
            }
        }
    }

    fn counting() -> (Sampler, Arc<AtomicU32>) {
        let reads = Arc::new(AtomicU32::new(0));
        let source = Counting {
            reads: Arc::clone(&reads),
            on_read: None,
        };
        (
            Sampler::start(Box::new(source), Duration::from_millis(20)),
            reads,
        )
    }

    #[test]
    fn reads_every_interval_during_a_row_and_never_between_rows() {
        let (sampler, reads) = counting();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(reads.load(Ordering::SeqCst), 0, "idle before the first row");

        sampler.begin_row();
        std::thread::sleep(Duration::from_millis(150));
        let row = sampler.end_row();
        // At 0, 20, 40, ... ms: about 8 readings; a loaded machine may delay some, never all.
        assert!(row.samples >= 3, "{row:?}");
        let after = reads.load(Ordering::SeqCst);
        assert!(after >= row.samples);
        assert!(row.sm_clock_mhz.unwrap().max > row.sm_clock_mhz.unwrap().min);
        assert!(row.sm_clock_of_max.unwrap() <= 0.5 + 1e-9);

        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(reads.load(Ordering::SeqCst), after, "idle between rows");
    }

    #[test]
    fn a_row_shorter_than_the_interval_still_has_a_reading() {
        let (sampler, _) = counting();
        for _ in 0..20 {
            sampler.begin_row();
            let row = sampler.end_row();
            assert!(row.samples >= 1, "{row:?}");
        }
    }
}
