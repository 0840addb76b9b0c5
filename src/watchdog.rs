//! The -T timeout: a thread that ends the whole job when an operation, barrier or initialisation step
//! takes longer than allowed, naming what was stuck and where.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Armed {
    what: String,
    deadline: Instant,
}

/// Arms around each step that could hang; disarmed between steps. Without -T it does nothing.
pub struct Watchdog {
    limit: Option<Duration>,
    armed: Arc<Mutex<Option<Armed>>>,
}

impl Watchdog {
    /// Starts the watching thread when `limit_s` is set. `on_timeout` receives the message and must end
    /// the job (MPI_Abort under MPI); it never returns.
    pub fn start(
        limit_s: Option<f64>,
        rank: usize,
        host: String,
        on_timeout: fn(&str) -> !,
    ) -> Watchdog {
        let limit = limit_s.map(Duration::from_secs_f64);
        let armed: Arc<Mutex<Option<Armed>>> = Arc::new(Mutex::new(None));
        if let Some(limit) = limit {
            let watched = Arc::clone(&armed);
            std::thread::Builder::new()
                .name("collbench-watchdog".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let expired = watched
                        .lock()
                        .ok()
                        .and_then(|a| a.as_ref().filter(|a| Instant::now() > a.deadline).map(|a| a.what.clone()));
                    if let Some(what) = expired {
                        on_timeout(&format!(
                            "collbench: timeout on rank {rank} ({host}): {what} did not finish within {} s (-T); aborting the job",
                            limit.as_secs_f64()
                        ));
                    }
                })
                .ok();
        }
        Watchdog { limit, armed }
    }

    /// Starts timing a step described by `what` (e.g. "all_reduce 64M float sum, timed loop").
    pub fn arm(&self, what: impl FnOnce() -> String) {
        if let Some(limit) = self.limit {
            if let Ok(mut a) = self.armed.lock() {
                *a = Some(Armed {
                    what: what(),
                    deadline: Instant::now() + limit,
                });
            }
        }
    }

    pub fn disarm(&self) {
        if self.limit.is_some() {
            if let Ok(mut a) = self.armed.lock() {
                *a = None;
            }
        }
    }
}
