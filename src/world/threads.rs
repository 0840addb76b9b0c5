//! A World of threads in one process, for `-g N` without a launcher: thread i is rank i and drives local
//! GPU i. Exchanges go through shared slots between barriers, so every rank must call each exchange in
//! the same order, as with MPI.

use super::{Combine, World};
use crate::error::{Error, Result};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};

struct Shared {
    barrier: Barrier,
    bytes: Mutex<Vec<Vec<u8>>>,
    numbers: Mutex<Vec<Vec<f64>>>,
}

/// One thread's view of the thread world.
pub struct ThreadWorld {
    rank: usize,
    size: usize,
    host: String,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    // A poisoned lock means another rank panicked mid-exchange; its data cannot be trusted.
    m.lock()
        .map_err(|_| Error::Internal("another thread rank panicked during an exchange".into()))
}

impl ThreadWorld {
    /// The worlds of `size` thread ranks, one per thread to start.
    pub fn create(size: usize) -> Vec<ThreadWorld> {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(size.max(1)),
            bytes: Mutex::new(vec![Vec::new(); size]),
            numbers: Mutex::new(vec![Vec::new(); size]),
        });
        let host = super::host_name();
        (0..size)
            .map(|rank| ThreadWorld {
                rank,
                size,
                host: host.clone(),
                shared: Arc::clone(&shared),
            })
            .collect()
    }
}

/// Runs `body` on `size` threads, each with its own rank of one thread world; results in rank order.
/// A thread that panics yields an `Internal` error for its rank instead of unwinding through the caller.
pub fn run_threads<T, F>(size: usize, body: F) -> Vec<Result<T>>
where
    T: Send,
    F: Fn(&ThreadWorld) -> Result<T> + Sync,
{
    let worlds = ThreadWorld::create(size);
    std::thread::scope(|scope| {
        let handles: Vec<_> = worlds
            .iter()
            .map(|world| {
                let body = &body;
                std::thread::Builder::new()
                    .name(format!("rank-{}", world.rank))
                    .spawn_scoped(scope, move || body(world))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(rank, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(Error::Internal(format!("thread of rank {rank} panicked")))
                }),
                Err(e) => Err(Error::Internal(format!(
                    "cannot start the thread of rank {rank}: {e}"
                ))),
            })
            .collect()
    })
}

impl World for ThreadWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn local_rank(&self) -> usize {
        self.rank
    }
    fn local_size(&self) -> usize {
        self.size
    }
    fn library_version(&self) -> Option<String> {
        None
    }
    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
    fn broadcast_bytes(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        if root >= self.size {
            return Err(Error::Internal(format!(
                "broadcast from rank {root} of {}",
                self.size
            )));
        }
        if self.rank == root {
            lock(&self.shared.bytes)?[root] = data.clone();
        }
        self.barrier()?;
        if self.rank != root {
            *data = lock(&self.shared.bytes)?[root].clone();
        }
        // Nobody may overwrite the slot before every rank has read it.
        self.barrier()
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        lock(&self.shared.bytes)?[self.rank] = mine.to_vec();
        self.barrier()?;
        let all = lock(&self.shared.bytes)?.clone();
        self.barrier()?;
        Ok(all)
    }
    fn all_reduce_f64(&self, values: &mut [f64], how: Combine) -> Result<()> {
        lock(&self.shared.numbers)?[self.rank] = values.to_vec();
        self.barrier()?;
        {
            let all = lock(&self.shared.numbers)?;
            for (i, v) in values.iter_mut().enumerate() {
                let column = all.iter().map(|r| r.get(i).copied().unwrap_or(f64::NAN));
                *v = match how {
                    Combine::Sum => column.sum(),
                    Combine::Min => column.fold(f64::INFINITY, f64::min),
                    Combine::Max => column.fold(f64::NEG_INFINITY, f64::max),
                };
            }
        }
        self.barrier()
    }
    fn abort(&self, code: i32) -> ! {
        // The threads share the process: ending it ends every rank, as MPI_Abort would.
        std::process::exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_exchange_bytes_and_numbers() {
        let results = run_threads(4, |w| {
            let mut id = if w.rank() == 0 {
                b"unique id".to_vec()
            } else {
                Vec::new()
            };
            w.broadcast_bytes(0, &mut id)?;
            let all = w.all_gather_bytes(&[w.rank() as u8])?;
            let mut v = [w.rank() as f64, 10.0 - w.rank() as f64];
            w.all_reduce_f64(&mut v, Combine::Sum)?;
            let mut m = [w.rank() as f64];
            w.all_reduce_f64(&mut m, Combine::Max)?;
            w.barrier()?;
            Ok((w.rank(), w.local_rank(), w.local_size(), id, all, v, m))
        });
        for (rank, r) in results.into_iter().enumerate() {
            let (r_rank, local, local_size, id, all, v, m) = r.unwrap();
            assert_eq!((r_rank, local, local_size), (rank, rank, 4));
            assert_eq!(id, b"unique id");
            assert_eq!(all, vec![vec![0], vec![1], vec![2], vec![3]]);
            assert_eq!(v, [6.0, 34.0]);
            assert_eq!(m, [3.0]);
        }
    }

    #[test]
    fn repeated_broadcasts_do_not_mix() {
        let results = run_threads(3, |w| {
            let mut seen = Vec::new();
            for round in 0..50u8 {
                let root = round as usize % 3;
                let mut d = if w.rank() == root {
                    vec![round; 3]
                } else {
                    Vec::new()
                };
                w.broadcast_bytes(root, &mut d)?;
                seen.push(d);
            }
            Ok(seen)
        });
        for r in results {
            let seen = r.unwrap();
            for (round, d) in seen.iter().enumerate() {
                assert_eq!(d, &vec![round as u8; 3]);
            }
        }
    }

    #[test]
    fn a_failing_rank_is_reported_not_propagated_as_a_panic() {
        let results = run_threads(2, |w| {
            if w.rank() == 1 {
                Err(Error::Usage("bad".into()))
            } else {
                Ok(())
            }
        });
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(Error::Usage(_))));
    }
}
