//! The World: who the ranks are and how they talk to each other outside the measured collectives
//! (barriers, broadcast of ids, gathering of results). MPI ranks today; threads in one process next.

use crate::error::Result;
use serde::{de::DeserializeOwned, Serialize};

#[cfg(feature = "mpi")]
pub mod mpi;
pub mod solo;
pub mod threads;

#[cfg(feature = "mpi")]
pub use self::mpi::MpiWorld;

/// How numbers are combined across ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Sum,
    Min,
    Max,
}

pub trait World {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    fn host(&self) -> &str;
    /// Rank among the ranks on the same host, counted in rank order.
    fn local_rank(&self) -> usize;
    /// Number of ranks on this host.
    fn local_size(&self) -> usize;
    /// The launcher's library and version (e.g. the MPI library), for the header.
    fn library_version(&self) -> Option<String>;
    fn barrier(&self) -> Result<()>;
    /// Root's bytes end up on every rank.
    fn broadcast_bytes(&self, root: usize, data: &mut Vec<u8>) -> Result<()>;
    /// Every rank's bytes, in rank order, on every rank.
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Every rank's bytes, in rank order, on rank 0 only (None on the others): for what only rank 0
    /// reports, so that the other ranks receive nothing.
    fn gather_bytes(&self, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        let all = self.all_gather_bytes(mine)?;
        Ok((self.rank() == 0).then_some(all))
    }
    /// Element-wise combination of `values` over ranks, result on every rank.
    fn all_reduce_f64(&self, values: &mut [f64], how: Combine) -> Result<()>;
    /// Ends the whole job (every rank) with this exit code.
    fn abort(&self, code: i32) -> !;
}

/// Gathers a serialisable value from every rank, in rank order, on every rank.
pub fn all_gather_value<T: Serialize + DeserializeOwned>(
    world: &dyn World,
    mine: &T,
) -> Result<Vec<T>> {
    let bytes =
        serde_json::to_vec(mine).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    world
        .all_gather_bytes(&bytes)?
        .iter()
        .map(|b| {
            serde_json::from_slice(b).map_err(|e| crate::error::Error::Internal(e.to_string()))
        })
        .collect()
}

/// Gathers a serialisable value from every rank, in rank order, on rank 0 only (None elsewhere).
pub fn gather_value<T: Serialize + DeserializeOwned>(
    world: &dyn World,
    mine: &T,
) -> Result<Option<Vec<T>>> {
    let bytes =
        serde_json::to_vec(mine).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    let Some(all) = world.gather_bytes(&bytes)? else {
        return Ok(None);
    };
    all.iter()
        .map(|b| {
            serde_json::from_slice(b).map_err(|e| crate::error::Error::Internal(e.to_string()))
        })
        .collect::<Result<Vec<T>>>()
        .map(Some)
}

/// Local rank and local size from every rank's host name (ranks on one host, in rank order).
pub fn locality(hosts: &[String], rank: usize) -> (usize, usize) {
    let mine = &hosts[rank];
    let local_rank = hosts[..rank].iter().filter(|h| *h == mine).count();
    let local_size = hosts.iter().filter(|h| *h == mine).count();
    (local_rank, local_size)
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_counts_ranks_per_host_in_rank_order() {
        let hosts: Vec<String> = ["a", "b", "a", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(locality(&hosts, 0), (0, 3));
        assert_eq!(locality(&hosts, 1), (0, 2));
        assert_eq!(locality(&hosts, 2), (1, 3));
        assert_eq!(locality(&hosts, 3), (2, 3));
        assert_eq!(locality(&hosts, 4), (1, 2));
    }
}
