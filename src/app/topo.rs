//! `collbench topo`: what each host's GPUs, links and NICs are, and their peak, without running a
//! collective. Under mpirun it covers every host of the job.

use super::topology;
use crate::cli::topo::TopoArgs;
use crate::error::{ExitCode, Result};

pub fn main(args: &TopoArgs) -> i32 {
    let nodes = match topo_nodes() {
        Ok(Some(nodes)) => nodes,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("collbench: {e}");
            return e.exit_code().code();
        }
    };
    print!("{}", crate::topo::render(&nodes));
    print!("{}", topology::host_peak_lines(&nodes));
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(&nodes).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("collbench: --json {}: cannot write: {e}", path.display());
            return ExitCode::Io.code();
        }
    }
    0
}

/// Every host's topology on rank 0 (None on the other ranks).
fn topo_nodes() -> Result<Option<Vec<crate::topo::NodeTopology>>> {
    #[cfg(feature = "mpi")]
    if super::launch::launched_with_ranks() {
        use crate::world::World;
        let world = crate::world::MpiWorld::init()?;
        let nodes = topology::gather_nodes(&world)?;
        return Ok((world.rank() == 0).then_some(nodes));
    }
    Ok(Some(vec![crate::topo::discover_live()]))
}
