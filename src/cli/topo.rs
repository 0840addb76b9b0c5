//! `collbench topo`'s command line.

use clap::Args;
use std::path::PathBuf;

/// Print the GPUs, NVLink/xGMI/PCIe links, RDMA NICs and affinities discovered on each host, and the
/// speed of light of a communicator over all of a host's GPUs. Under mpirun it covers every host of the
/// job.
#[derive(Debug, Args)]
pub struct TopoArgs {
    /// Also write what was discovered as JSON.
    #[arg(short = 'J', long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
}
