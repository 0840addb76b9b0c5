//! The World over MPI ranks (rsmpi): one process per rank, launched by mpirun or srun, or a singleton.

use super::{locality, Combine, World};
use crate::error::{Error, Result};
use crate::ffi::mpi as raw;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Count;

pub struct MpiWorld {
    // Dropping the universe finalises MPI; it must outlive every use of `comm`.
    _universe: Universe,
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    host: String,
    local_rank: usize,
    local_size: usize,
    library: Option<String>,
}

impl MpiWorld {
    /// Initialises MPI (once per process) and learns who shares this host.
    pub fn init() -> Result<MpiWorld> {
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| Error::Internal("MPI was already initialised in this process".into()))?;
        let comm = universe.world();
        // Errors come back as codes so they can be reported with the rank, host and MPI's words,
        // instead of MPI's default of killing the job with its own message.
        raw::errors_return(&comm);
        let rank = comm.rank() as usize;
        let size = comm.size() as usize;
        let host = super::host_name();
        // MPI_Get_library_version's string ends with a NUL and often a newline.
        let library = mpi::environment::library_version()
            .ok()
            .map(|v| {
                v.trim_end_matches(['\0', '\n', ' '])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .filter(|v| !v.is_empty());
        let mut world = MpiWorld {
            _universe: universe,
            comm,
            rank,
            size,
            host,
            local_rank: 0,
            local_size: 1,
            library,
        };
        let hosts: Vec<String> = super::all_gather_value(&world, &world.host.clone())?;
        (world.local_rank, world.local_size) = locality(&hosts, rank);
        Ok(world)
    }

    fn check(&self, call: &str, code: i32) -> Result<()> {
        raw::check(code).map_err(|detail| Error::Library {
            library: "MPI".into(),
            call: call.into(),
            detail,
            rank: self.rank,
            host: self.host.clone(),
        })
    }

    /// The communicator the mpi backend measures on.
    pub fn communicator(&self) -> &SimpleCommunicator {
        &self.comm
    }

    /// MPI_Comm_split of the job: ranks of equal `color` form one communicator, ordered by `key`.
    /// Every rank calls it together. Errors come back as codes on the new communicator too.
    pub fn split(&self, color: usize, key: usize) -> Result<SimpleCommunicator> {
        let as_int = |v: usize, what: &str| {
            i32::try_from(v)
                .map_err(|_| Error::Internal(format!("MPI_Comm_split: {what} {v} exceeds an int")))
        };
        let (color, key) = (as_int(color, "color")?, as_int(key, "key")?);
        raw::split(&self.comm, color, key).map_err(|code| {
            self.check("MPI_Comm_split", code)
                .err()
                .unwrap_or_else(|| Error::Internal("MPI_Comm_split failed".into()))
        })
    }
}

impl World for MpiWorld {
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
        self.local_rank
    }
    fn local_size(&self) -> usize {
        self.local_size
    }
    fn library_version(&self) -> Option<String> {
        self.library.clone()
    }
    fn barrier(&self) -> Result<()> {
        self.check("MPI_Barrier", raw::barrier(&self.comm))
    }
    fn broadcast_bytes(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        let mut len = data.len() as u64;
        self.comm
            .process_at_rank(root as i32)
            .broadcast_into(&mut len);
        data.resize(len as usize, 0);
        self.comm
            .process_at_rank(root as i32)
            .broadcast_into(&mut data[..]);
        Ok(())
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut lengths = vec![0 as Count; self.size];
        self.comm
            .all_gather_into(&(mine.len() as Count), &mut lengths[..]);
        Ok(receive_pieces(&lengths, |partition| {
            self.comm.all_gather_varcount_into(mine, partition)
        }))
    }
    fn gather_bytes(&self, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        let root = self.comm.process_at_rank(0);
        let len = mine.len() as Count;
        if self.rank != 0 {
            root.gather_into(&len);
            root.gather_varcount_into(mine);
            return Ok(None);
        }
        let mut lengths = vec![0 as Count; self.size];
        root.gather_into_root(&len, &mut lengths[..]);
        Ok(Some(receive_pieces(&lengths, |partition| {
            root.gather_varcount_into_root(mine, partition)
        })))
    }
    fn all_reduce_f64(&self, values: &mut [f64], how: Combine) -> Result<()> {
        let input = values.to_vec();
        let op = match how {
            Combine::Sum => SystemOperation::sum(),
            Combine::Min => SystemOperation::min(),
            Combine::Max => SystemOperation::max(),
        };
        self.comm.all_reduce_into(&input[..], values, op);
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

/// Every rank's bytes, `lengths[r]` of them from rank r, received into one buffer by `receive` and cut
/// into one piece a rank.
fn receive_pieces(
    lengths: &[Count],
    receive: impl FnOnce(&mut PartitionMut<'_, [u8], &[Count], &[Count]>),
) -> Vec<Vec<u8>> {
    let displs: Vec<Count> = lengths
        .iter()
        .scan(0, |acc, &l| Some(std::mem::replace(acc, *acc + l)))
        .collect();
    let total: usize = lengths.iter().map(|&l| l as usize).sum();
    let mut all = vec![0u8; total];
    {
        let mut partition = PartitionMut::new(&mut all[..], lengths, &displs[..]);
        receive(&mut partition);
    }
    lengths
        .iter()
        .zip(&displs)
        .map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec())
        .collect()
}

/// Ends every rank of the job; for the panic hook and the watchdog, which hold no World.
pub fn abort_job(code: i32) -> ! {
    if crate::testing::abort_hangs() {
        // The test switch: an MPI_Abort that never returns, as with a hung or unreachable daemon.
        raw::end_after_grace(code);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    raw::abort_world(code)
}
