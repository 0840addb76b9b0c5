//! A World of one rank, for builds without MPI and for running without a launcher.

use super::{Combine, World};
use crate::error::Result;

pub struct SoloWorld {
    host: String,
}

impl SoloWorld {
    pub fn new() -> Self {
        SoloWorld {
            host: super::host_name(),
        }
    }
}

impl Default for SoloWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl World for SoloWorld {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn library_version(&self) -> Option<String> {
        None
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, _root: usize, _data: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }
    fn all_reduce_f64(&self, _values: &mut [f64], _how: Combine) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
